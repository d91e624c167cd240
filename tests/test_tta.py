"""--tta N: test-time augmentation over flips and transposes (filmclean.engine)."""

import numpy as np
import pytest
import torch
from helpers import SMALL, run_cli, small_temporal_model
from media import make_png

from filmclean import TTA_COUNTS
from filmclean.engine import RestoreOptions, Restorer, dihedral, inverse_dihedral
from filmclean.errors import InputError
from filmclean.evaluation import parse_method
from filmclean.io.images import read_image
from filmclean.model import load_model
from filmclean.modelfile import save_model


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    """A tiny fill-and-refine MaskGuidedNet with random weights, saved as a model file."""
    from filmclean.nets.maskguided import MaskGuidedNet

    torch.manual_seed(5)
    net = MaskGuidedNet(**SMALL, fill_levels=2)
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("tta") / "small.safetensors"
    return save_model(net, "maskguided", {**SMALL, "fill_levels": 2}, path)


class ColumnBackend:
    """A mask network that is not mirror-symmetric: it 'repairs' pixel column ``j`` (of ``w``) by
    adding ``0.1 * j / w`` and calls the left half of every input damaged (probability 1), the right
    half clean (probability 0)."""

    name = "column"
    device = "cpu"
    info = {"has_mask": True, "size_multiple": 1, "receptive_radius": 0, "in_channels": 3}

    def __call__(self, batch):
        n, _, h, w = batch.shape
        ramp = (0.1 * np.arange(w) / w).astype(np.float32)
        mask = np.zeros((n, 1, h, w), np.float32)
        mask[..., : w // 2] = 1.0
        return batch + ramp, mask

    def describe(self) -> str:
        return "column"


class TestDihedral:
    def test_inverse_undoes_every_transform(self):
        a = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
        for k in range(8):
            np.testing.assert_array_equal(inverse_dihedral(dihedral(a, k), k), a)

    def test_the_eight_transforms_are_distinct_and_the_first_is_the_identity(self):
        a = np.arange(16).reshape(4, 4)
        outs = {dihedral(a, k).tobytes() for k in range(8)}
        assert len(outs) == 8
        np.testing.assert_array_equal(dihedral(a, 0), a)
        np.testing.assert_array_equal(dihedral(a, 1), a[:, ::-1])
        np.testing.assert_array_equal(dihedral(a, 4), a.T)


class TestRestoreOptionsTta:
    @pytest.mark.parametrize("n", [0, 3, 16])
    def test_only_1_2_4_8(self, n):
        with pytest.raises(ValueError, match="tta"):
            RestoreOptions(tta=n)

    def test_counts(self):
        assert TTA_COUNTS == (1, 2, 4, 8)


class TestRestorerTta:
    def _frame(self, h=12, w=16):
        return np.random.default_rng(4).uniform(0.2, 0.7, (h, w, 3)).astype(np.float32)

    def test_tta1_is_the_plain_run(self):
        frame = self._frame()
        res = Restorer(ColumnBackend(), RestoreOptions(tile=None, tta=1, max_width=None)).restore(frame)
        ramp = (0.1 * np.arange(16) / 16).astype(np.float32)
        np.testing.assert_allclose(res.image[:, :8], frame[:, :8] + ramp[:8, None], atol=1e-6)
        np.testing.assert_array_equal(res.image[:, 8:], frame[:, 8:])

    def test_tta2_averages_the_frame_and_its_mirror_image(self):
        frame = self._frame()
        res = Restorer(ColumnBackend(), RestoreOptions(tile=None, tta=2, max_width=None)).restore(frame)
        # plain run: +ramp[j], mask 1 on the left half; mirrored run mapped back: +ramp[w-1-j], mask 1
        # on the right half. Mean probability is 0.5 everywhere (>= threshold 0.5): all repaired.
        ramp = (0.1 * np.arange(16) / 16).astype(np.float32)
        expected = frame + ((ramp + ramp[::-1]) / 2)[:, None]
        np.testing.assert_allclose(res.image, expected, atol=1e-6)
        np.testing.assert_allclose(res.mask, 0.5, atol=1e-7)

    def test_pixels_below_the_threshold_pass_through_bit_for_bit(self):
        frame = self._frame()
        res = Restorer(ColumnBackend(), RestoreOptions(tile=None, tta=2, threshold=0.6, max_width=None)).restore(frame)
        np.testing.assert_array_equal(res.image, frame)

    @pytest.mark.parametrize("tile", [None, 32])
    def test_the_full_average_commutes_with_flips_and_transposes(self, net_file, tile):
        """The mean over all 8 transforms gives the same result for a rotated or mirrored frame,
        rotated or mirrored back (tiled or not)."""
        be = load_model(net_file, backend="torch", device="cpu")
        restorer = Restorer(be, RestoreOptions(tile=tile, tta=8, threshold=0.0, max_width=None))
        frame = np.random.default_rng(6).uniform(0.0, 1.0, (48, 64, 3)).astype(np.float32)
        base = restorer.restore(frame)
        for k in (1, 2, 3, 4, 7):
            moved = np.ascontiguousarray(np.moveaxis(dihedral(np.moveaxis(frame, -1, 0), k), 0, -1))
            out = restorer.restore(moved)
            back = np.moveaxis(inverse_dihedral(np.moveaxis(out.image, -1, 0), k), 0, -1)
            np.testing.assert_allclose(back, base.image, atol=2e-5)
            np.testing.assert_allclose(inverse_dihedral(out.mask, k), base.mask, atol=2e-5)

    def test_temporal_networks_transform_the_whole_stack(self, tmp_path):
        """A temporal network's 11-channel stack (frame, aligned neighbours, trust maps) is turned
        with the frame, so the full average commutes with flips for it too."""
        from filmclean.temporal import build_stack

        be = load_model(small_temporal_model(tmp_path / "t.safetensors", perturb=0.1), backend="torch", device="cpu")
        restorer = Restorer(be, RestoreOptions(tile=None, tta=8, threshold=0.0, max_width=None))
        rng = np.random.default_rng(9)
        frame, prev = (rng.uniform(0.0, 1.0, (48, 64, 3)).astype(np.float32) for _ in range(2))
        trust = rng.uniform(0.0, 1.0, (48, 64)).astype(np.float32)
        base = restorer.restore(frame, build_stack(frame, (prev, trust), None)).image
        flip = np.s_[:, ::-1]
        mirrored = restorer.restore(
            np.ascontiguousarray(frame[flip]),
            build_stack(
                np.ascontiguousarray(frame[flip]),
                (np.ascontiguousarray(prev[flip]), np.ascontiguousarray(trust[flip])),
                None,
            ),
        ).image
        np.testing.assert_allclose(mirrored[flip], base, atol=2e-5)

    def test_the_plain_run_does_not_commute(self, net_file):
        """The property above is not automatic: one transform alone gives a different result."""
        be = load_model(net_file, backend="torch", device="cpu")
        restorer = Restorer(be, RestoreOptions(tile=None, tta=1, threshold=0.0, max_width=None))
        frame = np.random.default_rng(6).uniform(0.0, 1.0, (48, 64, 3)).astype(np.float32)
        base = restorer.restore(frame).image
        out = restorer.restore(np.ascontiguousarray(frame[:, ::-1])).image[:, ::-1]
        assert np.abs(out - base).max() > 1e-3


class TestTtaOptions:
    def test_model_spec_parameter(self):
        with pytest.raises(InputError, match="tta"):
            parse_method("default:tta=3")

    def test_cli_rejects_other_counts(self, tmp_path, capsys):
        src = make_png(tmp_path / "a.png", np.full((48, 64, 3), 128, np.uint8))
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--tta", "3", "-q"], capsys)
        assert code == 2 and "--tta" in err
        assert not (tmp_path / "out").exists()

    def test_frames_with_tta(self, tmp_path, capsys, net_file):
        pixels = np.random.default_rng(8).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        src = make_png(tmp_path / "a.png", pixels)
        code, _, err = run_cli(
            ["frames", src, "-o", tmp_path / "out", "--model", net_file, "--backend", "torch", "--tta", "4"], capsys
        )
        assert code == 0, err
        assert "tta: 4 transforms" in err
        out = read_image(tmp_path / "out" / "a.png")
        assert out.rgb.shape == (48, 64, 3)
