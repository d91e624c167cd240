"""MaskGuidedNet: filmclean's default model -- detect damage, repair only there, leave the rest alone.

Tensor contract
---------------
- input ``x``: ``(N, 3, H, W)`` float32/float16 RGB in ``[0, 1]``; ``H`` and ``W`` multiples of
  ``size_multiple`` (8);
- output ``(restored, mask)``: ``restored`` ``(N, 3, H, W)`` in ``[0, 1]`` is the repair (meaningful
  where damage is), ``mask`` ``(N, 1, H, W)`` in ``[0, 1]`` is the per-pixel damage probability.

The engine writes the repair only where ``mask >= threshold`` and passes every other pixel through
bit-identically (:func:`filmclean.engine.composite`); training uses the soft composite
``x + mask * (restored - x)`` (:meth:`MaskGuidedNet.composite`).

Design (for CPU speed): the picture is folded into channels with a 2x pixel-unshuffle so that no
convolution runs at full resolution, while all full-resolution detail stays available; a small
U-shaped encoder/decoder works at 1/2, 1/4 and 1/8 scale, with dilated convolutions at 1/8 for
context around large blotches; skip connections are added (not concatenated) to save compute;
both heads are pixel-shuffled back to full resolution. No attention, so tiling is exact given
enough overlap (see ``receptive_radius``).

Fill-and-refine repair (``fill_levels > 0``): instead of predicting the repair as a change of the
damaged picture, the network first fills the pixels its mask calls damaged from the pixels around
them (:func:`push_pull_fill`, a normalised-convolution image pyramid weighted by ``1 - mask``,
``fill_levels`` levels deep) and then refines that fill with two convolutions at 1/2 scale which
see the fill, the damaged picture (faint damage can be undone rather than painted over), the mask
and the decoder's features (context for holes larger than the pyramid reaches). The mask head is
then a separate 4-channel convolution. :meth:`MaskGuidedNet.from_base` turns a trained network
without the fill into one with it, keeping every shared weight (the mask is unchanged at first).

Detection cues: besides the picture, the network sees morphological top-hat maps of the luminance
at two scales (closing minus picture for dark specks, picture minus opening for light ones, made
with max-pooling). These are the classical dust detectors and let the network learn what dust
looks like from far fewer examples than it would need to discover them itself.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=dilation * (k // 2), dilation=dilation)


class _ConvAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(_conv(c_in, c_out, k, stride, dilation), nn.LeakyReLU(0.1, inplace=True))


class _ResBlock(nn.Module):
    def __init__(self, c: int, dilation: int = 1) -> None:
        super().__init__()
        self.a = _ConvAct(c, c, 3, 1, dilation)
        self.b = _conv(c, c, 3, 1, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.b(self.a(x)), 0.1)


def max_filter(y: torch.Tensor, k: int) -> torch.Tensor:
    """The maximum over each ``k x k`` square (odd ``k``, stride 1, same size): ``(N, C, H, W)`` in and out.

    Eager PyTorch takes it as a column maximum then a row maximum (the same numbers, about twice as
    fast for ``k = 11`` on the CPU); an ONNX export keeps one square MaxPool, which ONNX Runtime
    runs faster than two."""
    p = k // 2
    if torch.onnx.is_in_onnx_export():
        return F.max_pool2d(y, k, 1, p)
    return F.max_pool2d(F.max_pool2d(y, (k, 1), 1, (p, 0)), (1, k), 1, (0, p))


def push_pull_fill(x: torch.Tensor, weight: torch.Tensor, levels: int, gain: float = 2.0) -> torch.Tensor:
    """Fill low-weight pixels of ``x`` from high-weight ones (normalised-convolution pyramid).

    ``x`` ``(N, C, H, W)``; ``weight`` ``(N, 1, H, W)`` in ``[0, 1]`` (1 = trusted pixel); ``H`` and
    ``W`` multiples of ``2 ** levels``. Push: weighted 2x2 averages ``levels`` times. Pull: from the
    coarsest level down, each level keeps its own weighted average where it holds enough weight
    (``gain * mean weight >= 1`` keeps it entirely) and takes the bilinearly enlarged coarser
    estimate elsewhere. A pixel with weight ``>= 1 - 1/gain`` is returned unchanged; a hole wider than
    ``2 ** levels`` pixels ends up with the plain (unweighted) local average of the coarsest level.
    Differentiable in ``x`` and ``weight``; exports to ONNX (average pooling, bilinear resize).
    """
    nums, dens = [x * weight], [weight]
    for _ in range(levels):
        nums.append(F.avg_pool2d(nums[-1], 2))
        dens.append(F.avg_pool2d(dens[-1], 2))
    eps = 1e-3
    est = (nums[-1] + eps * F.avg_pool2d(x, 2**levels)) / (dens[-1] + eps) if levels else x
    for level in range(levels - 1, -1, -1):
        up = F.interpolate(est, scale_factor=2.0, mode="bilinear", align_corners=False)
        keep = (gain * dens[level]).clamp(max=1.0)
        est = keep * (nums[level] / dens[level].clamp_min(1e-6)) + (1.0 - keep) * up
    return est


class _Residual(nn.Module):
    """``x + conv(act(conv(x)))`` with no activation after the sum; its last convolution starts at
    zero, so a new block computes the identity until trained (see :meth:`MaskGuidedNet.grown_from`)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = _ConvAct(c, c)
        self.b = _conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class MaskGuidedNet(nn.Module):
    """Mask-predicting restoration network (see module docstring for the contract).

    Args:
        widths: channels at 1/2, 1/4 and 1/8 scale.
        dilations: dilation of each residual block at 1/8 scale (context for large damage).
        tophat: sizes of the top-hat cue maps.
        fill_levels: 0 for a repair predicted as a change of the input (maskguided-v1); ``L > 0``
            for the fill-and-refine repair with an ``L``-level push-pull fill (``size_multiple``
            becomes ``max(8, 2 ** L)``).
        fine_blocks: residual blocks at 1/2 scale after the first encoder layer and again after the
            last decoder layer (capacity where thin hairs, scratches and specks are decided).
        mask_grow: the mask is grown by this many pixels (a max filter) before the fill and in the
            output, so the soft fringe around a detected artefact is repaired with it.
    """

    has_mask = True
    size_multiple = 8

    def __init__(
        self,
        widths: tuple[int, int, int] | list[int] = (24, 48, 96),
        dilations: tuple[int, ...] | list[int] = (1, 2, 4),
        tophat: tuple[int, ...] | list[int] = (5, 11),
        fill_levels: int = 0,
        fine_blocks: int = 0,
        mask_grow: int = 0,
    ) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in widths)
        self.fine_blocks, self.mask_grow = int(fine_blocks), int(mask_grow)
        if not 0 <= self.fine_blocks <= 4:
            raise ValueError(f"fine_blocks must be 0..4, got {fine_blocks}")
        if not 0 <= self.mask_grow <= 4:
            raise ValueError(f"mask_grow must be 0..4, got {mask_grow}")
        self.fill_levels = int(fill_levels)
        if self.fill_levels < 0 or self.fill_levels > 8:
            raise ValueError(f"fill_levels must be 0..8, got {fill_levels}")
        self.size_multiple = max(8, 2**self.fill_levels)
        self.widths = (c1, c2, c3)
        self.dilations = tuple(int(d) for d in dilations)
        self.tophat = tuple(int(k) for k in tophat)
        cues = 4 * 2 * len(self.tophat)  # dark + light top-hat per scale, unshuffled 2x2
        self.stem = _ConvAct(12 + cues, c1)  # 1/2 scale (pixel-unshuffled input + cues)
        self.enc1 = _ConvAct(c1, c1)
        if self.fine_blocks:
            self.fine_enc = nn.Sequential(*[_Residual(c1) for _ in range(self.fine_blocks)])
            self.fine_dec = nn.Sequential(*[_Residual(c1) for _ in range(self.fine_blocks)])
        self.down2 = _ConvAct(c1, c2, 3, 2)  # 1/4
        self.enc2 = _ConvAct(c2, c2)
        self.down3 = _ConvAct(c2, c3, 3, 2)  # 1/8
        self.mid = nn.Sequential(*[_ResBlock(c3, d) for d in self.dilations])
        self.up3 = nn.Conv2d(c3, c2, 1)
        self.dec2 = _ConvAct(c2, c2)
        self.up2 = nn.Conv2d(c2, c1, 1)
        self.dec1 = _ConvAct(c1, c1)
        if self.fill_levels:
            self.mask_head = _conv(c1 + 12, 4)  # mask logits x 4 sub-pixels
            # refine: decoder features + picture + fill + mask (all 2x2-folded) -> RGB change of the fill
            self.refine = nn.Sequential(_ConvAct(c1 + 12 + 12 + 4, c1), _conv(c1, 12))
        else:
            self.head = _conv(c1 + 12, 16)  # 12 = RGB residual x 4 sub-pixels, 4 = mask logits x 4
        # receptive radius in full-resolution pixels (each 3x3 conv at scale s adds s * dilation)
        r = 2 * 2  # stem + enc1 at 1/2
        r += 2 + 4  # down2 (stride conv at 1/2 input) + enc2 at 1/4
        r += 4  # down3
        r += sum(2 * 8 * d for d in self.dilations)  # two convs per residual block at 1/8
        r += 4 + 2 + 2  # dec2 at 1/4, dec1 at 1/2, head at 1/2
        r += 8  # nearest upsampling and the 2x2 fold
        r += max(self.tophat, default=0) - 1  # closing/opening = two poolings of radius k // 2
        r += 2 * 2 * 2 * self.fine_blocks  # two blocks of two convs at 1/2 scale per fine block
        r += 2 * self.mask_grow
        if self.fill_levels:
            # the fill reads the mask up to sum(1.5 * 2^l) px away (2x2 pooling + bilinear pull per
            # level), rounded up; the refine convolutions add 2 px each at 1/2 scale
            r += int(sum(1.5 * 2**lv for lv in range(1, self.fill_levels + 1))) + 1 + 4
        self.receptive_radius = int(r)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=0.1, nonlinearity="leaky_relu")
                assert mod.bias is not None  # every conv here is made with a bias
                nn.init.zeros_(mod.bias)
        for last in (self.mask_head, cast(nn.Conv2d, self.refine[1])) if self.fill_levels else (self.head,):
            nn.init.normal_(last.weight, std=1e-3)
        for mod in self.modules():
            if isinstance(mod, _Residual):
                nn.init.zeros_(mod.b.weight)

    def grow(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` max-filtered over ``2 * mask_grow + 1`` pixels (unchanged when 0)."""
        g = self.mask_grow
        return F.max_pool2d(logits, 2 * g + 1, 1, g) if g else logits

    def cues(self, x: torch.Tensor) -> torch.Tensor:
        """Top-hat maps ``(N, 2 * len(tophat), H, W)`` of the luminance (dark then light per scale)."""
        y = x.mean(dim=1, keepdim=True)
        maps = []
        for k in self.tophat:
            closing = -max_filter(-max_filter(y, k), k)
            opening = max_filter(-max_filter(-y, k), k)
            maps += [closing - y, y - opening]
        return torch.cat(maps, dim=1)

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d1, x2)``: decoder features ``(N, c1, H/2, W/2)`` and the 2x2-folded picture."""
        x2 = F.pixel_unshuffle(x, 2)
        cues = F.pixel_unshuffle(self.cues(x), 2) * 4.0
        e1 = self.enc1(self.stem(torch.cat([x2, cues], dim=1)))
        if self.fine_blocks:
            e1 = self.fine_enc(e1)
        e2 = self.enc2(self.down2(e1))
        e3 = self.mid(self.down3(e2))
        d2 = self.dec2(F.interpolate(self.up3(e3), scale_factor=2.0, mode="nearest") + e2)
        d1 = self.dec1(F.interpolate(self.up2(d2), scale_factor=2.0, mode="nearest") + e1)
        if self.fine_blocks:
            d1 = self.fine_dec(d1)
        return d1, x2

    def features(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(delta, mask_logits)`` at full resolution: ``(N,3,H,W)`` and ``(N,1,H,W)``.

        ``x + delta`` is the repair (unclamped). ``guide``: see :meth:`heads`."""
        d1, x2 = self.trunk(x)
        return self.heads(d1, x, x2, guide=guide)

    def heads(
        self,
        d1: torch.Tensor,
        x: torch.Tensor,
        x2: torch.Tensor,
        extra2: torch.Tensor | None = None,
        guide: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(delta, mask_logits)`` from the decoder features ``d1``, the picture ``x`` (RGB), its 2x2
        fold ``x2`` and optional further folded inputs ``extra2`` (a temporal network's neighbours),
        which the heads see after the single-frame inputs.

        ``guide`` ``(N, 2, H, W)`` (fill-and-refine networks): a user's matte ``add`` and a weight
        ``keep`` of the network's own detections; the fill and the refinement then work from the mask
        ``max(prob * keep, add)`` -- the matte alone (``keep`` 0) or added to the detections (1) --
        and the returned logits are that mask's (``+-30`` where it is 0 or 1)."""
        more = [] if extra2 is None else [extra2]
        if self.fill_levels:
            logits = F.pixel_shuffle(self.mask_head(torch.cat([d1, x2, *more], dim=1)), 2)
            prob = torch.sigmoid(self.grow(logits))
            if guide is not None:
                prob = torch.maximum(prob * guide[:, 1:2], guide[:, 0:1])
                logits = torch.logit(prob, eps=1e-13)
            fill = push_pull_fill(x, 1.0 - prob, self.fill_levels)
            change = self.refine(
                torch.cat([d1, x2, F.pixel_unshuffle(fill, 2), F.pixel_unshuffle(prob, 2), *more], dim=1)
            )
            return fill + F.pixel_shuffle(change, 2) - x, logits
        out = self.head(torch.cat([d1, x2, *more], dim=1))
        return F.pixel_shuffle(out[:, :12], 2), F.pixel_shuffle(out[:, 12:], 2)

    @classmethod
    def from_base(cls, base: MaskGuidedNet, fill_levels: int) -> MaskGuidedNet:
        """A fill-and-refine network with every weight of ``base`` (a ``fill_levels=0`` network).

        Its mask is exactly ``base``'s (the mask head is ``base``'s head's mask channels); its repair
        starts as the push-pull fill, since the refine's last layer starts near zero.
        """
        if base.fill_levels:
            raise ValueError("from_base needs a network without the fill (fill_levels=0)")
        net = cls(base.widths, base.dilations, base.tophat, fill_levels=fill_levels)
        src = base.state_dict()
        dst = net.state_dict()
        with torch.no_grad():
            for name, value in src.items():
                if name == "head.weight":
                    dst["mask_head.weight"].copy_(value[12:16])
                elif name == "head.bias":
                    dst["mask_head.bias"].copy_(value[12:16])
                else:
                    dst[name].copy_(value)
        net.load_state_dict(dst)
        return net

    def config(self) -> dict[str, object]:
        """The constructor's keyword arguments that rebuild this network."""
        return {
            "widths": list(self.widths),
            "dilations": list(self.dilations),
            "tophat": list(self.tophat),
            "fill_levels": self.fill_levels,
            "fine_blocks": self.fine_blocks,
            "mask_grow": self.mask_grow,
        }

    @classmethod
    def grown_from(cls, base: MaskGuidedNet, fine_blocks: int = 0, mask_grow: int = 0) -> MaskGuidedNet:
        """A network with more ``fine_blocks`` or another ``mask_grow`` than ``base`` that starts from
        every weight of ``base``: new residual blocks start as the identity, so it computes what
        ``base`` computes, except that a grown mask (``mask_grow``) also repairs the fringe around
        each detection."""
        if type(base) is not cls:
            raise ValueError(f"grown_from needs a {cls.__name__}, got {type(base).__name__}")
        if fine_blocks < base.fine_blocks:
            raise ValueError("grown_from can only add fine blocks, not remove them")
        cfg = base.config() | {"fine_blocks": fine_blocks, "mask_grow": mask_grow}
        net = cls(**cfg)  # type: ignore[arg-type]
        result = net.load_state_dict(base.state_dict(), strict=False)  # only the new blocks are missing
        assert not result.unexpected_keys and all(k.startswith("fine_") for k in result.missing_keys)
        return net

    def forward(self, x: torch.Tensor):
        """Eval mode: ``(restored, mask)`` as in the module contract.

        Training mode: ``(restored, mask, mask_logits)`` with ``restored`` not clamped, so that no
        gradient is cut off by a saturated clamp and the loss can use the numerically stable
        logits; the first two entries mean the same as in eval mode. ``mask_logits`` are those of
        the mask before it is grown (``mask_grow``): the detection itself.
        """
        delta, logits = self.features(x)
        if self.training:
            return x + delta, torch.sigmoid(self.grow(logits)), logits
        return (x + delta).clamp(0.0, 1.0), torch.sigmoid(self.grow(logits))


class MatteGuidedNet(nn.Module):
    """A fill-and-refine :class:`MaskGuidedNet` that also takes a user's matte (``--matte``).

    Input ``(N, 5, H, W)``: the picture (RGB), the matte ``add`` (1: damage there) and ``keep``, the
    weight of the network's own detections (0: repair exactly the matte; 1: the matte added to
    what the network finds). Output as the network's: ``(restored, mask)``, the mask being the one
    the repair was made from, ``max(prob * keep, add)``. Same weights, same receptive radius.
    """

    has_mask = True
    in_channels = 5

    def __init__(self, base: MaskGuidedNet) -> None:
        super().__init__()
        if not getattr(base, "fill_levels", 0):
            raise ValueError("a matte needs a fill-and-refine network (fill_levels > 0)")
        self.base = base
        self.size_multiple = base.size_multiple
        self.receptive_radius = base.receptive_radius

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, guide = x[:, :3], x[:, 3:5]
        delta, logits = self.base.features(rgb, guide=guide)
        return (rgb + delta).clamp(0.0, 1.0), torch.sigmoid(logits)
