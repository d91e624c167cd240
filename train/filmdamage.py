"""Broad film-damage synthesis for training detectors that generalise ("film" generator).

:mod:`filmclean.train.synth` draws one family of procedural shapes. A detector trained on it alone
learns that family's habits. This generator widens the training distribution so that it covers what
scanned film carries, at every size a detector meets in a 256-px training crop:

- **real artefact shapes**: sprites of the FilmDamageSimulator set (Ivanova et al. 2023, MIT licence,
  ``../shared/data/film-damage-sprites``), only those :func:`~filmclean.evaluation.heldout.
  training_sprites` allows (the rest are kept for evaluation); scaled over a wide range, rotated,
  flipped, thickened or defocused, with a random opacity profile;
- **dust** from one pixel up (sub-pixel coverage through supersampling);
- **blotches** up to ~70 px, hard- or soft-edged, with a mottled texture inside;
- **hairs and fibres** 1-8 px wide, straight to tightly curled, sharp or out of focus, up to
  longer than the crop;
- **plain shapes** (``shape_rate``): discs, ellipses, polygons and straight strokes, so that a round
  opaque speck is not taken for picture for want of a ragged outline;
- **scratches**, continuous or broken, vertical or slanted, 1-6 px wide, dark, bright or coloured
  (an emulsion layer gone) whatever the frame's polarity;
- the procedural damage of :func:`filmclean.train.synth.render_damage`, for part of the crops;
- **film grain** on part of the crops, in the clean target too, so that grain is kept.

Every artefact gets its own opacity (faint to opaque). The frame's polarity is ``dark`` (positives:
damage blocks light) or ``light`` (negatives: damage shows white); ``p_flip`` draws a share of the
artefacts the other way, as a print carries both its own dark dirt and white dirt printed from its
negative. Sizes are in pixels of the crop
and deliberately scale-free (log-uniform over wide ranges), so the same artefact is met at many
sizes.

The returned mask is the *visible change*: the largest absolute change over the channels, in [0, 1]
(0 exactly where a pixel is untouched). :class:`~filmclean.train.maskloss.MaskGuidedLoss` with
``min_opacity`` around 0.01 turns it into "damage a viewer can see".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from filmclean.evaluation.heldout import VISIBLE as _HELDOUT_VISIBLE

__all__ = [
    "KIND_OF",
    "VISIBLE",
    "FilmDamageParams",
    "SPRITE_GROUPS",
    "add_grain",
    "film_damage",
    "film_damage_kinds",
    "sprite_pool",
]

#: Sprite folder -> group used to pick its size.
SPRITE_GROUPS: dict[str, str] = {
    "dots": "dust",
    "spots": "dust",
    "sprinkles": "cluster",
    "dirt": "dirt",
    "smut": "dirt",
    "stain": "dirt",
    "lint": "fibre",
    "hair": "hair",
    "hair-short": "fibre",
    "scratches": "scratch",
}

#: Sprite group -> kind of damage in the per-kind masks (:func:`film_damage_kinds`), the kinds the
#: held-out generator reports.
KIND_OF: dict[str, str] = {
    "dust": "dust",
    "cluster": "dust",
    "dirt": "dirt",
    "fibre": "hair",
    "hair": "hair",
    "scratch": "scratch",
}

#: A pixel's damage is visible when it changed by more than this (largest over the channels): the
#: held-out generator's threshold, so that both generators' per-kind masks mean the same.
VISIBLE = _HELDOUT_VISIBLE

_SS = 4  # supersampling factor of procedural drawing


@dataclass(frozen=True)
class FilmDamageParams:
    """Knobs of :func:`film_damage`. Rates are expected counts per 256 x 256 px, before the frame's
    random damage level (a Gamma(``level_shape``) factor with mean 1) and per-kind factors
    (log-normal, sigma ``kind_jitter``)."""

    sprite_rate: float = 10.0
    dust_rate: float = 25.0
    blotch_rate: float = 1.2
    hair_rate: float = 1.0
    scratch_rate: float = 0.5
    level_shape: float = 1.0
    kind_jitter: float = 0.8
    #: Share of frames with light (negative) damage.
    p_light: float = 0.35
    #: Share of scratches whose polarity is the opposite of the frame's.
    p_scratch_flip: float = 0.4
    #: Share of the other artefacts (sprites, dust, blotches, hairs) drawn in the polarity opposite
    #: to the frame's: a print carries dark dirt of its own and white dirt printed from its negative,
    #: so a detector must not infer one polarity per frame.
    p_flip: float = 0.0
    #: Share of scratches tinted (one emulsion layer gone).
    p_scratch_colour: float = 0.25
    #: Share of frames that also get :func:`filmclean.train.synth.render_damage` damage.
    p_synth: float = 0.35
    #: Share of frames given film grain (in the target too).
    p_grain: float = 0.4
    grain_strength: tuple[float, float] = (0.004, 0.05)
    #: Largest long side, in px of the crop, of dust, dirt and cluster sprites and of blotches
    #: (0: the generator's own ranges, up to 45 / 110 / 140 / 70 px). A detector that meets light
    #: blobs as large as a flower learns to take flowers for blotches.
    max_blob: float = 0.0
    #: Share of artefacts that are faint (opacity log-uniform in ``faint``), else ``strong``.
    p_faint: float = 0.35
    faint: tuple[float, float] = (0.06, 0.4)
    strong: tuple[float, float] = (0.4, 1.0)
    #: Expected plain shapes per 256 x 256 px (:func:`_plain_shape`: discs, ellipses, polygons and
    #: short straight strokes, solid or shaded). 0 draws none and no random number for them, so older
    #: configurations draw the same damage.
    shape_rate: float = 0.0
    #: Share of blotches defocused (a Gaussian blur of 5-25 % of their size: dirt on the far side of
    #: the film or out of the lens's focus). 0 draws no random number for it.
    p_blotch_blur: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FilmDamageParams:
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown film damage parameter(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# ------------------------------------------------------------------------------------------ sprites


@functools.lru_cache(maxsize=4)
def sprite_pool(root: str | None = None) -> dict[str, tuple[str, ...]]:
    """Training sprites by group (:data:`SPRITE_GROUPS`); empty when the sprite folder is missing."""
    from filmclean.evaluation.heldout import training_sprites

    pool: dict[str, list[str]] = {}
    for p in training_sprites(Path(root) if root else None):
        group = SPRITE_GROUPS.get(p.parent.name)
        if group:
            pool.setdefault(group, []).append(str(p))
    return {k: tuple(v) for k, v in pool.items()}


@functools.lru_cache(maxsize=5000)
def _sprite_alpha(path: str) -> np.ndarray | None:
    """A sprite's alpha (float32, cropped to its support, at most 200 px on its long side)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        return None
    a = img[..., 3].astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    ys, xs = np.nonzero(a > 0.01)
    if ys.size == 0:
        return None
    a = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    long = max(a.shape)
    if long > 200:
        f = 200.0 / long
        a = cv2.resize(a, (max(1, round(a.shape[1] * f)), max(1, round(a.shape[0] * f))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(a)


def _sprite_sizes(g: np.random.Generator, group: str, h: int) -> tuple[float, float]:
    """(long side in px, rotation in degrees) of a sprite of ``group`` in an ``h``-row crop."""
    if group == "dust":
        return _log_uniform(g, 1.5, 45.0), g.uniform(0, 360)
    if group == "cluster":
        return _log_uniform(g, 8.0, 140.0), g.uniform(0, 360)
    if group == "dirt":
        return _log_uniform(g, 5.0, 110.0), g.uniform(0, 360)
    if group == "fibre":
        return _log_uniform(g, 10.0, 160.0), g.uniform(0, 360)
    if group == "hair":
        return _log_uniform(g, 20.0, 1.6 * h), g.uniform(0, 360)
    angle = g.normal(90.0, 2.0) if g.random() < 0.7 else 90.0 + g.uniform(5, 30) * g.choice([-1, 1])
    return g.uniform(0.3, 1.5) * h, float(angle)


def _place_sprite(g: np.random.Generator, alpha: np.ndarray, long: float, angle: float) -> np.ndarray:
    """Scale ``alpha`` to ``long`` px on its long side, flip, rotate, and vary its profile."""
    coverage = 1.0
    if long < 2.0:
        coverage, long = (long / 2.0) ** 2, 2.0
    f = long / max(alpha.shape)
    if g.random() < 0.5:  # sprites are often thin or chunky for their length
        fx, fy = f, f * _log_uniform(g, 0.6, 1.7)
    else:
        fx = fy = f
    nw, nh = max(1, round(alpha.shape[1] * fx)), max(1, round(alpha.shape[0] * fy))
    a = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    if g.random() < 0.5:
        a = a[:, ::-1]
    side = int(math.ceil(math.hypot(nw, nh))) + 4
    m = cv2.getRotationMatrix2D((nw / 2.0, nh / 2.0), float(angle), 1.0)
    m[0, 2] += (side - nw) / 2.0
    m[1, 2] += (side - nh) / 2.0
    a = cv2.warpAffine(np.ascontiguousarray(a), m, (side, side), flags=cv2.INTER_LINEAR)
    r = g.random()
    if r < 0.2:  # thicker
        k = int(g.integers(1, 3)) * 2 + 1
        a = cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    elif r < 0.45:  # out of focus
        a = _defocus(a, g.uniform(0.5, 2.5))
    a = np.clip(a, 0.0, 1.0) ** _log_uniform(g, 0.4, 2.0)
    return (a * coverage).astype(np.float32)


# -------------------------------------------------------------------------------------- procedural


def _log_uniform(g: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(g.uniform(math.log(lo), math.log(max(hi, lo * 1.0001)))))


def _defocus(a: np.ndarray, sigma: float) -> np.ndarray:
    """``a`` blurred (Gaussian, ``sigma`` px) and rescaled so that its peak is where it was: an
    artefact out of focus keeps its density at the centre."""
    a = cv2.GaussianBlur(a, (0, 0), sigma)
    return a / max(float(a.max()), 1e-6)


def _down(canvas: np.ndarray) -> np.ndarray:
    h, w = canvas.shape
    return cv2.resize(canvas, (max(1, w // _SS), max(1, h // _SS)), interpolation=cv2.INTER_AREA)


def _stroke(points: np.ndarray, width: float, closed: bool = False) -> tuple[np.ndarray, int, int]:
    """Anti-aliased alpha of a polyline ``points`` (px) of ``width`` px, and its top-left corner."""
    pad = width + 3
    x0, y0 = int(math.floor(points[:, 0].min() - pad)), int(math.floor(points[:, 1].min() - pad))
    x1, y1 = int(math.ceil(points[:, 0].max() + pad)), int(math.ceil(points[:, 1].max() + pad))
    canvas = np.zeros(((y1 - y0) * _SS, (x1 - x0) * _SS), np.uint8)
    pts = np.round((points - [x0, y0]) * _SS * 8).astype(np.int32)
    thick = max(1, int(round(width * _SS)))
    cv2.polylines(canvas, [pts], closed, 255, thick, cv2.LINE_AA, shift=3)
    return _down(canvas.astype(np.float32) / 255.0), x0, y0


def _dust_speck(g: np.random.Generator) -> np.ndarray:
    """A small irregular speck, radius log-uniform 0.4-6 px."""
    r = _log_uniform(g, 0.4, 6.0)
    n = int(g.integers(5, 12))
    t = np.sort(g.uniform(0, 2 * math.pi, n))
    rad = r * g.uniform(0.5, 1.3, n)
    c = r * 1.5 + 2
    pts = np.stack([c + rad * np.cos(t), c + rad * np.sin(t)], axis=1)
    size = int(math.ceil(2 * c))
    canvas = np.zeros((size * _SS, size * _SS), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * _SS * 8).astype(np.int32)], 255, cv2.LINE_AA, shift=3)
    a = _down(canvas.astype(np.float32) / 255.0)
    if g.random() < 0.4:
        a = _defocus(a, g.uniform(0.3, 1.0))
    return a


def _blotch(g: np.random.Generator, max_d: float = 0.0, p_blur: float = 0.0) -> np.ndarray:
    """A rough blob 6-70 px across (at most ``max_d`` when > 0), hard or soft edged, mottled inside,
    defocused with probability ``p_blur``."""
    d = _log_uniform(g, 6.0, 70.0)
    if max_d > 0:
        d = min(d, max(6.0, max_d))
    size = int(math.ceil(d * 1.6)) + 6
    noise = cv2.GaussianBlur(g.random((size, size)).astype(np.float32), (0, 0), max(1.0, d * g.uniform(0.08, 0.2)))
    noise = (noise - noise.mean()) / max(float(noise.std()), 1e-6)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2.0
    ang = g.uniform(0, math.pi)
    el = _log_uniform(g, 1.0, 2.5)
    u = (xx * math.cos(ang) + yy * math.sin(ang)) / el
    v = -xx * math.sin(ang) + yy * math.cos(ang)
    field = 1.0 - np.hypot(u, v) / (d / 2.0) + g.uniform(0.15, 0.45) * noise
    soft = g.uniform(0.02, 0.4) if g.random() < 0.5 else 0.02
    a = np.clip(field / soft, 0.0, 1.0)
    if g.random() < 0.6:  # texture inside: the blotch is not uniformly dense
        tex = cv2.GaussianBlur(g.random((size, size)).astype(np.float32), (0, 0), g.uniform(0.7, 3.0))
        tex = (tex - tex.min()) / max(float(np.ptp(tex)), 1e-6)
        a *= 1.0 - g.uniform(0.2, 0.7) * tex
    if p_blur > 0 and g.random() < p_blur:
        a = _defocus(a, max(0.5, d * g.uniform(0.05, 0.25)))
    return a.astype(np.float32)


def _plain_shape(g: np.random.Generator, max_d: float = 0.0) -> tuple[np.ndarray, str]:
    """A plain geometric artefact and its kind: a disc, an ellipse, a convex polygon (dust below
    8 px across, dirt above; 2-60 px, at most ``max_d`` when > 0) or a short straight stroke
    (hair, 1-4 px wide, 10-120 px long), hard- or soft-edged, solid or shaded across.

    Real specks are irregular, but a detector that needs a ragged outline to call something damage
    leaves round opaque specks alone: these shapes make the outline an unreliable cue, so that the
    occlusion of the picture has to be learnt instead."""
    style = g.random()
    if style < 0.25:
        length, width = _log_uniform(g, 10.0, 120.0), _log_uniform(g, 1.0, 4.0)
        ang = g.uniform(0, math.pi)
        half = np.array([math.cos(ang), math.sin(ang)]) * length / 2
        a, _, _ = _stroke(np.stack([-half, half]) + length / 2 + width + 4, width)
        kind = "hair"
    else:
        d = _log_uniform(g, 2.0, 60.0)
        if max_d > 0:
            d = min(d, max(2.0, max_d))
        size = int(math.ceil(d)) + 6
        canvas = np.zeros((size * _SS, size * _SS), np.uint8)
        c = size * _SS / 2.0
        r = d * _SS / 2.0
        if style < 0.6:  # disc or ellipse
            axes = (max(1, int(r * 8)), max(1, int(r * 8 / _log_uniform(g, 1.0, 2.5))))
            cv2.ellipse(
                canvas, (int(c * 8), int(c * 8)), axes, g.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, shift=3
            )
        else:  # convex polygon
            n = int(g.integers(3, 9))
            t = np.sort(g.uniform(0, 2 * math.pi, n))
            pts = np.stack([c + r * np.cos(t), c + r * np.sin(t)], axis=1)
            cv2.fillConvexPoly(canvas, np.round(pts * 8).astype(np.int32), 255, cv2.LINE_AA, shift=3)
        a = _down(canvas.astype(np.float32) / 255.0)
        kind = "dust" if d < 8 else "dirt"
    if g.random() < 0.3:  # out of focus
        a = _defocus(a, g.uniform(0.4, 2.0))
    if g.random() < 0.3:  # shaded: denser on one side
        yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]].astype(np.float32)
        ang = g.uniform(0, 2 * math.pi)
        ramp = xx * math.cos(ang) + yy * math.sin(ang)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        a = a * (1.0 - g.uniform(0.3, 0.8) * ramp)
    return np.clip(a, 0.0, 1.0).astype(np.float32), kind


def _hair_points(g: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    """A random-curvature curve (px) and its width (1-8 px)."""
    length = _log_uniform(g, 15.0, 1.8 * max(h, w))
    style = g.random()
    step = 1.5
    n = max(4, int(length / step))
    if style < 0.4:
        curv_sd = g.uniform(0.0, 0.01)  # nearly straight
    elif style < 0.75:
        curv_sd = g.uniform(0.01, 0.05)  # bent
    else:
        curv_sd = g.uniform(0.05, 0.25)  # tightly curled fibre
    curv = np.cumsum(g.normal(0, curv_sd, n)) * 0.3 + g.normal(0, curv_sd)
    heading = g.uniform(0, 2 * math.pi) + np.cumsum(curv) * step / 4
    pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1) * step, axis=0)
    pts += [g.uniform(-0.2, 1.2) * w, g.uniform(-0.2, 1.2) * h] - pts[n // 2]
    width = _log_uniform(g, 0.8, 8.0)
    return pts, width


def _scratch_points(g: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float, list[tuple[int, int]]]:
    """A near-vertical or slanted meandering line, its width (1-6 px) and its drawn segments."""
    full = g.random() < 0.5
    y0, y1 = (-5.0, h + 5.0) if full else sorted(g.uniform(-0.2 * h, 1.2 * h, 2))
    ys = np.linspace(y0, y1, max(8, int(abs(y1 - y0) / 4)))
    slant = g.normal(0, 0.02) if g.random() < 0.75 else math.tan(math.radians(g.uniform(5, 30))) * g.choice([-1, 1])
    x = g.uniform(0, w) + slant * (ys - ys[0])
    x += g.uniform(0, 3.0) * np.sin(ys / h * 2 * math.pi * g.uniform(0.3, 3) + g.uniform(0, 6))
    segments = [(0, len(ys))]
    if g.random() < 0.4:  # broken into dashes
        segments, i = [], 0
        while i < len(ys):
            on = int(g.integers(2, max(3, len(ys) // 3)))
            segments.append((i, min(len(ys), i + on)))
            i += on + int(g.integers(1, max(2, len(ys) // 6)))
    return np.stack([x, ys], axis=1), _log_uniform(g, 0.8, 6.0), segments


# ---------------------------------------------------------------------------------------- composite


class _Canvas:
    def __init__(self, img: np.ndarray, polarity: str) -> None:
        self.img = img
        self.h, self.w = img.shape[:2]
        self.polarity = polarity
        #: kind -> (H, W) bool, where artefacts of that kind were drawn (see :data:`KIND_OF`)
        self.cover: dict[str, np.ndarray] = {}

    def paste(self, alpha: np.ndarray, x0: int, y0: int, colour: np.ndarray, mode: str, kind: str) -> None:
        """Composite ``alpha`` (top-left at x0, y0) and note where it fell under ``kind``. ``mode``:
        ``dark`` (multiplies by a residual transmittance ``colour``), ``light`` (the same on the
        inverted picture) or ``over`` (towards the colour)."""
        ah, aw = alpha.shape
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(self.h, y0 + ah), min(self.w, x0 + aw)
        if ye <= ys or xe <= xs:
            return
        a = alpha[ys - y0 : ye - y0, xs - x0 : xe - x0, None]
        cover = self.cover.setdefault(kind, np.zeros((self.h, self.w), bool))
        cover[ys:ye, xs:xe] |= a[..., 0] > 0
        region = self.img[ys:ye, xs:xe]
        c = colour.astype(np.float32)
        if mode == "dark":
            region *= 1.0 - a * (1.0 - c)
        elif mode == "light":
            region[...] = 1.0 - (1.0 - region) * (1.0 - a * (1.0 - c))
        else:
            region += a * (c - region)

    def paste_centred(self, alpha: np.ndarray, cx: float, cy: float, colour: np.ndarray, mode: str, kind: str) -> None:
        x0, y0 = int(round(cx - alpha.shape[1] / 2)), int(round(cy - alpha.shape[0] / 2))
        self.paste(alpha, x0, y0, colour, mode, kind)


def _opacity(g: np.random.Generator, p: FilmDamageParams) -> float:
    lo, hi = p.faint if g.random() < p.p_faint else p.strong
    return _log_uniform(g, lo, hi)


def _residual(g: np.random.Generator) -> np.ndarray:
    """Residual transmittance of dust-like damage: near black (or white), slightly tinted at times."""
    base = g.uniform(0.0, 0.3)
    tint = g.normal(0, 0.04, 3) if g.random() < 0.3 else np.zeros(3)
    return np.clip(base + tint, 0.0, 1.0)


def add_grain(img: np.ndarray, g: np.random.Generator, strength: float) -> np.ndarray:
    """Film-like grain: blurred Gaussian noise, strongest in the midtones, partly shared by the
    channels. Returns a new float32 image in [0, 1]."""
    h, w = img.shape[:2]
    sigma = g.uniform(0.4, 1.2)
    mono = cv2.GaussianBlur(g.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
    colour = cv2.GaussianBlur(g.standard_normal((h, w, 3)).astype(np.float32), (0, 0), sigma)
    share = g.uniform(0.4, 1.0)
    noise = share * mono[..., None] + (1 - share) * colour
    noise /= max(float(noise.std()), 1e-6)
    weight = 0.3 + 2.8 * img * (1.0 - img)
    return np.clip(img + strength * weight * noise, 0.0, 1.0).astype(np.float32)


def film_damage(
    clean: np.ndarray,
    rng: np.random.Generator,
    params: FilmDamageParams | None = None,
    polarity: str = "any",
    sprite_root: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Damage ``clean`` (float32 (H, W, 3) in [0, 1]).

    Returns ``(target, damaged, mask)``: the clean picture (with grain added on part of the
    frames), the damaged picture, and the visible change ``max_c |damaged - target|`` as (H, W)
    float32 (exactly 0 where a pixel is untouched). ``polarity``: ``dark``, ``light`` or ``any``.
    Pure function of ``rng``'s state.
    """
    target, damaged, mask, _ = _draw(clean, rng, params, polarity, sprite_root)
    return target, damaged, mask


def film_damage_kinds(
    clean: np.ndarray,
    rng: np.random.Generator,
    params: FilmDamageParams | None = None,
    polarity: str = "any",
    sprite_root: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """:func:`film_damage` (the same draw for the same ``rng`` state) and, as a fourth item, the
    visible damage of each kind: ``{kind: (H, W) bool}`` for the kinds of :data:`KIND_OF` that were
    drawn, true where an artefact of that kind fell and the picture changed by more than
    :data:`VISIBLE` (kinds may overlap). Damage of the older generator (``p_synth``) belongs to no
    kind."""
    target, damaged, mask, cover = _draw(clean, rng, params, polarity, sprite_root)
    visible = mask > VISIBLE
    return target, damaged, mask, {k: c & visible for k, c in sorted(cover.items())}


def _draw(
    clean: np.ndarray,
    rng: np.random.Generator,
    params: FilmDamageParams | None,
    polarity: str,
    sprite_root: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """:func:`film_damage`'s draw, with where each kind of artefact fell."""
    p = params or FilmDamageParams()
    g = rng
    h, w = clean.shape[:2]
    target = np.ascontiguousarray(clean, np.float32)
    if g.random() < p.p_grain:
        target = add_grain(target, g, _log_uniform(g, *p.grain_strength))
    if polarity == "any":
        pol = "light" if g.random() < p.p_light else "dark"
    else:
        pol = "light" if polarity == "light" else "dark"
    img = target.copy()
    if g.random() < p.p_synth:
        from .synth import apply_damage, render_damage

        img, _ = apply_damage(img, render_damage(h, w, g, polarity=pol))
    canvas = _Canvas(img, pol)
    area = h * w / 65536.0
    level = g.gamma(p.level_shape, 1.0 / p.level_shape)
    jitter = np.exp(g.normal(0, p.kind_jitter, 5))
    rates = np.array([p.sprite_rate, p.dust_rate, p.blotch_rate, p.hair_rate, p.scratch_rate]) * area * level * jitter
    counts = g.poisson(rates)
    if counts.sum() == 0:
        counts[int(g.integers(0, 5))] = 1
    pool = sprite_pool(sprite_root)
    groups: Sequence[str] = sorted(pool)
    weights = np.array(
        [{"dust": 3, "cluster": 1, "dirt": 2.5, "fibre": 1.5, "hair": 2.5, "scratch": 1}[k] for k in groups], float
    )

    for _ in range(int(counts[0]) if groups else 0):
        group = groups[int(g.choice(len(groups), p=weights / weights.sum()))]
        files = pool[group]
        alpha = _sprite_alpha(files[int(g.integers(0, len(files)))])
        if alpha is None:
            continue
        long, angle = _sprite_sizes(g, group, h)
        if p.max_blob > 0 and group in ("dust", "cluster", "dirt"):
            long = min(long, p.max_blob)
        a = _place_sprite(g, alpha, long, angle) * _opacity(g, p)
        colour, mode = _residual(g), _artefact_mode(g, p, pol)
        if group == "scratch":
            colour, mode = _scratch_colour(g, p, pol)
        canvas.paste_centred(a, g.uniform(0, w), g.uniform(0, h), colour, mode, KIND_OF[group])
    for _ in range(int(counts[1])):
        a = _dust_speck(g) * _opacity(g, p)
        canvas.paste_centred(a, g.uniform(0, w), g.uniform(0, h), _residual(g), _artefact_mode(g, p, pol), "dust")
    for _ in range(int(counts[2])):
        a = _blotch(g, p.max_blob, p.p_blotch_blur) * _opacity(g, p)
        canvas.paste_centred(a, g.uniform(0, w), g.uniform(0, h), _residual(g), _artefact_mode(g, p, pol), "dirt")
    for _ in range(int(counts[3])):
        pts, width = _hair_points(g, h, w)
        a, x0, y0 = _stroke(pts, width)
        if g.random() < 0.3:
            a = _defocus(a, g.uniform(0.5, 2.0))
        canvas.paste(np.clip(a, 0, 1) * _opacity(g, p), x0, y0, _residual(g), _artefact_mode(g, p, pol), "hair")
    for _ in range(int(counts[4])):
        pts, width, segments = _scratch_points(g, h, w)
        colour, mode = _scratch_colour(g, p, pol)
        opacity = _opacity(g, p)
        for s0, s1 in segments:
            if s1 - s0 < 2:
                continue
            a, x0, y0 = _stroke(pts[s0:s1], width)
            if g.random() < 0.5:
                a = _defocus(a, g.uniform(0.3, 1.0))
            canvas.paste(np.clip(a, 0, 1) * opacity * g.uniform(0.6, 1.0), x0, y0, colour, mode, "scratch")
    if p.shape_rate > 0:
        rate = p.shape_rate * area * level * math.exp(g.normal(0, p.kind_jitter))
        for _ in range(int(g.poisson(rate))):
            a, kind = _plain_shape(g, p.max_blob)
            mode = _artefact_mode(g, p, pol)
            canvas.paste_centred(a * _opacity(g, p), g.uniform(0, w), g.uniform(0, h), _residual(g), mode, kind)

    damaged = np.clip(canvas.img, 0.0, 1.0, out=canvas.img)
    mask = np.abs(damaged - target).max(axis=2).astype(np.float32)
    return target, damaged, mask, canvas.cover


def _artefact_mode(g: np.random.Generator, p: FilmDamageParams, pol: str) -> str:
    """The frame's polarity, or the opposite one for a share ``p_flip`` of the artefacts (no random
    number is drawn when ``p_flip`` is 0, so older configurations draw the same damage)."""
    if p.p_flip > 0 and g.random() < p.p_flip:
        return "light" if pol == "dark" else "dark"
    return pol


def _scratch_colour(g: np.random.Generator, p: FilmDamageParams, pol: str) -> tuple[np.ndarray, str]:
    """Colour and compositing mode of a scratch: the frame's polarity, flipped at times (base vs
    emulsion side), and tinted at times (one dye layer gone)."""
    mode = pol
    if g.random() < p.p_scratch_flip:
        mode = "light" if pol == "dark" else "dark"
    if g.random() < p.p_scratch_colour:
        colour = np.full(3, g.uniform(0.6, 1.0) if mode == "light" else g.uniform(0.0, 0.3))
        colour[int(g.integers(0, 3))] = g.uniform(0.0, 0.3) if mode == "light" else g.uniform(0.6, 1.0)
        return colour, "over"
    return _residual(g), mode
