"""Validation: the SSIM of what ``filmclean restore`` would make of the validation images.

A mask network's output ``(repair, damage probability)`` is scored as inference composites it
(:func:`filmclean.engine.composite`): the repair where the probability is at least the threshold
(inference's default, :data:`VALID_THRESHOLD`), the untouched input elsewhere -- not the soft
``input + p * (repair - input)`` the losses train on, so that the checkpoint kept as the best
model is the one that restores best as users run it.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from filmclean.engine import RestoreOptions, composite

from .config import TrainConfig
from .sampling import make_loader
from .session import DistInfo, autocast

#: the damage probability at or above which validation takes a mask network's repair: the default
#: of inference (``filmclean.engine.RestoreOptions.threshold``, the CLI's ``--threshold``), 0.5
VALID_THRESHOLD: float = RestoreOptions().threshold


class BestModel(TypedDict):
    """The validation result a model was kept for (``best`` of the train state, JSON)."""

    size: int
    ssim: float
    input_ssim: float
    stage: int
    epoch: int
    step: int


def restored_output(net_out: Any, rgb: torch.Tensor, threshold: float = VALID_THRESHOLD) -> torch.Tensor:
    """The image inference makes of a network output for the input ``rgb`` ``(N, 3, H, W)``: a plain
    network's output clipped to ``[0, 1]``; for ``(repair, prob)`` (``prob`` ``(N, 1, H, W)``),
    :func:`filmclean.engine.composite` at ``threshold`` (computed there, on the CPU). Float32 on
    ``rgb``'s device."""
    if not isinstance(net_out, (tuple, list)):
        return net_out.float().clamp(0.0, 1.0)
    repair, prob = net_out[0], net_out[1]
    x = rgb.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    r = repair.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    p = prob.detach().float()[:, 0].cpu().numpy()
    out = composite(x, r, p, threshold)  # (N, H, W, 3): broadcasts like one (H, W, 3) frame
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(rgb.device)


def _broadcast_buffers(net: nn.Module, di: DistInfo) -> None:
    """Under DDP: every rank validates (and rank 0 saves) the same network, rank 0's buffers."""
    if di.enabled:
        import torch.distributed as dist

        for buf in net.buffers():
            dist.broadcast(buf, 0)


@torch.no_grad()
def validate(
    net: nn.Module,
    ds: Dataset,
    batch_size: int,
    device: torch.device,
    config: TrainConfig,
    di: DistInfo,
    threshold: float = VALID_THRESHOLD,
) -> dict[str, float]:
    """Mean SSIM (kornia, 11x11 Gaussian window) of the restored images (:func:`restored_output`)
    and of the damaged validation images against their targets: ``{"ssim", "input_ssim", "count"}``.
    Sharded over processes and summed, so every rank gets the same numbers."""
    import kornia

    _broadcast_buffers(net, di)
    was_training = net.training
    net.eval()
    indices = list(range(di.rank, len(ds), di.world))
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    if indices:
        loader = make_loader(Subset(ds, indices), batch_size, None, config, device, False, config.seed)
        for batch in loader:
            x = batch["input"].to(device, non_blocking=True)
            y = batch["target"].to(device, non_blocking=True)
            with autocast(device, config.amp):
                out = net(x)
            rgb = x[:, :3]  # temporal inputs: the current frame, then its aligned neighbours and trusts
            restored = restored_output(out, rgb, threshold)
            s_out = kornia.metrics.ssim(restored, y, 11).mean(dim=(1, 2, 3))
            s_in = kornia.metrics.ssim(rgb, y, 11).mean(dim=(1, 2, 3))
            count = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=device)
            sums += torch.stack([s_out.double().sum(), s_in.double().sum(), count])
    if di.enabled:
        import torch.distributed as dist

        dist.all_reduce(sums)
    net.train(was_training)
    n = max(1.0, float(sums[2]))
    return {"ssim": float(sums[0]) / n, "input_ssim": float(sums[1]) / n, "count": int(sums[2])}


def is_better(candidate: BestModel, best: BestModel | None) -> bool:
    """Whether ``candidate`` beats ``best``: a larger training size wins, then a higher SSIM."""
    if best is None:
        return True
    return (candidate["size"], candidate["ssim"]) > (best["size"], best["ssim"])


__all__ = ["VALID_THRESHOLD", "BestModel", "is_better", "restored_output", "validate"]
