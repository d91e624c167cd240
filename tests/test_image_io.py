"""Still-image I/O: listing, exact identity round trips per format and bit depth, metadata kept,
greyscale/alpha handling, atomic writes and one-line errors for bad input/output."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import media
import numpy as np
import pytest
import tifffile

from filmclean.errors import InputError, OutputError
from filmclean.io.images import SUPPORTED_EXTS, ImageData, list_images, read_image, write_image


def ints(image: ImageData, channel: int | None = None) -> np.ndarray:
    """The image's integer samples (``rgb`` scaled back by ``2**bits - 1``)."""
    values = image.rgb if channel is None else image.rgb[:, :, channel]
    return np.round(values * ((1 << image.bits) - 1)).astype(np.int64)


def assert_one_line_error(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), message


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
def test_float_contract_round_trips_every_integer(bits):
    values = np.arange(1 << bits, dtype=np.float32)
    as_float = values / np.float32((1 << bits) - 1)
    assert as_float.dtype == np.float32
    assert np.array_equal(np.round(as_float * ((1 << bits) - 1)), values)


def test_list_images_folder_is_natural_sorted_and_skips_others(tmp_path):
    for name in ["frame10.png", "frame2.png", "frame1.png", "._frame3.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["frame1.png", "frame2.png", "frame10.png"]
    assert [p.name for p in list_images(tmp_path / "frame*.png")] == ["frame1.png", "frame2.png", "frame10.png"]
    assert list_images(tmp_path / "frame2.png") == [tmp_path / "frame2.png"]
    assert {".dpx", ".exr", ".tif", ".tiff", ".png", ".jpg", ".jpeg"} == set(SUPPORTED_EXTS)


def test_list_images_errors(tmp_path):
    with pytest.raises(InputError) as e:
        list_images(tmp_path)
    assert_one_line_error(e, tmp_path, "no image files")
    with pytest.raises(InputError) as e:
        list_images(tmp_path / "*.dpx")
    assert_one_line_error(e, tmp_path / "*.dpx", "match")
    with pytest.raises(InputError) as e:
        list_images(tmp_path / "missing")
    assert_one_line_error(e, tmp_path / "missing", "no such")
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(InputError) as e:
        list_images(tmp_path / "a.bmp")
    assert_one_line_error(e, tmp_path / "a.bmp", "unsupported", "bmp")


@pytest.mark.parametrize("big_endian", [True, False])
def test_dpx_10bit_sequence_round_trips_exactly_with_header(tmp_path, big_endian):
    src, out = tmp_path / "scan", tmp_path / "clean"
    src.mkdir(), out.mkdir()
    originals = [media.pattern(i, bits=10) for i in range(3)]
    for i, samples in enumerate(originals):
        media.make_dpx(src / f"reel_{i + 8:05d}.dpx", samples, bits=10, big_endian=big_endian)
    for i, path in enumerate(list_images(src)):
        image = read_image(path)
        assert (image.bits, image.fmt, image.grey, image.alpha) == (10, "dpx", False, None)
        assert image.rgb.dtype == np.float32 and image.rgb.flags.c_contiguous and image.rgb.shape == (48, 64, 3)
        assert np.array_equal(ints(image), originals[i])
        assert image.meta["transfer"] == 1 and image.meta["colorimetric"] == 1
        assert image.meta["timecode"] == "01:02:03:04" and image.meta["frame_rate"] == 24.0
        written = write_image(out / path.name, image.rgb.copy(), like=image)
        again = read_image(written)
        assert np.array_equal(ints(again), originals[i])
        assert again.meta["timecode"] == "01:02:03:04" and again.meta["transfer"] == 1
        # header (incl. film/TV headers, creator, big/little endian) and packing are kept: same bytes
        assert written.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_dpx_other_depths_round_trip_exactly(tmp_path, bits):
    samples = media.pattern(1, bits=bits)
    path = media.make_dpx(tmp_path / "a.dpx", samples, bits=bits)
    image = read_image(path)
    assert image.bits == bits and np.array_equal(ints(image), samples)
    written = write_image(tmp_path / "b.dpx", image)
    assert np.array_equal(ints(read_image(written)), samples)


def test_dpx_16bit_greyscale(tmp_path):
    samples = media.pattern(2, bits=16, channels=1)[:, :, 0]
    image = read_image(media.make_dpx(tmp_path / "g.dpx", samples, bits=16))
    assert image.grey and image.rgb.shape == (48, 64, 3)
    assert all(np.array_equal(ints(image, c), samples) for c in range(3))
    again = read_image(write_image(tmp_path / "h.dpx", image))
    assert again.grey and np.array_equal(ints(again, 0), samples)


def test_tiff_16bit_round_trips_exactly_with_metadata(tmp_path):
    samples = media.pattern(3, bits=16)
    icc = b"icc-profile-bytes" * 4
    path = media.make_tiff(
        tmp_path / "scan.tif",
        samples,
        compression="zlib",
        predictor=True,
        resolution=(2400, 2400),
        resolutionunit="inch",
        description="reel 7 frame 1",
        iccprofile=icc,
        software="scanner 1.0",
    )
    image = read_image(path)
    assert image.bits == 16 and np.array_equal(ints(image), samples)
    written = write_image(tmp_path / "clean.tif", image)
    with tifffile.TiffFile(written) as tif:
        page = tif.pages[0]
        assert np.array_equal(page.asarray(), samples)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE and page.predictor == 2
        assert page.tags["XResolution"].value == (2400, 1) and page.tags["ResolutionUnit"].value == 2
        assert page.description == "reel 7 frame 1" and page.software == "scanner 1.0"
        assert page.iccprofile == icc


def test_tiff_greyscale_alpha_and_float(tmp_path):
    grey = media.pattern(4, bits=8, channels=1)[:, :, 0]
    image = read_image(media.make_tiff(tmp_path / "g.tif", grey))
    assert image.grey and image.bits == 8 and np.array_equal(ints(image, 2), grey)
    assert np.array_equal(tifffile.imread(write_image(tmp_path / "g2.tif", image)), grey)

    rgba = media.pattern(5, bits=16, channels=4)
    image = read_image(media.make_tiff(tmp_path / "a.tif", rgba, extrasamples=["unassalpha"]))
    assert image.alpha is not None and np.array_equal(np.round(image.alpha * 65535), rgba[:, :, 3])
    assert np.array_equal(tifffile.imread(write_image(tmp_path / "a2.tif", image)), rgba)

    values = np.random.default_rng(0).uniform(-0.5, 3.0, (48, 64, 3)).astype(np.float32)
    image = read_image(media.make_tiff(tmp_path / "f.tif", values))
    assert image.bits == "float" and image.is_float and np.array_equal(image.rgb, values)
    assert np.array_equal(tifffile.imread(write_image(tmp_path / "f2.tif", image)), values)


def test_tiff_lzw_needs_imagecodecs_or_round_trips(tmp_path):
    samples = media.pattern(6, bits=8)
    path = tmp_path / "lzw.tif"
    frame = av.VideoFrame.from_ndarray(samples, format="rgb24")
    path.write_bytes(media.encode_still("tiff", frame, {"compression_algo": "lzw"}))  # FFmpeg writes LZW
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_one_line_error(e, path, "imagecodecs")
    else:
        image = read_image(path)
        assert np.array_equal(ints(image), samples)
        written = write_image(tmp_path / "out.tif", image)
        with tifffile.TiffFile(written) as tif:
            assert tif.pages[0].compression == tifffile.COMPRESSION.LZW


def test_png_16bit_alpha_round_trips_with_chunks(tmp_path):
    rgba = media.pattern(7, bits=16, channels=4)
    image = read_image(media.make_png(tmp_path / "a.png", rgba))
    assert image.bits == 16 and image.alpha is not None and image.alpha.dtype == np.float32
    assert np.array_equal(ints(image), rgba[:, :, :3])
    written = write_image(tmp_path / "b.png", image.rgb, like=image)
    again = read_image(written)
    assert np.array_equal(ints(again), rgba[:, :, :3])
    assert np.array_equal(again.alpha, image.alpha)
    assert b"tEXtTitle\0reel 7" in written.read_bytes()


def test_png_greyscale_written_back_as_greyscale(tmp_path):
    grey = media.pattern(8, bits=8, channels=1)[:, :, 0]
    image = read_image(media.make_png(tmp_path / "g.png", grey, text=None))
    assert image.grey and image.bits == 8 and image.rgb.shape == (48, 64, 3)
    written = write_image(tmp_path / "h.png", image)
    assert written.read_bytes()[25] == 0  # IHDR colour type 0: greyscale
    assert np.array_equal(cv2.imread(str(written), cv2.IMREAD_UNCHANGED), grey)


@pytest.mark.parametrize("half", [True, False])
def test_exr_round_trips_exactly_keeping_values_above_one(tmp_path, half):
    values = np.random.default_rng(1).uniform(-0.25, 8.0, (48, 64, 3)).astype(np.float32)
    if half:
        values = values.astype(np.float16).astype(np.float32)
    image = read_image(media.make_exr(tmp_path / "a.exr", values, half=half, compression="rle"))
    assert image.bits == ("half" if half else "float") and image.meta["compression"] == "rle"
    assert np.array_equal(image.rgb, values)
    written = write_image(tmp_path / "b.exr", image)
    again = read_image(written)
    assert again.bits == image.bits and again.meta["compression"] == "rle"
    assert np.array_equal(again.rgb, values)


def test_exr_greyscale_and_alpha(tmp_path):
    grey = np.random.default_rng(2).uniform(0, 3, (48, 64)).astype(np.float16).astype(np.float32)
    image = read_image(media.make_exr(tmp_path / "g.exr", grey))
    assert image.grey and np.array_equal(image.rgb[:, :, 1], grey)
    again = read_image(write_image(tmp_path / "g2.exr", image))
    assert again.grey and np.array_equal(again.rgb, image.rgb)
    rgba = np.random.default_rng(3).uniform(0, 1, (48, 64, 4)).astype(np.float32)
    image = read_image(media.make_exr(tmp_path / "a.exr", rgba, half=False))
    assert image.bits == "float" and np.array_equal(image.alpha, rgba[:, :, 3])
    again = read_image(write_image(tmp_path / "a2.exr", image))
    assert np.array_equal(again.rgb, rgba[:, :, :3]) and np.array_equal(again.alpha, rgba[:, :, 3])


def test_jpeg_keeps_exif_and_is_close(tmp_path):
    samples = media.pattern(9, bits=8)
    image = read_image(media.make_jpeg(tmp_path / "a.jpg", samples))
    assert image.bits == 8 and image.meta["sampling"] == (2, 2)
    written = write_image(tmp_path / "b.jpg", image)
    assert b"Exif\0\0filmclean-test" in written.read_bytes()
    assert np.abs(read_image(written).rgb - image.rgb).max() < 8 / 255


def test_bad_inputs_raise_one_line_input_error(tmp_path):
    png = media.make_png(tmp_path / "good.png", media.pattern(0, bits=8))
    data = bytearray(png.read_bytes())
    idat = data.index(b"IDAT")
    cases = {}
    (tmp_path / "empty.png").write_bytes(b"")
    cases["empty.png"] = "empty"
    corrupt = data.copy()
    corrupt[idat + 20] ^= 0xFF
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    cases["corrupt.png"] = "crc"
    (tmp_path / "truncated.png").write_bytes(bytes(data[: idat + 30]))
    cases["truncated.png"] = "truncated"
    (tmp_path / "text.png").write_text("hello\n" * 20)
    cases["text.png"] = "not a png"
    (tmp_path / "text.dpx").write_text("hello\n" * 20)
    cases["text.dpx"] = "not a dpx"
    dpx = media.make_dpx(tmp_path / "full.dpx", media.pattern(0, bits=10)).read_bytes()
    (tmp_path / "cut.dpx").write_bytes(dpx[:3000])
    cases["cut.dpx"] = "truncated"
    (tmp_path / "cut.jpg").write_bytes(media.make_jpeg(tmp_path / "j.jpg", media.pattern(0, bits=8)).read_bytes()[:900])
    cases["cut.jpg"] = "truncated"
    (tmp_path / "picture.bmp").write_bytes(b"BM" + bytes(100))
    cases["picture.bmp"] = "unsupported"
    media.make_tiff(tmp_path / "tiny.tif", np.zeros((1, 1, 3), np.uint8))
    cases["tiny.tif"] = "1x1"
    cases["missing.png"] = "no such file"
    for name, words in cases.items():
        with pytest.raises(InputError) as e:
            read_image(tmp_path / name)
        assert_one_line_error(e, tmp_path / name, words)
        assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


def test_output_errors_and_atomic_write(tmp_path):
    path = media.make_png(tmp_path / "a.png", media.pattern(0, bits=8))
    image = read_image(path)
    with pytest.raises(OutputError) as e:
        write_image(path, image, force=True)
    assert_one_line_error(e, path, "same file")
    target = tmp_path / "b.png"
    write_image(target, image)
    with pytest.raises(OutputError) as e:
        write_image(target, image)
    assert_one_line_error(e, target, "exists")
    write_image(target, image, force=True)
    with pytest.raises(OutputError) as e:
        write_image(tmp_path / "nope" / "c.png", image)
    assert_one_line_error(e, tmp_path / "nope" / "c.png", "does not exist")
    with pytest.raises(OutputError) as e:
        write_image(tmp_path / "c.tif", image)
    assert_one_line_error(e, tmp_path / "c.tif", "does not match")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no .partial left


def test_rgba_dpx_10bit_is_refused_clearly(tmp_path):
    image = ImageData(rgb=np.zeros((16, 16, 3), np.float32), alpha=np.ones((16, 16), np.float32), bits=10, fmt="dpx")
    with pytest.raises(OutputError) as e:
        write_image(tmp_path / "a.dpx", image)
    assert_one_line_error(e, tmp_path / "a.dpx", "10-bit RGBA DPX")
    assert not list(tmp_path.iterdir())
