"""Stills are stills: numbered files are restored as a motion-picture sequence only when their
pictures show one scene (scanner software numbers unrelated scans just as a film scanner numbers
frames), and a neighbour that does not show the same picture is never used."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_cli, small_temporal_model
from media import make_png

from filmclean.pipeline import looks_like_sequence, sequence_by_content
from filmclean.temporal import TRUST, SequenceAligner, agreement, align_neighbour, frame_flows, related


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    return np.clip(cv2.GaussianBlur(g.random((h, w, 3)).astype(np.float32), (0, 0), 2.0) * 3 - 1, 0, 1)


@pytest.fixture(scope="module")
def temporal_model(tmp_path_factory) -> Path:
    return small_temporal_model(tmp_path_factory.mktemp("tm") / "temporal.safetensors", perturb=0.1)


class TestAgreement:
    def test_one_scene_and_unrelated_pictures(self):
        big = smooth(140, 160, 0)
        a, b = big[10:74, 10:90], big[12:76, 13:93]  # the same scene, moved
        c = smooth(64, 80, 1)  # another picture
        assert related(a, b) and not related(a, c)
        pf = frame_flows(a, b)
        aligned, trust = align_neighbour(a, b, pf.ab, pf.ba)
        assert agreement(a, aligned, trust) > 0.8
        pf = frame_flows(a, c)
        aligned, trust = align_neighbour(a, c, pf.ab, pf.ba)
        assert agreement(a, aligned, trust) < 0.5

    def test_aligner_drops_an_unrelated_neighbour(self):
        big = smooth(140, 160, 0)
        cur, prev, other = big[10:74, 10:90], big[12:76, 13:93], smooth(64, 80, 2)
        aligner = SequenceAligner()
        stack = aligner.stack(cur, 1, prev, 0, other, 2)
        assert stack[TRUST][0].mean() > 0.5  # the previous frame shows the scene
        assert not stack[TRUST][1].any() and aligner.unrelated == 1  # the next one does not


class TestNumberedStills:
    def test_twenty_unrelated_numbered_images_are_restored_as_stills(self, tmp_path, capsys, temporal_model):
        scans = tmp_path / "scans"
        scans.mkdir()
        for k in range(1, 21):
            make_png(scans / f"{k:04d}.png", (smooth(40, 56, 100 + k) * 255).astype(np.uint8), text=None)
        files = sorted(scans.iterdir())
        assert looks_like_sequence(files) and not sequence_by_content(files)
        common = ["--model", temporal_model, "--backend", "torch"]
        code, _, err = run_cli(["frames", scans, "-o", tmp_path / "default", *common], capsys)
        assert code == 0, err
        assert "temporal (alignment" not in err  # no optical flow was spent on them
        code, _, err = run_cli(["frames", scans, "-o", tmp_path / "single", "--no-temporal", *common], capsys)
        assert code == 0, err
        for f in files:
            assert (tmp_path / "default" / f.name).read_bytes() == (tmp_path / "single" / f.name).read_bytes()

    def test_a_real_sequence_still_uses_its_neighbours(self, tmp_path, capsys, temporal_model):
        big = (smooth(140, 160, 0) * 255).astype(np.uint8)
        seq = tmp_path / "seq"
        seq.mkdir()
        for k in range(5):
            make_png(seq / f"reel_{k:04d}.png", big[10 + k : 58 + k, 10 + 2 * k : 74 + 2 * k], text=None)
        assert sequence_by_content(sorted(seq.iterdir()))
        code, _, err = run_cli(
            ["frames", seq, "-o", tmp_path / "out", "--model", temporal_model, "--backend", "torch"], capsys
        )
        assert code == 0, err
        assert "temporal (alignment" in err
