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

Detection cues: besides the picture, the network sees morphological top-hat maps of the luminance
at two scales (closing minus picture for dark specks, picture minus opening for light ones, made
with max-pooling). These are the classical dust detectors and let the network learn what dust
looks like from far fewer examples than it would need to discover them itself.
"""

from __future__ import annotations

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


class MaskGuidedNet(nn.Module):
    """Mask-predicting restoration network (see module docstring for the contract).

    Args:
        widths: channels at 1/2, 1/4 and 1/8 scale.
        dilations: dilation of each residual block at 1/8 scale (context for large damage).
    """

    has_mask = True
    size_multiple = 8

    def __init__(self, widths: tuple[int, int, int] | list[int] = (24, 48, 96),
                 dilations: tuple[int, ...] | list[int] = (1, 2, 4),
                 tophat: tuple[int, ...] | list[int] = (5, 11)) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in widths)
        self.widths = (c1, c2, c3)
        self.dilations = tuple(int(d) for d in dilations)
        self.tophat = tuple(int(k) for k in tophat)
        cues = 4 * 2 * len(self.tophat)           # dark + light top-hat per scale, unshuffled 2x2
        self.stem = _ConvAct(12 + cues, c1)       # 1/2 scale (pixel-unshuffled input + cues)
        self.enc1 = _ConvAct(c1, c1)
        self.down2 = _ConvAct(c1, c2, 3, 2)       # 1/4
        self.enc2 = _ConvAct(c2, c2)
        self.down3 = _ConvAct(c2, c3, 3, 2)       # 1/8
        self.mid = nn.Sequential(*[_ResBlock(c3, d) for d in self.dilations])
        self.up3 = nn.Conv2d(c3, c2, 1)
        self.dec2 = _ConvAct(c2, c2)
        self.up2 = nn.Conv2d(c2, c1, 1)
        self.dec1 = _ConvAct(c1, c1)
        self.head = _conv(c1 + 12, 16)            # 12 = RGB residual x 4 sub-pixels, 4 = mask logits x 4
        # receptive radius in full-resolution pixels (each 3x3 conv at scale s adds s * dilation)
        r = 2 * 2  # stem + enc1 at 1/2
        r += 2 + 4  # down2 (stride conv at 1/2 input) + enc2 at 1/4
        r += 4  # down3
        r += sum(2 * 8 * d for d in self.dilations)  # two convs per residual block at 1/8
        r += 4 + 2 + 2  # dec2 at 1/4, dec1 at 1/2, head at 1/2
        r += 8  # nearest upsampling and the 2x2 fold
        r += max(self.tophat, default=0) - 1  # closing/opening = two poolings of radius k // 2
        self.receptive_radius = int(r)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.head.weight, std=1e-3)

    def cues(self, x: torch.Tensor) -> torch.Tensor:
        """Top-hat maps ``(N, 2 * len(tophat), H, W)`` of the luminance (dark then light per scale)."""
        y = x.mean(dim=1, keepdim=True)
        maps = []
        for k in self.tophat:
            p = k // 2
            closing = -F.max_pool2d(-F.max_pool2d(y, k, 1, p), k, 1, p)
            opening = F.max_pool2d(-F.max_pool2d(-y, k, 1, p), k, 1, p)
            maps += [closing - y, y - opening]
        return torch.cat(maps, dim=1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(delta, mask_logits)`` at full resolution: ``(N,3,H,W)`` and ``(N,1,H,W)``."""
        x2 = F.pixel_unshuffle(x, 2)
        cues = F.pixel_unshuffle(self.cues(x), 2) * 4.0
        e1 = self.enc1(self.stem(torch.cat([x2, cues], dim=1)))
        e2 = self.enc2(self.down2(e1))
        e3 = self.mid(self.down3(e2))
        d2 = self.dec2(F.interpolate(self.up3(e3), scale_factor=2.0, mode="nearest") + e2)
        d1 = self.dec1(F.interpolate(self.up2(d2), scale_factor=2.0, mode="nearest") + e1)
        out = self.head(torch.cat([d1, x2], dim=1))
        delta = F.pixel_shuffle(out[:, :12], 2)
        logits = F.pixel_shuffle(out[:, 12:], 2)
        return delta, logits

    def forward(self, x: torch.Tensor):
        """Eval mode: ``(restored, mask)`` as in the module contract.

        Training mode: ``(restored, mask, mask_logits)`` with ``restored`` not clamped, so that no
        gradient is cut off by a saturated clamp and the loss can use the numerically stable
        logits; the first two entries mean the same as in eval mode.
        """
        delta, logits = self.features(x)
        if self.training:
            return x + delta, torch.sigmoid(logits), logits
        return (x + delta).clamp(0.0, 1.0), torch.sigmoid(logits)

    @staticmethod
    def composite(x: torch.Tensor, restored: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Soft mask-guided output used in training: ``x + mask * (restored - x)``."""
        return x + mask * (restored - x)
