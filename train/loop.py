"""The training loop: progressive one-cycle stages, exact resume, DDP, best-model export.

Files in ``run_dir`` (only rank 0 writes; every write is atomic, a hidden partial name then a
rename -- :func:`filmclean.io.partial_path`):

- ``config.json``: the run's :class:`~filmclean.train.config.TrainConfig`;
- ``checkpoint.safetensors``: everything needed to continue (:mod:`filmclean.train.checkpoint`).
  Written every ``checkpoint_every`` steps, at every epoch end, on ``max_steps`` and on a graceful
  Ctrl-C;
- ``state.json``: the same train state (:class:`TrainState` and what goes with it) as readable
  JSON, written right after the checkpoint;
- ``metrics.jsonl``: one JSON object per line, ``kind`` ``train`` (every ``log_every`` steps:
  loss, loss terms, learning rate, images/s) or ``valid`` (every epoch end: SSIM of the restored
  and of the damaged validation images, mean training loss);
- ``model.safetensors``: the best network so far, a filmclean model file
  (:func:`filmclean.modelfile.save_model`) usable as ``filmclean restore --model``. "Best" compares
  ``(training size, validation SSIM)``: a model validated at a larger size beats any model
  validated at a smaller one; at equal size the higher SSIM wins. The SSIM is that of what
  inference outputs -- for mask networks the hard composite at the default threshold
  (:mod:`filmclean.train.validation`). Without validation data it is the latest epoch's network.

Exact resume. Every random choice of the data pipeline is a pure function of ``(seed, epoch,
index)`` and the order of an epoch of ``(seed, epoch)`` (:mod:`filmclean.train.sampling`). A
checkpoint stores the position ``(stage, epoch, batches done)``, the weights, the optimizer,
scheduler and scaler states and the global RNG states at that point; a resumed run restores them
and skips the batches already seen (the sampler starts past them, nothing is loaded), so on the
same device and thread settings it continues bit-identically. A ``KeyboardInterrupt`` raised inside
a step leaves the last checkpoint in place (a half-done step is never saved); a SIGINT (Ctrl-C) or
SIGTERM (a scheduler's pre-emption, torchrun shutting down) is deferred until the running step has
finished, then a checkpoint is written and ``KeyboardInterrupt`` raised. Lines of
``metrics.jsonl`` written after the checkpoint that is resumed from are dropped.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised (NCCL on
CUDA, Gloo on CPU) unless the caller already did; each process loads its own shard of every epoch
(``batch_size`` is per process), the network is wrapped in ``DistributedDataParallel`` afresh for
each stage (so the frozen/unfrozen parameter set is right), validation is sharded and summed, and
only rank 0 writes files; every rank reads the checkpoint, so ``run_dir`` must be on a file system
they share. :func:`train` enters and (on success) leaves with a barrier, so a later call never
reads files that rank 0 is still writing.

The names of the modules this one is built from (checkpoint files, data plan and sampler, process
set-up, validation) are importable from here too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from filmclean.errors import FilmcleanError, InputError, OutputError
from filmclean.modelfile import CHECKPOINT_FORMAT, is_training_checkpoint

from .checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    MODEL_NAME,
    STATE_NAME,
    Checkpoint,
    capture_rng,
    groups_from_json,
    jsonable,
    network_from_checkpoint,
    optimizer_state,
    read_checkpoint,
    restore_rng,
    seed_everything,
    truncate_lines,
    write_checkpoint,
)
from .config import Stage, TrainConfig
from .network import build_loss, build_network, set_encoder_frozen
from .sampling import DataPlan, ResumableSampler, make_loader, opencv_single_threaded, steps_per_epoch
from .session import (
    DistInfo,
    GracefulInterrupt,
    Progress,
    any_rank,
    autocast,
    barrier,
    resolve_device,
    setup_distributed,
)
from .validation import BestModel, is_better, validate


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint (and ``state.json``) under these names.

    The next step is batch ``batch`` of epoch ``epoch`` (0-based, within the stage) of stage
    ``stage``; ``stage == len(config.stages)`` once the run is finished.
    """

    stage: int = 0
    epoch: int = 0
    batch: int = 0
    #: optimizer steps done by the run, steps before a resume included
    global_step: int = 0
    #: the validation result of the model kept in ``model.safetensors`` (None: none validated yet)
    best: BestModel | None = None
    #: lines of ``metrics.jsonl`` written so far
    metrics_lines: int = 0
    #: sum and count of the training losses of the current epoch so far
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    last_loss: float | None = None
    #: the learning-rate scheduler's state at the checkpoint (None at a stage boundary)
    scheduler: dict[str, Any] | None = None
    #: ``model.safetensors`` once one was written, else None
    model_path: str | None = None

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any]) -> TrainState:
        """The state of a checkpoint's train state JSON (other keys ignored, missing ones default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)


# -- set-up -----------------------------------------------------------------------------------------


def _device_for(config: TrainConfig, di: DistInfo) -> torch.device:
    """The run's device, with deterministic cuDNN on CUDA; refuses fp16 autocast off CUDA."""
    device = resolve_device(config.device, di)
    if config.amp == "fp16" and device.type != "cuda":
        raise InputError("amp 'fp16' needs a CUDA device; use 'bf16' or 'off' on the CPU")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return device


def _open_run_dir(config: TrainConfig, run_dir: Path, resume: bool, di: DistInfo) -> Checkpoint | None:
    """Prepare ``run_dir`` for the run: the checkpoint to resume from (its config checked against
    ``config``), or None for a fresh start, whose old files rank 0 deletes. Rank 0 also drops the
    metrics lines after the checkpoint and partial files that killed runs left, and writes
    ``config.json``; every rank leaves together."""
    from filmclean.io import remove_stale_partials

    try:
        if di.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create run directory ({exc.strerror})", run_dir) from None
    ckpt_path = run_dir / CHECKPOINT_NAME
    saved: Checkpoint | None = None
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
        remove_stale_partials(run_dir)
        if saved is None:
            for name in (CHECKPOINT_NAME, STATE_NAME, METRICS_NAME, MODEL_NAME):
                (run_dir / name).unlink(missing_ok=True)
        else:
            truncate_lines(run_dir / METRICS_NAME, int(saved[1]["metrics_lines"]))
        config.save(run_dir / CONFIG_NAME)
    barrier(di)
    return saved


def _resume(
    saved: Checkpoint, net: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> tuple[TrainState, list[dict[str, Any]]]:
    """Load a checkpoint's weights, optimizer and scaler states; returns its train state and the
    optimizer's parameter groups as saved (their learning rates are restored with the scheduler)."""
    tensors, sstate, _ = saved
    net.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    opt.load_state_dict(optimizer_state(tensors, sstate["optimizer"]))
    if scaler is not None and sstate.get("scaler") is not None:
        scaler.load_state_dict(sstate["scaler"])
    return TrainState.from_saved(sstate), groups_from_json(sstate["optimizer"]["param_groups"])


# -- the loop ---------------------------------------------------------------------------------------


class _Trainer:
    """One call of :func:`train` once everything is built: runs the stages from ``state`` on."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        di: DistInfo,
        device: torch.device,
        net: nn.Module,
        loss_fn: nn.Module,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        state: TrainState,
        max_steps: int | None,
    ) -> None:
        self.config, self.run_dir, self.di, self.device = config, run_dir, di, device
        self.net, self.loss_fn, self.opt, self.scaler = net, loss_fn, opt, scaler
        self.state, self.max_steps = state, max_steps
        self.plan = DataPlan(config)
        self.stage_offsets = [sum(s.epochs for s in config.stages[:i]) for i in range(len(config.stages))]
        self.interrupt = GracefulInterrupt()  # inactive ones until :meth:`run` enters its own
        self.bar = Progress(False)
        self._resumed_groups: list[dict[str, Any]] | None = None

    # -- files

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl`` (rank 0)."""
        if self.di.is_main:
            with open(self.run_dir / METRICS_NAME, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            self.state.metrics_lines += 1

    def save_checkpoint(self, sched: Any) -> None:
        """Write the checkpoint of the current position (rank 0); ``sched`` None at a stage boundary."""
        if not self.di.is_main:
            return
        state = dict(
            self.state.to_json(),
            format=CHECKPOINT_FORMAT,
            scheduler=None if sched is None else jsonable(sched.state_dict()),
            scaler=None if self.scaler is None else jsonable(self.scaler.state_dict()),
            rng=capture_rng(self.device),
            world_size=self.di.world,
            finished=self.state.stage >= len(self.config.stages),
            saved_at=time.time(),
        )
        write_checkpoint(self.run_dir, self.net, self.opt, state, self.config)

    def summary(self, status: str) -> dict[str, Any]:
        """What :func:`train` returns."""
        st = self.state
        return {
            "status": status,
            "run_dir": str(self.run_dir),
            "step": st.global_step,
            "stage": st.stage,
            "epoch": st.epoch,
            "best": st.best,
            "model_path": st.model_path,
            "last_loss": st.last_loss,
            "checkpoint": str(self.run_dir / CHECKPOINT_NAME),
        }

    # -- stages and epochs

    def run(self, resumed_groups: list[dict[str, Any]] | None, progress: bool) -> dict[str, Any]:
        """Train every stage from the current position on; returns :meth:`summary`."""
        self._resumed_groups = resumed_groups
        with GracefulInterrupt() as self.interrupt, Progress(progress and self.di.is_main) as self.bar:
            while self.state.stage < len(self.config.stages):
                if self._run_stage():
                    return self.summary("stopped")
                self.state.stage += 1
                self.state.epoch = 0
                self.save_checkpoint(None)  # the next stage starts with a fresh scheduler
            return self.summary("finished")

    def _run_stage(self) -> bool:
        """The remaining epochs of the current stage; True when ``max_steps`` stopped the run."""
        si = self.state.stage
        stage = self.config.stages[si]
        set_encoder_frozen(self.net, stage.freeze_encoder, self.config.train_bn)
        model: nn.Module = self.net
        if self.di.enabled:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(self.net, device_ids=device_ids)
        n_items = len(self.plan.train_set(stage.size, self.stage_offsets[si]))
        spe = steps_per_epoch(n_items, stage.batch_size, self.di.world)
        drop_last = math.ceil(n_items / self.di.world) >= stage.batch_size
        sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=stage.lr_max, total_steps=stage.epochs * spe, pct_start=stage.pct_start
        )
        if self.state.scheduler is not None:  # resumed mid-stage: the scheduler and learning rates saved
            sched.load_state_dict(self.state.scheduler)
            for group, saved_group in zip(self.opt.param_groups, self._resumed_groups or [], strict=True):
                group.update({k: v for k, v in saved_group.items() if k != "params"})
            self.state.scheduler = None
        valid_ds = self.plan.valid_set(stage.size)
        while self.state.epoch < stage.epochs:
            if self._run_epoch(model, sched, stage, spe, drop_last):
                return True
            self._validate_and_save(stage, valid_ds)
            self.state.epoch += 1
            self.state.batch = 0
            self.state.epoch_loss_sum = 0.0
            self.state.epoch_loss_count = 0
            if self.state.epoch < stage.epochs:
                self.save_checkpoint(sched)
        return False

    def _run_epoch(self, model: nn.Module, sched: Any, stage: Stage, spe: int, drop_last: bool) -> bool:
        """The remaining steps of the current epoch; True when ``max_steps`` stopped the run."""
        st, config = self.state, self.config
        gepoch = self.stage_offsets[st.stage] + st.epoch
        ds = self.plan.train_set(stage.size, gepoch)
        sampler = ResumableSampler(ds, self.di.world, self.di.rank, config.seed, gepoch, st.batch * stage.batch_size)
        loader = make_loader(
            ds, stage.batch_size, sampler, config, self.device, drop_last, config.seed * 1_000_003 + gepoch
        )
        self.bar.start_epoch(
            f"stage {st.stage + 1}/{len(config.stages)} {stage.size}px"
            f"{' frozen' if stage.freeze_encoder else ''} epoch {st.epoch + 1}/{stage.epochs}",
            spe,
            st.batch,
        )
        model.train()
        t_last = time.perf_counter()
        for batch in loader:
            if st.batch >= spe:
                break
            loss_value, terms, step_lr, n_images = self._step(model, sched, batch)
            st.global_step += 1
            st.batch += 1
            st.epoch_loss_sum += loss_value
            st.epoch_loss_count += 1
            st.last_loss = loss_value
            now = time.perf_counter()
            ips = n_images * self.di.world / max(now - t_last, 1e-9)
            t_last = now
            self.bar.advance(loss_value, ips)
            if st.global_step % config.log_every == 0:
                self.log_metrics(
                    {
                        "kind": "train",
                        "step": st.global_step,
                        "stage": st.stage,
                        "epoch": gepoch,
                        "size": stage.size,
                        "loss": loss_value,
                        "terms": terms,
                        "lr": step_lr,
                        "images_per_s": ips,
                    }
                )
            if self._after_step(sched):
                return True
        return False

    def _step(self, model: nn.Module, sched: Any, batch: dict[str, Any]) -> tuple[float, dict[str, float], float, int]:
        """One optimizer step on ``batch``: ``(loss, loss terms, learning rate used, images)``.
        Raises :class:`FilmcleanError` when the loss is not finite."""
        config, opt, scaler = self.config, self.opt, self.scaler
        b = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        opt.zero_grad(set_to_none=True)
        with autocast(self.device, config.amp):
            out = model(b["input"])
            # losses see the image the network restores: channels 0-2 of a temporal stack
            total, terms = self.loss_fn(out, dict(b, input=b["input"][:, :3]))
        if scaler is not None:
            scaler.scale(total).backward()
            if config.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), config.grad_clip)
            scaler.step(opt)
            scaler.update()
        else:
            total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), config.grad_clip)
            opt.step()
        step_lr = float(opt.param_groups[0]["lr"])
        sched.step()
        loss_value = float(total.detach())
        if not math.isfinite(loss_value):
            raise FilmcleanError(
                f"training diverged: loss is {loss_value} at step {self.state.global_step + 1}; lower the learning rate"
            )
        return loss_value, {k: float(v) for k, v in terms.items()}, step_lr, int(b["input"].shape[0])

    def _after_step(self, sched: Any) -> bool:
        """Checkpoint when due, on ``max_steps`` or on a deferred Ctrl-C / SIGTERM (on any rank; then
        raises ``KeyboardInterrupt``); True when ``max_steps`` is reached."""
        step = self.state.global_step
        stop_now = any_rank(self.interrupt.requested, self.di, self.device)
        limit = self.max_steps is not None and step >= self.max_steps
        if stop_now or limit or (self.config.checkpoint_every and step % self.config.checkpoint_every == 0):
            self.save_checkpoint(sched)
        if stop_now:
            self.bar.log(f"interrupted: checkpoint written at step {step}")
            raise KeyboardInterrupt
        return limit

    # -- epoch end

    def _validate_and_save(self, stage: Stage, valid_ds: Dataset | None) -> None:
        """Epoch end: validate, keep the network as ``model.safetensors`` when it is the best so far
        (or, without validation data, always), log the ``valid`` metrics line."""
        st = self.state
        gepoch = self.stage_offsets[st.stage] + st.epoch
        train_loss = st.epoch_loss_sum / max(1, st.epoch_loss_count)
        record: dict[str, Any] = {
            "kind": "valid",
            "step": st.global_step,
            "stage": st.stage,
            "epoch": gepoch,
            "size": stage.size,
            "train_loss": train_loss,
        }
        candidate: BestModel | None = None
        if valid_ds is not None:
            metrics = validate(self.net, valid_ds, stage.batch_size, self.device, self.config, self.di)
            record.update(ssim=metrics["ssim"], input_ssim=metrics["input_ssim"], valid_count=metrics["count"])
            candidate = {
                "size": stage.size,
                "ssim": metrics["ssim"],
                "input_ssim": metrics["input_ssim"],
                "stage": st.stage,
                "epoch": gepoch,
                "step": st.global_step,
            }
        better = candidate is not None and is_better(candidate, st.best)
        record["best"] = better
        if better:
            st.best = candidate
        if better or valid_ds is None:  # without validation: the latest network
            if self.di.is_main:
                self._save_model(stage, gepoch, candidate, train_loss)
            st.model_path = str(self.run_dir / MODEL_NAME)
        self.log_metrics(record)
        self.bar.log(
            f"stage {st.stage + 1} {stage.size}px epoch {st.epoch + 1}/{stage.epochs}: train loss {train_loss:.5f}"
            + (f", valid SSIM {candidate['ssim']:.4f} (damaged {candidate['input_ssim']:.4f})" if candidate else "")
        )

    def _save_model(self, stage: Stage, gepoch: int, candidate: BestModel | None, train_loss: float) -> None:
        """Write the network as the run's ``model.safetensors``, with where it comes from."""
        from filmclean.modelfile import save_model

        config = self.config
        training = {
            "run_dir": str(self.run_dir),
            "stage": self.state.stage,
            "epoch": gepoch,
            "step": self.state.global_step,
            "size": stage.size,
            "valid_ssim": None if candidate is None else candidate["ssim"],
            "valid_input_ssim": None if candidate is None else candidate["input_ssim"],
            "train_loss": train_loss,
            "loss": config.loss,
            "data": config.pairs_dir or config.clean_dir,
            **({"clips": [dict(c) for c in config.clips]} if config.clips else {}),
            "seed": config.seed,
        }
        save_model(self.net, config.arch, config.arch_config, self.run_dir / MODEL_NAME, info={"training": training})


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
    barrier(di)  # files a previous call's rank 0 wrote are complete before any rank reads them
    ok = False
    try:
        with opencv_single_threaded(config.num_workers > 0):
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
    """The body of :func:`train` (process group already set up): build, resume, run."""
    device = _device_for(config, di)
    saved = _open_run_dir(config, run_dir, resume, di)
    seed_everything(config.seed)
    net = build_network(config, fresh=saved is None)
    net.to(device)
    if device.type == "cpu" and getattr(net, "train_channels_last", False):
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # checkpoints store contiguous copies
    loss_fn = (loss if loss is not None else build_loss(config)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.stages[0].lr_max, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    state, resumed_groups = TrainState(), None
    if saved is not None:
        state, resumed_groups = _resume(saved, net, opt, scaler)
    trainer = _Trainer(config, run_dir, di, device, net, loss_fn, opt, scaler, state, max_steps)
    if state.stage >= len(config.stages):
        return trainer.summary("finished")
    if max_steps is not None and state.global_step >= max_steps:
        return trainer.summary("stopped")
    if saved is not None:
        restore_rng(saved[1]["rng"], device)
    return trainer.run(resumed_groups, progress)


__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "METRICS_NAME",
    "MODEL_NAME",
    "STATE_NAME",
    "DataPlan",
    "DistInfo",
    "ResumableSampler",
    "TrainState",
    "capture_rng",
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
