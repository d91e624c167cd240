"""End to end: `filmclean restore` and `filmclean frames` on tiny generated media, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers import run_cli
from media import decode_frames, make_clip, make_dpx, make_png, make_tiff, packets_of

from filmclean.modelfile import save_model
from filmclean.nets import build_network


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    paths = {}
    for name, arch, cfg in [
        ("identity", "identity", {"size_multiple": 8}),
        ("tinyconv", "tinyconv", {"channels": 6, "layers": 3, "seed": 1}),
        ("tinymask", "tinymask", {"channels": 6, "layers": 2, "seed": 2, "size_multiple": 4}),
    ]:
        paths[name] = save_model(build_network(arch, cfg), arch, cfg, d / f"{name}.safetensors")
    return paths


def _stream_summary(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = [f.pts for f in c.decode(v)]
        return {
            "n": len(pts),
            "pts": pts,
            "rate": v.average_rate,
            "tb": v.time_base,
            "w": v.width,
            "h": v.height,
            "pix_fmt": v.codec_context.pix_fmt,
            "audio": len(c.streams.audio),
        }


class TestRestoreVideo:
    @pytest.mark.parametrize(
        "src_name,pix_fmt,out_name",
        [("in.mkv", "yuv422p10le", "out.mkv"), ("in.mov", "yuv422p10le", "out.mov"), ("in.mkv", "yuv420p", "out.mp4")],
    )
    def test_keeps_timing_size_depth_audio(self, tmp_path, models, capsys, src_name, pix_fmt, out_name):
        src = make_clip(tmp_path / src_name, n=6, pix_fmt=pix_fmt, audio=True)
        out = tmp_path / out_name
        code, _, err = run_cli(
            ["restore", src, "-o", out, "--model", models["tinyconv"], "--backend", "torch", "--tile", "32", "-q"],
            capsys,
        )
        assert code == 0, err
        a, b = _stream_summary(src), _stream_summary(out)
        assert b["n"] == a["n"] == 6
        assert (b["w"], b["h"]) == (a["w"], a["h"]) == (64, 48)
        assert b["rate"] == a["rate"]
        if out.suffix == src.suffix:
            assert b["pts"] == a["pts"] and b["tb"] == a["tb"]
        else:
            # Matroska stores milliseconds; the writer snaps those to the exact 1/24 s grid
            assert all(abs(p * b["tb"] - q * a["tb"]) <= a["tb"] for p, q in zip(b["pts"], a["pts"]))
        if "10" in pix_fmt:
            assert "10" in b["pix_fmt"]  # 10-bit in, 10-bit out
        # audio copied bit-exactly
        assert b["audio"] == 1
        src_audio = b"".join(data for _, data in packets_of(src, "audio"))
        out_audio = b"".join(data for _, data in packets_of(out, "audio"))
        assert out_audio == src_audio and len(src_audio) > 0

    def test_vfr_pts_kept(self, tmp_path, models, capsys):
        src = make_clip(tmp_path / "vfr.mkv", n=6, vfr=True, audio=False)
        out = tmp_path / "vfr_out.mkv"
        code, _, err = run_cli(["restore", src, "-o", out, "--model", models["identity"], "-q"], capsys)
        assert code == 0, err
        assert _stream_summary(out)["pts"] == _stream_summary(src)["pts"]

    def test_identity_rgb48_ffv1_is_exact(self, tmp_path, models, capsys):
        src = make_clip(tmp_path / "rgb.mkv", n=3, pix_fmt="gbrp16le", audio=False)
        out = tmp_path / "rgb_out.mkv"
        code, _, err = run_cli(["restore", src, "-o", out, "--model", models["identity"], "--tile", "24", "-q"], capsys)
        assert code == 0, err
        for (_, fa), (_, fb) in zip(decode_frames(src, "rgb48le"), decode_frames(out, "rgb48le")):
            np.testing.assert_array_equal(fa, fb)

    def test_range_and_mask_out(self, tmp_path, models, capsys):
        src = make_clip(tmp_path / "in.mkv", n=12, fps=24, audio=True)
        out, mask = tmp_path / "part.mkv", tmp_path / "mask.mkv"
        code, _, err = run_cli(
            [
                "restore",
                src,
                "-o",
                out,
                "--model",
                models["tinymask"],
                "--start",
                "0.125",
                "--end",
                "0.375",
                "--mask-out",
                mask,
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        assert _stream_summary(out)["n"] == 6
        m = _stream_summary(mask)
        assert m["n"] == 6 and m["pix_fmt"].startswith("gray") and m["audio"] == 0

    def test_onnx_backend_matches_torch(self, tmp_path, models, capsys):
        src = make_clip(tmp_path / "in.mkv", n=3, pix_fmt="gbrp16le", audio=False)
        outs = {}
        for be in ("torch", "onnx"):
            outs[be] = tmp_path / f"{be}.mkv"
            code, _, err = run_cli(
                ["restore", src, "-o", outs[be], "--model", models["tinyconv"], "--backend", be, "--tile", "32"], capsys
            )
            assert code == 0, err
            assert f"backend: {be}" in err  # the backend actually used is reported
        for (_, fa), (_, fb) in zip(decode_frames(outs["torch"], "rgb48le"), decode_frames(outs["onnx"], "rgb48le")):
            assert np.abs(fa.astype(np.int64) - fb.astype(np.int64)).max() / 65535 < 1e-3

    def test_refuses_overwrite_without_force(self, tmp_path, models, capsys):
        src = make_clip(tmp_path / "in.mkv", n=2, audio=False)
        out = tmp_path / "exists.mkv"
        out.write_bytes(b"keep me")
        code, _, err = run_cli(["restore", src, "-o", out, "--model", models["identity"], "-q"], capsys)
        assert code != 0 and "exists" in err and out.read_bytes() == b"keep me"
        code, _, err = run_cli(["restore", src, "-o", out, "--model", models["identity"], "-q", "--force"], capsys)
        assert code == 0, err
        assert _stream_summary(out)["n"] == 2

    def test_refuses_to_overwrite_input(self, tmp_path, models, capsys):
        src = make_clip(tmp_path / "in.mkv", n=2, audio=False)
        before = src.read_bytes()
        code, _, err = run_cli(["restore", src, "-o", src, "--model", models["identity"], "-q", "--force"], capsys)
        assert code != 0 and "input" in err
        assert src.read_bytes() == before


class TestNoModel:
    def test_says_plainly_no_model_installed(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setenv("FILMCLEAN_MODELS", str(tmp_path / "none"))
        src = make_clip(tmp_path / "in.mkv", n=2, audio=False)
        code, _, err = run_cli(["restore", src, "-o", tmp_path / "o.mkv", "-q"], capsys)
        assert code != 0
        assert "no model is installed" in err and "--model" in err
        assert not (tmp_path / "o.mkv").exists()


class TestFrames:
    def test_tiff16_sequence_identity_exact(self, tmp_path, models, capsys):
        seq = tmp_path / "seq"
        seq.mkdir()
        rng = np.random.default_rng(0)
        arrays = [rng.integers(0, 65536, (48, 64, 3), dtype=np.uint16) for _ in range(3)]
        for i, a in enumerate(arrays):
            make_tiff(seq / f"frame{i:04d}.tif", a)
        out = tmp_path / "out"
        code, _, err = run_cli(["frames", seq, "-o", out, "--model", models["identity"], "--tile", "32", "-q"], capsys)
        assert code == 0, err
        import tifffile

        for i, a in enumerate(arrays):
            b = tifffile.imread(out / f"frame{i:04d}.tif")
            assert b.dtype == np.uint16
            np.testing.assert_array_equal(a, b)

    def test_dpx10_sequence_identity_exact(self, tmp_path, models, capsys):
        seq = tmp_path / "dpx"
        seq.mkdir()
        rng = np.random.default_rng(1)
        arrays = [rng.integers(0, 1024, (48, 64, 3), dtype=np.uint16) for _ in range(3)]
        for i, a in enumerate(arrays):
            make_dpx(seq / f"reel.{i + 86400:07d}.dpx", a, bits=10)
        out = tmp_path / "out"
        code, _, err = run_cli(["frames", seq, "-o", out, "--model", models["identity"], "-q"], capsys)
        assert code == 0, err
        from filmclean.io.images import read_image

        for i, a in enumerate(arrays):
            img = read_image(out / f"reel.{i + 86400:07d}.dpx")
            assert img.bits == 10
            np.testing.assert_array_equal(np.round(img.rgb * 1023).astype(np.uint16), a)

    def test_resume_skips_finished(self, tmp_path, models, capsys):
        seq = tmp_path / "seq"
        seq.mkdir()
        for i in range(4):
            make_png(seq / f"f{i}.png", np.full((48, 64, 3), 40 * i, np.uint8))
        out = tmp_path / "out"
        out.mkdir()
        # an interrupted earlier run left two finished frames and one temporary file
        code, _, err = run_cli(["frames", seq / "f0.png", "-o", out, "--model", models["tinyconv"], "-q"], capsys)
        assert code == 0, err
        code, _, err = run_cli(["frames", seq / "f1.png", "-o", out, "--model", models["tinyconv"], "-q"], capsys)
        (out / ".f2.png.partial").write_bytes(b"half")
        stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("f*.png")}
        code, _, err = run_cli(["frames", seq, "-o", out, "--model", models["tinyconv"]], capsys)
        assert code == 0, err
        assert "2 already done, skipped" in err
        assert sorted(p.name for p in out.glob("f*.png")) == ["f0.png", "f1.png", "f2.png", "f3.png"]
        assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in stamp.items())

    def test_refuses_output_equal_to_input_folder(self, tmp_path, models, capsys):
        seq = tmp_path / "seq"
        seq.mkdir()
        make_png(seq / "a.png", np.zeros((48, 64, 3), np.uint8))
        before = (seq / "a.png").read_bytes()
        code, _, err = run_cli(["frames", seq, "-o", seq, "--model", models["identity"], "-q", "--force"], capsys)
        assert code != 0 and "input" in err
        assert (seq / "a.png").read_bytes() == before

    def test_mask_out_for_frames(self, tmp_path, models, capsys):
        seq = tmp_path / "seq"
        seq.mkdir()
        make_png(seq / "a.png", np.full((48, 64, 3), 100, np.uint8))
        code, _, err = run_cli(
            ["frames", seq, "-o", tmp_path / "o", "--mask-out", tmp_path / "m", "--model", models["tinymask"], "-q"],
            capsys,
        )
        assert code == 0, err
        from filmclean.io.images import read_image

        m = read_image(tmp_path / "m" / "a.png")
        assert m.grey and m.rgb.shape == (48, 64, 3)


# ---------------------------------------------------------------------------------------------
# The bad-input corpus: every case gives one line naming the file, a non-zero exit, no traceback.


def _bad_inputs(tmp: Path) -> list[tuple[str, list[str], str]]:
    cases = []
    zero = tmp / "zero.mov"
    zero.write_bytes(b"")
    cases.append(("zero-byte", ["restore", str(zero), "-o", str(tmp / "o1.mkv")], "zero.mov"))
    text = tmp / "notes.mov"
    text.write_text("this is not a video\n" * 20)
    cases.append(("text named .mov", ["restore", str(text), "-o", str(tmp / "o2.mkv")], "notes.mov"))
    good = make_clip(tmp / "good.mov", n=8, audio=False, pix_fmt="yuv422p10le")
    trunc = tmp / "trunc.mov"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases.append(("truncated video", ["restore", str(trunc), "-o", str(tmp / "o3.mkv")], "trunc.mov"))
    audio_only = tmp / "audio.mkv"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    cases.append(("no video stream", ["restore", str(audio_only), "-o", str(tmp / "o4.mkv")], "audio.mkv"))
    bad_png_dir = tmp / "badpng"
    bad_png_dir.mkdir()
    make_png(bad_png_dir / "ok.png", np.zeros((48, 64, 3), np.uint8))
    raw = (bad_png_dir / "ok.png").read_bytes()
    (bad_png_dir / "corrupt.png").write_bytes(raw[:40] + b"\x00" * 20 + raw[60:])
    cases.append(("corrupt PNG", ["frames", str(bad_png_dir / "corrupt.png"), "-o", str(tmp / "o5")], "corrupt.png"))
    one = tmp / "one.png"
    make_png(one, np.zeros((1, 1, 3), np.uint8))
    cases.append(("1x1 image", ["frames", str(one), "-o", str(tmp / "o6")], "one.png"))
    bmp = tmp / "pic.bmp"
    bmp.write_bytes(b"BM" + b"\x00" * 100)
    cases.append(("unsupported format", ["frames", str(bmp), "-o", str(tmp / "o7")], "pic.bmp"))
    odd = make_clip(tmp / "odd.mkv", n=2, w=4, h=4, audio=False, pix_fmt="yuv444p")
    cases.append(("tiny frames", ["restore", str(odd), "-o", str(tmp / "o8.mkv")], "odd.mkv"))
    ro = tmp / "readonly"
    ro.mkdir()
    os.chmod(ro, 0o555)
    if os.geteuid() == 0:  # root writes through permissions; sysfs refuses file creation even to root
        cases.append(("unwritable output dir", ["restore", str(good), "-o", "/sys/o9.mkv"], "o9.mkv"))
    else:
        cases.append(("unwritable output dir", ["restore", str(good), "-o", str(ro / "o9.mkv")], "readonly"))
    cases.append(("missing input", ["restore", str(tmp / "nope.mov"), "-o", str(tmp / "o10.mkv")], "nope.mov"))
    return cases


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    cases = _bad_inputs(tmp)
    yield tmp, cases
    os.chmod(tmp / "readonly", 0o755)


CASE_NAMES = [
    "zero-byte",
    "text named .mov",
    "truncated video",
    "no video stream",
    "corrupt PNG",
    "1x1 image",
    "unsupported format",
    "tiny frames",
    "unwritable output dir",
    "missing input",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input(case, bad_corpus, models, capsys):
    tmp, cases = bad_corpus
    name, args, names = next(c for c in cases if c[0] == case)
    before = {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()}
    code, out, err = run_cli(args + ["--model", models["tinyconv"], "-q"], capsys)
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert names in lines[0] and "Traceback" not in err
    # inputs untouched, no output under a final name
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t
    out_path = Path(args[args.index("-o") + 1])
    assert not out_path.is_file() and not (out_path.is_dir() and any(out_path.iterdir()))


def test_entry_point_no_traceback(tmp_path):
    """The installed console entry point: one line, exit 2, for a text file named .mov."""
    bad = tmp_path / "bad.mov"
    bad.write_text("hello")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "filmclean.cli",
            "restore",
            str(bad),
            "-o",
            str(tmp_path / "x.mkv"),
            "--model",
            "missing.safetensors",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_ctrl_c_leaves_no_output(tmp_path, models):
    """SIGINT during a restore: exit 130 and nothing under the final name (nor temporary files)."""
    src = make_clip(tmp_path / "long.mkv", n=200, w=256, h=192, audio=True)
    out = tmp_path / "out.mkv"
    # the child gets Python's own SIGINT handling even when this suite runs with SIGINT ignored (nohup,
    # background jobs): an ignored signal would be inherited and the child could not be interrupted
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "filmclean.cli",
            "restore",
            str(src),
            "-o",
            str(out),
            "--model",
            str(models["tinyconv"]),
            "--backend",
            "torch",
            "--tile",
            "64",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(tmp_path.glob(".out.partial*")):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))


def test_ctrl_c_test_passes_with_sigint_ignored():
    """The Ctrl-C test above also passes when the suite itself runs with SIGINT ignored."""
    code = (
        "import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "sys.exit(subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', "
        f"{__file__!r}, '-k', 'test_ctrl_c_leaves_no_output']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
