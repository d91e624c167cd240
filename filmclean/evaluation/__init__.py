"""Evaluation of restoration methods: the still-image protocol of Ivanova et al. (VISAPP 2022), its
clip version with temporal stability, and the paper's layer-response experiment.

Modules: :mod:`~.metrics` (SSIM, PSNR, LPIPS, error attribution), :mod:`~.pairs` (test pairs),
:mod:`~.methods` (the methods under test and their specs), :mod:`~.heldout` (the damage
generator never used for training), :mod:`~.still` (:func:`evaluate`),
:mod:`~.clip` (:func:`evaluate_clip`), :mod:`~.layers` (:func:`analyze_layers`), :mod:`~.report`
and :mod:`~.figures` (report folders), :mod:`~.cli` (the ``evaluate``, ``evaluate-clip`` and
``analyze-layers`` commands). Evaluation may use both the runtime and :mod:`filmclean.train`.

The names below are imported from their modules on first use, so importing this package (as the
CLI does to list its commands) loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ATTRIBUTION": "metrics",
    "CLEAN_SSIM_FLOOR": "metrics",
    "SSIM_SETTINGS": "metrics",
    "LpipsScorer": "metrics",
    "attribute_errors": "metrics",
    "kind_errors": "metrics",
    "psnr": "metrics",
    "ssim": "metrics",
    "Pair": "pairs",
    "PairSet": "pairs",
    "open_pairs": "pairs",
    "with_heldout_damage": "pairs",
    "with_film_damage": "pairs",
    "KINDS": "heldout",
    "HeldoutDamage": "heldout",
    "HeldoutParams": "heldout",
    "damage_heldout": "heldout",
    "ClipMethod": "methods",
    "Method": "methods",
    "dns_method": "methods",
    "dust_and_scratches": "methods",
    "identity_clip_method": "methods",
    "identity_method": "methods",
    "model_clip_method": "methods",
    "model_method": "methods",
    "oracle_inpaint": "methods",
    "oracle_method": "methods",
    "parse_clip_method": "methods",
    "parse_method": "methods",
    "tmedian_clip_method": "methods",
    "EvaluationResult": "still",
    "ImageScores": "still",
    "evaluate": "still",
    "summarize": "still",
    "summarize_inputs": "still",
    "ClipEvaluation": "clip",
    "ClipFrames": "clip",
    "FrameScores": "clip",
    "evaluate_clip": "clip",
    "evaluate_sequence": "clip",
    "read_clip": "clip",
    "LAYER_NAMES": "layers",
    "PAPER_LAYER_NAMES": "layers",
    "LayerAnalysis": "layers",
    "LayerResponse": "layers",
    "analyze_layers": "layers",
    "default_layer_names": "layers",
    "layer_responses": "layers",
    "layers_table": "layers",
    "write_layer_report": "layers",
    "CLIP_DEFINITIONS": "report",
    "DEFINITIONS": "report",
    "attribution_table": "report",
    "kind_table": "report",
    "clip_table": "report",
    "results_table": "report",
    "write_clip_report": "report",
    "write_report": "report",
}

if TYPE_CHECKING:
    from .clip import ClipEvaluation, ClipFrames, FrameScores, evaluate_clip, evaluate_sequence, read_clip
    from .heldout import KINDS, HeldoutDamage, HeldoutParams, damage_heldout
    from .layers import (
        LAYER_NAMES,
        PAPER_LAYER_NAMES,
        LayerAnalysis,
        LayerResponse,
        analyze_layers,
        default_layer_names,
        layer_responses,
        layers_table,
        write_layer_report,
    )
    from .methods import (
        ClipMethod,
        Method,
        dns_method,
        dust_and_scratches,
        identity_clip_method,
        identity_method,
        model_clip_method,
        model_method,
        oracle_inpaint,
        oracle_method,
        parse_clip_method,
        parse_method,
        tmedian_clip_method,
    )
    from .metrics import (
        ATTRIBUTION,
        CLEAN_SSIM_FLOOR,
        SSIM_SETTINGS,
        LpipsScorer,
        attribute_errors,
        kind_errors,
        psnr,
        ssim,
    )
    from .pairs import Pair, PairSet, open_pairs, with_film_damage, with_heldout_damage
    from .report import (
        CLIP_DEFINITIONS,
        DEFINITIONS,
        attribution_table,
        clip_table,
        kind_table,
        results_table,
        write_clip_report,
        write_report,
    )
    from .still import EvaluationResult, ImageScores, evaluate, summarize, summarize_inputs


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "KINDS",
    "HeldoutDamage",
    "HeldoutParams",
    "ATTRIBUTION",
    "CLEAN_SSIM_FLOOR",
    "CLIP_DEFINITIONS",
    "ClipEvaluation",
    "ClipFrames",
    "ClipMethod",
    "DEFINITIONS",
    "EvaluationResult",
    "FrameScores",
    "ImageScores",
    "LAYER_NAMES",
    "LayerAnalysis",
    "LayerResponse",
    "LpipsScorer",
    "Method",
    "PAPER_LAYER_NAMES",
    "Pair",
    "PairSet",
    "SSIM_SETTINGS",
    "analyze_layers",
    "attribute_errors",
    "attribution_table",
    "damage_heldout",
    "kind_errors",
    "kind_table",
    "clip_table",
    "default_layer_names",
    "dns_method",
    "dust_and_scratches",
    "evaluate",
    "evaluate_clip",
    "evaluate_sequence",
    "identity_clip_method",
    "identity_method",
    "layer_responses",
    "layers_table",
    "model_clip_method",
    "model_method",
    "open_pairs",
    "with_heldout_damage",
    "with_film_damage",
    "oracle_inpaint",
    "oracle_method",
    "parse_clip_method",
    "parse_method",
    "psnr",
    "read_clip",
    "results_table",
    "ssim",
    "summarize",
    "summarize_inputs",
    "tmedian_clip_method",
    "write_clip_report",
    "write_layer_report",
    "write_report",
]
