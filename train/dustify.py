"""Build the paper's paired "dustified" data set from a folder of clean images.

As in Ivanova et al. (VISAPP 2022, section 3.2): every clean image is resized with area
interpolation so that its shorter side equals the target size, centre-cropped to a square, and
damaged with a pattern that is drawn anew for every target size; the set is split 8:1:1 into
training, validation and test images by image name. Damage comes from the procedural model in
:mod:`filmclean.train.synth` instead of the paper's overlay textures.

Layout written by :func:`build_pairs`::

    OUT/<size>/clean/<name>.png     8-bit RGB
    OUT/<size>/damaged/<name>.png   8-bit RGB
    OUT/<size>/mask/<name>.png      8-bit grey, damage opacity * 255; > 0 exactly where the
                                    damaged PNG differs from the clean PNG
    OUT/manifest.json               sizes, seed, polarity, split lists, per-pair damage SSIM ...

Every file is written atomically (:func:`filmclean.io.write_bytes_atomically`: a hidden partial
name, then a rename); the manifest is written last, so a directory without ``manifest.json``
holds an unfinished build.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputError
from ..io import write_bytes_atomically
from .polarity import canonical_polarity
from .synth import DamageParams, apply_damage, render_damage

__all__ = [
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "build_pairs",
    "list_images",
    "split_names",
    "resize_center_crop",
    "dustify_pair",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "filmclean-dustified-pairs"
MANIFEST_VERSION = 1
SPLITS = ("train", "valid", "test")


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`filmclean.io.write_bytes_atomically`), creating
    its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, data)


def list_images(clean_dir: str | Path) -> dict[str, Path]:
    """``{name: path}`` of the image files directly inside ``clean_dir``, sorted by name.

    The name is the file name without extension. Raises :class:`InputError` (one line) if the
    directory is missing, is not a directory, holds no images, or two files share a name.
    """
    folder = Path(clean_dir)
    if not folder.exists():
        raise InputError("clean-image directory does not exist", folder)
    if not folder.is_dir():
        raise InputError("is not a directory", folder)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            if path.stem in found:
                raise InputError(f"two images are named {path.stem!r} ({found[path.stem].name}, {path.name})", folder)
            found[path.stem] = path
    if not found:
        raise InputError("no images found (expected " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")", folder)
    return dict(sorted(found.items()))


def split_names(
    names: Iterable[str],
    split: Sequence[float] = (8, 1, 1),
    seed: int = 0,
    test_names: Iterable[str] = (),
    groups: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Split image names into train/valid/test.

    Names of the same group (``groups[name]``; a name is its own group by default) always land in
    the same split. Groups holding any of ``test_names`` go to test. The other groups are shuffled
    with ``seed`` and dealt out in turn: to test while it holds fewer than
    ``round(N * test / sum(split))`` names, then to valid likewise, then to train.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``, each sorted; disjoint and covering
        ``names``. Depends only on the set of names, the ratio, the seed, test names and groups.
    """
    names = sorted(set(names))
    if len(split) != 3 or any(float(r) < 0 for r in split) or float(sum(split)) <= 0:
        raise ValueError(f"split must be three non-negative numbers with a positive sum: {split}")
    total = float(sum(split))
    n = len(names)
    target_test = round(n * float(split[2]) / total)
    target_valid = round(n * float(split[1]) / total)
    groups = dict(groups or {})
    members: dict[str, list[str]] = {}
    for name in names:
        members.setdefault(groups.get(name, name), []).append(name)
    forced = set(test_names)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    free = []
    for group in sorted(members):
        if forced.intersection(members[group]):
            out["test"].extend(members[group])
        else:
            free.append(group)
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED])).permutation(len(free))
    for i in order:
        group = free[int(i)]
        if len(out["test"]) < target_test:
            out["test"].extend(members[group])
        elif len(out["valid"]) < target_valid:
            out["valid"].extend(members[group])
        else:
            out["train"].extend(members[group])
    return {s: sorted(v) for s, v in out.items()}


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so that the shorter side is ``size`` (area interpolation), then centre-crop to
    ``size`` x ``size``. Works on (H, W) or (H, W, C) arrays of any cv2 dtype."""
    import cv2

    h, w = image.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(image[y0 : y0 + size, x0 : x0 + size])


def _name_seed(seed: int, size: int, name: str) -> np.random.SeedSequence:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return np.random.SeedSequence([int(seed) & (2**63 - 1), int(size), int.from_bytes(digest[:8], "little")])


def dustify_pair(
    clean8: np.ndarray, seed: np.random.SeedSequence | int, params: DamageParams | None = None, polarity: str = "dark"
) -> tuple[np.ndarray, np.ndarray, dict[str, float | str]]:
    """Damage one 8-bit RGB image and quantise the result to 8 bits.

    Args:
        clean8: (H, W, 3) uint8 RGB.
        seed: seed of the damage pattern.
        params: damage parameters.
        polarity: "dark", "light" or "any" (:mod:`~filmclean.train.polarity`).

    Returns:
        ``(damaged8, mask8, info)``: (H, W, 3) uint8, (H, W) uint8 with ``mask8 > 0`` exactly where
        ``damaged8`` differs from ``clean8`` (value ``round(opacity * 255)``, at least 1 there), and
        ``{"ssim", "polarity", "amount", "damaged_fraction"}``: SSIM of the 8-bit pair (skimage,
        7x7 window, data range 255, channels averaged), polarity and amount used, and the
        fraction of changed pixels.
    """
    from skimage.metrics import structural_similarity

    clean = clean8.astype(np.float32) * np.float32(1.0 / 255.0)
    damage = render_damage(clean8.shape[0], clean8.shape[1], np.random.default_rng(seed), params, polarity)  # type: ignore[arg-type]
    damaged, mask = apply_damage(clean, damage)
    damaged8 = np.clip(np.rint(damaged * 255.0), 0, 255).astype(np.uint8)
    changed = (damaged8 != clean8).any(axis=-1)
    mask8 = np.where(changed, np.clip(np.rint(mask * 255.0), 1, 255), 0).astype(np.uint8)
    side = min(clean8.shape[:2])
    if side < 3:
        raise ValueError(f"image too small for SSIM: {clean8.shape[:2]}")
    win = min(7, side if side % 2 else side - 1)  # skimage's default 7 unless the image is tinier
    ssim = float(structural_similarity(clean8, damaged8, channel_axis=-1, data_range=255, win_size=win))
    info: dict[str, float | str] = {
        "ssim": round(ssim, 5),
        "polarity": damage.polarity,
        "amount": round(damage.amount, 5),
        "damaged_fraction": round(float(changed.mean()), 5),
    }
    return damaged8, mask8, info


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OutputError("could not encode PNG", path)
    try:
        _write_file(path, buf.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from exc


def _read_rgb8(path: Path) -> np.ndarray:
    import cv2

    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from exc
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError("not a readable image", path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def build_pairs(
    clean_dir: str | Path,
    out_dir: str | Path,
    sizes: Sequence[int] = (64, 128, 256),
    seed: int = 0,
    polarity: str = "dark",
    split: Sequence[float] = (8, 1, 1),
    test_names: Iterable[str] = (),
    *,
    groups: Mapping[str, str] | None = None,
    params: DamageParams | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write clean/damaged/mask PNG triplets at every size and a manifest; return the manifest.

    Args:
        clean_dir: folder of clean images (png, jpg, tif, bmp, webp; not recursive).
        out_dir: output folder (created).
        sizes: square output sizes in px, e.g. (64, 128, 256).
        seed: master seed. The pattern of (name, size) depends only on seed, size and name, so it
            is independent of the other images and of their order.
        polarity: "dark" (slides/prints), "light" (negatives) or "any" (each pair is dark or light
            with probability 1/2, whatever ``params.p_light`` says; the one used is in the
            manifest). The older word "both" means "any" (:mod:`~filmclean.train.polarity`); the
            manifest records the word given.
        split: train:valid:test ratio; see :func:`split_names`.
        test_names: names (file names without extension) forced into the test split; names not in
            ``clean_dir`` are listed under ``test_list_missing`` in the manifest.
        groups: optional ``{name: group}``; a group is never split across train/valid/test.
        params: damage parameters (defaults if None).
        overwrite: allow writing into a folder that already has a manifest (the old manifest is
            removed first; files of names not in this build are left alone).
        progress: called with each image name after its pairs are written.

    Returns:
        The manifest dict also written to ``out_dir/manifest.json``.

    Raises:
        InputError: missing/empty/unreadable input, bad sizes, polarity or split.
        OutputError: the output cannot be written, is the input folder, or holds a manifest and
            ``overwrite`` is False.
    """
    images = list_images(clean_dir)
    size_list = sorted({int(s) for s in sizes})
    if not size_list or size_list[0] < 8:
        raise InputError(f"sizes must be integers >= 8, got {list(sizes)}")
    p, pol = _pair_damage(params, polarity)
    try:
        parts = split_names(images, split, seed, test_names, groups)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    out = _prepare_output(Path(clean_dir), Path(out_dir), overwrite)
    split_of = {name: s for s, names in parts.items() for name in names}
    per_image: dict[str, dict] = {}
    for name, path in images.items():
        rgb = _read_rgb8(path)
        pairs = {
            str(size): _write_pair(out, name, rgb, size, _name_seed(seed, size, name), p, pol) for size in size_list
        }
        per_image[name] = {
            "file": path.name,
            "split": split_of[name],
            "group": (groups or {}).get(name, name),
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "pairs": pairs,
        }
        if progress is not None:
            progress(name)
    forced = sorted(set(test_names))
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "clean_dir": str(Path(clean_dir).resolve()),
        "sizes": size_list,
        "seed": int(seed),
        "polarity": polarity,
        "split_ratio": [float(x) for x in split],
        "splits": parts,
        "test_list": forced,
        "test_list_missing": sorted(set(forced) - set(images)),
        "layout": "<size>/{clean,damaged,mask}/<name>.png",
        "ssim_summary": _ssim_summary(per_image, size_list),
        "images": per_image,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()},
    }
    if manifest["test_list_missing"]:
        warnings.warn(f"{len(manifest['test_list_missing'])} test-list names are not in {clean_dir}", stacklevel=2)
    _write_manifest(out / MANIFEST_NAME, manifest)
    return manifest


def _pair_damage(params: DamageParams | None, polarity: str) -> tuple[DamageParams, str]:
    """The damage parameters and polarity every pair is drawn with: for ``any``, light with
    probability 1/2 (``p_light`` overridden). Raises :class:`InputError` for an unknown polarity."""
    try:
        pol = canonical_polarity(polarity)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    p = params or DamageParams()
    if pol == "any":
        p = replace(p, p_light=0.5)
    return p, pol


def _prepare_output(clean_dir: Path, out: Path, overwrite: bool) -> Path:
    """Check ``out`` (a folder, not ``clean_dir``, without a manifest unless ``overwrite``, which
    deletes it) and create it. Raises :class:`OutputError`."""
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is not a directory", out)
    if out.exists() and out.resolve() == clean_dir.resolve():
        raise OutputError("output directory must differ from the clean-image directory", out)
    manifest_path = out / MANIFEST_NAME
    if manifest_path.exists():
        if not overwrite:
            raise OutputError("already holds a data set (manifest.json); use --overwrite", out)
        manifest_path.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror or exc}", out) from exc
    return out


def _write_pair(
    out: Path, name: str, rgb: np.ndarray, size: int, seed: np.random.SeedSequence, params: DamageParams, polarity: str
) -> dict[str, float | str]:
    """Resize and crop ``rgb`` to ``size``, damage it (:func:`dustify_pair`), write the clean,
    damaged and mask PNGs of ``name`` under ``out/<size>/``; returns the pair's manifest info."""
    clean8 = resize_center_crop(rgb, size)
    damaged8, mask8, info = dustify_pair(clean8, seed, params, polarity)
    base = out / str(size)
    _write_png(base / "clean" / f"{name}.png", clean8)
    _write_png(base / "damaged" / f"{name}.png", damaged8)
    _write_png(base / "mask" / f"{name}.png", mask8)
    return info


def _ssim_summary(per_image: Mapping[str, dict], sizes: Sequence[int]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, minimum and maximum of the pairs' damage SSIM at each size."""
    summary = {}
    for size in sizes:
        vals = np.array([info["pairs"][str(size)]["ssim"] for info in per_image.values()], float)
        summary[str(size)] = {
            "mean": round(float(vals.mean()), 4),
            "std": round(float(vals.std()), 4),
            "min": round(float(vals.min()), 4),
            "max": round(float(vals.max()), 4),
        }
    return summary


def _write_manifest(path: Path, manifest: dict) -> None:
    """Write ``manifest`` as JSON (last, so that a folder with a manifest holds a finished build)."""
    text = json.dumps(manifest, indent=1, allow_nan=False)
    try:
        _write_file(path, (text + "\n").encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from exc
