"""The training loop: progressive one-cycle stages, exact resume, DDP, best-model export.

Files in ``run_dir`` (only rank 0 writes; every write is atomic, temp name then rename):

- ``config.json``: the run's :class:`~filmclean.train.config.TrainConfig`;
- ``checkpoint.safetensors``: everything needed to continue -- tensors ``model.<key>`` (the
  network's state dict) and ``optim.<param index>.<name>`` (AdamW state), metadata
  ``filmclean.train_state`` (JSON: position, step, optimizer hyper-parameters, scheduler and
  grad-scaler state, Python / NumPy / torch RNG states, best metric) and
  ``filmclean.train_config`` (the config JSON). Nothing is pickled. Written every
  ``checkpoint_every`` steps, at every epoch end, on ``max_steps`` and on a graceful Ctrl-C;
- ``state.json``: the same train state as readable JSON, written right after the checkpoint;
- ``metrics.jsonl``: one JSON object per line, ``kind`` ``train`` (every ``log_every`` steps:
  loss, loss terms, learning rate, images/s) or ``valid`` (every epoch end: SSIM of the restored
  and of the damaged validation images, mean training loss);
- ``model.safetensors``: the best network so far, a filmclean model file
  (:func:`filmclean.modelfile.save_model`) usable as ``filmclean restore --model``. "Best" compares
  ``(training size, validation SSIM)``: a model validated at a larger size beats any model
  validated at a smaller one; at equal size the higher SSIM wins. Without validation data it is
  the latest epoch's network.

Exact resume. Every random choice of the data pipeline is a pure function of ``(seed, epoch,
index)`` (see :mod:`filmclean.train.data`), the order of an epoch is a function of ``(seed, epoch)``
(``DistributedSampler``), and DataLoaders get their own generators so they never draw from the
global torch RNG. A checkpoint stores the position ``(stage, epoch, batches done)``, the weights,
the optimizer, scheduler and scaler states and the global RNG states at that point; a resumed run
restores them and skips the batches already seen (the sampler starts past them, nothing is
loaded), so on the same device and thread settings it continues bit-identically. A
``KeyboardInterrupt`` raised inside a step leaves the last checkpoint in place (a half-done step is
never saved); a SIGINT (Ctrl-C) or SIGTERM (a scheduler's pre-emption, torchrun shutting down) is
deferred until the running step has finished, then a checkpoint is written and
``KeyboardInterrupt`` raised. Lines of ``metrics.jsonl`` written after the
checkpoint that is resumed from are dropped.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised (NCCL on
CUDA, Gloo on CPU) unless the caller already did; each process loads its own shard of every epoch
(``batch_size`` is per process), the network is wrapped in ``DistributedDataParallel`` afresh for
each stage (so the frozen/unfrozen parameter set is right), validation is sharded and summed, and
only rank 0 writes files; every rank reads the checkpoint, so ``run_dir`` must be on a file system
they share. :func:`train` enters and (on success) leaves with a barrier, so a later call never
reads files that rank 0 is still writing.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from filmclean.errors import FilmcleanError, InputError, ModelError, OutputError
from filmclean.modelfile import (
    CHECKPOINT_FORMAT,
    META_CHECKPOINT_FORMAT,
    META_TRAIN_ARCH,
    META_TRAIN_ARCH_CONFIG,
    checkpoint_network,
    is_training_checkpoint,
)

from .config import TrainConfig
from .data import OnTheFlyDataset, PairsDataset, list_clean_names, split_names

CHECKPOINT_NAME = "checkpoint.safetensors"
STATE_NAME = "state.json"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
MODEL_NAME = "model.safetensors"
META_STATE = "filmclean.train_state"
META_CONFIG = "filmclean.train_config"
META_FORMAT = META_CHECKPOINT_FORMAT
META_ARCH = META_TRAIN_ARCH
META_ARCH_CONFIG = META_TRAIN_ARCH_CONFIG


# -- distributed / device -----------------------------------------------------------------------


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


# -- RNG state ------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The global RNG states as JSON values (torch states base64-encoded)."""
    py = random.getstate()
    npst = np.random.get_state()
    out: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }
    if device.type == "cuda":
        out["cuda"] = base64.b64encode(torch.cuda.get_rng_state(device).numpy().tobytes()).decode("ascii")
    return out


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    nps = state["numpy"]
    np.random.set_state((nps[0], np.asarray(nps[1], dtype=np.uint32), nps[2], nps[3], nps[4]))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["cuda"])), dtype=torch.uint8), device)


# -- files ------------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    """Optimizer / scheduler / scaler state values as JSON (tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError("only scalar tensors can be stored as JSON")
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint without pickling")


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (``optim.<idx>.<name>``) and JSON (groups, scalars)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = _jsonable(value)
    groups = [_jsonable(g) for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _groups_from_json(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for g in groups:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        out.append(g)
    return out


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": _groups_from_json(meta["param_groups"])}


def write_checkpoint(run_dir: Path, net: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any], config: TrainConfig) -> None:
    """Write ``checkpoint.safetensors`` then ``state.json`` (each atomically)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_to_flat(opt)
    tensors.update(opt_tensors)
    state = dict(state, optimizer=opt_meta)
    meta = {
        META_FORMAT: CHECKPOINT_FORMAT,
        META_STATE: json.dumps(state, sort_keys=True),
        META_CONFIG: config.to_json(),
        META_ARCH: config.arch,
        META_ARCH_CONFIG: json.dumps(config.arch_config, sort_keys=True),
    }
    path = run_dir / CHECKPOINT_NAME
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    _atomic_write_text(run_dir / STATE_NAME, json.dumps(dict(state, checkpoint=CHECKPOINT_NAME), indent=1, sort_keys=True) + "\n")


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], TrainConfig]:
    """``(tensors, train_state, config)`` of a training checkpoint (raises :class:`ModelError`)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError("training checkpoint not found", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get(META_FORMAT) != CHECKPOINT_FORMAT:
            raise ModelError("not a filmclean training checkpoint", path)
        state = json.loads(meta[META_STATE])
        config = TrainConfig.from_json(meta[META_CONFIG])
        tensors = load_file(str(path))
    except FilmcleanError as exc:
        raise ModelError(str(exc), path) from None
    except Exception as exc:
        raise ModelError(f"unreadable training checkpoint ({type(exc).__name__}: {exc})", path) from None
    return tensors, state, config


def network_from_checkpoint(path: str | Path) -> tuple[nn.Module, str, dict[str, Any]]:
    """Rebuild the network stored in a training checkpoint: ``(net in eval mode on CPU, arch, config)``."""
    return checkpoint_network(path)


# -- data ---------------------------------------------------------------------------------------------


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by ``seed + epoch``) that starts ``skip`` samples into its
    per-process order, so a resumed epoch continues with exactly the batches not yet seen."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, epoch: int, skip: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


@contextlib.contextmanager
def _opencv_single_threaded(enabled: bool) -> Iterator[None]:
    """While active (when ``enabled``), OpenCV runs one thread in this process, and so in the
    DataLoader workers forked from it: they inherit the setting (reconfiguring OpenCV inside a
    forked worker can hang, see :func:`_worker_init`), and many workers each running a pool of
    every core would only oversubscribe the CPU. The previous setting is restored on exit."""
    if not enabled:
        yield
        return
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv-python-headless is a dependency
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _worker_init(_: int) -> None:
    """DataLoader workers: default signal handling (not the trainer's deferred one).

    OpenCV's thread pool is deliberately not touched here: ``cv2.setNumThreads`` in a forked
    worker whose parent already started the pool waits forever for threads that were not forked.
    (The parent sets one thread before forking instead: :func:`_opencv_single_threaded`.)
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DataPlan:
    """Builds (and caches per size) the train and validation datasets of a config.

    Temporal runs (``config.temporal``) get :class:`~filmclean.train.seqdata.TemporalDataset` s:
    the same train/valid split of the clean photos, and each clip range split into its first
    ~90 % (training) and last ~10 % (validation) frames (:func:`~filmclean.train.seqdata.split_clip`);
    the clips are decoded once (uint8) and shared by every size.
    """

    #: validation items per validation photo in temporal runs (random crops, fixed per index)
    TEMPORAL_VALID_CROPS = 4

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._train: dict[int, Dataset] = {}
        self._valid: dict[int, Dataset | None] = {}
        self._clips: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        if config.pairs_dir is None and config.clean_dir is None:
            raise InputError("no training data: give a pairs data set (--pairs) or a folder of clean photos (--clean)")
        if config.clean_dir is not None:
            names = [n for n in list_clean_names(config.clean_dir) if n not in set(config.exclude_names)]
            if not names:
                raise InputError("no clean images to train on", config.clean_dir)
            self.train_names, self.valid_names = split_names(names, config.valid_fraction, config.seed)

    def clip_frames(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``(train, valid)`` frame arrays of the config's clips (decoded on first use)."""
        if self._clips is None:
            from .seqdata import read_clip_frames, split_clip

            train_clips: list[np.ndarray] = []
            valid_clips: list[np.ndarray] = []
            for clip in self.config.clips:
                frames = read_clip_frames(clip["path"], clip["first"], clip["last"], as_uint8=True)
                n_train, n_valid = split_clip(len(frames))
                train_clips.append(frames[:n_train])
                if n_valid:
                    valid_clips.append(frames[n_train:])
            self._clips = (train_clips, valid_clips)
        return self._clips

    def _temporal(self, size: int, names: list[str], validation: bool) -> Dataset:
        from .seqdata import TemporalDataset

        c = self.config
        train_clips, valid_clips = self.clip_frames()
        return TemporalDataset(
            c.clean_dir,
            size,
            names,
            c.seed,
            c.polarity,
            clips=valid_clips if validation else train_clips,
            clip_fraction=c.clip_fraction,
            validation=validation,
            crops_per_image=self.TEMPORAL_VALID_CROPS if validation else c.crops_per_image,
            crop_scale=c.crop_scale,
            synth_params=c.synth_params,
            clean_fraction=0.0 if validation else c.clean_fraction,
        )

    def train_set(self, size: int, epoch: int) -> Dataset:
        c = self.config
        ds = self._train.get(size)
        if ds is None:
            if c.temporal:
                ds = self._temporal(size, self.train_names, validation=False)
            elif c.pairs_dir is not None:
                ds = PairsDataset(c.pairs_dir, size, "train", exclude=c.exclude_names, augment=c.augment, seed=c.seed)
            else:
                ds = OnTheFlyDataset(
                    c.clean_dir,  # type: ignore[arg-type]
                    size,
                    self.train_names,
                    c.seed,
                    c.polarity,
                    augment=c.augment,
                    crops_per_image=c.crops_per_image,
                    crop_scale=c.crop_scale,
                    synth_params=c.synth_params,
                    clean_fraction=c.clean_fraction,
                )
            if len(ds) == 0:
                raise InputError(f"the training split is empty at size {size}", c.pairs_dir or c.clean_dir)
            self._train[size] = ds
        ds.set_epoch(epoch)  # type: ignore[attr-defined]
        return ds

    def valid_set(self, size: int) -> Dataset | None:
        c = self.config
        if size not in self._valid:
            ds: Dataset | None = None
            if c.pairs_dir is not None:
                from .data import read_manifest

                if "valid" in read_manifest(c.pairs_dir)["splits"]:
                    ds = PairsDataset(c.pairs_dir, size, "valid", exclude=c.exclude_names)
            elif c.temporal:
                if self.valid_names or self.clip_frames()[1]:
                    ds = self._temporal(size, self.valid_names, validation=True)
            elif self.valid_names:
                ds = OnTheFlyDataset(
                    c.clean_dir,  # type: ignore[arg-type]
                    size,
                    self.valid_names,
                    c.seed,
                    c.polarity,
                    validation=True,
                    synth_params=c.synth_params,
                )
            self._valid[size] = ds if ds is not None and len(ds) > 0 else None
        return self._valid[size]


def steps_per_epoch(n_items: int, batch_size: int, world: int) -> int:
    """Optimizer steps in one epoch: ``per_process // batch_size`` (incomplete batches dropped), or 1
    when a process has fewer items than one batch (then that short batch is used)."""
    per_process = math.ceil(n_items / world)
    return max(1, per_process // batch_size)


def _loader(
    ds: Dataset, batch_size: int, sampler: Any, config: TrainConfig, device: torch.device, drop_last: bool, gen_seed: int
) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=config.num_workers,
        drop_last=drop_last,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if config.num_workers > 0 else None,
        generator=torch.Generator().manual_seed(gen_seed),  # never draw from the global torch RNG
        persistent_workers=False,
    )


# -- model helpers ----------------------------------------------------------------------------------


def set_encoder_frozen(net: nn.Module, frozen: bool, train_bn: bool = True) -> int:
    """Make every parameter trainable, then, when ``frozen`` and the network has
    ``encoder_parameters()``, freeze those -- except the ones listed by ``encoder_norm_parameters()``
    (if the network has it) when ``train_bn`` (fastai's default: normalisation layers keep
    training in a frozen encoder). Returns the number of frozen parameter tensors."""
    for p in net.parameters():
        p.requires_grad_(True)
    n = 0
    if frozen and hasattr(net, "encoder_parameters"):
        keep = {id(p) for p in net.encoder_norm_parameters()} if train_bn and hasattr(net, "encoder_norm_parameters") else set()  # type: ignore[operator]
        for p in net.encoder_parameters():  # type: ignore[operator]
            if id(p) not in keep:
                p.requires_grad_(False)
                n += 1
    return n


def composite(net_out: Any, x: torch.Tensor) -> torch.Tensor:
    """The restored image of a network output: the tensor itself, or ``x + m * (r - x)`` for ``(r, m)``."""
    if isinstance(net_out, (tuple, list)):
        restored, mask = net_out[0], net_out[1]
        return x + mask * (restored - x)
    return net_out


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def validate(net: nn.Module, ds: Dataset, batch_size: int, device: torch.device, config: TrainConfig, di: DistInfo) -> dict[str, float]:
    """Mean SSIM (kornia, 11x11 Gaussian window) of the restored and of the damaged validation images
    against their targets. Sharded over processes and summed, so every rank gets the same numbers."""
    import kornia

    if di.enabled:  # every rank validates (and rank 0 saves) the same network: rank 0's buffers
        import torch.distributed as dist

        for buf in net.buffers():
            dist.broadcast(buf, 0)
    was_training = net.training
    net.eval()
    indices = list(range(di.rank, len(ds), di.world))
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    if indices:
        loader = _loader(Subset(ds, indices), batch_size, None, config, device, False, config.seed)
        for batch in loader:
            x = batch["input"].to(device, non_blocking=True)
            y = batch["target"].to(device, non_blocking=True)
            with _autocast(device, config.amp):
                out = net(x)
            rgb = x[:, :3]  # temporal inputs: the current frame, then its aligned neighbours and trusts
            restored = composite(out, rgb).float().clamp(0.0, 1.0)
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


# -- interrupt handling -------------------------------------------------------------------------------


class _GracefulInterrupt:
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

    def __enter__(self) -> "_GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


# -- progress -----------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar per epoch (steps, loss, images/s); silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> "_Progress":
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


# -- the loop -----------------------------------------------------------------------------------------


def _build_loss(config: TrainConfig) -> nn.Module:
    try:
        from .losses import build_loss
    except ImportError as exc:
        raise InputError(f"losses are not available (filmclean.train.losses: {exc})") from None
    try:
        return build_loss(config.loss, **config.loss_kwargs)
    except FilmcleanError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot build loss {config.loss!r}: {exc.args[0] if exc.args else exc}") from None


def _is_better(candidate: dict[str, Any], best: dict[str, Any] | None) -> bool:
    if best is None:
        return True
    return (candidate["size"], candidate["ssim"]) > (best["size"], best["ssim"])


def _truncate_lines(path: Path, keep: int) -> None:
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > keep:
        _atomic_write_text(path, "".join(lines[:keep]))


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    max_steps: int | None = None,
    *,
    loss: nn.Module | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir``; returns a summary dict.

    - ``resume``: continue from ``run_dir/checkpoint.safetensors`` when it exists (its config must
      equal ``config`` except for :data:`~filmclean.train.config.RUNTIME_FIELDS`, else
      :class:`~filmclean.errors.InputError`); False starts afresh, replacing the run's files.
    - ``max_steps``: stop (after writing a checkpoint) once the run's global step count -- steps
      done before a resume included -- reaches it.
    - ``loss``: a loss module to use instead of ``build_loss(config.loss, **config.loss_kwargs)``;
      called ``loss(net_out, batch) -> (total, terms)``.

    Returns ``{"status": "finished" | "stopped", "run_dir", "step", "stage", "epoch", "best",
    "model_path", "last_loss", "checkpoint"}`` where ``stage``/``epoch`` are the position reached
    (0-based; ``stage == len(config.stages)`` when finished), ``best`` is ``{"size", "ssim",
    "input_ssim", "stage", "epoch", "step"}`` or None, and ``model_path`` is None until a model was
    written. Raises ``KeyboardInterrupt`` after a graceful Ctrl-C (a checkpoint was written).
    """
    run_dir = Path(run_dir)
    di = setup_distributed(config.device)
    if di.enabled:  # files a previous call's rank 0 wrote are complete before any rank reads them
        import torch.distributed as dist

        dist.barrier()
    ok = False
    try:
        with _opencv_single_threaded(config.num_workers > 0):
            result = _train(config, run_dir, resume, progress, max_steps, loss, di)
        ok = True
        return result
    finally:
        if di.enabled:
            import gc

            import torch.distributed as dist

            if ok:
                dist.barrier()  # rank 0's files are complete, and no rank tears the group down early
            gc.collect()  # DDP wrappers (reference cycles) go before their process group
            if di.initialized_here:
                dist.destroy_process_group()


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    progress: bool,
    max_steps: int | None,
    loss: nn.Module | None,
    di: DistInfo,
) -> dict[str, Any]:
    """The body of :func:`train` (process group already set up)."""
    from filmclean.modelfile import save_model
    from filmclean.nets import build_network

    device = resolve_device(config.device, di)
    if config.amp == "fp16" and device.type != "cuda":
        raise InputError("amp 'fp16' needs a CUDA device; use 'bf16' or 'off' on the CPU")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    ckpt_path = run_dir / CHECKPOINT_NAME
    try:
        if di.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create run directory ({exc.strerror})", run_dir) from None

    saved: tuple[dict[str, torch.Tensor], dict[str, Any], TrainConfig] | None = None
    if resume and ckpt_path.is_file():
        saved = read_checkpoint(ckpt_path)
        diffs = config.differences(saved[2])
        if diffs:
            raise InputError(
                f"the run directory holds a different training config (differs in: {', '.join(diffs)}); "
                "use --no-resume to start over or another --run-dir",
                run_dir,
            )
    if di.is_main:
        if saved is None:
            for name in (CHECKPOINT_NAME, STATE_NAME, METRICS_NAME, MODEL_NAME):
                (run_dir / name).unlink(missing_ok=True)
        else:
            _truncate_lines(run_dir / METRICS_NAME, int(saved[1]["metrics_lines"]))
        config.save(run_dir / CONFIG_NAME)
    if di.enabled:
        import torch.distributed as dist

        dist.barrier()

    seed_everything(config.seed)
    try:
        net = build_network(config.arch, config.arch_config)
    except KeyError as exc:
        raise InputError(str(exc.args[0]) if exc.args else str(exc)) from None
    except TypeError as exc:
        raise InputError(f"cannot build network {config.arch!r}: {exc}") from None
    in_channels = int(getattr(net, "in_channels", 3))
    if config.temporal and in_channels != 11:
        raise InputError(f"a temporal run needs a temporal network (11 input channels); {config.arch!r} takes {in_channels}")
    if not config.temporal and in_channels != 3:
        raise InputError(f"network {config.arch!r} takes {in_channels} input channels: set temporal to true to train it")
    if config.init_from is not None and saved is None:
        from filmclean.modelfile import load_torch_network

        src, spec = load_torch_network(config.init_from)
        if config.arch == "temporal_maskguided" and spec.arch == "maskguided":
            from filmclean.nets.temporal import TemporalMaskGuidedNet

            src = TemporalMaskGuidedNet.from_single(src)  # computes what the single-frame network does
        elif (config.arch == "maskguided" and spec.arch == "maskguided" and not src.fill_levels
              and int(config.arch_config.get("fill_levels", 0))):
            src = type(src).from_base(src, int(config.arch_config["fill_levels"]))  # same mask, fill-based repair
        elif spec.arch != config.arch:
            raise InputError(f"init_from holds a {spec.arch!r} network, the run trains {config.arch!r}", config.init_from)
        try:
            net.load_state_dict(src.state_dict(), strict=True)
        except RuntimeError as exc:
            raise InputError(f"init_from weights do not fit the run's network: {exc}", config.init_from) from None
    net.to(device)
    loss_fn = (loss if loss is not None else _build_loss(config)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.stages[0].lr_max, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    plan = DataPlan(config)

    # position: next step is batch `batch` of epoch `epoch` of stage `stage`
    st: dict[str, Any] = {
        "stage": 0,
        "epoch": 0,
        "batch": 0,
        "global_step": 0,
        "best": None,
        "metrics_lines": 0,
        "epoch_loss_sum": 0.0,
        "epoch_loss_count": 0,
        "last_loss": None,
        "scheduler": None,
        "model_path": None,
    }
    saved_groups: list[dict[str, Any]] | None = None
    if saved is not None:
        tensors, sstate, _ = saved
        net.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
        opt.load_state_dict(_optimizer_from_flat(tensors, sstate["optimizer"]))
        saved_groups = _groups_from_json(sstate["optimizer"]["param_groups"])
        if scaler is not None and sstate.get("scaler") is not None:
            scaler.load_state_dict(sstate["scaler"])
        for key in st:
            if key in sstate:
                st[key] = sstate[key]
    metrics_lines = int(st["metrics_lines"])

    def log_metrics(record: dict[str, Any]) -> None:
        nonlocal metrics_lines
        if di.is_main:
            with open(run_dir / METRICS_NAME, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            metrics_lines += 1

    stage_offsets = [sum(s.epochs for s in config.stages[:i]) for i in range(len(config.stages))]

    def summary(status: str) -> dict[str, Any]:
        return {
            "status": status,
            "run_dir": str(run_dir),
            "step": st["global_step"],
            "stage": st["stage"],
            "epoch": st["epoch"],
            "best": st["best"],
            "model_path": st["model_path"],
            "last_loss": st["last_loss"],
            "checkpoint": str(ckpt_path),
        }

    def save(sched: Any) -> None:
        if not di.is_main:
            return
        state = dict(
            st,
            format=CHECKPOINT_FORMAT,
            metrics_lines=metrics_lines,
            scheduler=None if sched is None else _jsonable(sched.state_dict()),
            scaler=None if scaler is None else _jsonable(scaler.state_dict()),
            rng=capture_rng(device),
            world_size=di.world,
            finished=st["stage"] >= len(config.stages),
            saved_at=time.time(),
        )
        write_checkpoint(run_dir, net, opt, state, config)

    if st["stage"] >= len(config.stages):
        return summary("finished")
    if max_steps is not None and st["global_step"] >= max_steps:
        return summary("stopped")

    if saved is not None:
        restore_rng(saved[1]["rng"], device)
    resumed_scheduler = st["scheduler"]
    model: nn.Module = net
    sched: Any = None
    with _GracefulInterrupt() as interrupt, _Progress(progress and di.is_main) as bar:
        while st["stage"] < len(config.stages):
            si = st["stage"]
            stage = config.stages[si]
            set_encoder_frozen(net, stage.freeze_encoder, config.train_bn)
            if di.enabled:
                from torch.nn.parallel import DistributedDataParallel

                model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
            n_items = len(plan.train_set(stage.size, stage_offsets[si]))
            spe = steps_per_epoch(n_items, stage.batch_size, di.world)
            drop_last = math.ceil(n_items / di.world) >= stage.batch_size
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=stage.lr_max, total_steps=stage.epochs * spe, pct_start=stage.pct_start
            )
            if resumed_scheduler is not None:
                sched.load_state_dict(resumed_scheduler)
                for group, saved_group in zip(opt.param_groups, saved_groups or [], strict=True):
                    group.update({k: v for k, v in saved_group.items() if k != "params"})
                resumed_scheduler = None
            valid_ds = plan.valid_set(stage.size)

            while st["epoch"] < stage.epochs:
                ei = st["epoch"]
                gepoch = stage_offsets[si] + ei
                ds = plan.train_set(stage.size, gepoch)
                skip = st["batch"] * stage.batch_size
                sampler = ResumableSampler(ds, di.world, di.rank, config.seed, gepoch, skip)
                loader = _loader(ds, stage.batch_size, sampler, config, device, drop_last, config.seed * 1_000_003 + gepoch)
                bar.start_epoch(
                    f"stage {si + 1}/{len(config.stages)} {stage.size}px"
                    f"{' frozen' if stage.freeze_encoder else ''} epoch {ei + 1}/{stage.epochs}",
                    spe,
                    st["batch"],
                )
                model.train()
                t_last = time.perf_counter()
                for batch in loader:
                    if st["batch"] >= spe:
                        break
                    b = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                    opt.zero_grad(set_to_none=True)
                    with _autocast(device, config.amp):
                        out = model(b["input"])
                        # losses see the image the network restores: channels 0-2 of a temporal stack
                        total, terms = loss_fn(out, dict(b, input=b["input"][:, :3]))
                    if scaler is not None:
                        scaler.scale(total).backward()
                        if config.grad_clip > 0:
                            scaler.unscale_(opt)
                            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                        scaler.step(opt)
                        scaler.update()
                    else:
                        total.backward()
                        if config.grad_clip > 0:
                            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                        opt.step()
                    step_lr = float(opt.param_groups[0]["lr"])
                    sched.step()
                    loss_value = float(total.detach())
                    if not math.isfinite(loss_value):
                        raise FilmcleanError(
                            f"training diverged: loss is {loss_value} at step {st['global_step'] + 1}; lower the learning rate"
                        )
                    st["global_step"] += 1
                    st["batch"] += 1
                    st["epoch_loss_sum"] += loss_value
                    st["epoch_loss_count"] += 1
                    st["last_loss"] = loss_value
                    now = time.perf_counter()
                    ips = b["input"].shape[0] * di.world / max(now - t_last, 1e-9)
                    t_last = now
                    bar.advance(loss_value, ips)
                    if st["global_step"] % config.log_every == 0:
                        log_metrics(
                            {
                                "kind": "train",
                                "step": st["global_step"],
                                "stage": si,
                                "epoch": gepoch,
                                "size": stage.size,
                                "loss": loss_value,
                                "terms": {k: float(v) for k, v in terms.items()},
                                "lr": step_lr,
                                "images_per_s": ips,
                            }
                        )
                    stop_now = interrupt.requested
                    if di.enabled:
                        import torch.distributed as dist

                        flag = torch.tensor([1.0 if stop_now else 0.0], device=device)
                        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                        stop_now = bool(flag.item() > 0)
                    limit = max_steps is not None and st["global_step"] >= max_steps
                    if stop_now or limit or (config.checkpoint_every and st["global_step"] % config.checkpoint_every == 0):
                        save(sched)
                    if stop_now:
                        bar.log(f"interrupted: checkpoint written at step {st['global_step']}")
                        raise KeyboardInterrupt
                    if limit:
                        return summary("stopped")

                # epoch end: validate, maybe save the model, checkpoint at the next position
                train_loss = st["epoch_loss_sum"] / max(1, st["epoch_loss_count"])
                record: dict[str, Any] = {
                    "kind": "valid",
                    "step": st["global_step"],
                    "stage": si,
                    "epoch": gepoch,
                    "size": stage.size,
                    "train_loss": train_loss,
                }
                candidate: dict[str, Any] | None = None
                if valid_ds is not None:
                    metrics = validate(net, valid_ds, stage.batch_size, device, config, di)
                    record.update(ssim=metrics["ssim"], input_ssim=metrics["input_ssim"], valid_count=metrics["count"])
                    candidate = {
                        "size": stage.size,
                        "ssim": metrics["ssim"],
                        "input_ssim": metrics["input_ssim"],
                        "stage": si,
                        "epoch": gepoch,
                        "step": st["global_step"],
                    }
                better = candidate is not None and _is_better(candidate, st["best"])
                record["best"] = better
                if better:
                    st["best"] = candidate
                if (better or valid_ds is None) and di.is_main:  # without validation: the latest network
                    info = {
                        "training": {
                            "run_dir": str(run_dir),
                            "stage": si,
                            "epoch": gepoch,
                            "step": st["global_step"],
                            "size": stage.size,
                            "valid_ssim": None if candidate is None else candidate["ssim"],
                            "valid_input_ssim": None if candidate is None else candidate["input_ssim"],
                            "train_loss": train_loss,
                            "loss": config.loss,
                            "data": config.pairs_dir or config.clean_dir,
                            **({"clips": [dict(c) for c in config.clips]} if config.clips else {}),
                            "seed": config.seed,
                        }
                    }
                    save_model(net, config.arch, config.arch_config, run_dir / MODEL_NAME, info=info)
                if better or valid_ds is None:
                    st["model_path"] = str(run_dir / MODEL_NAME)
                log_metrics(record)
                bar.log(
                    f"stage {si + 1} {stage.size}px epoch {ei + 1}/{stage.epochs}: train loss {train_loss:.5f}"
                    + (f", valid SSIM {candidate['ssim']:.4f} (damaged {candidate['input_ssim']:.4f})" if candidate else "")
                )
                st["epoch"] += 1
                st["batch"] = 0
                st["epoch_loss_sum"] = 0.0
                st["epoch_loss_count"] = 0
                if st["epoch"] < stage.epochs:
                    save(sched)
            st["stage"] += 1
            st["epoch"] = 0
            save(None)  # the next stage starts with a fresh scheduler
        return summary("finished")


__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "METRICS_NAME",
    "MODEL_NAME",
    "STATE_NAME",
    "DataPlan",
    "DistInfo",
    "ResumableSampler",
    "capture_rng",
    "composite",
    "is_training_checkpoint",
    "network_from_checkpoint",
    "read_checkpoint",
    "restore_rng",
    "seed_everything",
    "set_encoder_frozen",
    "steps_per_epoch",
    "train",
    "validate",
    "write_checkpoint",
]
