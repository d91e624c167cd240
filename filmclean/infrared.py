"""Defect maps from a scanner's infrared channel (``frames --infrared``).

Film scanners that record infrared (Digital ICE, iSRD) store it as a fourth channel: RGBI TIFF
(raw 64-bit scans), or DPX/EXR with the infrared fourth. The colour dyes of chromogenic film are
nearly transparent to infrared, so the channel is flat -- the film base's level -- except where dust,
dirt, hairs and scratches block the light. Two things spoil the flatness: the cyan dye leaks a little
into the infrared (the channel follows the red record slightly), and silver (black-and-white film,
Kodachrome's silver-rich layers) blocks infrared like visible light, so the channel repeats the
picture and says nothing about dust.

:func:`infrared_defects` therefore (1) fits the channel as a linear function of the picture's
three colours by least squares, twice, the second time without the pixels the first fit leaves far
below it (the defects), (2) refuses a channel whose fitted part spans much of its level -- it
repeats the picture (:data:`PICTURE_SPAN`) -- and (3) marks as defects the pixels whose infrared
falls below the fitted value by more than ``threshold`` of the film base's level, grown by ``grow``
pixels (a speck's soft rim).

Arrays: ``rgb`` ``(H, W, 3)`` and ``ir`` ``(H, W)`` float32 in ``[0, 1]``; masks ``(H, W)`` bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PICTURE_SPAN", "InfraredDefects", "infrared_defects"]

PICTURE_SPAN = 0.35
"""An infrared channel whose picture-predicted part spans more than this share of the base level
(5th to 95th percentile) repeats the picture: silver film, not dust."""


@dataclass
class InfraredDefects:
    """``mask``: the defects (``None`` when the channel cannot be used); ``level``: the film base's
    infrared level; ``span``: the share of it that the picture explains; ``reason``: why the
    channel was not used."""

    mask: np.ndarray | None
    level: float
    span: float
    reason: str | None = None


def _fit(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    return coef


def infrared_defects(rgb: np.ndarray, ir: np.ndarray, threshold: float = 0.12, grow: int = 0) -> InfraredDefects:
    """The defects that ``ir`` shows in the picture ``rgb`` (see the module docstring)."""
    import cv2

    h, w = ir.shape
    step = max(1, int(np.sqrt(h * w / 200_000)))  # a fit on at most ~200k samples
    x = rgb[::step, ::step].reshape(-1, 3).astype(np.float64)
    y = ir[::step, ::step].reshape(-1).astype(np.float64)
    ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
    x, y = x[ok], y[ok]
    features = np.column_stack([np.ones(len(x)), x])
    coef = _fit(features, y)
    resid = y - features @ coef
    mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) + 1e-6
    keep = resid > -4.0 * mad  # without the defects
    if keep.sum() > 16:
        coef = _fit(features[keep], y[keep])
    predicted = features @ coef
    level = float(np.median(predicted))
    if level <= 1e-3:
        return InfraredDefects(None, level, 0.0, "the infrared channel is dark: no infrared was recorded")
    lo, hi = np.percentile(predicted, [5, 95])
    span = float((hi - lo) / level)
    if span > PICTURE_SPAN:
        return InfraredDefects(
            None, level, span, "the infrared channel repeats the picture (silver film or Kodachrome?): not used"
        )
    full = (coef[0] + rgb.reshape(-1, 3).astype(np.float64) @ coef[1:]).reshape(h, w)
    deficit = (full - ir) / level
    mask = np.asarray(deficit > threshold)
    if grow > 0 and mask.any():
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask.astype(np.uint8), disc) > 0
    return InfraredDefects(mask, level, span)
