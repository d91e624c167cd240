"""TemporalMaskGuidedNet: the default model's design, also shown the motion-compensated neighbours.

Tensor contract
---------------
- input ``x``: ``(N, 11, H, W)`` float32/float16, all channels in ``[0, 1]`` (the stack of
  :func:`filmclean.temporal.build_stack`): current frame RGB (0-2), previous frame warped onto it
  (3-5), next frame warped onto it (6-8), trust in the previous (9) and next (10) neighbour;
  ``H`` and ``W`` multiples of ``size_multiple`` (8);
- output ``(restored, mask)`` of the *current* frame, exactly as
  :class:`filmclean.nets.maskguided.MaskGuidedNet`: ``(N, 3, H, W)`` repair in ``[0, 1]`` and
  ``(N, 1, H, W)`` damage probability in ``[0, 1]``. Training mode returns
  ``(restored_unclamped, mask, mask_logits)``.

Design: the single-frame network with two additions at its two ends, nothing in between. The stem
also takes the pixel-unshuffled neighbours and trusts, and three temporal cues of the luminance
``y``: ``t_p = c_p (y - y_p)``, ``t_n = c_n (y - y_n)`` (how much the current pixel departs from each
trusted neighbour) and the *spike* ``sign(t_p) min(|t_p|, |t_n|)`` where both depart the same way
(the classical spike-detection index: dust is in this frame only). The head also sees the
neighbours at full resolution, so the repair can copy the picture a neighbour shows under the dust.
A scratch that stays in place across frames is in the neighbours too, so no temporal cue fires
there and the network must repair it from the current frame alone, like the single-frame network.

:meth:`TemporalMaskGuidedNet.from_single` builds one from a trained single-frame network with the
new input weights set to zero, so that before any training it computes exactly what the
single-frame network computes (fine-tuning starts from the shipped model's quality, never below).
The receptive radius is the single-frame network's: the neighbours are aligned outside the network.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from ..temporal import CURRENT, NEIGHBOURS, NEXT_RGB, NEXT_TRUST, PREV_RGB, PREV_TRUST
from .maskguided import MaskGuidedNet, _conv, _ConvAct

EXTRA = 8  # neighbour RGB x 2 + trust x 2
TEMPORAL_CUES = 3


class TemporalMaskGuidedNet(MaskGuidedNet):
    """Mask-guided restoration of the current frame from the 11-channel stack (see module docstring).

    Args: as :class:`MaskGuidedNet` (``widths``, ``dilations``, ``tophat``, ``fill_levels``). With
    ``fill_levels > 0`` the fill is made from the current frame and both the mask head and the
    refine also see the aligned neighbours and trusts (appended after the single-frame inputs).
    """

    in_channels = 11

    def __init__(
        self,
        widths: tuple[int, int, int] | list[int] = (24, 48, 96),
        dilations: tuple[int, ...] | list[int] = (1, 2, 4),
        tophat: tuple[int, ...] | list[int] = (5, 11),
        fill_levels: int = 0,
    ) -> None:
        super().__init__(widths, dilations, tophat, fill_levels)
        c1 = self.widths[0]
        self.n_single_stem = 12 + 4 * 2 * len(self.tophat)
        self.stem = _ConvAct(self.n_single_stem + 4 * EXTRA + 4 * TEMPORAL_CUES, c1)
        new: tuple[nn.Conv2d, ...]
        last: tuple[nn.Conv2d, ...]
        stem_conv = cast(nn.Conv2d, self.stem[0])
        if self.fill_levels:
            self.mask_head = _conv(c1 + 12 + 4 * EXTRA, 4)
            self.refine = nn.Sequential(_ConvAct(c1 + 12 + 12 + 4 + 4 * EXTRA, c1), _conv(c1, 12))
            refine_in = cast(nn.Conv2d, cast(_ConvAct, self.refine[0])[0])
            refine_out = cast(nn.Conv2d, self.refine[1])
            new, last = (stem_conv, self.mask_head, refine_in, refine_out), (self.mask_head, refine_out)
        else:
            self.head = _conv(c1 + 12 + 4 * EXTRA, 16)
            new, last = (stem_conv, self.head), (self.head,)
        for conv in new:
            nn.init.kaiming_normal_(conv.weight, a=0.1, nonlinearity="leaky_relu")
            assert conv.bias is not None  # every conv here is made with a bias
            nn.init.zeros_(conv.bias)
        for conv in last:
            nn.init.normal_(conv.weight, std=1e-3)

    @staticmethod
    def temporal_cues(x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` from the ``(N, 11, H, W)`` stack: trusted departures from the previous and
        next frame, and the spike."""
        y = x[:, CURRENT].mean(dim=1, keepdim=True)
        yp = x[:, PREV_RGB].mean(dim=1, keepdim=True)
        yn = x[:, NEXT_RGB].mean(dim=1, keepdim=True)
        tp = x[:, PREV_TRUST] * (y - yp)
        tn = x[:, NEXT_TRUST] * (y - yn)
        same = (tp * tn > 0).to(x.dtype)
        spike = same * torch.sign(tp) * torch.minimum(tp.abs(), tn.abs())
        return torch.cat([tp, tn, spike], dim=1)

    def features(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cur = x[:, CURRENT]
        x2 = F.pixel_unshuffle(cur, 2)
        extra2 = F.pixel_unshuffle(x[:, NEIGHBOURS], 2)
        cues = F.pixel_unshuffle(self.cues(cur), 2) * 4.0
        tcues = F.pixel_unshuffle(self.temporal_cues(x), 2) * 4.0
        e1 = self.enc1(self.stem(torch.cat([x2, cues, extra2, tcues], dim=1)))
        e2 = self.enc2(self.down2(e1))
        e3 = self.mid(self.down3(e2))
        d2 = self.dec2(F.interpolate(self.up3(e3), scale_factor=2.0, mode="nearest") + e2)
        d1 = self.dec1(F.interpolate(self.up2(d2), scale_factor=2.0, mode="nearest") + e1)
        return self.heads(d1, cur, x2, extra2, guide=guide)

    def forward(self, x: torch.Tensor):
        delta, logits = self.features(x)
        restored = x[:, CURRENT] + delta
        if self.training:
            return restored, torch.sigmoid(logits), logits
        return restored.clamp(0.0, 1.0), torch.sigmoid(logits)

    @classmethod
    def from_single(cls, single: MaskGuidedNet) -> TemporalMaskGuidedNet:
        """A temporal network computing exactly what ``single`` computes (new input weights zero)."""
        if single.fine_blocks or single.mask_grow:
            raise ValueError("a temporal network is built from a single-frame one without fine_blocks or mask_grow")
        net = cls(single.widths, single.dilations, single.tophat, fill_levels=single.fill_levels)
        src = single.state_dict()
        dst = net.state_dict()
        with torch.no_grad():
            for name, value in src.items():
                target = dst[name]
                if target.shape == value.shape:
                    target.copy_(value)
                elif name in ("stem.0.weight", "head.weight", "mask_head.weight", "refine.0.0.weight"):
                    target.zero_()
                    target[:, : value.shape[1]].copy_(value)
                else:  # pragma: no cover - the two architectures differ only there
                    raise ValueError(f"cannot map {name}: {tuple(value.shape)} -> {tuple(target.shape)}")
        net.load_state_dict(dst)
        return net
