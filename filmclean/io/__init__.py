"""Media input/output: still images and image sequences (:mod:`.images`, with the per-format codecs in
:mod:`.formats`), video files (:mod:`.video` reads, :mod:`.video_write` writes, :mod:`.pixfmt`
converts pixel formats, :mod:`.matroska` reads Matroska durations).

Frame contract shared by images and video: pixels travel as C-contiguous ``float32`` arrays of shape
``(H, W, 3)``, RGB, where an N-bit integer sample ``v`` becomes ``v / (2**N - 1)`` (so the range is
``[0, 1]`` and ``np.round(x * (2**N - 1))`` gives back the exact integers). Floating-point sources
(EXR, float TIFF) carry their stored values unchanged, which may lie outside ``[0, 1]``.

This module holds what images and video share: the conversions between that contract and integer
samples / PyAV frames, output-path checks and atomic replacement, the minimum frame size, and
turning library exceptions into one-line reasons.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from filmclean.errors import OutputError

MIN_SIDE = 8
"""Smallest accepted width and height in pixels; anything smaller cannot be a film frame."""

Bits = int | Literal["half", "float"]
"""Sample depth: 8, 10, 12, 14 or 16 for integer samples; ``"half"``/``"float"`` for 16/32-bit floats."""


def error_reason(exc: BaseException) -> str:
    """A one-line description of a library exception, without the file name it may quote.

    FFmpeg errors (``av.FFmpegError``) carry the bare reason in ``strerror``; other exceptions use
    their message, or their class name when the message is empty.
    """
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (same inode, or the same resolved path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output_path(path: str | Path, *, source: str | Path | None = None, force: bool = False) -> Path:
    """Validate that ``path`` may be written and return it as a :class:`Path`.

    Raises :class:`OutputError` when ``path`` is the same file as ``source``, is a folder, exists
    and ``force`` is false, or when its folder does not exist or is not writable.
    """
    path = Path(path)
    if source is not None and same_file(path, source):
        raise OutputError("output is the same file as the input; refusing to overwrite the original", path)
    if path.is_dir():
        raise OutputError("output is a folder, expected a file name", path)
    if path.exists() and not force:
        raise OutputError("output already exists (pass --force to overwrite)", path)
    folder = path.absolute().parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable", path)
    return path


def partial_path(final: str | Path) -> Path:
    """The temporary name under which ``final`` is written before it is renamed into place:
    ``.<stem>.partial-<host>-<pid>-<random><suffix>`` in the same folder. Hidden (so a folder scan
    never takes it for an image), keeping the extension (a muxer is chosen by it), and naming the
    process that writes it, so that a later run can tell a partial left by a killed run from one
    still being written (:func:`remove_stale_partials`)."""
    final = Path(final)
    return final.with_name(f".{final.stem}.partial-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{final.suffix}")


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_PARTIAL = re.compile(r"^\.(?P<stem>.*)\.partial-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>.*)$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_partials(folder: str | Path, final: str | Path | None = None) -> int:
    """Delete the partial files (:func:`partial_path`) in ``folder`` -- of ``final`` only, when given --
    whose writer was a process of this machine that no longer runs (a run killed by SIGKILL or a
    power cut). Partials of live processes (a concurrent run) and of other machines are left alone.
    Returns how many were removed; never raises for an unreadable folder."""
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        m = _PARTIAL.match(entry.name)
        if m is None or m["host"] != _HOST or _process_alive(int(m["pid"])):
            continue
        if final is not None and (m["stem"], m["suffix"]) != (Path(final).stem, Path(final).suffix):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    return removed


def replace_file(tmp: Path, final: Path) -> None:
    """Atomically rename ``tmp`` to ``final`` (same folder); on failure delete ``tmp`` and raise
    :class:`OutputError` naming ``final``."""
    try:
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot create output: {error_reason(exc)}", final) from None


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a :func:`partial_path` in the same folder and
    :func:`os.replace`, so ``path`` is either absent/old or complete. Raises :class:`OutputError`
    on I/O failure; the partial file is removed whatever happens (Ctrl-C, SIGTERM included)."""
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write output: {error_reason(exc)}", path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_file(tmp, path)


# --------------------------------------------------------------------------- samples <-> float


def max_value(bits: Bits) -> int:
    """``2**bits - 1`` for integer depths; 1 for float depths (no scaling)."""
    return (1 << bits) - 1 if isinstance(bits, int) else 1


_CHUNK_PIXELS = 1 << 20
"""Conversions between samples and floats run over bands of about this many pixels, so that their
temporary arrays stay small whatever the frame's size (a 100-megapixel scan is 1.2 GB as float32)."""


def _row_bands(height: int, width: int) -> Iterator[slice]:
    step = max(1, _CHUNK_PIXELS // max(1, width))
    for r0 in range(0, height, step):
        yield slice(r0, min(height, r0 + step))


def to_float(samples: np.ndarray, bits: Bits) -> np.ndarray:
    """Integer samples -> C-contiguous float32 ``v / (2**bits - 1)``; float samples -> float32 unchanged."""
    out = np.empty(samples.shape, np.float32)
    scale = np.float32(max_value(bits))
    for rows in _row_bands(samples.shape[0], samples.shape[1] if samples.ndim > 1 else 1):
        out[rows] = samples[rows]
        if isinstance(bits, int):
            out[rows] /= scale
    return out


def from_float(values: np.ndarray, bits: Bits) -> np.ndarray:
    """Inverse of :func:`to_float`: ``round(clip(x, 0, 1) * (2**bits - 1))`` as uint8 (bits <= 8)
    or uint16, exact for values produced by :func:`to_float`; float depths return float32 unchanged."""
    if not isinstance(bits, int):
        return np.asarray(values, dtype=np.float32)
    out = np.empty(values.shape, np.uint8 if bits <= 8 else np.uint16)
    scale = np.float32(max_value(bits))
    for rows in _row_bands(values.shape[0], values.shape[1] if values.ndim > 1 else 1):
        out[rows] = np.round(np.clip(values[rows], 0.0, 1.0) * scale)
    return out


def split_channels(samples: np.ndarray, bits: Bits) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """``(H, W, C)`` (or ``(H, W)``) samples with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)
    -> ``(rgb float32 (H, W, 3), alpha float32 (H, W) | None, grey)``; grey is repeated into 3 channels.
    Raises ``ValueError`` for other channel counts."""
    if samples.ndim == 2:
        samples = samples[:, :, None]
    channels = samples.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"{channels} channels per pixel are not supported")
    grey = channels <= 2
    colour = np.broadcast_to(samples[:, :, :1], (*samples.shape[:2], 3)) if grey else samples[:, :, :3]
    alpha = to_float(samples[:, :, -1], bits) if channels in (2, 4) else None
    return to_float(colour, bits), alpha, grey


def join_channels(rgb: np.ndarray, alpha: np.ndarray | None, grey: bool, bits: Bits) -> np.ndarray:
    """Inverse of :func:`split_channels`: ``(H, W, C)`` samples at ``bits`` (C as there).

    ``grey`` stores the mean of the three channels (computed in float64, so three equal channels
    give back exactly their value)."""
    height, width = rgb.shape[:2]
    colour_channels = 1 if grey else 3
    dtype = from_float(np.zeros((1, 1), np.float32), bits).dtype
    out = np.empty((height, width, colour_channels + (alpha is not None)), dtype)
    for rows in _row_bands(height, width):
        colour = rgb[rows]
        if grey:
            colour = colour.astype(np.float64).mean(axis=2, keepdims=True).astype(np.float32)
        out[rows, :, :colour_channels] = from_float(colour, bits)
        if alpha is not None:
            out[rows, :, colour_channels] = from_float(alpha[rows], bits)
    return out


# --------------------------------------------------------------------------- samples <-> PyAV frames

_PACKED_FORMATS = frozenset({"rgb24", "rgba", "rgb48le", "rgb48be", "rgba64le", "rgba64be", "ya8", "ya16le", "ya16be"})


def _sample_dtype(fmt: av.VideoFormat) -> np.dtype:
    bits = fmt.components[0].bits
    kind = "f" if ("f16" in fmt.name or "f32" in fmt.name) else "u"
    size = 1 if bits <= 8 else (2 if bits <= 16 else 4)
    return np.dtype(f"{'>' if fmt.is_big_endian else '<'}{kind}{size}")


def direct_format(pix_fmt: str) -> bool:
    """Whether :func:`frame_samples` / :func:`make_frame` handle ``pix_fmt`` natively (no colour
    conversion): planar or packed RGB(A) in R,G,B order, grey(+alpha), integer or float."""
    fmt = av.VideoFormat(pix_fmt)
    if fmt.is_bayer or fmt.has_palette or fmt.is_bit_stream:
        return False
    if not (fmt.is_rgb or pix_fmt.startswith(("gray", "ya"))):
        return False
    return fmt.is_planar or len(fmt.components) == 1 or pix_fmt in _PACKED_FORMATS


def _plane_view(plane: Any, dtype: np.dtype, width: int, height: int, per_pixel: int) -> np.ndarray:
    """Writable ``(height, width, per_pixel)`` view of one frame plane (row padding dropped)."""
    row = plane.line_size // dtype.itemsize
    flat = np.frombuffer(plane, dtype=dtype, count=row * height)
    return flat.reshape(height, row)[:, : width * per_pixel].reshape(height, width, per_pixel)


def frame_samples(frame: av.VideoFrame) -> tuple[np.ndarray, Bits]:
    """Native samples of a decoded frame as ``(H, W, C)`` in RGB(A) or grey(+alpha) order, with
    their depth (integer bits, or ``"half"``/``"float"``). Palette and 1-bit frames are expanded to
    8-bit RGB(A)/grey. Raises ``ValueError`` for YUV and other layouts (see :func:`direct_format`)."""
    name = frame.format.name
    if name == "pal8":
        index, palette = frame.to_ndarray()
        argb = palette[index]
        rgba = argb[..., [1, 2, 3]] if bool((argb[..., 0] == 255).all()) else argb[..., [1, 2, 3, 0]]
        return np.ascontiguousarray(rgba), 8
    if name in ("monob", "monow"):
        return frame.reformat(format="gray").to_ndarray()[:, :, None], 8
    if not direct_format(name):
        raise ValueError(f"pixel layout {name} is not supported (only RGB and greyscale are)")
    fmt = frame.format
    dtype = _sample_dtype(fmt)
    if fmt.is_planar or len(fmt.components) == 1:
        planes = [_plane_view(frame.planes[c.plane], dtype, frame.width, frame.height, 1) for c in fmt.components]
        samples = np.concatenate(planes, axis=2)
    else:
        samples = _plane_view(frame.planes[0], dtype, frame.width, frame.height, len(fmt.components))
    bits: Bits = fmt.components[0].bits
    if dtype.kind == "f":
        bits = "half" if dtype.itemsize == 2 else "float"
    return samples.astype(dtype.newbyteorder("="), copy=True), bits


def make_frame(samples: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A new ``pix_fmt`` frame (a :func:`direct_format`) holding ``(H, W, C)`` samples given in
    RGB(A)/grey(+alpha) order, C matching the format's component count."""
    height, width, _ = samples.shape
    frame = av.VideoFrame(width, height, pix_fmt)
    fmt = frame.format
    dtype = _sample_dtype(fmt)
    if fmt.is_planar or len(fmt.components) == 1:
        for i, comp in enumerate(fmt.components):
            _plane_view(frame.planes[comp.plane], dtype, width, height, 1)[:, :, 0] = samples[:, :, i]
    else:
        _plane_view(frame.planes[0], dtype, width, height, len(fmt.components))[:] = samples
    return frame
