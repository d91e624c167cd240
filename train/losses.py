"""Training losses of Ivanova et al. (VISAPP 2022), section 3.3, plus the MSE baseline.

Every loss is an ``nn.Module`` called ``loss(net_out, batch) -> (total, terms)``:

- ``net_out``: the network output, ``(N, 3, H, W)`` in ``[0, 1]``, or ``(restored, mask)`` for mask
  networks (``(N, 3, H, W)``, ``(N, 1, H, W)``); then the prediction ``P`` that is scored is the soft
  composite ``P = x + m * (r - x)`` with ``x = batch["input"]`` (what inference produces for a mask);
- ``batch``: a dict with ``input`` and ``target`` ``(N, 3, H, W)`` float in ``[0, 1]`` and optionally
  ``mask`` ``(N, 1, H, W)`` (the true damage; only used by ``mask_weight``);
- ``total``: scalar tensor to back-propagate; ``terms``: ``{name: float}`` of every unweighted term
  (for logging; ``total`` is their weighted sum).

Notation (``T`` = target, all means over every element of the batch):

- ``hat(I) = (I - mu) / sigma`` with the ImageNet ``mu = (0.485, 0.456, 0.406)``,
  ``sigma = (0.229, 0.224, 0.225)`` per channel. The paper trains on ImageNet-normalised images
  and its network predicts normalised pixels, so the pixel terms are taken in that space
  (``imagenet_space=True``, default); ``imagenet_space=False`` takes them on ``[0, 1]`` RGB instead.
- ``phi_l(I)``, ``l = 1..5``: VGG-16 activations after the last ReLU before each max-pool
  (``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3`` = ``features[3, 8, 15, 22, 29]``; the paper's
  "layers 5, 12, 22, 32, 42" are the same ReLUs counted in ``vgg16_bn``), ImageNet weights,
  frozen, input ``I`` in ``[0, 1]`` normalised inside the extractor. ``phi_l`` has shape
  ``(N, C_l, H_l, W_l)``.
- ``Gram(F) = F_flat @ F_flat^T / (C * H * W)`` per image, ``F_flat`` = ``(C, H*W)`` -> ``(N, C, C)``
  (fastai's ``gram_matrix``).
- ``MAE(a, b) = mean |a - b|``; ``MSE(a, b) = mean (a - b)^2``.
- ``D_SSIM(a, b) = 1 - mean(SSIM_map(a, b))`` (the paper's Eq. 1), ``SSIM_map`` from
  ``kornia.metrics.ssim`` with a 5x5 Gaussian window (sigma 1.5), ``max_val = 1`` (so
  ``C1 = 1e-4, C2 = 9e-4``), reflect-padded "same" output (maps of 2 px or less per side are
  replicate-padded first), computed per channel; for feature maps every channel is one SSIM
  channel. kornia divides by ``den + 1e-12``, so ``D_SSIM(x, x)`` is ~1e-5 (not 0) where a feature
  map is all zero. (kornia's own ``ssim_loss`` is ``(1 - SSIM) / 2`` clamped; this is twice that,
  as Eq. 1 states.)
- layer weights ``w = (w_1 .. w_5)``; style scale ``s = 5e3`` (fastai/DeOldify ``FeatureLoss``).

Configurations (:func:`build_loss`):

``mse``
    ``L = MSE(hat(P), hat(T))``. Terms: ``mse``.

``model1``  (DeOldify weights ``w = (0, 0, 20, 70, 10)``) and ``model2`` (``w = (2, 4, 5, 6, 6)``)
    ``L = MAE(hat(P), hat(T)) + sum_l w_l MAE(phi_l(P), phi_l(T))
    + sum_l s w_l^2 MAE(Gram(phi_l(P)), Gram(phi_l(T)))``.
    Terms: ``pixel``, ``feat_0..feat_4`` (the MAEs), ``gram_0..gram_4`` (the Gram MAEs).

``model3``  (``w = (2, 4, 5, 6, 6)``)
    ``L = D_SSIM(hat(P), hat(T)) + MAE(hat(P), hat(T)) + sum_l w_l D_SSIM(phi_l(P), phi_l(T))
    + sum_l s w_l^2 MAE(Gram(phi_l(P)), Gram(phi_l(T)))``.
    Terms: ``pixel_ssim``, ``pixel``, ``feat_0..4`` (the feature ``D_SSIM``), ``gram_0..4``.

Layers whose weight is 0 contribute nothing (their terms are still reported). Optional for mask
networks: ``mask_weight * BCE(m, batch["mask"] > 0)`` (term ``mask_bce``) when ``mask_weight > 0``.

The feature extractor is injectable (``vgg=...``): any module mapping an ``(N, 3, H, W)`` ``[0, 1]``
image to a list of 5 feature maps; by default the real VGG-16 from
:func:`filmclean.nets.vgg16.load_vgg16_features`. It is put in eval mode with
``requires_grad=False`` and kept in eval mode when the loss is switched to train mode; gradients
flow through it to the prediction only. Target features are computed without a graph. Feature
maps and Gram matrices are computed in float32 even under autocast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAM_SCALE = 5e3
MODEL1_WEIGHTS = (0.0, 0.0, 20.0, 70.0, 10.0)
MODEL2_WEIGHTS = (2.0, 4.0, 5.0, 6.0, 6.0)


def prediction(net_out: Tensor | tuple[Tensor, Tensor], batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """``(P, mask)``: the image to score and the predicted mask (``None`` for plain networks).

    For ``(restored, mask)`` outputs ``P = input + mask * (restored - input)`` (soft composite).
    """
    if isinstance(net_out, (tuple, list)):
        restored, mask = net_out
        x = batch["input"].to(restored.dtype)
        return x + mask * (restored - x), mask
    return net_out, None


def gram_matrix(feat: Tensor) -> Tensor:
    """``(N, C, H, W)`` -> ``(N, C, C)``: ``F F^T / (C H W)`` in float32."""
    n, c, h, w = feat.shape
    f = feat.float().reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / float(c * h * w)


def d_ssim(a: Tensor, b: Tensor, window: int = 5) -> Tensor:
    """``1 - mean(SSIM_map(a, b))`` with kornia's Gaussian-window SSIM (``max_val = 1``), float32.

    kornia reflect-pads by ``window // 2``, which needs maps larger than that; smaller maps (the
    deepest VGG layer of a 32 px crop is 2x2) are first replicate-padded by ``window // 2`` and the
    SSIM map is cropped back to the original area.
    """
    from kornia.metrics import ssim

    a, b = a.float(), b.float()
    r = window // 2
    h, w = a.shape[-2:]
    if min(h, w) <= r:
        pad = (r, r, r, r)
        smap = ssim(F.pad(a, pad, mode="replicate"), F.pad(b, pad, mode="replicate"), window, max_val=1.0)
        return 1.0 - smap[..., r : r + h, r : r + w].mean()
    return 1.0 - ssim(a, b, window, max_val=1.0).mean()


class _Base(nn.Module):
    def __init__(self, imagenet_space: bool = True, mask_weight: float = 0.0) -> None:
        super().__init__()
        self.imagenet_space = bool(imagenet_space)
        self.mask_weight = float(mask_weight)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    mean: Tensor
    std: Tensor

    def pixels(self, img: Tensor) -> Tensor:
        """The space the pixel terms are measured in (``hat(img)`` or ``img``), float32."""
        img = img.float()
        return (img - self.mean) / self.std if self.imagenet_space else img

    def _mask_term(
        self, mask: Tensor | None, batch: dict[str, Tensor], total: Tensor, terms: dict[str, float]
    ) -> Tensor:
        if self.mask_weight <= 0 or mask is None:
            return total
        if "mask" not in batch:
            raise KeyError("mask_weight > 0 needs batch['mask']")
        true = (batch["mask"] > 0).float()
        bce = F.binary_cross_entropy(mask.float().clamp(1e-6, 1 - 1e-6), true)
        terms["mask_bce"] = float(bce.detach())
        return total + self.mask_weight * bce


class MSELoss(_Base):
    """Baseline: ``L = MSE(hat(P), hat(T))`` (see the module docstring). Terms: ``mse``."""

    def forward(
        self, net_out: Tensor | tuple[Tensor, Tensor], batch: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        pred, mask = prediction(net_out, batch)
        mse = F.mse_loss(self.pixels(pred), self.pixels(batch["target"]))
        terms = {"mse": float(mse.detach())}
        total = self._mask_term(mask, batch, mse, terms)
        return total, terms


class PerceptualLoss(_Base):
    """Pixel + VGG content + Gram style loss (fastai ``FeatureLoss``, optionally with SSIM distances).

    ``L = [D_SSIM(hat P, hat T) if pixel_ssim] + [MAE(hat P, hat T) if pixel_mae]
    + sum_l w_l * content(phi_l(P), phi_l(T)) + sum_l gram_scale * w_l^2 * MAE(Gram phi_l(P), Gram phi_l(T))``
    with ``content`` = MAE (``content='mae'``) or ``D_SSIM`` (``content='ssim'``).

    Args:
        vgg: feature extractor (``[0, 1]`` image -> list of feature maps, one per weight); frozen here.
        layer_weights: ``w_l``, one per feature map.
        content: ``'mae'`` or ``'ssim'``.
        pixel_ssim / pixel_mae: include the pixel-space ``D_SSIM`` / MAE term.
        gram_scale: ``s`` (5e3).
        ssim_window: SSIM Gaussian window size (5).
        imagenet_space, mask_weight: see the module docstring.
    """

    def __init__(
        self,
        vgg: nn.Module,
        layer_weights: Sequence[float],
        content: str = "mae",
        pixel_ssim: bool = False,
        pixel_mae: bool = True,
        gram_scale: float = GRAM_SCALE,
        ssim_window: int = 5,
        imagenet_space: bool = True,
        mask_weight: float = 0.0,
    ) -> None:
        super().__init__(imagenet_space=imagenet_space, mask_weight=mask_weight)
        if content not in ("mae", "ssim"):
            raise ValueError(f"content must be 'mae' or 'ssim', got {content!r}")
        self.vgg = vgg
        self.vgg.eval().requires_grad_(False)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.content = content
        self.pixel_ssim = bool(pixel_ssim)
        self.pixel_mae = bool(pixel_mae)
        self.gram_scale = float(gram_scale)
        self.ssim_window = int(ssim_window)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # BatchNorm/Dropout in a custom extractor must never switch to training
        return self

    def _features(self, img: Tensor) -> list[Tensor]:
        feats = list(self.vgg(img))
        if len(feats) != len(self.layer_weights):
            raise ValueError(f"feature extractor gave {len(feats)} maps for {len(self.layer_weights)} layer weights")
        return [f.float() for f in feats]

    def _content(self, a: Tensor, b: Tensor) -> Tensor:
        if self.content == "ssim":
            return d_ssim(a, b, self.ssim_window)
        return F.l1_loss(a, b)

    def forward(
        self, net_out: Tensor | tuple[Tensor, Tensor], batch: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        pred, mask = prediction(net_out, batch)
        target = batch["target"]
        p_pix, t_pix = self.pixels(pred), self.pixels(target)
        parts: list[tuple[str, float, Tensor]] = []  # (name, weight, unweighted value)
        if self.pixel_ssim:
            parts.append(("pixel_ssim", 1.0, d_ssim(p_pix, t_pix, self.ssim_window)))
        if self.pixel_mae:
            parts.append(("pixel", 1.0, F.l1_loss(p_pix, t_pix)))
        with torch.autocast(device_type=pred.device.type, enabled=False):
            with torch.no_grad():
                t_feats = self._features(target.float())
            p_feats = self._features(pred.float())
            for i, (fp, ft, w) in enumerate(zip(p_feats, t_feats, self.layer_weights)):
                parts.append((f"feat_{i}", w, self._content(fp, ft)))
            for i, (fp, ft, w) in enumerate(zip(p_feats, t_feats, self.layer_weights)):
                parts.append((f"gram_{i}", self.gram_scale * w * w, F.l1_loss(gram_matrix(fp), gram_matrix(ft))))
        total = sum((w * v for _, w, v in parts if w != 0.0), start=pred.new_zeros((), dtype=torch.float32))
        terms = {name: float(v.detach()) for name, _, v in parts}
        total = self._mask_term(mask, batch, total, terms)
        return total, terms


def _default_vgg() -> nn.Module:
    from filmclean.nets.vgg16 import load_vgg16_features

    return load_vgg16_features()


def _perceptual(weights: Sequence[float], content: str, pixel_ssim: bool) -> Callable[..., nn.Module]:
    def make(vgg: nn.Module | None = None, layer_weights: Sequence[float] | None = None, **kw: Any) -> nn.Module:
        return PerceptualLoss(
            vgg if vgg is not None else _default_vgg(),
            layer_weights if layer_weights is not None else weights,
            content=content,
            pixel_ssim=pixel_ssim,
            **kw,
        )

    return make


def _maskguided(**kw: Any) -> nn.Module:
    from .maskloss import MaskGuidedLoss

    return MaskGuidedLoss(**kw)


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "mse": MSELoss,
    "model1": _perceptual(MODEL1_WEIGHTS, "mae", pixel_ssim=False),
    "model2": _perceptual(MODEL2_WEIGHTS, "mae", pixel_ssim=False),
    "model3": _perceptual(MODEL2_WEIGHTS, "ssim", pixel_ssim=True),
    "maskguided": _maskguided,
}


def build_loss(name: str, **kw: Any) -> nn.Module:
    """Build a loss by name: ``mse``, ``model1``, ``model2``, ``model3`` (see the module docstring),
    or ``maskguided`` (:class:`filmclean.train.maskloss.MaskGuidedLoss`).

    Keywords for the perceptual ones: ``vgg`` (feature extractor; default: the real VGG-16, whose
    weights :func:`filmclean.nets.vgg16.ensure_vgg_weights` provides), ``layer_weights``,
    ``gram_scale``, ``ssim_window``, ``pixel_mae``, ``imagenet_space``, ``mask_weight``.
    ``mse`` takes ``imagenet_space`` and ``mask_weight``. Unknown names raise ``KeyError``,
    unknown keywords ``TypeError``.
    """
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**kw)


__all__ = [
    "GRAM_SCALE",
    "LOSSES",
    "MODEL1_WEIGHTS",
    "MODEL2_WEIGHTS",
    "MSELoss",
    "PerceptualLoss",
    "build_loss",
    "d_ssim",
    "gram_matrix",
    "prediction",
]
