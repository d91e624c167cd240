"""How a run executes in its process: the process group and device, mixed precision, deferred
Ctrl-C / SIGTERM, and the progress display.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised (NCCL on
CUDA, Gloo on CPU) unless the caller already did (:func:`setup_distributed`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

import torch

from filmclean.errors import InputError

# -- distributed / device ------------------------------------------------------------------------


@dataclass
class DistInfo:
    """Process-group facts for this process (``world == 1`` and ``enabled`` False when alone)."""

    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment).

    ``device`` is the config's device (``auto``, ``cpu``, ``cuda``): CUDA uses NCCL, CPU uses Gloo.
    An already initialised default group is used as it is.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    initialized_here = False
    if not dist.is_initialized():
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        initialized_here = True
    return DistInfo(True, dist.get_rank(), dist.get_world_size(), local_rank, initialized_here)


def resolve_device(name: str, di: DistInfo) -> torch.device:
    """``auto`` -> CUDA when available else CPU; under DDP on CUDA, ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device 'cuda' requested but no CUDA device is available")
        return torch.device("cuda", di.local_rank if di.enabled else torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool, di: DistInfo, device: torch.device) -> bool:
    """``flag`` of this process, or under DDP whether it is true on any rank (every rank gets the same)."""
    if not di.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(di: DistInfo) -> None:
    """Wait for every rank (nothing when alone)."""
    if di.enabled:
        import torch.distributed as dist

        dist.barrier()


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast to ``amp`` (``bf16`` or ``fp16``) on ``device``'s type; nothing for ``off``."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


# -- interrupt handling --------------------------------------------------------------------------


class GracefulInterrupt:
    """While active (main thread only), the first SIGINT or SIGTERM sets :attr:`requested` instead
    of ending the process; a second SIGINT raises ``KeyboardInterrupt`` at once (a second SIGTERM
    gets the previous handler's behaviour)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        else:
            signal.signal(signum, self._old.get(signum) or signal.SIG_DFL)

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


# -- progress -----------------------------------------------------------------------------------


class Progress:
    """A rich progress bar per epoch (steps, loss, images/s); silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[ips]} img/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def start_epoch(self, description: str, total: int, done: int) -> None:
        if self._p is not None:
            if self._task is not None:
                self._p.remove_task(self._task)
            self._task = self._p.add_task(description, total=total, completed=done, loss="-", ips="-")

    def advance(self, loss: float, ips: float) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, loss=f"{loss:.4f}", ips=f"{ips:.1f}")

    def log(self, text: str) -> None:
        if self._p is not None:
            self._p.console.print(text)


__all__ = [
    "DistInfo",
    "GracefulInterrupt",
    "Progress",
    "any_rank",
    "autocast",
    "barrier",
    "resolve_device",
    "setup_distributed",
]
