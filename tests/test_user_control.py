"""The user's say over repairs (issue 22): protection mattes, the size limit, masks at full precision."""

from __future__ import annotations

import av
import numpy as np
import pytest
from helpers import run_cli
from media import decode_frames, make_dpx, make_png
from test_chunks import _damaged_pattern, make_damaged_clip
from test_max_width import MaskFromDarkBackend, _frame

from filmclean.engine import RestoreOptions, Restorer, limited_detections
from filmclean.io.images import read_image


def _restorer(**kw) -> Restorer:
    return Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None, max_width=None, **kw))


class TestLimitedDetections:
    def test_area_limit_drops_large_detections_whole(self):
        prob = (_frame()[..., 0] < 0.3).astype(np.float32)
        large = limited_detections(prob, 0.5, None, 200)  # the hair (165 px) and the speck (25 px) stay
        expected = np.zeros(prob.shape, bool)
        expected[20:50, 50:80] = True  # the 900-px square
        expected[35, 80:95] = True  # and the line attached to it
        np.testing.assert_array_equal(large, expected)
        assert limited_detections(prob, 0.5, None, 2000) is None
        assert limited_detections(prob, 0.5, None, None) is None

    def test_restore_leaves_the_large_region_alone(self):
        frame = _frame()
        out = _restorer(max_area=200).restore(frame)
        np.testing.assert_array_equal(out.image[20:50, 50:80], frame[20:50, 50:80])  # left as it is
        assert (out.image[20:25, 30:35] == 0.5).all()  # the speck repaired
        assert (out.mask[20:50, 50:80] == 0).all()


class TestProtect:
    def test_protected_pixels_pass_through(self):
        frame = _frame()
        protect = np.zeros(frame.shape[:2], bool)
        protect[18:27, 28:37] = True  # the speck
        for r in (_restorer(), Restorer(MaskFromDarkBackend(), RestoreOptions(tile=16, overlap=4, max_width=None))):
            out = r.restore(frame.copy(), protect=protect)
            np.testing.assert_array_equal(out.image[protect], frame[protect])
            assert (out.mask[protect] == 0).all()
            assert (out.image[5:60, 10:13] == 0.5).all()  # the rest still repaired

    def test_sequence_with_a_matte_image(self, tmp_path, capsys):
        """A still matte protects the same place on every frame, temporal mode (spike test) too."""
        src = tmp_path / "scan"
        src.mkdir()
        for i in range(8):
            img = _damaged_pattern(i)
            img[30:34, 40:44] = 1500 if i % 2 else img[30:34, 40:44]  # a speck on every other frame
            make_dpx(src / f"r_{i:03d}.dpx", img, bits=16)
        matte = np.zeros((64, 96), np.uint8)
        matte[26:38, 36:48] = 255
        make_png(tmp_path / "matte.png", matte)
        out, free = tmp_path / "out", tmp_path / "free"
        code, _, err = run_cli(["frames", src, "-o", out, "--protect", tmp_path / "matte.png", "-q"], capsys)
        assert code == 0, err
        code, _, err = run_cli(["frames", src, "-o", free, "-q"], capsys)
        assert code == 0, err
        changed_free = changed_protected = 0
        for f in sorted(src.iterdir()):
            a, b, c = read_image(f).rgb, read_image(out / f.name).rgb, read_image(free / f.name).rgb
            np.testing.assert_array_equal(b[26:38, 36:48], a[26:38, 36:48])
            changed_free += int((c[26:38, 36:48] != a[26:38, 36:48]).any())
            changed_protected += int((b != a).any())
        assert changed_free > 0  # without the matte the specks there are repaired
        assert changed_protected > 0  # with it, the rest of the picture still is

    def test_video_matte_by_frame_number_in_a_chunk(self, tmp_path, capsys):
        clip = make_damaged_clip(tmp_path / "reel.mkv", n=12)
        matte = tmp_path / "matte.mkv"
        with av.open(str(matte), "w") as c:
            s = c.add_stream("ffv1", rate=24)
            s.width, s.height, s.pix_fmt = 96, 64, "gray"
            for i in range(12):
                m = np.zeros((64, 96), np.uint8)
                m[:, : 8 * i + 8] = 255  # frame i protects its first 8(i+1) columns
                f = av.VideoFrame.from_ndarray(m, format="gray")
                f.pts = i
                c.mux(s.encode(f))
            c.mux(s.encode(None))
        out = tmp_path / "part.mkv"
        code, _, err = run_cli(["restore", clip, "-o", out, "--frames", "4-7", "--protect", matte, "-q"], capsys)
        assert code == 0, err
        src = decode_frames(clip)
        for k, (_, got) in enumerate(decode_frames(out)):
            i = 4 + k
            cols = 8 * i + 8
            np.testing.assert_array_equal(got[:, :cols], src[i][1][:, :cols])

    def test_a_matte_of_another_size_is_refused(self, tmp_path, capsys):
        clip = make_damaged_clip(tmp_path / "reel.mkv", n=3)
        make_png(tmp_path / "small.png", np.zeros((10, 10), np.uint8))
        out = tmp_path / "o.mkv"
        code, _, err = run_cli(["restore", clip, "-o", out, "--protect", tmp_path / "small.png"], capsys)
        assert code != 0 and "small.png" in err and "matte is 10x10" in err and "Traceback" not in err
        assert not out.exists()


class TestMasksAtFullPrecision:
    @pytest.mark.parametrize("fmt,ext,bits", [("tiff", ".tif", 16), ("exr", ".exr", "float")])
    def test_sequence_masks(self, tmp_path, capsys, fmt, ext, bits):
        src = tmp_path / "scan"
        src.mkdir()
        for i in range(3):
            make_dpx(src / f"r_{i}.dpx", _damaged_pattern(i), bits=16)
        png, other = tmp_path / "png", tmp_path / fmt
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "o1", "--mask-out", png, "-q"], capsys)
        assert code == 0, err
        code, _, err = run_cli(
            ["frames", src, "-o", tmp_path / "o2", "--mask-out", other, "--mask-format", fmt, "-q"], capsys
        )
        assert code == 0, err
        for i in range(3):
            a, b = read_image(png / f"r_{i}.png"), read_image(other / f"r_{i}{ext}")
            assert b.bits == bits and b.grey
            assert np.abs(a.rgb - b.rgb).max() <= 1 / 65535 + 1e-7
            assert b.rgb.max() > 0.05  # the specks are in it

    def test_video_mask_16_bit(self, tmp_path, capsys):
        clip = make_damaged_clip(tmp_path / "reel.mkv", n=3)
        m8, m16 = tmp_path / "m8.mkv", tmp_path / "m16.mkv"
        for path, extra in ((m8, ["--mask-bits", "8"]), (m16, ["--mask-bits", "16"])):
            code, _, err = run_cli(
                ["restore", clip, "-o", tmp_path / f"o{path.stem}.mkv", "--mask-out", path, *extra, "-q"], capsys
            )
            assert code == 0, err
        with av.open(str(m16)) as c16, av.open(str(m8)) as c8:
            assert c16.streams.video[0].codec_context.pix_fmt == "gray16le"
            assert c8.streams.video[0].codec_context.pix_fmt == "gray"
        a = decode_frames(m8, "gray16le")
        b = decode_frames(m16, "gray16le")
        for (_, x), (_, y) in zip(a, b, strict=True):
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 257  # the same mask, finer steps
        assert any(len(np.unique(y)) > len(np.unique(x)) for (_, x), (_, y) in zip(a, b, strict=True))


def test_matte_module_reads_sequences_by_name(tmp_path):
    from filmclean.matte import Matte

    d = tmp_path / "mattes"
    d.mkdir()
    for i in (0, 1):
        m = np.zeros((8, 8), np.uint8)
        m[i, i] = 255
        make_png(d / f"shot_{i}.png", m)
    matte = Matte(d)
    assert matte.kind == "sequence"
    assert matte.get(5, (8, 8), "shot_1")[1, 1] and matte.get(0, (8, 8), "unknown")[0, 0]
    from filmclean.errors import InputError

    with pytest.raises(InputError, match="no matte for frame 7"):
        matte.get(7, (8, 8), "unknown")


class TestDefectMatte:
    """--matte: the model repairs from the user's matte, exactly there or added to its own finds."""

    @pytest.fixture()
    def scene(self, tmp_path):
        img = _damaged_pattern(0).copy()  # dark specks the model finds
        img[40:46, 60:66] = 60000  # a light blotch, marked only in the matte
        src = tmp_path / "scan"
        src.mkdir()
        make_png(src / "still.png", img)
        matte = np.zeros((64, 96), np.uint8)
        matte[38:48, 58:68] = 255
        make_png(tmp_path / "matte.png", matte)
        return src, tmp_path / "matte.png", matte > 0

    def _run(self, args, capsys):
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
        return err

    def test_exact_changes_only_inside_the_matte(self, scene, tmp_path, capsys):
        src, matte, inside = scene
        self._run(["frames", src, "-o", tmp_path / "exact", "--matte", matte, "--matte-mode", "exact", "-q"], capsys)
        a, b = read_image(src / "still.png").rgb, read_image(tmp_path / "exact" / "still.png").rgb
        changed = (a != b).any(axis=-1)
        assert changed.any() and not (changed & ~inside).any()
        assert b[40:46, 60:66].mean() < a[40:46, 60:66].mean() - 0.2  # the blotch filled from around it

    def test_add_keeps_the_models_own_repairs(self, scene, tmp_path, capsys):
        src, matte, inside = scene
        self._run(["frames", src, "-o", tmp_path / "plain", "-q"], capsys)
        self._run(["frames", src, "-o", tmp_path / "add", "--matte", matte, "--matte-mode", "add", "-q"], capsys)
        a = read_image(src / "still.png").rgb
        plain, add = read_image(tmp_path / "plain" / "still.png").rgb, read_image(tmp_path / "add" / "still.png").rgb
        own = (plain != a).any(axis=-1) & ~inside
        assert own.any()
        assert ((add != a).any(axis=-1) | ~own).all()  # what the model repairs alone, it still repairs
        assert add[40:46, 60:66].mean() < a[40:46, 60:66].mean() - 0.2

    def test_an_onnx_model_is_refused(self, scene, tmp_path, capsys):
        from filmclean.model import default_model_paths

        src, matte, _ = scene
        onnx = default_model_paths()[1]
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "x", "--matte", matte, "--model", onnx], capsys)
        assert code != 0 and ".safetensors" in err and "Traceback" not in err
