"""End-to-end restoration of reels and image sequences.

Decoding, inference and encoding overlap: a reader thread fills a bounded queue, the calling
thread runs the network, a writer thread drains a second bounded queue. Memory therefore stays at
a few frames whatever the reel's length. Any error or Ctrl-C stops all three stages, and the
writers delete their temporary files, so nothing is ever left under the final output name.
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .engine import Restorer
from .errors import FilmcleanError, InputError, OutputError
from .sequence import TemporalRestorer, Window, windows
from .spikes import SpikeOptions

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
                    raise s.error from None  # the stage's own exception, as if raised here
            if stop.is_set():
                return _DONE


class _Budget:
    """Bytes of frames between reading and writing; the reader waits while the budget is spent
    (an item larger than the whole budget still goes through, alone)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, stop: threading.Event) -> bool:
        with self._cond:
            while self.used > 0 and self.used + n > self.limit:
                if stop.is_set():
                    return False
                self._cond.wait(timeout=0.1)
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


IN_FLIGHT_BYTES = 1 << 30
"""Most bytes of decoded frames held between reader, network and writer (a few 4K frames; one
100-megapixel scan at a time)."""


def run_stages(
    source: Iterable[Any],
    process: Callable[[Any], Any],
    sink: Callable[[Any], None],
    queue_size: int = 4,
    size_of: Callable[[Any], int] = lambda item: 0,
    budget: int = IN_FLIGHT_BYTES,
) -> None:
    """Run ``sink(process(item))`` for every item of ``source`` with the three stages overlapped.

    ``source`` is iterated in a reader thread and ``sink`` is called in a writer thread, both in
    order; ``process`` runs in the calling thread. The first exception raised anywhere (including
    ``KeyboardInterrupt`` here) stops every stage and is re-raised here. At most ``queue_size``
    items wait in each queue, and the items between reading and the end of their ``sink`` weigh
    at most ``budget`` bytes by ``size_of`` (one item at a time when an item alone is larger).
    """
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=queue_size)
    spent = _Budget(budget)

    def read() -> None:
        for item in source:
            n = size_of(item)
            if not spent.acquire(n, stop) or not _put(q_in, (item, n), stop):
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
            out, n = item
            sink(out)
            del item, out
            spent.release(n)

    reader = _Stage(read, "filmclean-reader")
    writer = _Stage(write, "filmclean-writer")
    reader.start()
    writer.start()
    try:
        while True:
            got = _get(q_in, stop, [reader, writer])
            if got is _DONE:
                break
            item, n = got
            out = (process(item), n)
            del got, item
            while True:
                if writer.error is not None:
                    raise writer.error
                try:
                    q_out.put(out, timeout=0.1)
                    break
                except queue.Full:
                    continue
            del out
        _put(q_out, _DONE, stop)
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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[fps]:.2f} fps"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task(description, total=total, fps=0.0)

    def __enter__(self) -> Progress:
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
    #: restore only frames ``first`` to ``last`` (indices from 0, both included), keeping their
    #: timestamps, video only: a chunk for ``filmclean join`` (see :class:`filmclean.io.video.VideoReader`)
    frames: tuple[int, int] | None = None
    #: a protection matte (:class:`filmclean.matte.Matte`): white pixels pass through untouched
    matte: Path | None = None
    #: a matte for a matte-guided restorer (:func:`filmclean.api.open_matte_restorer`), and how it
    #: is used: ``"exact"`` (repair there and nowhere else) or ``"add"`` (besides what the model finds)
    guide: Path | None = None
    guide_mode: str = "exact"
    #: bits of the ``mask_out`` video's samples (8 or 16); ``None``: 16 for sources of more than 8 bits
    mask_bits: int | None = None


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
    alone: int = 0  # frames restored without neighbours (none usable)
    spike_pixels: int = 0  # pixels repaired from the aligned neighbours (spike test)
    kept_pixels: int = 0  # single-frame repairs left undone: the neighbours show the same
    notes: list[str] = field(default_factory=list)  # things the user should know, one line each
    infrared_pixels: int = 0  # pixels the infrared channel marked as defects

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        s = f"{self.frames} frame(s) in {self.seconds:.1f} s ({self.fps:.2f} fps; model {self.model_seconds:.1f} s) with {self.backend}"
        if self.temporal:
            s += f"; temporal (alignment {self.flow_seconds:.1f} s, {self.cuts} scene cut(s)"
            if self.spike_pixels or self.kept_pixels:
                s += (
                    f", {self.spike_pixels} px of one-frame damage repaired from the neighbours, "
                    f"{self.kept_pixels} px the neighbours show too left as they are"
                )
            if self.alone:
                s += f", {self.alone} frame(s) without a usable neighbour restored alone"
            s += ")"
        if self.infrared_pixels:
            s += f"; {self.infrared_pixels} px marked by the infrared channel"
        if self.skipped:
            s += f"; {self.skipped} already done, skipped"
        return s


def restore_video(
    input_path: str | Path,
    output_path: str | Path,
    restorer: Restorer,
    options: VideoOptions = VideoOptions(),
    quiet: bool = False,
) -> RunStats:
    """Restore a reel: decode with PyAV, restore every frame, encode, copy the other streams.

    The output is written under a temporary name and renamed when complete. Audio, subtitle and
    data streams are copied packet for packet; frame timestamps, rate, size and bit depth are kept.
    """
    from .io import check_output_path, same_file
    from .io.video import PacketItem, VideoFrameItem, VideoReader, probe_video
    from .io.video_write import MaskWriter, VideoWriter

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
    _check_range(info, options)
    matte = None
    if options.matte is not None:
        from .matte import Matte

        matte = Matte(options.matte)
        if matte.kind != "image" and (options.start is not None or options.end is not None):
            raise InputError(
                "a matte sequence or video is matched by frame number: use --frames, not --start/--end", inp
            )
    guide_matte = None if options.guide is None else _guide_source(options.guide, options.guide_mode, restorer)
    if (
        guide_matte is not None
        and guide_matte[0].kind != "image"
        and (options.start is not None or options.end is not None)
    ):
        raise InputError("a matte sequence or video is matched by frame number: use --frames, not --start/--end", inp)
    first = options.frames[0] if options.frames is not None else 0
    tr = TemporalRestorer(restorer, temporal=options.temporal, spikes=SpikeOptions())
    stats = RunStats(backend=restorer.backend.describe(), temporal=tr.use_neighbours)
    t0 = time.perf_counter()

    with VideoReader(
        inp, start=options.start, end=options.end, context=1 if tr.use_neighbours else 0, frames=options.frames
    ) as reader:
        total = _expected_frames(info, options)
        with VideoWriter(
            out,
            info,
            reader.container if options.frames is None else None,  # a chunk is video alone
            codec=options.codec,
            crf=options.crf,
            pix_fmt=options.pix_fmt,
            force=options.force,
        ) as writer:
            mask_writer = (
                MaskWriter(Path(options.mask_out), info, force=options.force, bits=options.mask_bits)
                if options.mask_out is not None
                else None
            )
            try:
                with Progress(f"restoring {inp.name}", total, quiet) as progress:

                    def process(item: Any) -> Any:
                        if isinstance(item, (VideoFrameItem, Window)):
                            win = item if isinstance(item, Window) else Window(item, item.index)
                            t = time.perf_counter()
                            shape = win.current.rgb.shape[:2]
                            number = first + win.current.index
                            protect = None if matte is None else matte.get(number, shape)
                            res = tr.restore(
                                win,
                                rgb=_rgb_of,
                                in_place=not tr.use_neighbours,
                                mask=mask_writer is not None,
                                protect=protect,
                                guide=_guide_for(guide_matte, number, shape),
                            )
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

                    source = windows(reader, is_frame=_is_frame, is_output=_is_output) if tr.use_neighbours else reader
                    run_stages(source, process, sink, size_of=_item_bytes)
                tr.fill_stats(stats)
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


GUIDE_MODES = ("exact", "add")


def _guide_source(path: Path, mode: str, restorer: Restorer) -> tuple[Any, float]:
    """``(matte, detection weight)`` for a matte-guided run; one-line errors otherwise."""
    from .matte import Matte

    if mode not in GUIDE_MODES:
        raise FilmcleanError(f"--matte-mode must be one of {', '.join(GUIDE_MODES)}, got {mode!r}")
    if not getattr(restorer, "guided", False):
        raise FilmcleanError("--matte needs a matte-guided restorer (filmclean.api.open_matte_restorer)")
    return Matte(path), 0.0 if mode == "exact" else 1.0


def _guide_for(
    source: tuple[Any, float] | None, number: int, shape: tuple[int, int], name: str | None = None
) -> np.ndarray | None:
    """The ``(2, H, W)`` guide of frame ``number``: the matte (1 inside) and the detection weight."""
    if source is None:
        return None
    matte, keep = source
    inside = matte.get(number, shape, name)
    return np.stack([inside.astype(np.float32), np.full(shape, keep, np.float32)])


def _with_infrared(
    guide: np.ndarray | None, data: Any, path: Path, threshold: float | None, stats: RunStats
) -> np.ndarray | None:
    """``guide`` with the defects of ``data``'s infrared channel added (``threshold`` ``None``: as
    it is). A channel that repeats the picture adds nothing; the reason goes to ``stats.notes``."""
    if threshold is None:
        return guide
    from .infrared import infrared_defects

    if data.alpha is None:
        raise InputError("--infrared: the image has no fourth (infrared) channel", path)
    h, w = data.rgb.shape[:2]
    if guide is None:
        guide = np.stack([np.zeros((h, w), np.float32), np.ones((h, w), np.float32)])
    found = infrared_defects(data.rgb, data.alpha, threshold)
    if found.mask is None:
        note = f"{path.name}: {found.reason}"
        if not any(n.endswith(found.reason or "") for n in stats.notes):
            stats.notes.append(note)
        return guide
    stats.infrared_pixels += int(found.mask.sum())
    guide[0] = np.maximum(guide[0], found.mask.astype(np.float32))
    return guide


def _item_bytes(item: Any) -> int:
    frame = item.current if isinstance(item, Window) else item
    rgb = getattr(frame, "rgb", None)
    return int(rgb.nbytes) if rgb is not None else 0


def _check_range(info: Any, options: VideoOptions) -> None:
    """Refuse, in one line, a time range that is not numbers of seconds or lies past the video's end."""
    for name, value in (("--start", options.start), ("--end", options.end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InputError(f"{name} {value} is not a time in seconds", info.path)
    if options.frames is not None and (options.start is not None or options.end is not None):
        raise InputError("--frames cannot be combined with --start/--end", info.path)
    if options.start is not None and options.end is not None and options.end <= options.start:
        raise InputError(f"--end {options.end} must be after --start {options.start}", info.path)
    if options.start is not None and info.duration and options.start >= info.duration:
        raise InputError(
            f"--start {options.start:g} s is at or after the end of the video ({info.duration:.3f} s)", info.path
        )


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
    if options.frames is not None:
        first, last = options.frames
        return max(0, min(last + 1, n) - first) if n else last - first + 1
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


def sequence_by_content(files: list[Path], pairs: int = 3) -> bool:
    """Whether image files whose names look like a sequence also look like one: of the first
    ``pairs`` consecutive pairs, most are of one size and show one scene
    (:func:`filmclean.temporal.related`). Scanner software numbers unrelated stills (``scan0001.tif``,
    ``scan0002.tif``, ...) just as a film scanner numbers frames; only the pictures tell them apart.
    The images are read one at a time and only small copies are kept."""
    import cv2

    from .io.images import read_image
    from .temporal import AGREEMENT_SIZE, related

    thumbs: list[tuple[tuple[int, int], np.ndarray]] = []
    for f in files[: pairs + 1]:
        image = read_image(f)
        h, w = image.height, image.width
        scale = min(1.0, AGREEMENT_SIZE / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = np.clip(np.nan_to_num(image.rgb), 0.0, 1.0)
        thumbs.append(((h, w), cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)))
        del image, rgb
    votes = [sa == sb and related(ta, tb) for (sa, ta), (sb, tb) in zip(thumbs, thumbs[1:])]
    return 2 * sum(votes) > len(votes)


def restore_frames(
    spec: str | Path,
    out_dir: str | Path,
    restorer: Restorer,
    force: bool = False,
    mask_dir: str | Path | None = None,
    quiet: bool = False,
    temporal: bool = True,
    frames: tuple[int, int] | None = None,
    matte: str | Path | None = None,
    mask_format: str = "png",
    guide: str | Path | None = None,
    guide_mode: str = "exact",
    infrared: float | None = None,
) -> RunStats:
    """Restore still images or an image sequence into ``out_dir`` with the same names and formats.

    ``guide``/``guide_mode``: a matte for a matte-guided restorer (see :class:`VideoOptions`).
    ``infrared``: the files' fourth channel is a scanner's infrared record; its defects
    (:func:`filmclean.infrared.infrared_defects` with this threshold) are added to what a
    matte-guided restorer finds, and the channel is written back unchanged. A channel that repeats
    the picture is not used (one note in the statistics).
    ``mask_format``: the masks' format (:data:`MASK_FORMATS`). ``matte``: a protection matte (:class:`filmclean.matte.Matte`; a sequence is matched to the
    files by name, else by position): its white pixels pass through untouched.

    ``frames``: only the files ``first`` to ``last`` of the sorted list (indices from 0, both
    included; a ``last`` past the end stops at the end), with the files just outside the range read
    as neighbours, so that chunks restored apart equal one run over all the files.

    Finished outputs already in ``out_dir`` are skipped (so an interrupted run resumes) unless
    ``force``. Each output is written under a temporary name and renamed when complete; partial
    files left in the output folders by a killed run are removed first. With a temporal network
    and ``temporal``, the frames of a sequence (:func:`looks_like_sequence`) are restored with
    their neighbours (a skipped frame is still read when a neighbour needs it); unrelated stills
    are always restored one by one, and so are numbered files that do not look like one sequence
    (:func:`sequence_by_content`). ``mask_dir`` receives each frame's damage mask as a 16-bit
    greyscale PNG named after the frame. Output and mask files are checked against the inputs and
    against each other before anything is written (:func:`check_frame_outputs`); folders this call
    creates are removed again if it fails before writing into them.
    """
    from .io import remove_stale_partials
    from .io.images import list_images

    files = list_images(spec)
    chosen = files
    if frames is not None:
        first, last = frames
        if not 0 <= first <= last:
            raise InputError(f"invalid frame range {first}-{last} (need 0 <= FIRST <= LAST)", Path(spec))
        if first >= len(files):
            raise InputError(f"no frames in the range {first}-{last}: there are {len(files)} file(s)", Path(spec))
        chosen = files[first : last + 1]
    out = Path(out_dir)
    mdir = Path(mask_dir) if mask_dir is not None else None
    if mdir is not None and not restorer.has_mask:
        raise FilmcleanError("--mask-out: this model predicts no damage mask", mdir)
    if mask_format not in MASK_FORMATS:
        raise FilmcleanError(f"mask format must be one of {', '.join(MASK_FORMATS)}, got {mask_format!r}")
    check_frame_outputs(files, out, mdir, mask_format)
    created = [d for d in (out, mdir) if d is not None and _make_folder(d)]
    try:
        for d in (out, mdir):
            if d is not None:
                remove_stale_partials(d)
        from .matte import Matte

        protection = None if matte is None else Matte(matte)
        guided = None if guide is None else _guide_source(Path(guide), guide_mode, restorer)
        if infrared is not None and not getattr(restorer, "guided", False):
            raise FilmcleanError("--infrared needs a matte-guided restorer (filmclean.api.open_matte_restorer)")
        return _restore_files(
            files, out, mdir, restorer, force, quiet, temporal, chosen, protection, mask_format, guided, infrared
        )
    except BaseException:
        for d in created:
            _remove_if_empty(d)
        raise


MASK_FORMATS: dict[str, tuple[str, Literal["float"] | int]] = {
    "png": (".png", 16),
    "tiff": (".tif", 16),
    "exr": (".exr", "float"),
}
"""``--mask-format`` of ``frames``: extension and sample type of the damage masks (16-bit grey PNG
or TIFF, or 32-bit float EXR, which keeps the probability exactly)."""


def mask_name_for(src: Path, mask_dir: Path, fmt: str = "png") -> Path:
    """Where :func:`restore_frames` writes the damage mask of ``src`` in format ``fmt``."""
    return mask_dir / (src.stem + MASK_FORMATS[fmt][0])


def check_frame_outputs(files: list[Path], out: Path, mask_dir: Path | None, mask_format: str = "png") -> None:
    """Refuse, before anything is written, any output or mask file that would replace an input, and
    masks that would replace restored outputs (or each other): one place for these checks.

    Raises :class:`OutputError` naming the folder."""
    from .io import same_file

    for d, what in ((out, "output"), (mask_dir, "--mask-out")):
        if d is not None and d.exists() and not d.is_dir():
            raise OutputError(f"{what} must be a folder", d)
    inputs = {p.resolve() for p in files}
    input_dirs = {p.resolve().parent for p in files}
    if any(output_name_for(f, out).resolve() in inputs for f in files):
        raise OutputError("output folder is the input folder: outputs would overwrite the inputs", out)
    if mask_dir is None:
        return
    if mask_dir.resolve() in input_dirs or any(
        mask_name_for(f, mask_dir, mask_format).resolve() in inputs for f in files
    ):
        raise OutputError("--mask-out is the input folder: masks would be written among (or over) the inputs", mask_dir)
    if mask_dir.resolve() == out.resolve() or (mask_dir.exists() and out.exists() and same_file(mask_dir, out)):
        raise OutputError(
            "--mask-out must differ from the output folder: masks would replace restored images", mask_dir
        )
    names = [mask_name_for(f, mask_dir, mask_format).name for f in files]
    clash = {n for n in names if names.count(n) > 1}
    if clash:
        raise OutputError(
            f"two inputs would share the mask file {sorted(clash)[0]} (same name, other extension)", mask_dir
        )


def _make_folder(folder: Path) -> bool:
    """Create ``folder`` (and its parents) if needed; whether this call created it. One-line
    :class:`OutputError` when it cannot be made or written."""
    from .io import error_reason

    existed = folder.is_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {error_reason(exc)}", folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError("output folder is not writable", folder)
    return not existed


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only succeeds when empty
    except OSError:
        pass


def _restore_files(
    files: list[Path],
    out: Path,
    mdir: Path | None,
    restorer: Restorer,
    force: bool,
    quiet: bool,
    temporal: bool,
    chosen: list[Path] | None = None,
    matte: Any = None,
    mask_format: str = "png",
    guided: tuple[Any, float] | None = None,
    infrared: float | None = None,
) -> RunStats:
    """Restore ``chosen`` (default: all ``files``) of the list ``files``, which is what decides
    whether they are a sequence and which files are each one's neighbours."""
    from .io.images import ImageData, read_image, write_image

    todo: list[Path] = []
    stats = RunStats(backend=restorer.backend.describe())
    for f in files if chosen is None else chosen:
        if output_name_for(f, out).exists() and not force:
            stats.skipped += 1
            continue
        todo.append(f)
    sequence = temporal and looks_like_sequence(files) and sequence_by_content(files)
    tr = TemporalRestorer(restorer, temporal=sequence, spikes=SpikeOptions())
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
            protect = None if matte is None else matte.get(position[f], data.rgb.shape[:2], f.stem)
            # without neighbours nothing reads the frame again: restore it in place (one frame-sized
            # buffer fewer, which is what keeps a 100-megapixel scan within a few GB)
            res = tr.restore(
                win,
                rgb=_rgb_of_pair,
                in_place=not tr.use_neighbours,
                mask=mdir is not None,
                protect=protect,
                guide=_with_infrared(
                    _guide_for(guided, position[f], data.rgb.shape[:2], f.stem), data, f, infrared, stats
                ),
            )
            stats.model_seconds += time.perf_counter() - t
            return f, data, res

        def sink(triple: Any) -> None:
            f, data, res = triple
            write_image(output_name_for(f, out), res.image, like=data, force=True)
            if mdir is not None and res.mask is not None:
                grey = np.broadcast_to(res.mask[:, :, None], (*res.mask.shape, 3))
                write_image(
                    mask_name_for(f, mdir, mask_format),
                    ImageData(rgb=grey, alpha=None, bits=MASK_FORMATS[mask_format][1], fmt=mask_format, grey=True),
                    force=True,
                )
            stats.frames += 1
            progress.advance()

        run_stages(source(), process, sink, size_of=_window_bytes)
    tr.fill_stats(stats)
    stats.seconds = time.perf_counter() - t0
    return stats


def _window_bytes(win: Any) -> int:
    return int(win.current[1].rgb.nbytes)


def _rgb_of_pair(pair: Any) -> np.ndarray:
    return pair[1].rgb
