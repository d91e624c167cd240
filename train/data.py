"""Training data: dustify pairs on disk, or clean photos damaged on the fly; the paper's augmentations.

Every dataset item is a dict of CPU tensors::

    {"input": (3, S, S) float32 [0, 1]   damaged image,
     "target": (3, S, S) float32 [0, 1]  clean image,
     "mask": (1, S, S) float32 [0, 1]    damage mask,
     "index": int}

Determinism. Nothing here touches a global random generator. Every random choice made for item
``i`` of epoch ``e`` (crop, damage, augmentation) comes from :func:`sample_rng` ``(seed, e, i,
stream)``, a NumPy ``Generator`` seeded through ``SeedSequence``; so an item is a pure function of
``(files, seed, epoch, index)``, whatever the worker process, batch order or resume point.

Augmentations (training only; probabilities and ranges as listed in Ivanova et al. 2022, sec. 3.4,
realised the way fastai v1 defines them): horizontal flip (p 0.5); symmetric perspective warp,
magnitude U(-0.25, 0.25) per corner pair (p 0.75); zoom by U(1, 1.5) about a random centre (p
0.75); brightness U(0.25, 0.75) and contrast log-U(0.5, 2) applied in logit space,
``sigmoid(logit(x) * contrast + logit(brightness))`` (p 0.75 each). The geometric ones are
combined into one homography and resample input, target and mask together (bilinear, reflection
padding), so they stay aligned; lighting changes input and target identically and leaves the mask.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from filmclean.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

#: epoch number used for validation items (fixed damage, no augmentation)
VALID_EPOCH = 2**31 - 1

# random streams of one item
STREAM_CROP, STREAM_DAMAGE, STREAM_AUGMENT = 0, 1, 2


def sample_rng(seed: int, epoch: int, index: int, stream: int) -> np.random.Generator:
    """The NumPy generator for one random stream of one item (pure function of its arguments)."""
    entropy = [int(seed), int(epoch), int(index), int(stream)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


# -- image files ------------------------------------------------------------------------------


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read an image file as float32 ``[0, 1]``: ``(H, W, 3)`` RGB for ``channels=3``, ``(H, W)`` for 1.

    8- and 16-bit files are scaled by their type's maximum; grey images are repeated to RGB, alpha
    is dropped; colour images read with ``channels=1`` are averaged. Raises
    :class:`~filmclean.errors.InputError` if the file cannot be read.
    """
    import cv2

    path = Path(path)
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError("cannot read image", path)
    if arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 65535.0
    elif arr.dtype in (np.float32, np.float64):
        img = np.clip(arr.astype(np.float32), 0.0, 1.0)
    else:
        raise InputError(f"unsupported image sample type {arr.dtype}", path)
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.shape[2] == 3:
            img = img[:, :, ::-1]  # BGR -> RGB
        elif img.shape[2] == 1:
            img = img[:, :, 0]
    if channels == 3:
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3:
        img = img.mean(axis=2)
    return np.ascontiguousarray(img, dtype=np.float32)


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking, bilinear when enlarging (float32 in and out)."""
    import cv2

    if img.shape[1] == width and img.shape[0] == height:
        return img
    shrink = width < img.shape[1] or height < img.shape[0]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(out, dtype=np.float32)


def _to_chw(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


# -- augmentation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentParams:
    """Probabilities and ranges of the training augmentations (defaults: the paper's)."""

    flip_p: float = 0.5
    warp_p: float = 0.75
    warp_magnitude: float = 0.25
    zoom_p: float = 0.75
    zoom_max: float = 1.5
    brightness_p: float = 0.75
    brightness_range: tuple[float, float] = (0.25, 0.75)
    contrast_p: float = 0.75
    contrast_range: tuple[float, float] = (0.5, 2.0)


PAPER_AUGMENT = AugmentParams()


@dataclass(frozen=True)
class AugmentDraw:
    """The random decisions for one item (all drawn, in a fixed order, whether used or not)."""

    flip: bool
    warp: tuple[float, float, float, float] | None
    zoom: tuple[float, float, float] | None  # (scale, centre x pct, centre y pct)
    brightness: float | None
    contrast: float | None

    @classmethod
    def draw(cls, rng: np.random.Generator, p: AugmentParams = PAPER_AUGMENT) -> AugmentDraw:
        u = rng.random(5)
        warp = tuple(float(v) for v in rng.uniform(-p.warp_magnitude, p.warp_magnitude, 4))
        zoom = (float(rng.uniform(1.0, p.zoom_max)), float(rng.random()), float(rng.random()))
        brightness = float(rng.uniform(*p.brightness_range))
        contrast = float(math.exp(rng.uniform(math.log(p.contrast_range[0]), math.log(p.contrast_range[1]))))
        return cls(
            flip=bool(u[0] < p.flip_p),
            warp=warp if u[1] < p.warp_p else None,  # type: ignore[arg-type]
            zoom=zoom if u[2] < p.zoom_p else None,
            brightness=brightness if u[3] < p.brightness_p else None,
            contrast=contrast if u[4] < p.contrast_p else None,
        )


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 projective map taking the four points ``src`` (4, 2) to ``dst`` (4, 2) (float64)."""
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for k, ((x, y), (u, v)) in enumerate(zip(src, dst, strict=True)):
        a[2 * k] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * k + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * k], b[2 * k + 1] = u, v
    h = np.linalg.solve(a, b)
    return np.append(h, 1.0).reshape(3, 3)


def sampling_matrix(draw: AugmentDraw) -> np.ndarray | None:
    """The homography from output to input coordinates (normalised to [-1, 1], x right, y down)
    for the geometric part of ``draw``; ``None`` when there is none (pure flips are done exactly)."""
    if draw.warp is None and draw.zoom is None:
        return None
    m = np.eye(3)
    if draw.flip:
        m = np.diag([-1.0, 1.0, 1.0]) @ m
    if draw.warp is not None:
        m0, m1, m2, m3 = draw.warp
        corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
        # each corner moves outwards (or inwards) by amounts shared symmetrically between corners
        moved = np.array([[-1 - m3, -1 - m1], [-1 - m2, 1 + m1], [1 + m3, -1 - m0], [1 + m2, 1 + m0]])
        m = _homography(corners, moved) @ m
    if draw.zoom is not None:
        scale, px, py = draw.zoom
        cx, cy = (2 * px - 1) * (1 - 1 / scale), (2 * py - 1) * (1 - 1 / scale)
        m = np.array([[1 / scale, 0, cx], [0, 1 / scale, cy], [0, 0, 1]]) @ m
    return m


def warp_images(stack: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """Resample ``stack`` (C, H, W) with the output->input homography ``matrix`` (normalised coords,
    pixel centres as in ``align_corners=False``), bilinear with reflection padding."""
    _, h, w = stack.shape
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1) @ torch.from_numpy(matrix).T
    grid = (pts[..., :2] / pts[..., 2:3]).to(torch.float32)
    out = F.grid_sample(stack[None], grid[None], mode="bilinear", padding_mode="reflection", align_corners=False)
    return out[0]


def lighting(img: torch.Tensor, brightness: float | None, contrast: float | None, eps: float = 1e-4) -> torch.Tensor:
    """``sigmoid(logit(x) * contrast + logit(brightness))`` (identity when both are None)."""
    if brightness is None and contrast is None:
        return img
    z = torch.logit(img.clamp(eps, 1 - eps))
    if contrast is not None:
        z = z * contrast
    if brightness is not None:
        z = z + math.log(brightness / (1 - brightness))
    return torch.sigmoid(z)


def augment(
    inp: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, draw: AugmentDraw
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply ``draw`` to one item: geometry to input, target and mask alike; lighting to input and
    target (not the mask). Tensors are (3, H, W), (3, H, W), (1, H, W); returns new tensors."""
    stack = torch.cat([inp, target, mask], dim=0)
    matrix = sampling_matrix(draw)
    if matrix is not None:
        stack = warp_images(stack, matrix).clamp(0.0, 1.0)
    elif draw.flip:
        stack = torch.flip(stack, dims=[2])
    inp, target, mask = stack[:3], stack[3:6], stack[6:7]
    inp = lighting(inp, draw.brightness, draw.contrast)
    target = lighting(target, draw.brightness, draw.contrast)
    return inp.contiguous(), target.contiguous(), mask.contiguous()


def _crop_square(img: np.ndarray, side: int, rng: np.random.Generator | None) -> np.ndarray:
    """A ``side x side`` crop: random position from ``rng``, or centred when ``rng`` is None."""
    h, w = img.shape[:2]
    if rng is None:
        y, x = (h - side) // 2, (w - side) // 2
    else:
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
    return img[y : y + side, x : x + side]


# -- pairs data set ---------------------------------------------------------------------------


def read_manifest(pairs_dir: str | Path) -> dict[str, Any]:
    """``<pairs_dir>/manifest.json`` as a dict (must have ``splits``)."""
    path = Path(pairs_dir) / "manifest.json"
    if not path.is_file():
        raise InputError("pairs data set has no manifest.json", path)
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"manifest is not valid JSON ({exc})", path) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise InputError("manifest has no 'splits' object", path)
    return manifest


class PairsDataset(Dataset):
    """Matched clean/damaged/mask PNGs of one size from a dustify pairs data set.

    Items are ``<pairs_dir>/<size>/{damaged,clean,mask}/<name>.png`` for the names of
    ``manifest.json``'s ``splits[split]`` minus ``exclude``, in manifest order. Images larger than
    ``size`` are cropped to ``size x size`` (randomly when ``augment``, centred otherwise); smaller
    ones are an error. A missing mask folder gives all-zero masks. With ``augment`` the paper's
    augmentations are applied, seeded by ``(seed, epoch, index)``; call :meth:`set_epoch` before
    each epoch.
    """

    def __init__(
        self,
        pairs_dir: str | Path,
        size: int,
        split: str,
        *,
        exclude: Sequence[str] = (),
        augment: bool = False,
        seed: int = 0,
        epoch: int = 0,
        augment_params: AugmentParams = PAPER_AUGMENT,
    ) -> None:
        self.root = Path(pairs_dir)
        self.size = int(size)
        self.split = split
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.augment_params = augment_params
        manifest = read_manifest(self.root)
        if split not in manifest["splits"]:
            raise InputError(f"manifest has no split {split!r}", self.root / "manifest.json")
        excluded = set(exclude)
        self.names = [str(n) for n in manifest["splits"][split] if str(n) not in excluded]
        self.dir = self.root / str(self.size)
        for sub in ("clean", "damaged"):
            if not (self.dir / sub).is_dir():
                raise InputError(f"pairs data set has no {self.size}/{sub} folder", self.dir / sub)
        self.has_mask = (self.dir / "mask").is_dir()
        for name in self.names:
            for sub in ("clean", "damaged") + (("mask",) if self.has_mask else ()):
                if not (self.dir / sub / f"{name}.png").is_file():
                    raise InputError(f"pair {name!r} lacks its {sub} image", self.dir / sub / f"{name}.png")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        damaged = read_image(self.dir / "damaged" / f"{name}.png")
        clean = read_image(self.dir / "clean" / f"{name}.png")
        if damaged.shape != clean.shape:
            raise InputError(
                f"pair {name!r}: damaged and clean images differ in size", self.dir / "damaged" / f"{name}.png"
            )
        if self.has_mask:
            mask = read_image(self.dir / "mask" / f"{name}.png", channels=1)
            if mask.shape != clean.shape[:2]:
                raise InputError(f"pair {name!r}: mask size differs from the image", self.dir / "mask" / f"{name}.png")
        else:
            mask = np.zeros(clean.shape[:2], np.float32)
        h, w = clean.shape[:2]
        if h < self.size or w < self.size:
            raise InputError(
                f"pair {name!r} is {w}x{h}, smaller than the training size {self.size}",
                self.dir / "clean" / f"{name}.png",
            )
        if h != self.size or w != self.size:
            crop_rng = sample_rng(self.seed, self.epoch, index, STREAM_CROP) if self.augment else None
            stack = _crop_square(np.concatenate([damaged, clean, mask[:, :, None]], axis=2), self.size, crop_rng)
            damaged, clean, mask = stack[:, :, :3], stack[:, :, 3:6], stack[:, :, 6]
        inp, target, m = _to_chw(damaged), _to_chw(clean), _to_chw(mask)
        if self.augment:
            draw = AugmentDraw.draw(sample_rng(self.seed, self.epoch, index, STREAM_AUGMENT), self.augment_params)
            inp, target, m = augment(inp, target, m, draw)
        return {"input": inp, "target": target, "mask": m, "index": int(index)}


# -- clean photos, damaged on the fly -----------------------------------------------------------


def clean_image_paths(clean_dir: str | Path) -> dict[str, Path]:
    """File stem -> path of the images directly in ``clean_dir``, sorted by stem (an error if two
    share a stem)."""
    clean_dir = Path(clean_dir)
    if not clean_dir.is_dir():
        raise InputError("clean image folder not found", clean_dir)
    names: dict[str, Path] = {}
    for p in sorted(clean_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in names:
                raise InputError(f"two images share the name {p.stem!r} ({names[p.stem].name}, {p.name})", clean_dir)
            names[p.stem] = p
    return dict(sorted(names.items()))


def list_clean_names(clean_dir: str | Path) -> list[str]:
    """Sorted file stems of the images directly in ``clean_dir`` (an error if two share a stem)."""
    return list(clean_image_paths(clean_dir))


def split_names(names: Sequence[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/valid split: ``round(len * valid_fraction)`` names (at least one when the
    fraction is positive and there are two or more names) chosen by ``seed``; both lists keep the
    order of ``names``."""
    names = list(names)
    n_valid = int(round(len(names) * valid_fraction))
    if valid_fraction > 0 and n_valid == 0 and len(names) >= 2:
        n_valid = 1
    n_valid = min(n_valid, max(0, len(names) - 1))
    perm = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x5E1]))).permutation(len(names))
    valid = set(perm[:n_valid].tolist())
    return [n for i, n in enumerate(names) if i not in valid], [n for i, n in enumerate(names) if i in valid]


class OnTheFlyDataset(Dataset):
    """Clean photographs cropped, resized to ``size`` and damaged by ``synth.dustify`` on the fly.

    ``len = len(names) * crops_per_image``; item ``i`` uses photo ``names[i // crops_per_image]``.
    ``damage``: ``synth`` (:func:`filmclean.train.synth.dustify`, mask = opacity) or ``film``
    (:func:`filmclean.train.filmdamage.film_damage` with ``film_params``, mask = visible change; the
    target may carry added grain). Training items (``validation=False``): a square crop of side ``u * short_side`` with ``u ~
    U(crop_scale)`` (or, with ``crop_zoom``, of side ``min(short_side, size / z)`` with ``z``
    log-uniform in ``crop_zoom``) at a random position (a share ``p_hard`` of them near one of
    ``hard_points``, name -> ``(u, v)`` fractions of the width and height), resized to ``size``, damaged with ``dustify(clean,
    rng, synth_params, polarity)``, then (with ``augment``) the paper's augmentations; all random
    streams derive from ``(seed, epoch, i)``. Validation items: the centred square of the full
    short side, damage seeded with ``(seed, VALID_EPOCH, i)``, no augmentation, so the same every
    epoch.

    Decoded photos are kept in memory (per process) reduced to the smallest resolution any crop
    needs, up to ``cache_bytes`` in total.
    """

    def __init__(
        self,
        clean_dir: str | Path,
        size: int,
        names: Sequence[str],
        seed: int,
        polarity: str = "dark",
        epoch: int = 0,
        *,
        augment: bool = False,
        validation: bool = False,
        crops_per_image: int = 1,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        crop_zoom: tuple[float, float] | None = None,
        hard_points: dict[str, list[tuple[float, float]]] | None = None,
        p_hard: float = 0.0,
        synth_params: dict[str, Any] | None = None,
        clean_fraction: float = 0.0,
        augment_params: AugmentParams = PAPER_AUGMENT,
        cache_bytes: int = 4 << 30,
        damage: str = "synth",
        film_params: dict[str, Any] | None = None,
    ) -> None:
        if damage not in ("synth", "film"):
            raise InputError(f"damage must be 'synth' or 'film', got {damage!r}")
        self.damage = damage
        self._film_params = None
        if damage == "film":
            from .filmdamage import FilmDamageParams, add_grain, film_damage

            self._film_damage, self._add_grain = film_damage, add_grain
            try:
                self._film_params = FilmDamageParams.from_dict(film_params)
            except (TypeError, ValueError) as exc:
                raise InputError(f"invalid film_params: {exc}") from None
        try:
            from .synth import DamageParams, dustify
        except ImportError as exc:
            raise InputError(f"on-the-fly damage needs filmclean.train.synth ({exc})") from None
        self._dustify = dustify
        try:
            self._damage_params = (
                None
                if synth_params is None
                else DamageParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in synth_params.items()})
            )
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid synth_params: {exc}") from None
        self.root = Path(clean_dir)
        self.size = int(size)
        self.names = list(names)
        self.seed = int(seed)
        self.polarity = polarity
        self.epoch = int(epoch)
        self.augment = bool(augment) and not validation
        self.validation = bool(validation)
        self.crops_per_image = int(crops_per_image)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_zoom = None if crop_zoom is None else (float(crop_zoom[0]), float(crop_zoom[1]))
        self._reduced: dict[str, float] = {}  # name -> cached short side / the photo's own
        self.hard_points = {k: list(v) for k, v in (hard_points or {}).items() if v}
        self.p_hard = float(p_hard)
        self.synth_params = synth_params
        self.clean_fraction = float(clean_fraction)
        self.augment_params = augment_params
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[str, np.ndarray] = {}
        self._cached = 0
        self.paths: dict[str, Path] = {}
        if not self.root.is_dir():
            raise InputError("clean image folder not found", self.root)
        available = {p.stem: p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
        for name in self.names:
            if name not in available:
                raise InputError(f"no image named {name!r}", self.root)
            self.paths[name] = available[name]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names) * self.crops_per_image

    def _photo(self, name: str) -> np.ndarray:
        img = self._cache.get(name)
        if img is not None:
            return img
        img = read_image(self.paths[name])
        short = min(img.shape[:2])
        if self.crop_zoom is not None and not self.validation:
            # the largest zoom maps size / zoom[1] photo pixels to `size`: keep that resolution
            keep = int(math.ceil(short * min(1.0, self.crop_zoom[1])))
        else:
            # the smallest crop is crop_scale[0] * short pixels mapped to `size`: keep enough resolution
            keep = int(math.ceil(self.size / (1.0 if self.validation else self.crop_scale[0])))
        self._reduced[name] = 1.0
        if short > keep:
            f = keep / short
            img = resize(img, max(keep, int(round(img.shape[1] * f))), max(keep, int(round(img.shape[0] * f))))
            self._reduced[name] = min(img.shape[:2]) / short
        if self._cached + img.nbytes <= self.cache_bytes:
            self._cache[name] = img
            self._cached += img.nbytes
        return img

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index // self.crops_per_image]
        photo = self._photo(name)
        short = min(photo.shape[:2])
        epoch = VALID_EPOCH if self.validation else self.epoch
        if self.validation:
            crop = _crop_square(photo, short, None)
        else:
            rng = sample_rng(self.seed, epoch, index, STREAM_CROP)
            if self.crop_zoom is not None:
                lo, hi = self.crop_zoom
                zoom = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                side = max(1, min(short, int(round(self.size * self._reduced[name] / zoom))))
            else:
                side = max(1, min(short, int(round(short * rng.uniform(*self.crop_scale)))))
            hard = self.hard_points.get(name) if self.p_hard > 0 else None
            if hard and rng.random() < self.p_hard:  # centred near a false detection (hardneg)
                u, v = hard[int(rng.integers(len(hard)))]
                h, w = photo.shape[:2]
                cx = u * w + rng.uniform(-side / 3, side / 3)
                cy = v * h + rng.uniform(-side / 3, side / 3)
                y = int(np.clip(round(cy - side / 2), 0, h - side))
                x = int(np.clip(round(cx - side / 2), 0, w - side))
                crop = photo[y : y + side, x : x + side]
            else:
                crop = _crop_square(photo, side, rng)
        clean = np.clip(resize(crop, self.size, self.size), 0.0, 1.0).astype(np.float32)
        damage_rng = sample_rng(self.seed, epoch, index, STREAM_DAMAGE)
        if self.clean_fraction > 0 and not self.validation and damage_rng.random() < self.clean_fraction:
            if self._film_params is not None and damage_rng.random() < self._film_params.p_grain:
                clean = self._add_grain(clean, damage_rng, float(damage_rng.uniform(*self._film_params.grain_strength)))
            damaged, mask = clean, np.zeros(clean.shape[:2], np.float32)  # an undamaged sample
        elif self._film_params is not None:
            clean, damaged, mask = self._film_damage(clean, damage_rng, self._film_params, polarity=self.polarity)
        else:
            damaged, mask = self._dustify(clean, damage_rng, params=self._damage_params, polarity=self.polarity)
        inp = _to_chw(np.asarray(damaged, dtype=np.float32))
        target = _to_chw(clean)
        m = _to_chw(np.asarray(mask, dtype=np.float32))
        if self.augment:
            draw = AugmentDraw.draw(sample_rng(self.seed, epoch, index, STREAM_AUGMENT), self.augment_params)
            inp, target, m = augment(inp, target, m, draw)
        return {"input": inp, "target": target, "mask": m, "index": int(index)}


__all__ = [
    "AugmentDraw",
    "AugmentParams",
    "OnTheFlyDataset",
    "PAPER_AUGMENT",
    "PairsDataset",
    "VALID_EPOCH",
    "augment",
    "list_clean_names",
    "read_image",
    "read_manifest",
    "sample_rng",
    "split_names",
]
