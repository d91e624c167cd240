"""Infrared defect maps (issue 22): synthetic RGBI scans made here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from helpers import run_cli

from filmclean.infrared import infrared_defects
from filmclean.io.images import read_image


def rgbi_scan(seed: int = 0, h: int = 128, w: int = 192, silver: bool = False):
    """``(rgb, ir, visible)``: a dusty colour scan with its infrared record -- the film base's level
    with a slight cyan-dye leak (following the red record), or for ``silver`` the picture itself --
    and where the dust is visible (changed by more than 2/255)."""
    rng = np.random.default_rng(seed)
    low = rng.random((h // 32 + 2, w // 32 + 2, 3)).astype(np.float32)
    rgb = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.05, 0.95)
    rgb = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1).astype(np.float32)
    ir = 0.9 * rgb.mean(-1) if silver else 0.85 - 0.08 * (1 - rgb[..., 0])
    ir = (ir + rng.normal(0, 0.004, ir.shape)).astype(np.float32)
    opacity = np.zeros((h, w), np.float32)
    for _ in range(25):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(opacity, c, int(rng.integers(1, 4)), float(rng.uniform(0.6, 1)), -1, cv2.LINE_AA)
    for _ in range(3):
        pts = np.stack([rng.uniform(0, w, 5), rng.uniform(0, h, 5)], 1).astype(np.int32)
        cv2.polylines(opacity, [pts], False, float(rng.uniform(0.6, 1)), 1, cv2.LINE_AA)
    damaged = rgb * (1 - opacity[..., None]) + 0.05 * opacity[..., None]
    visible = np.abs(damaged - rgb).max(-1) > 2 / 255
    return damaged.astype(np.float32), (ir * (1 - opacity)).astype(np.float32), visible


def _write_rgbi(path, rgb, ir):
    a = np.concatenate([rgb, ir[..., None]], axis=-1)
    tifffile.imwrite(path, np.round(a * 65535).astype(np.uint16), photometric="rgb", extrasamples=[0])
    return path


class TestInfraredDefects:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_dust_found_from_infrared_alone(self, seed):
        rgb, ir, visible = rgbi_scan(seed)
        found = infrared_defects(rgb, ir)
        assert found.mask is not None and found.reason is None
        recall = (found.mask & visible).sum() / visible.sum()
        false = (found.mask & ~visible).sum() / (~visible).sum()
        assert recall >= 0.95 and false <= 0.005, (recall, false)

    def test_silver_repeats_the_picture(self):
        rgb, ir, _ = rgbi_scan(0, silver=True)
        found = infrared_defects(rgb, ir)
        assert found.mask is None and "repeats the picture" in found.reason


class TestFramesInfrared:
    def test_rgbi_tiff_restored_channel_kept(self, tmp_path, capsys):
        rgb, ir, visible = rgbi_scan(3)
        src = tmp_path / "scans"
        src.mkdir()
        _write_rgbi(src / "slide.tif", rgb, ir)
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--infrared"], capsys)
        assert code == 0, err
        assert "marked by the infrared channel" in err
        before, after = tifffile.imread(src / "slide.tif"), tifffile.imread(tmp_path / "out" / "slide.tif")
        assert after.shape == before.shape and after.dtype == np.uint16
        np.testing.assert_array_equal(after[..., 3], before[..., 3])  # the infrared written back unchanged
        changed = (after[..., :3] != before[..., :3]).any(axis=-1)
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "plain", "-q"], capsys)
        assert code == 0, err
        plain = (tifffile.imread(tmp_path / "plain" / "slide.tif")[..., :3] != before[..., :3]).any(axis=-1)
        assert changed[visible].mean() > 0.9  # the dust repaired
        # elsewhere it adds nothing: what changes there is what the model alone changes (it repaints
        # some of this synthetic picture's fine noise either way)
        assert (changed & ~visible & ~plain).mean() < 0.005

    def test_silver_scan_falls_back_with_a_note(self, tmp_path, capsys):
        rgb, ir, _ = rgbi_scan(0, silver=True)
        src = tmp_path / "scans"
        src.mkdir()
        _write_rgbi(src / "bw.tif", rgb, ir)
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--infrared", "-q"], capsys)
        assert code == 0, err
        assert "note: bw.tif: the infrared channel repeats the picture" in err
        assert read_image(tmp_path / "out" / "bw.tif").alpha is not None

    def test_no_fourth_channel_is_refused(self, tmp_path, capsys):
        rgb, _, _ = rgbi_scan(0)
        src = tmp_path / "scans"
        src.mkdir()
        tifffile.imwrite(src / "rgb.tif", np.round(rgb * 65535).astype(np.uint16), photometric="rgb")
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--infrared"], capsys)
        assert code != 0 and "rgb.tif" in err and "no fourth (infrared) channel" in err
        assert "Traceback" not in err and not (tmp_path / "out" / "rgb.tif").exists()


def test_rgbi_exr(tmp_path, capsys):
    """DPX/EXR scans carry the infrared as their fourth channel too (here a float EXR)."""
    from media import make_exr

    rgb, ir, visible = rgbi_scan(4)
    src = tmp_path / "scans"
    src.mkdir()
    make_exr(src / "frame.exr", np.concatenate([rgb, ir[..., None]], axis=-1), half=False)
    code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--infrared"], capsys)
    assert code == 0, err
    before, after = read_image(src / "frame.exr"), read_image(tmp_path / "out" / "frame.exr")
    np.testing.assert_array_equal(after.alpha, before.alpha)
    assert (after.rgb != before.rgb).any(axis=-1)[visible].mean() > 0.9
