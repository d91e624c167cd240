"""End-to-end restoration of reels and image sequences.

Decoding, inference and encoding overlap: a reader thread fills a bounded queue, the calling
thread runs the network, a writer thread drains a second bounded queue. Memory therefore stays at
a few frames whatever the reel's length. Any error or Ctrl-C stops all three stages, and the
writers delete their temporary files, so nothing is ever left under the final output name.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Restorer
from .errors import FilmcleanError, InputError, OutputError
from .sequence import TemporalRestorer, Window, windows

_DONE = object()


class _Stage(threading.Thread):
    """A daemon thread whose exception is kept and re-raised by :meth:`check`."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # re-raised in the calling thread
            self.error = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, stages: list[_Stage]) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            for s in stages:
                if s.error is not None:
                    raise s.error
            if stop.is_set():
                return _DONE


def run_stages(source: Iterable[Any], process: Callable[[Any], Any], sink: Callable[[Any], None],
               queue_size: int = 4) -> None:
    """Run ``sink(process(item))`` for every item of ``source`` with the three stages overlapped.

    ``source`` is iterated in a reader thread and ``sink`` is called in a writer thread, both in
    order; ``process`` runs in the calling thread. The first exception raised anywhere (including
    ``KeyboardInterrupt`` here) stops every stage and is re-raised here.
    """
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=queue_size)

    def read() -> None:
        for item in source:
            if not _put(q_in, item, stop):
                return
        _put(q_in, _DONE, stop)

    def write() -> None:
        while True:
            try:
                item = q_out.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is _DONE:
                return
            sink(item)

    reader = _Stage(read, "filmclean-reader")
    writer = _Stage(write, "filmclean-writer")
    reader.start()
    writer.start()
    try:
        while True:
            item = _get(q_in, stop, [reader, writer])
            if item is _DONE:
                break
            out = process(item)
            while True:
                if writer.error is not None:
                    raise writer.error
                try:
                    q_out.put(out, timeout=0.1)
                    break
                except queue.Full:
                    continue
        if not _put(q_out, _DONE, stop):
            pass
        while writer.is_alive():
            writer.join(timeout=0.1)
        if writer.error is not None:
            raise writer.error
        if reader.error is not None:
            raise reader.error
    except BaseException:
        stop.set()
        reader.join(timeout=5)
        writer.join(timeout=5)
        raise
    finally:
        stop.set()


class Progress:
    """Rich progress bar with frames, fps and ETA; silent when ``quiet``."""

    def __init__(self, description: str, total: int | None, quiet: bool) -> None:
        self.quiet = quiet
        self.count = 0
        self.start = time.perf_counter()
        self._bar = None
        if not quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TaskProgressColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TaskProgressColumn(), TextColumn("{task.fields[fps]:.2f} fps"),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task(description, total=total, fps=0.0)

    def __enter__(self) -> "Progress":
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def advance(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            fps = self.count / max(1e-9, time.perf_counter() - self.start)
            self._bar.update(self._task, advance=n, fps=fps)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@dataclass(frozen=True)
class VideoOptions:
    """Output settings for :func:`restore_video` (``None`` = chosen from the output extension)."""

    codec: str | None = None
    crf: int | None = None
    pix_fmt: str | None = None
    start: float | None = None
    end: float | None = None
    force: bool = False
    mask_out: Path | None = None
    temporal: bool = True


@dataclass
class RunStats:
    frames: int = 0
    skipped: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    backend: str = ""
    temporal: bool = False
    flow_seconds: float = 0.0
    cuts: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        s = f"{self.frames} frame(s) in {self.seconds:.1f} s ({self.fps:.2f} fps; model {self.model_seconds:.1f} s) with {self.backend}"
        if self.temporal:
            s += f"; temporal (alignment {self.flow_seconds:.1f} s, {self.cuts} scene cut(s))"
        if self.skipped:
            s += f"; {self.skipped} already done, skipped"
        return s


def restore_video(input_path: str | Path, output_path: str | Path, restorer: Restorer,
                  options: VideoOptions = VideoOptions(), quiet: bool = False) -> RunStats:
    """Restore a reel: decode with PyAV, restore every frame, encode, copy the other streams.

    The output is written under a temporary name and renamed when complete. Audio, subtitle and
    data streams are copied packet for packet; frame timestamps, rate, size and bit depth are kept.
    """
    from .io import check_output_path, same_file
    from .io.video import MaskWriter, PacketItem, VideoFrameItem, VideoReader, VideoWriter, probe_video

    inp, out = Path(input_path), Path(output_path)
    if not inp.exists():
        raise InputError("file not found", inp)
    check_output_path(out, source=inp, force=options.force)
    if options.mask_out is not None:
        if not restorer.has_mask:
            raise FilmcleanError("--mask-out: this model predicts no damage mask", options.mask_out)
        check_output_path(options.mask_out, source=inp, force=options.force)
        if same_file(options.mask_out, out) or Path(options.mask_out).absolute() == out.absolute():
            raise OutputError("--mask-out must differ from the restored output", options.mask_out)
    info = probe_video(inp)
    tr = TemporalRestorer(restorer, temporal=options.temporal)
    stats = RunStats(backend=restorer.backend.describe(), temporal=tr.use_neighbours)
    t0 = time.perf_counter()

    with VideoReader(inp, start=options.start, end=options.end, context=1 if tr.use_neighbours else 0) as reader:
        total = _expected_frames(info, options)
        with VideoWriter(out, info, reader.container, codec=options.codec, crf=options.crf, pix_fmt=options.pix_fmt,
                         force=options.force) as writer:
            mask_writer = (MaskWriter(Path(options.mask_out), info, force=options.force)
                           if options.mask_out is not None else None)
            try:
                with Progress(f"restoring {inp.name}", total, quiet) as progress:

                    def process(item: Any) -> Any:
                        if isinstance(item, (VideoFrameItem, Window)):
                            win = item if isinstance(item, Window) else Window(item, item.index)
                            t = time.perf_counter()
                            res = tr.restore(win, rgb=_rgb_of)
                            stats.model_seconds += time.perf_counter() - t
                            return replace(win.current, rgb=res.image), res.mask, win.current
                        return item, None, None

                    def sink(triple: Any) -> None:
                        item, mask, src = triple
                        if isinstance(item, PacketItem):
                            writer.write_packet(item)
                            return
                        writer.write_frame(item)
                        if mask_writer is not None and mask is not None:
                            mask_writer.write(src, mask)
                        stats.frames += 1
                        progress.advance()

                    source = (windows(reader, is_frame=_is_frame, is_output=_is_output) if tr.use_neighbours
                              else reader)
                    run_stages(source, process, sink)
                stats.flow_seconds, stats.cuts = tr.flow_seconds, tr.cuts
                if stats.frames == 0:
                    raise InputError("no video frames decoded in the requested range", inp)
                if mask_writer is not None:
                    mask_writer.close()
            except BaseException:
                if mask_writer is not None:
                    mask_writer.abort()
                raise
    stats.seconds = time.perf_counter() - t0
    return stats


def _rgb_of(item: Any) -> np.ndarray:
    return item.rgb


def _is_frame(item: Any) -> bool:
    from .io.video import VideoFrameItem

    return isinstance(item, VideoFrameItem)


def _is_output(item: Any) -> bool:
    return not getattr(item, "context", False)


def _expected_frames(info: Any, options: VideoOptions) -> int | None:
    """Frame count for the progress bar (from the header, or duration x rate for a range)."""
    n = info.n_frames
    fps = float(info.fps) if info.fps else 0.0
    if (options.start is not None or options.end is not None) and fps > 0:
        dur = info.duration or ((n / fps) if n else None)
        if dur is None:
            return None
        start = options.start or 0.0
        end = min(options.end, dur) if options.end is not None else dur
        return max(0, round((end - start) * fps))
    if not n and info.duration and fps > 0:
        n = round(info.duration * fps)
    return n or None


def output_name_for(src: Path, out_dir: Path) -> Path:
    return out_dir / src.name


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def looks_like_sequence(files: list[Path]) -> bool:
    """Whether ``files`` (sorted) are frames of one sequence: at least two, one extension, and names
    that differ only in a frame number (``reel_000123.dpx``). Unrelated stills are not."""
    if len(files) < 2 or len({f.suffix.lower() for f in files}) != 1:
        return False
    keys = set()
    for f in files:
        m = _NUMBERED.match(f.stem)
        if m is None:
            return False
        keys.add((f.parent, m.group(1), m.group(3)))
    return len(keys) == 1


def restore_frames(spec: str | Path, out_dir: str | Path, restorer: Restorer, force: bool = False,
                   mask_dir: str | Path | None = None, quiet: bool = False, temporal: bool = True) -> RunStats:
    """Restore still images or an image sequence into ``out_dir`` with the same names and formats.

    Finished outputs already in ``out_dir`` are skipped (so an interrupted run resumes) unless
    ``force``. Each output is written under a temporary name and renamed when complete.
    With a temporal network and ``temporal``, the frames of a sequence (:func:`looks_like_sequence`)
    are restored with their neighbours (a skipped frame is still read when a neighbour needs it);
    unrelated stills are always restored one by one.
    """
    from .io.images import ImageData, list_images, read_image, write_image

    files = list_images(spec)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError("output must be a folder", out)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise OutputError("output folder is not writable", out)
    in_res = {p.resolve() for p in files}
    mdir = Path(mask_dir) if mask_dir is not None else None
    if mdir is not None and not restorer.has_mask:
        raise FilmcleanError("--mask-out: this model predicts no damage mask", mdir)
    if mdir is not None:
        mdir.mkdir(parents=True, exist_ok=True)
    todo: list[Path] = []
    stats = RunStats(backend=restorer.backend.describe())
    for f in files:
        target = output_name_for(f, out)
        if target.resolve() in in_res:
            raise OutputError("output folder is the input folder: outputs would overwrite the inputs", out)
        if target.exists() and not force:
            stats.skipped += 1
            continue
        todo.append(f)
    tr = TemporalRestorer(restorer, temporal=temporal and looks_like_sequence(files))
    stats.temporal = tr.use_neighbours
    t0 = time.perf_counter()
    position = {f: i for i, f in enumerate(files)}

    def source() -> Iterator[Any]:
        cache: dict[int, Any] = {}
        for f in todo:
            i = position[f]
            if not tr.use_neighbours:
                yield Window((f, read_image(f)), i)
                continue
            for j in (i - 1, i, i + 1):
                if 0 <= j < len(files) and j not in cache:
                    cache[j] = (files[j], read_image(files[j]))
            yield Window(cache[i], i, cache.get(i - 1), cache.get(i + 1))
            cache = {j: v for j, v in cache.items() if j >= i}

    with Progress(f"restoring {len(todo)} image(s)", len(todo), quiet) as progress:

        def process(win: Any) -> Any:
            f, data = win.current
            t = time.perf_counter()
            res = tr.restore(win, rgb=_rgb_of_pair)
            stats.model_seconds += time.perf_counter() - t
            return f, data, res

        def sink(triple: Any) -> None:
            f, data, res = triple
            write_image(output_name_for(f, out), res.image, like=data, force=True)
            if mdir is not None and res.mask is not None:
                grey = np.repeat(res.mask[:, :, None], 3, axis=2)
                write_image(mdir / (f.stem + ".png"), ImageData(rgb=grey, alpha=None, bits=16, fmt="png", grey=True),
                            force=True)
            stats.frames += 1
            progress.advance()

        run_stages(source(), process, sink)
    stats.flow_seconds, stats.cuts = tr.flow_seconds, tr.cuts
    stats.seconds = time.perf_counter() - t0
    return stats


def _rgb_of_pair(pair: Any) -> np.ndarray:
    return pair[1].rgb
