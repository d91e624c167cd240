"""Join restored chunks of one reel into one file without re-encoding (``filmclean join``).

Chunks come from ``filmclean restore --frames FIRST-LAST``: video alone, each frame at its source
timestamp. Joining copies their video packets in order -- so the timestamps are already continuous
-- and, given the source (``--source``), copies its audio, subtitle and data streams once, packet for
packet, as a whole ``restore`` run would. Parts that do not fit together are refused with one line
naming the part: another codec, size, pixel format, frame rate or time base; a gap or an overlap
between one part's last frame and the next part's first; a part without video, or with more than
video.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av

from ..errors import InputError, OutputError
from . import check_output_path, error_reason, partial_path, remove_stale_partials, replace_file
from .video import copied_streams, kept_tags, open_input

__all__ = ["JoinStats", "Part", "join_parts", "probe_part"]


@dataclass(frozen=True)
class Part:
    """What :func:`join_parts` checks of one chunk: its video stream's codec, picture, timing and the
    timestamps (stream ticks) of its first and last frames."""

    path: Path
    codec: str
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    rate: Fraction
    first_pts: int
    last_pts: int
    frames: int

    def fits(self) -> tuple[str, int, int, str, Fraction, Fraction]:
        """The properties every part must share."""
        return self.codec, self.width, self.height, self.pix_fmt, self.time_base, self.rate


@dataclass
class JoinStats:
    parts: int = 0
    frames: int = 0
    copied_packets: int = 0  # of the source's other streams


def probe_part(path: str | Path) -> Part:
    """Read a chunk's video stream and its frames' timestamps (from the packets, without decoding).

    Raises :class:`InputError` (one line) for a file that is missing, unreadable, holds no video or
    holds other streams besides it."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    with open_input(p) as c:
        videos = [s for s in c.streams if s.type == "video"]
        if len(videos) != 1:
            raise InputError(f"a part must hold one video stream, found {len(videos)}", p)
        if len(c.streams) != 1:
            raise InputError(
                "a part must hold video alone (restore --frames writes that; the source's audio is added by --source)",
                p,
            )
        v = cast(av.VideoStream, videos[0])
        pts = []
        try:
            for packet in c.demux(v):
                if packet.size and packet.pts is not None:
                    pts.append(packet.pts)
        except av.FFmpegError as exc:
            raise InputError(f"cannot read the part: {error_reason(exc)}", p) from None
        if not pts:
            raise InputError("the part holds no frames", p)
        rate = v.average_rate or v.base_rate or v.guessed_rate
        ctx = v.codec_context
        return Part(
            p,
            ctx.name,
            ctx.width,
            ctx.height,
            str(ctx.pix_fmt),
            cast(Fraction, v.time_base),
            Fraction(rate) if rate else Fraction(0),
            min(pts),
            max(pts),
            len(pts),
        )


def check_parts(parts: Sequence[Part]) -> None:
    """Refuse parts that do not make one continuous reel, in one line naming the first part that
    does not fit: properties that differ from the first part's, or a first frame that is not one
    frame period after the previous part's last (a gap: frames missing; an overlap: frames twice)."""
    if not parts:
        raise InputError("no parts to join", Path("."))
    head = parts[0]
    names = ("codec", "width", "height", "pixel format", "time base", "frame rate")
    for part in parts[1:]:
        for name, a, b in zip(names, head.fits(), part.fits(), strict=True):
            if a != b:
                raise InputError(f"{name} {b} differs from {head.path.name}'s {a}", part.path)
    for prev, part in zip(parts, parts[1:]):
        if not prev.rate:
            raise InputError("no frame rate: cannot check that the parts are continuous", prev.path)
        step = 1 / (prev.rate * prev.time_base)  # ticks per frame
        expected = prev.last_pts + step
        gap = (part.first_pts - expected) / step  # in frames
        if gap > Fraction(1, 2):
            missing = round(gap)
            raise InputError(
                f"a gap of {missing} frame(s) after {prev.path.name} (which ends at frame time "
                f"{float(prev.last_pts * prev.time_base):.3f} s)",
                part.path,
            )
        if gap < -Fraction(1, 2):
            raise InputError(
                f"overlaps {prev.path.name} by {round(-gap)} frame(s) (starts at "
                f"{float(part.first_pts * part.time_base):.3f} s)",
                part.path,
            )


def join_parts(
    parts: Sequence[str | Path], output: str | Path, source: str | Path | None = None, force: bool = False
) -> JoinStats:
    """Join the chunk files ``parts`` (in order) into ``output``, atomically.

    Video packets are copied unchanged (no re-encoding); with ``source`` its audio, subtitle and
    data streams are copied once, packet for packet and interleaved by time, and the source's
    container tags are kept. Raises :class:`InputError` for parts that do not fit together
    (:func:`check_parts`) and :class:`OutputError` for an output that cannot be written (an
    existing file without ``force``, a part or the source as output, a container that cannot hold
    a stream)."""
    probed = [probe_part(p) for p in parts]
    check_parts(probed)
    src = Path(source) if source is not None else None
    if src is not None and not src.exists():
        raise InputError("file not found", src)
    out = check_output_path(output, force=force)
    for path in [*(p.path for p in probed), *([src] if src is not None else [])]:
        if out.resolve() == path.resolve():
            raise OutputError("the output is one of the inputs", out)
    remove_stale_partials(out.absolute().parent, out)
    tmp = partial_path(out)
    stats = JoinStats(parts=len(probed))
    try:
        with av.open(str(tmp), "w") as container:  # the partial name keeps the extension: the muxer
            _join_into(container, probed, src, stats, out)
    except av.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"writing failed: {error_reason(exc)}", out) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_file(tmp, out)
    return stats


def _join_into(
    container: av.container.OutputContainer, parts: Sequence[Part], src: Path | None, stats: JoinStats, out: Path
) -> None:
    with open_input(parts[0].path) as first:
        template = first.streams.video[0]
        video = container.add_stream_from_template(template)
        video.metadata.update(dict(kept_tags(template.metadata)))
        container.metadata.update(dict(kept_tags(first.metadata)))
    source = open_input(src) if src is not None else None
    try:
        copies: dict[int, av.stream.Stream] = {}
        if source is not None:
            container.metadata.update(dict(kept_tags(source.metadata)))
            for s in copied_streams(source):
                try:
                    copies[s.index] = container.add_stream_from_template(s)
                except ValueError:
                    raise OutputError(
                        f"{s.type} stream #{s.index} of the source cannot be stored in a {out.suffix} file", out
                    ) from None
                copies[s.index].metadata.update(dict(kept_tags(s.metadata)))
        feeds: list[Iterator[_Timed]] = [_video_packets(parts, video, stats)]
        if source is not None and copies:
            feeds.append(_source_packets(source, copies, stats))
        for item in heapq.merge(*feeds, key=lambda t: t.key):
            item.packet.stream = item.target
            container.mux(item.packet)
    finally:
        if source is not None:
            source.close()


@dataclass
class _Timed:
    """A packet to mux, its output stream, and the key that orders it among the others: decoding
    time, then video before other streams, then file order."""

    key: tuple[Fraction, int, int]
    packet: av.Packet
    target: av.stream.Stream


def _dts_time(packet: av.Packet) -> Fraction:
    ticks = packet.dts if packet.dts is not None else packet.pts
    return Fraction(ticks or 0) * Fraction(packet.time_base or Fraction(1))


def _video_packets(parts: Sequence[Part], video: av.stream.Stream, stats: JoinStats) -> Iterator[_Timed]:
    """Every part's video packets, part after part."""
    n = 0
    for part in parts:
        with open_input(part.path) as c:
            for packet in c.demux(c.streams.video[0]):
                if packet.size:
                    n += 1
                    stats.frames += 1
                    yield _Timed((_dts_time(packet), 0, n), packet, video)


def _source_packets(
    source: av.container.InputContainer, copies: dict[int, av.stream.Stream], stats: JoinStats
) -> Iterator[_Timed]:
    """The source's packets of the copied streams, in file order."""
    n = 0
    for packet in source.demux([source.streams[i] for i in copies]):
        if packet.size:
            n += 1
            stats.copied_packets += 1
            yield _Timed((_dts_time(packet), 1, n), packet, copies[packet.stream_index])
