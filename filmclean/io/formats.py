"""The per-format codecs behind :func:`filmclean.io.images.read_image` and
:func:`~filmclean.io.images.write_image`: PNG, DPX, OpenEXR, TIFF, JPEG.

Each reader takes the file's bytes and the pixel limit and returns ``(samples, bits, meta)``: the
integer or float samples as stored (grey, grey+alpha, RGB or RGBA), their depth, and the
per-format metadata that its writer needs to write the picture back in the same format, bit depth
and layout (see :class:`filmclean.io.images.ImageData`). A reader checks the picture size its
header declares against the limit (raising :class:`ImageTooLarge`) before decoding any pixel.
Each writer takes an :class:`~filmclean.io.images.ImageData` and returns the file's bytes.

Libraries: PyAV (FFmpeg) decodes/encodes PNG, DPX and EXR pixels, tifffile handles TIFF, OpenCV
handles JPEG. Where they drop metadata the file-level structures are carried over by hand: the
whole DPX header (transfer, colorimetric, film and TV headers incl. timecode and frame rate, user
data), PNG ancillary chunks (ICC profile, gamma, chromaticities, resolution, text, EXIF) and JPEG
APPn/COM segments (EXIF, ICC, XMP).

Known limits: palette and 1/2/4-bit PNGs are written back as 8-bit RGB(A)/grey; DPX output covers
8/10/12/16-bit RGB, 8/16-bit RGBA and 8/16-bit luma (10-bit is written packed "method A"; other
layouts raise :class:`OutputError`); EXR output supports the none/RLE/ZIP compressions (PIZ, B44,
DWA ... inputs are written ZIP, which is lossless) and keeps only the basic header attributes;
TIFF must be single-page RGB or greyscale, 8/16-bit or float, and LZW/PackBits/float-predictor
TIFFs need the ``imagecodecs`` package; JPEG is re-encoded (lossy) at quality 95 with the
source's chroma subsampling, as YCbCr or greyscale (a CMYK/YCCK JPEG is read as RGB and written
back as an RGB JPEG without its Adobe segment and CMYK ICC profile).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import av
import cv2
import numpy as np
import tifffile

from filmclean.errors import OutputError
from filmclean.io import Bits, frame_samples, join_channels, make_frame

if TYPE_CHECKING:
    from filmclean.io.images import ImageData

Reader = Callable[[bytes, int], tuple[np.ndarray, Bits, dict[str, Any]]]
"""``(file bytes, max pixels) -> (samples, bits, meta)``."""
Writer = Callable[["ImageData"], bytes]
"""``image -> file bytes``."""

LIBRARY_ERRORS = (
    av.FFmpegError,
    tifffile.TiffFileError,
    cv2.error,
    zlib.error,
    struct.error,
    ValueError,
    KeyError,
    IndexError,
    OSError,
)
"""Exceptions the image libraries raise for bad data; anything else is a bug and propagates."""


class ImageTooLarge(ValueError):
    """The header declares more pixels than the reader's limit (turned into an InputError)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"{width}x{height}")
        self.width = width
        self.height = height


def _check_size(width: int, height: int, max_pixels: int) -> None:
    """Raise :class:`ImageTooLarge` when a header's ``width`` x ``height`` exceeds ``max_pixels``."""
    if int(width) * int(height) > max_pixels:
        raise ImageTooLarge(int(width), int(height))


# --------------------------------------------------------------------------- PyAV still codecs


def _decode_still(codec: Literal["png", "dpx", "exr"], data: bytes) -> av.VideoFrame:
    """Decode a whole-file still image (PNG/DPX/EXR bytes) with FFmpeg's ``codec`` decoder."""
    ctx = av.CodecContext.create(codec, "r")
    frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
    if not frames:
        raise ValueError("no picture could be decoded")
    return frames[0]


def _encode_still(
    codec: Literal["png", "dpx", "exr"], frame: av.VideoFrame, options: dict[str, str] | None = None
) -> bytes:
    """Encode one frame with FFmpeg's still-image ``codec`` encoder and return the file bytes."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width = frame.width
    ctx.height = frame.height
    ctx.pix_fmt = frame.format.name
    ctx.time_base = Fraction(1, 1)
    if options:
        ctx.options = options
    frame.pts = 0
    packets = ctx.encode(frame) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


# --------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks that describe the picture and stay valid when the pixels are re-encoded with
# the same colour type and bit depth. bKGD and sBIT depend on the colour type, so they are dropped
# for palette / low-bit-depth sources, which are written back as 8-bit RGB(A)/grey.
_PNG_KEEP = {
    b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"mDCV", b"cLLI", b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf",
}  # fmt: skip
_PNG_KEEP_SAME_LAYOUT = {b"sBIT", b"bKGD"}


def _png_chunks(data: bytes) -> list[tuple[bytes, memoryview, memoryview]]:
    """``(type, body, raw chunk bytes)`` for every chunk, checking structure and CRCs. Bodies and raw
    chunks are views into ``data`` (no copies: a 100-megapixel PNG's IDAT is ~100 MB).

    Raises ``ValueError`` describing the first defect (bad signature, truncation, CRC mismatch,
    missing IHDR/IDAT/IEND)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    view = memoryview(data)
    chunks = []
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("file is truncated")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"file is truncated inside the {kind.decode('latin-1')} chunk")
        body = view[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise ValueError(f"corrupt data (CRC mismatch in {kind.decode('latin-1')} chunk)")
        chunks.append((kind, body, view[pos:end]))
        pos = end
        if kind == b"IEND":
            break
    kinds = [c[0] for c in chunks]
    if not kinds or kinds[0] != b"IHDR" or b"IDAT" not in kinds or kinds[-1] != b"IEND":
        raise ValueError("file is truncated or incomplete (missing IHDR, IDAT or IEND)")
    return chunks


def _read_png(data: bytes, max_pixels: int) -> tuple[np.ndarray, Bits, dict[str, Any]]:
    chunks = _png_chunks(data)
    ihdr = chunks[0][1]
    if len(ihdr) != 13:
        raise ValueError(f"corrupt IHDR chunk ({len(ihdr)} bytes, 13 expected)")
    width, height = struct.unpack_from(">II", ihdr)
    _check_size(width, height, max_pixels)
    bit_depth, colour_type = ihdr[8], ihdr[9]
    keep = _PNG_KEEP | (_PNG_KEEP_SAME_LAYOUT if colour_type != 3 and bit_depth >= 8 else set())
    kept = []
    after_idat = False
    for kind, _, raw in chunks:
        after_idat = after_idat or kind == b"IDAT"
        if kind in keep:
            kept.append((bytes(raw), after_idat))
    samples, bits = frame_samples(_decode_still("png", data))
    return samples, bits, {"chunks": kept}


def _write_png(image: ImageData) -> bytes:
    grey_fmt = {1: "gray", 2: "ya8"} if image.bits == 8 else {1: "gray16be", 2: "ya16be"}
    rgb_fmt = {3: "rgb24", 4: "rgba"} if image.bits == 8 else {3: "rgb48be", 4: "rgba64be"}
    channels = (1 if image.grey else 3) + (image.alpha is not None)
    frame = make_frame(join_channels(image.rgb, image.alpha, image.grey, image.bits), {**grey_fmt, **rgb_fmt}[channels])
    data = _encode_still("png", frame)  # the samples are freed before encoding
    del frame
    encoded = _png_chunks(data)
    kept = image.meta.get("chunks", [])
    out: list[bytes | memoryview] = [_PNG_SIGNATURE, encoded[0][2]]
    out += [raw for raw, after in kept if not after]
    out += [raw for kind, _, raw in encoded[1:-1] if kind[:1].isupper()]  # critical chunks only
    out += [raw for raw, after in kept if after]
    out.append(encoded[-1][2])
    return b"".join(out)


# --------------------------------------------------------------------------- DPX


def _dpx_endian(data: bytes) -> str:
    if data[:4] == b"SDPX":
        return ">"
    if data[:4] == b"XPDS":
        return "<"
    raise ValueError("not a DPX file (bad magic number)")


def _bcd_timecode(value: int) -> str | None:
    """SMPTE 268M BCD timecode word -> ``"hh:mm:ss:ff"`` (``None`` when undefined/invalid)."""
    if value == 0xFFFFFFFF:
        return None
    digits = [(value >> shift) & 0xF for shift in range(28, -4, -4)]
    if any(d > 9 for d in digits):
        return None
    pairs = [digits[i] * 10 + digits[i + 1] for i in range(0, 8, 2)]
    return "{:02d}:{:02d}:{:02d}:{:02d}".format(*pairs)


def _dpx_rate(value: float) -> float | None:
    return value if np.isfinite(value) and 0 < value < 1000 else None


def _read_dpx(data: bytes, max_pixels: int) -> tuple[np.ndarray, Bits, dict[str, Any]]:
    end = _dpx_endian(data)
    (offset,) = struct.unpack_from(end + "I", data, 4)
    (size,) = struct.unpack_from(end + "I", data, 16)
    if len(data) < 1664 or not 1664 <= offset <= len(data):
        raise ValueError("file is truncated or its header is invalid")
    if len(data) < size:
        raise ValueError(f"file is truncated ({len(data)} of {size} bytes)")
    width, height = struct.unpack_from(end + "II", data, 772)  # pixels per line, lines per element
    _check_size(width, height, max_pixels)
    samples, bits = frame_samples(_decode_still("dpx", data))
    meta: dict[str, Any] = {
        "header": data[:offset],
        "big_endian": end == ">",
        "transfer": data[801],
        "colorimetric": data[802],
        "timecode": None,
        "frame_rate": None,
    }
    if offset >= 2048:
        meta["frame_rate"] = _dpx_rate(struct.unpack_from(end + "f", data, 1724)[0]) or _dpx_rate(
            struct.unpack_from(end + "f", data, 1940)[0]
        )
        meta["timecode"] = _bcd_timecode(struct.unpack_from(end + "I", data, 1920)[0])
    return samples, bits, meta


def _dpx_pix_fmt(bits: Bits, channels: int, big_endian: bool) -> str:
    e = "be" if big_endian else "le"
    table: dict[tuple[Bits, int], str] = {
        (8, 1): "gray",
        (8, 3): "rgb24",
        (8, 4): "rgba",
        (10, 3): f"gbrp10{e}",
        (12, 3): f"gbrp12{e}",
        (16, 1): f"gray16{e}",
        (16, 3): f"rgb48{e}",
        (16, 4): f"rgba64{e}",
    }
    if (bits, channels) not in table:
        layout = {1: "greyscale", 2: "greyscale+alpha", 3: "RGB", 4: "RGBA"}[channels]
        raise OutputError(f"writing {bits}-bit {layout} DPX is not supported")
    return table[(bits, channels)]


def _write_dpx(image: ImageData) -> bytes:
    """Encode the pixels with FFmpeg's DPX encoder, then put them behind the source header.

    The source header (file/image/orientation/film/TV headers and user data) is kept; only the
    structural fields describing the new pixel data are rewritten: data offset, file size, element
    count (1), image size, and element 1's sign/descriptor/bit depth/packing/encoding/offset/padding.
    An identity pass of a file whose pixel layout matches FFmpeg's (e.g. 10-bit filled method A
    without padding) reproduces it byte for byte.
    """
    samples = join_channels(image.rgb, image.alpha, image.grey, image.bits)
    source = image.meta.get("header", b"")
    big_endian = bool(image.meta.get("big_endian", True))
    encoded = _encode_still("dpx", make_frame(samples, _dpx_pix_fmt(image.bits, samples.shape[2], big_endian)))
    enc = _dpx_endian(encoded)
    (enc_offset,) = struct.unpack_from(enc + "I", encoded, 4)
    pixels = encoded[enc_offset:]
    if len(source) < 2048:  # no (complete) film/TV headers: pad them as "undefined"
        header = bytearray(source[:1664] if len(source) >= 1664 else encoded[:1664])
        header += b"\xff" * (2048 - len(header))
        out_end = _dpx_endian(bytes(header))
        struct.pack_into(out_end + "III", header, 24, 1664, 384, 0)
    else:
        header = bytearray(source)
        out_end = _dpx_endian(source)

    def copy(fmt: str, pos: int) -> None:
        struct.pack_into(out_end + fmt, header, pos, *struct.unpack_from(enc + fmt, encoded, pos))

    struct.pack_into(out_end + "I", header, 4, len(header))
    struct.pack_into(out_end + "I", header, 16, len(header) + len(pixels))
    struct.pack_into(out_end + "H", header, 770, 1)
    copy("II", 772)  # pixels per line, lines per element
    copy("I", 780)  # data sign
    header[800] = encoded[800]  # descriptor
    header[803] = encoded[803]  # bit depth
    copy("HH", 804)  # packing, encoding
    struct.pack_into(out_end + "I", header, 808, len(header))
    copy("II", 812)  # end-of-line / end-of-image padding
    return bytes(header) + pixels


# --------------------------------------------------------------------------- EXR

_EXR_COMPRESSION = {0: "none", 1: "rle", 2: "zip1", 3: "zip16"}


def _exr_attributes(data: bytes) -> dict[bytes, bytes]:
    """The attributes of an OpenEXR (first part's) header: name -> raw value bytes.

    Raises ``ValueError`` for a bad magic number or a header that is truncated or malformed."""
    if data[:4] != b"\x76\x2f\x31\x01":
        raise ValueError("not an OpenEXR file (bad magic number)")
    attributes: dict[bytes, bytes] = {}
    pos = 8
    while True:
        name_end = data.index(b"\0", pos)
        if name_end == pos:
            return attributes
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value = type_end + 5
        if size < 0 or value + size > len(data):
            raise ValueError("corrupt or truncated header")
        attributes[data[pos:name_end]] = data[value : value + size]
        pos = value + size


def _exr_compression(data: bytes) -> int:
    """The ``compression`` attribute of an OpenEXR header (0 = none when absent)."""
    value = _exr_attributes(data).get(b"compression", b"\0")
    return value[0] if value else 0


def _read_exr(data: bytes, max_pixels: int) -> tuple[np.ndarray, Bits, dict[str, Any]]:
    attributes = _exr_attributes(data)
    window = attributes.get(b"dataWindow", b"")
    if len(window) == 16:  # box2i: xMin, yMin, xMax, yMax (inclusive)
        x0, y0, x1, y1 = struct.unpack("<4i", window)
        _check_size(max(0, x1 - x0 + 1), max(0, y1 - y0 + 1), max_pixels)
    compression = _exr_compression(data)
    samples, bits = frame_samples(_decode_still("exr", data))
    return samples, bits, {"compression": _EXR_COMPRESSION.get(compression, "zip16")}


def _write_exr(image: ImageData) -> bytes:
    samples = join_channels(image.rgb, image.alpha, image.grey, image.bits)
    pix_fmt = {1: "grayf32le", 3: "gbrpf32le", 4: "gbrapf32le"}.get(samples.shape[2])
    if pix_fmt is None:
        raise OutputError("writing greyscale+alpha EXR is not supported")
    options = {
        "format": "half" if image.bits == "half" else "float",
        "compression": image.meta.get("compression", "zip16"),
    }
    return _encode_still("exr", make_frame(samples, pix_fmt), options)


# --------------------------------------------------------------------------- TIFF

_TIFF_COPY_TAGS = (270, 271, 272, 274, 305, 306, 315, 316, 700, 33432, 33723, 34377, 34675)
"""Descriptive tags copied verbatim: description, make, model, orientation, software, date,
artist, host, XMP, copyright, IPTC, Photoshop, ICC profile."""

_TIFF_LOSSLESS = {1, 5, 8, 32773, 32946, 34925, 50000}
"""None, LZW, Adobe deflate, PackBits, deflate, LZMA, Zstandard; others are rewritten deflate."""


def _needs_imagecodecs(compression: int, predictor: int) -> str:
    """The one-line reason for a TIFF codec that tifffile only has through imagecodecs."""
    what = tifffile.COMPRESSION(compression).name
    if predictor > 1:
        what += f" with {tifffile.PREDICTOR(predictor).name} predictor"
    return f"TIFF {what} needs the imagecodecs package (pip install imagecodecs)"


def _read_tiff(data: bytes, max_pixels: int) -> tuple[np.ndarray, Bits, dict[str, Any]]:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if len(tif.pages) != 1:
            raise ValueError(f"multi-page TIFF ({len(tif.pages)} pages) is not supported")
        page = tif.pages[0]
        _check_size(page.imagewidth, page.imagelength * max(1, page.imagedepth), max_pixels)
        photometric = page.photometric
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            raise ValueError(f"TIFF photometric {photometric.name} is not supported (only RGB and greyscale)")
        try:
            samples = page.asarray()
        except (KeyError, ValueError) as exc:
            if "imagecodecs" not in str(exc):
                raise
            raise ValueError(_needs_imagecodecs(page.compression, page.predictor)) from None
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and page.samplesperpixel > 1:
            samples = np.moveaxis(samples, 0, -1)
        kind = samples.dtype
        if kind == np.uint8 or kind == np.uint16:
            if page.bitspersample != kind.itemsize * 8:
                raise ValueError(f"{page.bitspersample}-bit TIFF samples are not supported (8, 16 or float)")
            bits: Bits = kind.itemsize * 8
        elif kind == np.float32 or kind == np.float16:
            bits = "float" if kind == np.float32 else "half"
        else:
            raise ValueError(f"TIFF sample type {kind} is not supported (8/16-bit unsigned or float)")
        tags = page.tags
        resolution = None
        if "XResolution" in tags and "YResolution" in tags:
            resolution = (tags["XResolution"].value, tags["YResolution"].value)
        meta = {
            "photometric": int(photometric),
            "planarconfig": int(page.planarconfig),
            "compression": int(page.compression),
            "predictor": int(page.predictor),
            "extrasamples": tuple(int(x) for x in page.extrasamples),
            "resolution": resolution,
            "resolutionunit": int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else None,
            "tile": (page.tilelength, page.tilewidth) if page.is_tiled else None,
            "rowsperstrip": None if page.is_tiled else int(page.rowsperstrip),
            "tags": [
                (tag.code, int(tag.dtype), tag.count, tag.value) for code in _TIFF_COPY_TAGS if (tag := tags.get(code))
            ],
        }
    return samples, bits, meta


def _write_tiff(image: ImageData) -> bytes:
    meta = image.meta
    samples = join_channels(image.rgb, image.alpha, image.grey, image.bits)
    if image.bits == "half":
        samples = samples.astype(np.float16)
    channels = samples.shape[2]
    planar = meta.get("planarconfig", 1) == 2 and channels > 1
    data = np.moveaxis(samples, -1, 0) if planar else (samples[:, :, 0] if channels == 1 else samples)
    compression = meta.get("compression", 1)
    if compression not in _TIFF_LOSSLESS:
        compression = 8
    predictor = meta.get("predictor", 1) if compression != 1 else None
    buffer = io.BytesIO()
    try:
        tifffile.imwrite(
            buffer,
            data,
            photometric=meta.get("photometric", 1 if image.grey else 2),
            planarconfig=2 if planar else 1,
            extrasamples=meta.get("extrasamples") or None,
            compression=compression,
            predictor=predictor if predictor and predictor > 1 else None,
            resolution=meta.get("resolution"),
            resolutionunit=meta.get("resolutionunit"),
            tile=meta.get("tile"),
            rowsperstrip=meta.get("rowsperstrip"),
            software=False,
            metadata=None,
            extratags=[(code, dtype, count, value, True) for code, dtype, count, value in meta.get("tags", [])],
        )
    except (KeyError, ValueError) as exc:
        if "imagecodecs" not in str(exc):
            raise
        raise OutputError(f"writing: {_needs_imagecodecs(compression, predictor or 1)}") from None
    return buffer.getvalue()


# --------------------------------------------------------------------------- JPEG

_JPEG_SAMPLING = {
    (1, 1): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    (2, 1): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    (2, 2): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    (1, 2): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
    (4, 1): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
}
_JPEG_QUALITY = 95
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split a JPEG into its header segments ``(marker, raw bytes)`` up to the first SOS and the
    rest (scans through EOI and anything after it). Raises ``ValueError`` if the structure is
    broken or no EOI follows the first scan (truncated file)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise ValueError("corrupt header segments")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # entropy-coded data escapes 0xFF, so the next FFD9 is the real EOI
            if data.find(b"\xff\xd9", pos) < 0:
                raise ValueError("file is truncated (no end-of-image marker)")
            return segments, data[pos:]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        segments.append((marker, data[pos : pos + 2 + length]))
        pos += 2 + length


def _jpeg_frame_header(segments: list[tuple[int, bytes]]) -> tuple[int, int, int, tuple[int, int] | None]:
    """``(width, height, components, sampling)`` from the SOF segment; ``sampling`` is the first
    component's ``(horizontal, vertical)`` factors for a colour JPEG, else ``None``.

    Raises ``ValueError`` when there is no (complete) SOF segment. A height of 0 (set later by a
    DNL marker) is returned as 0."""
    for marker, raw in segments:
        if marker in _SOF_MARKERS:
            if len(raw) < 10 or len(raw) < 10 + 3 * raw[9]:
                raise ValueError("corrupt frame header (SOF segment too short)")
            height, width = struct.unpack_from(">HH", raw, 5)
            components = raw[9]
            sampling = None
            if components >= 3:
                factors = raw[11]
                sampling = (factors >> 4, factors & 0x0F)
            return width, height, components, sampling
    raise ValueError("no frame header (SOF segment) before the image data")


def _is_adobe_app14(marker: int, raw: bytes) -> bool:
    return marker == 0xEE and raw[4:9] == b"Adobe"


def _is_icc_app2(marker: int, raw: bytes) -> bool:
    return marker == 0xE2 and raw[4:16] == b"ICC_PROFILE\0"


def _jpeg_keep_segments(segments: list[tuple[int, bytes]], components: int | None) -> list[bytes]:
    """The source's APPn/COM segments that stay valid for the re-encoded picture.

    The re-encoded JPEG is always libjpeg YCbCr (3 components) or greyscale (1), whatever the
    source stored, so segments describing the source's *encoding* are dropped: the Adobe APP14
    segment (its colour transform flag would make decoders read YCbCr as RGB, or RGB as YCbCr), and
    for a CMYK/YCCK (4-component) source also its ICC profile (APP2 ``ICC_PROFILE``), a CMYK profile
    that would mislabel the RGB pixels. Everything else (JFIF, EXIF, XMP, an RGB/grey ICC profile,
    comments, other APPn) is kept. ``components=None`` (unknown) only drops the Adobe segment.
    """
    keep = []
    for marker, raw in segments:
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE) or _is_adobe_app14(marker, raw):
            continue
        if components == 4 and _is_icc_app2(marker, raw):
            continue
        keep.append(raw)
    return keep


def _read_jpeg(data: bytes, max_pixels: int) -> tuple[np.ndarray, Bits, dict[str, Any]]:
    segments, _ = _jpeg_segments(data)
    width, height, components, sampling = _jpeg_frame_header(segments)
    _check_size(width, height, max_pixels)
    # OpenCV (libjpeg) converts YCbCr, RGB, CMYK and YCCK JPEGs to BGR and keeps greyscale as one plane
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint8 or decoded.ndim not in (2, 3):
        raise ValueError("corrupt or unsupported JPEG data")
    if decoded.ndim == 3:
        if decoded.shape[2] != 3:
            raise ValueError(f"{decoded.shape[2]}-channel JPEG is not supported")
        decoded = decoded[:, :, ::-1]
    keep = _jpeg_keep_segments(segments, components)
    return decoded, 8, {"segments": keep, "sampling": sampling, "quality": _JPEG_QUALITY}


def _write_jpeg(image: ImageData) -> bytes:
    samples = join_channels(image.rgb, image.alpha, image.grey, image.bits)
    if samples.shape[2] in (2, 4):
        raise OutputError("JPEG cannot store an alpha channel")
    bgr = samples[:, :, 0] if samples.shape[2] == 1 else samples[:, :, ::-1]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(image.meta.get("quality", _JPEG_QUALITY))]
    sampling = image.meta.get("sampling")
    if sampling in _JPEG_SAMPLING:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, _JPEG_SAMPLING[sampling]]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), params)
    if not ok:
        raise OutputError("JPEG encoding failed")
    segments, scan = _jpeg_segments(buf.tobytes())
    kept = image.meta.get("segments")
    if kept is None:
        return buf.tobytes()
    # whoever filled meta, an Adobe APP14 never describes this YCbCr/grey encoding: leave it out
    kept = [raw for raw in kept if not _is_adobe_app14(raw[1], raw)]
    tables = [raw for marker, raw in segments if not (0xE0 <= marker <= 0xEF or marker == 0xFE)]
    return b"".join([b"\xff\xd8", *kept, *tables, scan])


# --------------------------------------------------------------------------- registry

READERS: dict[str, Reader] = {
    "png": _read_png, "dpx": _read_dpx, "exr": _read_exr, "tiff": _read_tiff, "jpeg": _read_jpeg,
}  # fmt: skip
"""Reader for each format name (see :func:`filmclean.io.images.image_format`)."""
WRITERS: dict[str, Writer] = {
    "png": _write_png, "dpx": _write_dpx, "exr": _write_exr, "tiff": _write_tiff, "jpeg": _write_jpeg,
}  # fmt: skip
"""Writer for each format name."""
