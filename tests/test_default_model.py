"""The shipped default model: found without --model, checksums enforced, leaves flat film alone."""

import shutil

import numpy as np
import pytest

from filmclean.engine import RestoreOptions, Restorer
from filmclean.errors import ModelError
from filmclean.model import default_model_paths, load_model, models_dir

pytestmark = pytest.mark.skipif(default_model_paths() == (None, None), reason="no default model installed")


def test_loads_and_restores_a_frame():
    be = load_model(None)
    assert be.info["has_mask"] and be.describe().startswith("onnx")
    rng = np.random.default_rng(0)
    frame = np.clip(0.5 + 0.02 * rng.standard_normal((48, 64, 3)), 0, 1).astype(np.float32)  # grainy grey
    damaged = frame.copy()
    damaged[20:24, 30:34] = 0.02  # a dark speck
    out = Restorer(be, RestoreOptions(tile=None)).restore(damaged)
    assert out.image.shape == frame.shape and out.mask.shape == (48, 64)
    assert out.mask[21, 31] > 0.5  # found
    assert np.abs(out.image[20:24, 30:34] - 0.5).mean() < 0.15  # repaired towards the surroundings
    far = out.mask < 0.5
    np.testing.assert_array_equal(out.image[far], damaged[far])  # untouched elsewhere, bit for bit


def test_torch_backend_agrees_with_onnx():
    rng = np.random.default_rng(1)
    frame = rng.random((40, 56, 3), dtype=np.float32)
    a = Restorer(load_model(None, backend="onnx"), RestoreOptions(tile=None)).restore(frame)
    b = Restorer(load_model(None, backend="torch"), RestoreOptions(tile=None)).restore(frame)
    assert np.abs(a.mask - b.mask).max() < 1e-3


def test_corrupt_model_is_refused(tmp_path, monkeypatch):
    src = models_dir()
    for name in ("default.safetensors", "default.onnx", "SHA256SUMS"):
        shutil.copy(src / name, tmp_path / name)
    data = bytearray((tmp_path / "default.onnx").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "default.onnx").write_bytes(bytes(data))
    monkeypatch.setenv("FILMCLEAN_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="checksum"):
        load_model(None)


@pytest.mark.skipif(default_model_paths("temporal") == (None, None), reason="no temporal model installed")
class TestShippedTemporalModel:
    def test_found_for_sequences_only(self):
        assert load_model(None, temporal=True).info["in_channels"] == 11
        assert load_model(None).info["in_channels"] == 3  # still images: the single-frame model

    def test_repairs_a_one_frame_speck_from_the_neighbours(self):
        from filmclean.sequence import restore_sequence

        rng = np.random.default_rng(0)
        base = np.clip(0.5 + 0.02 * rng.standard_normal((48, 64, 3)), 0, 1).astype(np.float32)
        frames = [base.copy() for _ in range(3)]
        frames[1][20:24, 30:34] = 0.02  # dust on the middle frame only
        r = Restorer(load_model(None, temporal=True), RestoreOptions(tile=None))
        out = list(restore_sequence(frames, r))
        assert len(out) == 3
        assert out[1].mask[21, 31] > 0.5
        assert np.abs(out[1].image[20:24, 30:34] - base[20:24, 30:34]).mean() < 0.1
        far = out[1].mask < 0.5
        np.testing.assert_array_equal(out[1].image[far], frames[1][far])

    def test_repairs_persistent_scratches_spatially(self):
        # damage present at the same place in all three frames (scratches) gets no help from the
        # neighbours: the temporal model must find and repair it from the frame itself
        import cv2
        from skimage import data

        from filmclean.sequence import restore_sequence
        from filmclean.train.synth import dustify_sequence

        img = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        r = Restorer(load_model(None, temporal=True), RestoreOptions(tile=None))
        found, before, after = [], [], []
        for seed in range(4):
            dmg, masks = dustify_sequence([img] * 3, seed, polarity="dark")
            persist = (masks[0] > 0.2) & (masks[1] > 0.2) & (masks[2] > 0.2)
            if persist.sum() < 30:
                continue
            out = list(restore_sequence(dmg, r))[1]
            found.append((out.mask >= 0.5)[persist].mean())
            before.append(np.abs(dmg[1] - img)[persist].mean())
            after.append(np.abs(out.image - img)[persist].mean())
        assert found, "no persistent damage drawn"
        assert np.mean(found) > 0.5
        assert np.mean(after) < 0.7 * np.mean(before)
