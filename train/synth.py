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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from .damage_layers import (
    ScratchTrack,
    area_factor,
    blotch_layer,
    blur,
    draw_scratch_tracks,
    hair_layer,
    image_scale,
    residual,
    resolve_rng,
    size_factor_draw,
    speck_layer,
    speck_survival,
)
from .polarity import Polarity, canonical_polarity

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

KINDS: tuple[str, ...] = ("dust", "hair", "scratch", "blotch")


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
        p_light: probability of light polarity when ``polarity="any"``.
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
        for name in (
            "dust_density",
            "hair_rate",
            "scratch_rate",
            "blotch_rate",
            "mix_jitter",
            "cluster_fraction",
            "loop_probability",
            "tint_probability",
            "tint_strength",
            "p_light",
            "softness",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("cluster_fraction", "loop_probability", "tint_probability", "p_light", "softness"):
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


def _resolve_polarity(polarity: str, rng: np.random.Generator, p: DamageParams) -> str:
    """``dark`` or ``light``: ``polarity`` itself, or for ``any`` (:mod:`~filmclean.train.polarity`;
    legacy words accepted) one drawn from ``rng`` (light with probability ``p.p_light``)."""
    polarity = canonical_polarity(polarity)
    if polarity == "any":
        return "light" if rng.random() < p.p_light else "dark"
    return polarity


def make_scratch_tracks(
    rng: np.random.Generator | int,
    height: int,
    width: int,
    n_frames: int = 1,
    params: DamageParams | None = None,
    amount: float | None = None,
    count: int | None = None,
    size_factor: float = 1.0,
) -> list[ScratchTrack]:
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
    return draw_scratch_tracks(g, height, width, n_frames, p, amt, count, size_factor)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def render_damage(
    height: int,
    width: int,
    rng: np.random.Generator | int,
    params: DamageParams | None = None,
    polarity: Polarity = "dark",
    *,
    amount: float | None = None,
    scratch_tracks: Sequence[ScratchTrack] | None = None,
    frame: int = 0,
    size_factor: float | None = None,
) -> DamageMap:
    """Draw one damage pattern for a (height, width) image.

    Args:
        height, width: image size in px (>= 1).
        rng: Generator (advanced in place) or int seed; the result is a pure function of the seed.
        params: damage parameters; defaults if None.
        polarity: "dark", "light" or "any" (light with probability ``params.p_light``).
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
        size_factor = size_factor_draw(g, p)
    scale = image_scale(height, width, p) * float(size_factor)
    mult = np.exp(g.normal(0.0, p.mix_jitter, 4)) if p.mix_jitter > 0 else np.ones(4)
    area = area_factor(height, width, scale, p)
    rates = (
        np.array([p.dust_density * speck_survival(0.5 / scale, p), p.hair_rate, p.scratch_rate, p.blotch_rate])
        * area
        * mult
        * amt
    )
    counts = [int(g.poisson(rate)) for rate in rates]
    if scratch_tracks is not None:
        tracks = [t for t in scratch_tracks if t.active(frame)]
        counts[2] = len(tracks)
    else:
        tracks = draw_scratch_tracks(g, height, width, 1, p, amt, count=counts[2], size_factor=size_factor)
    if sum(counts) == 0 and rates.sum() > 0:
        kind = int(g.choice(4, p=rates / rates.sum()))
        counts[kind] = 1
        if kind == 2:
            tracks = draw_scratch_tracks(g, height, width, 1, p, amt, count=1, size_factor=size_factor)
    layers = _draw_layers(g, height, width, counts, tracks, frame, scale, p)
    alpha, trans = _combine_layers(layers, height, width, p)
    return DamageMap(
        alpha=alpha,
        transmittance=trans,
        polarity=pol,
        amount=amt,  # type: ignore[arg-type]
        counts=dict(zip(KINDS, counts)),
    )


def _draw_layers(
    g: np.random.Generator,
    height: int,
    width: int,
    counts: list[int],
    tracks: Sequence[ScratchTrack],
    frame: int,
    scale: float,
    p: DamageParams,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(opacity, residual RGB)`` of each kind of damage, in :data:`KINDS` order, softened."""
    soft_sigma = p.softness * max(scale, 0.35)
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    dust = speck_layer(g, height, width, counts[0], scale, p)
    layers.append((blur(dust, soft_sigma * g.uniform(0.4, 1.2)), residual(g, p, False)))
    hair = hair_layer(g, height, width, counts[1], scale, p)
    layers.append((blur(hair, soft_sigma * g.uniform(0.3, 1.0)), residual(g, p, False)))
    scr = np.zeros((height, width), np.float32)
    for track in tracks:
        np.maximum(scr, track.render(height, width, frame, g), out=scr)
    layers.append((blur(scr, soft_sigma * g.uniform(0.2, 0.8)), residual(g, p, False)))
    blot = blotch_layer(g, height, width, counts[3], scale, p)
    layers.append((blur(blot, soft_sigma * g.uniform(0.5, 1.5)), residual(g, p, True)))
    return layers


def _combine_layers(
    layers: list[tuple[np.ndarray, np.ndarray]], height: int, width: int, p: DamageParams
) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, transmittance)`` of the layers stacked: opacities below ``p.min_opacity`` dropped,
    transmittances multiplied; exactly 0 and 1 where there is no damage."""
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
    return alpha, cv2.merge(planes)


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


def dustify(
    clean: np.ndarray, rng: np.random.Generator | int, params: DamageParams | None = None, polarity: Polarity = "dark"
) -> tuple[np.ndarray, np.ndarray]:
    """Add random dust, hairs, scratches and dirt to a clean image.

    Args:
        clean: (H, W, 3) float image in [0, 1].
        rng: Generator (advanced in place) or int seed. The same seed gives bit-identical output.
        params: damage parameters (defaults if None); the amount is drawn per call unless
            ``params.amount`` is set.
        polarity: "dark" (slides/prints: damage darkens, near black), "light" (negatives: damage
            lightens, near white) or "any" (either, drawn per call).

    Returns:
        ``(damaged, mask)``: (H, W, 3) float32 in [0, 1] and (H, W) float32 in [0, 1]; see
        :func:`apply_damage` for the exact mask contract.
    """
    img = _check_image(clean)
    dmg = render_damage(img.shape[0], img.shape[1], rng, params, polarity)
    return apply_damage(img, dmg)


def dustify_batch(
    images: torch.Tensor, seed: int, params: DamageParams | None = None, polarity: Polarity = "dark"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Damage a batch of torch images (for on-the-fly training).

    Args:
        images: torch tensor (N, 3, H, W), float in [0, 1], on any device.
        seed: int; image ``i`` uses ``np.random.SeedSequence(seed).spawn(N)[i]``, so the result is
            deterministic for a seed and image ``i`` does not depend on the other images.
        params: damage parameters (amount and, for "any", polarity drawn per image).
        polarity: "dark", "light" or "any".

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


def dustify_sequence(
    frames: Sequence[np.ndarray],
    seed: int | np.random.Generator,
    params: DamageParams | None = None,
    polarity: Polarity = "dark",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Damage a sequence of frames like a dirty film strip.

    Scratches are drawn once per sequence as :class:`ScratchTrack` s, persist over many frames,
    drift slowly in x and flicker slightly; dust, hairs and blotches are drawn independently in
    every frame. The amount and the polarity (for "any") are drawn once per sequence.

    Args:
        frames: (H, W, 3) float images in [0, 1], all of the same size.
        seed: int seed or Generator.
        params: damage parameters.
        polarity: "dark", "light" or "any".

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
    factor = size_factor_draw(g, p)
    tracks = make_scratch_tracks(g, h, w, len(imgs), p, amt, size_factor=factor)
    frame_seeds = g.integers(0, 2**63 - 1, len(imgs))
    damaged, masks = [], []
    for t, (img, fs) in enumerate(zip(imgs, frame_seeds)):
        dmg = render_damage(
            h,
            w,
            np.random.default_rng(int(fs)),
            p,
            pol,
            amount=amt,  # type: ignore[arg-type]
            scratch_tracks=tracks,
            frame=t,
            size_factor=factor,
        )
        d, m = apply_damage(img, dmg)
        damaged.append(d)
        masks.append(m)
    return damaged, masks
