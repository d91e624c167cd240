"""Temporal restoration: alignment, the stack, the temporal network, windows and the pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL, run_cli, small_temporal_model
from media import make_clip, make_png

from filmclean.engine import RestoreOptions, Restorer
from filmclean.model import load_model
from filmclean.nets import network_info
from filmclean.nets.maskguided import MaskGuidedNet
from filmclean.nets.temporal import TemporalMaskGuidedNet
from filmclean.sequence import TemporalRestorer, Window, restore_sequence, windows
from filmclean.temporal import (
    SequenceAligner,
    align_neighbour,
    build_stack,
    flow_confidence,
    frame_flows,
    is_scene_cut,
    warp,
)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image with texture DIS can track."""
    import cv2

    g = np.random.default_rng(seed)
    img = g.random((h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 2.0) * 3 - 1, 0, 1)


def shifted(img: np.ndarray, dx: int, dy: int, h: int, w: int, x0: int = 20, y0: int = 20) -> np.ndarray:
    return np.ascontiguousarray(img[y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w])


class TestAlignment:
    def test_shift_is_recovered_and_trusted(self):
        big = smooth_image(160, 200)
        a, b = shifted(big, 0, 0, 96, 128), shifted(big, 3, -2, 96, 128)
        pf = frame_flows(a, b)
        assert not pf.cut
        inner = (slice(12, -12), slice(12, -12))
        # a pixel of a at p shows up in b at p - (3, -2)
        assert np.median(pf.ab[..., 0][inner]) == pytest.approx(-3, abs=0.3)
        assert np.median(pf.ab[..., 1][inner]) == pytest.approx(2, abs=0.3)
        aligned, conf = align_neighbour(a, b, pf.ab, pf.ba)
        assert aligned.shape == a.shape and conf.shape == a.shape[:2] and conf.dtype == np.float32
        assert np.abs(aligned - a)[inner].mean() < 0.02
        assert conf[inner].mean() > 0.95

    def test_warp_zero_flow_is_identity_and_outside_is_flagged(self):
        img = smooth_image(24, 32)
        out, inside = warp(img, np.zeros((24, 32, 2), np.float32))
        np.testing.assert_allclose(out, img, atol=1e-6)
        assert inside.min() == 1.0
        _, inside = warp(img, np.full((24, 32, 2), 40.0, np.float32))
        assert inside.max() == 0.0

    def test_inconsistent_flow_is_not_trusted(self):
        fwd = np.full((16, 16, 2), 2.0, np.float32)
        assert flow_confidence(fwd, -fwd)[4:-4, 4:-4].min() > 0.99
        assert flow_confidence(fwd, fwd)[4:-4, 4:-4].max() < 0.01  # going there and back lands 8 px off

    def test_a_speck_does_not_lower_the_neighbours_trust(self):
        rng = np.random.default_rng(0)
        base = np.clip(0.5 + 0.02 * rng.standard_normal((48, 64, 3)), 0, 1).astype(np.float32)
        cur = base.copy()
        cur[20:24, 30:34] = 0.02  # dust on this frame only: exactly where the neighbour is needed
        pf = frame_flows(cur, base)
        _, conf = align_neighbour(cur, base, pf.ab, pf.ba)
        assert conf[18:26, 28:36].min() > 0.5

    def test_scene_cut(self):
        from skimage import data

        a = data.astronaut()[:256, :256].astype(np.float32) / 255
        c = data.coffee()[:256, :256].astype(np.float32) / 255
        assert is_scene_cut(a, c)
        assert not is_scene_cut(a, np.clip(a * 1.05, 0, 1))  # a flicker of exposure is no cut
        pf = frame_flows(a, c)
        assert pf.cut and not pf.ab.any()


class TestStack:
    def test_contract_and_missing_neighbours(self):
        cur = smooth_image(20, 24, 1)
        nb = smooth_image(20, 24, 2)
        conf = np.full((20, 24), 0.7, np.float32)
        s = build_stack(cur, (nb, conf), None)
        assert s.shape == (11, 20, 24) and s.dtype == np.float32
        np.testing.assert_array_equal(s[0:3], cur.transpose(2, 0, 1))
        np.testing.assert_array_equal(s[3:6], nb.transpose(2, 0, 1))
        np.testing.assert_array_equal(s[6:9], cur.transpose(2, 0, 1))  # missing next: the current frame
        assert (s[9] == np.float32(0.7)).all() and (s[10] == 0).all()

    def test_aligner_computes_each_pair_once(self, monkeypatch):
        import filmclean.temporal as temporal

        calls = []
        real = temporal.frame_flows
        monkeypatch.setattr(temporal, "frame_flows", lambda a, b, o: calls.append(1) or real(a, b, o))
        big = smooth_image(120, 160)
        frames = [shifted(big, k, 0, 64, 96) for k in range(5)]
        al = SequenceAligner()
        for t in range(5):
            prev = frames[t - 1] if t > 0 else None
            nxt = frames[t + 1] if t < 4 else None
            s = al.stack(frames[t], t, prev, t - 1, nxt, t + 1)
            assert s.shape == (11, 64, 96)
            assert (s[9].max() == 0) == (t == 0) and (s[10].max() == 0) == (t == 4)
        assert len(calls) == 4  # one flow computation (both directions) per consecutive pair

    def test_neighbour_of_another_size_is_ignored(self):
        al = SequenceAligner()
        s = al.stack(smooth_image(32, 32), 0, smooth_image(40, 32), -1, None, 1)
        assert s[9].max() == 0 and s[10].max() == 0


class TestTemporalNet:
    @pytest.mark.parametrize("fill_levels", [0, 2])
    def test_from_single_computes_the_same(self, fill_levels):
        torch.manual_seed(0)
        single = MaskGuidedNet(**SMALL, fill_levels=fill_levels).eval()
        for p in single.parameters():  # a trained-looking head, not the near-zero init
            p.data.normal_(0, 0.1)
        tnet = TemporalMaskGuidedNet.from_single(single).eval()
        x = torch.rand(2, 11, 32, 40)
        with torch.no_grad():
            a, b = single(x[:, :3]), tnet(x)
        torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(a[1], b[1], atol=1e-6, rtol=0)
        assert network_info(tnet)["in_channels"] == 11 and network_info(single)["in_channels"] == 3
        assert tnet.fill_levels == fill_levels and tnet.receptive_radius == single.receptive_radius

    def test_shapes_ranges_and_new_weights_learn(self):
        tnet = TemporalMaskGuidedNet.from_single(MaskGuidedNet(**SMALL)).train()
        x = torch.rand(2, 11, 16, 24)
        restored, prob, logits = tnet(x)
        assert restored.shape == (2, 3, 16, 24) and prob.shape == logits.shape == (2, 1, 16, 24)
        (restored.square().mean() + logits.square().mean()).backward()
        new_stem = tnet.stem[0].weight.grad[:, tnet.n_single_stem :]
        assert new_stem.abs().sum() > 0  # zero-initialised neighbour weights still receive gradient
        tnet.eval()
        with torch.no_grad():
            r, m = tnet(x)
        assert 0 <= float(r.min()) and float(r.max()) <= 1 and 0 <= float(m.min()) and float(m.max()) <= 1

    def test_temporal_cues_see_a_one_frame_speck(self):
        x = torch.full((1, 11, 8, 8), 0.5)
        x[:, 9:11] = 1.0
        x[:, 0:3, 4, 4] = 0.0  # dark speck in the current frame only
        cues = TemporalMaskGuidedNet.temporal_cues(x)
        assert cues[0, 2, 4, 4] == pytest.approx(-0.5) and cues[0, 2].abs().sum() == pytest.approx(0.5)
        x[:, 6:9, 4, 4] = 0.0  # ... also in the next frame (a persistent scratch): no spike
        assert TemporalMaskGuidedNet.temporal_cues(x)[0, 2, 4, 4] == 0


@pytest.fixture(scope="module")
def temporal_model(tmp_path_factory) -> Path:
    return small_temporal_model(tmp_path_factory.mktemp("tmodel") / "temporal.safetensors", perturb=0.05)


class TestEngineAndSequence:
    def test_tiled_stack_equals_whole_frame(self, temporal_model):
        be = load_model(temporal_model, backend="torch")
        big = smooth_image(300, 320)
        frames = [shifted(big, k, k // 2, 232, 256) for k in range(3)]
        al = SequenceAligner()
        stack = al.stack(frames[1], 1, frames[0], 0, frames[2], 2)
        whole = Restorer(be, RestoreOptions(tile=None)).restore(frames[1], stack)
        tiled_r = Restorer(be, RestoreOptions(tile=208, batch=3))
        assert tiled_r.overlap >= 2 * tiled_r.radius
        tiled = tiled_r.restore(frames[1], stack)
        np.testing.assert_allclose(tiled.image, whole.image, atol=1e-4)
        np.testing.assert_allclose(tiled.mask, whole.mask, atol=1e-4)

    def test_windows(self):
        items = ["a0", "p1", "a1", "c", "a2", "p2"]  # "c" is a context frame, "p*" are packets
        out = list(windows(items, is_frame=lambda s: s[0] in "ac", is_output=lambda s: s != "c"))
        packets = [o for o in out if isinstance(o, str)]
        wins = [o for o in out if isinstance(o, Window)]
        assert packets == ["p1", "p2"]
        assert [(w.prev, w.current, w.next) for w in wins] == [(None, "a0", "a1"), ("a0", "a1", "c"), ("c", "a2", None)]
        assert [w.index for w in wins] == [0, 1, 3]

    def test_fill_and_refine_network_exports_to_onnx(self, tmp_path):
        from filmclean.modelfile import save_model
        from filmclean.onnx_export import export_onnx

        torch.manual_seed(1)
        cfg = {**SMALL, "fill_levels": 2}
        net = TemporalMaskGuidedNet(**cfg).eval()
        for p in net.parameters():  # weights that make the mask, the fill and the refine all matter
            p.data.normal_(0, 0.1)
        st = save_model(net, "temporal_maskguided", cfg, tmp_path / "t.safetensors")
        rep = export_onnx(st, tmp_path / "t.onnx")
        assert rep["in_channels"] == 11 and rep["max_abs_diff"] < 1e-3

    def test_onnx_matches_torch(self, temporal_model, tmp_path):
        from filmclean.onnx_export import export_onnx

        rep = export_onnx(temporal_model, tmp_path / "t.onnx")
        assert rep["in_channels"] == 11 and rep["max_abs_diff"] < 1e-3
        be = load_model(tmp_path / "t.onnx", backend="onnx")
        assert be.info["in_channels"] == 11
        big = smooth_image(100, 120)
        frames = [shifted(big, k, 0, 40, 56) for k in range(4)]
        a = list(restore_sequence(frames, Restorer(be, RestoreOptions(tile=None))))
        b = list(
            restore_sequence(frames, Restorer(load_model(temporal_model, backend="torch"), RestoreOptions(tile=None)))
        )
        assert len(a) == 4
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.image, y.image, atol=1e-3)

    def test_no_temporal_ignores_neighbours(self, temporal_model):
        be = load_model(temporal_model, backend="torch")
        r = Restorer(be, RestoreOptions(tile=None))
        tr = TemporalRestorer(r, temporal=False)
        f = smooth_image(32, 40)
        other = smooth_image(32, 40, 5)
        a = tr.restore(Window(f, 1, other, other))
        b = r.restore(f)
        np.testing.assert_array_equal(a.image, b.image)
        assert tr.flow_seconds == 0

    def test_frames_without_neighbours_go_to_the_single_frame_fallback(self, temporal_model):
        from filmclean.backends import TorchBackend
        from filmclean.nets.simple import IdentityNet

        ident = IdentityNet()
        single = Restorer(TorchBackend(ident, network_info(ident)), RestoreOptions(tile=None))
        r = Restorer(load_model(temporal_model, backend="torch"), RestoreOptions(tile=None), fallback=single)
        big = smooth_image(100, 120)
        a, b = shifted(big, 0, 0, 40, 56), shifted(big, 2, 0, 40, 56)
        tr = TemporalRestorer(r)
        out = tr.restore(Window(a, 0))  # a one-frame sequence: nothing to align
        np.testing.assert_array_equal(out.image, a)  # the identity fallback ran
        assert tr.fallbacks == 1
        tr.restore(Window(a, 0, None, b))  # one neighbour: the temporal network
        assert tr.fallbacks == 1
        assert TemporalRestorer(r, temporal=False).restore(Window(a, 0, None, b)).image.tobytes() == a.tobytes()


class TestPipelines:
    def test_restore_video_temporal_and_range_context(self, tmp_path, temporal_model, capsys, monkeypatch):
        import filmclean.sequence as sequence

        seen = []
        real = sequence.TemporalRestorer.restore

        def spy(self, window, rgb=lambda i: i, **kwargs):
            seen.append((window.prev is not None, window.next is not None))
            return real(self, window, rgb, **kwargs)

        monkeypatch.setattr(sequence.TemporalRestorer, "restore", spy)
        src = make_clip(tmp_path / "in.mkv", n=8, fps=8, audio=True)
        out = tmp_path / "out.mkv"
        code, _, err = run_cli(
            ["restore", src, "-o", out, "--model", temporal_model, "--backend", "torch", "--tile", "32"], capsys
        )
        assert code == 0, err
        assert "temporal" in err
        assert seen == [(False, True)] + [(True, True)] * 6 + [(True, False)]
        import av

        with av.open(str(out)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 8
            assert len(c.streams.audio) == 1
        # a range inside the reel reads one context frame on each side, and writes only the range
        seen.clear()
        part = tmp_path / "part.mkv"
        code, _, err = run_cli(
            [
                "restore",
                src,
                "-o",
                part,
                "--model",
                temporal_model,
                "--backend",
                "torch",
                "--start",
                "0.25",
                "--end",
                "0.75",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        assert seen == [(True, True)] * 4
        with av.open(str(part)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 4
        # --no-temporal: every frame alone
        seen.clear()
        code, _, err = run_cli(
            [
                "restore",
                src,
                "-o",
                tmp_path / "nt.mkv",
                "--model",
                temporal_model,
                "--backend",
                "torch",
                "--no-temporal",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        assert seen == [(False, False)] * 8

    def test_frames_sequence_vs_stills(self, tmp_path, temporal_model, capsys, monkeypatch):
        import filmclean.sequence as sequence
        from filmclean.pipeline import looks_like_sequence

        seen = []
        real = sequence.TemporalRestorer.restore
        monkeypatch.setattr(
            sequence.TemporalRestorer,
            "restore",
            lambda self, w, rgb=lambda i: i, **kw: (
                seen.append((self.use_neighbours, w.prev is not None, w.next is not None)) or real(self, w, rgb, **kw)
            ),
        )
        big = (smooth_image(120, 140) * 65535).astype(np.uint16)
        seq = tmp_path / "seq"
        seq.mkdir()
        for k in range(4):
            make_png(seq / f"reel_{k:04d}.png", big[k : k + 48, 2 * k : 2 * k + 64], text=None)
        assert looks_like_sequence(sorted(seq.iterdir()))
        assert not looks_like_sequence([Path("a/cat.png"), Path("a/dog.png")])
        assert not looks_like_sequence([Path("a/x_1.png"), Path("a/x_2.tif")])
        out = tmp_path / "out"
        (out).mkdir()
        # frame 2 is already done: it is skipped but still read as a neighbour
        make_png(out / "reel_0002.png", big[:48, :64], text=None)
        code, _, err = run_cli(
            ["frames", seq, "-o", out, "--model", temporal_model, "--backend", "torch", "-q"], capsys
        )
        assert code == 0, err
        assert seen == [(True, False, True), (True, True, True), (True, True, False)]
        assert sorted(p.name for p in out.iterdir()) == [f"reel_{k:04d}.png" for k in range(4)]
        seen.clear()
        stills = tmp_path / "stills"
        stills.mkdir()
        for name in ("cat", "dog"):
            make_png(stills / f"{name}.png", big[:48, :64], text=None)
        code, _, err = run_cli(
            ["frames", stills, "-o", tmp_path / "o2", "--model", temporal_model, "--backend", "torch", "-q"], capsys
        )
        assert code == 0, err
        assert seen == [(False, False, False)] * 2
