"""Hostile still images: CMYK / Adobe JPEGs written back in the right colours, and headers declaring
absurd sizes refused before decoding (one-line InputError naming the file, no traceback)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import media
import numpy as np
import pytest
import tifffile
from helpers import run_cli

from filmclean.errors import InputError
from filmclean.io import formats, images
from filmclean.io.images import read_image, write_image
from filmclean.modelfile import save_model
from filmclean.nets import build_network

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

# --------------------------------------------------------------------------- helpers


def _picture(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth, strongly coloured uint8 RGB picture (so wrong colours show as large errors)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), 255 - x * 200 // (width - 1)], -1).astype(
        np.uint8
    )


def _jpeg_markers(data: bytes) -> list[tuple[int, bytes]]:
    """``(marker, payload start)`` of the header segments before the first scan."""
    segments, _ = formats._jpeg_segments(data)
    return [(marker, raw[4:18]) for marker, raw in segments]


def _fake_cmyk_icc() -> bytes:
    """Bytes shaped like an ICC profile header whose data colour space is CMYK."""
    header = bytearray(128)
    struct.pack_into(">I", header, 0, 132)
    header[12:16], header[16:20], header[20:24], header[36:40] = b"prtr", b"CMYK", b"Lab ", b"acsp"
    return bytes(header) + b"\0\0\0\0"


def _rgb_error(path: Path, reference: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference (0..255) of ``path`` decoded by Pillow and by OpenCV from ``reference``."""
    with Image.open(path) as im:
        pil = np.asarray(im.convert("RGB"), dtype=np.float64)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    ocv = bgr[:, :, ::-1].astype(np.float64)
    return float(np.abs(pil - reference).mean()), float(np.abs(ocv - reference).mean())


def _identity_model(path: Path) -> Path:
    return save_model(build_network("identity", {"size_multiple": 8}), "identity", {"size_multiple": 8}, path)


def assert_one_line(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), message


# --------------------------------------------------------------------------- CMYK / Adobe JPEG


def test_cmyk_jpeg_is_written_back_in_the_right_colours(tmp_path):
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(_picture()).convert("CMYK").save(src, quality=95, icc_profile=_fake_cmyk_icc())
    with Image.open(src) as im:
        assert im.mode == "CMYK" and "icc_profile" in im.info
        reference = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert any(m == 0xEE and p.startswith(b"Adobe") for m, p in _jpeg_markers(src.read_bytes()))

    image = read_image(src)
    assert image.fmt == "jpeg" and not image.grey and image.rgb.shape == (48, 64, 3)
    out = write_image(tmp_path / "out.jpg", image)
    markers = _jpeg_markers(out.read_bytes())
    assert not any(m == 0xEE for m, _ in markers), "Adobe APP14 of the CMYK source carried over"
    assert not any(m == 0xE2 and p.startswith(b"ICC_PROFILE") for m, p in markers), "CMYK ICC profile carried over"
    with Image.open(out) as im:
        assert im.mode == "RGB" and "icc_profile" not in im.info
    pil_err, cv_err = _rgb_error(out, reference)
    assert pil_err < 4 and cv_err < 4, (pil_err, cv_err)


def test_cmyk_jpeg_through_the_frames_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seq = tmp_path / "in"
    seq.mkdir()
    Image.fromarray(_picture()).convert("CMYK").save(seq / "scan.jpg", quality=95)
    with Image.open(seq / "scan.jpg") as im:
        reference = np.asarray(im.convert("RGB"), dtype=np.float64)
    model = _identity_model(tmp_path / "identity.safetensors")
    code, _, err = run_cli(
        ["frames", seq, "-o", tmp_path / "out", "--model", model, "--backend", "torch", "-q"], capsys
    )
    assert code == 0, err
    pil_err, cv_err = _rgb_error(tmp_path / "out" / "scan.jpg", reference)
    assert pil_err < 4 and cv_err < 4, (pil_err, cv_err)


def test_rgb_jpeg_with_adobe_transform_1_and_icc_still_round_trips(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(_picture()).save(buf, "JPEG", quality=95, icc_profile=srgb)
    data = buf.getvalue()
    adobe = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 1)  # version 100, flags, transform 1 (YCbCr)
    data = data[:2] + b"\xff\xee" + struct.pack(">H", len(adobe) + 2) + adobe + data[2:]
    src = tmp_path / "adobe.jpg"
    src.write_bytes(data)
    with Image.open(src) as im:
        reference = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert im.info.get("adobe_transform") == 1

    out = write_image(tmp_path / "out.jpg", read_image(src))
    assert not any(m == 0xEE for m, _ in _jpeg_markers(out.read_bytes()))
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == srgb  # an RGB profile stays valid and is kept
    pil_err, cv_err = _rgb_error(out, reference)
    assert pil_err < 4 and cv_err < 4, (pil_err, cv_err)


def test_grey_jpeg_still_round_trips(tmp_path):
    grey = _picture()[:, :, 1]
    out = write_image(tmp_path / "out.jpg", read_image(media.make_jpeg(tmp_path / "g.jpg", grey)))
    again = read_image(out)
    assert again.grey and np.abs(again.rgb[:, :, 0] * 255 - grey).mean() < 2


# --------------------------------------------------------------------------- absurd declared sizes


def _huge_tiff(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A tiny valid TIFF whose ImageWidth/ImageLength tags are then patched to ``width`` x ``height``."""
    tifffile.imwrite(path, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        order = tif.byteorder
        for name, value in (("ImageWidth", width), ("ImageLength", height)):
            tag = tif.pages[0].tags[name]
            code = {3: "H", 4: "I"}[int(tag.dtype)]
            struct.pack_into(order + code, data, tag.valueoffset, value)
    path.write_bytes(bytes(data))
    assert path.stat().st_size < 4096
    return path


def _huge_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A tiny PNG (valid chunk structure and CRCs) whose IHDR declares ``width`` x ``height``."""
    media.make_png(path, np.zeros((16, 16, 3), np.uint8), text=None)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [_huge_tiff, _huge_png], ids=["tiff", "png"])
def test_absurd_declared_size_is_refused_before_decoding(tmp_path, make, monkeypatch):
    path = make(tmp_path / ("huge.tif" if make is _huge_tiff else "huge.png"))
    # nothing may be decoded: the refusal comes from the header alone
    monkeypatch.setattr(tifffile.TiffPage, "asarray", lambda *a, **k: pytest.fail("TIFF pixels decoded"))
    monkeypatch.setattr(formats, "_decode_still", lambda *a, **k: pytest.fail("PNG pixels decoded"))
    with pytest.raises(InputError) as e:
        read_image(path)
    assert_one_line(e, path, "60000x60000", "megapixels")


def test_absurd_declared_size_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = _identity_model(tmp_path / "identity.safetensors")
    for path in (_huge_tiff(tmp_path / "huge.tif"), _huge_png(tmp_path / "huge.png")):
        code, _, err = run_cli(
            ["frames", path, "-o", tmp_path / f"out_{path.suffix[1:]}", "--model", model, "--backend", "torch", "-q"],
            capsys,
        )
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert path.name in lines[0] and "60000x60000" in lines[0]


def test_header_sizes_of_every_format_are_checked(tmp_path, monkeypatch):
    """With the limit set at the picture's own size it is read; one pixel lower, every format refuses."""
    rgb16 = media.pattern(0, bits=16)
    files = [
        media.make_png(tmp_path / "a.png", rgb16),
        media.make_tiff(tmp_path / "a.tif", rgb16),
        media.make_dpx(tmp_path / "a.dpx", media.pattern(0, bits=16)),
        media.make_exr(tmp_path / "a.exr", rgb16.astype(np.float32) / 65535),
        media.make_jpeg(tmp_path / "a.jpg", media.pattern(0, bits=8)),
    ]
    for path in files:
        monkeypatch.setattr(images, "MAX_PIXELS", 64 * 48)
        assert read_image(path).rgb.shape == (48, 64, 3)
        monkeypatch.setattr(images, "MAX_PIXELS", 64 * 48 - 1)
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_one_line(e, path, "64x48")


def test_limit_keeps_big_real_scans():
    assert images.MAX_PIXELS >= 100_000_000  # a 100-megapixel scan is read
    assert images.MAX_PIXELS < 60000 * 60000


def test_out_of_memory_while_decoding_is_one_line(tmp_path, monkeypatch):
    path = media.make_tiff(tmp_path / "a.tif", media.pattern(0, bits=16))

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_memory)
    with pytest.raises(InputError) as e:
        read_image(path)
    assert_one_line(e, path, "memory")
