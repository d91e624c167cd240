"""PNG figures of the evaluation reports (matplotlib, imported when a figure is drawn).

Still evaluation (:func:`write_figures`), with ``<m>`` the method name made file-safe
(:func:`figure_names`):

- ``ssim_input_pairs.png``: SSIM(damaged, clean) histogram beside SSIM(clean, clean);
- ``ssim_<m>.png``: SSIM of the method's predictions on damaged and on clean inputs (input pairs
  outlined for reference);
- ``delta_ssim_<m>.png``: δSSIM histogram with the share made worse;
- ``worst_<m>.png``: the lowest-δSSIM cases: clean | damaged | restored | abs diff x4.

Clip evaluation (:func:`write_clip_figures`): ``ssim_per_frame.png`` (SSIM and flicker per frame
and method) and ``strip.png`` (a crop of one frame: damaged / every method / clean).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .pairs import size_label

if TYPE_CHECKING:
    from .clip import ClipEvaluation
    from .still import EvaluationResult, ImageScores, WorstCase

__all__ = ["figure_names", "new_figure", "write_clip_figures", "write_figures"]


def new_figure(w: float, h: float) -> Any:
    """A matplotlib figure of ``w`` x ``h`` inches at 110 dpi, constrained layout (no pyplot state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def _safe_label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "model"


def figure_names(methods: Sequence[str]) -> dict[str, str]:
    """``{name: label}``: each name made file-safe, distinct labels numbered ``-2``, ``-3`` ..."""
    used: set[str] = set()
    out = {}
    for m in methods:
        label = _safe_label(m)
        base, k = label, 2
        while label in used:
            label, k = f"{base}-{k}", k + 1
        used.add(label)
        out[m] = label
    return out


def _save(fig: Any, path: Path, paths: dict[str, Path]) -> None:
    fig.savefig(path)
    paths[path.stem] = path


# ------------------------------------------------------------------------------------------------
# still evaluation


def _ssim_bins(result: EvaluationResult) -> np.ndarray:
    vals = [s.ssim_input for s in next(iter(result.scores.values()))]
    for sc in result.scores.values():
        vals += [s.ssim_damaged_in for s in sc] + [s.ssim_clean_in for s in sc]
    lo = min(0.9, math.floor(min(vals) * 20.0) / 20.0)
    lo = max(-1.0, lo)
    return np.linspace(lo, 1.0, 41)


def _hist(
    ax: Any,
    values: Sequence[float],
    bins: np.ndarray,
    color: str,
    label: str | None = None,
    outline: Sequence[float] | None = None,
    outline_label: str | None = None,
) -> None:
    # a value equal to the last edge (SSIM 1.0) falls in the last bin, as numpy does
    ax.hist(values, bins=bins, color=color, alpha=0.85, edgecolor="white", linewidth=0.4, label=label)
    if outline is not None:
        ax.hist(outline, bins=bins, histtype="step", color="0.25", linewidth=1.3, label=outline_label, zorder=3)
    ax.yaxis.get_major_locator().set_params(integer=True)


def _annot(ax: Any, values: Sequence[float], extra: str = "") -> None:
    v = np.asarray(values, np.float64)
    ax.text(
        0.02,
        0.97,
        f"mean {v.mean():.3f}\nSD {v.std():.3f}\nn {v.size}{extra}",
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9},
    )


def _input_pairs_figure(result: EvaluationResult, s_in: Sequence[float], bins: np.ndarray) -> Any:
    fig = new_figure(9.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    _hist(ax1, s_in, bins, "tab:red")
    _annot(ax1, s_in)
    ax1.set(title="input pairs: SSIM(damaged, clean)", xlabel="SSIM", ylabel="images")
    _hist(ax2, [1.0] * len(s_in), bins, "tab:green")
    ax2.set(title="reference: SSIM(clean, clean)", xlabel="SSIM")
    fig.suptitle(f"SSIM of the test pairs ({len(s_in)} images, {size_label(result.settings)})")
    return fig


def _method_ssim_figure(
    name: str, sc: Sequence[ImageScores], summ: Mapping[str, Any], s_in: Sequence[float], bins: np.ndarray
) -> Any:
    dmg = [s.ssim_damaged_in for s in sc]
    cln = [s.ssim_clean_in for s in sc]
    fig = new_figure(9.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    _hist(ax1, dmg, bins, "tab:blue", "restored", s_in, "input pairs")
    _annot(ax1, dmg)
    ax1.legend(loc="upper center", fontsize=8, frameon=False)
    ax1.set(title="predictions on damaged inputs", xlabel="SSIM(restored, clean)", ylabel="images")
    _hist(ax2, cln, bins, "tab:purple")
    _annot(ax2, cln, f"\nchanged {summ['clean_changed']}/{summ['n']}")
    ax2.set(title="predictions on clean inputs", xlabel="SSIM(restored, clean)")
    fig.suptitle(f"{name}: SSIM of predictions ({len(sc)} images)")
    return fig


def _delta_figure(name: str, sc: Sequence[ImageScores], summ: Mapping[str, Any], dbins: np.ndarray) -> Any:
    deltas = [s.delta_ssim for s in sc]
    fig = new_figure(6.0, 3.6)
    ax = fig.subplots()
    ax.hist(deltas, bins=dbins, color="tab:orange", edgecolor="white", linewidth=0.4)
    ax.axvline(0.0, color="k", linewidth=1.0, linestyle="--")
    ax.yaxis.get_major_locator().set_params(integer=True)
    _annot(ax, deltas, f"\nworse (δ<0) {summ['worse']}/{summ['n']}")
    ax.set(title=f"{name}: δSSIM = SSIM(restored, clean) − SSIM(damaged, clean)", xlabel="δSSIM", ylabel="images")
    return fig


def _worst_figure(name: str, cases: Sequence[WorstCase]) -> Any:
    rows = len(cases)
    h, w = cases[0].clean.shape[:2]
    cell = 2.4
    fig = new_figure(4 * cell, rows * cell * h / w + 0.5)
    axes = np.atleast_2d(fig.subplots(rows, 4))
    heads = ("clean", "damaged", "restored", "|restored − clean| ×4")
    for r, c in enumerate(cases):
        for k, img in enumerate((c.clean, c.damaged, c.restored, c.diff4)):
            ax = axes[r, k]
            ax.imshow(img, interpolation="nearest" if max(img.shape[:2]) <= 128 else "antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heads[k], fontsize=10)
        axes[r, 0].set_ylabel(
            f"{c.image}\nSSIM {c.ssim_input:.3f}→{c.ssim_damaged_in:.3f}\nδ {c.delta_ssim:+.3f}", fontsize=8
        )
    fig.suptitle(f"{name}: worst cases by δSSIM")
    return fig


def write_figures(result: EvaluationResult, out: Path) -> dict[str, Path]:
    """Draw the still evaluation's figures (see the module docstring) into the folder ``out``;
    returns ``{stem: path}``."""
    paths: dict[str, Path] = {}
    bins = _ssim_bins(result)
    s_in = [s.ssim_input for s in next(iter(result.scores.values()))]
    _save(_input_pairs_figure(result, s_in, bins), out / "ssim_input_pairs.png", paths)
    deltas_all = [s.delta_ssim for sc in result.scores.values() for s in sc]
    m = max(0.01, max(abs(d) for d in deltas_all) * 1.05)
    dbins = np.linspace(-m, m, 41)
    labels = figure_names(list(result.scores))
    for name, sc in result.scores.items():
        label, summ = labels[name], result.summaries[name]
        _save(_method_ssim_figure(name, sc, summ, s_in, bins), out / f"ssim_{label}.png", paths)
        _save(_delta_figure(name, sc, summ, dbins), out / f"delta_ssim_{label}.png", paths)
        cases = result.worst.get(name) or []
        if cases:
            _save(_worst_figure(name, cases), out / f"worst_{label}.png", paths)
    return paths


# ------------------------------------------------------------------------------------------------
# clip evaluation


def _per_frame_figure(result: ClipEvaluation) -> Any:
    first = next(iter(result.scores.values()))
    xs = [s.frame for s in first]
    fig = new_figure(9.0, 5.6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for name, sc in result.scores.items():
        ax1.plot(xs, [s.ssim_damaged_in for s in sc], linewidth=1.2, marker="." if len(xs) <= 60 else None, label=name)
    ax1.plot(
        xs, [s.ssim_input for s in first], color="0.3", linestyle="--", linewidth=1.2, label="damaged input", zorder=3
    )
    ax1.set(ylabel="SSIM(output, clean)", title="SSIM per frame: outputs on the damaged clip")
    ax1.legend(fontsize=8, ncol=3, loc="lower left")
    if len(xs) > 1:
        ax2.plot(xs[1:], [s.flicker_clean for s in first][1:], color="k", linewidth=1.4, label="clean clip")
        for name, sc in result.scores.items():
            ax2.plot(xs[1:], [s.flicker_damaged_in for s in sc][1:], linewidth=1.0, label=name)
        ax2.plot(
            xs[1:],
            [s.flicker_input for s in first][1:],
            color="0.3",
            linestyle="--",
            linewidth=1.2,
            label="damaged input",
            zorder=3,
        )
        ax2.legend(fontsize=8, ncol=3, loc="upper left")
    ax2.set(xlabel="frame", ylabel="mean |x_t − x_t−1|", title="flicker per frame")
    return fig


def _strip_figure(strip: Mapping[str, Any]) -> Any:
    images = strip["images"]
    k = len(images)
    cell = 2.2
    fig = new_figure(k * cell, cell + 0.7)
    axes = np.atleast_1d(fig.subplots(1, k))
    for ax, (label, img) in zip(axes, images.items()):
        ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=9)
    x, y, w, h = strip["box"]
    fig.suptitle(f"frame {strip['frame']}, crop {w}x{h} at ({x}, {y})", fontsize=10)
    return fig


def write_clip_figures(result: ClipEvaluation, out: Path) -> dict[str, Path]:
    """Draw ``ssim_per_frame.png`` and (when the result holds a strip) ``strip.png`` into the folder
    ``out``; returns ``{stem: path}``."""
    paths: dict[str, Path] = {}
    _save(_per_frame_figure(result), out / "ssim_per_frame.png", paths)
    if result.strip:
        _save(_strip_figure(result.strip), out / "strip.png", paths)
    return paths
