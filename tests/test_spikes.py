"""Motion-compensated spike detection (filmclean.spikes), its use by the temporal restorer for
single-frame networks, and evaluate-clip's scores for footage without a clean reference."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_cli

from filmclean.spikes import (
    SpikeOptions,
    consistent_pixels,
    detect_spikes,
    persistent_detections,
    scratch_pixels,
    spike_repair,
)
from filmclean.temporal import SequenceAligner, build_stack

H, W = 96, 128


def picture(shift: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth textured picture, moved ``shift`` px to the right (the same scene every time)."""
    g = np.random.default_rng(seed)
    big = cv2.GaussianBlur(g.random((H + 40, W + 40, 3)).astype(np.float32), (0, 0), 3.0)
    big = np.clip((big - big.mean()) * 6 + 0.5, 0.05, 0.95)
    return np.ascontiguousarray(big[20 : 20 + H, 20 - shift : 20 - shift + W])


def dot(frame: np.ndarray, y: int, x: int, r: int = 3, value: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    out = frame.copy()
    m = np.zeros(frame.shape[:2], np.uint8)
    cv2.circle(m, (x, y), r, 1, -1)
    out[m > 0] = value
    return out, m > 0


def stack_of(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    return SequenceAligner().stack(cur, 1, prev, 0, nxt, 2)


class TestDetectSpikes:
    def test_finds_a_speck_on_one_frame_of_a_moving_picture(self):
        frames = [picture(2 * t) for t in range(3)]
        cur, m = dot(frames[1], 48, 64)
        sp = detect_spikes(stack_of(frames[0], cur, frames[2]))
        assert sp.mask[m].mean() > 0.9
        assert (sp.mask & ~cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)).sum() == 0
        assert sp.per_10k > 0

    def test_clean_moving_picture_has_no_spikes(self):
        frames = [picture(2 * t) for t in range(3)]
        sp = detect_spikes(stack_of(*frames))
        assert not sp.mask.any() and sp.per_10k == 0.0

    def test_damage_on_every_frame_is_no_spike(self):
        frames = [dot(picture(), 48, 64)[0] for _ in range(3)]  # a static shot, dirt in the gate
        assert not detect_spikes(stack_of(*frames)).mask.any()

    def test_speck_the_neighbours_disagree_on_is_left(self):
        prev, nxt = picture(0, seed=1), picture(0, seed=2)  # unrelated neighbours: nothing to trust
        cur, _ = dot(picture(0, seed=3), 48, 64)
        stack = build_stack(cur, (prev, np.ones((H, W), np.float32)), (nxt, np.ones((H, W), np.float32)))
        assert detect_spikes(stack).mask.sum() < 0.01 * H * W

    def test_without_two_neighbours_nothing_is_tested(self):
        cur, _ = dot(picture(), 48, 64)
        stack = build_stack(cur, (picture(), np.ones((H, W), np.float32)), None)
        sp = detect_spikes(stack)
        assert not sp.usable.any() and not sp.mask.any() and sp.per_10k == 0.0

    def test_exposure_flicker_is_no_damage(self):
        frames = [np.clip(picture(2 * t) * g, 0, 1) for t, g in enumerate((0.93, 1.07, 0.95))]
        cur, m = dot(frames[1], 48, 64)
        stack = stack_of(frames[0], cur, frames[2])
        sp = detect_spikes(stack)
        assert sp.mask[m].mean() > 0.9 and (sp.mask & ~m).sum() < 0.01 * H * W
        unmatched = detect_spikes(stack, SpikeOptions(match_exposure=False))
        assert unmatched.mask.sum() > 0.2 * H * W  # the brighter frame departs from both everywhere

    def test_bad_options(self):
        with pytest.raises(ValueError, match="min_change"):
            SpikeOptions(min_change=-0.1)
        with pytest.raises(ValueError, match="grow"):
            SpikeOptions(grow=-1)


class TestSpikeRepair:
    def test_repairs_from_the_neighbours_and_leaves_the_rest(self):
        frames = [picture(2 * t) for t in range(3)]
        cur, m = dot(frames[1], 48, 64, value=0.98)  # a bright speck (negative film)
        stack = stack_of(frames[0], cur, frames[2])
        sp = detect_spikes(stack)
        out = spike_repair(stack, sp)
        assert np.abs(out[m] - frames[1][m]).mean() < 0.03  # the picture under the speck comes back
        assert np.array_equal(out[~sp.mask], cur[~sp.mask])  # everything else bit-identical

    def test_nothing_found_nothing_changed(self):
        frames = [picture(2 * t) for t in range(3)]
        stack = stack_of(*frames)
        assert np.array_equal(spike_repair(stack, detect_spikes(stack)), frames[1])


class TestScratchPixels:
    def test_long_near_vertical_runs_only(self):
        m = np.zeros((80, 80), bool)
        m[5:75, 10:12] = True  # a vertical scratch
        m[40:42, 20:70] = True  # a horizontal line
        m[5:15, 50:52] = True  # a short vertical dash
        line = np.zeros((80, 80), np.uint8)
        cv2.line(line, (30, 5), (45, 75), 1, 2)  # slanted about 12 degrees
        m |= line > 0
        got = scratch_pixels(m, length=30)
        assert got[5:75, 10:12].all() and got[line > 0].mean() > 0.8
        assert not got[40:42, 45:70].any() and not got[5:15, 50:52].any()  # (the slanted line crosses at x 38)

    def test_long_runs_found_on_the_reduced_mask_are_exact_pixels(self):
        m = np.zeros((500, 200), bool)
        m[20:460, 50:52] = True  # 440 px: longer than 200
        m[100:260, 120:122] = True  # 160 px: shorter
        m[10:12, 10:190] = True  # horizontal
        got = scratch_pixels(m, length=200)  # found at half size
        assert got[20:460, 50:52].all() and not got[100:260, 120:122].any() and not got[10:12, 60:190].any()
        assert not (got & ~m).any()


class TestPersistentDetections:
    def test_undoes_what_the_neighbours_show_except_long_scratches(self):
        changed = np.zeros((100, 100), bool)
        changed[10:20, 10:20] = True  # a blob the neighbours show too: picture
        changed[10:20, 60:70] = True  # a blob the neighbours do not show: one-frame damage
        changed[5:95, 40:42] = True  # a scratch through every frame
        consistent = np.zeros((100, 100), bool)
        consistent[:, :50] = True
        undo = persistent_detections(changed, consistent)
        assert undo[10:20, 10:20].all()
        assert not undo[10:20, 60:70].any() and not undo[5:95, 40:42].any()

    def test_consistent_pixels_need_a_trusted_neighbour(self):
        f = picture()
        stack = build_stack(f, None, None)
        assert not consistent_pixels(stack, detect_spikes(stack)).any()
        stack = build_stack(f, (f, np.ones((H, W), np.float32)), None)
        assert consistent_pixels(stack, detect_spikes(stack)).all()


@pytest.fixture(scope="module")
def quiet_single_model(tmp_path_factory) -> Path:
    """A tiny single-frame mask network."""
    import torch

    from filmclean.modelfile import save_model
    from filmclean.nets.maskguided import MaskGuidedNet

    cfg = {"widths": [8, 12, 16], "dilations": [1, 2]}
    torch.manual_seed(0)
    net = MaskGuidedNet(**cfg).eval()
    return save_model(net, "maskguided", cfg, tmp_path_factory.mktemp("m") / "single.safetensors")


class TestTemporalRestorerWithSpikes:
    def test_one_frame_speck_repaired_only_in_temporal_mode(self, quiet_single_model):
        from filmclean.api import open_restorer
        from filmclean.engine import RestoreOptions
        from filmclean.sequence import TemporalRestorer, restore_sequence

        frames = [picture(2 * t) for t in range(5)]
        frames[2], m = dot(frames[2], 48, 64)
        clean2 = picture(4)
        # threshold 1: the network itself repairs nothing, so every change is the spike stage's
        r = open_restorer(quiet_single_model, RestoreOptions(tile=None, threshold=1.0), backend="torch")
        out = [f.image for f in restore_sequence(frames, r, temporal=True, spikes=SpikeOptions())]
        assert np.abs(out[2][m] - clean2[m]).mean() < 0.03
        for t in (0, 1, 3, 4):
            assert np.array_equal(out[t], frames[t])
        alone = [f.image for f in restore_sequence(frames, r, temporal=False, spikes=SpikeOptions())]
        assert np.array_equal(alone[2], frames[2])
        assert not TemporalRestorer(r, temporal=True).use_neighbours  # no spike stage asked for


class TestEvaluateClipNoReference:
    def test_spikes_before_and_after_and_contact_sheet(self, tmp_path, capsys):
        import av

        frames = [picture(2 * t) for t in range(6)]
        for t in (1, 3):
            frames[t], _ = dot(frames[t], 30 + 10 * t, 40 + 12 * t)
        clip = tmp_path / "reel.mkv"
        with av.open(str(clip), "w") as c:
            s = c.add_stream("ffv1", rate=24)
            s.width, s.height, s.pix_fmt = W, H, "bgr0"
            for f in frames:
                rgb = np.round(f * 255).astype(np.uint8)
                for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        out = tmp_path / "report"
        code, _, err = run_cli(
            [
                "evaluate-clip",
                str(clip),
                "--no-reference",
                "--method",
                "identity",
                "--method",
                "tmedian",
                "-o",
                str(out),
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        import json

        rep = json.loads((out / "report.json").read_text())
        assert rep["input"]["spikes_per_10k"] > 0
        methods = {m["name"]: m for m in rep["methods"]}
        assert methods["identity"]["changed"] == 0.0 and methods["identity"]["spikes_removed"] == 0.0
        assert methods["tmedian"]["spikes_removed"] > 0.9 and methods["tmedian"]["changed"] > 0
        sheet = cv2.imread(str(out / "contact.png"))
        assert sheet is not None and sheet.shape[1] == 3 * W
        assert (out / "per_frame.csv").read_text().count("\n") == 1 + 3 * 6

    def test_too_few_frames_is_a_one_line_error(self, tmp_path, capsys):
        import av

        clip = tmp_path / "two.mkv"
        with av.open(str(clip), "w") as c:
            s = c.add_stream("ffv1", rate=24)
            s.width, s.height, s.pix_fmt = W, H, "bgr0"
            for f in (picture(0), picture(2)):
                for p in s.encode(av.VideoFrame.from_ndarray(np.round(f * 255).astype(np.uint8), format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        code, _, err = run_cli(
            ["evaluate-clip", str(clip), "--no-reference", "--method", "identity", "-o", str(tmp_path / "r")], capsys
        )
        assert code != 0 and "at least 3 frames" in err and "Traceback" not in err


class TestHeldoutClipDamage:
    def test_scratches_persist_and_the_rest_is_drawn_afresh(self):
        from filmclean.evaluation.heldout import CLIP_KINDS, damage_heldout_sequence

        still = picture()
        frames = [still.copy() for _ in range(4)]  # a static shot: persistent damage stays in place
        damaged, kinds = damage_heldout_sequence(frames, seed=3)
        again, _ = damage_heldout_sequence(frames, seed=3)
        assert all(np.array_equal(a, b) for a, b in zip(damaged, again))  # deterministic
        assert all(set(k) == set(CLIP_KINDS) for k in kinds)
        ones = [k["one-frame"] for k in kinds]
        assert any(not np.array_equal(ones[0], o) for o in ones[1:])  # one-frame damage moves
        lasting = [k["persistent"] | k["one-frame"] for k in kinds]
        for t in range(1, 4):  # where neither frame has one-frame damage, the scratches are the same
            free = ~ones[0] & ~ones[t]
            assert np.array_equal((kinds[0]["persistent"] & free), (kinds[t]["persistent"] & free))
            assert np.array_equal(damaged[0][free], damaged[t][free])
        for d, m in zip(damaged, lasting):
            assert np.array_equal(d[~m], still[~m])  # nothing outside the masks changes

    def test_evaluate_sequence_reports_each_kind_left_alone(self):
        from filmclean.evaluation.clip import evaluate_sequence
        from filmclean.evaluation.methods import identity_clip_method, tmedian_clip_method

        frames = [picture() for _ in range(6)]  # a static shot: a temporal median sees the picture
        res = evaluate_sequence(
            frames, [identity_clip_method(), tmedian_clip_method(1)], seed=1, damage="heldout", strip=False
        )
        left = res.summaries["identity"]["left_alone"]
        assert left["one-frame"] == 1.0
        # a temporal median repairs one-frame damage on the inner frames (its ends are clamped: the first
        # and last frames come out as they went in)
        assert res.summaries["tmedian"]["left_alone"]["one-frame"] < 0.8
        assert res.settings["damage"]["function"].endswith("damage_heldout_sequence")
        from filmclean.errors import InputError

        with pytest.raises(InputError, match="damage must be one of"):
            evaluate_sequence(frames, [identity_clip_method()], damage="nope")


class TestFramesCommandUsesTheNeighbours:
    def test_one_frame_speck_on_a_numbered_sequence(self, tmp_path, capsys):
        """`filmclean frames` on a moving sequence (the shipped model, the default temporal mode):
        the speck on one frame is repaired from the neighbours and the summary line says so."""
        seq, out = tmp_path / "seq", tmp_path / "out"
        seq.mkdir()
        clean = [picture(2 * t, seed=5) for t in range(5)]
        frames = list(clean)
        frames[2], m = dot(clean[2], 40, 70, r=4)
        for t, f in enumerate(frames):
            cv2.imwrite(str(seq / f"frame_{t:04d}.png"), np.round(f[..., ::-1] * 255).astype(np.uint8))
        code, _, err = run_cli(["frames", str(seq), "-o", str(out)], capsys)
        assert code == 0, err
        assert "repaired from the neighbours" in err
        got = cv2.imread(str(out / "frame_0002.png"))[..., ::-1].astype(np.float32) / 255
        assert np.abs(got[m] - clean[2][m]).mean() < 0.04  # the speck took the picture under it
        assert np.abs(got[m] - frames[2][m]).mean() > 0.2
