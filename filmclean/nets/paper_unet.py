"""The restoration network of Ivanova et al. (VISAPP 2022): fastai v1's ``DynamicUnet`` over ResNet-34.

Plain-torch re-implementation of what ``unet_learner(data, models.resnet34, blur=True,
self_attention=True, norm_type=NormType.Weight, y_range=...)`` builds in fastai v1 (the paper's
notebooks), with shapes for a 3-channel image of size ``H x W`` (``H, W`` multiples of 32 inside;
see *Padding*):

====================  =====================================================  ================
stage                 layers                                                 output
====================  =====================================================  ================
input normalisation   ``(x - imagenet_mean) / imagenet_std``                 3 @ H
encoder               ResNet-34 without avgpool/fc (torchvision names)       512 @ H/32
                      taps: stem ReLU (64 @ H/2), layer1 (64 @ H/4),
                      layer2 (128 @ H/8), layer3 (256 @ H/16)
bottleneck            BatchNorm-ReLU, conv3x3 512->1024, conv3x3 1024->512   512 @ H/32
up block 0            shuffle 512->256, + BN(layer3) -> 512, 2 x conv 512    512 @ H/16
up block 1            shuffle 512->256, + BN(layer2) -> 384, 2 x conv 384,   384 @ H/8
                      **self-attention** after the second conv
up block 2            shuffle 384->192, + BN(layer1) -> 256, 2 x conv 256    256 @ H/4
up block 3            shuffle 256->128, + BN(stem) -> 192, conv 192->96,     96 @ H/2
                      conv 96->96
final upsample        pixel shuffle 96->96                                   96 @ H
dense cross           concat the normalised input                            99 @ H
residual block        x + conv3x3(conv3x3(x))                                99 @ H
head                  conv1x1 99->3, sigmoid                                 3 @ H
====================  =====================================================  ================

Building blocks (fastai v1 semantics):

- ``conv`` = ``conv_layer``: conv (Kaiming-normal init, zero bias) -> ReLU -> [BatchNorm if
  ``norm='batch'``]; with ``norm='weight'`` the conv is weight-normalised (``w = g * v / ||v||``,
  parameters ``weight_g``/``weight_v``/``bias``) and there is no BatchNorm; ``'none'``: plain conv
  with bias. The bottleneck's leading BatchNorm and the skip BatchNorms use fastai's
  ``batchnorm_2d`` init (weight 1, bias 1e-3).
- ``shuffle`` = ``PixelShuffle_ICNR``: 1x1 conv to ``4 * nf`` channels with ICNR init (each group
  of 4 sub-pixel kernels starts identical, so the upsampling starts as nearest-neighbour), ReLU,
  ``PixelShuffle(2)``, then with ``blur=True`` a replication pad ``(1, 0, 1, 0)`` + 2x2 average
  pool with stride 1 (Sugawara et al. 2018; removes checkerboard artefacts).
- In an up block the upsampled tensor and ``BatchNorm(skip)`` are concatenated and passed through
  a ReLU before the two convs.
- Self-attention (SAGAN, Zhang et al. 2018): ``f, g, h`` = spectrally-normalised 1x1 convs to
  ``C/8, C/8, C`` channels; ``beta = softmax_i(f_i . g_j)``; ``out_j = gamma * sum_i h_i beta_ij + x_j``
  with ``gamma`` a learnable scalar initialised to 0 (so the block starts as the identity).
- Residual block: ``x + conv(conv(x))``; with ``norm='batch'`` the second BatchNorm starts at weight 0.

Deliberate differences from fastai v1, all small:

- Output range: the notebooks predict ImageNet-normalised pixels with ``SigmoidRange(-3, 3)``; here the
  head's sigmoid maps straight to RGB ``[0, 1]`` (the project's tensor contract). The normalisation of
  the input is done inside the network instead of by the data loader.
- fastai v1's ``PixelShuffle_ICNR`` tests ``if self.blur`` on a module (always true), so it blurs in
  every upsampler, the final one included, whatever ``blur`` says; here ``blur=True`` blurs all five
  upsamplers (what the paper's models effectively had) and ``blur=False`` none.
- fastai v1 applies ICNR to a weight that weight normalisation recomputes at the next forward,
  which loses the ICNR init; here ICNR is applied to ``weight_v`` and ``weight_g = ||v||``.
- With ``norm='batch'`` fastai would add a BatchNorm to the 3-channel head; here the head is a
  plain 1x1 conv with bias for ``'batch'`` and ``'none'`` (weight-normalised for ``'weight'``).

Padding: the input is reflect-padded (replicate where a side is shorter than 17 px) to multiples
of 32, split evenly between the two sides, and the output is cropped back, so any ``H, W >= 1``
works and ``size_multiple = 1``.

Receptive field: the convolutional path alone reaches about +-610 px (counted layer by layer:
ResNet-34 449 px at stride 32, bottleneck +64, decoder convs and blurs +93, plus up to 31 px of
stride-32 cell alignment), and the self-attention at ``H/8`` mixes the *whole* (padded) frame, so
strictly every output pixel depends on every input pixel and tiled inference is never
bit-identical to whole-frame inference, whatever the overlap. ``receptive_radius = 128`` is a
practical figure, not a bound: on a randomly initialised network (attention off, as ``gamma = 0``)
50 % of the gradient of a centre pixel w.r.t. a 512x512 input lies within 106 px and 90 % within
195 px; a trained restorer of local damage leans on the short skip paths more than that. 128 px
also matches the engine's default (512 px tiles, overlap capped at half a tile = 256 px). For a
closer match to whole-frame output use larger tiles (the attention matrix has ``(H*W/64)^2``
entries: a 1024x1024 tile needs 1 GiB for it in float32).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .resnet34 import IMAGENET_MEAN, IMAGENET_STD, ResNet34, load_resnet34_encoder_weights

Norm = Literal["weight", "batch", "none"]
_NORMS = ("weight", "batch", "none")


# ---------------------------------------------------------------------------------------------------
# layers


class WeightNormConv2d(nn.Module):
    """``Conv2d`` with weight normalisation (Salimans & Kingma 2016): ``w = g * v / ||v||``.

    ``||v||`` is taken per output channel over ``(in, kh, kw)``. Parameters ``weight_g``
    ``(out, 1, 1, 1)``, ``weight_v`` ``(out, in, k, k)``, ``bias`` ``(out,)`` (the names of
    ``torch.nn.utils.weight_norm``). Init: ``v`` Kaiming-normal, ``g = ||v||``, bias 0.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.padding = int(padding)
        v = torch.empty(c_out, c_in, kernel_size, kernel_size)
        nn.init.kaiming_normal_(v)
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(torch.empty(c_out, 1, 1, 1))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.reset_g()

    def reset_g(self) -> None:
        """Set ``g = ||v||`` so that the effective weight equals ``v``."""
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    @property
    def weight(self) -> Tensor:
        v = self.weight_v
        return v * (self.weight_g / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


def _plain_conv(c_in: int, c_out: int, ks: int, bias: bool) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, ks, padding=(ks - 1) // 2, bias=bias)
    nn.init.kaiming_normal_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _conv(c_in: int, c_out: int, ks: int, norm: str) -> nn.Module:
    if norm == "weight":
        return WeightNormConv2d(c_in, c_out, ks, padding=(ks - 1) // 2, bias=True)
    return _plain_conv(c_in, c_out, ks, bias=(norm == "none"))


def conv_layer(
    c_in: int, c_out: int, norm: str, ks: int = 3, act: bool = True, bn_zero: bool = False, self_attention: bool = False
) -> nn.Sequential:
    """fastai v1 ``conv_layer``: ``[conv, ReLU (if act), BatchNorm (if norm == 'batch'), SelfAttention?]``."""
    layers: list[nn.Module] = [_conv(c_in, c_out, ks, norm)]
    if act:
        layers.append(nn.ReLU(inplace=False))
    if norm == "batch":
        bn = nn.BatchNorm2d(c_out)
        if bn_zero:
            nn.init.zeros_(bn.weight)
        layers.append(bn)
    if self_attention:
        layers.append(SelfAttention(c_out))
    return nn.Sequential(*layers)


def _fastai_bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.fill_(1e-3)
    return bn


class SpectralNormConv1x1(nn.Module):
    """1x1 convolution over ``(N, C_in, L)`` with spectral normalisation (Miyato et al. 2018).

    ``y = (W / sigma(W)) x`` with ``sigma`` estimated by one power iteration per training forward
    (buffers ``u`` ``(C_out,)`` and ``v`` ``(C_in,)``, updated without gradient); in eval mode the
    stored ``u, v`` are used as is, so inference (and ONNX export) is deterministic.
    Parameters: ``weight`` ``(C_out, C_in)``, no bias. Init: Kaiming-normal.
    """

    def __init__(self, c_in: int, c_out: int, eps: float = 1e-12) -> None:
        super().__init__()
        w = torch.empty(c_out, c_in, 1)
        nn.init.kaiming_normal_(w)
        self.weight = nn.Parameter(w.squeeze(-1))
        self.eps = eps
        self.register_buffer("u", F.normalize(torch.randn(c_out), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(torch.randn(c_in), dim=0, eps=eps))

    u: Tensor
    v: Tensor

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        u, v = self.u, self.v
        if self.training:
            with torch.no_grad():
                v = F.normalize(w.t() @ u, dim=0, eps=self.eps)
                u = F.normalize(w @ v, dim=0, eps=self.eps)
                self.u.copy_(u)
                self.v.copy_(v)
            # fresh tensors, so that a later in-place buffer update cannot invalidate this graph
            u, v = u.clone(), v.clone()
        sigma = (u * (w @ v)).sum()
        return torch.matmul(w / sigma, x)


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions of ``(N, C, H, W)``; output has the input's shape.

    ``f = Wq x`` ``(N, C/8, L)``, ``g = Wk x`` ``(N, C/8, L)``, ``h = Wv x`` ``(N, C, L)``
    (``L = H * W``); ``beta = softmax(f^T g, dim=1)`` ``(N, L, L)`` (column ``j`` sums to 1 over
    source positions ``i``); ``out = gamma * (h @ beta) + x``, ``gamma`` init 0.
    Memory: ``N * L^2`` floats for ``beta``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = SpectralNormConv1x1(channels, max(channels // 8, 1))
        self.key = SpectralNormConv1x1(channels, max(channels // 8, 1))
        self.value = SpectralNormConv1x1(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(2)
        f, g, h = self.query(flat), self.key(flat), self.value(flat)
        beta = torch.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)
        out = self.gamma * torch.bmm(h, beta) + flat
        return out.reshape(x.shape)


class PixelShuffleICNR(nn.Module):
    """fastai ``PixelShuffle_ICNR``: ``(N, c_in, H, W)`` -> ``(N, c_out, 2H, 2W)``.

    ``blur(shuffle(relu(conv1x1(x))))`` where ``conv1x1`` goes to ``4 * c_out`` channels (plus a
    BatchNorm for ``norm='batch'``) with ICNR init, and ``blur`` (if enabled) is replication pad
    ``(left 1, top 1)`` followed by a 2x2 stride-1 average pool (keeps the size).
    """

    def __init__(self, c_in: int, c_out: int, blur: bool, norm: str, scale: int = 2) -> None:
        super().__init__()
        self.conv = conv_layer(c_in, c_out * scale * scale, norm, ks=1, act=False)
        self._icnr(scale)
        self.shuf = nn.PixelShuffle(scale)
        self.relu = nn.ReLU(inplace=False)
        self.blur = bool(blur)

    def _icnr(self, scale: int) -> None:
        conv = self.conv[0]
        target = conv.weight_v if isinstance(conv, WeightNormConv2d) else cast(Tensor, conv.weight)
        c_out4, c_in, kh, kw = target.shape
        base = torch.empty(c_out4 // (scale * scale), c_in, kh, kw)
        nn.init.kaiming_normal_(base)
        with torch.no_grad():
            target.copy_(base.repeat_interleave(scale * scale, dim=0))
        if isinstance(conv, WeightNormConv2d):
            conv.reset_g()

    def forward(self, x: Tensor) -> Tensor:
        x = self.shuf(self.relu(self.conv(x)))
        if self.blur:
            x = F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)
        return x


class UnetBlock(nn.Module):
    """One decoder step: upsample ``up_in`` 2x, concat ``BN(skip)``, ReLU, two 3x3 conv layers.

    ``forward(up_in (N, up_c, h, w), skip (N, skip_c, 2h, 2w)) -> (N, c_out, 2h, 2w)`` with
    ``c_out = up_c // 2 + skip_c`` (or half of it for the last block, ``final_div=False``).
    """

    def __init__(
        self,
        up_c: int,
        skip_c: int,
        norm: str,
        final_div: bool = True,
        blur: bool = False,
        self_attention: bool = False,
    ) -> None:
        super().__init__()
        self.shuf = PixelShuffleICNR(up_c, up_c // 2, blur=blur, norm=norm)
        self.bn = _fastai_bn(skip_c)
        ni = up_c // 2 + skip_c
        nf = ni if final_div else ni // 2
        self.conv1 = conv_layer(ni, nf, norm)
        self.conv2 = conv_layer(nf, nf, norm, self_attention=self_attention)
        self.relu = nn.ReLU(inplace=False)
        self.out_channels = nf

    def forward(self, up_in: Tensor, skip: Tensor) -> Tensor:
        up = self.shuf(up_in)
        cat = self.relu(torch.cat([up, self.bn(skip)], dim=1))
        return self.conv2(self.conv1(cat))


class ResBlock(nn.Module):
    """fastai ``res_block`` (no bottleneck): ``x + conv(conv(x))``, shape-preserving."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = conv_layer(channels, channels, norm)
        self.conv2 = conv_layer(channels, channels, norm, bn_zero=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


# ---------------------------------------------------------------------------------------------------
# the network


class PaperUNet(nn.Module):
    """Ivanova et al. 2022 restoration U-Net (fastai ``DynamicUnet`` over ResNet-34); see the module docstring.

    Tensor contract (see :mod:`filmclean.nets`): ``forward(x)`` with ``x`` ``(N, 3, H, W)`` float32
    RGB in ``[0, 1]``, any ``H, W >= 1`` -> ``(N, 3, H, W)`` float32 restored RGB in ``(0, 1)``
    (sigmoid). Not a mask network.

    Args:
        pretrained: ImageNet ResNet-34 weights for the encoder, loaded once at construction: a
            local ``.pth``/``.safetensors`` path, or ``"torchvision"`` to download torchvision's
            file (needs internet). ``None`` (default): random init, which is also what a saved
            model's config should say (its weights already hold the encoder).
        self_attention: SAGAN attention in the second up block from the bottleneck (the paper: on).
        blur: blur after every pixel shuffle (the paper: on).
        norm: ``'weight'`` (weight-normalised convs, the paper's setting), ``'batch'`` or ``'none'``
            for the decoder's conv layers. The encoder always keeps ResNet's BatchNorms.

    Parameter groups for progressive training (the paper freezes the encoder, then fine-tunes all):
    :meth:`encoder_parameters`, :meth:`decoder_parameters`; fastai keeps the encoder's BatchNorm
    affine parameters trainable while frozen: :meth:`encoder_norm_parameters`.
    """

    has_mask = False
    size_multiple = 1
    #: practical tile-overlap radius (px); the true field is global, see the module docstring
    receptive_radius = 128
    #: the internal grid: inputs are padded to multiples of this
    pad_multiple = 32

    def __init__(
        self, pretrained: str | None = None, self_attention: bool = True, blur: bool = True, norm: Norm = "weight"
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        self.encoder = ResNet34(num_classes=None)
        self.mid_bn = _fastai_bn(512)
        self.middle = nn.Sequential(conv_layer(512, 1024, norm), conv_layer(1024, 512, norm))
        skips = (256, 128, 64, 64)  # layer3, layer2, layer1, stem relu
        blocks: list[UnetBlock] = []
        c = 512
        for i, skip_c in enumerate(skips):
            block = UnetBlock(
                c,
                skip_c,
                norm,
                final_div=(i != len(skips) - 1),
                blur=blur,
                self_attention=bool(self_attention) and i == len(skips) - 3,
            )
            blocks.append(block)
            c = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.final_up = PixelShuffleICNR(c, c, blur=blur, norm=norm)
        self.res = ResBlock(c + 3, norm)
        if norm == "weight":
            self.head: nn.Module = WeightNormConv2d(c + 3, 3, 1, bias=True)
        else:
            self.head = _plain_conv(c + 3, 3, 1, bias=True)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained is not None:
            load_resnet34_encoder_weights(self.encoder, None if pretrained == "torchvision" else Path(pretrained))

    mean: Tensor
    std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        m = self.pad_multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m
        top, left = ph // 2, pw // 2
        xn = (x - self.mean) / self.std
        mode = "reflect" if min(h, w) >= 17 else "replicate"
        xp = F.pad(xn, (left, pw - left, top, ph - top), mode=mode)
        feats = self.encoder.forward_features(xp)
        y = self.middle(F.relu(self.mid_bn(feats[-1])))
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            y = block(y, skip)
        y = self.final_up(y)
        y = self.res(torch.cat([y, xp], dim=1))
        y = torch.sigmoid(self.head(y))
        return y[..., top : top + h, left : left + w]

    # parameter groups -------------------------------------------------------------------------------

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """All ResNet-34 parameters (frozen in the paper's first phase)."""
        yield from self.encoder.parameters()

    def encoder_norm_parameters(self) -> Iterator[nn.Parameter]:
        """The encoder's BatchNorm weights/biases (a subset of :meth:`encoder_parameters`)."""
        for mod in self.encoder.modules():
            if isinstance(mod, nn.BatchNorm2d):
                yield from mod.parameters()

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Everything that is not the encoder: bottleneck, up blocks, final upsample, residual block, head."""
        enc = {id(p) for p in self.encoder.parameters()}
        for p in self.parameters():
            if id(p) not in enc:
                yield p


__all__ = [
    "PaperUNet",
    "PixelShuffleICNR",
    "ResBlock",
    "SelfAttention",
    "SpectralNormConv1x1",
    "UnetBlock",
    "WeightNormConv2d",
    "conv_layer",
]
