"""Restore a reel or an image sequence on a Ray cluster (``--ray ADDRESS``; Ray is the optional extra
``filmclean[ray]``).

The frames are cut into chunks of ``chunk`` frames (:func:`filmclean.farm.chunk_ranges`). Each Ray
worker is an actor that loads the model once and restores chunk after chunk exactly as ``restore
--frames`` / ``frames --frames`` would (the frames just outside a chunk are read as neighbours), so
the result equals one run on one machine. A reel's chunks are written into ``OUTPUT.parts/`` (the
shared output location) and joined without re-encoding (:func:`filmclean.io.join.join_parts`,
the source's audio copied once) into ``OUTPUT``, atomically; an image sequence's chunks write
their frames straight into the output folder.

A worker that dies (a killed process, a lost node) loses only its chunk, which goes to a fresh
worker (each chunk at most :data:`ATTEMPTS` times). An interrupted run resumes: finished chunks
(written atomically) are kept and skipped, as long as the parts folder records the same input and
settings (``manifest.json``); ``force`` starts afresh. Progress is one bar over all workers,
advanced chunk by chunk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .api import ModelChoice
from .engine import RestoreOptions
from .errors import FilmcleanError, InputError, OutputError
from .farm import chunk_ranges, count_frames
from .pipeline import Progress, RunStats, VideoOptions

__all__ = ["ATTEMPTS", "RayOptions", "restore_frames_on_ray", "restore_video_on_ray"]

ATTEMPTS = 3
"""How many times one chunk is tried before the run fails."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how: ``address`` of a running cluster (``ray://host:port`` or ``host:port``), or
    ``"auto"`` to start a local Ray on this machine (bound to 127.0.0.1); ``chunk`` frames per
    task; ``workers`` model-holding workers (default: one per GPU of the cluster when it has GPUs,
    else one per ``cpus_per_worker`` CPUs); ``cpus_per_worker`` CPUs each worker reserves;
    ``local_cpus``: CPUs a local Ray offers (default: all)."""

    address: str = "auto"
    chunk: int = 240
    workers: int | None = None
    cpus_per_worker: int = 1
    local_cpus: int | None = None


def connect(options: RayOptions) -> Any:
    """Start or join Ray (idempotent); returns the ``ray`` module. One-line error without Ray."""
    local = options.address == "auto"
    if local:
        # a local Ray takes 127.0.0.1 as its node address only where it does not support clusters
        # (macOS, Windows); this says so here too, so that every server it starts listens on
        # 127.0.0.1 alone (read by Ray's processes as they start, and by this one below)
        os.environ[_LOCAL_ONLY] = "0"
    try:
        import ray
    except ImportError:
        raise FilmcleanError("--ray needs Ray: pip install 'filmclean[ray]'") from None
    if not ray.is_initialized():
        common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if local:
            _loopback_only()
            ray.init(num_cpus=options.local_cpus, include_dashboard=False, **common)
        else:
            try:
                ray.init(address=options.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FilmcleanError(f"cannot reach the Ray cluster at {options.address}: {exc}") from None
    return ray


_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _loopback_only() -> None:
    """Make an already imported Ray take 127.0.0.1 as this node's address (its constant was read
    from the environment at import)."""
    try:
        from ray._private import ray_constants
    except ImportError:  # another layout: the environment variable alone then decides
        return
    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


class _Worker:
    """A Ray actor's state: one restorer, loaded once, for every chunk given to it."""

    def __init__(self, model: ModelChoice, options: RestoreOptions) -> None:
        self.restorer = model.open(options)
        self.temporal = model.temporal

    def pid(self) -> int:
        return os.getpid()

    def video_chunk(self, src: str, part: str, first: int, last: int, video: VideoOptions) -> dict[str, Any]:
        from .pipeline import restore_video

        opts = replace(video, frames=(first, last), force=True, mask_out=None, start=None, end=None)
        return asdict(restore_video(src, part, self.restorer, opts, quiet=True))

    def frames_chunk(
        self,
        spec: str,
        out: str,
        first: int,
        last: int,
        force: bool,
        mask_dir: str | None,
        matte: str | None = None,
        mask_format: str = "png",
    ) -> dict[str, Any]:
        from .pipeline import restore_frames

        stats = restore_frames(
            spec,
            out,
            self.restorer,
            force=force,
            mask_dir=mask_dir,
            quiet=True,
            temporal=self.temporal,
            frames=(first, last),
            matte=matte,
            mask_format=mask_format,
        )
        return asdict(stats)


def _actors(
    ray: Any, options: RayOptions, model: ModelChoice, restore: RestoreOptions, chunks: int
) -> tuple[Callable[[], Any], int]:
    """A factory of worker actors (each reserving its CPUs, and a GPU where the cluster has them)
    and how many to start."""
    gpus = int(ray.cluster_resources().get("GPU", 0)) if model.device != "cpu" else 0
    cpus = int(ray.cluster_resources().get("CPU", 1))
    per_cpu = max(1, options.cpus_per_worker)
    count = max(1, min(chunks, options.workers or (gpus or max(1, cpus // per_cpu))))
    remote = ray.remote(num_cpus=per_cpu, num_gpus=1 if gpus else 0, max_restarts=0)(_Worker)

    def make() -> Any:
        return remote.remote(model, restore)

    return make, count


def _run_chunks(
    ray: Any,
    make: Callable[[], Any],
    count: int,
    chunks: list[tuple[int, int]],
    call: Callable[[Any, int, int], Any],
    progress: Progress,
    on_chunk_done: Callable[[int, int, list[Any]], None] | None,
) -> list[dict[str, Any]]:
    """Give ``chunks`` to ``count`` workers, each the next one when it is free; a worker that dies
    is replaced and its chunk given again (at most :data:`ATTEMPTS` tries per chunk)."""
    import ray.exceptions as rx

    from_task = rx.RayTaskError
    lost = tuple(
        getattr(rx, name)
        for name in ("ActorDiedError", "ActorUnavailableError", "RayActorError", "WorkerCrashedError", "NodeDiedError")
        if hasattr(rx, name)
    )
    todo = list(chunks)
    tries = dict.fromkeys(chunks, 0)
    idle = [make() for _ in range(count)]
    running: dict[Any, tuple[Any, tuple[int, int]]] = {}
    done: list[dict[str, Any]] = []
    while todo or running:
        while todo and idle:
            worker, chunk = idle.pop(), todo.pop(0)
            tries[chunk] += 1
            running[call(worker, *chunk)] = (worker, chunk)
        ready, _ = ray.wait(list(running), num_returns=1)
        ref = ready[0]
        worker, chunk = running.pop(ref)
        try:
            stats = ray.get(ref)
        except from_task as exc:  # the chunk itself failed: its own error, in one line
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            if isinstance(cause, FilmcleanError):
                raise cause from None
            raise FilmcleanError(f"chunk {chunk[0]}-{chunk[1]} failed: {type(cause).__name__}: {cause}") from None
        except lost:
            if tries[chunk] >= ATTEMPTS:
                raise FilmcleanError(
                    f"chunk {chunk[0]}-{chunk[1]} lost its worker {ATTEMPTS} times; giving up"
                ) from None
            todo.insert(0, chunk)  # to a fresh worker
            idle.append(make())
            continue
        done.append(stats)
        idle.append(worker)
        progress.advance(chunk[1] - chunk[0] + 1)
        if on_chunk_done is not None:
            on_chunk_done(*chunk, [w for w, _ in running.values()])
    return done


def _manifest(parts: Path, record: dict[str, Any], force: bool) -> None:
    """Keep ``parts`` only when it belongs to this very run (same input and settings); else start
    afresh with ``force``, or refuse in one line."""
    path = parts / "manifest.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if old != record:
            if not force:
                raise OutputError("holds chunks of another run (other input or settings); --force starts afresh", parts)
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))


def _settings(model: ModelChoice, restore: RestoreOptions, chunk: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": None if model.model is None else str(Path(model.model).absolute()),
        "temporal": model.temporal,
        "restore": {k: v for k, v in asdict(restore).items()},
        "chunk": chunk,
        **extra,
    }


def restore_video_on_ray(
    input_path: str | Path,
    output_path: str | Path,
    model: ModelChoice,
    restore: RestoreOptions,
    video: VideoOptions = VideoOptions(),
    options: RayOptions = RayOptions(),
    quiet: bool = False,
    on_chunk_done: Callable[[int, int, list[Any]], None] | None = None,
) -> RunStats:
    """Restore a reel on Ray (see the module docstring) into ``output_path``; the same frames and
    audio as :func:`filmclean.pipeline.restore_video` on one machine. ``video``'s codec, pixel
    format and quality apply to every chunk; ``--start/--end``, ``--frames`` and ``--mask-out`` are
    not taken here. ``on_chunk_done(first, last, busy_workers)`` is called after each chunk."""
    import time

    from .io import check_output_path
    from .io.join import join_parts

    src, out = Path(input_path), Path(output_path)
    if not src.exists():
        raise InputError("file not found", src)
    if video.mask_out is not None or video.start is not None or video.end is not None or video.frames is not None:
        raise InputError("--ray restores whole reels: no --mask-out, --start/--end or --frames", src)
    check_output_path(out, source=src, force=video.force)
    t0 = time.perf_counter()
    total = count_frames(src)
    chunks = chunk_ranges(total, options.chunk)
    parts = out.with_name(out.name + ".parts")
    digits = len(str(total - 1))
    names = {c: parts / f"part-{c[0]:0{digits}d}-{c[1]:0{digits}d}{out.suffix}" for c in chunks}
    stat = src.stat()
    record = _settings(
        model,
        restore,
        options.chunk,
        {
            "input": str(src.absolute()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "frames": total,
            "codec": video.codec,
            "crf": video.crf,
            "pix_fmt": video.pix_fmt,
        },
    )
    _manifest(parts, record, video.force)
    todo = [c for c in chunks if not names[c].exists()]
    stats, _ = _on_ray(
        options,
        model,
        restore,
        todo,
        total,
        f"restoring {src.name} on Ray",
        lambda w, a, b: w.video_chunk.remote(str(src), str(names[(a, b)]), a, b, video),
        quiet,
        on_chunk_done,
    )
    join_parts([names[c] for c in chunks], out, source=src, force=video.force)
    shutil.rmtree(parts, ignore_errors=True)
    stats.frames = total - stats.skipped
    stats.seconds = time.perf_counter() - t0
    return stats


def restore_frames_on_ray(
    spec: str | Path,
    out_dir: str | Path,
    model: ModelChoice,
    restore: RestoreOptions,
    force: bool = False,
    mask_dir: str | Path | None = None,
    options: RayOptions = RayOptions(),
    quiet: bool = False,
    on_chunk_done: Callable[[int, int, list[Any]], None] | None = None,
    matte: str | Path | None = None,
    mask_format: str = "png",
) -> RunStats:
    """Restore an image sequence (or stills) on Ray into ``out_dir``: the same files as
    :func:`filmclean.pipeline.restore_frames` on one machine. Finished outputs are skipped (a
    resumed run) unless ``force``."""
    import time

    from .io.images import list_images
    from .pipeline import check_frame_outputs, output_name_for

    files = list_images(spec)
    out = Path(out_dir)
    mdir = Path(mask_dir) if mask_dir is not None else None
    check_frame_outputs(files, out, mdir, mask_format)
    out.mkdir(parents=True, exist_ok=True)
    if mdir is not None:
        mdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chunks = chunk_ranges(len(files), options.chunk)
    todo = (
        chunks
        if force
        else [c for c in chunks if not all(output_name_for(f, out).exists() for f in files[c[0] : c[1] + 1])]
    )
    stats, results = _on_ray(
        options,
        model,
        restore,
        todo,
        len(files),
        f"restoring {len(files)} image(s) on Ray",
        lambda w, a, b: w.frames_chunk.remote(
            str(spec),
            str(out),
            a,
            b,
            force,
            None if mdir is None else str(mdir),
            None if matte is None else str(matte),
            mask_format,
        ),
        quiet,
        on_chunk_done,
    )
    stats.frames = sum(r["frames"] for r in results)
    stats.seconds = time.perf_counter() - t0
    return stats


def _on_ray(
    options: RayOptions,
    model: ModelChoice,
    restore: RestoreOptions,
    todo: list[tuple[int, int]],
    total: int,
    description: str,
    call: Callable[[Any, int, int], Any],
    quiet: bool,
    on_chunk_done: Callable[[int, int, list[Any]], None] | None,
) -> tuple[RunStats, list[dict[str, Any]]]:
    """Run ``call`` for every chunk of ``todo`` on Ray workers, with one progress bar over ``total``
    frames (those of finished chunks counted as skipped); the summed statistics and each chunk's."""
    ray = connect(options)
    make, count = _actors(ray, options, model, restore, len(todo) or 1)
    stats = RunStats(backend=f"ray ({count} worker(s))", temporal=model.temporal)
    stats.skipped = total - sum(b - a + 1 for a, b in todo)
    with Progress(description, total, quiet) as progress:
        progress.advance(stats.skipped)
        results = _run_chunks(ray, make, count, todo, call, progress, on_chunk_done)
    _add(stats, results)
    return stats, results


def _add(stats: RunStats, results: list[dict[str, Any]]) -> None:
    for r in results:
        stats.model_seconds += r["model_seconds"]
        stats.flow_seconds += r["flow_seconds"]
        stats.cuts += r["cuts"]
        stats.alone += r["alone"]
        stats.spike_pixels += r["spike_pixels"]
        stats.kept_pixels += r["kept_pixels"]
