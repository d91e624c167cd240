"""Writing video files through PyAV: re-encode float RGB frames, copy the other streams bit-exactly.

- :class:`VideoWriter` encodes frames and muxes the copied packets bit-exactly into a new file that
  appears under its final name only after a successful :meth:`VideoWriter.close`.
- :class:`MaskWriter` writes a greyscale damage-mask video matching a source.

The encoder and its pixel format are chosen from the output extension and the source
(:data:`DEFAULT_CODECS`, :func:`filmclean.io.pixfmt.closest_pix_fmt`); frames come from
:class:`filmclean.io.video.VideoReader` and are described by its :class:`~filmclean.io.video.VideoInfo`.

What is kept from input to output: frame count, size, sample aspect ratio, frame rate, every
frame's pts (VFR too; rescaled only when the container forces another time base, e.g. Matroska's
1 ms; a pts within half an input tick of the exact frame-rate grid, like Matroska's
millisecond-rounded 1/24 s steps, is written exactly on the grid so constant-rate video stays
constant-rate), display matrix (rotation/flip), colour tags (range, primaries, transfer, matrix),
timecode, container and stream tags (title, language, ...), bit depth and chroma layout where
the output codec allows.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Mapping
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import av.container
import numpy as np

from filmclean.errors import OutputError
from filmclean.io import check_output_path, error_reason, partial_path, remove_stale_partials, replace_file
from filmclean.io.pixfmt import (
    PRI_UNSPECIFIED,
    RANGE_JPEG,
    RANGE_MPEG,
    RANGE_UNSPECIFIED,
    SPC_BT709,
    SPC_RGB,
    SPC_UNSPECIFIED,
    TRC_UNSPECIFIED,
    RgbConverter,
    chroma_fits,
    closest_pix_fmt,
    components,
    is_yuv,
    subsampling,
)
from filmclean.io.video import PacketItem, VideoFrameItem, VideoInfo, copied_streams, kept_tags, open_input

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
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


# --------------------------------------------------------------------------- encoders


def _encoder_formats(codec: str) -> list[str]:
    return [f.name for f in (av.Codec(codec, "w").video_formats or [])]


def _encoder_opens(codec: str, width: int, height: int, pix_fmt: str, options: Mapping[str, str]) -> bool:
    """Whether FFmpeg's ``codec`` encoder accepts this picture size, pixel format and options (a
    trial open of a throw-away encoder; nothing is encoded)."""
    ctx = cast(av.VideoCodecContext, av.CodecContext.create(codec, "w"))  # a video encoder's context
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


# --------------------------------------------------------------------------- writing


def _output_colour(info: VideoInfo, pix_fmt: str) -> tuple[tuple[int, int, int, int], VideoInfo]:
    """Colour tags ``(range, primaries, trc, colorspace)`` for an output in ``pix_fmt``, and the
    :class:`VideoInfo` whose matrix/range the RGB -> ``pix_fmt`` conversion must use.

    YUV from YUV keeps the input's matrix and range tags (``yuvj*`` inputs are tagged full range);
    YUV from RGB/grey uses and tags BT.709 limited range; RGB output is tagged as RGB; grey output
    keeps the input's tags. Primaries and transfer are always the input's (no transfer conversion)."""
    colour_range, colorspace = info.color_range, info.colorspace
    if is_yuv(pix_fmt):
        if not is_yuv(info.pix_fmt):
            colour_range, colorspace = RANGE_MPEG, SPC_BT709
        elif info.pix_fmt.startswith("yuvj"):
            colour_range = RANGE_JPEG
    elif components(pix_fmt)[0].is_rgb:
        colorspace = SPC_RGB
        if is_yuv(info.pix_fmt):
            colour_range = RANGE_UNSPECIFIED
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
            raise OutputError(
                f"encoder {self.codec} cannot write pixel format {self.pix_fmt}; it supports {supported}", self.path
            )
        self._check_pix_fmt(explicit=pix_fmt is not None)
        options = self._options(crf, preset, codec_options)
        self._colour, convert = _output_colour(info, self.pix_fmt)
        self._converter = RgbConverter(convert, self.pix_fmt)
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
        full_chroma = info.is_rgb or info.is_grey or subsampling(components(info.pix_fmt)[0]) == (0, 0)
        if self.codec == "prores_ks":
            if info.has_alpha:
                return "yuva444p10le"
            return "yuv444p10le" if full_chroma and not info.is_grey else "yuv422p10le"
        if self.codec in ("libx264", "libx265"):
            depth = "10le" if info.bits > 8 else ""
            choices = [f"yuv420p{depth}", f"yuv422p{depth}", f"yuv444p{depth}"]
            return next((f for f in choices if chroma_fits(info.width, info.height, f)), choices[0])
        return closest_pix_fmt(info.pix_fmt, formats)

    def _check_pix_fmt(self, explicit: bool) -> None:
        """Refuse what the chosen pixel format cannot do: whole chroma samples for H.264/HEVC, and
        the source's alpha unless ``explicit`` (the caller chose the format, and so the loss)."""
        info = self.info
        if self.codec in ("libx264", "libx265") and not chroma_fits(info.width, info.height, self.pix_fmt):
            sx, sy = subsampling(components(self.pix_fmt)[0])
            sides = (("width", info.width, sx), ("height", info.height, sy))
            odd = " and ".join(name for name, size, shift in sides if size % (1 << shift))
            raise OutputError(
                f"{self.codec} cannot encode a {info.width}x{info.height} picture as {self.pix_fmt}: its chroma "
                f"subsampling needs an even {odd}; use a 4:4:4 pixel format (e.g. yuv444p) or .mkv (FFV1)",
                self.path,
            )
        if info.has_alpha and not explicit and not components(self.pix_fmt)[2]:
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
            # a video encoder (one without pixel formats was refused in __init__)
            stream = cast(
                av.VideoStream, self.container.add_stream(self.codec, rate=info.fps, time_base=_encoder_time_base(info))
            )
        except ValueError as exc:
            reason = error_reason(exc)
            raise OutputError(
                f"{self.path.suffix} files cannot hold {self.codec} video ({reason})", self.path
            ) from None
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, self.pix_fmt
        ctx = stream.codec_context
        if info.sample_aspect_ratio:
            ctx.sample_aspect_ratio = info.sample_aspect_ratio
        stream.thread_type = "AUTO"
        if "g" in options:
            ctx.gop_size = int(options.pop("g"))
        stream.options = options  # type: ignore[assignment]  # PyAV takes str -> str; stub says dict[str, object]
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
            with open_input(Path(template)) as container:
                return self._add_copies(container)
        copies = {}
        for src in copied_streams(template):
            try:
                out = self.container.add_stream_from_template(src)
            except ValueError:
                hint = "" if self.path.suffix.lower() == ".mkv" else "; use .mkv"
                raise OutputError(
                    f"{src.type} stream #{src.index} ({src.codec_context.name}) cannot be stored in a "
                    f"{self.path.suffix} file{hint}",
                    self.path,
                ) from None
            out.metadata.update(dict(kept_tags(src.metadata)))
            layout = getattr(src.codec_context, "layout", None)
            if layout is not None and layout.nb_channels in _DEFAULT_LAYOUTS and layout.channels[0].name == "NONE":
                # unordered channels (e.g. PCM from Matroska): MP4/QuickTime need a layout to close
                out_ctx = cast(av.AudioCodecContext, out.codec_context)  # a layout means an audio stream
                out_ctx.layout = _DEFAULT_LAYOUTS[layout.nb_channels]
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
    rotation, timecode). ``.mkv``/``.avi``: FFV1 ``gray`` (8-bit sources, or ``bits=8``) or
    ``gray16le`` (deeper sources, or ``bits=16``);
    ``.mov``: ProRes 422 HQ; ``.mp4``: H.264. Other behaviour (atomic file, errors) as
    :class:`VideoWriter`."""

    def __init__(self, path: str | Path, info: VideoInfo, *, force: bool = False, bits: int | None = None) -> None:
        if bits not in (None, 8, 16):
            raise OutputError(f"mask bits must be 8 or 16, got {bits}", path)
        deep = bits == 16 if bits is not None else info.bits > 8
        grey = "gray16le" if deep else "gray"
        mask_info = replace(
            info,
            pix_fmt=grey,
            bits=16 if deep else 8,
            has_alpha=False,
            is_rgb=False,
            color_range=RANGE_JPEG,
            color_primaries=PRI_UNSPECIFIED,
            color_trc=TRC_UNSPECIFIED,
            colorspace=SPC_UNSPECIFIED,
        )
        super().__init__(path, mask_info, force=force)

    def write(self, item: VideoFrameItem, mask: np.ndarray) -> None:
        """Encode ``mask`` (float32 ``(H, W)`` in ``[0, 1]``) at ``item``'s pts."""
        rgb = np.repeat(np.asarray(mask, dtype=np.float32)[:, :, None], 3, axis=2)
        self.write_frame(replace(item, rgb=rgb, alpha=None))
