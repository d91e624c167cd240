"""InvResMaskNet: the default model's contract with a deeper, four-level detector for the same cost.

Tensor contract (as :class:`filmclean.nets.maskguided.MaskGuidedNet`)
---------------------------------------------------------------------
- input ``x``: ``(N, 3, H, W)`` float32/float16 RGB in ``[0, 1]``; ``H`` and ``W`` multiples of
  ``size_multiple`` (16);
- output ``(restored, mask)``: ``restored`` ``(N, 3, H, W)`` in ``[0, 1]`` is the repair (meaningful
  where damage is), ``mask`` ``(N, 1, H, W)`` in ``[0, 1]`` is the per-pixel damage probability.
  In training mode the mask logits (before the grown mask) come third.

Why: the single-frame detector keeps quiet wherever the picture is detailed (a hair across feathers,
a scratch over foliage) and cannot take in a blotch 40 px across; both call for more capacity at
fine scale and more field of view at coarse scale than ``MaskGuidedNet`` has within the 1.5 s per
1080p frame budget. Here the dense 3x3 residual blocks are replaced by inverted residual blocks
(1x1 expansion, 3x3 depthwise, 1x1 projection, as MobileNetV2), which cost a fraction of a dense
convolution per channel, so the same budget buys a wider 1/2-scale stage, several blocks at every
scale and a fourth level at 1/16 scale with dilated blocks (a receptive radius of about 290 px with the default settings).

Kept from ``MaskGuidedNet`` (inherited): the top-hat cues, the 2x2 fold of the picture, the mask
head, the fill-and-refine repair (:func:`filmclean.nets.maskguided.push_pull_fill`), the grown
mask and the eval/training outputs. No normalisation layers and no attention, so tiling is exact
given the overlap ``receptive_radius`` asks for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .maskguided import MaskGuidedNet, _conv, _ConvAct


class _InvertedResidual(nn.Module):
    """``x + project(depthwise(expand(x)))``; ``(N, c, H, W) -> (N, c, H, W)``."""

    def __init__(self, c: int, expand: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = c * expand
        self.expand = nn.Conv2d(c, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation, groups=hidden)
        self.project = nn.Conv2d(hidden, c, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.act(self.depthwise(self.act(self.expand(x)))))


def _as_levels(name: str, value: Sequence[object], n: int = 4) -> list:
    if len(value) != n:
        raise ValueError(f"{name} needs {n} entries (one per scale 1/2, 1/4, 1/8, 1/16), got {len(value)}")
    return list(value)


class InvResMaskNet(MaskGuidedNet):
    """Mask-guided network with an inverted-residual encoder/decoder at 1/2, 1/4, 1/8 and 1/16 scale.

    Args:
        widths: channels at 1/2, 1/4, 1/8 and 1/16 scale.
        expand: expansion factor of the inverted residual blocks at each scale.
        enc_dilations: per scale, the dilation of each encoder block (its length is the number of
            blocks at that scale).
        dec_blocks: inverted residual blocks after each skip addition at 1/8, 1/4 and 1/2 scale
            (listed from fine to coarse: 1/2, 1/4, 1/8).
        tophat: sizes of the top-hat cue maps.
        fill_levels: levels of the push-pull fill of the repair (1..8).
        mask_grow: the mask is grown by this many pixels before the fill and in the output.
        refine_width: channels of the refine convolution.
    """

    #: Train in channels-last layout on a CPU (:func:`filmclean.train.loop.train`): its depthwise
    #: convolutions run 1.5-2.7x faster so, a whole training step about 1.2x (2 AVX2 cores); dense
    #: networks such as :class:`MaskGuidedNet` run slower so and keep the default layout.
    train_channels_last = True

    def __init__(
        self,
        widths: Sequence[int] = (32, 48, 96, 128),
        expand: Sequence[int] = (2, 3, 4, 4),
        enc_dilations: Sequence[Sequence[int]] = ((1, 1, 1), (1, 2, 1), (1, 2, 4), (1, 2, 4)),
        dec_blocks: Sequence[int] = (2, 1, 1),
        tophat: Sequence[int] = (5, 11),
        fill_levels: int = 3,
        mask_grow: int = 1,
        refine_width: int = 24,
    ) -> None:
        nn.Module.__init__(self)  # the layers differ from MaskGuidedNet's; only its methods are shared
        self.widths = tuple(int(c) for c in _as_levels("widths", widths))  # type: ignore[assignment]
        self.expand = tuple(int(e) for e in _as_levels("expand", expand))
        self.enc_dilations = tuple(tuple(int(d) for d in ds) for ds in _as_levels("enc_dilations", enc_dilations))
        self.dec_blocks = tuple(int(b) for b in _as_levels("dec_blocks", dec_blocks, 3))
        self.tophat = tuple(int(k) for k in tophat)
        self.fill_levels, self.mask_grow = int(fill_levels), int(mask_grow)
        self.fine_blocks = 0
        self.refine_width = int(refine_width)
        if not all(1 <= c <= 512 for c in self.widths) or not all(1 <= e <= 8 for e in self.expand):
            raise ValueError(f"widths must be 1..512 and expand 1..8, got {widths} and {expand}")
        if not all(1 <= len(ds) <= 8 and all(1 <= d <= 16 for d in ds) for ds in self.enc_dilations):
            raise ValueError(f"enc_dilations needs 1..8 blocks of dilation 1..16 per scale, got {enc_dilations}")
        if not all(0 <= b <= 8 for b in self.dec_blocks):
            raise ValueError(f"dec_blocks must be 0..8, got {dec_blocks}")
        if not 1 <= self.fill_levels <= 8:
            raise ValueError(f"fill_levels must be 1..8, got {fill_levels}")
        if not 0 <= self.mask_grow <= 4:
            raise ValueError(f"mask_grow must be 0..4, got {mask_grow}")
        if not 1 <= self.refine_width <= 256:
            raise ValueError(f"refine_width must be 1..256, got {refine_width}")
        self.size_multiple = max(16, 2**self.fill_levels)
        c = self.widths
        cues = 4 * 2 * len(self.tophat)
        self.stem = _ConvAct(12 + cues, c[0])  # 1/2 scale: the folded picture and cues
        self.enc = nn.ModuleList(
            nn.Sequential(*[_InvertedResidual(c[i], self.expand[i], d) for d in self.enc_dilations[i]])
            for i in range(4)
        )
        self.down = nn.ModuleList(_ConvAct(c[i], c[i + 1], 3, 2) for i in range(3))
        self.up = nn.ModuleList(nn.Conv2d(c[i + 1], c[i], 1) for i in range(3))
        self.dec = nn.ModuleList(
            nn.Sequential(*[_InvertedResidual(c[i], self.expand[i]) for _ in range(self.dec_blocks[i])])
            for i in range(3)
        )
        self.mask_head = _conv(c[0] + 12, 4)
        self.refine = nn.Sequential(_ConvAct(c[0] + 12 + 12 + 4, self.refine_width), _conv(self.refine_width, 12))
        self.receptive_radius = self._radius()
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=0.1, nonlinearity="leaky_relu")
                assert mod.bias is not None
                nn.init.zeros_(mod.bias)
        for last in (self.mask_head, self.refine[1]):
            nn.init.normal_(last.weight, std=1e-3)  # type: ignore[arg-type]
        for mod in self.modules():
            if isinstance(mod, _InvertedResidual):
                nn.init.zeros_(mod.project.weight)  # every block starts as the identity

    def _radius(self) -> int:
        """An upper bound of how far (full-resolution pixels) an output pixel sees."""
        scale = (2, 4, 8, 16)
        r = 2  # stem (3x3 at 1/2)
        for i in range(4):
            r += sum(scale[i] * d for d in self.enc_dilations[i])  # one depthwise 3x3 per block
            if i < 3:
                r += scale[i]  # the stride-2 3x3 convolution reads its input at scale[i]
        for i in range(3):
            r += scale[i + 1]  # nearest upsampling from scale[i + 1]
            r += scale[i] * self.dec_blocks[i]
        r += 2 + 2  # mask head at 1/2 and the 2x2 fold / unfold
        r += max(self.tophat, default=0) - 1
        r += 2 * self.mask_grow
        r += int(sum(1.5 * 2**lv for lv in range(1, self.fill_levels + 1))) + 1 + 4
        return int(r)

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d1, x2)``: decoder features ``(N, widths[0], H/2, W/2)`` and the 2x2-folded picture."""
        x2 = F.pixel_unshuffle(x, 2)
        cues = F.pixel_unshuffle(self.cues(x), 2) * 4.0
        skips = [self.enc[0](self.stem(torch.cat([x2, cues], dim=1)))]
        for i in range(3):
            skips.append(self.enc[i + 1](self.down[i](skips[-1])))
        d = skips[3]
        for i in (2, 1, 0):
            d = self.dec[i](F.interpolate(self.up[i](d), scale_factor=2.0, mode="nearest") + skips[i])
        return d, x2

    def config(self) -> dict[str, object]:
        """The constructor's keyword arguments that rebuild this network."""
        return {
            "widths": list(self.widths),
            "expand": list(self.expand),
            "enc_dilations": [list(ds) for ds in self.enc_dilations],
            "dec_blocks": list(self.dec_blocks),
            "tophat": list(self.tophat),
            "fill_levels": self.fill_levels,
            "mask_grow": self.mask_grow,
            "refine_width": self.refine_width,
        }

    @classmethod
    def from_base(cls, base: MaskGuidedNet, fill_levels: int) -> MaskGuidedNet:
        raise ValueError(f"{cls.__name__} always has the fill; it is not built from a network without one")

    @classmethod
    def grown_from(cls, base: MaskGuidedNet, fine_blocks: int = 0, mask_grow: int = 0) -> MaskGuidedNet:
        raise ValueError(f"{cls.__name__} is not grown from another network; train it from the start")
