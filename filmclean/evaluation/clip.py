"""Evaluation of restoration methods on a clip: the still-image protocol of
:mod:`filmclean.evaluation.still` applied to consecutive frames, plus temporal stability.

The clean frames ``first .. last`` of a clip are read once (optionally downscaled), damaged once
with :func:`filmclean.train.synth.dustify_sequence` (a fixed seed: independent dust in every
frame, scratches that persist across frames), and every method restores the whole damaged
sequence and, separately, the whole clean sequence. Scores (see
:data:`filmclean.evaluation.report.CLIP_DEFINITIONS`):

- per frame, against the clean frame: SSIM/PSNR of the damaged input, of the output on the
  damaged sequence and of the output on the clean sequence (the settings of
  :func:`filmclean.evaluation.metrics.ssim`);
- flicker: the mean over ``t`` of ``mean |out_t - out_{t-1}|`` (pixels and channels averaged),
  reported next to the clean clip's own value (true motion counts too, so the clean clip's
  flicker is the baseline): ``added_flicker`` = flicker of the output on the damaged sequence
  minus the clean clip's flicker;
- temporal error: the mean over ``t`` of ``mean |(out_t - out_{t-1}) - (clean_t - clean_{t-1})|``,
  the frame-to-frame change that the clean clip does not have (0 for a perfect restoration);
- seconds per frame.

The methods are :class:`filmclean.evaluation.methods.ClipMethod` (specs:
:func:`~filmclean.evaluation.methods.parse_clip_method`). Heavy libraries are imported inside the
functions that need them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..api import ModelChoice
from ..engine import RestoreOptions
from ..errors import InputError
from .methods import ClipMethod, as_output, check_method_names, parse_clip_method
from .metrics import metric_settings, psnr, psnr_stats, ssim, stats
from .report import write_clip_report

__all__ = [
    "CLIP_DAMAGES",
    "STRIP_CROP",
    "ClipEvaluation",
    "ClipFrames",
    "FrameScores",
    "evaluate_clip",
    "evaluate_sequence",
    "read_clip",
]

#: side of the square crop shown in ``strip.png`` (smaller frames: their shorter side)
STRIP_CROP = 192


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


def _read_frames(
    path: Path,
    info: Any,
    start: Fraction | None,
    fps: Fraction,
    first: int,
    want: int | None,
    size: tuple[int, int] | None,
    frames: list[np.ndarray],
) -> None:
    """Append the decoded frames from ``start`` (``want`` of them, or all) to ``frames``."""
    from ..io.video import VideoFrameItem, VideoReader

    # a Fraction start (exact frame time) is what VideoReader keeps anyway (``Fraction(start)``)
    with VideoReader(path, start=start) as reader:  # type: ignore[arg-type]
        for item in reader:
            if not isinstance(item, VideoFrameItem) or item.context:
                continue
            if start is not None and not frames:
                tb = Fraction(info.time_base)
                shift = math.floor((info.start_time + start) / tb) * tb
                rel = item.pts * item.time_base + shift - info.start_time
                got = round(rel * fps)
                if got != first:
                    raise InputError(
                        f"seeking to frame {first} found frame {got} (at {float(rel):.4f} s): the "
                        "timestamps are not on the frame-rate grid (variable frame rate?)",
                        path,
                    )
            rgb = item.rgb if item.rgb.shape[2] == 3 else np.repeat(item.rgb[..., :1], 3, axis=2)
            frames.append(_downscale(rgb, size))
            if want is not None and len(frames) >= want:
                break


def _check_range(path: Path, first: int, last: int | None, max_side: int | None) -> None:
    if int(first) != first or first < 0:
        raise InputError(f"first frame must be a whole number >= 0, got {first}", path)
    if last is not None and (int(last) != last or last < first):
        raise InputError(f"last frame must be a whole number >= first ({first}), got {last}", path)
    if max_side is not None and (int(max_side) != max_side or max_side < 16):
        raise InputError(f"max side must be a whole number >= 16, got {max_side}")


def _target_size(info: Any, max_side: int | None) -> tuple[int, int] | None:
    """``(width, height)`` with the longer side at most ``max_side``, or ``None`` to keep the size."""
    h, w = info.height, info.width
    if max_side is None or max(h, w) <= max_side:
        return None
    scale = max_side / max(h, w)
    return max(16, round(w * scale)), max(16, round(h * scale))


def read_clip(
    clip_path: str | Path, first: int = 0, last: int | None = None, max_side: int | None = None
) -> ClipFrames:
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
    from ..io.video import probe_video

    path = Path(clip_path).expanduser()
    _check_range(path, first, last, max_side)
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
    size = _target_size(info, max_side)
    want = None if last is None else int(last) - first + 1
    frames: list[np.ndarray] = []
    try:
        _read_frames(path, info, start, fps, first, want, size, frames)
    except InputError as exc:
        if frames or start is None or "no video frames" not in str(exc):
            raise
        raise InputError(f"first frame {first} is past the end of the clip", path) from None
    if want is not None and len(frames) < want:
        raise InputError(
            f"frames {first}-{last} requested, but the clip ends after frame {first + len(frames) - 1}", path
        )
    numbers = list(range(first, first + len(frames)))
    oh, ow = frames[0].shape[:2]
    settings = {
        "clip": str(path),
        "codec": info.codec,
        "pix_fmt": info.pix_fmt,
        "fps": float(fps) if fps else None,
        "source_size": [info.width, info.height],
        "size": [ow, oh],
        "max_side": max_side,
        "resize": "cv2.INTER_AREA" if size is not None else None,
        "first": first,
        "last": numbers[-1],
        "n_frames": len(frames),
        "clip_frames": info.n_frames,
    }
    return ClipFrames(path, frames, numbers, settings)


# ------------------------------------------------------------------------------------------------
# scoring


@dataclass
class FrameScores:
    """Scores of one method on one frame (see :data:`filmclean.evaluation.report.CLIP_DEFINITIONS`);
    the flicker and temporal-error values are ``None`` for the first frame (no previous frame)."""

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
        """δSSIM = ``ssim_damaged_in - ssim_input``."""
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
    ``strip.png`` (``{"frame", "index", "box", "images": {label: crop}}``) or ``None``."""

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


#: the strip's frame index and crop box ``(y, x, side)``
_Keep = tuple[int, tuple[int, int, int]]


class _SequenceRun:
    """Consume a method's output on one input sequence, scoring frame by frame (outputs are not kept)."""

    def __init__(
        self,
        method: ClipMethod,
        inputs: Sequence[np.ndarray],
        clean: Sequence[np.ndarray],
        keep: _Keep | None,
        kinds: Sequence[Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        n = len(inputs)
        source = (f.copy() for f in inputs)
        it = iter(method.run(source))
        self.ssim: list[float] = []
        self.psnr: list[float] = []
        self.flicker: list[float | None] = [None]
        self.terr: list[float | None] = [None]
        self.crop: np.ndarray | None = None
        self.seconds = 0.0
        self.untouched: dict[str, list[int]] = {}  # kind -> [pixels left untouched, pixels]
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
            out = as_output(out, clean[t], method.name)
            if kinds is not None:
                same = (out == inputs[t]).all(axis=-1)
                for kind, m in kinds[t].items():
                    acc = self.untouched.setdefault(kind, [0, 0])
                    acc[0] += int((same & m).sum())
                    acc[1] += int(m.sum())
            self.ssim.append(_ssim_to(out, clean[t]))
            self.psnr.append(psnr(clean[t], out))
            if prev is not None:
                self.flicker.append(_mean_abs(out, prev))
                self.terr.append(float(np.abs((out - prev) - (clean[t] - clean[t - 1])).mean(dtype=np.float64)))
            if keep is not None and keep[0] == t:
                y, x, s = keep[1]
                self.crop = out[y : y + s, x : x + s].copy()
            prev = out


def _summarize_method(
    scores: Sequence[FrameScores],
    seconds: float,
    flicker_clean: float | None,
    untouched: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    n = len(scores)
    left = {k: (v[0] / v[1] if v[1] else None) for k, v in (untouched or {}).items()}
    worse = sum(1 for s in scores if s.delta_ssim < 0)
    fd = _mean_or_none([s.flicker_damaged_in for s in scores])
    fc = _mean_or_none([s.flicker_clean_in for s in scores])
    return {
        "n": n,
        "ssim_damaged_in": stats([s.ssim_damaged_in for s in scores]),
        "ssim_clean_in": stats([s.ssim_clean_in for s in scores]),
        "delta_ssim": stats([s.delta_ssim for s in scores]),
        "worse": worse,
        "worse_share": worse / n,
        "psnr_damaged_in": psnr_stats([s.psnr_damaged_in for s in scores]),
        "psnr_clean_in": psnr_stats([s.psnr_clean_in for s in scores]),
        "flicker_clean": flicker_clean,
        "flicker_damaged_in": fd,
        "flicker_clean_in": fc,
        "added_flicker": None if fd is None or flicker_clean is None else fd - flicker_clean,
        "added_flicker_clean_in": None if fc is None or flicker_clean is None else fc - flicker_clean,
        "flicker_ratio": fd / flicker_clean if fd is not None and flicker_clean else None,
        "temporal_error_damaged_in": _mean_or_none([s.temporal_error_damaged_in for s in scores]),
        "temporal_error_clean_in": _mean_or_none([s.temporal_error_clean_in for s in scores]),
        "seconds_per_frame": seconds / (2 * n),
        "left_alone": left,
    }


@dataclass
class _Inputs:
    """The clean and damaged sequences with what every method's scores share."""

    clean: list[np.ndarray]
    damaged: list[np.ndarray]
    numbers: list[int]
    ssim: list[float]
    psnr: list[float]
    damaged_fraction: list[float]
    flicker_clean: list[float | None]
    flicker_input: list[float | None]

    def summary(self) -> dict[str, Any]:
        return {
            "n": len(self.clean),
            "ssim": stats(self.ssim),
            "psnr": psnr_stats(self.psnr),
            "damaged_fraction": stats(self.damaged_fraction),
            "flicker_clean": _mean_or_none(self.flicker_clean),
            "flicker_input": _mean_or_none(self.flicker_input),
        }


def _checked_frames(clean: Sequence[np.ndarray], methods: Sequence[ClipMethod], polarity: str) -> list[np.ndarray]:
    """The clean frames as contiguous float32 in ``[0, 1]``, after checking them and the methods."""
    check_method_names(methods)
    from filmclean.train.polarity import canonical_polarity

    try:
        canonical_polarity(polarity)
    except ValueError as exc:
        raise InputError(f"damage {exc}") from None
    frames = [np.ascontiguousarray(np.clip(np.asarray(f, np.float32), 0.0, 1.0)) for f in clean]
    if not frames:
        raise InputError("no frames to evaluate")
    h, w = frames[0].shape[:2]
    if any(f.shape != (h, w, 3) for f in frames):
        raise InputError("all frames must be (H, W, 3) of one size")
    if min(h, w) < 11:
        raise InputError(f"frames of {w}x{h} are too small for SSIM (11 px window)")
    return frames


CLIP_DAMAGES = ("dustify", "heldout")
"""Damage for :func:`evaluate_sequence`: ``dustify`` (:func:`filmclean.train.synth.dustify_sequence`, the
older training generator) or ``heldout`` (:func:`filmclean.evaluation.heldout.damage_heldout_sequence`,
never used for training: one-frame dust, dirt and hairs on every frame, persistent scratches)."""


def _damage(
    frames: list[np.ndarray], numbers: list[int], seed: int, params: Any, polarity: str, damage: str = "dustify"
) -> tuple[_Inputs, list[np.ndarray], list[dict[str, np.ndarray]] | None]:
    """Damage the clean frames once; the inputs' scores, the true masks and (held-out damage) the
    masks of each kind of clip damage."""
    kinds: list[dict[str, np.ndarray]] | None = None
    if damage == "heldout":
        from .heldout import damage_heldout_sequence

        damaged, kinds = damage_heldout_sequence(frames, int(seed))
        masks = [np.logical_or.reduce(list(k.values())) for k in kinds]
    else:
        from ..train.synth import dustify_sequence

        damaged, masks = dustify_sequence(frames, int(seed), params, polarity)
    damaged = [np.ascontiguousarray(d, dtype=np.float32) for d in damaged]
    inputs = _Inputs(
        frames,
        damaged,
        numbers,
        [_ssim_to(d, c) for d, c in zip(damaged, frames)],
        [psnr(c, d) for d, c in zip(damaged, frames)],
        [float((m > 0).mean()) for m in masks],
        _flickers(frames),
        _flickers(damaged),
    )
    return inputs, masks, kinds


def _strip_keep(inputs: _Inputs, masks: Sequence[np.ndarray]) -> _Keep:
    """The strip's frame (the interior frame with the lowest input SSIM) and its most damaged square."""
    n = len(inputs.clean)
    h, w = inputs.clean[0].shape[:2]
    lo, hi = (1, n - 1) if n >= 3 else (0, n)
    t = lo + int(np.argmin(inputs.ssim[lo:hi]))
    return t, _crop_box(masks[t], min(h, w, STRIP_CROP))


def _strip_data(inputs: _Inputs, keep: _Keep, crops: Mapping[str, np.ndarray]) -> dict[str, Any]:
    t, (y, x, s) = keep
    images = {"damaged": inputs.damaged[t][y : y + s, x : x + s].copy()}
    images.update(crops)
    images["clean"] = inputs.clean[t][y : y + s, x : x + s].copy()
    return {"frame": inputs.numbers[t], "index": t, "box": [x, y, s, s], "images": images}


def _score_method(
    m: ClipMethod,
    inputs: _Inputs,
    keep: _Keep | None,
    progress: Callable[[str], None] | None,
    kinds: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> tuple[list[FrameScores], float, np.ndarray | None, dict[str, list[int]]]:
    """One method on the damaged and on the clean sequence: its frame scores, seconds and strip crop
    (``None`` when the crop is the damaged input's, i.e. nothing was changed there)."""
    if progress is not None:
        progress(f"{m.name}: damaged clip")
    rd = _SequenceRun(m, inputs.damaged, inputs.clean, keep, kinds)
    if progress is not None:
        progress(f"{m.name}: clean clip")
    rc = _SequenceRun(m, inputs.clean, inputs.clean, None)
    i = inputs
    scores = [
        FrameScores(
            m.name,
            i.numbers[t],
            i.ssim[t],
            rd.ssim[t],
            rc.ssim[t],
            i.psnr[t],
            rd.psnr[t],
            rc.psnr[t],
            i.flicker_clean[t],
            i.flicker_input[t],
            rd.flicker[t],
            rc.flicker[t],
            rd.terr[t],
            rc.terr[t],
            i.damaged_fraction[t],
        )
        for t in range(len(i.clean))
    ]
    crop = None
    if rd.crop is not None and keep is not None:
        t, (y, x, sd) = keep
        if not np.array_equal(rd.crop, i.damaged[t][y : y + sd, x : x + sd]):  # identity-like: already shown
            crop = rd.crop
    return scores, rd.seconds + rc.seconds, crop, rd.untouched


def _sequence_settings(
    settings: Mapping[str, Any] | None, inputs: _Inputs, seed: int, polarity: str, params: Any, damage: str
) -> dict[str, Any]:
    from ..train.synth import DamageParams

    h, w = inputs.clean[0].shape[:2]
    out = dict(settings or {})
    if damage == "heldout":
        from .heldout import ONE_FRAME_PARAMS, PERSISTENT_PARAMS

        what: dict[str, Any] = {
            "function": "filmclean.evaluation.heldout.damage_heldout_sequence",
            "seed": int(seed),
            "one_frame": asdict(ONE_FRAME_PARAMS),
            "persistent": asdict(PERSISTENT_PARAMS),
        }
    else:
        what = {
            "function": "filmclean.train.synth.dustify_sequence",
            "seed": int(seed),
            "polarity": polarity,
            "params": asdict(params if params is not None else DamageParams()),
        }
    out.update(
        {
            "n_frames": len(inputs.clean),
            "frames": [inputs.numbers[0], inputs.numbers[-1]],
            "size": [w, h],
            "damage": what,
            **metric_settings(),
        }
    )
    return out


def evaluate_sequence(
    clean: Sequence[np.ndarray],
    methods: Sequence[ClipMethod],
    *,
    seed: int = 0,
    polarity: str = "any",
    params: Any = None,
    numbers: Sequence[int] | None = None,
    settings: Mapping[str, Any] | None = None,
    strip: bool = True,
    progress: Callable[[str], None] | None = None,
    damage: str = "dustify",
) -> ClipEvaluation:
    """Damage ``clean`` once with :func:`filmclean.train.synth.dustify_sequence` (``seed``,
    ``polarity``, ``params`` = :class:`~filmclean.train.synth.DamageParams` or ``None``) -- or with
    ``damage="heldout"``, the held-out generator's one-frame and persistent damage
    (:data:`CLIP_DAMAGES`; each method's summary then says which share of each kind it left alone,
    ``left_alone``) -- and score every method on the damaged and on the clean sequence.

    ``clean``: ``(H, W, 3)`` float frames in ``[0, 1]`` of one size (``H, W >= 11``); ``numbers``:
    their frame numbers for the report (default 0..n-1). ``strip``: keep a crop of one frame (the
    interior frame with the lowest input SSIM, the square with the most damage) from every method.
    ``progress(message)`` is called before each run. Memory: the clean and damaged sequences plus
    two frames per running method.

    Raises:
        InputError: no frames or methods, duplicate method names, frames too small or of mixed size.
    """
    frames = _checked_frames(clean, methods, polarity)
    if damage not in CLIP_DAMAGES:
        raise InputError(f"damage must be one of {', '.join(CLIP_DAMAGES)}, got {damage!r}")
    n = len(frames)
    nums = list(numbers) if numbers is not None else list(range(n))
    if len(nums) != n:
        raise ValueError("one frame number per frame needed")
    if progress is not None:
        h, w = frames[0].shape[:2]
        progress(f"damaging {n} frames ({w}x{h}, seed {seed}, polarity {polarity})")
    inputs, masks, kinds = _damage(frames, nums, seed, params, polarity, damage)
    keep = _strip_keep(inputs, masks) if strip else None
    del masks

    scores: dict[str, list[FrameScores]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    crops: dict[str, np.ndarray] = {}
    flicker_clean = _mean_or_none(inputs.flicker_clean)
    for m in methods:
        scores[m.name], seconds, crop, untouched = _score_method(m, inputs, keep, progress, kinds)
        summaries[m.name] = _summarize_method(scores[m.name], seconds, flicker_clean, untouched)
        if crop is not None:
            crops[m.name] = crop
    strip_data = None if keep is None else _strip_data(inputs, keep, crops)
    infos = {m.name: {"kind": m.kind, "description": m.description, **m.info} for m in methods}
    return ClipEvaluation(
        _sequence_settings(settings, inputs, seed, polarity, params, damage),
        infos,
        scores,
        summaries,
        inputs.summary(),
        strip_data,
    )


def evaluate_clip(
    clip_path: str | Path,
    methods: Sequence[str | ClipMethod],
    first: int = 0,
    last: int | None = None,
    max_side: int | None = None,
    seed: int = 0,
    polarity: str = "any",
    out_dir: str | Path | None = None,
    *,
    params: Any = None,
    options: RestoreOptions | None = None,
    choice: ModelChoice | None = None,
    figures: bool = True,
    progress: Callable[[str], None] | None = None,
    damage: str = "dustify",
) -> ClipEvaluation:
    """Read frames ``first .. last`` of ``clip_path`` (:func:`read_clip`), damage them once and score
    ``methods`` (specs for :func:`~filmclean.evaluation.methods.parse_clip_method` or
    :class:`~filmclean.evaluation.methods.ClipMethod` objects) with :func:`evaluate_sequence`; with
    ``out_dir``, also :func:`~filmclean.evaluation.report.write_clip_report` there (figures unless
    ``figures=False``). ``damage``: see :data:`CLIP_DAMAGES`. ``options`` and ``choice``'s backend, device and threads apply to model specs.

    Raises :class:`InputError` (bad clip, range or method spec), :class:`~filmclean.errors.ModelError`,
    :class:`~filmclean.errors.OutputError`.
    """
    if not methods:
        raise InputError("no methods to evaluate")
    if progress is not None:
        progress(f"reading {clip_path} (frames {first}-{'end' if last is None else last})")
    clip = read_clip(clip_path, first, last, max_side)
    built = [m if isinstance(m, ClipMethod) else parse_clip_method(m, options, choice) for m in methods]
    result = evaluate_sequence(
        clip.frames,
        built,
        seed=seed,
        polarity=polarity,
        params=params,
        numbers=clip.numbers,
        settings=clip.settings,
        strip=figures,
        progress=progress,
        damage=damage,
    )
    options, choice = options or RestoreOptions(), choice or ModelChoice()
    result.settings.update(
        {
            "tile": options.tile,
            "threshold": options.threshold,
            "dust": options.dust,
            "tta": options.tta,
            "max_width": options.max_width,
            "backend": choice.backend,
            "device": choice.device,
        }
    )
    if out_dir is not None:
        write_clip_report(result, out_dir, figures=figures)
    return result
