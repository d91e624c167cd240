"""Pixel formats of video streams: their components, the closest format an encoder offers, and the
conversion between decoded frames and float RGB.

Colour conversion (:class:`RgbConverter`): YUV frames are converted to RGB and back with the
source's matrix and range (BT.709 for unspecified HD, BT.601 for unspecified SD), so an identity
pass does not shift colours; RGB and greyscale frames are handled natively (an identity pass of
FFV1 RGB/grey is bit-exact). YUV frames become RGB48 before the float conversion (8-bit values are
scaled exactly: ``v * 257 / 65535 == v / 255``).

Colour tags are FFmpeg enum values (:data:`RANGE_MPEG` = limited, :data:`RANGE_JPEG` = full, ...).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import av
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from filmclean.io import direct_format, frame_samples, join_channels, make_frame, split_channels

if TYPE_CHECKING:
    from filmclean.io.video import VideoInfo

RANGE_UNSPECIFIED, RANGE_MPEG, RANGE_JPEG = 0, 1, 2
"""AVColorRange: unspecified, limited ("MPEG") and full ("JPEG") range."""
SPC_RGB, SPC_BT709, SPC_UNSPECIFIED = 0, 1, 2
"""AVColorSpace (YUV matrix): RGB, BT.709, unspecified."""
PRI_UNSPECIFIED = TRC_UNSPECIFIED = 2
"""AVColorPrimaries / AVColorTransferCharacteristic: unspecified."""

_SWS_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND  # best YUV->RGB->YUV round trip
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


def components(pix_fmt: str) -> tuple[av.VideoFormat, list, bool]:
    """``(format, colour components, has alpha)``; palette formats count as 8-bit RGB."""
    fmt = av.VideoFormat(pix_fmt)
    if fmt.has_palette:
        fmt = av.VideoFormat("rgb24")
    colour = [c for c in fmt.components if not c.is_alpha]
    return fmt, colour, len(colour) < len(fmt.components)


def is_grey(pix_fmt: str) -> bool:
    """Whether ``pix_fmt`` has a single colour component."""
    return len(components(pix_fmt)[1]) == 1


def is_yuv(pix_fmt: str) -> bool:
    """Whether ``pix_fmt`` stores colour as luma and chroma (not RGB, not grey)."""
    fmt, colour, _ = components(pix_fmt)
    return not fmt.is_rgb and len(colour) > 1


def subsampling(fmt: av.VideoFormat) -> tuple[int, int]:
    """log2 horizontal and vertical chroma subsampling (0, 0 for 4:4:4, RGB and grey)."""
    if fmt.is_rgb or len(fmt.components) < 3:
        return 0, 0
    return int(math.log2(1024 // fmt.chroma_width(1024))), int(math.log2(1024 // fmt.chroma_height(1024)))


def chroma_fits(width: int, height: int, pix_fmt: str) -> bool:
    """Whether a ``width`` x ``height`` picture holds whole chroma samples in ``pix_fmt`` (e.g. even
    width and height for 4:2:0); always true for 4:4:4, RGB and grey."""
    sx, sy = subsampling(components(pix_fmt)[0])
    return width % (1 << sx) == 0 and height % (1 << sy) == 0


def _format_cost(src: str, cand: str) -> tuple:
    """Lexicographic cost of storing ``src`` pixels as ``cand``: losses first, then changes."""
    s_fmt, s_colour, s_alpha = components(src)
    c_fmt, c_colour, c_alpha = components(cand)
    s_bits, c_bits = max(c.bits for c in s_colour), max(c.bits for c in c_colour)
    s_sub, c_sub = subsampling(s_fmt), subsampling(c_fmt)
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


# --------------------------------------------------------------------------- colour conversion


def _matrix(colorspace: int, height: int) -> Colorspace:
    """swscale matrix for an AVColorSpace; unspecified means BT.709 for HD, BT.601 for SD."""
    if colorspace in _SWS_MATRIX:
        return _SWS_MATRIX[colorspace]
    return Colorspace.ITU709 if height >= 720 else Colorspace.ITU601


def _yuv_range(info: VideoInfo) -> int:
    if info.color_range != RANGE_UNSPECIFIED:
        return info.color_range
    return RANGE_JPEG if info.pix_fmt.startswith("yuvj") else RANGE_MPEG


class RgbConverter:
    """Frame <-> float RGB for one stream. Direct formats (RGB, grey) are read and written as
    native integers (exact); others go through swscale as RGB48 (RGBA64 with alpha) using the
    stream's YUV ``matrix`` and ``yuv_range``."""

    def __init__(self, info: VideoInfo, pix_fmt: str | None = None) -> None:
        self.pix_fmt = pix_fmt or info.pix_fmt
        fmt, colour, self.alpha = components(self.pix_fmt)
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
