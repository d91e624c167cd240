"""The segment duration of a Matroska/WebM file, read from its EBML header.

:func:`matroska_duration` gives the duration the muxer wrote into the file's Info element when it
finished the file: what :class:`filmclean.io.video.VideoReader` compares the packets with to spot a
truncated Matroska/WebM file, which declares no frame count (FFmpeg's own duration may be an
estimate from the bit rate where the header has none).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

# Matroska EBML element ids: Segment, its Info and Cluster children, Info's TimestampScale/Duration
_MKV_SEGMENT, _MKV_INFO, _MKV_CLUSTER = 0x18538067, 0x1549A966, 0x1F43B675
_MKV_TIMESTAMP_SCALE, _MKV_DURATION = 0x2AD7B1, 0x4489
_MKV_HEAD_BYTES = 1 << 20  # the Info element precedes the clusters, normally in the first KiB


def _ebml_number(data: bytes, pos: int, *, is_id: bool) -> tuple[int, int]:
    """The EBML variable-length number at ``pos`` and the position after it: an element id (length
    marker kept) or a data size (marker removed; -1 for "unknown size"). ``ValueError`` if invalid."""
    if pos >= len(data) or data[pos] == 0:
        raise ValueError("invalid EBML number")
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        raise ValueError("EBML number past the data")
    value = int.from_bytes(data[pos : pos + length], "big")
    if not is_id:
        value &= (1 << (7 * length)) - 1
        if value == (1 << (7 * length)) - 1:
            value = -1
    return value, pos + length


def _ebml_elements(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(id, data start, data end)`` of the EBML elements from ``pos`` to ``end``; an element of
    unknown size extends to ``end``; stops at the first element that does not fit ``data``."""
    while pos < end:
        try:
            element, pos = _ebml_number(data, pos, is_id=True)
            size, pos = _ebml_number(data, pos, is_id=False)
        except ValueError:
            return
        stop = end if size < 0 else pos + size
        yield element, pos, min(stop, len(data))
        if stop > len(data):
            return
        pos = stop


def matroska_duration(path: str | Path) -> Fraction | None:
    """The segment duration in seconds written in a Matroska/WebM file's Info element (the muxer
    fills it in when it finishes the file), or ``None`` when the file has none (written as a
    stream, or not finished) or is not Matroska."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(_MKV_HEAD_BYTES)
    except OSError:
        return None
    for element, start, end in _ebml_elements(data, 0, len(data)):
        if element != _MKV_SEGMENT:
            continue
        for child, c_start, c_end in _ebml_elements(data, start, end):
            if child == _MKV_CLUSTER:
                return None  # no Info before the media data
            if child == _MKV_INFO:
                return _info_duration(data, c_start, c_end)
        return None
    return None


def _info_duration(data: bytes, start: int, end: int) -> Fraction | None:
    """The duration in seconds stated by the Info element whose data spans ``start`` to ``end``;
    ``None`` when it states none (or an invalid one)."""
    scale, duration = 1_000_000, None  # TimestampScale default: 1 ms in ns
    for item, i_start, i_end in _ebml_elements(data, start, end):
        raw = data[i_start:i_end]
        if item == _MKV_TIMESTAMP_SCALE and raw:
            scale = int.from_bytes(raw, "big")
        elif item == _MKV_DURATION and len(raw) in (4, 8):
            duration = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
    if duration is None or not math.isfinite(duration) or duration <= 0 or scale <= 0:
        return None
    return Fraction(duration) * scale / 10**9
