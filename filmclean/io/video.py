"""Video files through PyAV: probe, decode to float RGB frames, re-encode, copy the other streams.

- :func:`probe_video` describes a file (:class:`VideoInfo`) and proves its first frame decodes.
- :class:`VideoReader` yields, in demux order, :class:`VideoFrameItem` (decoded picture as float32
  RGB, see :mod:`filmclean.io`) and :class:`PacketItem` (untouched packets of the audio and
  subtitle streams), optionally limited to a time range.
- :class:`VideoWriter` encodes frames and muxes the copied packets bit-exactly into a new file that
  appears under its final name only after a successful :meth:`VideoWriter.close`.
- :class:`MaskWriter` writes a greyscale damage-mask video matching a source.

What is kept from input to output: frame count, size, sample aspect ratio, frame rate, every
frame's pts (VFR too; rescaled only when the container forces another time base, e.g. Matroska's
1 ms; a pts within half an input tick of the exact frame-rate grid, like Matroska's
millisecond-rounded 1/24 s steps, is written exactly on the grid so constant-rate video stays
constant-rate), display matrix (rotation/flip), colour tags (range, primaries, transfer, matrix),
timecode, container and stream tags (title, language, ...), bit depth and chroma layout where
the output codec allows.

Colour conversion: YUV frames are converted to RGB and back with the source's matrix and range
(BT.709 for unspecified HD, BT.601 for unspecified SD), so an identity pass does not shift
colours; RGB and greyscale frames are handled natively (an identity pass of FFV1 RGB/grey is
bit-exact). YUV frames become RGB48 before the float conversion (8-bit values are scaled exactly:
``v * 257 / 65535 == v / 255``).
"""

from __future__ import annotations

import functools
import importlib
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.container
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from filmclean.errors import InputError, OutputError
from filmclean.io import (
    MIN_SIDE,
    check_output_path,
    direct_format,
    error_reason,
    frame_samples,
    join_channels,
    make_frame,
    partial_path,
    remove_stale_partials,
    replace_file,
    split_channels,
)

OUTPUT_EXTS: frozenset[str] = frozenset({".mkv", ".mov", ".mp4", ".avi"})
"""Extensions :class:`VideoWriter` accepts (the muxer is chosen by the extension)."""

DEFAULT_CODECS: Mapping[str, str] = {".mkv": "ffv1", ".avi": "ffv1", ".mov": "prores_ks", ".mp4": "libx264"}
"""Encoder used for each output extension unless ``codec=`` overrides it."""

DEFAULT_CRF = 16
"""libx264/libx265 constant rate factor unless ``crf=`` overrides it (visually lossless)."""

DEFAULT_PRESET = "medium"
"""libx264/libx265 preset unless ``preset=`` overrides it."""

FFV1_SLICES_SD, FFV1_SLICES_HD = 4, 16
"""FFV1 slices wanted below / from 1280x720 (the nearest count the picture allows is used)."""

_SWS_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND  # best YUV->RGB->YUV round trip
_RANGE_UNSPECIFIED, _RANGE_MPEG, _RANGE_JPEG = 0, 1, 2
_SPC_RGB, _SPC_BT709, _SPC_UNSPECIFIED = 0, 1, 2
_PRI_UNSPECIFIED = _TRC_UNSPECIFIED = 2
# AVColorSpace -> swscale matrix
_SWS_MATRIX = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.SMPTE170M,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
_SEEK_MARGIN = Fraction(1, 2)  # seconds before ``start`` to seek to, so no copied packet is missed
_END_SLACK = Fraction(3, 2)  # frame periods a complete file may end short of its declared length
# Matroska EBML element ids: Segment, its Info and Cluster children, Info's TimestampScale/Duration
_MKV_SEGMENT, _MKV_INFO, _MKV_CLUSTER = 0x18538067, 0x1549A966, 0x1F43B675
_MKV_TIMESTAMP_SCALE, _MKV_DURATION = 0x2AD7B1, 0x4489
_MKV_HEAD_BYTES = 1 << 20  # the Info element precedes the clusters, normally in the first KiB
_DROPPED_TAGS = {
    "duration", "encoder", "major_brand", "minor_version", "compatible_brands", "vendor_id",
    "timecode", "rotate", "bps", "number_of_frames", "number_of_bytes", "_statistics_writing_app",
    "_statistics_writing_date_utc", "_statistics_tags",
}  # fmt: skip


@dataclass(frozen=True)
class StreamInfo:
    """A non-picture stream of the input. ``copied``: :class:`VideoReader` yields its packets and
    :class:`VideoWriter` copies them (audio and subtitles); data streams (e.g. QuickTime timecode
    tracks, recreated from :attr:`VideoInfo.timecode`) and attachments are not copied."""

    index: int
    kind: str
    codec: str | None
    copied: bool
    language: str | None


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found. Times are exact fractions; colour tags are FFmpeg enum values
    (``color_range``: 0 unspecified, 1 limited, 2 full; primaries/trc/colorspace: 1 = BT.709,
    2 = unspecified, ...) taken from the stream, or from the first frame where the stream leaves
    them unspecified. ``rotation`` is counter-clockwise degrees from ``display_matrix`` (the 9
    raw int32 values, ``None`` without one). ``start_time`` is the first video timestamp in seconds;
    ``n_frames`` is the container's frame count when it stores one; ``duration`` is in seconds."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    bits: int
    has_alpha: bool
    is_rgb: bool
    fps: Fraction
    time_base: Fraction
    start_time: Fraction
    n_frames: int | None
    duration: float | None
    rotation: int
    display_matrix: tuple[int, ...] | None
    sample_aspect_ratio: Fraction | None
    color_range: int
    color_primaries: int
    color_trc: int
    colorspace: int
    timecode: str | None
    video_stream: int
    other_streams: tuple[StreamInfo, ...]
    tags: tuple[tuple[str, str], ...]
    video_tags: tuple[tuple[str, str], ...]

    @property
    def is_grey(self) -> bool:
        """Whether the pixel format has a single colour component."""
        return _is_grey(self.pix_fmt)


@dataclass
class VideoFrameItem:
    """One decoded picture: ``index`` counts yielded frames from 0; ``pts`` is in ``time_base``
    units (relative to the range start when :class:`VideoReader` was given ``start``); ``rgb`` is
    float32 ``(H, W, 3)`` in ``[0, 1]``; ``alpha`` float32 ``(H, W)`` for sources with alpha."""

    index: int
    pts: int
    time_base: Fraction
    rgb: np.ndarray
    alpha: np.ndarray | None = None
    context: bool = False  # read only as a neighbour of the range's first/last frame; not output

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


@dataclass
class PacketItem:
    """An untouched packet of a copied (audio/subtitle) stream, timestamps shifted like the frames'."""

    packet: av.Packet

    @property
    def stream_index(self) -> int:
        """Index of the input stream the packet belongs to."""
        return self.packet.stream_index


# --------------------------------------------------------------------------- pixel formats


def _components(pix_fmt: str) -> tuple[av.VideoFormat, list, bool]:
    """``(format, colour components, has alpha)``; palette formats count as 8-bit RGB."""
    fmt = av.VideoFormat(pix_fmt)
    if fmt.has_palette:
        fmt = av.VideoFormat("rgb24")
    colour = [c for c in fmt.components if not c.is_alpha]
    return fmt, colour, len(colour) < len(fmt.components)


def _is_grey(pix_fmt: str) -> bool:
    return len(_components(pix_fmt)[1]) == 1


def _subsampling(fmt: av.VideoFormat) -> tuple[int, int]:
    """log2 horizontal and vertical chroma subsampling (0, 0 for 4:4:4, RGB and grey)."""
    if fmt.is_rgb or len(fmt.components) < 3:
        return 0, 0
    return int(math.log2(1024 // fmt.chroma_width(1024))), int(math.log2(1024 // fmt.chroma_height(1024)))


def _format_cost(src: str, cand: str) -> tuple:
    """Lexicographic cost of storing ``src`` pixels as ``cand``: losses first, then changes."""
    s_fmt, s_colour, s_alpha = _components(src)
    c_fmt, c_colour, c_alpha = _components(cand)
    s_bits, c_bits = max(c.bits for c in s_colour), max(c.bits for c in c_colour)
    s_sub, c_sub = _subsampling(s_fmt), _subsampling(c_fmt)
    s_float, c_float = "f16" in src or "f32" in src, "f16" in cand or "f32" in cand
    return (
        len(c_colour) < len(s_colour),  # colour -> grey
        max(0, s_bits - c_bits),  # precision lost
        sum(max(0, c - s) for c, s in zip(c_sub, s_sub)),  # chroma resolution lost
        s_alpha and not c_alpha,  # alpha lost
        (s_fmt.is_rgb, len(s_colour)) != (c_fmt.is_rgb, len(c_colour)),  # family change
        s_float != c_float,
        max(0, c_bits - s_bits),  # wasted bits
        sum(max(0, s - c) for c, s in zip(c_sub, s_sub)),  # chroma upsampled
        c_alpha and not s_alpha,
        c_fmt.is_big_endian,
        cand != src,
        cand,
    )


def closest_pix_fmt(src: str, candidates: list[str]) -> str:
    """The candidate that stores ``src`` pixels with the least loss: no colour, precision, chroma
    or alpha dropped if avoidable, then the fewest changes (``src`` itself when available)."""
    return min(candidates, key=lambda cand: _format_cost(src, cand))


def _encoder_formats(codec: str) -> list[str]:
    return [f.name for f in (av.Codec(codec, "w").video_formats or [])]


def _chroma_fits(width: int, height: int, pix_fmt: str) -> bool:
    """Whether a ``width`` x ``height`` picture holds whole chroma samples in ``pix_fmt`` (e.g. even
    width and height for 4:2:0); always true for 4:4:4, RGB and grey."""
    sx, sy = _subsampling(_components(pix_fmt)[0])
    return width % (1 << sx) == 0 and height % (1 << sy) == 0


def _encoder_opens(codec: str, width: int, height: int, pix_fmt: str, options: Mapping[str, str]) -> bool:
    """Whether FFmpeg's ``codec`` encoder accepts this picture size, pixel format and options (a
    trial open of a throw-away encoder; nothing is encoded)."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = dict(options)
    try:
        ctx.open()
    except (av.FFmpegError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def _ffv1_slices(
    width: int, height: int, pix_fmt: str, wanted: int, options: tuple[tuple[str, str], ...]
) -> int | None:
    """The FFV1 slice count nearest ``wanted`` (fewer first, then more) that the encoder accepts for
    this picture with these other ``options``; ``None`` if none does.

    FFV1 (before version 4) cuts a picture into a grid of h x v slices (v <= h <= 2v, v >= 2 above
    352x288) and refuses grids whose last column or row would have an even size when an odd width
    or height is subsampled (so 640x479 4:2:0 takes no count below 49, 639x479 4:2:2 takes 6), and
    slices too large for its coder. The rule varies between FFmpeg versions, so the counts are
    tried with the real encoder."""
    counts = sorted({h * v for v in range(1, 33) for h in range(v, 2 * v + 1)})
    order = [wanted, *(n for n in reversed(counts) if n < wanted), *(n for n in counts if n > wanted)]
    for count in order:
        if _encoder_opens("ffv1", width, height, pix_fmt, {**dict(options), "slices": str(count)}):
            return count
    return None


def _cpu_features() -> Mapping[str, bool] | None:
    """The CPU features NumPy detected at run time for its own SIMD dispatch (OS support checked),
    or ``None`` where this NumPy does not expose them."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return None


@functools.cache
def _x264_params() -> str:
    """``x264-params`` that make libx264's output a function of its input only.

    x264's AVX-512 macroblock-tree propagation (used on CPUs with AVX-512 F/CD/BW/DQ/VL, as x264
    requires) gives run-to-run different files for the same frames when the picture width in
    16-pixel macroblocks is not a multiple of 8: it works on 8 macroblocks at a time and the lanes
    past the end of a row evidently take in whatever memory held (measured with x264 build 165:
    the files agree when the width is a multiple of 128 pixels, with ``asm=AVX2``, with mbtree off
    or without B-frames, and differ with one thread as with many). On such CPUs x264 is limited to
    its AVX2 code, whose output is bit-identical to the AVX-512 code's where that is correct, at
    no measurable cost in speed; where the CPU's features are unknown, mbtree (the only user of
    that code) is turned off instead, which costs bit rate."""
    features = _cpu_features()
    if features is None:
        return "mbtree=0"
    return "asm=AVX2" if features.get("AVX512_SKX") else ""


# --------------------------------------------------------------------------- probing


def _open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing, turning every failure into a one-line :class:`InputError`."""
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a regular file", path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path)
    try:
        return av.open(str(path), "r")
    except av.FFmpegError as exc:
        raise InputError(f"not a readable video file ({error_reason(exc)}; truncated or not a video?)", path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open file: {error_reason(exc)}", path) from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context is None:
                raise InputError(f"video codec of stream #{stream.index} cannot be decoded", path)
            return stream
    kinds = ", ".join(s.type for s in container.streams) or "no streams"
    raise InputError(f"no video stream in file ({kinds})", path)


def _copied_streams(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The audio and subtitle streams whose packets are copied to the output."""
    return [s for s in container.streams if s.type in ("audio", "subtitle") and s.codec_context is not None]


def _tags(metadata: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in metadata.items() if k.lower() not in _DROPPED_TAGS)


def _find_timecode(container: av.container.InputContainer, video: av.stream.Stream) -> str | None:
    sources = [video.metadata, *(s.metadata for s in container.streams if s.type == "data"), container.metadata]
    for metadata in sources:
        for key, value in metadata.items():
            if key.lower() == "timecode" and value:
                return value
    return None


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if side is None:
        return None
    return tuple(int(v) for v in np.frombuffer(bytes(side)[:36], dtype=np.int32))


def _specified(stream_value: int, frame_value: int, unspecified: int) -> int:
    return stream_value if stream_value != unspecified else frame_value


def probe_video(path: str | Path) -> VideoInfo:
    """Describe the video file ``path`` and check that its first frame decodes and converts to RGB.

    Raises :class:`InputError` (one line naming the file) for a missing, empty, truncated or
    non-video file, a file without a video stream, an undecodable codec or unsupported pixel
    format, or a picture smaller than ``MIN_SIDE`` pixels on a side.
    """
    path = Path(path)
    with _open_input(path) as container:
        return _describe(container, path)


def _describe(container: av.container.InputContainer, path: Path) -> VideoInfo:
    stream = _video_stream(container, path)
    ctx = stream.codec_context
    stream.thread_type = "AUTO"
    try:
        first = next(container.decode(stream), None)
    except av.FFmpegError as exc:
        raise InputError(f"cannot decode the {ctx.name} video stream: {error_reason(exc)}", path) from None
    if first is None:
        raise InputError(f"the {ctx.name} video stream has no decodable frames (truncated?)", path)
    width, height = first.width, first.height
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(f"picture is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed", path)
    pix_fmt = first.format.name
    fmt, colour, has_alpha = _components(pix_fmt)
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps:
        raise InputError("cannot determine the frame rate", path)
    time_base = stream.time_base or Fraction(1, 1)
    start_time = (stream.start_time or 0) * time_base
    duration = None
    if stream.duration:
        duration = float(stream.duration * time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    matrix = _display_matrix(first)
    copied = {s.index for s in _copied_streams(container)}
    info = VideoInfo(
        path=path,
        container=container.format.name,
        codec=ctx.name,
        width=width,
        height=height,
        pix_fmt=pix_fmt,
        bits=max(c.bits for c in colour),
        has_alpha=has_alpha,
        is_rgb=fmt.is_rgb,
        fps=Fraction(fps),
        time_base=Fraction(time_base),
        start_time=Fraction(start_time),
        n_frames=stream.frames or None,
        duration=duration,
        rotation=int(first.rotation) if matrix else 0,
        display_matrix=matrix,
        sample_aspect_ratio=stream.sample_aspect_ratio or None,
        color_range=_specified(ctx.color_range, first.color_range, _RANGE_UNSPECIFIED),
        color_primaries=_specified(ctx.color_primaries, first.color_primaries, _PRI_UNSPECIFIED),
        color_trc=_specified(ctx.color_trc, first.color_trc, _TRC_UNSPECIFIED),
        colorspace=_specified(ctx.colorspace, first.colorspace, _SPC_UNSPECIFIED),
        timecode=_find_timecode(container, stream),
        video_stream=stream.index,
        other_streams=tuple(
            StreamInfo(
                index=s.index,
                kind=s.type,
                codec=s.codec_context.name if s.codec_context is not None else None,
                copied=s.index in copied,
                language=s.language,
            )
            for s in container.streams
            if s.index != stream.index
        ),
        tags=_tags(container.metadata),
        video_tags=_tags(stream.metadata),
    )
    try:
        _RgbConverter(info).to_rgb(first)
    except (av.FFmpegError, ValueError) as exc:
        raise InputError(f"pixel format {pix_fmt} cannot be converted to RGB: {error_reason(exc)}", path) from None
    return info


# --------------------------------------------------------------------------- colour conversion


def _matrix(colorspace: int, height: int) -> Colorspace:
    """swscale matrix for an AVColorSpace; unspecified means BT.709 for HD, BT.601 for SD."""
    if colorspace in _SWS_MATRIX:
        return _SWS_MATRIX[colorspace]
    return Colorspace.ITU709 if height >= 720 else Colorspace.ITU601


def _yuv_range(info: VideoInfo) -> int:
    if info.color_range != _RANGE_UNSPECIFIED:
        return info.color_range
    return _RANGE_JPEG if info.pix_fmt.startswith("yuvj") else _RANGE_MPEG


class _RgbConverter:
    """Frame <-> float RGB for one stream. Direct formats (RGB, grey) are read and written as
    native integers (exact); others go through swscale as RGB48 (RGBA64 with alpha) using the
    stream's YUV ``matrix`` and ``yuv_range``."""

    def __init__(self, info: VideoInfo, pix_fmt: str | None = None) -> None:
        self.pix_fmt = pix_fmt or info.pix_fmt
        fmt, colour, self.alpha = _components(self.pix_fmt)
        self.direct = direct_format(self.pix_fmt)
        self.grey = len(colour) == 1
        # always 16-bit: swscale's 8-bit RGB <-> YUV path is biased (~1.7 codes of luma per round trip)
        self.rgb_fmt = "rgba64le" if self.alpha else "rgb48le"
        self.matrix = _matrix(info.colorspace, info.height)
        self.yuv_range = _yuv_range(info)
        self.yuv = not fmt.is_rgb and not self.grey

    def to_rgb(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Decoded frame -> ``(rgb, alpha | None)`` float32."""
        if self.direct:
            samples, bits = frame_samples(frame)
        else:
            converted = frame.reformat(
                format=self.rgb_fmt,
                src_colorspace=self.matrix if self.yuv else None,
                src_color_range=self.yuv_range if self.yuv else None,
                interpolation=_SWS_FLAGS,
            )
            samples, bits = frame_samples(converted)
        rgb, alpha, _ = split_channels(samples, bits)
        return rgb, alpha

    def from_rgb(self, rgb: np.ndarray, alpha: np.ndarray | None) -> av.VideoFrame:
        """float32 RGB (+ alpha) -> a frame in this converter's pixel format."""
        alpha = alpha if self.alpha else None
        if self.alpha and alpha is None:
            alpha = np.ones(rgb.shape[:2], np.float32)
        if self.direct:
            fmt = av.VideoFormat(self.pix_fmt)
            return make_frame(join_channels(rgb, alpha, self.grey, fmt.components[0].bits), self.pix_fmt)
        frame = make_frame(join_channels(rgb, alpha, False, 16), self.rgb_fmt)
        return frame.reformat(
            format=self.pix_fmt,
            dst_colorspace=self.matrix if self.yuv else None,
            dst_color_range=self.yuv_range if self.yuv else None,
            interpolation=_SWS_FLAGS,
        )


# --------------------------------------------------------------------------- reading


class VideoReader:
    """Decode a video file; iterate to get :class:`VideoFrameItem` and :class:`PacketItem` items.

    ``start``/``end`` (seconds from the first video frame) limit the output to frames and copied
    packets whose time lies in ``[start, end)``; with ``start`` all timestamps are shifted so that
    ``start`` becomes 0 (audio stays in sync), without it they are the input's. Use as a context
    manager (or call :meth:`close`). Iterate once.

    Raises :class:`InputError` on open (see :func:`probe_video`), for an invalid range, when the
    range holds no frame, when decoding fails mid-file, and at the end of a whole-file read that
    got fewer video packets than the container indexes/declares (truncated QuickTime/MP4/AVI), or
    whose packets, of all streams together, end well before the duration the header declares
    (truncated Matroska/WebM, which declare no frame count; audio outlasting the video is fine).

    ``context``: with a range, also yield up to this many frames just before ``start`` and just
    after ``end`` as items with ``context=True`` (neighbours for temporal restoration; they are not
    counted in ``index`` and must not be written).
    """

    def __init__(self, path: str | Path, start: float | None = None, end: float | None = None, context: int = 0) -> None:
        self.path = Path(path)
        self.context = max(0, int(context))
        if (start is not None and start < 0) or (end is not None and end <= (start or 0)):
            raise InputError(f"invalid time range start={start} end={end} (need 0 <= start < end)", self.path)
        self.info = probe_video(self.path)
        self.start = None if start is None else Fraction(start)
        self.end = None if end is None else Fraction(end)
        self.container = _open_input(self.path)
        self._video = self.container.streams[self.info.video_stream]
        self._video.thread_type = "AUTO"
        self._copied = _copied_streams(self.container)
        self._converter = _RgbConverter(self.info)
        # QuickTime/MP4 index every sample (after edit lists); other containers may declare a count
        indexed = len(self._video.index_entries)
        self._expected_packets = indexed if "mov" in self.info.container else max(indexed, self.info.n_frames or 0)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the input file (idempotent)."""
        self.container.close()

    def _position(self, ticks: int | None, time_base: Fraction) -> int:
        """-1 before ``start``, 0 inside the range, 1 at or after ``end`` (``None`` ticks: inside)."""
        if ticks is None:
            return 0
        t = ticks * time_base - self.info.start_time
        if self.start is not None and t < self.start:
            return -1
        if self.end is not None and t >= self.end:
            return 1
        return 0

    def __iter__(self) -> Iterator[VideoFrameItem | PacketItem]:
        streams = [self._video, *self._copied]
        shift = dict.fromkeys((s.index for s in streams), 0)
        if self.start is not None:
            origin = self.info.start_time + self.start  # becomes time 0 in the output
            shift = {s.index: math.floor(origin / s.time_base) for s in streams}
            if origin - _SEEK_MARGIN > self.info.start_time:
                self.container.seek(math.floor((origin - _SEEK_MARGIN) / self._video.time_base), stream=self._video)
        finished: set[int] = set()  # streams that reached ``end``
        count = decoded = packets = after = 0
        last_pts: int | None = None  # of the last video packet with data
        data_end: Fraction | None = None  # latest packet end (seconds) of any stream
        prev_pts: int | None = None  # of the previous decoded frame
        max_step = 0  # largest pts step between decoded frames (VFR)
        selected = {s.index for s in streams}
        before: list[tuple[av.VideoFrame, int]] = []  # the last ``context`` frames before ``start``
        time_base = self._video.time_base
        try:
            # every stream is demuxed so that the file's extent is known; only ``streams`` are used
            for packet in self.container.demux():
                index = packet.stream.index  # PyAV's end-of-stream packets all say stream_index 0
                if packet.size:
                    data_end = _later(data_end, _packet_end(packet))
                if index not in selected:
                    continue
                if index == self._video.index:
                    packets += packet.size > 0
                    if packet.size > 0 and packet.pts is not None:
                        last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
                    if index in finished:  # past ``end``: only copied streams still need packets
                        continue
                    for frame in packet.decode():
                        pts = frame.pts
                        if pts is None:  # no timestamp: derive one from the frame rate
                            pts = round((self.info.start_time + decoded / self.info.fps) / time_base)
                        decoded += 1
                        if prev_pts is not None:
                            max_step = max(max_step, pts - prev_pts)
                        prev_pts = pts
                        position = self._position(pts, time_base)
                        if position > 0:
                            if after < self.context and count > 0:
                                after += 1
                                rgb, alpha = self._converter.to_rgb(self._checked(frame))
                                yield VideoFrameItem(-1, pts - shift[index], time_base, rgb, alpha, context=True)
                            if after >= self.context or count == 0:
                                finished.add(index)
                        elif position < 0:
                            if self.context:
                                before = [*before, (frame, pts)][-self.context:]
                        else:
                            for old_frame, old_pts in before:
                                rgb, alpha = self._converter.to_rgb(self._checked(old_frame))
                                yield VideoFrameItem(-1, old_pts - shift[index], time_base, rgb, alpha, context=True)
                            before = []
                            rgb, alpha = self._converter.to_rgb(self._checked(frame))
                            yield VideoFrameItem(count, pts - shift[index], time_base, rgb, alpha)
                            count += 1
                elif packet.size:
                    ticks = packet.pts if packet.pts is not None else packet.dts
                    position = self._position(ticks, packet.time_base)
                    if position > 0:
                        finished.add(index)
                    elif position == 0:
                        if packet.pts is not None:
                            packet.pts -= shift[index]
                        if packet.dts is not None:
                            packet.dts -= shift[index]
                        yield PacketItem(packet)
                if len(finished) == len(streams):
                    break
        except av.FFmpegError as exc:
            raise InputError(
                f"decoding failed after {count} frames: {error_reason(exc)} (file truncated or corrupt?)", self.path
            ) from None
        if count == 0:
            raise InputError(f"no video frames in the requested range start={self.start} end={self.end}", self.path)
        if self.start is None and self.end is None:
            self._check_complete(packets, last_pts, data_end, count, max_step * time_base)

    def _check_complete(
        self, packets: int, last_pts: int | None, data_end: Fraction | None, count: int, max_step: Fraction
    ) -> None:
        """Raise :class:`InputError` when a whole-file read stopped short of what the container
        declares: fewer video packets than it indexes/counts, or (containers that declare only a
        duration) packets of all streams ending more than 1.5 frame periods (or 1.5 of the
        longest frame step, for VFR) before that duration."""
        hint = "use an end time to process the readable part"
        if packets < self._expected_packets and not self._reached_end(last_pts):
            expected = self._expected_packets
            raise InputError(f"file ends after {packets} of {expected} frames (truncated?); {hint}", self.path)
        declared = self._declared_duration()
        if declared is None:
            return
        slack = _END_SLACK * max(1 / self.info.fps, max_step)
        reached = data_end if data_end is not None else Fraction(0)
        if reached + slack < declared:
            raise InputError(
                f"file ends after {count} frames at {float(reached):.3f} s of the {float(declared):.3f} s "
                f"its header declares (truncated?); {hint}",
                self.path,
            )

    def _declared_duration(self) -> Fraction | None:
        """The duration in seconds that the container header states, for containers that state
        one but no frame count (Matroska/WebM: the segment duration, written when the file is
        finished); ``None`` for others and for files without one. Read from the file itself:
        where the header has none, FFmpeg's duration may be an estimate from the bit rate."""
        if "matroska" not in self.info.container.split(","):
            return None
        return _matroska_duration(self.path)

    def _reached_end(self, last_pts: int | None) -> bool:
        """Whether the last video packet lies in the final frame slot of the declared duration: an
        AVI with dropped (repeat-previous) frames declares more frames than it holds packets, yet
        it is complete."""
        if last_pts is None or not self.info.fps:
            return False
        last = last_pts * self._video.time_base - self.info.start_time
        if self.info.n_frames:  # the declared count, not a duration FFmpeg may estimate from a torn file
            end = Fraction(self.info.n_frames) / self.info.fps
        elif self.info.duration:
            end = Fraction(self.info.duration).limit_denominator(10**6)
        else:
            return False
        return last + Fraction(3, 2) / self.info.fps >= end

    def _checked(self, frame: av.VideoFrame) -> av.VideoFrame:
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise InputError(
                f"frame size changes mid-stream ({self.info.width}x{self.info.height} -> "
                f"{frame.width}x{frame.height}); not supported",
                self.path,
            )
        return frame


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


def _matroska_duration(path: str | Path) -> Fraction | None:
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
            if child != _MKV_INFO:
                continue
            scale, duration = 1_000_000, None  # TimestampScale default: 1 ms in ns
            for item, i_start, i_end in _ebml_elements(data, c_start, c_end):
                raw = data[i_start:i_end]
                if item == _MKV_TIMESTAMP_SCALE and raw:
                    scale = int.from_bytes(raw, "big")
                elif item == _MKV_DURATION and len(raw) in (4, 8):
                    duration = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
            if duration is None or not math.isfinite(duration) or duration <= 0 or scale <= 0:
                return None
            return Fraction(duration) * scale / 10**9
        return None
    return None


def _packet_end(packet: av.Packet) -> Fraction | None:
    """Where ``packet`` ends in seconds (its start when it carries no duration); ``None`` without
    timestamps."""
    ticks = packet.pts if packet.pts is not None else packet.dts
    if ticks is None or packet.time_base is None:
        return None
    return (ticks + max(packet.duration or 0, 0)) * Fraction(packet.time_base)


def _later(a: Fraction | None, b: Fraction | None) -> Fraction | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


# --------------------------------------------------------------------------- writing


def _is_yuv(pix_fmt: str) -> bool:
    fmt, colour, _ = _components(pix_fmt)
    return not fmt.is_rgb and len(colour) > 1


def _output_colour(info: VideoInfo, pix_fmt: str) -> tuple[tuple[int, int, int, int], VideoInfo]:
    """Colour tags ``(range, primaries, trc, colorspace)`` for an output in ``pix_fmt``, and the
    :class:`VideoInfo` whose matrix/range the RGB -> ``pix_fmt`` conversion must use.

    YUV from YUV keeps the input's matrix and range tags (``yuvj*`` inputs are tagged full range);
    YUV from RGB/grey uses and tags BT.709 limited range; RGB output is tagged as RGB; grey output
    keeps the input's tags. Primaries and transfer are always the input's (no transfer conversion)."""
    colour_range, colorspace = info.color_range, info.colorspace
    if _is_yuv(pix_fmt):
        if not _is_yuv(info.pix_fmt):
            colour_range, colorspace = _RANGE_MPEG, _SPC_BT709
        elif info.pix_fmt.startswith("yuvj"):
            colour_range = _RANGE_JPEG
    elif _components(pix_fmt)[0].is_rgb:
        colorspace = _SPC_RGB
        if _is_yuv(info.pix_fmt):
            colour_range = _RANGE_UNSPECIFIED
    tags = (colour_range, info.color_primaries, info.color_trc, colorspace)
    return tags, replace(info, color_range=colour_range, colorspace=colorspace)


def _encoder_time_base(info: VideoInfo) -> Fraction:
    """The input time base, refined to the largest tick that also divides ``1 / fps`` so that exact
    frame-grid times are representable (1/1000 at 24 fps -> 1/3000); the input's when that would
    need a timescale beyond 32 bits."""
    a, b = info.time_base, 1 / info.fps
    tick = Fraction(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator), a.denominator * b.denominator)
    return tick if tick.denominator < 2**31 else a


class VideoWriter:
    """Encode frames and copy packets into a new video file, atomically.

    ``path``'s extension picks the container and the default encoder (:data:`DEFAULT_CODECS`):
    ``.mkv``/``.avi`` FFV1 (level 3, GOP 1, slice CRCs, the slice count nearest
    :data:`FFV1_SLICES_SD`/:data:`FFV1_SLICES_HD` that the picture size allows; lossless, the
    input's pixel format or the closest FFV1 format that loses nothing, e.g. rgb48 stays 16-bit
    RGB), ``.mov`` ProRes 422 HQ (yuv422p10le) or 4444 (yuv444p10le for 4:4:4/RGB sources,
    yuva444p10le for any source with alpha), ``.mp4`` H.264 (crf :data:`DEFAULT_CRF`, yuv420p,
    yuv420p10le for >8-bit sources; 4:2:2 for an odd height, 4:4:4 for an odd width, which 4:2:0
    cannot hold; output reproducible bit for bit, see :func:`_x264_params`). ``codec``,
    ``pix_fmt``, ``crf``/``preset`` (libx264/libx265 only) and raw encoder ``codec_options``
    (``x264-params``/``x265-params`` are appended to the writer's) override. Audio and subtitle
    streams of ``template_container`` (an open input container or a path; usually
    ``reader.container``) are created as bit-exact copies for :meth:`write_packet`.

    The file is written under a :func:`filmclean.io.partial_path` in the output folder and renamed to
    ``path`` by :meth:`close`; :meth:`abort` (or leaving the ``with`` block by an exception,
    KeyboardInterrupt included) deletes it. Raises :class:`OutputError` when ``path`` is the input
    file, exists and ``force`` is false, its folder is missing or unwritable, the extension,
    codec, pixel format or options are not usable (the encoder is opened here, so a size it cannot
    take is reported before any frame), the source has alpha that the default pixel format of
    the codec cannot store (give ``pix_fmt`` to drop it deliberately), or a copied stream's codec
    cannot be stored in the container.
    """

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        template_container: av.container.InputContainer | str | Path | None = None,
        *,
        codec: str | None = None,
        crf: int | None = None,
        pix_fmt: str | None = None,
        preset: str | None = None,
        codec_options: Mapping[str, str] | None = None,
        force: bool = False,
    ) -> None:
        self.path = check_output_path(path, source=info.path, force=force)
        self.info = info
        ext = self.path.suffix.lower()
        if ext not in OUTPUT_EXTS:
            known = ", ".join(sorted(OUTPUT_EXTS))
            raise OutputError(f"unsupported video extension {ext or '(none)'!r}; use {known}", self.path)
        self.codec = codec or DEFAULT_CODECS[ext]
        try:
            formats = _encoder_formats(self.codec)
        except (av.FFmpegError, ValueError):
            raise OutputError(f"unknown video encoder {self.codec!r}", self.path) from None
        self.pix_fmt = pix_fmt or self._default_pix_fmt(formats)
        if self.pix_fmt not in formats:
            supported = ", ".join(formats)
            raise OutputError(f"encoder {self.codec} cannot write pixel format {self.pix_fmt}; it supports {supported}", self.path)
        self._check_pix_fmt(explicit=pix_fmt is not None)
        options = self._options(crf, preset, codec_options)
        self._colour, convert = _output_colour(info, self.pix_fmt)
        self._converter = _RgbConverter(convert, self.pix_fmt)
        self._closed = False
        self._first_time: Fraction | None = None
        remove_stale_partials(self.path.absolute().parent, self.path)  # left by a killed run into this output
        self._tmp = partial_path(self.path)
        self.container = self._open_temp()
        try:
            self._stream = self._add_video_stream(options)
            self._copies = self._add_copies(template_container)
        except BaseException:
            self.abort()
            raise

    # -- setup

    def _default_pix_fmt(self, formats: list[str]) -> str:
        info = self.info
        full_chroma = info.is_rgb or info.is_grey or _subsampling(_components(info.pix_fmt)[0]) == (0, 0)
        if self.codec == "prores_ks":
            if info.has_alpha:
                return "yuva444p10le"
            return "yuv444p10le" if full_chroma and not info.is_grey else "yuv422p10le"
        if self.codec in ("libx264", "libx265"):
            depth = "10le" if info.bits > 8 else ""
            choices = [f"yuv420p{depth}", f"yuv422p{depth}", f"yuv444p{depth}"]
            return next((f for f in choices if _chroma_fits(info.width, info.height, f)), choices[0])
        return closest_pix_fmt(info.pix_fmt, formats)

    def _check_pix_fmt(self, explicit: bool) -> None:
        """Refuse what the chosen pixel format cannot do: whole chroma samples for H.264/HEVC, and
        the source's alpha unless ``explicit`` (the caller chose the format, and so the loss)."""
        info = self.info
        if self.codec in ("libx264", "libx265") and not _chroma_fits(info.width, info.height, self.pix_fmt):
            sx, sy = _subsampling(_components(self.pix_fmt)[0])
            sides = (("width", info.width, sx), ("height", info.height, sy))
            odd = " and ".join(name for name, size, shift in sides if size % (1 << shift))
            raise OutputError(
                f"{self.codec} cannot encode a {info.width}x{info.height} picture as {self.pix_fmt}: its chroma "
                f"subsampling needs an even {odd}; use a 4:4:4 pixel format (e.g. yuv444p) or .mkv (FFV1)",
                self.path,
            )
        if info.has_alpha and not explicit and not _components(self.pix_fmt)[2]:
            raise OutputError(
                f"the input has an alpha channel, which {self.codec} ({self.pix_fmt}) cannot store; write .mkv "
                "(FFV1 keeps alpha) or .mov (ProRes 4444), or choose a pixel format (--pix-fmt) to drop it",
                self.path,
            )

    def _options(self, crf: int | None, preset: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        options: dict[str, str] = {}
        x26x = self.codec in ("libx264", "libx265")
        if (crf is not None or preset is not None) and not x26x:
            raise OutputError(f"crf/preset apply to libx264/libx265 only, not {self.codec}", self.path)
        if x26x:
            options = {"crf": str(DEFAULT_CRF if crf is None else crf), "preset": preset or DEFAULT_PRESET}
            if self.codec == "libx265":
                options["x265-params"] = "log-level=error"
            elif _x264_params():
                options["x264-params"] = _x264_params()
        elif self.codec == "ffv1":
            options = {"level": "3", "slicecrc": "1", "g": "1"}
        elif self.codec == "prores_ks":
            options = {"profile": "4" if self.pix_fmt.startswith(("yuv444", "yuva444")) else "3", "vendor": "apl0"}
        for key, value in (extra or {}).items():
            joined = key in ("x264-params", "x265-params") and key in options
            options[key] = f"{options[key]}:{value}" if joined else value  # the caller's come last and win
        if self.codec == "ffv1" and "slices" not in options:
            width, height = self.info.width, self.info.height
            wanted = FFV1_SLICES_HD if width * height >= 1280 * 720 else FFV1_SLICES_SD
            slices = _ffv1_slices(width, height, self.pix_fmt, wanted, tuple(sorted(options.items())))
            if slices is not None:  # else FFV1 refuses every count; opening the encoder says so
                options["slices"] = str(slices)
        return options

    def _open_temp(self) -> av.container.OutputContainer:
        """Open the temporary file (its extension picks the muxer)."""
        try:
            return av.open(str(self._tmp), "w")
        except (av.FFmpegError, ValueError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            folder = self._tmp.absolute().parent
            raise OutputError(f"cannot create output in {folder}: {error_reason(exc)}", self.path) from None

    def _add_video_stream(self, options: dict[str, str]) -> av.video.stream.VideoStream:
        info = self.info
        try:
            stream = self.container.add_stream(self.codec, rate=info.fps, time_base=_encoder_time_base(info))
        except ValueError as exc:
            reason = error_reason(exc)
            raise OutputError(f"{self.path.suffix} files cannot hold {self.codec} video ({reason})", self.path) from None
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, self.pix_fmt
        ctx = stream.codec_context
        if info.sample_aspect_ratio:
            ctx.sample_aspect_ratio = info.sample_aspect_ratio
        stream.thread_type = "AUTO"
        if "g" in options:
            ctx.gop_size = int(options.pop("g"))
        stream.options = options
        ctx.color_range, ctx.color_primaries, ctx.color_trc, ctx.colorspace = self._colour
        if info.display_matrix:
            stream.set_display_matrix(list(info.display_matrix))
        stream.metadata.update(dict(info.video_tags))
        if info.timecode:
            stream.metadata["timecode"] = info.timecode
        self.container.metadata.update(dict(info.tags))
        try:  # now rather than at the first frame, so that a refusal comes before any work
            ctx.open()
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(
                f"encoder {self.codec} cannot encode {info.width}x{info.height} {self.pix_fmt} video with these "
                f"settings ({error_reason(exc)})",
                self.path,
            ) from None
        return stream

    def _add_copies(self, template: av.container.InputContainer | str | Path | None) -> dict[int, av.stream.Stream]:
        if template is None:
            return {}
        if isinstance(template, (str, Path)):
            with _open_input(Path(template)) as container:
                return self._add_copies(container)
        copies = {}
        for src in _copied_streams(template):
            try:
                out = self.container.add_stream_from_template(src)
            except ValueError:
                hint = "" if self.path.suffix.lower() == ".mkv" else "; use .mkv"
                raise OutputError(
                    f"{src.type} stream #{src.index} ({src.codec_context.name}) cannot be stored in a "
                    f"{self.path.suffix} file{hint}",
                    self.path,
                ) from None
            out.metadata.update(dict(_tags(src.metadata)))
            layout = getattr(src.codec_context, "layout", None)
            if layout is not None and layout.nb_channels in _DEFAULT_LAYOUTS and layout.channels[0].name == "NONE":
                # unordered channels (e.g. PCM from Matroska): MP4/QuickTime need a layout to close
                out.codec_context.layout = _DEFAULT_LAYOUTS[layout.nb_channels]
            copies[src.index] = out
        return copies

    # -- writing

    def write_frame(self, item: VideoFrameItem) -> None:
        """Encode ``item.rgb`` (and ``item.alpha`` when the output has alpha) at ``item.pts``.

        Raises ``ValueError`` if the picture size differs from the input's, :class:`OutputError`
        if encoding or writing fails."""
        if item.rgb.shape != (self.info.height, self.info.width, 3):
            expected = (self.info.height, self.info.width, 3)
            raise ValueError(f"frame shape {item.rgb.shape} does not match the video's {expected}")
        frame = self._converter.from_rgb(item.rgb, item.alpha)
        time_base = self._stream.codec_context.time_base
        frame.pts = round(self._grid_time(item.pts * item.time_base, item.time_base) / time_base)
        frame.time_base = time_base
        frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace = self._colour
        self._encode(frame)

    def _grid_time(self, t: Fraction, precision: Fraction) -> Fraction:
        """``t`` moved onto the exact frame-rate grid (anchored at the first frame) when it lies
        within half a ``precision`` tick of it, else ``t`` unchanged (VFR timing is kept)."""
        if self._first_time is None:
            self._first_time = t
        fps = self.info.fps
        grid = self._first_time + Fraction(round((t - self._first_time) * fps)) / fps
        return grid if abs(grid - t) < precision / 2 else t

    def write_packet(self, item: PacketItem) -> None:
        """Mux a copied packet unchanged into the matching output stream.

        Raises ``KeyError`` for a packet of a stream that was not set up from the template."""
        packet = item.packet
        packet.stream = self._copies[packet.stream_index]
        self._mux([packet])

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode ``frame`` (``None`` flushes the encoder) and mux the resulting packets."""
        try:
            self.container.mux(self._stream.encode(frame))
        except av.FFmpegError as exc:
            raise OutputError(f"encoding failed: {error_reason(exc)}", self.path) from None

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self.container.mux(packets)
        except av.FFmpegError as exc:
            raise OutputError(f"writing failed: {error_reason(exc)}", self.path) from None

    def close(self) -> None:
        """Flush the encoder, finish the file and rename it to its final name (idempotent).

        On failure the temporary file is deleted and :class:`OutputError` is raised."""
        if self._closed:
            return
        try:
            self._encode(None)
            try:
                self.container.close()
            except av.FFmpegError as exc:
                raise OutputError(f"finishing the file failed: {error_reason(exc)}", self.path) from None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        replace_file(self._tmp, self.path)

    def abort(self) -> None:
        """Stop writing and delete the temporary file; the final name is never created (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass  # the partial file is deleted below whatever state the muxer is in
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class MaskWriter(VideoWriter):
    """Greyscale damage masks as a single-stream video matching ``info`` (size, frame rate, pts,
    rotation, timecode). ``.mkv``/``.avi``: FFV1 ``gray`` (8-bit sources) or ``gray16le``;
    ``.mov``: ProRes 422 HQ; ``.mp4``: H.264. Other behaviour (atomic file, errors) as
    :class:`VideoWriter`."""

    def __init__(self, path: str | Path, info: VideoInfo, *, force: bool = False) -> None:
        grey = "gray" if info.bits <= 8 else "gray16le"
        mask_info = replace(
            info,
            pix_fmt=grey,
            bits=8 if info.bits <= 8 else 16,
            has_alpha=False,
            is_rgb=False,
            color_range=_RANGE_JPEG,
            color_primaries=_PRI_UNSPECIFIED,
            color_trc=_TRC_UNSPECIFIED,
            colorspace=_SPC_UNSPECIFIED,
        )
        super().__init__(path, mask_info, force=force)

    def write(self, item: VideoFrameItem, mask: np.ndarray) -> None:
        """Encode ``mask`` (float32 ``(H, W)`` in ``[0, 1]``) at ``item``'s pts."""
        rgb = np.repeat(np.asarray(mask, dtype=np.float32)[:, :, None], 3, axis=2)
        self.write_frame(replace(item, rgb=rgb, alpha=None))
