"""Evaluation of restoration methods on a clip: the still-image protocol of :mod:`filmclean.evaluate`
applied to consecutive frames, plus temporal stability.

The clean frames ``first .. last`` of a clip are read once (optionally downscaled), damaged once
with :func:`filmclean.train.synth.dustify_sequence` (a fixed seed: independent dust in every
frame, scratches that persist across frames), and every method restores the whole damaged
sequence and, separately, the whole clean sequence. Scores (see :data:`CLIP_DEFINITIONS`):

- per frame, against the clean frame: SSIM/PSNR of the damaged input, of the output on the
  damaged sequence and of the output on the clean sequence (the settings of :func:`evaluate.ssim`);
- flicker: the mean over ``t`` of ``mean |out_t - out_{t-1}|`` (pixels and channels averaged),
  reported next to the clean clip's own value (true motion counts too, so the clean clip's
  flicker is the baseline): ``added_flicker`` = flicker of the output on the damaged sequence
  minus the clean clip's flicker;
- temporal error: the mean over ``t`` of ``mean |(out_t - out_{t-1}) - (clean_t - clean_{t-1})|``,
  the frame-to-frame change that the clean clip does not have (0 for a perfect restoration);
- seconds per frame.

Methods (:class:`ClipMethod`) map a sequence to a sequence of the same length; built in (see
:func:`parse_clip_method`): ``identity``, ``tmedian[:radius=R]`` (FFmpeg's temporal median,
:func:`filmclean.classical.tmedian`), ``single[:PATH]`` (a model restoring every frame alone) and
``temporal[:PATH]`` (a temporal model with its motion-aligned neighbours). Heavy libraries are
imported inside the functions that need them.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import DEFAULT_TILE
from .errors import InputError, ModelError
from .evaluate import (
    SSIM_SETTINGS,
    _as_output,
    _fmt,
    _new_figure,
    _parse_params,
    _pm,
    _psnr_stats,
    _report_dir,
    _stats,
    _write_csv,
    _write_json,
    psnr,
    ssim,
)

__all__ = [
    "CLIP_DEFINITIONS",
    "ClipEvaluation",
    "ClipFrames",
    "ClipMethod",
    "FrameScores",
    "clip_table",
    "evaluate_clip",
    "evaluate_sequence",
    "identity_clip_method",
    "model_clip_method",
    "parse_clip_method",
    "read_clip",
    "tmedian_clip_method",
    "write_clip_report",
]

DEFAULT_CLIP_METHODS: tuple[str, ...] = ("identity", "tmedian", "single")
#: side of the square crop shown in ``strip.png`` (smaller frames: their shorter side)
STRIP_CROP = 192

CLIP_DEFINITIONS: dict[str, str] = {
    "ssim": ("skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
             "use_sample_covariance=False, data_range=1.0, channel_axis=-1) on float64 RGB in [0, 1], per frame"),
    "psnr": "skimage.metrics.peak_signal_noise_ratio(clean, x, data_range=1.0) in dB per frame (inf = identical)",
    "ssim_input": "SSIM(damaged_t, clean_t): the damage of the input frame",
    "ssim_damaged_in": "SSIM(method(damaged sequence)_t, clean_t): how well frame t is repaired",
    "ssim_clean_in": "SSIM(method(clean sequence)_t, clean_t): how much a clean frame is left intact (ideal 1)",
    "delta_ssim": "ssim_damaged_in - ssim_input; below 0 = made worse",
    "worse_share": "share of frames with delta_ssim < 0",
    "flicker": ("mean over t = 1..n-1 of mean|x_t - x_{t-1}| (absolute difference of consecutive frames, averaged "
                "over pixels and channels, values in [0, 1]); true motion counts too, so compare with flicker_clean"),
    "flicker_clean": "flicker of the clean clip itself (the baseline)",
    "flicker_input": "flicker of the damaged clip (the method's input)",
    "flicker_damaged_in": "flicker of the method's output on the damaged clip",
    "flicker_clean_in": "flicker of the method's output on the clean clip",
    "added_flicker": "flicker_damaged_in - flicker_clean (0 = as steady as the clean clip; > 0 = flicker added/left)",
    "added_flicker_clean_in": "flicker_clean_in - flicker_clean",
    "flicker_ratio": "flicker_damaged_in / flicker_clean",
    "temporal_error": ("mean over t = 1..n-1 of mean|(out_t - out_{t-1}) - (clean_t - clean_{t-1})|: frame-to-frame "
                       "change the clean clip does not have (0 = perfect); *_damaged_in / *_clean_in by input"),
    "seconds_per_frame": ("wall-clock seconds the method spent per frame (damaged and clean runs alike, waiting "
                          "for its outputs only), model loading excluded"),
    "sd": "population standard deviation over frames (ddof=0)",
}


# ------------------------------------------------------------------------------------------------
# reading a clip


@dataclass
class ClipFrames:
    """Clean frames of a clip: ``frames`` float32 ``(H, W, 3)`` in ``[0, 1]``; ``numbers``: their
    frame numbers in the clip (0 = first frame); ``settings``: what was read and how."""

    path: Path
    frames: list[np.ndarray]
    numbers: list[int]
    settings: dict[str, Any]


def _downscale(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    import cv2

    if size is None:
        return np.ascontiguousarray(rgb, dtype=np.float32)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(small, 0.0, 1.0), dtype=np.float32)


def _read_frames(path: Path, info: Any, start: Fraction | None, fps: Fraction, first: int, want: int | None,
                 size: tuple[int, int] | None, frames: list[np.ndarray]) -> None:
    """Append the decoded frames from ``start`` (``want`` of them, or all) to ``frames``."""
    from .io.video import VideoFrameItem, VideoReader

    with VideoReader(path, start=start) as reader:
        for item in reader:
            if not isinstance(item, VideoFrameItem) or item.context:
                continue
            if start is not None and not frames:
                tb = Fraction(info.time_base)
                shift = math.floor((info.start_time + start) / tb) * tb
                rel = item.pts * item.time_base + shift - info.start_time
                got = round(rel * fps)
                if got != first:
                    raise InputError(f"seeking to frame {first} found frame {got} (at {float(rel):.4f} s): the "
                                     "timestamps are not on the frame-rate grid (variable frame rate?)", path)
            rgb = item.rgb if item.rgb.shape[2] == 3 else np.repeat(item.rgb[..., :1], 3, axis=2)
            frames.append(_downscale(rgb, size))
            if want is not None and len(frames) >= want:
                break


def read_clip(clip_path: str | Path, first: int = 0, last: int | None = None,
              max_side: int | None = None) -> ClipFrames:
    """Read frames ``first .. last`` (inclusive, 0-based; ``None`` = to the end) of a video with PyAV
    (:class:`filmclean.io.video.VideoReader`), downscaled with ``cv2.INTER_AREA`` so that the longer
    side is at most ``max_side`` (never upscaled).

    With ``first > 0`` the reader seeks to frame ``first`` by time (frame k at ``k / fps`` from the
    first frame) and checks that the first frame read is that one; frames are then counted in
    decoding order. All frames are held in memory.

    Raises:
        InputError: unreadable clip (see :func:`filmclean.io.video.probe_video`), a bad range, a
            range beyond the clip's end, or timestamps off the frame-rate grid with ``first > 0``.
    """
    from .io.video import probe_video

    path = Path(clip_path).expanduser()
    if int(first) != first or first < 0:
        raise InputError(f"first frame must be a whole number >= 0, got {first}", path)
    if last is not None and (int(last) != last or last < first):
        raise InputError(f"last frame must be a whole number >= first ({first}), got {last}", path)
    if max_side is not None and (int(max_side) != max_side or max_side < 16):
        raise InputError(f"max side must be a whole number >= 16, got {max_side}")
    first = int(first)
    info = probe_video(path)
    if info.n_frames and first >= info.n_frames:
        raise InputError(f"first frame {first} is past the end of the clip ({info.n_frames} frames)", path)
    fps = Fraction(info.fps) if info.fps else Fraction(0)
    start: Fraction | None = None
    if first > 0:
        if fps <= 0:
            raise InputError("the clip declares no frame rate; cannot seek to a frame number (use --first 0)", path)
        start = (first - Fraction(1, 2)) / fps
    size = None
    h, w = info.height, info.width
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(16, round(w * scale)), max(16, round(h * scale)))
    want = None if last is None else int(last) - first + 1
    frames: list[np.ndarray] = []
    try:
        _read_frames(path, info, start, fps, first, want, size, frames)
    except InputError as exc:
        if frames or start is None or "no video frames" not in str(exc):
            raise
        raise InputError(f"first frame {first} is past the end of the clip", path) from None
    if want is not None and len(frames) < want:
        raise InputError(f"frames {first}-{last} requested, but the clip ends after frame {first + len(frames) - 1}",
                         path)
    numbers = list(range(first, first + len(frames)))
    oh, ow = frames[0].shape[:2]
    settings = {
        "clip": str(path), "codec": info.codec, "pix_fmt": info.pix_fmt, "fps": float(fps) if fps else None,
        "source_size": [info.width, info.height], "size": [ow, oh], "max_side": max_side,
        "resize": "cv2.INTER_AREA" if size is not None else None, "first": first, "last": numbers[-1],
        "n_frames": len(frames), "clip_frames": info.n_frames,
    }
    return ClipFrames(path, frames, numbers, settings)


# ------------------------------------------------------------------------------------------------
# methods


@dataclass
class ClipMethod:
    """A restoration method for sequences.

    ``run(frames)``: ``frames`` an iterable of ``(H, W, 3)`` float32 frames in ``[0, 1]`` (private
    copies the method may modify), read lazily; returns an iterable of as many ``(H, W, 3)`` frames,
    in order (clipped to ``[0, 1]`` and cast to float32). ``info``: facts for the report.
    """

    name: str
    run: Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]]
    description: str = ""
    kind: str = "custom"
    info: dict[str, Any] = field(default_factory=dict)


def identity_clip_method(name: str = "identity") -> ClipMethod:
    """Every frame unchanged."""
    return ClipMethod(name, lambda frames: frames, "returns its input unchanged", "reference")


def tmedian_clip_method(radius: int = 1, name: str | None = None) -> ClipMethod:
    """FFmpeg's temporal median (:func:`filmclean.classical.tmedian`) as a :class:`ClipMethod`."""
    from .classical import TMEDIAN_PIX_FMT, tmedian

    if int(radius) != radius or not 1 <= radius <= 127:
        raise InputError(f"tmedian radius must be a whole number in 1..127, got {radius}")
    r = int(radius)
    return ClipMethod(name or "tmedian", lambda frames: tmedian(frames, r),
                      f"FFmpeg tmedian=radius={r} (per-pixel median of {2 * r + 1} frames, ends clamped) via PyAV, "
                      f"{TMEDIAN_PIX_FMT}", "reference", info={"radius": r, "pix_fmt": TMEDIAN_PIX_FMT})


def model_clip_method(path: str | Path | None, temporal: bool, *, tile: int | None = DEFAULT_TILE, threshold: float = 0.5,
                      overlap: int | None = None, batch: int = 4, backend: str = "auto", device: str = "auto",
                      threads: int | None = None, name: str | None = None, dust: str = "any",
                      tta: int = 1) -> ClipMethod:
    """A model run by :func:`filmclean.sequence.restore_sequence`: ``temporal=False`` restores every
    frame alone, ``temporal=True`` with its motion-aligned neighbours (needs a temporal network).

    ``path=None``: the shipped model (with ``temporal``, the shipped temporal model when one is
    installed). Raises :class:`ModelError` when the model cannot load, or when ``temporal`` is asked
    of a single-frame network.
    """
    from .api import open_restorer
    from .engine import RestoreOptions
    from .model import TEMPORAL_STEM, default_model_paths, file_digest
    from .sequence import restore_sequence

    options = RestoreOptions(tile=tile, overlap=overlap, batch=batch, threshold=threshold, dust=dust, tta=tta)
    restorer = open_restorer(path, options, backend=backend, device=device, threads=threads, temporal=temporal)
    be = restorer.backend
    if path is None:
        st, ox = default_model_paths(TEMPORAL_STEM) if temporal else (None, None)
        if st is None and ox is None:
            st, ox = default_model_paths()
        file = st or ox
    else:
        file = Path(path)
    if temporal and not restorer.temporal:
        where = file if file is not None else None
        if path is None:
            raise ModelError("the shipped default model is single-frame; the temporal method needs a temporal "
                             "model file (temporal:PATH)", where)
        raise ModelError("is a single-frame model (3-channel input); the temporal method needs a temporal model "
                         "file (temporal:PATH)", where)
    label = name or (("temporal" if temporal else "single") + ("" if path is None else f":{Path(path).name}"))
    info = {"file": str(file) if file else None, "sha256_12": file_digest(file) if file else None,
            "backend": be.describe(), "network_temporal": restorer.temporal, "uses_neighbours": temporal,
            "tile": tile, "overlap": restorer.overlap, "batch": batch,
            "threshold": threshold if restorer.has_mask else None, "dust": dust if restorer.has_mask else None,
            "tta": tta}

    def run(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for rf in restore_sequence(frames, restorer, temporal=temporal):
            yield rf.image

    how = "with motion-aligned neighbours" if temporal else "every frame alone"
    return ClipMethod(label, run, f"model {file.name if file else 'default'} via {be.describe()}, {how}", "model",
                      info=info)


def parse_clip_method(spec: str, *, tile: int | None = DEFAULT_TILE, threshold: float = 0.5, overlap: int | None = None,
                      batch: int = 4, backend: str = "auto", device: str = "auto",
                      threads: int | None = None, dust: str = "any", tta: int = 1) -> ClipMethod:
    """Build a :class:`ClipMethod` from a ``--method`` value.

    - ``identity``;
    - ``tmedian`` or ``tmedian:radius=R`` (default 1);
    - ``single`` or ``single:PATH``: the shipped default model / a model file, every frame alone;
    - ``temporal`` or ``temporal:PATH``: the shipped temporal model / a temporal model file, with
      motion-aligned neighbours (an error if the model is single-frame).

    Raises :class:`InputError` for unknown names, bad parameters or a missing model file, and
    :class:`ModelError` for models that cannot be used.
    """
    text = spec.strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind == "identity":
        _parse_params(arg, {}, spec)
        return identity_clip_method()
    if kind == "tmedian":
        p = _parse_params(arg, {"radius": int}, spec)
        return tmedian_clip_method(p.get("radius", 1), name=text)
    if kind in ("single", "temporal"):
        path = Path(arg).expanduser() if arg else None
        if path is not None and not path.is_file():
            raise InputError("model file not found", path)
        return model_clip_method(path, kind == "temporal", tile=tile, threshold=threshold, overlap=overlap,
                                 batch=batch, backend=backend, device=device, threads=threads, dust=dust,
                                 tta=tta)
    raise InputError(f"unknown method {spec!r}: give one of identity, tmedian[:radius=R], single[:MODEL], "
                     "temporal[:MODEL]")


# ------------------------------------------------------------------------------------------------
# scoring


@dataclass
class FrameScores:
    """Scores of one method on one frame (see :data:`CLIP_DEFINITIONS`); the flicker and
    temporal-error values are ``None`` for the first frame (no previous frame)."""

    method: str
    frame: int
    ssim_input: float
    ssim_damaged_in: float
    ssim_clean_in: float
    psnr_input: float
    psnr_damaged_in: float
    psnr_clean_in: float
    flicker_clean: float | None
    flicker_input: float | None
    flicker_damaged_in: float | None
    flicker_clean_in: float | None
    temporal_error_damaged_in: float | None
    temporal_error_clean_in: float | None
    damaged_fraction: float

    @property
    def delta_ssim(self) -> float:
        return self.ssim_damaged_in - self.ssim_input

    def row(self) -> dict[str, Any]:
        """A flat dict for CSV/JSON (``delta_ssim`` after the SSIM columns)."""
        d = asdict(self)
        out: dict[str, Any] = {}
        for k in ("method", "frame", "ssim_input", "ssim_damaged_in", "ssim_clean_in"):
            out[k] = d.pop(k)
        out["delta_ssim"] = self.delta_ssim
        out.update(d)
        return out


@dataclass
class ClipEvaluation:
    """Everything :func:`evaluate_sequence` measured: ``scores[method]`` one :class:`FrameScores`
    per frame, ``summaries[method]``, ``inputs`` (the damaged and clean clips), ``methods``
    (``{name: {"kind", "description", **info}}``), ``settings``; ``strip``: the crop shown in
    ``strip.png`` (``{"frame", "box", "images": {label: crop}}``) or ``None``."""

    settings: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    scores: dict[str, list[FrameScores]]
    summaries: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    strip: dict[str, Any] | None = None
    figures: list[str] = field(default_factory=list)


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean(dtype=np.float64))


def _flickers(frames: Sequence[np.ndarray]) -> list[float | None]:
    return [None] + [_mean_abs(frames[t], frames[t - 1]) for t in range(1, len(frames))]


def _ssim_to(out: np.ndarray, clean: np.ndarray) -> float:
    return 1.0 if np.array_equal(out, clean) else ssim(out, clean)


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _crop_box(mask: np.ndarray, side: int) -> tuple[int, int, int]:
    """``(y, x, side)`` of the ``side`` square holding the most damaged pixels (first on ties)."""
    m = (np.asarray(mask) > 0).astype(np.float64)
    ii = np.pad(m.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s = side
    sums = ii[s:, s:] - ii[:-s, s:] - ii[s:, :-s] + ii[:-s, :-s]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x), s


class _SequenceRun:
    """Consume a method's output on one input sequence, scoring frame by frame (outputs are not kept)."""

    def __init__(self, method: ClipMethod, inputs: Sequence[np.ndarray], clean: Sequence[np.ndarray],
                 keep: tuple[int, tuple[int, int, int]] | None) -> None:
        n = len(inputs)
        source = (f.copy() for f in inputs)
        it = iter(method.run(source))
        self.ssim: list[float] = []
        self.psnr: list[float] = []
        self.flicker: list[float | None] = [None]
        self.terr: list[float | None] = [None]
        self.crop: np.ndarray | None = None
        self.seconds = 0.0
        prev: np.ndarray | None = None
        for t in range(n + 1):
            t0 = time.perf_counter()
            out = next(it, None)
            self.seconds += time.perf_counter() - t0
            if t == n:
                if out is not None:
                    raise ValueError(f"method {method.name!r} returned more than the {n} frames it was given")
                break
            if out is None:
                raise ValueError(f"method {method.name!r} returned {t} frames for {n}")
            out = _as_output(out, clean[t], method.name)
            self.ssim.append(_ssim_to(out, clean[t]))
            self.psnr.append(psnr(clean[t], out))
            if prev is not None:
                self.flicker.append(_mean_abs(out, prev))
                self.terr.append(float(np.abs((out - prev) - (clean[t] - clean[t - 1])).mean(dtype=np.float64)))
            if keep is not None and keep[0] == t:
                y, x, s = keep[1]
                self.crop = out[y:y + s, x:x + s].copy()
            prev = out


def _summarize_method(scores: Sequence[FrameScores], seconds: float, flicker_clean: float | None) -> dict[str, Any]:
    n = len(scores)
    worse = sum(1 for s in scores if s.delta_ssim < 0)
    fd = _mean_or_none([s.flicker_damaged_in for s in scores])
    fc = _mean_or_none([s.flicker_clean_in for s in scores])
    return {
        "n": n,
        "ssim_damaged_in": _stats([s.ssim_damaged_in for s in scores]),
        "ssim_clean_in": _stats([s.ssim_clean_in for s in scores]),
        "delta_ssim": _stats([s.delta_ssim for s in scores]),
        "worse": worse,
        "worse_share": worse / n,
        "psnr_damaged_in": _psnr_stats([s.psnr_damaged_in for s in scores]),
        "psnr_clean_in": _psnr_stats([s.psnr_clean_in for s in scores]),
        "flicker_clean": flicker_clean,
        "flicker_damaged_in": fd,
        "flicker_clean_in": fc,
        "added_flicker": None if fd is None or flicker_clean is None else fd - flicker_clean,
        "added_flicker_clean_in": None if fc is None or flicker_clean is None else fc - flicker_clean,
        "flicker_ratio": fd / flicker_clean if fd is not None and flicker_clean else None,
        "temporal_error_damaged_in": _mean_or_none([s.temporal_error_damaged_in for s in scores]),
        "temporal_error_clean_in": _mean_or_none([s.temporal_error_clean_in for s in scores]),
        "seconds_per_frame": seconds / (2 * n),
    }


def evaluate_sequence(clean: Sequence[np.ndarray], methods: Sequence[ClipMethod], *, seed: int = 0,
                      polarity: str = "random", params: Any = None, numbers: Sequence[int] | None = None,
                      settings: Mapping[str, Any] | None = None, strip: bool = True,
                      progress: Callable[[str], None] | None = None) -> ClipEvaluation:
    """Damage ``clean`` once with :func:`filmclean.train.synth.dustify_sequence` (``seed``,
    ``polarity``, ``params`` = :class:`~filmclean.train.synth.DamageParams` or ``None``) and score
    every method on the damaged and on the clean sequence.

    ``clean``: ``(H, W, 3)`` float frames in ``[0, 1]`` of one size (``H, W >= 11``); ``numbers``:
    their frame numbers for the report (default 0..n-1). ``strip``: keep a crop of one frame (the
    interior frame with the lowest input SSIM, the square with the most damage) from every method.
    ``progress(message)`` is called before each run. Memory: the clean and damaged sequences plus
    two frames per running method.

    Raises:
        InputError: no frames or methods, duplicate method names, frames too small or of mixed size.
    """
    from .train.synth import dustify_sequence

    if not methods:
        raise InputError("no methods to evaluate")
    names = [m.name for m in methods]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"method given twice: {', '.join(dup)}")
    if polarity not in ("dark", "light", "random"):
        raise InputError(f"damage polarity must be dark, light or random, got {polarity!r}")
    frames = [np.ascontiguousarray(np.clip(np.asarray(f, np.float32), 0.0, 1.0)) for f in clean]
    n = len(frames)
    if n == 0:
        raise InputError("no frames to evaluate")
    h, w = frames[0].shape[:2]
    if any(f.shape != (h, w, 3) for f in frames):
        raise InputError("all frames must be (H, W, 3) of one size")
    if min(h, w) < 11:
        raise InputError(f"frames of {w}x{h} are too small for SSIM (11 px window)")
    nums = list(numbers) if numbers is not None else list(range(n))
    if len(nums) != n:
        raise ValueError("one frame number per frame needed")
    if progress is not None:
        progress(f"damaging {n} frames ({w}x{h}, seed {seed}, polarity {polarity})")
    damaged, masks = dustify_sequence(frames, int(seed), params, polarity)  # type: ignore[arg-type]
    damaged = [np.ascontiguousarray(d, dtype=np.float32) for d in damaged]
    s_in = [_ssim_to(d, c) for d, c in zip(damaged, frames)]
    p_in = [psnr(c, d) for d, c in zip(damaged, frames)]
    frac = [float((m > 0).mean()) for m in masks]
    f_clean = _flickers(frames)
    f_input = _flickers(damaged)
    flicker_clean = _mean_or_none(f_clean)

    keep = None
    if strip:
        lo, hi = (1, n - 1) if n >= 3 else (0, n)
        t_strip = lo + int(np.argmin(s_in[lo:hi]))
        keep = (t_strip, _crop_box(masks[t_strip], min(h, w, STRIP_CROP)))
    del masks

    scores: dict[str, list[FrameScores]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    crops: dict[str, np.ndarray] = {}
    for m in methods:
        if progress is not None:
            progress(f"{m.name}: damaged clip")
        rd = _SequenceRun(m, damaged, frames, keep)
        if progress is not None:
            progress(f"{m.name}: clean clip")
        rc = _SequenceRun(m, frames, frames, None)
        scores[m.name] = [
            FrameScores(m.name, nums[t], s_in[t], rd.ssim[t], rc.ssim[t], p_in[t], rd.psnr[t], rc.psnr[t],
                        f_clean[t], f_input[t], rd.flicker[t], rc.flicker[t], rd.terr[t], rc.terr[t], frac[t])
            for t in range(n)
        ]
        summaries[m.name] = _summarize_method(scores[m.name], rd.seconds + rc.seconds, flicker_clean)
        if rd.crop is not None and keep is not None:
            t, (y, x, sd) = keep
            if not np.array_equal(rd.crop, damaged[t][y:y + sd, x:x + sd]):  # identity-like: already shown
                crops[m.name] = rd.crop

    strip_data = None
    if keep is not None:
        t, (y, x, s) = keep
        images = {"damaged": damaged[t][y:y + s, x:x + s].copy()}
        images.update(crops)
        images["clean"] = frames[t][y:y + s, x:x + s].copy()
        strip_data = {"frame": nums[t], "index": t, "box": [x, y, s, s], "images": images}

    inputs = {
        "n": n,
        "ssim": _stats(s_in),
        "psnr": _psnr_stats(p_in),
        "damaged_fraction": _stats(frac),
        "flicker_clean": flicker_clean,
        "flicker_input": _mean_or_none(f_input),
    }
    from .train.synth import DamageParams

    all_settings = dict(settings or {})
    all_settings.update({
        "n_frames": n, "frames": [nums[0], nums[-1]], "size": [w, h],
        "damage": {"function": "filmclean.train.synth.dustify_sequence", "seed": int(seed), "polarity": polarity,
                   "params": asdict(params if params is not None else DamageParams())},
        "ssim": {"function": "skimage.metrics.structural_similarity", **SSIM_SETTINGS, "dtype": "float64"},
        "psnr": {"function": "skimage.metrics.peak_signal_noise_ratio", "data_range": 1.0},
    })
    infos = {m.name: {"kind": m.kind, "description": m.description, **m.info} for m in methods}
    return ClipEvaluation(all_settings, infos, scores, summaries, inputs, strip_data)


def evaluate_clip(clip_path: str | Path, methods: Sequence[str | ClipMethod], first: int = 0,
                  last: int | None = None, max_side: int | None = None, seed: int = 0, polarity: str = "random",
                  out_dir: str | Path | None = None, *, params: Any = None, tile: int | None = DEFAULT_TILE,
                  threshold: float = 0.5, backend: str = "auto", device: str = "auto", threads: int | None = None,
                  figures: bool = True, dust: str = "any", tta: int = 1, progress: Callable[[str], None] | None = None) -> ClipEvaluation:
    """Read frames ``first .. last`` of ``clip_path`` (:func:`read_clip`), damage them once and score
    ``methods`` (specs for :func:`parse_clip_method` or :class:`ClipMethod` objects) with
    :func:`evaluate_sequence`; with ``out_dir``, also :func:`write_clip_report` there (figures
    unless ``figures=False``). Model options (``tile``, ``threshold``, ``dust``, ``tta``,
    ``backend``, ``device``, ``threads``) apply to model specs.

    Raises :class:`InputError` (bad clip, range or method spec), :class:`ModelError`,
    :class:`OutputError`.
    """
    if not methods:
        raise InputError("no methods to evaluate")
    if progress is not None:
        progress(f"reading {clip_path} (frames {first}-{'end' if last is None else last})")
    clip = read_clip(clip_path, first, last, max_side)
    built = [m if isinstance(m, ClipMethod) else
             parse_clip_method(m, tile=tile, threshold=threshold, backend=backend, device=device, threads=threads,
                               dust=dust, tta=tta)
             for m in methods]
    result = evaluate_sequence(clip.frames, built, seed=seed, polarity=polarity, params=params, numbers=clip.numbers,
                               settings=clip.settings, strip=figures, progress=progress)
    result.settings.update({"tile": tile, "threshold": threshold, "dust": dust, "tta": tta, "backend": backend,
                            "device": device})
    if out_dir is not None:
        write_clip_report(result, out_dir, figures=figures)
    return result


# ------------------------------------------------------------------------------------------------
# report


def _signed(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:+.{digits}f}"


def clip_table(result: ClipEvaluation) -> Any:
    """A :class:`rich.table.Table`, one row per method: SSIM on damaged (mean ± SD) and clean
    input, δSSIM, frames made worse, PSNR on damaged input, flicker of the output on the damaged
    clip, added flicker (minus the clean clip's), flicker on the clean clip, temporal error, s/frame."""
    from rich.table import Table

    inp = result.inputs
    st = result.settings
    size = st.get("size") or ["?", "?"]
    clip = Path(str(st.get("clip"))).name if st.get("clip") else "frames"
    table = Table(title=f"filmclean evaluate-clip: {clip}, frames {st['frames'][0]}-{st['frames'][1]} "
                        f"({inp['n']} frames, {size[0]}x{size[1]})",
                  caption=(f"damaged input: SSIM {_pm(inp['ssim'])}, damaged pixels {_pm(inp['damaged_fraction'])}; "
                           f"flicker (mean |x_t - x_t-1|): clean clip {_fmt(inp['flicker_clean'], 4)}, damaged clip "
                           f"{_fmt(inp['flicker_input'], 4)}. →: outputs on the damaged / clean clip, scored against "
                           f"the clean frames; added flicker = output flicker − clean flicker; t-err = mean "
                           f"|Δout − Δclean|; worse: δSSIM < 0"),
                  caption_justify="left")
    table.add_column("method", style="bold", no_wrap=True)
    for head in ("SSIM dmg→", "SSIM clean→", "δSSIM", "worse", "PSNR dmg", "flicker dmg→", "added flicker",
                 "flicker clean→", "t-err dmg→", "s/frame"):
        table.add_column(head, justify="right")
    for name, s in result.summaries.items():
        n = s["n"]
        p = s["psnr_damaged_in"]
        table.add_row(name, _pm(s["ssim_damaged_in"]), _fmt(s["ssim_clean_in"]["mean"], 4), _pm(s["delta_ssim"]),
                      f"{s['worse']}/{n}", "∞" if p["mean"] is None else f"{p['mean']:.2f}",
                      _fmt(s["flicker_damaged_in"], 4), _signed(s["added_flicker"]), _fmt(s["flicker_clean_in"], 4),
                      _fmt(s["temporal_error_damaged_in"], 4), f"{s['seconds_per_frame']:.3f}")
    return table


def _write_clip_figures(result: ClipEvaluation, out: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    first = next(iter(result.scores.values()))
    xs = [s.frame for s in first]
    fig = _new_figure(9.0, 5.6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for name, sc in result.scores.items():
        ax1.plot(xs, [s.ssim_damaged_in for s in sc], linewidth=1.2, marker="." if len(xs) <= 60 else None,
                 label=name)
    ax1.plot(xs, [s.ssim_input for s in first], color="0.3", linestyle="--", linewidth=1.2, label="damaged input",
             zorder=3)
    ax1.set(ylabel="SSIM(output, clean)", title="SSIM per frame: outputs on the damaged clip")
    ax1.legend(fontsize=8, ncol=3, loc="lower left")
    if len(xs) > 1:
        ax2.plot(xs[1:], [s.flicker_clean for s in first][1:], color="k", linewidth=1.4, label="clean clip")
        for name, sc in result.scores.items():
            ax2.plot(xs[1:], [s.flicker_damaged_in for s in sc][1:], linewidth=1.0, label=name)
        ax2.plot(xs[1:], [s.flicker_input for s in first][1:], color="0.3", linestyle="--", linewidth=1.2,
                 label="damaged input", zorder=3)
        ax2.legend(fontsize=8, ncol=3, loc="upper left")
    ax2.set(xlabel="frame", ylabel="mean |x_t − x_t−1|", title="flicker per frame")
    p = out / "ssim_per_frame.png"
    fig.savefig(p)
    paths["ssim_per_frame"] = p

    if result.strip:
        images = result.strip["images"]
        k = len(images)
        cell = 2.2
        fig = _new_figure(k * cell, cell + 0.7)
        axes = np.atleast_1d(fig.subplots(1, k))
        for ax, (label, img) in zip(axes, images.items()):
            ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=9)
        x, y, w, h = result.strip["box"]
        fig.suptitle(f"frame {result.strip['frame']}, crop {w}x{h} at ({x}, {y})", fontsize=10)
        p = out / "strip.png"
        fig.savefig(p)
        paths["strip"] = p
    return paths


def write_clip_report(result: ClipEvaluation, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``per_frame.csv`` and (``figures=True``) ``ssim_per_frame.png`` (SSIM
    and flicker per frame and method) and ``strip.png`` (a crop of one frame: damaged / every
    method / clean) into ``out_dir`` (created; files of these names replaced). Returns
    ``{"report": path, "csv": path, <figure stem>: path ...}``; raises :class:`OutputError`."""
    out = _report_dir(out_dir)
    paths: dict[str, Path] = {}
    if figures:
        paths.update(_write_clip_figures(result, out))
        result.figures = sorted(p.name for p in paths.values())
    rows = [s.row() for sc in result.scores.values() for s in sc]
    paths["csv"] = _write_csv(out / "per_frame.csv", rows)
    strip = None
    if result.strip:
        strip = {k: v for k, v in result.strip.items() if k != "images"}
        strip["panels"] = list(result.strip["images"])
    report = {
        "format": "filmclean-clip-evaluation",
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": ("clean clip frames damaged once with dustify_sequence (fixed seed); every method restores the "
                     "damaged and, separately, the clean sequence; scores are against the clean frames"),
        "settings": result.settings,
        "definitions": CLIP_DEFINITIONS,
        "input": result.inputs,
        "methods": [{"name": name, **result.methods[name], "summary": result.summaries[name]}
                    for name in result.summaries],
        "per_frame": rows,
        "strip": strip,
        "figures": result.figures,
    }
    paths["report"] = _write_json(out / "report.json", report)
    return paths
