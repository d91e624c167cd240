"""A held-out film-damage generator, for model selection and test tables only (never for training).

It is written independently of the training generator (``train/synth.py``, ``train/damage_layers.py``)
and shares none of its code or statistics, so that a model's score on this damage measures how well
it generalises to damage it was not trained on.

Geometry is expressed in units of the picture's short side ``s``: the same seed draws the same
damage, in those units, whatever the resolution, and only the rasterisation changes. Pixel sizes
quoted below are at the reference short side :data:`REF_SHORT_SIDE` (a 2K full-aperture scan).
Artefacts narrower than a pixel are drawn with their sub-pixel coverage, so a smaller picture shows
fainter and fewer visible small artefacts, as a downscaled scan does.

Kinds (:data:`KINDS`) and their statistics:

* ``dust``: irregular, slightly elongated specks, diameter Pareto(min 0.7 px, alpha 1.3) capped at
  10 px; 14 per unit area (a square of side ``s``).
* ``dirt``: rough blobs, diameter Pareto(min 3 px, alpha 1.25) capped at 60 px, elongation up to
  2.5, hard or soft edges, a smooth texture inside; 4 per unit area.
* ``hair``: random-walk curves, length Pareto(min 0.03 s, alpha 1.1) up to 1.1 s, straight (45 %),
  bent (30 %) or tightly curled short fibres (25 %), width log-uniform 1 to 8 px, out of focus in a
  third of cases; 1 per unit area.
* ``scratch``: near-vertical (80 %) or slanted (5 to 25 degrees) lines that meander slightly, half
  of them crossing the whole frame, 40 % broken into dashes, width log-uniform 1 to 6 px, intensity
  varying along the length, 30 % tinted (one emulsion layer gone); 0.5 per unit area.

Every count is a gamma-mixed Poisson draw (heavy-tailed: most frames are clean-ish, a few are
filthy). Opacity is drawn per artefact from :attr:`HeldoutParams.opacity` (skewed towards opaque).
The frame's polarity is ``dark`` (positives, prints: damage only darkens) or ``light`` (negatives:
damage only brightens).

Real artefact shapes are composited too: a fraction of the artefacts of each kind is replaced by a
sprite from the FilmDamageSimulator set (Ivanova et al. 2023, MIT licence), only from its held-out
subset (:func:`heldout_sprites`: file numbers divisible by 5); :func:`training_sprites` lists the
rest for a trainer.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "CLIP_KINDS",
    "DEFAULT_SPRITE_ROOT",
    "KINDS",
    "ONE_FRAME_PARAMS",
    "PERSISTENT_PARAMS",
    "REF_SHORT_SIDE",
    "SPRITE_KINDS",
    "HeldoutDamage",
    "HeldoutParams",
    "damage_heldout",
    "damage_heldout_sequence",
    "heldout_sprites",
    "training_sprites",
]

KINDS = ("dust", "dirt", "hair", "scratch")

#: Short side (px) at which the pixel sizes in this module's statistics are quoted.
REF_SHORT_SIDE = 1556.0

#: Sprite folder -> damage kind.
SPRITE_KINDS: dict[str, str] = {
    "dots": "dust",
    "spots": "dust",
    "sprinkles": "dust",
    "dirt": "dirt",
    "smut": "dirt",
    "stain": "dirt",
    "lint": "dirt",
    "hair": "hair",
    "hair-short": "hair",
    "scratches": "scratch",
}

DEFAULT_SPRITE_ROOT = Path(__file__).resolve().parents[2].parent / "shared/data/film-damage-sprites"

#: A pixel counts as damaged when the damage changed it by more than this in some channel.
VISIBLE = 2.0 / 255.0

_NUMBER = re.compile(r"(\d+)\.png$", re.IGNORECASE)


@dataclass(frozen=True)
class HeldoutParams:
    """Knobs of :func:`damage_heldout`.

    Counts are expected numbers of artefacts per unit area, a unit being a square whose side is the
    picture's short side (so they do not depend on the megapixels). More small artefacts become
    visible as the resolution grows. The defaults damage a test picture visibly: on the project's
    held-out photographs at 1024 px, about 5 % of the pixels and an input SSIM near 0.96-0.97 (the
    counts are heavy-tailed, so single pictures range from barely touched to heavily damaged).
    """

    dust_per_unit: float = 80.0
    dirt_per_unit: float = 20.0
    hair_per_unit: float = 5.0
    scratch_per_unit: float = 2.0
    #: Gamma shape of the random rate behind each count: smaller means heavier-tailed counts.
    count_shape: float = 1.2
    #: Probability that a frame has light (negative) rather than dark (positive) damage.
    p_light: float = 0.3
    #: Range of an artefact's peak opacity.
    opacity: tuple[float, float] = (0.15, 1.0)
    use_sprites: bool = True
    #: Fraction of artefacts drawn from a real sprite instead of procedurally (where sprites exist).
    sprite_fraction: float = 0.35

    def rate(self, kind: str) -> float:
        """Expected count of ``kind`` per unit area."""
        return {
            "dust": self.dust_per_unit,
            "dirt": self.dirt_per_unit,
            "hair": self.hair_per_unit,
            "scratch": self.scratch_per_unit,
        }[kind]


@dataclass
class HeldoutDamage:
    """A damaged picture and where its damage is visible."""

    damaged: np.ndarray  # (H, W, 3) float32 in [0, 1]
    masks: dict[str, np.ndarray]  # kind -> (H, W) bool, visible damage of that kind
    mask: np.ndarray  # (H, W) bool, union of ``masks``
    polarity: str  # "dark" or "light"
    sprites_used: int = 0
    #: Artefacts drawn per kind (visible or not).
    counts: dict[str, int] = field(default_factory=dict)
    #: Whether and why sprites were (not) used.
    sprite_status: str = ""


# ----------------------------------------------------------------------------------------- sprites


def _sprite_number(path: Path) -> int | None:
    m = _NUMBER.search(path.name)
    return int(m.group(1)) if m else None


def _all_sprites(root: str | Path | None) -> list[Path]:
    base = Path(root) if root is not None else DEFAULT_SPRITE_ROOT
    if not base.is_dir():
        return []
    return list(_list_sprites(str(base.resolve())))


@functools.lru_cache(maxsize=8)
def _list_sprites(base_dir: str) -> tuple[Path, ...]:
    base = Path(base_dir)
    found: list[Path] = []
    for folder in sorted(SPRITE_KINDS):
        d = base / folder
        if d.is_dir():
            found.extend(p for p in sorted(d.glob("*.png")) if _sprite_number(p) is not None)
    return tuple(found)


def heldout_sprites(root: str | Path | None = None) -> list[Path]:
    """Sprites reserved for evaluation: those whose file number is divisible by 5 (sorted)."""
    return [p for p in _all_sprites(root) if (_sprite_number(p) or 0) % 5 == 0]


def training_sprites(root: str | Path | None = None) -> list[Path]:
    """The complement of :func:`heldout_sprites`: sprites a trainer may use."""
    return [p for p in _all_sprites(root) if (_sprite_number(p) or 0) % 5 != 0]


@functools.lru_cache(maxsize=8)
def _heldout_tuple(base_dir: str) -> tuple[Path, ...]:
    return tuple(heldout_sprites(base_dir))


@functools.lru_cache(maxsize=512)
def _load_sprite(path: str) -> np.ndarray | None:
    """The sprite's alpha as float32 in [0, 1], cropped to its support (None when unreadable)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        return None
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    alpha = img[..., 3].astype(np.float32) / scale
    ys, xs = np.nonzero(alpha > 1.0 / 255.0)
    if ys.size == 0:
        return None
    return np.ascontiguousarray(alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def _sprite_pools(root: Path | None, use: bool) -> tuple[dict[str, list[Path]], str]:
    pools: dict[str, list[Path]] = {k: [] for k in KINDS}
    if not use:
        return pools, "sprites disabled"
    base = root if root is not None else DEFAULT_SPRITE_ROOT
    if not Path(base).is_dir():
        return pools, f"sprite root {base} not found: sprites skipped"
    for p in _heldout_tuple(str(Path(base).resolve())):
        pools[SPRITE_KINDS[p.parent.name]].append(p)
    total = sum(len(v) for v in pools.values())
    if total == 0:
        return pools, f"no held-out sprites under {base}: sprites skipped"
    return pools, f"{total} held-out sprites under {base}"


# ------------------------------------------------------------------------------------------ helpers


def _pareto(rng: np.random.Generator, lo: float, alpha: float, hi: float) -> float:
    """A Pareto draw (minimum ``lo``, tail index ``alpha``) capped at ``hi``."""
    return float(min(hi, lo * (1.0 - rng.random()) ** (-1.0 / alpha)))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _opacity(rng: np.random.Generator, params: HeldoutParams) -> float:
    lo, hi = params.opacity
    return float(lo + (hi - lo) * rng.beta(2.0, 1.2))


def _colour(rng: np.random.Generator, polarity: str, tint: bool) -> np.ndarray:
    """A damage colour: near black (dark) or near white (light); ``tint`` sets one channel apart."""
    grey = rng.uniform(0.0, 0.1)
    c = grey + rng.uniform(-0.02, 0.02, 3)
    channel = int(rng.integers(3))
    amount = rng.uniform(0.35, 0.7)
    if tint:
        c[channel] += amount
    c = np.clip(c, 0.0, 1.0)
    return (c if polarity == "dark" else 1.0 - c).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` px, rescaled to [0, 1]."""
    n: np.ndarray = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0.3:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
    lo, hi = float(n.min()), float(n.max())
    return (n - lo) / (hi - lo) if hi > lo else np.zeros(shape, np.float32)


def _blur(alpha: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(alpha, (0, 0), sigma) if sigma > 0.25 else alpha


def _downsample(canvas: np.ndarray, ss: int) -> np.ndarray:
    alpha = canvas.astype(np.float32) / 255.0
    if ss == 1:
        return alpha
    h, w = alpha.shape
    return cv2.resize(alpha, (max(1, w // ss), max(1, h // ss)), interpolation=cv2.INTER_AREA)


def _pad(alpha: np.ndarray, margin: int) -> np.ndarray:
    return np.pad(alpha, margin) if margin > 0 else alpha


class _Compositor:
    """Composites alpha patches into the picture, one artefact at a time, with the frame's polarity."""

    def __init__(self, clean: np.ndarray, polarity: str) -> None:
        self.out = clean.copy()
        self.h, self.w = clean.shape[:2]
        self.dark = polarity == "dark"
        self.change = {k: np.zeros((self.h, self.w), np.float32) for k in KINDS}

    def paste(self, kind: str, alpha: np.ndarray, cx: float, cy: float, colour: np.ndarray) -> None:
        """Composite ``alpha`` (peak opacity already applied) centred on pixel (cx, cy)."""
        ph, pw = alpha.shape
        x0 = int(round(cx - pw / 2.0))
        y0 = int(round(cy - ph / 2.0))
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + pw, self.w), min(y0 + ph, self.h)
        if xa >= xb or ya >= yb:
            return
        a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0]
        if float(a.max()) <= 0.0:
            return
        region = self.out[ya:yb, xa:xb]
        new = region + a[..., None] * (colour - region)
        new = np.minimum(new, region) if self.dark else np.maximum(new, region)
        np.clip(new, 0.0, 1.0, out=new)
        self.change[kind][ya:yb, xa:xb] += np.abs(new - region).max(axis=2)
        self.out[ya:yb, xa:xb] = new


# ------------------------------------------------------------------------------------------- shapes


def _blob(
    rng: np.random.Generator,
    diam_px: float,
    elong: float,
    angle: float,
    harmonics: np.ndarray,
    phases: np.ndarray,
    soft: float,
    texture: float,
) -> np.ndarray:
    """An irregular blob of diameter ``diam_px`` (soft: blur in radii; texture: 0..1 mottling)."""
    if diam_px < 1.0:
        return np.array([[math.pi / 4.0 * diam_px * diam_px]], np.float32)
    ss = 4 if diam_px < 8 else 2 if diam_px < 24 else 1
    theta = np.linspace(0.0, 2.0 * math.pi, 64, endpoint=False)
    k = np.arange(2, 2 + len(harmonics))[:, None]
    r = 1.0 + (harmonics[:, None] * np.cos(k * theta[None, :] + phases[:, None])).sum(axis=0)
    r = np.clip(r, 0.35, None) * (diam_px / 2.0) * ss
    x, y = r * np.cos(theta) * elong, r * np.sin(theta) / elong
    ca, sa = math.cos(angle), math.sin(angle)
    xr, yr = x * ca - y * sa, x * sa + y * ca
    sigma = soft * diam_px / 2.0
    margin = int(math.ceil(3.0 * sigma)) + 2
    half = int(math.ceil(max(np.abs(xr).max(), np.abs(yr).max()))) + 2
    size = 2 * half
    pts = np.stack([xr + half, yr + half], axis=1)
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 8).astype(np.int32)], 255, cv2.LINE_AA, 3)
    alpha = _pad(_downsample(canvas, ss), margin)
    alpha = _blur(alpha, sigma)
    if texture > 0:
        noise = _smooth_noise(rng, alpha.shape, max(0.8, diam_px / 8.0))
        alpha = alpha * (1.0 - texture * noise)
    return np.asarray(alpha, np.float32)


def _polyline_alpha(
    pts_px: np.ndarray,
    width_px: float,
    defocus: float,
    values: np.ndarray | None = None,
    draw: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """Rasterise a polyline (pixel coordinates) of width ``width_px``, anti-aliased.

    ``values`` (per segment, 0..1) modulates intensity and ``draw`` (per segment, bool) breaks it.
    Returns the alpha patch and the pixel coordinates of the patch's centre.
    """
    sigma = defocus * width_px
    margin = int(math.ceil(3.0 * sigma + width_px)) + 2
    lo = np.floor(pts_px.min(axis=0)) - margin
    hi = np.ceil(pts_px.max(axis=0)) + margin
    bw, bh = int(hi[0] - lo[0]), int(hi[1] - lo[1])
    ss = 4 if width_px < 1.5 else 2 if width_px < 4 else 1
    while ss > 1 and bw * bh * ss * ss > 8_000_000:
        ss //= 2
    canvas = np.zeros((bh * ss, bw * ss), np.uint8)
    local = np.round((pts_px - lo) * ss * 8).astype(np.int32)
    thick = max(1, int(round(width_px * ss)))
    if values is None and draw is None:
        cv2.polylines(canvas, [local], False, 255, thick, cv2.LINE_AA, 3)
    else:
        n = len(local) - 1
        vals = values if values is not None else np.ones(n)
        on = draw if draw is not None else np.ones(n, bool)
        for i in range(n):
            if on[i]:
                v = int(round(255 * float(vals[i])))
                p, q = (int(local[i, 0]), int(local[i, 1])), (int(local[i + 1, 0]), int(local[i + 1, 1]))
                cv2.line(canvas, p, q, v, thick, cv2.LINE_AA, 3)
    alpha = _downsample(canvas, ss)
    if width_px * ss < 1.0:
        alpha *= width_px * ss
    alpha = _blur(alpha, sigma)
    h, w = alpha.shape
    return np.asarray(alpha, np.float32), float(lo[0] + w / 2.0), float(lo[1] + h / 2.0)


def _sprite(path: Path, target_px: float, angle_deg: float, flip: bool) -> np.ndarray | None:
    """A sprite's alpha scaled so its longer side is ``target_px``, flipped and rotated."""
    base = _load_sprite(str(path))
    if base is None:
        return None
    coverage = 1.0
    if target_px < 2.0:
        coverage = (max(target_px, 0.05) / 2.0) ** 2
        target_px = 2.0
    bh, bw = base.shape
    scale = target_px / max(bh, bw)
    nw, nh = max(1, int(round(bw * scale))), max(1, int(round(bh * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    small = cv2.resize(base, (nw, nh), interpolation=interp)
    if flip:
        small = small[:, ::-1]
    side = int(math.ceil(math.hypot(nw, nh))) + 2
    m = cv2.getRotationMatrix2D((nw / 2.0, nh / 2.0), angle_deg, 1.0)
    m[0, 2] += (side - nw) / 2.0
    m[1, 2] += (side - nh) / 2.0
    rotated = cv2.warpAffine(np.ascontiguousarray(small), m, (side, side), flags=cv2.INTER_LINEAR)
    return np.clip(rotated, 0.0, 1.0).astype(np.float32) * coverage


# ---------------------------------------------------------------------------------------- artefacts

_PX = 1.0 / REF_SHORT_SIDE  # one reference pixel in units of the short side


def _dust_or_dirt(rng: np.random.Generator, kind: str, s: int, frame: tuple[float, float]) -> dict:
    dust = kind == "dust"
    d = _pareto(rng, 0.7 * _PX, 1.3, 10 * _PX) if dust else _pareto(rng, 3 * _PX, 1.25, 60 * _PX)
    return {
        "cx": rng.uniform(0.0, frame[0]),
        "cy": rng.uniform(0.0, frame[1]),
        "d": d,
        "elong": rng.uniform(1.0, 1.5) if dust else _log_uniform(rng, 1.0, 2.5),
        "angle": rng.uniform(0.0, math.pi),
        "harmonics": rng.standard_normal(5) * (rng.uniform(0.0, 0.12) if dust else rng.uniform(0.08, 0.3)),
        "phases": rng.uniform(0.0, 2.0 * math.pi, 5),
        "soft": (0.0 if rng.random() < 0.7 else rng.uniform(0.1, 0.4))
        if dust
        else (0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.5)),
        "texture": 0.0 if dust else rng.uniform(0.0, 0.7),
    }


def _hair_path(rng: np.random.Generator, frame: tuple[float, float]) -> tuple[np.ndarray, float]:
    """A hair's centre line (n x 2, units of s) and its width (units of s)."""
    n = 96
    mode = rng.random()
    length = _pareto(rng, 0.03, 1.1, 1.1)
    wander = rng.uniform(0.05, 0.5)
    if mode < 0.45:  # straight
        turn = rng.uniform(-0.3, 0.3)
    elif mode < 0.75:  # bent
        turn = rng.uniform(0.5, 2.5) * rng.choice([-1.0, 1.0])
    else:  # tightly curled fibre: short, several turns, sometimes reversing
        length = min(length, rng.uniform(0.02, 0.12))
        turn = rng.uniform(6.0, 20.0) * rng.choice([-1.0, 1.0])
        wander = rng.uniform(0.5, 2.0)
    flip_at = int(rng.integers(n // 4, n)) if rng.random() < 0.4 else n
    steps = turn / n * (1.0 + 0.4 * rng.standard_normal(n)) + wander / math.sqrt(n) * rng.standard_normal(n)
    steps[flip_at:] *= -1.0
    heading = rng.uniform(0.0, 2.0 * math.pi) + np.cumsum(steps)
    ds = length / n
    xy = np.stack([np.cos(heading), np.sin(heading)], axis=1) * ds
    pts = np.vstack([np.zeros((1, 2)), np.cumsum(xy, axis=0)])
    pts -= pts.mean(axis=0)
    pts += [rng.uniform(0.0, frame[0]), rng.uniform(0.0, frame[1])]
    width = _log_uniform(rng, 1.0, 8.0) * _PX
    return pts, width


def _scratch_path(
    rng: np.random.Generator, frame: tuple[float, float]
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, bool]:
    """A scratch's centre line (units of s), width, per-segment intensity and on/off, and tint."""
    n = 128
    fw, fh = frame
    full = rng.random() < 0.5
    length = fh * 1.2 if full else fh * rng.uniform(0.2, 1.0)
    top = -0.1 * fh if full else rng.uniform(-0.1, 1.0) * fh - length / 2.0
    slant = rng.normal(0.0, 0.02) if rng.random() < 0.8 else rng.uniform(0.08, 0.45) * rng.choice([-1.0, 1.0])
    t = np.linspace(0.0, 1.0, n + 1)
    amp = rng.uniform(0.0, 0.003, 2)
    freq = rng.uniform(0.5, 3.0, 2)
    phase = rng.uniform(0.0, 2.0 * math.pi, 2)
    wiggle = (amp[:, None] * np.sin(2.0 * math.pi * freq[:, None] * t[None, :] + phase[:, None])).sum(axis=0)
    y = top + t * length * math.cos(slant)
    x = rng.uniform(0.0, fw) + (t - 0.5) * length * math.sin(slant) + wiggle
    width = _log_uniform(rng, 1.0, 6.0) * _PX
    raw = rng.standard_normal(n + 8)
    values = np.convolve(raw, np.ones(9) / 3.0, mode="valid")[:n]
    values = np.clip(0.8 + 0.25 * values, 0.35, 1.0)
    draw = np.ones(n, bool)
    if rng.random() < 0.4:  # broken: alternating on/off runs
        on_mean, off_mean = rng.uniform(0.05, 0.3), rng.uniform(0.01, 0.08)
        pos, on = 0.0, bool(rng.random() < 0.8)
        runs = rng.exponential(1.0, 64)
        for r in runs:
            end = pos + r * (on_mean if on else off_mean)
            if not on:
                draw[int(pos * n) : int(math.ceil(end * n))] = False
            pos, on = end, not on
            if pos >= 1.0:
                break
    tint = bool(rng.random() < 0.3)
    return np.stack([x, y], axis=1), width, values, draw, tint


def _sprite_size(rng: np.random.Generator, kind: str, frame: tuple[float, float]) -> tuple[float, float]:
    """A sprite's longer side (units of s) and rotation (degrees) for ``kind``."""
    if kind == "dust":
        return _pareto(rng, 2 * _PX, 1.3, 40 * _PX), rng.uniform(0.0, 360.0)
    if kind == "dirt":
        return _pareto(rng, 8 * _PX, 1.2, 90 * _PX), rng.uniform(0.0, 360.0)
    if kind == "hair":
        return _pareto(rng, 0.03, 1.1, 0.8), rng.uniform(0.0, 360.0)
    angle = rng.normal(0.0, 1.5) if rng.random() < 0.8 else rng.uniform(5.0, 25.0) * rng.choice([-1.0, 1.0])
    return frame[1] * rng.uniform(0.3, 1.1), float(angle)


# ------------------------------------------------------------------------------------------- public


def damage_heldout(
    clean: np.ndarray,
    seed: int,
    params: HeldoutParams = HeldoutParams(),
    sprite_root: Path | None = None,
) -> HeldoutDamage:
    """Damage ``clean`` (float32 (H, W, 3) in [0, 1]) with held-out synthetic film damage.

    Deterministic given ``seed``; the same seed draws the same damage (in units of the short side)
    at any resolution. Pixels outside the returned union mask are bit-identical to ``clean``.
    ``sprite_root`` defaults to :data:`DEFAULT_SPRITE_ROOT`; a missing root skips sprites.
    """
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"clean must be (H, W, 3), got {clean.shape}")
    clean = np.ascontiguousarray(clean, np.float32)
    h, w = clean.shape[:2]
    s = min(h, w)
    frame = (w / s, h / s)
    rng = np.random.default_rng(seed)
    polarity = "light" if rng.random() < params.p_light else "dark"
    pools, status = _sprite_pools(sprite_root, params.use_sprites)
    comp = _Compositor(clean, polarity)
    counts = dict.fromkeys(KINDS, 0)
    sprites_used = 0
    shape = max(params.count_shape, 1e-3)

    for kind in KINDS:
        lam = params.rate(kind) * frame[0] * frame[1] * rng.gamma(shape, 1.0 / shape)
        n = int(rng.poisson(lam))
        counts[kind] = n
        seeds = rng.integers(0, 2**63 - 1, n)
        for art_seed in seeds:
            art = np.random.default_rng(int(art_seed))
            # Parameters first, in a fixed number of draws, so they do not depend on the resolution.
            sprite_draw, pick = art.random(), art.random()
            opacity = _opacity(art, params)
            colour = _colour(art, polarity, tint=False)
            pool = pools[kind]
            if pool and sprite_draw < params.sprite_fraction:
                size, angle = _sprite_size(art, kind, frame)
                cx, cy, flip = art.uniform(0.0, frame[0]), art.uniform(0.0, frame[1]), art.random() < 0.5
                if kind == "scratch":
                    colour = _colour(art, polarity, tint=art.random() < 0.3)
                alpha = _sprite(pool[int(pick * len(pool))], size * s, angle, flip)
                if alpha is not None:
                    comp.paste(kind, alpha * opacity, cx * s, cy * s, colour)
                    sprites_used += 1
                continue
            if kind in ("dust", "dirt"):
                p = _dust_or_dirt(art, kind, s, frame)
                alpha = _blob(
                    art, p["d"] * s, p["elong"], p["angle"], p["harmonics"], p["phases"], p["soft"], p["texture"]
                )
                comp.paste(kind, alpha * opacity, p["cx"] * s, p["cy"] * s, colour)
            elif kind == "hair":
                pts, width = _hair_path(art, frame)
                defocus = art.uniform(0.3, 1.5) if art.random() < 0.33 else 0.0
                alpha, cx, cy = _polyline_alpha(pts * s, width * s, defocus)
                comp.paste(kind, alpha * opacity, cx, cy, colour)
            else:
                pts, width, values, draw, tint = _scratch_path(art, frame)
                colour = _colour(art, polarity, tint=tint)
                soft = art.uniform(0.1, 0.5)
                alpha, cx, cy = _polyline_alpha(pts * s, width * s, soft, values, draw)
                comp.paste(kind, alpha * opacity, cx, cy, colour)

    # Masks and the revert of sub-threshold changes, computed on touched pixels only.
    damaged = comp.out
    total = sum((comp.change[k] for k in KINDS), np.zeros((h, w), np.float32))
    ys, xs = np.nonzero(total > 0)
    before = clean[ys, xs]
    visible = np.abs(damaged[ys, xs] - before).max(axis=1) > VISIBLE
    masks: dict[str, np.ndarray] = {}
    union = np.zeros((h, w), bool)
    for k in KINDS:
        m = np.zeros((h, w), bool)
        m[ys, xs] = (comp.change[k][ys, xs] > VISIBLE) & visible
        masks[k] = m
        union |= m
    revert = ~union[ys, xs]
    damaged[ys[revert], xs[revert]] = before[revert]
    if pools and any(pools.values()):
        status = f"{status}; {sprites_used} composited"
    return HeldoutDamage(
        damaged=damaged,
        masks=masks,
        mask=union,
        polarity=polarity,
        sprites_used=sprites_used,
        counts=counts,
        sprite_status=status,
    )


#: Held-out damage of one frame alone in a clip: dust, dirt and hairs, no scratches.
ONE_FRAME_PARAMS = HeldoutParams(scratch_per_unit=0.0)
#: Held-out damage that persists through a clip: drawn scratches only (lines along the film, not the
#: sprites' scratched areas), about one per square of the frame's short side.
PERSISTENT_PARAMS = HeldoutParams(
    dust_per_unit=0.0, dirt_per_unit=0.0, hair_per_unit=0.0, scratch_per_unit=1.0, count_shape=50.0, use_sprites=False
)
#: Names of the two kinds of clip damage (:func:`damage_heldout_sequence`).
CLIP_KINDS = ("one-frame", "persistent")


def damage_heldout_sequence(
    frames: list[np.ndarray],
    seed: int,
    one_frame: HeldoutParams = ONE_FRAME_PARAMS,
    persistent: HeldoutParams = PERSISTENT_PARAMS,
    sprite_root: Path | None = None,
) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Held-out damage for a clip: ``persistent`` damage drawn once (the same scratches, in the same
    place, on every frame) and ``one_frame`` damage drawn afresh on every frame, over it.

    ``frames``: ``(H, W, 3)`` float32 of one size. Returns the damaged frames and, per frame, the
    visible damage of each of :data:`CLIP_KINDS` (``(H, W)`` bool; a pixel under both counts as
    one-frame damage, the layer on top). Deterministic given ``seed``."""
    damaged: list[np.ndarray] = []
    kinds: list[dict[str, np.ndarray]] = []
    base = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5C1])
    persistent_seed, *frame_seeds = (int(s.generate_state(1)[0]) for s in base.spawn(len(frames) + 1))
    for frame, frame_seed in zip(frames, frame_seeds, strict=True):
        lasting = damage_heldout(frame, persistent_seed, persistent, sprite_root)
        once = damage_heldout(lasting.damaged, frame_seed, one_frame, sprite_root)
        damaged.append(once.damaged)
        kinds.append({"one-frame": once.mask, "persistent": lasting.mask & ~once.mask})
    return damaged, kinds
