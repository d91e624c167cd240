"""--dust dark|light|any: a repair limited to the direction the film's damage can have changed a pixel."""

import numpy as np
import pytest
from helpers import run_cli
from media import make_png

from filmclean.engine import RestoreOptions, Restorer, polarity_clamp
from filmclean.errors import InputError
from filmclean.evaluation import parse_method
from filmclean.io.images import read_image
from filmclean.model import default_model_paths, load_model


class FakeMaskBackend:
    """A mask network that calls every pixel damaged and 'repairs' it by ``+shift`` (left half) and
    ``-shift`` (right half)."""

    name = "fake"
    device = "cpu"
    info = {"has_mask": True, "size_multiple": 1, "receptive_radius": 0, "in_channels": 3}

    def __init__(self, shift: float = 0.1) -> None:
        self.shift = shift

    def __call__(self, batch):
        n, _, h, w = batch.shape
        sign = np.where(np.arange(w) < w // 2, 1.0, -1.0).astype(np.float32)
        return batch + self.shift * sign, np.ones((n, 1, h, w), np.float32)

    def describe(self) -> str:
        return "fake"


class TestPolarityClamp:
    def test_dark_light_any(self):
        rgb = np.full((2, 2, 3), 0.5, np.float32)
        rep = rgb + np.array([0.1, -0.1, 0.0], np.float32)
        np.testing.assert_array_equal(
            polarity_clamp(rgb, rep, "dark"), np.stack([rep[..., 0], rgb[..., 1], rgb[..., 2]], -1)
        )
        np.testing.assert_array_equal(
            polarity_clamp(rgb, rep, "light"), np.stack([rgb[..., 0], rep[..., 1], rgb[..., 2]], -1)
        )
        assert polarity_clamp(rgb, rep, "any") is rep

    def test_the_clamped_repair_is_never_further_from_a_dark_damaged_pixel_s_truth(self):
        rng = np.random.default_rng(0)
        clean = rng.random((16, 16, 3), dtype=np.float32)
        damaged = clean * rng.uniform(0.2, 1.0, (16, 16, 1)).astype(np.float32)  # dark damage
        rep = np.clip(clean + 0.2 * rng.standard_normal((16, 16, 3)).astype(np.float32), 0, 1)
        clamped = polarity_clamp(damaged, rep, "dark")
        assert (np.abs(clamped - clean) <= np.abs(rep - clean) + 1e-7).all()

    def test_unknown_polarity(self):
        x = np.zeros((1, 1, 3), np.float32)
        with pytest.raises(ValueError, match="dust"):
            polarity_clamp(x, x, "up")
        with pytest.raises(ValueError, match="dust"):
            RestoreOptions(dust="up")


class TestRestorerDust:
    @pytest.mark.parametrize("dust, kept", [("dark", "right"), ("light", "left"), ("any", None)])
    def test_pixels_the_repair_would_move_the_wrong_way_pass_through(self, dust, kept):
        frame = np.random.default_rng(1).uniform(0.2, 0.8, (12, 16, 3)).astype(np.float32)
        res = Restorer(FakeMaskBackend(), RestoreOptions(tile=None, dust=dust, max_width=None)).restore(frame)
        left, right = np.s_[:, :8], np.s_[:, 8:]
        if kept is None:
            np.testing.assert_allclose(res.image[left], frame[left] + 0.1, atol=1e-6)
            np.testing.assert_allclose(res.image[right], frame[right] - 0.1, atol=1e-6)
            assert (res.mask == 1).all()
            return
        same, moved = (right, left) if kept == "right" else (left, right)
        np.testing.assert_array_equal(res.image[same], frame[same])  # bit for bit
        assert (res.mask[same] == 0).all() and (res.mask[moved] == 1).all()
        np.testing.assert_allclose(res.image[moved], frame[moved] + (0.1 if dust == "dark" else -0.1), atol=1e-6)


@pytest.mark.skipif(default_model_paths() == (None, None), reason="no default model installed")
class TestShippedModelDust:
    def _frame(self):
        rng = np.random.default_rng(2)
        frame = np.clip(0.2 + 0.02 * rng.standard_normal((48, 64, 3)), 0, 1).astype(np.float32)
        frame[10:14, 10:14] = 0.02  # a dark speck
        frame[30:32, 44:46] = 0.98  # a bright speck: light dust, or a highlight
        return frame

    def test_dark_leaves_bright_specks_alone_and_still_repairs_dark_ones(self):
        frame = self._frame()
        be = load_model(None)
        anyway = Restorer(be, RestoreOptions(tile=None)).restore(frame)
        dark = Restorer(be, RestoreOptions(tile=None, dust="dark")).restore(frame)
        light = Restorer(be, RestoreOptions(tile=None, dust="light")).restore(frame)
        assert anyway.mask[11, 11] > 0.5 and anyway.mask[31, 45] > 0.5  # both found with dust=any
        np.testing.assert_array_equal(dark.image[30:32, 44:46], frame[30:32, 44:46])
        assert dark.image[10:14, 10:14].mean() > 0.12 and dark.mask[31, 45] == 0
        np.testing.assert_array_equal(light.image[10:14, 10:14], frame[10:14, 10:14])
        assert light.image[30:32, 44:46].mean() < 0.6 and light.mask[11, 11] == 0
        assert (dark.image >= frame).all() and (light.image <= frame).all()

    def test_cli_frames_dust(self, tmp_path, capsys):
        src = tmp_path / "in"
        src.mkdir()
        make_png(src / "f.png", (self._frame() * 255).round().astype(np.uint8))
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--dust", "dark", "-q"], capsys)
        assert code == 0, err
        out = read_image(tmp_path / "out" / "f.png").rgb
        inp = read_image(src / "f.png").rgb
        np.testing.assert_array_equal(out[30:32, 44:46], inp[30:32, 44:46])
        assert out[10:14, 10:14].mean() > 0.12
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "o2", "--dust", "sideways", "-q"], capsys)
        assert code == 2 and "sideways" in err and not (tmp_path / "o2").exists()

    def test_evaluate_model_specs(self):
        m = parse_method("default:dust=dark,threshold=0.6", RestoreOptions(tile=None))
        assert m.name == "default:dust=dark,threshold=0.6"
        assert m.info["dust"] == "dark" and m.info["threshold"] == 0.6
        st, ox = default_model_paths()
        f = parse_method(f"{ox}:dust=light", RestoreOptions(dust="dark"))
        assert f.name == f"{ox.name}:dust=light" and f.info["dust"] == "light"
        assert parse_method(str(ox), RestoreOptions(dust="dark")).info["dust"] == "dark"
        with pytest.raises(InputError, match="dust"):
            parse_method("default:dust=up")
        with pytest.raises(InputError, match="threshold"):
            parse_method(f"{ox}:threshold=2")
