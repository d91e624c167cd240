"""Reading video files through PyAV: probe, decode to float RGB frames, pass the other streams on.

- :func:`probe_video` describes a file (:class:`VideoInfo`) and proves its first frame decodes.
- :class:`VideoReader` yields, in demux order, :class:`VideoFrameItem` (decoded picture as float32
  RGB, see :mod:`filmclean.io`) and :class:`PacketItem` (untouched packets of the audio and
  subtitle streams), optionally limited to a time range.

Writing them back (:class:`~filmclean.io.video_write.VideoWriter`, keeping timing, colour tags,
rotation, timecode and tags) is :mod:`filmclean.io.video_write`; the conversion between frames and
float RGB, with the source's YUV matrix and range, is :mod:`filmclean.io.pixfmt`; the Matroska
duration that reveals a truncated Matroska/WebM file is read by :mod:`filmclean.io.matroska`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.container
import av.sidedata.sidedata
import numpy as np

from filmclean.errors import InputError
from filmclean.io import MIN_SIDE, error_reason
from filmclean.io.matroska import matroska_duration
from filmclean.io.pixfmt import (
    PRI_UNSPECIFIED,
    RANGE_UNSPECIFIED,
    SPC_UNSPECIFIED,
    TRC_UNSPECIFIED,
    RgbConverter,
    components,
    is_grey,
)

_COUNT_FROM_START = 48  # a frame range starting later than this seeks (constant frame rate only)
_SEEK_MARGIN = Fraction(1, 2)  # seconds before ``start`` to seek to, so no copied packet is missed
_END_SLACK = Fraction(3, 2)  # frame periods a complete file may end short of its declared length
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
        return is_grey(self.pix_fmt)


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


# --------------------------------------------------------------------------- probing


def open_input(path: Path) -> av.container.InputContainer:
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


def copied_streams(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The audio and subtitle streams whose packets are copied to the output."""
    return [s for s in container.streams if s.type in ("audio", "subtitle") and s.codec_context is not None]


def kept_tags(metadata: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The tags worth carrying to an output: all but those describing the old file's encoding,
    length and statistics (duration, encoder, brands, rotation, timecode, ...)."""
    return tuple((k, v) for k, v in metadata.items() if k.lower() not in _DROPPED_TAGS)


def _find_timecode(container: av.container.InputContainer, video: av.stream.Stream) -> str | None:
    sources = [video.metadata, *(s.metadata for s in container.streams if s.type == "data"), container.metadata]
    for metadata in sources:
        for key, value in metadata.items():
            if key.lower() == "timecode" and value:
                return value
    return None


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    # PyAV's stub types Frame.side_data as a TypedDict of motion vectors; it is a SideDataContainer
    side_data = cast(av.sidedata.sidedata.SideDataContainer, frame.side_data)
    side: av.sidedata.sidedata.SideData | None = side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
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
    with open_input(path) as container:
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
    fmt, colour, has_alpha = components(pix_fmt)
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
    copied = {s.index for s in copied_streams(container)}
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
        color_range=_specified(ctx.color_range, first.color_range, RANGE_UNSPECIFIED),
        color_primaries=_specified(ctx.color_primaries, first.color_primaries, PRI_UNSPECIFIED),
        color_trc=_specified(ctx.color_trc, first.color_trc, TRC_UNSPECIFIED),
        colorspace=_specified(ctx.colorspace, first.colorspace, SPC_UNSPECIFIED),
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
        tags=kept_tags(container.metadata),
        video_tags=kept_tags(stream.metadata),
    )
    try:
        RgbConverter(info).to_rgb(first)
    except (av.FFmpegError, ValueError) as exc:
        raise InputError(f"pixel format {pix_fmt} cannot be converted to RGB: {error_reason(exc)}", path) from None
    return info


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

    ``frames``: instead of a time range, the frames ``first`` to ``last`` (both included; indices
    count the decoded frames from 0, in presentation order; a ``last`` past the end stops at the
    end). Their timestamps are the input's, unshifted, so that restored chunks join into one
    timeline (``filmclean join``), and no other stream is read: a chunk is its video alone.

    ``context``: with a range, also yield up to this many frames just before ``start`` and just
    after ``end`` as items with ``context=True`` (neighbours for temporal restoration; they are not
    counted in ``index`` and must not be written).
    """

    def __init__(
        self,
        path: str | Path,
        start: float | None = None,
        end: float | None = None,
        context: int = 0,
        frames: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.context = max(0, int(context))
        if (start is not None and start < 0) or (end is not None and end <= (start or 0)):
            raise InputError(f"invalid time range start={start} end={end} (need 0 <= start < end)", self.path)
        if frames is not None and (start is not None or end is not None):
            raise InputError("a frame range and a time range cannot be combined", self.path)
        if frames is not None and not 0 <= frames[0] <= frames[1]:
            raise InputError(f"invalid frame range {frames[0]}-{frames[1]} (need 0 <= FIRST <= LAST)", self.path)
        self.frames = frames
        self.info = probe_video(self.path)
        self.start = None if start is None else Fraction(start)
        self.end = None if end is None else Fraction(end)
        self.container = open_input(self.path)
        self._video = cast(av.VideoStream, self.container.streams[self.info.video_stream])
        self._video.thread_type = "AUTO"
        self._time_base = cast(Fraction, self._video.time_base)  # never None for a demuxed stream
        self._copied = copied_streams(self.container) if frames is None else []
        # a frame range of a constant-rate stream starts decoding near its first frame, each frame's
        # number read from its timestamp; otherwise frames are counted from the file's start
        avg, base = self._video.average_rate, self._video.base_rate
        self._numbered_by_time = bool(
            frames is not None and frames[0] > _COUNT_FROM_START and self.info.fps and avg and base and avg == base
        )
        if self._numbered_by_time and not self._regular_start():
            self._numbered_by_time = False
        self._converter = RgbConverter(self.info)
        # QuickTime/MP4 index every sample (after edit lists); other containers may declare a count
        indexed = len(self._video.index_entries)
        self._expected_packets = indexed if "mov" in self.info.container else max(indexed, self.info.n_frames or 0)

    def _regular_start(self) -> bool:
        """Whether the first :data:`_COUNT_FROM_START` frames lie on the frame-rate grid (from
        their packets, without decoding); the file is opened afresh afterwards. A variable-rate
        stream that FFmpeg reports at one rate fails here."""
        times = []
        try:
            for packet in self.container.demux(self._video):
                if packet.size and packet.pts is not None:
                    times.append(packet.pts * self._time_base - self.info.start_time)
                if len(times) >= _COUNT_FROM_START:
                    break
        except av.FFmpegError:
            return False
        finally:
            self.container.close()
            self.container = open_input(self.path)
            self._video = cast(av.VideoStream, self.container.streams[self.info.video_stream])
            self._video.thread_type = "AUTO"
        return len(times) >= _COUNT_FROM_START and all(self._on_grid(t, i) for i, t in enumerate(sorted(times)))

    def _on_grid(self, t: Fraction, number: int) -> bool:
        """Whether time ``t`` (seconds from the first frame) is frame ``number``'s slot."""
        return abs(t - Fraction(number) / self.info.fps) <= Fraction(1, 4) / self.info.fps

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
        try:
            yield from self._read()
        except _Overshot:  # the seek landed past the range's start: count from the file's start
            self.container.close()
            self.container = open_input(self.path)
            self._video = cast(av.VideoStream, self.container.streams[self.info.video_stream])
            self._video.thread_type = "AUTO"
            self._numbered_by_time = False
            yield from self._read()

    def _read(self) -> Iterator[VideoFrameItem | PacketItem]:
        streams = [self._video, *self._copied]
        state = _ReadState(shift=self._seek_start(streams))
        selected = {s.index for s in streams}
        try:
            # every stream is demuxed so that the file's extent is known; only ``streams`` are used
            for packet in self.container.demux():
                index = packet.stream.index  # PyAV's end-of-stream packets all say stream_index 0
                if packet.size:
                    state.data_end = _later(state.data_end, _packet_end(packet))
                if index not in selected:
                    continue
                if index == self._video.index:
                    yield from self._video_items(packet, state)
                elif packet.size and (item := self._packet_item(packet, state)) is not None:
                    yield item
                if len(state.finished) == len(streams):
                    break
        except av.FFmpegError as exc:
            raise InputError(
                f"decoding failed after {state.count} frames: {error_reason(exc)} (file truncated or corrupt?)",
                self.path,
            ) from None
        if state.count == 0:
            if self.frames is not None:
                n = state.decoded
                if self._numbered_by_time:  # not all were decoded: the declared count, or duration x rate
                    n = self.info.n_frames or round((self.info.duration or 0) * float(self.info.fps))
                raise InputError(
                    f"no video frames in the requested range {self.frames[0]}-{self.frames[1]}: the video has {n} frame(s)",
                    self.path,
                )
            raise InputError(f"no video frames in the requested range start={self.start} end={self.end}", self.path)
        if self.start is None and self.end is None and self.frames is None:
            max_step = state.max_step * self._time_base
            self._check_complete(state.packets, state.last_pts, state.data_end, state.count, max_step)

    def _seek_start(self, streams: list[av.stream.Stream]) -> dict[int, int]:
        """Seek to just before ``start`` (when it is not the file's start) and return the ticks to
        subtract from each stream's timestamps so that ``start`` becomes 0 (none without ``start``)."""
        if self._numbered_by_time and self.frames is not None:
            first = max(0, self.frames[0] - self.context - 2)  # a little early: the check below
            origin = self.info.start_time + Fraction(first) / self.info.fps
            self.container.seek(math.floor(origin / self._time_base), stream=self._video)
        if self.start is None:
            return dict.fromkeys((s.index for s in streams), 0)
        origin = self.info.start_time + self.start  # becomes time 0 in the output
        # (the cast: PyAV's stub allows None, but FFmpeg gives every demuxed stream a time base)
        shift = {s.index: math.floor(origin / cast(Fraction, s.time_base)) for s in streams}
        if origin - _SEEK_MARGIN > self.info.start_time:
            self.container.seek(math.floor((origin - _SEEK_MARGIN) / self._time_base), stream=self._video)
        return shift

    def _video_items(self, packet: av.Packet, state: _ReadState) -> Iterator[VideoFrameItem]:
        """Count a packet of the video stream and yield the items of the frames it decodes to."""
        state.packets += packet.size > 0
        if packet.size > 0 and packet.pts is not None:
            state.last_pts = packet.pts if state.last_pts is None else max(state.last_pts, packet.pts)
        if self._video.index in state.finished:  # past ``end``: only copied streams still need packets
            return
        for frame in cast("list[av.VideoFrame]", packet.decode()):  # the video stream's packets
            yield from self._frame_items(frame, state)

    def _frame_items(self, frame: av.VideoFrame, state: _ReadState) -> Iterator[VideoFrameItem]:
        """The items for one decoded frame: itself when inside the range, preceded by the context
        frames held back before ``start``; a context frame after ``end``; nothing otherwise."""
        time_base = self._time_base
        pts = frame.pts
        if pts is None:  # no timestamp: derive one from the frame rate
            pts = round((self.info.start_time + state.decoded / self.info.fps) / time_base)
        number = state.decoded
        if self._numbered_by_time and self.frames is not None:
            t = pts * time_base - self.info.start_time
            number = round(t * self.info.fps)
            before = number < self.frames[0] - self.context
            # nothing has been yielded before the range: where the seek landed past its start, or a
            # frame there is off the frame-rate grid, start again counting from the file's start
            if (state.decoded == 0 and not before) or (before and not self._on_grid(t, number)):
                raise _Overshot
        state.decoded += 1
        if state.prev_pts is not None:
            state.max_step = max(state.max_step, pts - state.prev_pts)
        state.prev_pts = pts
        shift = state.shift[self._video.index]
        if self.frames is None:
            position = self._position(pts, time_base)
        else:
            position = -1 if number < self.frames[0] else (1 if number > self.frames[1] else 0)
        if position > 0:
            if state.after < self.context and state.count > 0:
                state.after += 1
                yield self._frame_item(frame, -1, pts - shift, context=True)
            if state.after >= self.context or state.count == 0:
                state.finished.add(self._video.index)
        elif position < 0:
            if self.context:
                state.before = [*state.before, (frame, pts)][-self.context :]
        else:
            for old_frame, old_pts in state.before:
                yield self._frame_item(old_frame, -1, old_pts - shift, context=True)
            state.before = []
            yield self._frame_item(frame, state.count, pts - shift)
            state.count += 1

    def _frame_item(self, frame: av.VideoFrame, index: int, pts: int, context: bool = False) -> VideoFrameItem:
        rgb, alpha = self._converter.to_rgb(self._checked(frame))
        return VideoFrameItem(index, pts, self._time_base, rgb, alpha, context=context)

    def _packet_item(self, packet: av.Packet, state: _ReadState) -> PacketItem | None:
        """A packet of a copied stream with its timestamps shifted, when it lies in the range; marks
        its stream finished once past ``end``."""
        index = packet.stream.index
        ticks = packet.pts if packet.pts is not None else packet.dts
        position = self._position(ticks, packet.time_base)
        if position > 0:
            state.finished.add(index)
        elif position == 0:
            if packet.pts is not None:
                packet.pts -= state.shift[index]
            if packet.dts is not None:
                packet.dts -= state.shift[index]
            return PacketItem(packet)
        return None

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
        return matroska_duration(self.path)

    def _reached_end(self, last_pts: int | None) -> bool:
        """Whether the last video packet lies in the final frame slot of the declared duration: an
        AVI with dropped (repeat-previous) frames declares more frames than it holds packets, yet
        it is complete."""
        if last_pts is None or not self.info.fps:
            return False
        last = last_pts * self._time_base - self.info.start_time
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


class _Overshot(Exception):
    """A seek for a frame range cannot be trusted: it landed after the range's first frame, or
    the frames before the range are off the frame-rate grid."""


@dataclass
class _ReadState:
    """What one pass of :meth:`VideoReader.__iter__` has seen so far."""

    shift: dict[int, int]  # ticks subtracted from each read stream's timestamps
    finished: set[int] = field(default_factory=set)  # streams that reached ``end``
    count: int = 0  # range frames yielded
    decoded: int = 0  # video frames decoded
    packets: int = 0  # video packets with data
    after: int = 0  # context frames yielded after ``end``
    last_pts: int | None = None  # of the last video packet with data
    data_end: Fraction | None = None  # latest packet end (seconds) of any stream
    prev_pts: int | None = None  # of the previous decoded frame
    max_step: int = 0  # largest pts step between decoded frames (VFR)
    # the last ``context`` frames before ``start``, with their pts
    before: list[tuple[av.VideoFrame, int]] = field(default_factory=list)


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
