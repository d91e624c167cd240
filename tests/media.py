"""Builders for tiny test media (clips, still images), written with PyAV, OpenCV and tifffile
directly so that the I/O code under test is checked against independent writers.

Every builder writes into a path the caller chooses (normally under pytest's ``tmp_path``) and
returns that path; pixel content is deterministic (:func:`pattern`).
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import tifffile

DEFAULT_CODECS = {".mkv": "ffv1", ".avi": "ffv1", ".mov": "prores_ks", ".mp4": "libx264"}
AUDIO_RATE = 48000


def pattern(index: int, width: int = 64, height: int = 48, bits: int = 16, channels: int = 3) -> np.ndarray:
    """A deterministic ``(height, width, channels)`` uint8/uint16 test image: smooth gradients that
    move with ``index`` plus fine per-pixel texture, covering the full ``bits`` range."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = [
        0.5 + 0.45 * np.sin(x / 9.0 + index * 0.7),
        0.5 + 0.45 * np.cos(y / 7.0 - index * 0.3),
        (x + y + 5 * index) / (width + height + 5 * index),
        0.25 + 0.5 * ((x // 4 + y // 4) % 2),
    ]
    texture = np.random.default_rng(index).uniform(-0.04, 0.04, (height, width))
    planes = [np.clip(base[c % 4] + texture, 0, 1) for c in range(channels)]
    maxval = (1 << bits) - 1
    out = np.round(np.stack(planes, axis=-1) * maxval)
    return out.astype(np.uint8 if bits <= 8 else np.uint16)


def _sine_frames(seconds: float, channels: int = 2, frame_size: int = 1024) -> list[av.AudioFrame]:
    """pcm s16 frames of a 440 Hz sine, ``frame_size`` samples each, pts in samples."""
    n = int(round(seconds * AUDIO_RATE))
    t = np.arange(n) / AUDIO_RATE
    mono = np.round(np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    layout = "stereo" if channels == 2 else "mono"
    frames = []
    for start in range(0, n, frame_size):
        chunk = np.repeat(mono[start : start + frame_size, None], channels, axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16", layout=layout)
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        frames.append(frame)
    return frames


def vfr_pts(n: int) -> list[int]:
    """Irregular millisecond timestamps for ``n`` frames (time base 1/1000)."""
    steps = [41, 42, 83, 40, 125, 42, 41, 60]
    pts = [0]
    for i in range(n - 1):
        pts.append(pts[-1] + steps[i % len(steps)])
    return pts


def make_clip(
    path: Path,
    n: int = 5,
    w: int = 64,
    h: int = 48,
    fps: int | Fraction = 24,
    pix_fmt: str = "yuv420p",
    codec: str | None = None,
    audio: bool = True,
    vfr: bool = False,
    rotation: int = 0,
    timecode: str | None = None,
    colour: tuple[int, int, int, int] | None = (1, 1, 1, 1),
    faststart: bool = False,
) -> Path:
    """Write an ``n``-frame clip of :func:`pattern` frames (with a 4th pattern plane as alpha for
    pixel formats with alpha).

    ``codec`` defaults by extension (FFV1 for .mkv/.avi, ProRes for .mov, H.264 for .mp4). RGB
    pixel formats receive the pattern directly; YUV ones get it converted with BT.709 (limited
    range). ``vfr`` uses the irregular :func:`vfr_pts` in a 1/1000 time base (otherwise pts are
    frame numbers in 1/fps). ``audio`` adds a stereo 440 Hz pcm_s16le track as long as the video;
    ``rotation`` sets a display matrix (degrees counter-clockwise); ``timecode`` sets the video
    stream's ``timecode`` tag; ``colour`` is ``(color_range, color_primaries, color_trc,
    colorspace)`` as FFmpeg enum values (``None`` leaves them unspecified); ``faststart`` puts the
    QuickTime/MP4 index (moov) before the media data.
    """
    path = Path(path)
    codec = codec or DEFAULT_CODECS[path.suffix]
    fps = Fraction(fps)
    time_base = Fraction(1, 1000) if vfr else 1 / fps
    pts = vfr_pts(n) if vfr else list(range(n))
    fmt = av.VideoFormat(pix_fmt)
    bits = fmt.components[0].bits
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else None) as out:
        stream = out.add_stream(codec, rate=fps, time_base=time_base)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.thread_count = 1
        if codec == "prores_ks":
            stream.options = {"profile": "4" if "444" in pix_fmt else "3"}
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "10"}
        if colour:
            ctx = stream.codec_context
            ctx.color_range, ctx.color_primaries, ctx.color_trc, ctx.colorspace = colour
        if rotation:
            stream.set_display_rotation(rotation)
        if timecode:
            stream.metadata["timecode"] = timecode
        astream = out.add_stream("pcm_s16le", rate=AUDIO_RATE) if audio else None
        alpha = any(c.is_alpha for c in fmt.components)
        for i, p in enumerate(pts):
            rgb = pattern(i, w, h, bits=16 if bits > 8 else 8, channels=4 if alpha else 3)
            packed = ("rgba64le" if bits > 8 else "rgba") if alpha else ("rgb48le" if bits > 8 else "rgb24")
            frame = av.VideoFrame.from_ndarray(rgb, format=packed)
            if not fmt.is_rgb:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=1, dst_color_range=1)
            else:
                frame = frame.reformat(format=pix_fmt)
            frame.pts = p
            frame.time_base = time_base
            if colour:
                frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace = colour
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if astream is not None:
            for aframe in _sine_frames(float(pts[-1] * time_base + 1 / fps)):  # until the last frame ends
                out.mux(astream.encode(aframe))
            out.mux(astream.encode(None))
    return path


def make_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """A file with a single pcm_s16le stereo stream and no video."""
    with av.open(str(path), "w") as out:
        astream = out.add_stream("pcm_s16le", rate=AUDIO_RATE)
        for frame in _sine_frames(seconds):
            out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
    return path


def packets_of(path: Path, kind: str = "audio") -> list[tuple[int | None, bytes]]:
    """``(pts, payload)`` for every packet of every ``kind`` stream of ``path`` in file order."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [(p.pts, bytes(p)) for p in c.demux(streams) if p.size]


def decode_frames(path: Path, fmt: str = "rgb48le") -> list[tuple[int, np.ndarray]]:
    """``(pts, pixels)`` for every video frame of ``path``, converted to ``fmt`` by FFmpeg."""
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format=fmt)) for f in c.decode(video=0)]


# --------------------------------------------------------------------------- still images


def encode_still(codec: str, frame: av.VideoFrame, options: dict[str, str] | None = None) -> bytes:
    """Encode one frame with FFmpeg's still-image ``codec`` encoder and return the file bytes."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, frame.format.name
    ctx.time_base = Fraction(1, 1)
    if options:
        ctx.options = options
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


def _bcd(timecode: str) -> int:
    digits = timecode.replace(":", "")
    return int(digits, 16)  # each decimal digit in its own nibble


def make_dpx(
    path: Path,
    samples: np.ndarray,
    bits: int = 10,
    big_endian: bool = True,
    transfer: int = 1,
    colorimetric: int = 1,
    timecode: str | None = "01:02:03:04",
    frame_rate: float = 24.0,
) -> Path:
    """A DPX with a full 2048-byte header (file, image, orientation, film, TV) like a film scanner
    writes: pixels packed by FFmpeg's encoder (10-bit = filled method A), ``transfer`` /
    ``colorimetric`` codes (1 = printing density), the TV timecode and film/TV frame rates set."""
    e = "be" if big_endian else "le"
    pix_fmt = {8: "rgb24", 10: f"gbrp10{e}", 12: f"gbrp12{e}", 16: f"rgb48{e}"}[bits]
    if samples.ndim == 2:
        pix_fmt = {8: "gray", 16: f"gray16{e}"}[bits]
    frame = av.VideoFrame.from_ndarray(samples, format=pix_fmt)
    encoded = encode_still("dpx", frame)
    end = ">" if encoded[:4] == b"SDPX" else "<"
    (offset,) = struct.unpack_from(end + "I", encoded, 4)
    header = bytearray(encoded[:offset]) + bytearray(b"\xff" * (2048 - offset))
    pixels = encoded[offset:]
    struct.pack_into(end + "I", header, 4, 2048)
    struct.pack_into(end + "I", header, 16, 2048 + len(pixels))
    struct.pack_into(end + "III", header, 24, 1664, 384, 0)
    struct.pack_into(end + "I", header, 808, 2048)
    header[801], header[802] = transfer, colorimetric
    header[160 : 160 + 16] = b"test scanner\0\0\0\0"
    struct.pack_into(end + "f", header, 1724, frame_rate)
    struct.pack_into(end + "I", header, 1920, _bcd(timecode) if timecode else 0xFFFFFFFF)
    struct.pack_into(end + "f", header, 1940, frame_rate)
    path.write_bytes(bytes(header) + pixels)
    return path


def make_exr(path: Path, values: np.ndarray, half: bool = True, compression: str = "zip16") -> Path:
    """An OpenEXR of float32 ``(H, W, 3|4)`` or ``(H, W)`` values written by FFmpeg's encoder."""
    fmt = {2: "grayf32le"}.get(values.ndim) or {3: "gbrpf32le", 4: "gbrapf32le"}[values.shape[2]]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(values, dtype=np.float32), format=fmt)
    path.write_bytes(encode_still("exr", frame, {"format": "half" if half else "float", "compression": compression}))
    return path


def make_png(path: Path, samples: np.ndarray, text: str | None = "Title\0reel 7") -> Path:
    """A PNG of uint8/uint16 grey ``(H, W)`` or RGB(A) ``(H, W, 3|4)`` samples written by OpenCV,
    with a ``tEXt`` chunk holding ``text`` inserted before IDAT."""
    bgr = samples if samples.ndim == 2 else np.ascontiguousarray(samples[:, :, [2, 1, 0, 3][: samples.shape[2]]])
    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    data = buf.tobytes()
    if text is not None:
        body = text.encode("latin-1")
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        idat = data.index(b"IDAT") - 4
        data = data[:idat] + chunk + data[idat:]
    path.write_bytes(data)
    return path


def make_tiff(path: Path, samples: np.ndarray, **kwargs) -> Path:
    """A TIFF written by tifffile (``kwargs`` go to ``tifffile.imwrite``, e.g. compression)."""
    kwargs.setdefault("photometric", "minisblack" if samples.ndim == 2 else "rgb")
    tifffile.imwrite(path, samples, **kwargs)
    return path


def make_jpeg(path: Path, samples: np.ndarray, exif: bytes | None = b"Exif\0\0filmclean-test") -> Path:
    """A JPEG of uint8 RGB ``(H, W, 3)`` (or grey) samples written by OpenCV, optionally with an
    APP1 segment holding ``exif``."""
    bgr = samples if samples.ndim == 2 else samples[:, :, ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = buf.tobytes()
    if exif is not None:
        data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:]
    path.write_bytes(data)
    return path
