"""The paper's layer-response experiment (Ivanova et al. 2022, section 4.2, Table 1).

:func:`analyze_layers` compares the mean activation of every filter of VGG-16's five pre-pool
ReLUs on a clean image and on its damaged version: how many of the most activated filters change
when dust and scratches are added.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .figures import figure_names, new_figure
from .metrics import ssim
from .pairs import PairSet
from .report import report_dir, write_json

__all__ = [
    "LAYER_NAMES",
    "PAPER_LAYER_NAMES",
    "LayerAnalysis",
    "LayerResponse",
    "analyze_layers",
    "default_layer_names",
    "layer_responses",
    "layers_table",
    "write_layer_report",
]

#: torchvision-style names of VGG-16's pre-pool ReLUs (``filmclean.nets.vgg16.TAP_INDICES``)
LAYER_NAMES: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
#: the paper's names for the same layers (indices in fastai's VGG-16 with batch norm)
PAPER_LAYER_NAMES: tuple[str, ...] = ("ReLU 5", "ReLU 12", "ReLU 22", "ReLU 32", "ReLU 42")


@dataclass
class LayerResponse:
    """Response of one layer to one pair.

    ``mean_clean``/``mean_damaged``: mean activation of every filter over the image (``(C,)``);
    ``top_clean``/``top_damaged``: the ``top_k`` filters with the highest mean, highest first;
    ``n_different``: size of the symmetric difference of the two top sets, 0..2k (the paper's
    Table 1 count, 18 = no filter in common); ``n_shared``: filters in both sets.
    """

    layer: str
    paper_layer: str
    channels: int
    mean_clean: np.ndarray
    mean_damaged: np.ndarray
    top_clean: list[int]
    top_damaged: list[int]
    n_different: int
    n_shared: int


@dataclass
class LayerAnalysis:
    """:func:`analyze_layers`' result: ``responses[name]`` per image, ``ssim_input[name]``, settings."""

    names: list[str]
    responses: dict[str, list[LayerResponse]]
    ssim_input: dict[str, float]
    settings: dict[str, Any]


def _top(means: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-means, kind="stable")
    return [int(i) for i in order[:k]]


def layer_responses(
    clean: np.ndarray, damaged: np.ndarray, features: Callable[[Any], Sequence[Any]], top_k: int = 9
) -> list[LayerResponse]:
    """Mean activation per filter and top-``top_k`` filter sets of the clean and the damaged image.

    ``features(x)`` maps ``(N, 3, H, W)`` float32 RGB in ``[0, 1]`` to a list of ``(N, C, h, w)``
    feature maps (e.g. :class:`filmclean.nets.vgg16.VGG16Features`; with five outputs they are
    named after :data:`LAYER_NAMES`, otherwise ``layer{i}``). Ties are broken by filter index.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(np.stack([clean, damaged]).transpose(0, 3, 1, 2), dtype=np.float32))
    with torch.inference_mode():
        maps = list(features(x))
    five = len(maps) == len(LAYER_NAMES)
    out = []
    for i, fm in enumerate(maps):
        means = fm.float().mean(dim=(2, 3)).cpu().numpy().astype(np.float64)
        k = min(int(top_k), means.shape[1])
        tc, td = _top(means[0], k), _top(means[1], k)
        shared = len(set(tc) & set(td))
        out.append(
            LayerResponse(
                LAYER_NAMES[i] if five else f"layer{i}",
                PAPER_LAYER_NAMES[i] if five else "",
                int(means.shape[1]),
                means[0],
                means[1],
                tc,
                td,
                2 * (k - shared),
                shared,
            )
        )
    return out


def default_layer_names(pairs: PairSet, count: int = 3) -> list[str]:
    """``count`` pairs spread over the damage range: the names at evenly spaced ranks of
    SSIM(damaged, clean) from most to least damaged (all pairs if there are no more than ``count``)."""
    if len(pairs.names) <= count:
        return list(pairs.names)
    scored = sorted((ssim(p.damaged, p.clean), p.name) for p in pairs)
    idx = np.unique(np.round(np.linspace(0, len(scored) - 1, count)).astype(int))
    return [scored[i][1] for i in idx]


def analyze_layers(
    pairs: PairSet,
    names: Sequence[str] | None = None,
    features: Callable[[Any], Sequence[Any]] | None = None,
    top_k: int = 9,
) -> LayerAnalysis:
    """The paper's layer-response experiment on ``names`` (default :func:`default_layer_names`).

    ``features``: the feature extractor (see :func:`layer_responses`); ``None`` loads the ImageNet
    VGG-16 (:func:`filmclean.nets.vgg16.load_vgg16_features` on the offline weights; raises
    :class:`filmclean.errors.ModelError` if they are missing). Raises :class:`InputError` for
    unknown names.
    """
    chosen = list(names) if names else default_layer_names(pairs)
    unknown = [n for n in chosen if n not in set(pairs.names)]
    if unknown:
        raise InputError(f"no pair named {', '.join(unknown)}", pairs.root)
    source = "injected"
    if features is None:
        from ..nets.vgg16 import ensure_vgg_weights, load_vgg16_features

        weights = ensure_vgg_weights()
        features = load_vgg16_features(weights)
        source = f"VGG-16 ImageNet weights ({weights})"
    responses: dict[str, list[LayerResponse]] = {}
    s_in: dict[str, float] = {}
    for name in chosen:
        pair = pairs.load(name)
        s_in[name] = ssim(pair.damaged, pair.clean)
        responses[name] = layer_responses(pair.clean, pair.damaged, features, top_k)
    settings = dict(pairs.settings)
    settings.update(
        {
            "names": chosen,
            "top_k": top_k,
            "features": source,
            "note": (
                "the paper's layer names index fastai's VGG-16 with batch norm; filmclean's VGG-16 "
                "has none, so the same five pre-pool ReLUs are relu1_2 .. relu5_3 here"
            ),
        }
    )
    return LayerAnalysis(chosen, responses, s_in, settings)


def layers_table(analysis: LayerAnalysis) -> Any:
    """A :class:`rich.table.Table` like the paper's Table 1: rows = layers, columns = images,
    cells = filters that differ between the clean and damaged top-k sets (of 2k)."""
    from rich.table import Table

    k = analysis.settings.get("top_k", 9)
    table = Table(title=f"different filters in the top-{k} sets, clean vs damaged (0 = same set, {2 * k} = disjoint)")
    table.add_column("layer", style="bold", no_wrap=True)
    table.add_column("paper")
    table.add_column("filters", justify="right")
    for name in analysis.names:
        table.add_column(f"{name}\nSSIM {analysis.ssim_input[name]:.3f}", justify="right")
    first = analysis.responses[analysis.names[0]]
    for li, lr in enumerate(first):
        table.add_row(
            lr.layer,
            lr.paper_layer,
            str(lr.channels),
            *[str(analysis.responses[n][li].n_different) for n in analysis.names],
        )
    return table


# ------------------------------------------------------------------------------------------------
# report


def _top_different_figure(analysis: LayerAnalysis, k: int) -> Any:
    """Grouped bars: filters that differ, per layer (groups) and image (bars)."""
    names = analysis.names
    first = analysis.responses[names[0]]
    fig = new_figure(max(6.0, 1.2 * len(first) + 0.4 * len(first) * len(names)), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(names)
    xs = np.arange(len(first))
    for j, name in enumerate(names):
        vals = [analysis.responses[name][i].n_different for i in range(len(first))]
        bars = ax.bar(
            xs + (j - (len(names) - 1) / 2) * width, vals, width, label=f"{name} (SSIM {analysis.ssim_input[name]:.2f})"
        )
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(xs, [f"{lr.layer}\n{lr.paper_layer}" for lr in first])
    ax.set_ylim(0, 2 * k + 1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set(ylabel=f"different filters (of {2 * k})", title=f"top-{k} filters by mean activation: clean vs damaged")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _image_figure(analysis: LayerAnalysis, name: str, k: int) -> Any:
    """Per layer of one image: the mean activation of every filter, clean and damaged, tops marked."""
    resp = analysis.responses[name]
    fig = new_figure(10.0, 2.0 * len(resp) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(resp), 1))
    for ax, lr in zip(axes, resp):
        idx = np.arange(lr.channels)
        ax.plot(idx, lr.mean_clean, color="tab:green", linewidth=0.9, label="clean")
        ax.plot(idx, lr.mean_damaged, color="tab:red", linewidth=0.9, alpha=0.8, label="damaged")
        ax.scatter(
            lr.top_clean,
            lr.mean_clean[lr.top_clean],
            s=28,
            facecolors="none",
            edgecolors="tab:green",
            label=f"top {k} clean",
        )
        ax.scatter(
            lr.top_damaged, lr.mean_damaged[lr.top_damaged], s=22, marker="x", color="tab:red", label=f"top {k} damaged"
        )
        ax.set_xlim(-0.5, lr.channels - 0.5)
        ax.set_ylabel("mean act.")
        ax.set_title(
            f"{lr.layer} ({lr.paper_layer}): {lr.n_different} of {2 * k} top filters differ", fontsize=9, loc="left"
        )
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1].set_xlabel("filter index")
    fig.suptitle(f"{name}: mean activation per filter (SSIM(damaged, clean) {analysis.ssim_input[name]:.3f})")
    return fig


def _layer_json(analysis: LayerAnalysis, k: int, figures: Sequence[str]) -> dict[str, Any]:
    return {
        "format": "filmclean-layer-response",
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": analysis.settings,
        "definitions": {
            "mean": "mean activation of a filter over all positions of its feature map",
            "top": f"the {k} filters with the highest mean, highest first (ties by index)",
            "n_different": f"size of the symmetric difference of the clean and damaged top-{k} sets (0..{2 * k})",
            "n_shared": f"filters in both top-{k} sets",
        },
        "images": {
            name: {
                "ssim_input": analysis.ssim_input[name],
                "layers": [
                    {
                        "layer": lr.layer,
                        "paper_layer": lr.paper_layer,
                        "channels": lr.channels,
                        "n_different": lr.n_different,
                        "n_shared": lr.n_shared,
                        "top_clean": lr.top_clean,
                        "top_damaged": lr.top_damaged,
                        "mean_clean": [float(f"{v:.6g}") for v in lr.mean_clean],
                        "mean_damaged": [float(f"{v:.6g}") for v in lr.mean_damaged],
                    }
                    for lr in analysis.responses[name]
                ],
            }
            for name in analysis.names
        },
        "figures": sorted(figures),
    }


def write_layer_report(analysis: LayerAnalysis, out_dir: str | Path) -> dict[str, Path]:
    """Write ``layer_response.json``, ``layers_top_different.png`` (grouped bars: layers x images)
    and ``layers_<image>.png`` (per layer: mean activation of every filter, clean and damaged, with
    the top-k of each marked) into ``out_dir``. Returns ``{stem: path}`` (the JSON as ``"json"``);
    raises :class:`filmclean.errors.OutputError` when the folder cannot be written."""
    out = report_dir(out_dir)
    k = analysis.settings.get("top_k", 9)
    paths: dict[str, Path] = {"layers_top_different": out / "layers_top_different.png"}
    _top_different_figure(analysis, k).savefig(paths["layers_top_different"])
    for name, label in figure_names(analysis.names).items():
        p = paths[f"layers_{label}"] = out / f"layers_{label}.png"
        _image_figure(analysis, name, k).savefig(p)
    paths["json"] = write_json(out / "layer_response.json", _layer_json(analysis, k, [p.name for p in paths.values()]))
    return paths
