"""Tiling: grid geometry, partition of unity, exact reconstruction, tiled == untiled."""

import numpy as np
import pytest
import torch

from filmclean.backends import TorchBackend
from filmclean.engine import RestoreOptions, Restorer, composite
from filmclean.nets import build_network, network_info
from filmclean.tiling import TileAccumulator, axis_weights, extract_tiles, make_grid, pad_frame, tile_starts


class TestTileStarts:
    @pytest.mark.parametrize(
        "length,tile,overlap,mult", [(100, 32, 8, 1), (96, 32, 16, 8), (64, 64, 8, 1), (200, 48, 20, 4)]
    )
    def test_cover_and_overlap(self, length, tile, overlap, mult):
        starts = tile_starts(length, tile, overlap, mult)
        assert starts[0] == 0 and starts[-1] + tile == length
        assert all(s % mult == 0 for s in starts)
        for a, b in zip(starts, starts[1:]):
            assert a + tile - b >= overlap  # overlap at least as asked
            assert b > a

    def test_single_tile_when_large(self):
        assert tile_starts(50, 64, 8) == [0]


class TestAxisWeights:
    @pytest.mark.parametrize("guard", [0, 3, 8])
    def test_partition_of_unity(self, guard):
        length, tile = 150, 40
        starts = tile_starts(length, tile, 16, 1)
        ws = axis_weights(length, tile, starts, guard)
        total = np.zeros(length)
        for s, w in zip(starts, ws):
            total[s : s + tile] += w
        np.testing.assert_allclose(total, 1.0, atol=1e-6)

    def test_guard_zone_is_zero(self):
        starts = [0, 24]
        ws = axis_weights(56, 32, starts, guard=4)
        assert np.all(ws[0][-4:] == 0)  # right edge of the left tile
        assert np.all(ws[1][:4] == 0)  # left edge of the right tile
        assert ws[0][0] == 1 and ws[1][-1] == 1  # frame borders keep full weight


class TestExtractCombine:
    @pytest.mark.parametrize(
        "shape,tile,overlap,mult,margin",
        [((3, 48, 64), 16, 4, 1, 0), ((3, 37, 51), 24, 8, 8, 5), ((1, 5, 7), 8, 2, 4, 2)],
    )
    def test_rebuilds_input_exactly(self, shape, tile, overlap, mult, margin):
        rng = np.random.default_rng(0)
        x = rng.random(shape, dtype=np.float32)
        grid = make_grid(shape[1], shape[2], tile, overlap, mult, margin, guard=2)
        padded = pad_frame(x, grid)
        assert padded.shape[1] % mult == 0 and padded.shape[2] % mult == 0
        acc = TileAccumulator(grid, shape[0])
        tiles = extract_tiles(padded, grid, list(range(len(grid))))
        assert tiles.shape == (len(grid), shape[0], grid.tile_h, grid.tile_w)
        for i, t in enumerate(tiles):
            acc.add(i, t)
        np.testing.assert_allclose(acc.result(), x, rtol=0, atol=1e-6)

    def test_tiny_frames(self):
        for h, w in [(1, 1), (1, 9), (7, 1)]:
            grid = make_grid(h, w, 16, 4, 8, 4, 2)
            padded = pad_frame(np.ones((3, h, w), np.float32), grid)
            assert padded.shape[1] % 8 == 0 and padded.shape[2] % 8 == 0


def _restorer(arch, config, tile, overlap=None, batch=3, threshold=0.5):
    net = build_network(arch, config)
    return Restorer(
        TorchBackend(net, network_info(net), device="cpu"),
        RestoreOptions(tile=tile, overlap=overlap, batch=batch, threshold=threshold, max_width=None),
    )


class TestRestorerTiling:
    def test_identity_exact(self):
        rng = np.random.default_rng(1)
        frame = (rng.integers(0, 65536, (48, 64, 3)) / 65535).astype(np.float32)  # a 16-bit picture
        out = _restorer("identity", {"size_multiple": 8}, tile=16, overlap=4).restore(frame)
        np.testing.assert_allclose(out.image, frame, rtol=0, atol=1e-6)  # blending rounds by an ulp at most
        q = lambda a: np.round(a * 65535).astype(np.uint16)  # noqa: E731
        np.testing.assert_array_equal(q(out.image), q(frame))  # exact at 16-bit precision
        assert out.mask is None

    @pytest.mark.parametrize("size", [(48, 64), (37, 53)])
    def test_tiled_equals_untiled(self, size):
        torch.manual_seed(0)
        rng = np.random.default_rng(2)
        frame = rng.random((*size, 3), dtype=np.float32)
        cfg = {"channels": 8, "layers": 4, "seed": 3}
        whole = _restorer("tinyconv", cfg, tile=None).restore(frame).image
        r = 4  # receptive radius of 4 stacked 3x3 convs
        tiled = _restorer("tinyconv", cfg, tile=24, overlap=2 * r).restore(frame).image
        assert np.abs(tiled - whole).max() < 1e-4

    def test_too_little_overlap_differs(self):
        """The check above can fail: with no overlap the tile seams show."""
        rng = np.random.default_rng(2)
        frame = rng.random((48, 64, 3), dtype=np.float32)
        cfg = {"channels": 8, "layers": 4, "seed": 3}
        whole = _restorer("tinyconv", cfg, tile=None).restore(frame).image
        seamy = _restorer("tinyconv", cfg, tile=16, overlap=0).restore(frame).image
        assert np.abs(seamy - whole).max() > 1e-3

    def test_narrow_backend_tiles_equal_untiled(self):
        """A backend with a fast width (ONNX Runtime on the CPU) gets tiles no wider than it, and
        the same output as one whole-frame pass."""
        torch.manual_seed(0)
        frame = np.random.default_rng(4).random((40, 150, 3), dtype=np.float32)
        cfg = {"channels": 8, "layers": 4, "seed": 3}
        whole = _restorer("tinyconv", cfg, tile=None).restore(frame).image
        narrow = _restorer("tinyconv", cfg, tile=4096)
        narrow.backend.fast_width = 48
        grid = narrow._grid(40, 150)
        assert grid.tile_w <= 48 and len(grid.xs) >= 4 and len(grid.ys) == 1  # tall tiles, one row
        assert np.abs(narrow.restore(frame).image - whole).max() < 1e-4

    def test_mask_network_tiled_equals_untiled(self):
        rng = np.random.default_rng(3)
        frame = rng.random((40, 56, 3), dtype=np.float32)
        cfg = {"channels": 6, "layers": 2, "seed": 5, "size_multiple": 4}
        whole = _restorer("tinymask", cfg, tile=None).restore(frame)
        tiled = _restorer("tinymask", cfg, tile=16, overlap=4).restore(frame)
        assert whole.mask.shape == (40, 56)
        assert np.abs(tiled.mask - whole.mask).max() < 1e-4
        # compositing: pixels whose mask is below the threshold pass through bit-identically
        thr = float(np.median(whole.mask))
        whole = _restorer("tinymask", cfg, tile=None, threshold=thr).restore(frame)
        keep = whole.mask < thr
        assert keep.any() and (~keep).any()
        np.testing.assert_array_equal(whole.image[keep], frame[keep])


class TestMaxTileWidth:
    def test_caps_width_only(self):
        g = make_grid(2160, 3840, 4096, 376, 16, 16, 188, max_tile_width=2016)
        assert g.tile_w <= 2016 and len(g.xs) == 3 and len(g.ys) == 1 and g.tile_h == g.padded_shape[0]
        assert (len(g.ys), len(g.xs)) == (1, 3)
        one = make_grid(1080, 1920, 4096, 376, 16, 16, 188, max_tile_width=2016)
        assert len(one) == 1  # a 1080p frame is one tile

    def test_untiled_ignores_it(self):
        g = make_grid(100, 300, None, 10, 4, 2, 5, max_tile_width=64)
        assert len(g) == 1 and g.tile_w == g.padded_shape[1]


class TestComposite:
    def test_in_place_and_batched(self):
        rng = np.random.default_rng(0)
        rgb = rng.random((2, 5, 6, 3), dtype=np.float32)
        rep = rng.random((2, 5, 6, 3), dtype=np.float32) * 1.5  # some above 1: clipped
        prob = rng.random((2, 5, 6), dtype=np.float32)
        expected = np.where((prob >= 0.5)[..., None], np.clip(rep, 0, 1), rgb)
        np.testing.assert_array_equal(composite(rgb, rep, prob, 0.5), expected)
        out = np.full_like(rgb, 7.0)
        assert composite(rgb, rep, prob, 0.5, out=out) is out
        np.testing.assert_array_equal(out, expected)
        same = rgb.copy()
        composite(same, rep, prob, 0.5, out=same)  # in place
        np.testing.assert_array_equal(same, expected)

    def test_threshold(self):
        rgb = np.zeros((2, 2, 3), np.float32)
        rep = np.ones((2, 2, 3), np.float32)
        prob = np.array([[0.1, 0.5], [0.9, 0.49]], np.float32)
        out = composite(rgb, rep, prob, 0.5)
        np.testing.assert_array_equal(out[..., 0], [[0, 1], [1, 0]])
        out_strict = composite(rgb, rep, prob, 0.95)
        assert out_strict.max() == 0
