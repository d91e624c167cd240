"""--max-width: detections wider than a defect can be are left untouched, whole."""

import numpy as np
import pytest
from helpers import run_cli
from media import make_png

from filmclean.engine import RestoreOptions, Restorer, wide_detections
from filmclean.errors import InputError
from filmclean.evaluation import parse_method
from filmclean.io.images import read_image
from filmclean.model import default_model_paths


class MaskFromDarkBackend:
    """A mask network that calls every pixel darker than 0.3 damaged and repairs it to 0.5."""

    name = "fake"
    device = "cpu"
    info = {"has_mask": True, "size_multiple": 1, "receptive_radius": 0, "in_channels": 3}

    def __call__(self, batch):
        mask = (batch.min(axis=1, keepdims=True) < 0.3).astype(np.float32)
        return np.where(mask > 0, np.float32(0.5), batch), mask

    def describe(self) -> str:
        return "fake"


def _frame() -> np.ndarray:
    """64x96 grey frame with a 3-px dark hair, a 5x5 dark speck and a 30x30 dark square with a
    1-px hair leaving it."""
    f = np.full((64, 96, 3), 0.8, np.float32)
    f[5:60, 10:13] = 0.1  # hair, 3 px wide
    f[20:25, 30:35] = 0.1  # speck, 5 px
    f[20:50, 50:80] = 0.1  # square, 30 px
    f[35, 80:95] = 0.1  # thin line attached to the square
    return f


class TestDropWideDetections:
    def test_keeps_narrow_drops_wide_whole(self):
        prob = (_frame()[..., 0] < 0.3).astype(np.float32) * 0.9
        wide = wide_detections(prob, 0.5, 20)
        expected = np.zeros(prob.shape, bool)
        expected[20:50, 50:80] = True
        expected[35, 80:95] = True  # the line attached to the square goes with it
        np.testing.assert_array_equal(wide, expected)

    def test_width_is_the_widest_disc_inside(self):
        prob = np.zeros((40, 40), np.float32)
        prob[10:30, 10:30] = 1.0  # 20 px square: a 20-px disc fits, not a 21-px one
        assert wide_detections(prob, 0.5, 20) is None
        np.testing.assert_array_equal(wide_detections(prob, 0.5, 19), prob > 0)

    def test_a_detection_on_the_frame_edge_counts_mirrored(self):
        prob = np.zeros((40, 40), np.float32)
        prob[:, :12] = 1.0  # a 12-px band along the left edge: maybe half of a 24-px defect
        assert wide_detections(prob, 0.5, 24) is None
        np.testing.assert_array_equal(wide_detections(prob, 0.5, 23), prob > 0)

    def test_a_dense_mesh_of_thin_detections_is_as_wide_as_its_area(self):
        prob = np.zeros((140, 140), np.float32)
        prob[10:130:6, 10:130] = 1.0  # 1-px lines 6 px apart over 120 px: grass blades, not hairs
        prob[10:130, 10] = 1.0
        assert wide_detections(prob, 0.5, 64, gap=0) is None  # each line alone is 1 px wide
        np.testing.assert_array_equal(wide_detections(prob, 0.5, 64), prob > 0)  # default gap 9

    def test_sparse_hairs_stay_thin_whatever_the_gap(self):
        prob = np.zeros((140, 140), np.float32)
        prob[10:130:30, 10:130] = 1.0  # lines 30 px apart: separate defects
        prob[10:130, 10] = 1.0
        assert wide_detections(prob, 0.5, 64, gap=9) is None

    def test_below_threshold_not_a_detection(self):
        prob = np.full((30, 30), 0.4, np.float32)
        assert wide_detections(prob, 0.5, 4) is None
        assert wide_detections(prob, 0.0, 4).all()  # threshold 0: the whole frame is one detection


class TestRestorerMaxWidth:
    def test_wide_detection_passes_through_bit_for_bit(self):
        frame = _frame()
        res = Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None, max_width=20)).restore(frame)
        np.testing.assert_array_equal(res.image[20:50, 50:95], frame[20:50, 50:95])
        assert (res.image[5:60, 10:13] == 0.5).all() and (res.image[20:25, 30:35] == 0.5).all()
        assert (res.mask[20:50, 50:80] == 0).all() and (res.mask[5:60, 10:13] == 1).all()

    def test_no_limit_repairs_everything(self):
        frame = _frame()
        res = Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None, max_width=None)).restore(frame)
        assert (res.image[20:50, 50:80] == 0.5).all()

    def test_default_drops_a_wide_detection(self):
        frame = np.full((200, 200, 3), 0.8, np.float32)
        frame[20:140, 20:140] = 0.1  # 120 px across: wider than any film defect filmclean repairs
        frame[150:190, 150:190] = 0.1  # 40 px: a blotch
        res = Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None)).restore(frame)
        np.testing.assert_array_equal(res.image[20:140, 20:140], frame[20:140, 20:140])
        assert (res.image[150:190, 150:190] == 0.5).all()

    def test_tiled_equals_whole(self):
        frame = _frame()
        whole = Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None, max_width=20)).restore(frame)
        tiled = Restorer(MaskFromDarkBackend(), RestoreOptions(tile=32, overlap=8, max_width=20)).restore(frame)
        np.testing.assert_array_equal(whole.image, tiled.image)

    def test_in_place(self):
        frame = _frame()
        expected = Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None, max_width=20)).restore(frame).image
        buf = frame.copy()
        Restorer(MaskFromDarkBackend(), RestoreOptions(tile=None, max_width=20)).restore(buf, out=buf)
        np.testing.assert_array_equal(buf, expected)

    def test_bad_width(self):
        with pytest.raises(ValueError, match="max_width"):
            RestoreOptions(max_width=0)


class TestMaxWidthOptions:
    def test_model_spec_and_bad_value(self, tmp_path):
        with pytest.raises(InputError, match="max_width"):
            parse_method("default:max_width=-3")

    def test_cli_rejects_negative_width(self, tmp_path, capsys):
        src = make_png(tmp_path / "a.png", _samples())
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--max-width", "-1", "-q"], capsys)
        assert code != 0 and "max-width" in err
        assert not (tmp_path / "out" / "a.png").exists()

    @pytest.mark.skipif(default_model_paths() == (None, None), reason="no default model installed")
    def test_cli_max_width_leaves_picture_alone(self, tmp_path, capsys):
        src = make_png(tmp_path / "a.png", _samples())
        args = ["frames", src, "--threshold", "0", "--no-temporal", "-q"]  # the shipped default model
        code0, _, err0 = run_cli([*args, "-o", tmp_path / "w0", "--max-width", "0"], capsys)
        code1, _, err1 = run_cli([*args, "-o", tmp_path / "w1", "--max-width", "8"], capsys)
        assert code0 == 0 and code1 == 0, err0 + err1
        # threshold 0 marks the whole picture: one detection as wide as the frame, dropped whole
        np.testing.assert_array_equal(read_image(tmp_path / "w1" / "a.png").rgb, read_image(src).rgb)
        assert not np.array_equal(read_image(tmp_path / "w0" / "a.png").rgb, read_image(src).rgb)


def _samples() -> np.ndarray:
    """A 64x64 uint8 RGB picture with a little texture and a black 12-px blotch."""
    rng = np.random.default_rng(3)
    s = (96 + rng.integers(0, 64, (64, 64, 3))).astype(np.uint8)
    s[26:38, 26:38] = 0
    return s
