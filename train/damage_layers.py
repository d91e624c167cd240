"""Drawing the kinds of damage of :mod:`filmclean.train.synth`: dust specks, hairs and fibres,
scratches (:class:`ScratchTrack`, which persist over the frames of a sequence) and dirt blotches,
each as an opacity layer, with their sizes and counts scaled to the image.

Every function takes its :class:`~filmclean.train.synth.DamageParams` explicitly and draws from the
generator it is given, in a fixed order, so a pattern is a pure function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .synth import DamageParams

_SHIFT = 3  # fixed-point bits for cv2 drawing (1/8 px precision)
_ONE = 1 << _SHIFT


def resolve_rng(rng: np.random.Generator | int | np.random.SeedSequence) -> np.random.Generator:
    """Return ``rng`` itself if it is a Generator, else ``np.random.default_rng(rng)``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, float)) or rng is None:
        raise TypeError(f"rng must be a numpy Generator, SeedSequence or int seed, got {rng!r}")
    return np.random.default_rng(rng)


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


def draw_scratch_tracks(
    g: np.random.Generator,
    height: int,
    width: int,
    n_frames: int,
    p: DamageParams,
    amt: float,
    count: int | None = None,
    size_factor: float = 1.0,
) -> list[ScratchTrack]:
    """The drawing of :func:`filmclean.train.synth.make_scratch_tracks`, its defaults resolved."""
    scale = image_scale(height, width, p) * float(size_factor)
    area = area_factor(height, width, scale, p)
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
        tracks.append(
            ScratchTrack(
                x0=float(g.uniform(0.0, width)),
                drift=float(g.normal(0.0, 0.25) * max(scale, 0.25)),
                slant=float(g.normal(0.0, 0.015)),
                wobble_amp=(float(g.uniform(0.0, 2.0) * scale), float(g.uniform(0.0, 0.7) * scale)),
                wobble_freq=(float(g.uniform(0.3, 1.5)), float(g.uniform(2.0, 8.0))),
                wobble_phase=(float(g.uniform(0, 2 * math.pi)), float(g.uniform(0, 2 * math.pi))),
                y_start=float(y_start),
                y_end=float(y_end),
                width=float(max(0.5, g.uniform(0.5, 1.8) * scale)),
                opacity=float(g.uniform(*p.opacity_range)),
                flicker=float(g.uniform(0.0, 0.12)),
                jitter=float(g.uniform(0.0, 0.3) * max(scale, 0.25)),
                gap_seed=int(g.integers(0, 2**63 - 1)),
                first_frame=first,
                last_frame=last,
            )
        )
    return tracks


def image_scale(height: int, width: int, p: DamageParams) -> float:
    """Factor from sizes at the reference size to pixels of this image."""
    return (min(height, width) / float(p.reference_size)) ** p.size_exponent


def size_factor_draw(rng: np.random.Generator, p: DamageParams) -> float:
    """Per-image random factor on all sizes (log-normal, sigma ``scale_jitter``)."""
    return float(np.exp(rng.normal(0.0, p.scale_jitter))) if p.scale_jitter > 0 else 1.0


def area_factor(height: int, width: int, scale: float, p: DamageParams) -> float:
    """Image area in units of a reference-size square of the scaled pattern."""
    return height * width / (float(p.reference_size) ** 2 * scale**2)


def speck_survival(r: float | np.ndarray, p: DamageParams) -> float | np.ndarray:
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
    s_min = speck_survival(r_min, p)
    # Survival relative to r_min, inverted piecewise.
    u = (1.0 - rng.random(n)) * s_min
    s_b = (0.5 / rb) ** p.size_tail
    r = np.where(u >= s_b, 0.5 * u ** (-1.0 / p.size_tail), rb * (u / s_b) ** (-1.0 / p.large_size_tail))
    return np.minimum(r * scale, max(_MID_RADIUS, p.max_speck_radius * scale))


def blur(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """``alpha`` blurred with a Gaussian of ``sigma`` px (zero outside the image); itself when
    ``sigma`` < 0.25 or ``alpha`` is empty."""
    if sigma < 0.25 or not alpha.any():
        return alpha
    return cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)


def _speck_positions(
    rng: np.random.Generator, n: int, radii: np.ndarray, height: int, width: int, cluster_fraction: float
) -> np.ndarray:
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
    return np.stack([ex * np.cos(rot) - ey * np.sin(rot), ex * np.sin(rot) + ey * np.cos(rot)], axis=-1)


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


def _stamp_max(
    canvas: np.ndarray, pad: int, ys: np.ndarray, xs: np.ndarray, vals: np.ndarray, patch: np.ndarray
) -> None:
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


def speck_layer(rng: np.random.Generator, height: int, width: int, n: int, scale: float, p: DamageParams) -> np.ndarray:
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
        np.maximum(alpha, canvas[pad : pad + height, pad : pad + width], out=alpha)

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


def hair_layer(rng: np.random.Generator, height: int, width: int, n: int, scale: float, p: DamageParams) -> np.ndarray:
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
    curv = (
        curv + loops * rng.choice((-1.0, 1.0), (n, 1)) * 2.0 * math.pi * rng.uniform(0.6, 1.2, (n, 1)) / length[:, None]
    )
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
    w_prof = w0 * (
        0.75 + 0.25 * np.sin(2.0 * math.pi * rng.uniform(0.3, 2.0, (n, 1)) * s + rng.uniform(0, 2 * math.pi, (n, 1)))
    )
    w_prof *= np.clip(np.minimum(s, 1.0 - s) * 8.0, 0.35, 1.0)  # tapered ends
    lo, hi = p.opacity_range
    op = rng.uniform(0.5 * (lo + hi), hi, (n, 1))
    op_prof = op * np.clip(
        0.85 + 0.25 * np.sin(2.0 * math.pi * rng.uniform(0.2, 1.5, (n, 1)) * s + rng.uniform(0, 2 * math.pi, (n, 1))),
        0.3,
        1.0,
    )

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
        lines = [pts[i, bounds[j] : bounds[j + 1] + 1] for i, j in zip(hair_i, chunk_j)]
        cv2.polylines(canvas, lines, False, v, t, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) * (1.0 / 255.0)


def blotch_layer(
    rng: np.random.Generator, height: int, width: int, n: int, scale: float, p: DamageParams
) -> np.ndarray:
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
        tex = cv2.resize(
            rng.random((max(2, bh // 3), max(2, bw // 3))).astype(np.float32), (bw, bh), interpolation=cv2.INTER_LINEAR
        )
        a = a * (0.65 + 0.35 * tex) * rng.uniform(*p.blotch_opacity_range)
        cx = int(rng.integers(-bw // 2, width - bw // 2 + 1))
        cy = int(rng.integers(-bh // 2, height - bh // 2 + 1))
        x0, y0 = max(cx, 0), max(cy, 0)
        x1, y1 = min(cx + bw, width), min(cy + bh, height)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = a[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
        np.maximum(alpha[y0:y1, x0:x1], sub, out=alpha[y0:y1, x0:x1])
    return alpha


def residual(rng: np.random.Generator, p: DamageParams, blotch: bool) -> np.ndarray:
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


__all__ = [
    "ScratchTrack",
    "area_factor",
    "blotch_layer",
    "blur",
    "draw_scratch_tracks",
    "hair_layer",
    "image_scale",
    "residual",
    "resolve_rng",
    "size_factor_draw",
    "speck_layer",
    "speck_survival",
]
