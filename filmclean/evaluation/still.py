"""The still-image protocol of Ivanova et al. (VISAPP 2022, section 4): :func:`evaluate`.

A restoration method is judged twice on every test pair: on the *damaged* image (how much of the
damage it repairs) and on the *clean* image (how much new damage it introduces; a perfect method
leaves a clean picture untouched). Scores, all against the clean image (see
:data:`filmclean.evaluation.report.DEFINITIONS`):

- ``ssim_input``: SSIM(damaged, clean), the damage of the input pair (the paper's Figure 3);
- ``ssim_damaged_in``: SSIM(method(damaged), clean);
- ``ssim_clean_in``: SSIM(method(clean), clean);
- ``delta_ssim``: ``ssim_damaged_in - ssim_input`` (the paper's δSSIM; below 0 = made worse);
- PSNR and LPIPS (VGG, v0.1) of the same three comparisons, and seconds per restoration;
- with true masks, where SSIM is lost (:func:`filmclean.evaluation.metrics.attribute_errors`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .heldout import KINDS
from .methods import Method, as_output, check_method_names
from .metrics import (
    ATTRIBUTION,
    CLEAN_SSIM_FLOOR,
    LpipsScorer,
    attribute_errors,
    kind_errors,
    metric_settings,
    psnr,
    psnr_stats,
    ssim,
    stats,
)
from .pairs import Pair, PairSet

__all__ = [
    "EvaluationResult",
    "ImageScores",
    "WorstCase",
    "evaluate",
    "summarize",
    "summarize_inputs",
]


@dataclass
class ImageScores:
    """Scores of one method on one pair (see :data:`filmclean.evaluation.report.DEFINITIONS`).

    PSNR is ``math.inf`` for identical images; LPIPS is ``None`` when unavailable;
    ``clean_changed``: the restored clean input differs from it in at least one sample;
    ``damaged_fraction``: share of pixels in the true mask (``None`` without masks); the
    attribution fields ``missed_share``, ``false_share``, ``ssim_lost_false`` and
    ``ssim_lost_missed`` (see :func:`~filmclean.evaluation.metrics.attribute_errors`) are ``None``
    without masks.
    """

    model: str
    image: str
    ssim_input: float
    ssim_damaged_in: float
    ssim_clean_in: float
    psnr_input: float
    psnr_damaged_in: float
    psnr_clean_in: float
    lpips_input: float | None
    lpips_damaged_in: float | None
    lpips_clean_in: float | None
    clean_changed: bool
    seconds_damaged: float
    seconds_clean: float
    damaged_fraction: float | None = None
    missed_share: float | None = None
    false_share: float | None = None
    ssim_lost_false: float | None = None
    ssim_lost_missed: float | None = None
    per_kind: dict[str, dict[str, float]] | None = None  # see metrics.kind_errors (held-out damage)

    @property
    def delta_ssim(self) -> float:
        """δSSIM = ``ssim_damaged_in - ssim_input``."""
        return self.ssim_damaged_in - self.ssim_input

    def row(self) -> dict[str, Any]:
        """A flat dict for CSV/JSON (``delta_ssim`` included, in column order)."""
        d = asdict(self)
        out: dict[str, Any] = {}
        for k in ("model", "image", "ssim_input", "ssim_damaged_in", "ssim_clean_in"):
            out[k] = d[k]
        out["delta_ssim"] = self.delta_ssim
        for k in (
            "psnr_input",
            "psnr_damaged_in",
            "psnr_clean_in",
            "lpips_input",
            "lpips_damaged_in",
            "lpips_clean_in",
            "clean_changed",
            "seconds_damaged",
            "seconds_clean",
            "damaged_fraction",
            *ATTRIBUTION,
        ):
            out[k] = d[k]
        if self.per_kind is not None:
            for kind in KINDS:
                values = self.per_kind.get(kind, {})
                out[f"missed_share_{kind}"] = values.get("missed_share")
                out[f"unrepaired_share_{kind}"] = values.get("unrepaired_share")
                out[f"ssim_lost_missed_{kind}"] = values.get("ssim_lost_missed")
        return out


def summarize(scores: Sequence[ImageScores], clean_floor: float = CLEAN_SSIM_FLOOR) -> dict[str, Any]:
    """Summary of one method over its images.

    Returns ``{"n", "ssim_damaged_in": stats, "ssim_clean_in": stats, "delta_ssim": stats,
    "worse": k, "worse_share": k/n, "clean_changed", "clean_changed_share", "clean_below_floor",
    "clean_below_floor_share", "psnr_damaged_in": {"mean", "sd", "identical"}, "psnr_clean_in",
    "lpips_damaged_in": stats, "lpips_clean_in": stats, "seconds_per_image", "missed_share": stats,
    "false_share": stats, "ssim_lost_false": stats, "ssim_lost_missed": stats}`` where ``stats`` is
    ``{"mean", "sd", "min", "max", "median"}`` (population SD; ``None`` when no value). Worse means
    ``delta_ssim < 0`` strictly; below floor means ``ssim_clean_in < clean_floor``.
    """
    n = len(scores)
    if n == 0:
        raise ValueError("no scores to summarise")
    worse = sum(1 for s in scores if s.delta_ssim < 0)
    changed = sum(1 for s in scores if s.clean_changed)
    below = sum(1 for s in scores if s.ssim_clean_in < clean_floor)
    secs = [t for s in scores for t in (s.seconds_damaged, s.seconds_clean)]
    return {
        "n": n,
        "ssim_damaged_in": stats([s.ssim_damaged_in for s in scores]),
        "ssim_clean_in": stats([s.ssim_clean_in for s in scores]),
        "delta_ssim": stats([s.delta_ssim for s in scores]),
        "worse": worse,
        "worse_share": worse / n,
        "clean_changed": changed,
        "clean_changed_share": changed / n,
        "clean_below_floor": below,
        "clean_below_floor_share": below / n,
        "clean_floor": clean_floor,
        "psnr_damaged_in": psnr_stats([s.psnr_damaged_in for s in scores]),
        "psnr_clean_in": psnr_stats([s.psnr_clean_in for s in scores]),
        "lpips_damaged_in": stats([s.lpips_damaged_in for s in scores]),
        "lpips_clean_in": stats([s.lpips_clean_in for s in scores]),
        "seconds_per_image": float(np.mean(secs)),
        **{k: stats([getattr(s, k) for s in scores]) for k in ATTRIBUTION},
        **({"per_kind": _per_kind_summary(scores)} if any(s.per_kind is not None for s in scores) else {}),
    }


def _per_kind_summary(scores: Sequence[ImageScores]) -> dict[str, dict[str, Any]]:
    """Per kind of damage: stats of the share of its visible pixels left alone and of the SSIM
    that costs, over the images that carry that kind, and in how many images it occurs."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        values = [s.per_kind[kind] for s in scores if s.per_kind is not None and kind in s.per_kind]
        out[kind] = {
            "images": len(values),
            "missed_share": stats([v["missed_share"] for v in values]),
            "unrepaired_share": stats([v["unrepaired_share"] for v in values]),
            "ssim_lost_missed": stats([v["ssim_lost_missed"] for v in values]),
        }
    return out


def summarize_inputs(scores: Sequence[ImageScores]) -> dict[str, Any]:
    """Summary of the input pairs (one entry per image; ``scores`` of any one method):
    ``{"n", "ssim": stats, "psnr": {...}, "lpips": stats, "damaged_fraction": stats}``."""
    return {
        "n": len(scores),
        "ssim": stats([s.ssim_input for s in scores]),
        "psnr": psnr_stats([s.psnr_input for s in scores]),
        "lpips": stats([s.lpips_input for s in scores]),
        "damaged_fraction": stats([s.damaged_fraction for s in scores]),
    }


@dataclass
class WorstCase:
    """A thumbnail row of the worst-case contact sheet (images at most ``thumb`` px on a side, see
    :func:`evaluate`)."""

    image: str
    ssim_input: float
    ssim_damaged_in: float
    delta_ssim: float
    clean: np.ndarray
    damaged: np.ndarray
    restored: np.ndarray
    diff4: np.ndarray


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured.

    ``scores[method] = [ImageScores per image]`` (same image order for every method);
    ``summaries[method] = summarize(...)``; ``inputs = summarize_inputs(...)``;
    ``worst[method]``: up to ``worst`` cases, lowest δSSIM first (ties: lowest ``ssim_damaged_in``);
    ``methods``: ``{name: {"kind", "description", **info}}``; ``settings``: pairs and metric settings.
    """

    settings: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    scores: dict[str, list[ImageScores]]
    summaries: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    worst: dict[str, list[WorstCase]]
    lpips_reason: str | None = None
    figures: list[str] = field(default_factory=list)


def _thumb(img: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return img.copy()
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0.0, 1.0)


#: one method's outputs on one pair: restored damaged, restored clean, seconds of each
_Outputs = tuple[np.ndarray, np.ndarray, float, float]


def _run_methods(methods: Sequence[Method], pair: Pair) -> list[_Outputs]:
    """Every method on private copies of the pair's damaged and clean image (with the true mask of
    that input: the pair's mask, an empty one for the clean image, ``None`` without masks), timed."""
    empty = None if pair.mask is None else np.zeros_like(pair.mask)
    outputs = []
    for m in methods:
        t0 = time.perf_counter()
        mask = None if pair.mask is None else pair.mask.copy()
        rd = as_output(m.restore(pair.damaged.copy(), mask), pair.damaged, m.name)
        t1 = time.perf_counter()
        rc = as_output(m.restore(pair.clean.copy(), None if empty is None else empty.copy()), pair.clean, m.name)
        t2 = time.perf_counter()
        outputs.append((rd, rc, t1 - t0, t2 - t1))
    return outputs


def _score_pair(
    pair: Pair, methods: Sequence[Method], outputs: Sequence[_Outputs], scorer: LpipsScorer
) -> list[ImageScores]:
    """The :class:`ImageScores` of every method on one pair, from its outputs."""
    clean, damaged = pair.clean, pair.damaged
    s_in, p_in = ssim(damaged, clean), psnr(clean, damaged)
    frac = None if pair.mask is None else float(pair.mask.mean())
    lp = scorer.score(clean, [damaged] + [im for rd, rc, _, _ in outputs for im in (rd, rc)])
    out = []
    for j, (m, (rd, rc, t_d, t_c)) in enumerate(zip(methods, outputs)):
        s_d = ssim(rd, clean)
        attr: dict[str, Any] = {} if pair.mask is None else dict(attribute_errors(clean, damaged, rd, pair.mask, s_d))
        if pair.kinds is not None:
            attr["per_kind"] = kind_errors(clean, damaged, rd, pair.kinds, s_d)
        out.append(
            ImageScores(
                m.name,
                pair.name,
                s_in,
                s_d,
                ssim(rc, clean),
                p_in,
                psnr(clean, rd),
                psnr(clean, rc),
                lp[0],
                lp[1 + 2 * j],
                lp[2 + 2 * j],
                bool(np.any(rc != clean)),
                t_d,
                t_c,
                frac,
                **attr,
            )
        )
    return out


def _keep_worst(
    cases: list[WorstCase], sc: ImageScores, pair: Pair, restored: np.ndarray, worst: int, thumb: int
) -> None:
    """Add ``sc`` to ``cases`` (kept sorted, at most ``worst``) when it is among the worst so far."""
    key = (sc.delta_ssim, sc.ssim_damaged_in)
    if len(cases) < worst or key < (cases[-1].delta_ssim, cases[-1].ssim_damaged_in):
        diff4 = np.clip(np.abs(restored - pair.clean) * 4.0, 0.0, 1.0)
        cases.append(
            WorstCase(
                pair.name,
                sc.ssim_input,
                sc.ssim_damaged_in,
                sc.delta_ssim,
                _thumb(pair.clean, thumb),
                _thumb(pair.damaged, thumb),
                _thumb(restored, thumb),
                _thumb(diff4, thumb),
            )
        )
        cases.sort(key=lambda c: (c.delta_ssim, c.ssim_damaged_in))
        del cases[worst:]


def _settings(pairs: PairSet, scorer: LpipsScorer, clean_floor: float, worst: int) -> dict[str, Any]:
    settings = dict(pairs.settings)
    settings.update(
        {
            "n_images": len(pairs.names),
            "names": list(pairs.names),
            "has_masks": pairs.has_masks,
            "clean_floor": clean_floor,
            **metric_settings(),
            "lpips": {
                "available": scorer.available,
                "reason": scorer.reason,
                "weights": str(scorer.weights) if scorer.weights else "default cache",
            },
            "worst_cases": worst,
        }
    )
    return settings


def evaluate(
    pairs: PairSet,
    methods: Sequence[Method],
    *,
    lpips: LpipsScorer | None = None,
    worst: int = 4,
    thumb: int = 512,
    clean_floor: float = CLEAN_SSIM_FLOOR,
    progress: Callable[[int, int, str], None] | None = None,
) -> EvaluationResult:
    """Run every method on the damaged and on the clean image of every pair and score them.

    Each pair is loaded once; each method gets private copies of the inputs (with the true mask of
    that input: the pair's mask for the damaged image, an empty mask for the clean one; ``None``
    without masks). ``lpips=None`` scores without LPIPS. ``progress(i, n, name)`` is called
    before pair ``i`` (0-based). Timing covers the method call only. Memory: one pair and the two
    outputs of every method for it are held at a time, plus ``worst`` thumbnails per method.

    Raises:
        InputError: duplicate method names, or a method needing masks when the pairs have none.
    """
    check_method_names(methods, "model")
    for m in methods:
        if m.needs_mask and not pairs.has_masks:
            raise InputError(
                f"{m.name} needs true damage masks, but the pairs have no mask/ folder (or not every pair has a mask)",
                pairs.root,
            )
    scorer = lpips if lpips is not None else LpipsScorer(enabled=False)
    scores: dict[str, list[ImageScores]] = {m.name: [] for m in methods}
    worst_cases: dict[str, list[WorstCase]] = {m.name: [] for m in methods}
    n = len(pairs.names)
    for i, name in enumerate(pairs.names):
        if progress is not None:
            progress(i, n, name)
        pair = pairs.load(name)
        outputs = _run_methods(methods, pair)
        for m, sc, (rd, _, _, _) in zip(methods, _score_pair(pair, methods, outputs, scorer), outputs):
            scores[m.name].append(sc)
            if worst > 0:
                _keep_worst(worst_cases[m.name], sc, pair, rd, worst, thumb)
        del outputs
    summaries = {m.name: summarize(scores[m.name], clean_floor) for m in methods}
    infos = {m.name: {"kind": m.kind, "description": m.description, **m.info} for m in methods}
    return EvaluationResult(
        _settings(pairs, scorer, clean_floor, worst),
        infos,
        scores,
        summaries,
        summarize_inputs(scores[methods[0].name]),
        worst_cases,
        scorer.reason,
    )
