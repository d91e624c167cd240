"""Scoring restoration on real damaged footage, where no clean reference exists.

Without a clean frame there is no SSIM; what can be measured is what one-frame damage does to a
sequence. Every frame is aligned to its two neighbours (:class:`filmclean.temporal.SequenceAligner`)
and tested for motion-compensated spikes (:func:`filmclean.spikes.detect_spikes`): pixels that depart
from both aligned neighbours the same way while the neighbours agree. Dust, dirt and most hairs are
spikes; so is some picture where alignment fails, which is why the input's count is reported beside
each method's. Per method:

- ``spikes_per_10k``: spike pixels per 10,000 testable pixels (both neighbours trusted) in the
  method's output, mean over the frames that have two usable neighbours (the input's count is
  ``input.spikes_per_10k``);
- ``spikes_removed``: the share of the input's spike pixels that are no longer spikes in the output;
- ``changed``: the share of pixels the method changed (by more than half an 8-bit step);
- ``seconds_per_frame``.

``contact.png`` shows a few frames: the input with its spikes marked in red, then every method's
output with the pixels it changed marked in green.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..spikes import SpikeOptions, Spikes, detect_spikes
from ..temporal import SequenceAligner
from .methods import ClipMethod, as_output, check_method_names

__all__ = ["CHANGED_STEP", "FootageEvaluation", "evaluate_footage", "footage_table", "write_footage_report"]

CHANGED_STEP = 0.5 / 255.0
"""A pixel counts as changed when some channel moved by more than this."""

CONTACT_FRAMES = 4
CONTACT_WIDTH = 320


@dataclass
class FootageEvaluation:
    """Scores of :func:`evaluate_footage`: ``inputs`` (the footage's own spike count), ``summaries``
    (method -> scores), ``per_frame`` rows, ``settings``, and the contact sheet's panels (``contact``:
    rows of ``(H, W, 3)`` float32 images, one row per shown frame, the input first)."""

    inputs: dict[str, Any]
    summaries: dict[str, dict[str, Any]]
    per_frame: list[dict[str, Any]]
    settings: dict[str, Any]
    contact: list[list[np.ndarray]] = field(default_factory=list, repr=False)
    columns: list[str] = field(default_factory=list)


def _spike_maps(frames: Sequence[np.ndarray], options: SpikeOptions) -> list[Spikes | None]:
    """Per frame what the spike test found, ``None`` for a frame without two usable neighbours."""
    aligner = SequenceAligner()
    out: list[Spikes | None] = []
    for t, cur in enumerate(frames):
        if t == 0 or t + 1 == len(frames):
            out.append(None)
            continue
        stack = aligner.stack(cur, t, frames[t - 1], t - 1, frames[t + 1], t + 1)
        sp = detect_spikes(stack, options)
        out.append(sp if sp.usable.any() else None)
    return out


def _per_10k(maps: Sequence[Spikes | None]) -> float | None:
    vals = [m.per_10k for m in maps if m is not None]
    return float(np.mean(vals)) if vals else None


def _thumb(rgb: np.ndarray, mark: np.ndarray | None, colour: tuple[float, float, float]) -> np.ndarray:
    import cv2

    img = rgb.copy()
    if mark is not None and mark.any():
        grown = cv2.dilate(mark.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        img[grown] = 0.35 * img[grown] + 0.65 * np.asarray(colour, np.float32)
    h, w = img.shape[:2]
    width = min(CONTACT_WIDTH, w)
    size = (width, max(1, round(h * width / w)))
    return np.clip(cv2.resize(img, size, interpolation=cv2.INTER_AREA), 0.0, 1.0).astype(np.float32)


def evaluate_footage(
    frames: Sequence[np.ndarray],
    methods: Sequence[ClipMethod],
    *,
    settings: dict[str, Any] | None = None,
    spike_options: SpikeOptions = SpikeOptions(),
    contact: bool = True,
    progress: Callable[[str], None] | None = None,
) -> FootageEvaluation:
    """Run every method on ``frames`` (``(H, W, 3)`` float32, one shot of real footage, in order) and
    score it without a reference (see the module docstring). Outputs are held in memory."""
    check_method_names(methods)
    if len(frames) < 3:
        raise ValueError(f"the spike test needs at least 3 frames, got {len(frames)}")
    say = progress or (lambda message: None)
    say("spike test on the input")
    before = _spike_maps(frames, spike_options)
    shown = sorted({round(i) for i in np.linspace(1, len(frames) - 2, min(CONTACT_FRAMES, len(frames) - 2))})
    sheet = [[_thumb(frames[t], None if (b := before[t]) is None else b.core, (1.0, 0.0, 0.0))] for t in shown]
    rows: list[dict[str, Any]] = [
        {"frame": t, "method": "input", "spikes_per_10k": None if m is None else m.per_10k, "changed": 0.0}
        for t, m in enumerate(before)
    ]
    summaries: dict[str, dict[str, Any]] = {}
    for method in methods:
        say(f"running {method.name}")
        t0 = time.perf_counter()
        outs = [as_output(o, f, method.name) for o, f in zip(method.run(f.copy() for f in frames), frames, strict=True)]
        seconds = time.perf_counter() - t0
        moved = [(np.abs(o - f) > CHANGED_STEP).any(axis=-1) for o, f in zip(outs, frames, strict=True)]
        changed = [float(m.mean()) for m in moved]
        after = _spike_maps(outs, spike_options)
        kept, found = 0, 0
        for b, a in zip(before, after, strict=True):
            if b is not None and a is not None:
                found += int(b.core.sum())
                kept += int((b.core & a.core).sum())
        for t, (a, c) in enumerate(zip(after, changed, strict=True)):
            rows.append(
                {"frame": t, "method": method.name, "spikes_per_10k": None if a is None else a.per_10k, "changed": c}
            )
        for row, t in zip(sheet, shown, strict=True):
            row.append(_thumb(outs[t], moved[t], (0.0, 1.0, 0.0)))
        summaries[method.name] = {
            "spikes_per_10k": _per_10k(after),
            "spikes_removed": None if found == 0 else 1.0 - kept / found,
            "changed": float(np.mean(changed)),
            "changed_max": float(np.max(changed)),
            "seconds_per_frame": seconds / len(frames),
            "description": method.description,
        }
    h, w = frames[0].shape[:2]
    inputs = {"n": len(frames), "spikes_per_10k": _per_10k(before), "tested_frames": sum(b is not None for b in before)}
    info = {**(settings or {}), "size": [w, h], "spike_options": spike_options.__dict__, "contact_frames": shown}
    return FootageEvaluation(
        inputs, summaries, rows, info, sheet if contact else [], ["input (spikes red)"] + [m.name for m in methods]
    )


def write_footage_report(result: FootageEvaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``per_frame.csv`` and (when the result has one) ``contact.png`` into
    ``out_dir``; returns their paths. Raises :class:`~filmclean.errors.OutputError`."""
    import cv2

    from ..io import write_bytes_atomically
    from .report import _created, report_dir, write_csv, write_json

    out = report_dir(out_dir)
    paths = {"csv": write_csv(out / "per_frame.csv", result.per_frame)}
    if result.contact:
        sheet = np.concatenate([np.concatenate(row, axis=1) for row in result.contact], axis=0)
        ok, png = cv2.imencode(".png", np.round(sheet[..., ::-1] * 255.0).astype(np.uint8))
        if ok:
            paths["contact"] = out / "contact.png"
            write_bytes_atomically(paths["contact"], png.tobytes())
    report = {
        "format": "filmclean-footage-evaluation",
        "version": 1,
        "created": _created(),
        "protocol": (
            "real footage without a clean reference: motion-compensated spike test (filmclean.spikes) on the "
            "input and on every method's output; pixels changed by each method"
        ),
        "settings": result.settings,
        "input": result.inputs,
        "contact_columns": result.columns,
        "methods": [{"name": k, **v} for k, v in result.summaries.items()],
    }
    paths["report"] = write_json(out / "report.json", report)
    return paths


def footage_table(result: FootageEvaluation) -> Any:
    """A :class:`rich.table.Table`: one row per method, spikes left, removed, pixels changed, s/frame."""
    from rich.table import Table

    from .report import fmt

    inp = result.inputs
    st = result.settings
    clip = Path(str(st.get("clip"))).name if st.get("clip") else "frames"
    table = Table(
        title=f"filmclean evaluate-clip --no-reference: {clip} ({inp['n']} frames, {st['size'][0]}x{st['size'][1]})",
        caption=(
            f"input: {fmt(inp['spikes_per_10k'], 2)} spike pixels per 10,000 (motion-compensated spike test, "
            f"{inp['tested_frames']} frames with two neighbours); removed: share of the input's spike pixels "
            "that are no longer spikes; changed: pixels changed by more than half an 8-bit step"
        ),
        caption_justify="left",
    )
    for head in ("method", "spikes /10k", "removed", "changed %", "changed max %", "s/frame"):
        table.add_column(head, justify="left" if head == "method" else "right")
    for name, s in result.summaries.items():
        removed = None if s["spikes_removed"] is None else 100 * s["spikes_removed"]
        table.add_row(
            name,
            fmt(s["spikes_per_10k"], 2),
            fmt(removed, 1),
            fmt(100 * s["changed"], 2),
            fmt(100 * s["changed_max"], 2),
            fmt(s["seconds_per_frame"], 2),
        )
    return table
