"""Test pairs of the still-image evaluation: dustify pair sets, plain folders of pairs, and full-size
clean images damaged on the fly (see :func:`open_pairs`).

Images are listed and read as ``filmclean dustify`` and ``filmclean train`` list and read them: a
folder of clean images is listed by :func:`filmclean.train.dustify.list_images`, and every format
those commands take can be read (:func:`read_rgb`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "DAMAGE_SOURCES",
    "with_heldout_damage",
    "FULL_SIZE_SALT",
    "Pair",
    "PairSet",
    "open_pairs",
    "read_rgb",
    "readable_image_exts",
    "size_label",
]

#: salt of the per-image seed used by ``--size full`` (see :func:`open_pairs`)
FULL_SIZE_SALT = 0xF17E
#: salt of the per-image seed of the training generator's damage (:func:`with_film_damage`)
FILM_SALT = 0xF11A


@dataclass(frozen=True)
class Pair:
    """One test pair: ``clean`` and ``damaged`` ``(H, W, 3)`` float32 in ``[0, 1]``; ``mask``
    ``(H, W)`` bool (True = damaged) or ``None`` when the true damage is unknown; ``kinds``: the mask
    of each kind of damage (:data:`filmclean.evaluation.heldout.KINDS`) when the damage was drawn here."""

    name: str
    clean: np.ndarray
    damaged: np.ndarray
    mask: np.ndarray | None
    kinds: dict[str, np.ndarray] | None = None  # per kind of damage, where known (held-out damage)


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


def size_label(settings: Mapping[str, Any]) -> str:
    """How the size of a pair set (its ``settings["size"]``) reads in titles: ``256 px``, ``full-size images``."""
    size = str(settings.get("size"))
    return f"{size} px" if size.isdigit() else ("full-size images" if size == "full" else size)


# ------------------------------------------------------------------------------------------------
# image files


def readable_image_exts() -> frozenset[str]:
    """Lower-case extensions :func:`read_rgb` reads: filmclean's still formats
    (:data:`filmclean.io.images.SUPPORTED_EXTS`) and those dustify and train take
    (:data:`filmclean.train.dustify.IMAGE_EXTENSIONS`)."""
    from ..io.images import SUPPORTED_EXTS
    from ..train.dustify import IMAGE_EXTENSIONS

    return SUPPORTED_EXTS | IMAGE_EXTENSIONS


def read_rgb(path: Path) -> tuple[np.ndarray, int | None]:
    """An image file as ``(H, W, 3)`` float32 RGB clipped to ``[0, 1]``, and its integer bit depth
    (``None`` for floating-point files).

    Formats filmclean restores (PNG, TIFF, DPX, EXR, JPEG) are read by
    :func:`filmclean.io.images.read_image`; the others dustify and train take (BMP, WebP) as
    training reads them, by :func:`filmclean.train.data.read_image` (OpenCV decodes both to 8 bits).
    Raises :class:`InputError` for an unreadable file.
    """
    from ..io.images import SUPPORTED_EXTS, read_image

    if path.suffix.lower() in SUPPORTED_EXTS:
        data = read_image(path)
        rgb = np.ascontiguousarray(np.clip(data.rgb, 0.0, 1.0), dtype=np.float32)
        return rgb, data.bits if isinstance(data.bits, int) else None
    from ..train.data import read_image as read_training_image

    return read_training_image(path), 8


def _image_files(folder: Path) -> dict[str, Path]:
    """``{name: path}`` of the readable images directly in ``folder`` (hidden files skipped)."""
    exts = readable_image_exts()
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in exts and not path.name.startswith("."):
            if path.stem in found:
                raise InputError(f"two images are named {path.stem!r} ({found[path.stem].name}, {path.name})", folder)
            found[path.stem] = path
    return found


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


def _select(
    names: Sequence[str],
    split: str,
    split_names: Sequence[str] | None,
    limit: int | None,
    wanted: Sequence[str] | None,
    where: Path,
) -> list[str]:
    """The names to evaluate: ``wanted``, else the test split when asked for and known, else all;
    the first ``limit`` of them."""
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
        chosen = chosen[: max(0, int(limit))]
    if not chosen:
        raise InputError("no pairs to evaluate (empty selection)", where)
    return chosen


# ------------------------------------------------------------------------------------------------
# stored pairs: dustify layout or a plain folder


def _pair_from_files(name: str, clean: Path, damaged: Path, mask: Path | None) -> Pair:
    c, _ = read_rgb(clean)
    d, _ = read_rgb(damaged)
    if c.shape != d.shape:
        raise InputError(f"damaged image is {d.shape[1]}x{d.shape[0]}, clean is {c.shape[1]}x{c.shape[0]}", damaged)
    m = None
    if mask is not None:
        mimg, _ = read_rgb(mask)
        if mimg.shape[:2] != c.shape[:2]:
            raise InputError(f"mask is {mimg.shape[1]}x{mimg.shape[0]}, clean is {c.shape[1]}x{c.shape[0]}", mask)
        m = np.ascontiguousarray(mimg.max(axis=-1) > 0)
    return Pair(name, c, d, m)


def _pair_folder(root: Path, size: str) -> tuple[Path, str]:
    """The folder holding ``clean/`` and ``damaged/`` and its mode (``"pairs"`` or ``"folder"``)."""
    if (root / size / "clean").is_dir():
        base, mode = root / size, "pairs"
    elif (root / "clean").is_dir():
        base, mode = root, "folder"
    else:
        sizes = sorted(
            (p.name for p in root.iterdir() if p.is_dir() and (p / "clean").is_dir()),
            key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n),
        )
        hint = f" (sizes here: {', '.join(sizes)})" if sizes else ""
        raise InputError(f"no {size}/clean/ or clean/ folder{hint}", root)
    for sub in ("clean", "damaged"):
        if not (base / sub).is_dir():
            raise InputError(f"missing the {sub}/ folder", base)
    return base, mode


def _open_stored(root: Path, size: str, split: str, limit: int | None, wanted: Sequence[str] | None) -> PairSet:
    """Pairs stored as files: ``root/<size>/{clean,damaged[,mask]}/`` or ``root/{clean,damaged[,mask]}/``."""
    manifest = _read_manifest(root)
    base, mode = _pair_folder(root, size)
    clean = _image_files(base / "clean")
    damaged = _image_files(base / "damaged")
    masks = _image_files(base / "mask") if (base / "mask").is_dir() else {}
    common = sorted(set(clean) & set(damaged))
    if not common:
        raise InputError("no image name is in both clean/ and damaged/", base)
    split_list = None
    if manifest is not None and isinstance(manifest.get("splits"), dict):
        split_list = manifest["splits"].get("test")
    chosen = _select(common, split, split_list, limit, wanted, base)
    has_masks = all(n in masks for n in chosen)

    def load(name: str) -> Pair:
        return _pair_from_files(name, clean[name], damaged[name], masks.get(name) if has_masks else None)

    eff_split = split if (split == "all" or split_list is not None or wanted) else "all (no manifest split)"
    settings: dict[str, Any] = {
        "pairs_dir": str(root),
        "mode": mode,
        "size": size if mode == "pairs" else "as stored",
        "folder": str(base),
        "split": "names given" if wanted else eff_split,
        "unpaired_clean": len(set(clean) - set(damaged)),
        "unpaired_damaged": len(set(damaged) - set(clean)),
    }
    return PairSet(root, mode, settings["size"], settings["split"], chosen, has_masks, settings, load)


# ------------------------------------------------------------------------------------------------
# full-size clean images damaged on the fly


@dataclass
class _FullSource:
    """Where ``--size full`` takes its clean images and how it damages them."""

    clean_dir: Path
    files: dict[str, Path]
    split_list: list[str] | None
    seed: int
    polarity: str
    params: Any
    names_from: str


def _damage_params_from_manifest(params: Mapping[str, Any] | None) -> Any:
    from ..train.synth import DamageParams

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


def _full_source(root: Path) -> _FullSource:
    """The manifest's ``clean_dir`` originals and damage settings, or ``root`` as a folder of clean
    images (listed as dustify lists them; ``test_list.txt`` in it is the test split)."""
    from ..train.dustify import list_images

    manifest = _read_manifest(root)
    if manifest is not None:
        clean_dir = Path(str(manifest.get("clean_dir", "")))
        images = manifest.get("images") or {}
        if not clean_dir.is_dir():
            raise InputError(
                f"--size full needs the full-size clean images; the manifest's clean_dir {clean_dir} is missing",
                root / "manifest.json",
            )
        files = {n: clean_dir / str(info.get("file", "")) for n, info in images.items()}
        return _FullSource(
            clean_dir,
            files,
            (manifest.get("splits") or {}).get("test"),
            int(manifest.get("seed", 0)),
            str(manifest.get("polarity", "dark")),
            _damage_params_from_manifest(manifest.get("params")),
            "manifest",
        )
    if not any(p.is_file() for p in root.iterdir()):
        raise InputError("--size full needs a dustify manifest.json or a folder of clean images", root)
    files = list_images(root)
    split_list = None
    test_list = root / "test_list.txt"
    if test_list.is_file():
        from ..train.corpus import read_name_list

        split_list = read_name_list(test_list)
    return _FullSource(
        root,
        files,
        split_list,
        0,
        "dark",
        _damage_params_from_manifest(None),
        "folder" + (" + test_list.txt" if split_list is not None else ""),
    )


def _damaged_full(path: Path, name: str, seed: int, params: Any, polarity: str) -> Pair:
    """The clean image at ``path`` and its damaged version (seeded by ``seed`` and ``name``)."""
    from ..train.synth import dustify

    clean, bits = read_rgb(path)
    rng = np.random.default_rng(_full_seed(seed, name))
    damaged, _ = dustify(clean, rng, params, polarity)
    if bits is not None:  # back onto the file's integer grid, as dustify's 8-bit pairs are
        top = np.float32(2**bits - 1)
        damaged = np.rint(damaged * top) / top
    damaged = np.ascontiguousarray(damaged, dtype=np.float32)
    return Pair(name, clean, damaged, np.ascontiguousarray((damaged != clean).any(axis=-1)))


def _open_full(root: Path, split: str, limit: int | None, wanted: Sequence[str] | None) -> PairSet:
    src = _full_source(root)
    from filmclean.train.polarity import canonical_polarity

    try:
        polarity = canonical_polarity(src.polarity)
    except ValueError:
        raise InputError(f"unknown damage polarity {src.polarity!r} in the manifest", root) from None
    names = _select(list(src.files), split, src.split_list, limit, wanted, root)

    def load(name: str) -> Pair:
        return _damaged_full(src.files[name], name, src.seed, src.params, polarity)

    settings: dict[str, Any] = {
        "pairs_dir": str(root),
        "mode": "full",
        "size": "full",
        "clean_dir": str(src.clean_dir),
        "split": split if src.split_list is not None or split == "all" else "all (no split information)",
        "names_from": src.names_from,
        "damage_seed": src.seed,
        "damage_polarity": polarity,
        "damage": (
            "full-size clean images damaged on the fly with filmclean.train.synth.dustify, seed per image "
            "= SeedSequence([seed, 0xF17E, first 8 bytes of sha256(name)]), the manifest's damage parameters "
            "and polarity when present; integer images are rounded back to their bit depth and the mask is "
            "where the rounded damaged image differs from the clean one"
        ),
    }
    return PairSet(root, "full", "full", settings["split"], names, True, settings, load)


def open_pairs(
    pairs_dir: str | Path,
    size: str | int = "256",
    split: str = "test",
    limit: int | None = None,
    names: Sequence[str] | None = None,
) -> PairSet:
    """Find the test pairs under ``pairs_dir``.

    Layouts, tried in this order:

    1. ``size == "full"``: full-size clean images, damaged on the fly by
       :func:`filmclean.train.synth.dustify` with a fixed seed per image (so whole images go through
       the model's tiling). With a dustify ``manifest.json`` the images are the manifest's
       ``clean_dir`` originals and its damage parameters, polarity and seed are used; otherwise
       ``pairs_dir`` is itself a folder of clean images (listed as dustify lists them;
       ``test_list.txt`` in it, if present, is the test split). Like dustify's 8-bit pairs, a
       damaged image read from an N-bit file is rounded to N bits, and its mask is where it
       differs from the clean image.
    2. dustify pairs: ``pairs_dir/<size>/{clean,damaged[,mask]}/<name>.<ext>``.
    3. a plain folder: ``pairs_dir/{clean,damaged[,mask]}/`` (``size`` is ignored).

    Pairs are matched by file name without extension; masks count (``has_masks``) only if every
    selected pair has one (``> 0`` = damaged). ``split="test"`` takes the manifest's
    ``splits.test`` names when a manifest is present (else every pair, noted in ``settings``);
    ``split="all"`` takes every pair. ``names`` overrides the split; ``limit`` keeps the first
    ``limit`` names in sorted order. Any format of :func:`readable_image_exts` is read.

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
    return _open_stored(root, size, split, limit, names)


DAMAGE_SOURCES = ("stored", "heldout")
"""Where the damage of a pair set comes from: ``stored`` -- as the pairs have it (dustify's files,
or the training generator for ``--size full``); ``heldout`` -- drawn afresh on each pair's clean
image by :func:`filmclean.evaluation.heldout.damage_heldout`, the generator never used for training."""


def with_heldout_damage(pairs: PairSet, seed: int = 0, sprites_only: bool = False) -> PairSet:
    """``pairs`` with every clean image damaged by the held-out generator instead (seeded by ``seed``
    and the pair's name, so every model sees the same damage), with per-kind masks.

    ``sprites_only``: every artefact is a held-out FilmDamageSimulator sprite (where the sprite folder
    is present), none drawn procedurally."""
    from .heldout import HeldoutParams, damage_heldout

    params = HeldoutParams(sprite_fraction=1.0) if sprites_only else HeldoutParams()

    def load(name: str) -> Pair:
        clean = pairs.load(name).clean
        digest = hashlib.sha256(name.encode()).digest()
        dmg = damage_heldout(clean, int.from_bytes(digest[:4], "little") ^ (int(seed) & 0xFFFFFFFF), params)
        return Pair(name, clean, dmg.damaged, dmg.mask, dict(dmg.masks))

    kind = "heldout sprites" if sprites_only else "heldout"
    settings = {**pairs.settings, "damage": kind, "damage_seed": int(seed)}
    return PairSet(pairs.root, pairs.mode, pairs.size, pairs.split, list(pairs.names), True, settings, load)


def with_film_damage(pairs: PairSet, seed: int = 0) -> PairSet:
    """``pairs`` with every clean image damaged by the training generator of the film-damage
    detectors (:func:`filmclean.train.filmdamage.film_damage_kinds`, default parameters, without the
    share it borrows from the older ``synth`` generator: those are the ``stored`` pairs), seeded by
    ``seed`` and the pair's name, with per-kind masks. Its target may carry added film grain: that
    grainy picture is the pair's clean image, so grain is scored as picture to keep. Changes of at most
    :data:`~filmclean.train.filmdamage.VISIBLE` are undone, as in the held-out pairs."""
    from ..train.filmdamage import VISIBLE, FilmDamageParams, film_damage_kinds

    params = FilmDamageParams(p_synth=0.0)

    def load(name: str) -> Pair:
        clean = pairs.load(name).clean
        digest = hashlib.sha256(name.encode()).digest()
        rng = np.random.default_rng([int.from_bytes(digest[:4], "little"), int(seed) & 0xFFFFFFFF, FILM_SALT])
        target, damaged, change, kinds = film_damage_kinds(clean, rng, params, "any")
        visible = change > VISIBLE
        damaged = np.where(visible[..., None], damaged, target)  # as the held-out pairs: visible damage only
        return Pair(name, target, np.ascontiguousarray(damaged, dtype=np.float32), visible, kinds)

    settings = {**pairs.settings, "damage": "film (training generator)", "damage_seed": int(seed)}
    return PairSet(pairs.root, pairs.mode, pairs.size, pairs.split, list(pairs.names), True, settings, load)


def crops_of(pairs: PairSet, size: int, per_image: int, seed: int = 0) -> PairSet:
    """``per_image`` square crops of side ``size`` of every pair (clean, damaged and masks cut alike),
    at positions seeded by ``seed`` and the pair's name, named ``NAME@X,Y``.

    Damage drawn on the whole image keeps its scan-scale sizes in the crops (a hair 5 px wide stays
    5 px wide), unlike damage drawn on a downscaled picture; each crop goes through a model alone.
    In an image smaller than ``size`` the crops are squares of its short side."""
    if size < 16 or per_image < 1:
        raise ValueError(f"crops need size >= 16 and at least one per image, got {size}, {per_image}")
    cache: dict[str, Pair] = {}

    def whole(name: str) -> Pair:
        if name not in cache:
            cache.clear()  # one whole image at a time: its crops are consecutive
            cache[name] = pairs.load(name)
        return cache[name]

    def positions(name: str) -> list[tuple[int, int, int]]:
        pair = whole(name)
        h, w = pair.clean.shape[:2]
        side = min(size, h, w)
        digest = hashlib.sha256(f"{name}/{int(seed)}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return [
            (int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1)), side) for _ in range(per_image)
        ]

    names: list[str] = []
    where: dict[str, tuple[str, int, int, int]] = {}
    for name in pairs.names:
        for x, y, side in dict.fromkeys(positions(name)):
            crop = f"{name}@{x},{y}"
            names.append(crop)
            where[crop] = (name, x, y, side)

    def load(crop: str) -> Pair:
        name, x, y, side = where[crop]
        p = whole(name)
        cut = (slice(y, y + side), slice(x, x + side))
        kinds = None if p.kinds is None else {k: np.ascontiguousarray(m[cut]) for k, m in p.kinds.items()}
        mask = None if p.mask is None else np.ascontiguousarray(p.mask[cut])
        return Pair(crop, np.ascontiguousarray(p.clean[cut]), np.ascontiguousarray(p.damaged[cut]), mask, kinds)

    settings = {
        **pairs.settings,
        "size": str(size),
        "crops": f"{per_image} crops of {size} px per image",
        "crop_seed": seed,
    }
    return PairSet(pairs.root, pairs.mode, str(size), pairs.split, names, pairs.has_masks, settings, load)
