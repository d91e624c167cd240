"""Loss for mask-guided networks (:class:`filmclean.nets.maskguided.MaskGuidedNet`).

Called like every loss in :mod:`filmclean.train.losses`: ``loss(net_out, batch) -> (total, terms)``
with ``net_out = (restored, mask)`` -- ``(N,3,H,W)`` and ``(N,1,H,W)`` in ``[0,1]`` -- and ``batch``
holding ``input``, ``target`` (``(N,3,H,W)`` in ``[0,1]``) and ``mask`` (``(N,1,H,W)``, the true
damage opacity from the synthesis; ``> 0`` exactly where pixels were changed).
A temporal network's ``input`` is the 11-channel stack of :func:`filmclean.temporal.build_stack`;
only its channels 0-2 (the current frame) are used here.

Terms (all means over the batch):

- ``bce``: binary cross-entropy of the predicted mask against ``mask >= min_opacity`` (visible
  damage), positives weighted by ``pos_weight``; pixels with faint damage (``0 < mask <
  min_opacity``) are left out of this term (no reliable label: they may be called either way);
- ``dice``: soft Dice loss of the same (keeps thin scratches and specks from being ignored); both
  score the detection itself (the logits), before a network's ``mask_grow`` widens it;
- ``out_l1``: L1 between the soft composite ``x + m (r - x)`` and the clean target, all pixels;
- ``out_ssim``: ``1 - SSIM`` (kornia, 7x7 Gaussian window) of the composite vs the target;
- ``repair_l1``: L1 of the raw repair ``r`` vs the target inside the true mask dilated by
  ``dilate`` pixels (so ``r`` is a good repair wherever the thresholded mask may put it);
- ``keep_l1``: L1 of ``r`` vs the target elsewhere (so a false detection does little harm).

``total = w_bce*bce + w_dice*dice + w_out*out_l1 + w_ssim*out_ssim + w_repair*repair_l1 + w_keep*keep_l1``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MaskGuidedLoss(nn.Module):
    def __init__(
        self,
        pos_weight: float = 1.0,
        min_opacity: float = 0.1,
        dilate: int = 2,
        w_bce: float = 1.0,
        w_dice: float = 0.5,
        w_out: float = 10.0,
        w_ssim: float = 2.0,
        w_repair: float = 4.0,
        w_keep: float = 0.5,
    ) -> None:
        super().__init__()
        self.pos_weight = float(pos_weight)
        self.min_opacity = float(min_opacity)
        self.dilate = int(dilate)
        self.w = dict(bce=w_bce, dice=w_dice, out_l1=w_out, out_ssim=w_ssim, repair_l1=w_repair, keep_l1=w_keep)

    def forward(self, net_out, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        import kornia

        # in float32 even under mixed precision: sums over whole crops need more than bfloat16's 8 bits
        restored, prob = net_out[0].float(), net_out[1].float()
        logits = net_out[2].float() if len(net_out) > 2 else torch.logit(prob.clamp(1e-6, 1 - 1e-6))
        x, y = batch["input"][:, :3], batch["target"]  # a temporal stack's current frame is channels 0-2
        opacity = batch["mask"].to(prob.dtype)
        true = (opacity >= self.min_opacity).to(prob.dtype)
        faint = ((opacity > 0) & (opacity < self.min_opacity)).to(prob.dtype)
        p = torch.sigmoid(logits) if len(net_out) > 2 else prob  # the detection, before any grown fringe
        weight = (1.0 + (self.pos_weight - 1.0) * true) * (1.0 - faint)
        bce = F.binary_cross_entropy_with_logits(logits, true, weight=weight, reduction="sum") / weight.sum().clamp_min(
            1.0
        )
        inter = (p * true).sum(dim=(1, 2, 3))
        dice = 1.0 - ((2 * inter + 1.0) / (p.sum(dim=(1, 2, 3)) + true.sum(dim=(1, 2, 3)) + 1.0)).mean()
        with torch.set_grad_enabled(torch.is_grad_enabled() and (self.w["out_l1"] > 0 or self.w["out_ssim"] > 0)):
            # terms weighted 0 are still reported, but no gradient is traced through them
            out = (x + prob * (restored - x)).clamp(0.0, 1.0)
            out_l1 = (out - y).abs().mean()
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.w["out_ssim"] > 0):
                out_ssim = 1.0 - kornia.metrics.ssim(out, y, 7).mean()
        k = 2 * self.dilate + 1
        damaged = (opacity > 0).to(prob.dtype)
        region = F.max_pool2d(damaged, k, stride=1, padding=self.dilate) if self.dilate > 0 else damaged
        err = (restored - y).abs().mean(dim=1, keepdim=True)
        repair_l1 = (err * region).sum() / region.sum().clamp_min(1.0)
        keep_l1 = (err * (1 - region)).sum() / (1 - region).sum().clamp_min(1.0)
        terms = dict(bce=bce, dice=dice, out_l1=out_l1, out_ssim=out_ssim, repair_l1=repair_l1, keep_l1=keep_l1)
        total = sum((self.w[k] * v for k, v in terms.items() if self.w[k] != 0), logits.new_zeros(()))
        return total, {k: float(v.detach()) for k, v in terms.items()}
