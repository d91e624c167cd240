"""Still images and image sequences: PNG, TIFF, DPX, OpenEXR, JPEG.

Reading gives an :class:`ImageData`: the picture as ``float32`` RGB ``(H, W, 3)`` (an N-bit
sample ``v`` becomes ``v / (2**N - 1)``; float formats keep their stored values, which may lie
outside ``[0, 1]``), an optional alpha plane, the bit depth, and the per-format metadata needed to
write the picture back in the same format, bit depth and layout. Writing with ``like=`` an input
image reproduces that format; integer formats round ``clip(x, 0, 1) * (2**N - 1)``, so an identity
pass gives back the exact integers. Greyscale inputs are expanded to 3 equal channels on read and
written back as greyscale (the mean of the channels). Pictures over :data:`MAX_PIXELS` pixels are
refused from their header, before decoding.

This module is the public API (listing, format names, :func:`read_image`, :func:`write_image`); the
codecs, the libraries they use, the metadata they carry over and their known limits are in
:mod:`filmclean.io.formats`.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from filmclean.errors import FilmcleanError, InputError, OutputError
from filmclean.io import MIN_SIDE, Bits, check_output_path, error_reason, split_channels, write_bytes_atomically
from filmclean.io.formats import LIBRARY_ERRORS, READERS, WRITERS, ImageTooLarge

SUPPORTED_EXTS: frozenset[str] = frozenset({".png", ".tif", ".tiff", ".dpx", ".exr", ".jpg", ".jpeg"})
"""Lower-case file extensions (with dot) that :func:`read_image` accepts."""

_FORMAT_BY_EXT = {
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dpx": "dpx",
    ".exr": "exr",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
}

MAX_PIXELS = 500_000_000
"""Largest picture :func:`read_image` decodes, in pixels (width x height): 500 megapixels.

Checked from the file header before any pixel is decoded, so a tiny file declaring an absurd size
(60000x60000) is refused instead of exhausting memory. The decoded frame alone takes 12 bytes per
pixel (``float32`` RGB), 6 GB at the limit, and restoration needs several such buffers. Real scans
stay well below: 35 mm at 4000 dpi is about 21 MP, 6x9 medium format about 130 MP, a 4x5-inch sheet
at 4000 dpi 320 MP."""


@dataclass
class ImageData:
    """One decoded image plus what is needed to write it back in the same format.

    - ``rgb``: ``float32`` ``(H, W, 3)`` C-contiguous RGB (see module docstring for scaling).
    - ``alpha``: ``float32`` ``(H, W)`` with the same scaling, or ``None``; written back unchanged.
    - ``bits``: 8/10/12/16 for integer samples, ``"half"``/``"float"`` for float samples.
    - ``fmt``: ``"png"``, ``"tiff"``, ``"dpx"``, ``"exr"`` or ``"jpeg"``.
    - ``grey``: the file stores one colour channel (``rgb`` holds it three times).
    - ``meta``: per-format write-back data: DPX ``header`` (bytes before the pixels), ``big_endian``,
      ``transfer``, ``colorimetric``, ``timecode`` (``"hh:mm:ss:ff"`` or ``None``), ``frame_rate``
      (float or ``None``); TIFF ``photometric``, ``planarconfig``, ``compression``, ``predictor``,
      ``extrasamples``, ``resolution``, ``resolutionunit``, ``tile``, ``rowsperstrip``, ``tags``
      (copied TIFF tags); PNG ``chunks`` (raw ancillary chunks, with whether they follow IDAT);
      EXR ``compression``; JPEG ``segments`` (raw APPn/COM segments), ``sampling``, ``quality``.
    - ``source``: the file it was read from (``None`` when built in memory).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bits: Bits
    fmt: str
    grey: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def is_float(self) -> bool:
        """Whether samples are floating point (stored values, not clipped to ``[0, 1]``)."""
        return self.bits in ("half", "float")


# --------------------------------------------------------------------------- listing


def _natural_key(path: Path) -> list[Any]:
    """Sort key putting ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", str(path))
    return [int(p) if p.isdigit() else p.lower() for p in parts] + [str(path)]


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_EXTS and not path.name.startswith(".")


def list_images(spec: str | Path) -> list[Path]:
    """The images named by ``spec``, in natural order (``frame2`` before ``frame10``).

    ``spec`` is a folder (its non-hidden files with a supported extension), a glob pattern
    (``scans/reel1_*.dpx``; matching files with a supported extension), or one image file.
    Raises :class:`InputError` when nothing matches, the file has an unsupported extension, or the
    path does not exist.
    """
    text = str(spec)
    path = Path(spec)
    exts = ", ".join(sorted(e.lstrip(".") for e in SUPPORTED_EXTS))
    if any(ch in text for ch in "*?["):
        found = [Path(p) for p in glob.glob(text)]
        images = [p for p in found if p.is_file() and _is_image_name(p)]
        if not images:
            raise InputError(f"no image files ({exts}) match the pattern", text)
        return sorted(images, key=_natural_key)
    if path.is_dir():
        images = [p for p in path.iterdir() if p.is_file() and _is_image_name(p)]
        if not images:
            raise InputError(f"folder contains no image files ({exts})", path)
        return sorted(images, key=_natural_key)
    if path.is_file():
        image_format(path)
        return [path]
    raise InputError("no such file or folder", path)


def image_format(path: str | Path) -> str:
    """The format name (``png``/``tiff``/``dpx``/``exr``/``jpeg``) for ``path``'s extension.

    Raises :class:`InputError` for an unsupported extension.
    """
    ext = Path(path).suffix.lower()
    if ext not in _FORMAT_BY_EXT:
        known = ", ".join(sorted(e.lstrip(".") for e in SUPPORTED_EXTS))
        raise InputError(f"unsupported image format {ext or '(no extension)'!r}; supported: {known}", path)
    return _FORMAT_BY_EXT[ext]


# --------------------------------------------------------------------------- public read/write

_FORMAT_TITLES = {"png": "PNG", "dpx": "DPX", "exr": "EXR", "tiff": "TIFF", "jpeg": "JPEG"}


def read_image(path: str | Path) -> ImageData:
    """Read one image file into an :class:`ImageData` (see its docstring for the contract).

    Raises :class:`InputError` (one line naming the file) for a missing, empty, corrupt or
    truncated file, an unsupported format or pixel layout, an image smaller than ``MIN_SIDE``
    pixels on a side, one whose header declares more than :data:`MAX_PIXELS` pixels (checked before
    decoding), or one that runs out of memory while decoding.
    """
    path = Path(path)
    fmt = image_format(path)
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a regular file", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {error_reason(exc)}", path) from None
    except MemoryError:
        raise InputError("not enough memory to read the file", path) from None
    if not data:
        raise InputError("file is empty (0 bytes)", path)
    title = _FORMAT_TITLES[fmt]
    try:
        samples, bits, meta = READERS[fmt](data, MAX_PIXELS)
        rgb, alpha, grey = split_channels(samples, bits)
    except FilmcleanError:
        raise
    except ImageTooLarge as exc:
        raise InputError(
            f"{title} image is {exc.width}x{exc.height} pixels ({exc.width * exc.height / 1e6:.0f} megapixels); "
            f"images over {MAX_PIXELS / 1e6:.0f} megapixels are refused",
            path,
        ) from None
    except MemoryError:
        raise InputError(f"not enough memory to decode this {title} image", path) from None
    except LIBRARY_ERRORS as exc:
        raise InputError(f"cannot read {title} image: {error_reason(exc)}", path) from None
    height, width = rgb.shape[:2]
    if height < MIN_SIDE or width < MIN_SIDE:
        raise InputError(f"image is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed", path)
    return ImageData(rgb=rgb, alpha=alpha, bits=bits, fmt=fmt, grey=grey, meta=meta, source=path)


def write_image(
    path: str | Path,
    image: ImageData | np.ndarray,
    like: ImageData | None = None,
    *,
    force: bool = False,
) -> Path:
    """Write ``image`` to ``path`` in the format, bit depth and layout of ``like`` and return ``path``.

    ``image`` is an :class:`ImageData` (``like`` defaults to it) or a ``float32`` ``(H, W, 3)`` RGB
    array of ``like``'s size, in which case ``like``'s alpha and metadata are used. The extension of
    ``path`` must name ``like``'s format. The file appears atomically (written to
    ``<name>.partial`` then renamed). Raises :class:`OutputError` when ``path`` is ``like``'s source
    file, exists and ``force`` is false, its folder is missing or unwritable, or the format cannot
    store the image; ``ValueError`` when the array does not match ``like``.
    """
    if isinstance(image, ImageData):
        like = like or image
        data = replace(like, rgb=image.rgb, alpha=image.alpha)
    else:
        if like is None:
            raise ValueError("write_image needs like= when given a bare array")
        if image.shape != like.rgb.shape:
            raise ValueError(f"image shape {image.shape} does not match the original {like.rgb.shape}")
        data = replace(like, rgb=np.asarray(image, dtype=np.float32))
    path = check_output_path(path, source=like.source, force=force)
    try:
        fmt = image_format(path)
    except InputError as exc:
        raise OutputError(str(exc)) from None
    if fmt != data.fmt:
        raise OutputError(f"extension {path.suffix!r} does not match the input format {_FORMAT_TITLES[data.fmt]}", path)
    try:
        encoded = WRITERS[fmt](data)
    except OutputError as exc:
        raise OutputError(str(exc), path) from None
    except LIBRARY_ERRORS as exc:
        raise OutputError(f"cannot encode {_FORMAT_TITLES[fmt]} image: {error_reason(exc)}", path) from None
    write_bytes_atomically(path, encoded)
    return path
