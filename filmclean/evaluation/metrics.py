"""Image metrics of the evaluations: SSIM, PSNR, LPIPS, where a restoration loses SSIM, and summary
statistics.

SSIM is :func:`skimage.metrics.structural_similarity` with :data:`SSIM_SETTINGS` (Gaussian window
of sigma 1.5, population covariance, data range 1, channels averaged: the settings of Wang et al.
2004) on float64 RGB in ``[0, 1]``; PSNR is :func:`skimage.metrics.peak_signal_noise_ratio` with
data range 1 (``inf`` for identical images); LPIPS is VGG-16 v0.1 (:class:`LpipsScorer`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FilmcleanError

__all__ = [
    "kind_errors",
    "ATTRIBUTION",
    "CLEAN_SSIM_FLOOR",
    "SSIM_SETTINGS",
    "LpipsScorer",
    "attribute_errors",
    "metric_settings",
    "psnr",
    "psnr_stats",
    "ssim",
    "stats",
]

#: keyword arguments given to :func:`skimage.metrics.structural_similarity` (inputs float64 in [0, 1])
SSIM_SETTINGS: dict[str, Any] = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 1.0,
    "channel_axis": -1,
}
#: a restored *clean* input below this SSIM counts as visibly damaged by the method
CLEAN_SSIM_FLOOR = 0.998
#: the keys of :func:`attribute_errors`, in report column order
ATTRIBUTION = ("missed_share", "false_share", "ssim_lost_false", "ssim_lost_missed")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two ``(H, W, 3)`` images in ``[0, 1]`` with :data:`SSIM_SETTINGS` (symmetric).

    Both are converted to float64 first. ``H, W >= 11`` (the Gaussian window is 11 px wide).
    Identical inputs give exactly 1.0.
    """
    from skimage.metrics import structural_similarity

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"SSIM of images of different shapes {x.shape} and {y.shape}")
    return float(structural_similarity(x, y, **SSIM_SETTINGS))


def psnr(clean: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of ``test`` against ``clean`` (data range 1); ``math.inf`` when identical."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):
        return float(
            peak_signal_noise_ratio(np.asarray(clean, np.float64), np.asarray(test, np.float64), data_range=1.0)
        )


def metric_settings() -> dict[str, dict[str, Any]]:
    """``{"ssim": ..., "psnr": ...}``: how :func:`ssim` and :func:`psnr` score, for a report's settings."""
    return {
        "ssim": {"function": "skimage.metrics.structural_similarity", **SSIM_SETTINGS, "dtype": "float64"},
        "psnr": {"function": "skimage.metrics.peak_signal_noise_ratio", "data_range": 1.0},
    }


def stats(values: Sequence[float | None]) -> dict[str, float | None]:
    """``{"mean", "sd", "min", "max", "median"}`` of the values that are not ``None`` (population SD;
    every entry ``None`` when there is no value)."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "sd": None, "min": None, "max": None, "median": None}
    return {
        "mean": float(v.mean()),
        "sd": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "median": float(np.median(v)),
    }


def psnr_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """``{"mean", "sd", "identical"}`` of PSNR values: mean and SD over the finite ones, and how many
    are infinite (identical images)."""
    finite = [v for v in values if math.isfinite(v)]
    s = stats(finite)
    return {"mean": s["mean"], "sd": s["sd"], "identical": len(values) - len(finite)}


def attribute_errors(
    clean: np.ndarray, damaged: np.ndarray, restored: np.ndarray, mask: np.ndarray, ssim_restored: float | None = None
) -> dict[str, float]:
    """Where a restoration of a damaged input loses SSIM, given the true damage ``mask``.

    ``clean``, ``damaged``, ``restored``: ``(H, W, 3)`` in ``[0, 1]``; ``mask``: ``(H, W)`` bool, the
    true damage. A pixel counts as repaired when ``restored`` differs from ``damaged`` in any
    channel. Returns ``{"missed_share", "false_share", "ssim_lost_false", "ssim_lost_missed"}``
    (see :data:`filmclean.evaluation.report.DEFINITIONS`): the shares of damaged pixels left
    untouched and of undamaged pixels changed, and how much SSIM each costs -- the SSIM of
    ``restored`` with the false repairs undone (resp. the missed pixels made clean) minus
    ``ssim_restored`` (computed if not given). Works for any method, since it only compares
    images; two SSIM evaluations per call.
    """
    m = np.asarray(mask, dtype=bool)
    changed = np.any(restored != damaged, axis=-1)
    missed, false = m & ~changed, changed & ~m
    base = ssim(restored, clean) if ssim_restored is None else float(ssim_restored)
    undone = np.where(false[..., None], damaged, restored)
    fixed = np.where(missed[..., None], clean, restored)
    n_dmg, n_ok = int(m.sum()), int((~m).sum())
    return {
        "missed_share": float(missed.sum() / n_dmg) if n_dmg else 0.0,
        "false_share": float(false.sum() / n_ok) if n_ok else 0.0,
        "ssim_lost_false": ssim(undone, clean) - base if false.any() else 0.0,
        "ssim_lost_missed": ssim(fixed, clean) - base if missed.any() else 0.0,
    }


#: A damaged pixel is still damaged after a restoration when its error (largest over the channels)
#: exceeds both 2/255 and half of the damage it carried.
UNREPAIRED = (2.0 / 255.0, 0.5)


def unrepaired_pixels(clean: np.ndarray, damaged: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose error after restoration ``max_c |restored - clean|`` is above
    2/255 and above half their error before ``max_c |damaged - clean|`` (see :data:`UNREPAIRED`)."""
    before = np.abs(damaged - clean).max(axis=-1)
    after = np.abs(restored - clean).max(axis=-1)
    floor, part = UNREPAIRED
    return (after > floor) & (after > part * before)


def kind_errors(
    clean: np.ndarray,
    damaged: np.ndarray,
    restored: np.ndarray,
    kinds: Mapping[str, np.ndarray],
    ssim_restored: float | None = None,
) -> dict[str, dict[str, float]]:
    """Per kind of damage (``kinds``: name -> ``(H, W)`` bool mask of that kind's visible damage):
    ``{"missed_share"``, the share of its pixels the restoration left untouched (unchanged in every
    channel); ``"unrepaired_share"``, the stricter share of its pixels still visibly damaged
    (:data:`UNREPAIRED`): touching a pixel without removing its damage does not count as a repair;
    and ``"ssim_lost_missed"``, the SSIM gained if the untouched pixels were made clean}``. Kinds
    with no pixel in this image are left out."""
    changed = np.any(restored != damaged, axis=-1)
    unrepaired = unrepaired_pixels(clean, damaged, restored)
    base = ssim(restored, clean) if ssim_restored is None else float(ssim_restored)
    out: dict[str, dict[str, float]] = {}
    for kind, mask in kinds.items():
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            continue
        missed = m & ~changed
        fixed = np.where(missed[..., None], clean, restored)
        out[kind] = {
            "missed_share": float(missed.sum() / m.sum()),
            "unrepaired_share": float((m & unrepaired).sum() / m.sum()),
            "ssim_lost_missed": ssim(fixed, clean) - base if missed.any() else 0.0,
        }
    return out


class LpipsScorer:
    """LPIPS (VGG, v0.1) distances to a reference image, or a reason why there are none.

    ``LpipsScorer(weights=None, enabled=True, device="cpu", pixels_per_batch=1 << 20)``:
    ``weights`` is a VGG-16 safetensors file with LPIPS heads (``None``: the converted cache, see
    :func:`filmclean.nets.vgg16.ensure_vgg_weights`); nothing is downloaded. The model is
    :func:`filmclean.nets.vgg16.load_lpips_vgg`, the one behind :func:`filmclean.nets.vgg16.lpips_vgg`,
    loaded once at construction; if that fails (or ``enabled`` is false) :attr:`available` is
    false, :attr:`reason` holds a one-line explanation and every score is ``None``.

    :meth:`score` computes the reference's features once and reuses them for every candidate, and
    gives exactly 0.0 for a candidate identical to the reference (LPIPS of identical images is 0
    by definition) and the same value for identical candidates, without running the network; the
    distances are those of :func:`~filmclean.nets.vgg16.lpips_vgg` up to float rounding.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        enabled: bool = True,
        device: str = "cpu",
        pixels_per_batch: int = 1 << 20,
    ) -> None:
        self.weights = None if weights is None else Path(weights)
        self.device = device
        self.pixels_per_batch = int(pixels_per_batch)
        self.reason: str | None = None
        self._model: Any = None
        if not enabled:
            self.reason = "disabled (--no-lpips)"
            return
        try:
            from ..nets.vgg16 import load_lpips_vgg

            self._model = load_lpips_vgg(self.weights).to(device)
        except FilmcleanError as exc:
            self.reason = str(exc)
        except (OSError, RuntimeError, ValueError) as exc:
            self.reason = " ".join(f"{type(exc).__name__}: {exc}".split())

    @property
    def available(self) -> bool:
        """Whether distances can be computed."""
        return self.reason is None

    def _features(self, images: Sequence[np.ndarray]) -> list[Any]:
        import torch

        m = self._model
        arr = np.stack([np.asarray(im, np.float32) for im in images]).transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        feats = m.vgg.forward_normalized(((2 * x - 1) - m.shift) / m.scale)
        return [f / (torch.sqrt((f * f).sum(dim=1, keepdim=True)) + 1e-10) for f in feats]

    def score(self, reference: np.ndarray, candidates: Sequence[np.ndarray]) -> list[float | None]:
        """LPIPS(candidate, reference) for each candidate; all ``(H, W, 3)`` float in ``[0, 1]``, one size."""
        if not self.available:
            return [None] * len(candidates)
        out: list[float | None] = [None] * len(candidates)
        unique: list[int] = []  # indices of distinct candidates that need the network
        alias: dict[int, int] = {}
        for i, c in enumerate(candidates):
            if np.array_equal(c, reference):
                out[i] = 0.0
                continue
            same = next((j for j in unique if np.array_equal(candidates[j], c)), None)
            if same is None:
                unique.append(i)
            else:
                alias[i] = same
        if unique:
            for i, v in zip(unique, self._distances(reference, [candidates[i] for i in unique])):
                out[i] = v
        for i, j in alias.items():
            out[i] = out[j]
        return out

    def _distances(self, reference: np.ndarray, candidates: Sequence[np.ndarray]) -> list[float]:
        """The network's LPIPS of every candidate, in batches of about :attr:`pixels_per_batch` pixels."""
        import torch

        h, w = reference.shape[:2]
        per = max(1, self.pixels_per_batch // max(1, h * w))
        out: list[float] = []
        with torch.inference_mode():
            ref = self._features([reference])
            for start in range(0, len(candidates), per):
                feats = self._features(candidates[start : start + per])
                total = feats[0].new_zeros(feats[0].shape[0])
                for a, b, lin in zip(feats, ref, self._model.lins):
                    total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
                out.extend(float(v) for v in total.cpu().numpy())
        return out
