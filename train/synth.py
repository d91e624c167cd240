"""Procedural film-damage synthesis: dust, hairs, scratches and dirt on clean images.

This replaces the overlay textures of Ivanova et al. (VISAPP 2022, section 3.2) with a seeded
procedural model, so that every clean image can get an unlimited number of distinct damage patterns
and a per-pixel damage mask.

Physical model
--------------
Damage sits on the film and blocks light. Every damage element has an *opacity* ``a`` in [0, 1]
(how much of the light it blocks at full strength) and a *residual* RGB transmittance ``t`` (0 =
perfectly black, a little above 0 = dark grey, tinted when the channels differ). A pixel seen
through damage keeps the fraction ``T = 1 - a * (1 - t)`` of its light, per channel, and layers
multiply. For ``polarity="dark"`` (slides and prints: dust shows black)::

    damaged = clean * T

and for ``polarity="light"`` (scanned negatives, where dust shows white after inversion)::

    damaged = 1 - (1 - clean) * T

so dark damage never brightens a pixel, light damage never darkens one, and ``damaged`` stays in
[0, 1]. The combined opacity of all layers ``1 - prod(1 - a_k)`` is the returned ``mask``, zeroed
where the damage happens to change nothing (dark damage on a black pixel, for example), so that
``(mask > 0) == (np.abs(damaged - clean).max(-1) > 0)`` holds exactly.

Kinds of damage. Sizes are given for an image whose shorter side is
``DamageParams.reference_size`` (512 px) and scale as ``(shorter side / 512) ** size_exponent``
(default 1: the whole pattern scales with the picture); counts are per area of the scaled pattern,
so that a larger frame gets proportionally more damage.

- dust specks: irregular, lumpy star-shaped blobs and sub-pixel splats; radii follow a broken power
  law (a great many specks of 1-3 px, few large ones), part of them clumped around others. With
  the default scaling, the number of specks at least half a pixel wide grows with resolution as
  it does when the same dusty frame is scanned at a higher resolution.
- hairs and fibres: smooth random curves with varying curvature (some looped), tapered, with
  varying width and opacity.
- scratches: long thin near-vertical lines over the full or part of the height, slightly slanted and
  wobbly, with an intermittent opacity along their length. In sequences they persist across frames
  (:class:`ScratchTrack`) and drift slowly in x while dust is new in every frame.
- dirt blotches: larger, irregular, soft-edged, partly transparent stains, often tinted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "DamageParams",
    "DamageMap",
    "ScratchTrack",
    "Polarity",
    "KINDS",
    "resolve_rng",
    "render_damage",
    "apply_damage",
    "dustify",
    "dustify_batch",
    "make_scratch_tracks",
    "dustify_sequence",
]

Polarity = Literal["dark", "light", "random"]
KINDS: tuple[str, ...] = ("dust", "hair", "scratch", "blotch")

_SHIFT = 3  # fixed-point bits for cv2 drawing (1/8 px precision)
_ONE = 1 << _SHIFT


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DamageParams:
    """How much damage of which kind, size, opacity and colour :func:`dustify` draws.

    Sizes are in pixels for an image whose shorter side is ``reference_size``; elsewhere they are
    multiplied by ``scale = (shorter side / reference_size) ** size_exponent``. Rates are expected
    counts (Poisson) at ``amount == 1`` per ``reference_size``-square of the scaled pattern, i.e.
    multiplied by ``amount * H * W / (reference_size * scale) ** 2``; each kind's rate is also
    multiplied by a per-image log-normal factor (``mix_jitter``) so that some images are mostly
    dusty, others mostly hairy or scratched.

    Attributes:
        amount: fixed damage amount in [0, 1]; ``None`` draws one per image with :meth:`sample_amount`.
        amount_beta: (a, b) of the Beta distribution :meth:`sample_amount` draws from.
        amount_range: the Beta draw is mapped linearly onto this [lo, hi] sub-range of [0, 1].
        dust_density: expected number of dust specks at least 0.5 px in radius in a
            ``reference_size`` square image.
        size_tail: power-law exponent of the speck radius below ``size_break``: the number of
            specks larger than ``r`` falls as ``r ** -size_tail`` (smaller = heavier tail).
        large_size_tail: the exponent above ``size_break`` (steeper: large specks are rare).
        size_break: radius (px at the reference size) where the exponent changes.
        max_speck_radius: largest speck radius, px at the reference size.
        cluster_fraction: fraction of specks placed in small clumps around other specks.
        hair_rate: expected number of hairs and fibres.
        hair_length: median hair length, px at the reference size (log-normal, sigma 0.6).
        loop_probability: probability that a hair curls into a loop.
        scratch_rate: expected number of scratches.
        blotch_rate: expected number of dirt blotches.
        mix_jitter: sigma of the per-image, per-kind log-normal multiplier of the counts (0 = none).
        opacity_range: range of the peak opacity of dust, hairs and scratches.
        blotch_opacity_range: range of the peak opacity of dirt blotches.
        softness: 0 = anti-aliased hard edges; 1 = soft, slightly defocused damage (Gaussian blur of
            up to about 1 px at the reference size).
        residual_range: range of the residual transmittance of fully opaque damage (0 = pure black,
            or pure white in light polarity).
        tint_probability: probability that an image's damage is slightly coloured.
        tint_strength: largest per-channel deviation of a tinted residual.
        p_light: probability of light polarity when ``polarity="random"``.
        reference_size: shorter image side (px) at which the sizes above apply.
        size_exponent: damage sizes scale as ``(shorter side / reference_size) ** size_exponent``.
            1 (default): the pattern scales with the picture, like the paper's overlays resized
            to each target size or one dirty frame scanned at different resolutions (at 64 px
            most dust falls below a pixel); 0: fixed sizes in pixels; in between: a compromise,
            e.g. for training crops that should look like tiles of high-resolution scans.
            Counts follow so that the damage per area stays consistent.
        scale_jitter: sigma of a per-image log-normal factor on all sizes (like the random crop
            size of the paper's overlay patches); counts follow the scaled area.
        min_opacity: opacities below this are dropped (invisible in 8-bit output).
    """

    amount: float | None = None
    amount_beta: tuple[float, float] = (2.4, 3.0)
    amount_range: tuple[float, float] = (0.01, 1.0)
    dust_density: float = 20000.0
    size_tail: float = 2.4
    large_size_tail: float = 3.5
    size_break: float = 1.5
    max_speck_radius: float = 9.0
    cluster_fraction: float = 0.25
    hair_rate: float = 150.0
    hair_length: float = 70.0
    loop_probability: float = 0.2
    scratch_rate: float = 5.0
    blotch_rate: float = 12.0
    mix_jitter: float = 0.35
    opacity_range: tuple[float, float] = (0.55, 1.0)
    blotch_opacity_range: tuple[float, float] = (0.25, 0.75)
    softness: float = 0.5
    residual_range: tuple[float, float] = (0.0, 0.12)
    tint_probability: float = 0.1
    tint_strength: float = 0.08
    p_light: float = 0.5
    reference_size: int = 512
    size_exponent: float = 1.0
    scale_jitter: float = 0.2
    min_opacity: float = 1.0 / 255.0

    def __post_init__(self) -> None:
        if self.amount is not None and not 0.0 <= self.amount <= 1.0:
            raise ValueError(f"amount must be in [0, 1] or None, got {self.amount}")
        for name in ("amount_range", "opacity_range", "blotch_opacity_range", "residual_range"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"{name} must satisfy 0 <= lo <= hi <= 1, got {(lo, hi)}")
        if min(self.amount_beta) <= 0:
            raise ValueError(f"amount_beta must be positive, got {self.amount_beta}")
        for name in ("dust_density", "hair_rate", "scratch_rate", "blotch_rate", "mix_jitter",
                     "cluster_fraction", "loop_probability", "tint_probability", "tint_strength",
                     "p_light", "softness"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("cluster_fraction", "loop_probability", "tint_probability", "p_light",
                     "softness"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be <= 1, got {getattr(self, name)}")
        if min(self.size_tail, self.large_size_tail, self.hair_length, self.size_break) <= 0:
            raise ValueError("size_tail, large_size_tail, size_break and hair_length must be > 0")
        if self.max_speck_radius < 0.5:
            raise ValueError(f"max_speck_radius must be >= 0.5, got {self.max_speck_radius}")
        if self.reference_size < 1 or not 0.0 <= self.min_opacity < 1.0:
            raise ValueError("reference_size must be >= 1 and min_opacity in [0, 1)")
        if not 0.0 <= self.size_exponent <= 2.0:
            raise ValueError(f"size_exponent must be in [0, 2], got {self.size_exponent}")
        if not 0.0 <= self.scale_jitter <= 1.0:
            raise ValueError(f"scale_jitter must be in [0, 1], got {self.scale_jitter}")

    def sample_amount(self, rng: np.random.Generator) -> float:
        """Return ``amount`` if it is set, else ``lo + (hi - lo) * Beta(a, b)`` drawn from ``rng``.

        With the defaults, SSIM(damaged, clean) of dark damage over the offline corpus at 256 px
        (8-bit, skimage defaults) has mean 0.70, std 0.17 and range about 0.2-0.97, close to the
        paper's test set (0.69 +- 0.14, range 0.2-0.97); light damage gives slightly lower SSIM.
        """
        if self.amount is not None:
            return float(self.amount)
        lo, hi = self.amount_range
        return float(lo + (hi - lo) * rng.beta(*self.amount_beta))


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DamageMap:
    """A rendered damage pattern, independent of the image it will be applied to.

    Attributes:
        alpha: (H, W) float32 combined opacity in [0, 1]; 0 where there is no damage.
        transmittance: (H, W, 3) float32 in [0, 1]; the fraction of light kept per channel; exactly
            1 where ``alpha == 0``.
        polarity: "dark" or "light".
        amount: the damage amount the pattern was drawn with.
        counts: number of elements drawn per kind (keys of :data:`KINDS`).
    """

    alpha: np.ndarray
    transmittance: np.ndarray
    polarity: Literal["dark", "light"]
    amount: float
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScratchTrack:
    """A near-vertical scratch that can persist over the frames of a sequence.

    All positions are in pixels of the frame size the track was made for. At frame ``f`` the
    scratch centre on row ``y`` is::

        x0 + drift * f + jitter_f + slant * (y - y_start) + sum_i wobble_amp[i] * sin(...)

    with ``jitter_f`` a small per-frame random offset; its opacity along the rows is a fixed
    intermittent profile (seeded by ``gap_seed``, the same in every frame) times ``opacity``, times
    a per-frame factor ``1 + flicker * N(0, 1)``.

    Attributes:
        x0: centre column at ``y_start`` in frame 0.
        drift: horizontal drift in px per frame.
        slant: dx/dy of the line.
        wobble_amp, wobble_freq, wobble_phase: two sine wobbles (px, cycles over the track, rad).
        y_start, y_end: first and last row covered (may lie outside the frame).
        width: full width of the line in px (>= 0.5; thinner lines are drawn fainter).
        opacity: peak opacity in (0, 1].
        flicker: relative per-frame opacity change (std).
        jitter: per-frame x jitter (std, px).
        gap_seed: seed of the fixed intermittency pattern along the scratch.
        first_frame, last_frame: frames in which the scratch is present (inclusive).
    """

    x0: float
    drift: float
    slant: float
    wobble_amp: tuple[float, float]
    wobble_freq: tuple[float, float]
    wobble_phase: tuple[float, float]
    y_start: float
    y_end: float
    width: float
    opacity: float
    flicker: float
    jitter: float
    gap_seed: int
    first_frame: int = 0
    last_frame: int = 0

    def active(self, frame: int) -> bool:
        """True if the scratch is present in ``frame``."""
        return self.first_frame <= frame <= self.last_frame

    def centre(self, frame: int, rows: np.ndarray, x_offset: float = 0.0) -> np.ndarray:
        """Centre column (float px) of the scratch on ``rows`` at ``frame`` (without jitter)."""
        length = max(self.y_end - self.y_start, 1.0)
        u = (rows - self.y_start) / length
        x = self.x0 + self.drift * frame + x_offset + self.slant * (rows - self.y_start)
        for amp, freq, phase in zip(self.wobble_amp, self.wobble_freq, self.wobble_phase):
            x = x + amp * np.sin(2.0 * math.pi * freq * u + phase)
        return x

    def render(self, height: int, width: int, frame: int, rng: np.random.Generator) -> np.ndarray:
        """Opacity (H, W) float32 of this scratch at ``frame``; all zero when not active.

        ``rng`` supplies the per-frame jitter and flicker only; the shape comes from the track.
        """
        alpha = np.zeros((height, width), np.float32)
        jitter = float(rng.normal(0.0, self.jitter)) if self.jitter > 0 else 0.0
        gain = float(np.clip(1.0 + self.flicker * rng.normal(), 0.5, 1.5)) if self.flicker else 1.0
        if not self.active(frame):
            return alpha
        y0 = max(int(math.floor(self.y_start)), 0)
        y1 = min(int(math.ceil(self.y_end)), height - 1)
        if y1 < y0:
            return alpha
        rows = np.arange(y0, y1 + 1, dtype=np.float64)
        xc = self.centre(frame, rows, jitter)
        profile = _gap_profile(self, rows) * min(self.opacity * gain, 1.0)
        # Thin lines (< 1 px) are drawn 1 px wide and proportionally fainter.
        half = max(self.width, 1.0) / 2.0
        profile = profile * min(self.width, 1.0)
        k = int(math.ceil(half + 1.0))
        offsets = np.arange(-k, k + 1)
        cols = np.floor(xc)[:, None].astype(np.int64) + offsets[None, :]
        # Box-filtered coverage of a line of width 2*half by each pixel (anti-aliased).
        centres = cols + 0.5 - xc[:, None]
        cover = np.clip(half + 0.5 - np.abs(centres), 0.0, 1.0)
        values = (cover * profile[:, None]).astype(np.float32)
        rr = np.broadcast_to(rows.astype(np.int64)[:, None], cols.shape)
        ok = (cols >= 0) & (cols < width) & (values > 0)
        alpha[rr[ok], cols[ok]] = values[ok]  # (row, col) pairs are unique within one scratch
        return alpha


def _gap_profile(track: ScratchTrack, rows: np.ndarray) -> np.ndarray:
    """Fixed intermittency of a scratch along its rows: smooth noise in [0, 1] with gaps."""
    g = np.random.default_rng(track.gap_seed)
    length = max(track.y_end - track.y_start, 1.0)
    u = (rows - track.y_start) / length
    n_knots = int(g.integers(3, 12))
    knots = g.normal(0.0, 1.0, n_knots + 1)
    level = g.uniform(0.3, 1.2)
    noise = np.interp(u * n_knots, np.arange(n_knots + 1), knots)
    prof = np.clip(0.5 + 0.45 * noise + (level - 0.75), 0.0, 1.0)
    # Soft fade at the ends of partial scratches.
    ends = np.clip(np.minimum(u, 1.0 - u) * length / 6.0, 0.0, 1.0)
    return prof * ends


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def resolve_rng(rng: np.random.Generator | int | np.random.SeedSequence) -> np.random.Generator:
    """Return ``rng`` itself if it is a Generator, else ``np.random.default_rng(rng)``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, float)) or rng is None:
        raise TypeError(f"rng must be a numpy Generator, SeedSequence or int seed, got {rng!r}")
    return np.random.default_rng(rng)


def _resolve_polarity(polarity: str, rng: np.random.Generator, p: DamageParams) -> str:
    if polarity == "random":
        return "light" if rng.random() < p.p_light else "dark"
    if polarity not in ("dark", "light"):
        raise ValueError(f"polarity must be 'dark', 'light' or 'random', got {polarity!r}")
    return polarity


def _scale(height: int, width: int, p: DamageParams) -> float:
    """Factor from sizes at the reference size to pixels of this image."""
    return (min(height, width) / float(p.reference_size)) ** p.size_exponent


def _size_factor(rng: np.random.Generator, p: DamageParams) -> float:
    """Per-image random factor on all sizes (log-normal, sigma ``scale_jitter``)."""
    return float(np.exp(rng.normal(0.0, p.scale_jitter))) if p.scale_jitter > 0 else 1.0


def _area_factor(height: int, width: int, scale: float, p: DamageParams) -> float:
    """Image area in units of a reference-size square of the scaled pattern."""
    return height * width / (float(p.reference_size) ** 2 * scale ** 2)


def _speck_survival(r: float | np.ndarray, p: DamageParams) -> float | np.ndarray:
    """Fraction of specks with radius > r (reference px) among those with radius > 0.5.

    A broken power law: exponent ``size_tail`` up to ``size_break``, ``large_size_tail`` above;
    continued with ``size_tail`` below 0.5 (specks that become visible at higher resolution).
    """
    r = np.asarray(r, dtype=np.float64)
    rb = max(p.size_break, 0.5)
    small = (0.5 / r) ** p.size_tail
    large = (0.5 / rb) ** p.size_tail * (rb / r) ** p.large_size_tail
    out = np.where(r <= rb, small, large)
    return float(out) if out.ndim == 0 else out


def _speck_radii(rng: np.random.Generator, n: int, scale: float, p: DamageParams) -> np.ndarray:
    """n radii in px drawn from the broken power law conditioned on radius >= 0.5 px."""
    r_min = 0.5 / scale  # reference px
    rb = max(p.size_break, 0.5)
    s_min = _speck_survival(r_min, p)
    # Survival relative to r_min, inverted piecewise.
    u = (1.0 - rng.random(n)) * s_min
    s_b = (0.5 / rb) ** p.size_tail
    r = np.where(u >= s_b, 0.5 * u ** (-1.0 / p.size_tail),
                 rb * (u / s_b) ** (-1.0 / p.large_size_tail))
    return np.minimum(r * scale, max(_MID_RADIUS, p.max_speck_radius * scale))


def _blur(alpha: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.25 or not alpha.any():
        return alpha
    return cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_CONSTANT)


def _speck_positions(rng: np.random.Generator, n: int, radii: np.ndarray, height: int, width: int,
                     cluster_fraction: float) -> np.ndarray:
    """(n, 2) float x, y positions; a fraction of specks clump around earlier ones."""
    xy = rng.random((n, 2)) * np.array([width, height], dtype=np.float64)
    child = rng.random(n) < cluster_fraction
    free = np.flatnonzero(~child)
    idx = np.flatnonzero(child)
    if idx.size and free.size:
        parents = free[rng.integers(0, free.size, idx.size)]
        spread = 1.5 + 2.5 * radii[parents]
        xy[idx] = xy[parents] + rng.normal(0.0, 1.0, (idx.size, 2)) * spread[:, None]
    return xy


def _blob_outlines(rng: np.random.Generator, m: int, k: int = 24) -> np.ndarray:
    """(m, k, 2) unit-radius irregular, lumpy, sometimes elongated star-shaped outlines."""
    theta = (2.0 * math.pi / k) * (np.arange(k)[None, :] + rng.uniform(-0.2, 0.2, (m, k)))
    theta = theta + rng.uniform(0.0, 2.0 * math.pi, (m, 1))
    rad = 1.0 + rng.uniform(-0.06, 0.06, (m, k))
    for harmonic in (2, 3, 4, 5, 7):
        amp = rng.uniform(0.0, 0.4 / harmonic, (m, 1))
        rad = rad + amp * np.cos(harmonic * theta + rng.uniform(0, 2 * math.pi, (m, 1)))
    rad = np.clip(rad, 0.25, None)
    elong = np.exp(np.abs(rng.normal(0.0, 0.35, (m, 1))))
    ex = rad * np.cos(theta) * np.sqrt(elong)
    ey = rad * np.sin(theta) / np.sqrt(elong)
    rot = rng.uniform(0.0, math.pi, (m, 1))
    return np.stack([ex * np.cos(rot) - ey * np.sin(rot), ex * np.sin(rot) + ey * np.cos(rot)],
                    axis=-1)


_MID_RADIUS = 1.0  # specks below are sub-pixel splats
_BIG_RADIUS = 3.0  # specks from here on are individual anti-aliased polygons
_MID_BINS = np.arange(_MID_RADIUS, _BIG_RADIUS + 1e-9, 0.5)  # radius bins of the stamped specks
_STAMP_VARIANTS = 3  # random shapes per radius bin and image
_SUPERSAMPLE = 4


def _render_stamp(outline: np.ndarray, radius: float) -> np.ndarray:
    """Anti-aliased float32 patch (odd square) of a unit ``outline`` scaled to ``radius`` px."""
    half = int(math.ceil(1.6 * radius))
    size = 2 * half + 1
    big = np.zeros((size * _SUPERSAMPLE, size * _SUPERSAMPLE), np.uint8)
    poly = (outline * radius + half + 0.5) * _SUPERSAMPLE
    cv2.fillPoly(big, [np.round(poly * _ONE).astype(np.int32)], 255, cv2.LINE_AA, _SHIFT)
    patch = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return patch * (1.0 / 255.0)


def _stamp_max(canvas: np.ndarray, pad: int, ys: np.ndarray, xs: np.ndarray, vals: np.ndarray,
               patch: np.ndarray) -> None:
    """``canvas = max(canvas, vals * patch)`` around every (ys, xs), vectorised over the specks.

    ``canvas`` is padded by ``pad`` >= patch half-size on every side, so no bounds checks are needed;
    (ys, xs) are unpadded coordinates inside the image.
    """
    flat = canvas.ravel()
    width = canvas.shape[1]
    half = patch.shape[0] // 2
    base = (ys + pad) * width + (xs + pad)
    for dy, dx in zip(*np.nonzero(patch > 0)):
        idx = base + (dy - half) * width + (dx - half)
        flat[idx] = np.maximum(flat[idx], vals * patch[dy, dx])


def _speck_layer(rng: np.random.Generator, height: int, width: int, n: int, scale: float,
                 p: DamageParams) -> np.ndarray:
    """Dust specks with Pareto radii.

    r < 1 px: bilinear sub-pixel splats of their covered area times their opacity;
    1 <= r < 3 px: anti-aliased random blob stamps (a few shapes per 0.5 px radius bin),
    scattered with vectorised max; r >= 3 px: individual anti-aliased irregular polygons.
    """
    alpha = np.zeros((height, width), np.float32)
    if n <= 0:
        return alpha
    radii = _speck_radii(rng, n, scale, p)
    xy = _speck_positions(rng, n, radii, height, width, p.cluster_fraction)
    lo, hi = p.opacity_range
    opac = (lo + (hi - lo) * np.sqrt(rng.random(n))).astype(np.float32)  # mostly opaque

    tiny = radii < _MID_RADIUS
    if tiny.any():
        x = xy[tiny, 0] - 0.5
        y = xy[tiny, 1] - 0.5
        mass = np.minimum(math.pi * radii[tiny] ** 2, 1.0) * opac[tiny]
        x0 = np.floor(x).astype(np.int64)
        y0 = np.floor(y).astype(np.int64)
        fx, fy = x - x0, y - y0
        xi = np.concatenate([x0, x0 + 1, x0, x0 + 1])
        yi = np.concatenate([y0, y0, y0 + 1, y0 + 1])
        wgt = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
        wgt *= np.tile(mass, 4)
        ok = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        acc = np.bincount(yi[ok] * width + xi[ok], weights=wgt[ok], minlength=height * width)
        alpha = np.minimum(acc, 1.0).astype(np.float32).reshape(height, width)

    mid = np.flatnonzero((radii >= _MID_RADIUS) & (radii < _BIG_RADIUS))
    inside = (xy[mid, 0] >= 0) & (xy[mid, 0] < width) & (xy[mid, 1] >= 0) & (xy[mid, 1] < height)
    mid = mid[inside]
    if mid.size:
        n_bins = _MID_BINS.size - 1
        bins = np.clip(np.digitize(radii[mid], _MID_BINS) - 1, 0, n_bins - 1)
        variant = rng.integers(0, _STAMP_VARIANTS, mid.size)
        outlines = _blob_outlines(rng, n_bins * _STAMP_VARIANTS)
        pad = int(math.ceil(1.6 * _BIG_RADIUS)) + 1
        canvas = np.zeros((height + 2 * pad, width + 2 * pad), np.float32)
        xs = np.floor(xy[mid, 0]).astype(np.int64)
        ys = np.floor(xy[mid, 1]).astype(np.int64)
        for b in range(n_bins):
            radius = 0.5 * (_MID_BINS[b] + _MID_BINS[b + 1])
            for v in range(_STAMP_VARIANTS):
                sel = (bins == b) & (variant == v)
                if sel.any():
                    patch = _render_stamp(outlines[b * _STAMP_VARIANTS + v], radius)
                    _stamp_max(canvas, pad, ys[sel], xs[sel], opac[mid][sel], patch)
        np.maximum(alpha, canvas[pad:pad + height, pad:pad + width], out=alpha)

    big = np.flatnonzero(radii >= _BIG_RADIUS)
    if big.size:
        canvas8 = np.zeros((height, width), np.uint8)
        shape = _blob_outlines(rng, big.size)
        r = radii[big][:, None, None]
        pts = np.round((xy[big][:, None, :] + r * shape) * _ONE).astype(np.int32)
        values = np.round(opac[big] * 255.0).astype(np.int64)
        for poly, val in zip(pts, values):
            cv2.fillPoly(canvas8, [poly], int(val), cv2.LINE_AA, _SHIFT)
        np.maximum(alpha, canvas8.astype(np.float32) * (1.0 / 255.0), out=alpha)
    return alpha


_HAIR_POINTS = 96  # polyline vertices per hair
_HAIR_CHUNKS = 8  # pieces of a hair drawn with their own width and opacity


def _hair_layer(rng: np.random.Generator, height: int, width: int, n: int, scale: float,
                p: DamageParams) -> np.ndarray:
    """Hairs and fibres: smooth random curves (some looped), tapered, varying width/opacity.

    Geometry is generated for all hairs at once; each hair is cut into pieces that are drawn as
    anti-aliased polylines, grouped by (opacity, thickness) with the most opaque drawn last, so
    that crossings stay dark.
    """
    canvas = np.zeros((height, width), np.uint8)
    if n <= 0:
        return canvas.astype(np.float32)
    k = _HAIR_POINTS
    diag = math.hypot(height, width)
    length = np.clip(p.hair_length * scale * np.exp(rng.normal(0.0, 0.6, n)), 6.0, 1.5 * diag)
    ds = (length / (k - 1))[:, None]
    s = np.linspace(0.0, 1.0, k)[None, :]
    curv = rng.normal(0.0, 2.0, (n, 1)) / length[:, None]
    loops = rng.random((n, 1)) < p.loop_probability
    curv = curv + loops * rng.choice((-1.0, 1.0), (n, 1)) * 2.0 * math.pi * rng.uniform(
        0.6, 1.2, (n, 1)) / length[:, None]
    amp = rng.normal(0.0, 4.0, (n, 3, 1)) / length[:, None, None]
    freq = rng.uniform(0.5, 3.0, (n, 3, 1))
    phase = rng.uniform(0.0, 2.0 * math.pi, (n, 3, 1))
    wiggle = (amp * np.sin(2.0 * math.pi * freq * s[:, None, :] + phase)).sum(axis=1)
    heading = rng.uniform(0.0, 2.0 * math.pi, (n, 1)) + np.cumsum((curv + wiggle) * ds, axis=1)
    start = rng.random((n, 2)) * np.array([width, height])
    x = start[:, :1] + np.cumsum(np.cos(heading) * ds, axis=1)
    y = start[:, 1:] + np.cumsum(np.sin(heading) * ds, axis=1)
    # Centre each hair on its start point so that hairs near the border are not all cut off.
    x -= 0.5 * (x[:, -1:] - x[:, :1])
    y -= 0.5 * (y[:, -1:] - y[:, :1])

    w0 = rng.uniform(0.8, 2.4, (n, 1)) * scale
    w_prof = w0 * (0.75 + 0.25 * np.sin(2.0 * math.pi * rng.uniform(0.3, 2.0, (n, 1)) * s
                                        + rng.uniform(0, 2 * math.pi, (n, 1))))
    w_prof *= np.clip(np.minimum(s, 1.0 - s) * 8.0, 0.35, 1.0)  # tapered ends
    lo, hi = p.opacity_range
    op = rng.uniform(0.5 * (lo + hi), hi, (n, 1))
    op_prof = op * np.clip(0.85 + 0.25 * np.sin(2.0 * math.pi * rng.uniform(0.2, 1.5, (n, 1)) * s
                                                + rng.uniform(0, 2 * math.pi, (n, 1))), 0.3, 1.0)

    bounds = np.linspace(0, k - 1, _HAIR_CHUNKS + 1).astype(int)
    mids = (bounds[:-1] + bounds[1:]) // 2
    wv = w_prof[:, mids]  # (n, chunks)
    thick = np.maximum(1, np.round(wv)).astype(np.int64)
    # Lines thinner than a pixel are drawn 1 px wide with proportionally less opacity.
    val = np.round(255.0 * op_prof[:, mids] * np.clip(wv, 0.15, 1.0) / 8.0).astype(np.int64) * 8
    val = np.minimum(val, 255)
    pts = np.round(np.stack([x, y], axis=-1) * _ONE).astype(np.int32)  # (n, k, 2)
    order = np.lexsort((thick.ravel(), val.ravel()))
    keys = np.stack([val.ravel()[order], thick.ravel()[order]], axis=1)
    splits = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    for group in np.split(order, splits):
        v, t = int(val.ravel()[group[0]]), int(thick.ravel()[group[0]])
        if v <= 0:
            continue
        hair_i, chunk_j = np.divmod(group, _HAIR_CHUNKS)
        lines = [pts[i, bounds[j]:bounds[j + 1] + 1] for i, j in zip(hair_i, chunk_j)]
        cv2.polylines(canvas, lines, False, v, t, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) * (1.0 / 255.0)


def _blotch_layer(rng: np.random.Generator, height: int, width: int, n: int, scale: float,
                  p: DamageParams) -> np.ndarray:
    """Dirt blotches: thresholded smooth noise with radial falloff, soft edges, inner texture."""
    alpha = np.zeros((height, width), np.float32)
    for _ in range(max(n, 0)):
        size = rng.uniform(14.0, 80.0) * scale
        aspect = math.exp(rng.normal(0.0, 0.35))
        bw = max(4, int(round(size * aspect)))
        bh = max(4, int(round(size / aspect)))
        grid = rng.normal(0.0, 1.0, (int(rng.integers(4, 8)), int(rng.integers(4, 8))))
        grid = grid.astype(np.float32)
        fieldv = cv2.resize(grid, (bw, bh), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        rr = ((xx + 0.5) / bw * 2 - 1) ** 2 + ((yy + 0.5) / bh * 2 - 1) ** 2
        f = fieldv - 2.5 * rr
        thr = float(np.quantile(f, rng.uniform(0.45, 0.75)))
        soft = max(float(f.max() - thr), 1e-3) * rng.uniform(0.3, 0.8)
        a = np.clip((f - thr) / soft, 0.0, 1.0)
        tex = cv2.resize(rng.random((max(2, bh // 3), max(2, bw // 3))).astype(np.float32),
                         (bw, bh), interpolation=cv2.INTER_LINEAR)
        a = a * (0.65 + 0.35 * tex) * rng.uniform(*p.blotch_opacity_range)
        cx = int(rng.integers(-bw // 2, width - bw // 2 + 1))
        cy = int(rng.integers(-bh // 2, height - bh // 2 + 1))
        x0, y0 = max(cx, 0), max(cy, 0)
        x1, y1 = min(cx + bw, width), min(cy + bh, height)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = a[y0 - cy:y1 - cy, x0 - cx:x1 - cx]
        np.maximum(alpha[y0:y1, x0:x1], sub, out=alpha[y0:y1, x0:x1])
    return alpha


def make_scratch_tracks(rng: np.random.Generator | int, height: int, width: int,
                        n_frames: int = 1, params: DamageParams | None = None,
                        amount: float | None = None, count: int | None = None,
                        size_factor: float = 1.0) -> list[ScratchTrack]:
    """Draw the scratches of a frame (``n_frames == 1``) or of a whole sequence.

    Args:
        rng: Generator or int seed.
        height, width: frame size in px.
        n_frames: sequence length; tracks live for the whole sequence with probability 1/2, else
            for a random contiguous part of at least half of it.
        params: damage parameters (defaults if None).
        amount: damage amount; drawn with ``params.sample_amount`` if None.
        count: number of tracks; Poisson with mean ``scratch_rate * amount`` (per reference-size
            square of the scaled pattern) if None.
        size_factor: factor on the sizes (see ``DamageParams.scale_jitter``).

    Returns:
        The tracks, in pixel units of (height, width).
    """
    p = params or DamageParams()
    g = resolve_rng(rng)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    amt = p.sample_amount(g) if amount is None else float(amount)
    scale = _scale(height, width, p) * float(size_factor)
    area = _area_factor(height, width, scale, p)
    n = int(g.poisson(p.scratch_rate * amt * area)) if count is None else int(count)
    tracks = []
    for _ in range(n):
        if g.random() < 0.5:  # full height (the end fades lie outside the frame)
            y_start, y_end = -8.0, height + 8.0
        else:
            length = g.uniform(0.2, 0.9) * height
            y_start = g.uniform(-0.1 * height, height - 0.5 * length)
            y_end = y_start + length
        if n_frames > 1 and g.random() >= 0.5:
            span = int(g.integers((n_frames + 1) // 2, n_frames + 1))
            first = int(g.integers(0, n_frames - span + 1))
            last = first + span - 1
        else:
            first, last = 0, n_frames - 1
        tracks.append(ScratchTrack(
            x0=float(g.uniform(0.0, width)),
            drift=float(g.normal(0.0, 0.25) * max(scale, 0.25)),
            slant=float(g.normal(0.0, 0.015)),
            wobble_amp=(float(g.uniform(0.0, 2.0) * scale), float(g.uniform(0.0, 0.7) * scale)),
            wobble_freq=(float(g.uniform(0.3, 1.5)), float(g.uniform(2.0, 8.0))),
            wobble_phase=(float(g.uniform(0, 2 * math.pi)), float(g.uniform(0, 2 * math.pi))),
            y_start=float(y_start), y_end=float(y_end),
            width=float(max(0.5, g.uniform(0.5, 1.8) * scale)),
            opacity=float(g.uniform(*p.opacity_range)),
            flicker=float(g.uniform(0.0, 0.12)),
            jitter=float(g.uniform(0.0, 0.3) * max(scale, 0.25)),
            gap_seed=int(g.integers(0, 2**63 - 1)),
            first_frame=first, last_frame=last,
        ))
    return tracks


def _residual(rng: np.random.Generator, p: DamageParams, blotch: bool) -> np.ndarray:
    """Residual RGB transmittance of opaque damage (near 0 = black; slightly tinted at times)."""
    if blotch:
        base = rng.uniform(0.05, 0.3)
        tinted = rng.random() < max(0.5, p.tint_probability)
    else:
        base = rng.uniform(*p.residual_range)
        tinted = rng.random() < p.tint_probability
    res = np.full(3, base)
    if tinted and p.tint_strength > 0:
        # Warm (brownish) or cool (bluish-grey) tints only: dirt and dye residue are not purple.
        v = rng.choice((-1.0, 1.0)) * np.array([1.0, 0.1, -1.0]) + rng.normal(0.0, 0.15, 3)
        v -= v.mean()
        v /= max(np.abs(v).max(), 1e-6)
        res = np.maximum(base, p.tint_strength) + p.tint_strength * v
    return np.clip(res, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def render_damage(height: int, width: int, rng: np.random.Generator | int,
                  params: DamageParams | None = None, polarity: Polarity = "dark", *,
                  amount: float | None = None,
                  scratch_tracks: Sequence[ScratchTrack] | None = None,
                  frame: int = 0, size_factor: float | None = None) -> DamageMap:
    """Draw one damage pattern for a (height, width) image.

    Args:
        height, width: image size in px (>= 1).
        rng: Generator (advanced in place) or int seed; the result is a pure function of the seed.
        params: damage parameters; defaults if None.
        polarity: "dark", "light" or "random" (light with probability ``params.p_light``).
        amount: damage amount in [0, 1]; ``params.sample_amount(rng)`` if None.
        scratch_tracks: persistent scratches to draw at ``frame`` (sequences); if None, new
            scratches are drawn for this image alone.
        frame: frame index for ``scratch_tracks``.
        size_factor: factor on all damage sizes; ``exp(N(0, params.scale_jitter))`` if None.

    Returns:
        A :class:`DamageMap`. Unless every rate is zero or ``amount`` is 0, at least one element is
        drawn (if the Poisson draws give none, one element of a kind chosen in proportion to the
        rates is added).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    p = params or DamageParams()
    g = resolve_rng(rng)
    pol = _resolve_polarity(polarity, g, p)
    amt = p.sample_amount(g) if amount is None else float(amount)
    if not 0.0 <= amt <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amt}")
    if size_factor is None:
        size_factor = _size_factor(g, p)
    scale = _scale(height, width, p) * float(size_factor)
    mult = np.exp(g.normal(0.0, p.mix_jitter, 4)) if p.mix_jitter > 0 else np.ones(4)
    area = _area_factor(height, width, scale, p)
    rates = np.array([p.dust_density * _speck_survival(0.5 / scale, p), p.hair_rate,
                      p.scratch_rate, p.blotch_rate]) * area * mult * amt
    counts = [int(g.poisson(rate)) for rate in rates]
    if scratch_tracks is not None:
        tracks = [t for t in scratch_tracks if t.active(frame)]
        counts[2] = len(tracks)
    else:
        tracks = make_scratch_tracks(g, height, width, 1, p, amt, count=counts[2],
                                     size_factor=size_factor)
    if sum(counts) == 0 and rates.sum() > 0:
        kind = int(g.choice(4, p=rates / rates.sum()))
        counts[kind] = 1
        if kind == 2:
            tracks = make_scratch_tracks(g, height, width, 1, p, amt, count=1,
                                         size_factor=size_factor)

    soft_sigma = p.softness * max(scale, 0.35)
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    dust = _speck_layer(g, height, width, counts[0], scale, p)
    layers.append((_blur(dust, soft_sigma * g.uniform(0.4, 1.2)), _residual(g, p, False)))
    hair = _hair_layer(g, height, width, counts[1], scale, p)
    layers.append((_blur(hair, soft_sigma * g.uniform(0.3, 1.0)), _residual(g, p, False)))
    scr = np.zeros((height, width), np.float32)
    for track in tracks:
        np.maximum(scr, track.render(height, width, frame, g), out=scr)
    layers.append((_blur(scr, soft_sigma * g.uniform(0.2, 0.8)), _residual(g, p, False)))
    blot = _blotch_layer(g, height, width, counts[3], scale, p)
    layers.append((_blur(blot, soft_sigma * g.uniform(0.5, 1.5)), _residual(g, p, True)))

    keep = np.ones((height, width), np.float32)  # prod(1 - a_k)
    planes = [np.ones((height, width), np.float32) for _ in range(3)]  # transmittance per channel
    for a, res in layers:
        a = cv2.threshold(np.minimum(a, 1.0, out=a), p.min_opacity, 0.0, cv2.THRESH_TOZERO)[1]
        if not a.any():
            continue
        keep *= 1.0 - a
        if res[0] == res[1] == res[2]:
            factor = 1.0 - a * np.float32(1.0 - res[0])
            for plane in planes:
                plane *= factor
        else:
            for plane, r in zip(planes, res):
                plane *= 1.0 - a * np.float32(1.0 - r)
    alpha = 1.0 - keep  # exactly 0 where no layer has damage, so the planes are exactly 1 there
    faint = (alpha > 0) & (alpha < p.min_opacity)
    if faint.any():
        alpha[faint] = 0.0
        for plane in planes:
            plane[faint] = 1.0
    trans = cv2.merge(planes)
    return DamageMap(alpha=alpha, transmittance=trans, polarity=pol, amount=amt,  # type: ignore[arg-type]
                     counts=dict(zip(KINDS, counts)))


def apply_damage(clean: np.ndarray, damage: DamageMap) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``damage`` onto ``clean``.

    Args:
        clean: (H, W, 3) float array in [0, 1] (converted to float32).
        damage: a :class:`DamageMap` of the same H, W.

    Returns:
        ``(damaged, mask)``: (H, W, 3) float32 in [0, 1] and (H, W) float32 in [0, 1], where
        ``mask`` is the damage opacity on pixels that changed and exactly 0 elsewhere, so
        ``(mask > 0) == (np.abs(damaged - clean).max(-1) > 0)``. Untouched pixels are bit-identical
        to ``clean``.
    """
    img = _check_image(clean)
    if damage.alpha.shape != img.shape[:2]:
        raise ValueError(f"damage is {damage.alpha.shape}, image is {img.shape[:2]}")
    t = damage.transmittance
    # Both forms leave pixels with transmittance exactly 1 bit-identical to the input.
    if damage.polarity == "dark":
        damaged = img * t
    else:
        damaged = img + (1.0 - img) * (1.0 - t)
        np.minimum(damaged, 1.0, out=damaged)
    ne = (damaged != img).view(np.uint8)
    changed = cv2.transform(ne, np.ones((1, 3), np.float32)) > 0
    mask = np.where(changed, damage.alpha, np.float32(0.0)).astype(np.float32, copy=False)
    return damaged, mask


def _check_image(clean: np.ndarray) -> np.ndarray:
    arr = np.asarray(clean)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"expected a float image in [0, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.size and (float(arr.min()) < 0.0 or float(arr.max()) > 1.0):
        raise ValueError("image values must lie in [0, 1]")
    return arr


def dustify(clean: np.ndarray, rng: np.random.Generator | int, params: DamageParams | None = None,
            polarity: Polarity = "dark") -> tuple[np.ndarray, np.ndarray]:
    """Add random dust, hairs, scratches and dirt to a clean image.

    Args:
        clean: (H, W, 3) float image in [0, 1].
        rng: Generator (advanced in place) or int seed. The same seed gives bit-identical output.
        params: damage parameters (defaults if None); the amount is drawn per call unless
            ``params.amount`` is set.
        polarity: "dark" (slides/prints: damage darkens, near black), "light" (negatives: damage
            lightens, near white) or "random".

    Returns:
        ``(damaged, mask)``: (H, W, 3) float32 in [0, 1] and (H, W) float32 in [0, 1]; see
        :func:`apply_damage` for the exact mask contract.
    """
    img = _check_image(clean)
    dmg = render_damage(img.shape[0], img.shape[1], rng, params, polarity)
    return apply_damage(img, dmg)


def dustify_batch(images: torch.Tensor, seed: int, params: DamageParams | None = None,
                  polarity: Polarity = "dark") -> tuple[torch.Tensor, torch.Tensor]:
    """Damage a batch of torch images (for on-the-fly training).

    Args:
        images: torch tensor (N, 3, H, W), float in [0, 1], on any device.
        seed: int; image ``i`` uses ``np.random.SeedSequence(seed).spawn(N)[i]``, so the result is
            deterministic for a seed and image ``i`` does not depend on the other images.
        params: damage parameters (amount and, for "random", polarity drawn per image).
        polarity: "dark", "light" or "random".

    Returns:
        ``(damaged, mask)``: tensors (N, 3, H, W) with the input's dtype and device, and
        (N, 1, H, W) float32 on the same device, with the same contract per image as
        :func:`apply_damage` (``(mask > 0)`` exactly where any channel changed).
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError("images must be a torch tensor of shape (N, 3, H, W)")
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be floating point, got {images.dtype}")
    n, _, h, w = images.shape
    children = np.random.SeedSequence(int(seed)).spawn(n)
    alphas = np.zeros((n, 1, h, w), np.float32)
    trans = np.ones((n, 3, h, w), np.float32)
    light = np.zeros(n, bool)
    for i, child in enumerate(children):
        dmg = render_damage(h, w, np.random.default_rng(child), params, polarity)
        alphas[i, 0] = dmg.alpha
        trans[i] = dmg.transmittance.transpose(2, 0, 1)
        light[i] = dmg.polarity == "light"
    dev = images.device
    a = torch.from_numpy(alphas).to(dev)
    t = torch.from_numpy(trans).to(dev)
    x = images.float()
    lt = torch.from_numpy(light).to(dev).view(n, 1, 1, 1)
    comp = torch.where(lt, 1.0 - (1.0 - x) * t, x * t).clamp_(0.0, 1.0)
    out = torch.where(a > 0, comp, x).to(images.dtype)
    changed = (out != images).any(dim=1, keepdim=True)
    mask = torch.where(changed, a, torch.zeros_like(a))
    return out, mask


def dustify_sequence(frames: Sequence[np.ndarray], seed: int | np.random.Generator,
                     params: DamageParams | None = None, polarity: Polarity = "dark"
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Damage a sequence of frames like a dirty film strip.

    Scratches are drawn once per sequence as :class:`ScratchTrack` s, persist over many frames,
    drift slowly in x and flicker slightly; dust, hairs and blotches are drawn independently in
    every frame. The amount and the polarity (for "random") are drawn once per sequence.

    Args:
        frames: (H, W, 3) float images in [0, 1], all of the same size.
        seed: int seed or Generator.
        params: damage parameters.
        polarity: "dark", "light" or "random".

    Returns:
        ``(damaged, masks)``: lists of (H, W, 3) and (H, W) float32 arrays, one per frame, each
        pair with the contract of :func:`apply_damage`.
    """
    p = params or DamageParams()
    imgs = [_check_image(f) for f in frames]
    if not imgs:
        return [], []
    h, w = imgs[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in imgs):
        raise ValueError("all frames must have the same size")
    g = resolve_rng(seed)
    pol = _resolve_polarity(polarity, g, p)
    amt = p.sample_amount(g)
    factor = _size_factor(g, p)
    tracks = make_scratch_tracks(g, h, w, len(imgs), p, amt, size_factor=factor)
    frame_seeds = g.integers(0, 2**63 - 1, len(imgs))
    damaged, masks = [], []
    for t, (img, fs) in enumerate(zip(imgs, frame_seeds)):
        dmg = render_damage(h, w, np.random.default_rng(int(fs)), p, pol, amount=amt,  # type: ignore[arg-type]
                            scratch_tracks=tracks, frame=t, size_factor=factor)
        d, m = apply_damage(img, dmg)
        damaged.append(d)
        masks.append(m)
    return damaged, masks
