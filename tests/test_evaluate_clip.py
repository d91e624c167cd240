"""Tests of the clip evaluation (filmclean.evaluation.clip) and its command (filmclean.evaluation.cli)."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import small_temporal_model
from media import make_clip

from filmclean.api import ModelChoice
from filmclean.engine import RestoreOptions
from filmclean.errors import InputError, ModelError
from filmclean.evaluation import (
    ClipMethod,
    evaluate_clip,
    evaluate_sequence,
    identity_clip_method,
    parse_clip_method,
    read_clip,
    tmedian_clip_method,
)
from filmclean.evaluation.cli import evaluate_clip_command
from filmclean.model import TEMPORAL_STEM, default_model_paths
from filmclean.modelfile import save_model
from filmclean.nets.simple import IdentityNet
from filmclean.train.synth import DamageParams

H, W, N = 48, 64, 6
#: dust only (no persistent scratches, no blotches), fixed amount, sizes in pixels: a median over time removes it
DUST = DamageParams(amount=0.6, size_exponent=0.0, scratch_rate=0.0, blotch_rate=0.0, hair_rate=20.0)


def smooth_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = (rng.random((4, 5, 3)) * 200 + 30).astype(np.float32)
    return np.clip(np.rint(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)), 0, 255).astype(np.uint8)


def write_static_clip(path: Path, n: int = N) -> Path:
    """An FFV1 (bgr0, lossless 8-bit RGB) clip of ``n`` identical frames, no audio."""
    img = smooth_frame()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10, time_base=Fraction(1, 10))
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="bgr0")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def static_clip(tmp_path_factory) -> Path:
    return write_static_clip(tmp_path_factory.mktemp("clip") / "static.mkv")


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("clip") / "moving.mkv", n=N, w=W, h=H, fps=10, pix_fmt="gbrp16le", audio=False
    )


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory) -> Path:
    return save_model(
        IdentityNet(), "identity", {"size_multiple": 1}, tmp_path_factory.mktemp("model") / "ident.safetensors"
    )


@pytest.fixture(scope="module")
def temporal_model(tmp_path_factory) -> Path:
    return small_temporal_model(tmp_path_factory.mktemp("tmodel") / "temporal.safetensors")


def test_identity_and_tmedian_on_a_static_clip(static_clip, tmp_path):
    out = tmp_path / "report"
    res = evaluate_clip(static_clip, ["identity", "tmedian"], seed=1, polarity="dark", out_dir=out, params=DUST)
    ident, tmed = res.summaries["identity"], res.summaries["tmedian"]
    assert res.inputs["n"] == N and res.inputs["flicker_clean"] == 0.0 and res.inputs["flicker_input"] > 0
    assert all(s.ssim_input < 0.99 for s in res.scores["identity"])
    # identity: clean frames untouched, damaged ones unchanged, flicker as the clips' own
    assert ident["ssim_clean_in"]["mean"] == 1.0 and ident["ssim_clean_in"]["sd"] == 0.0
    assert ident["delta_ssim"]["mean"] == 0.0 and ident["worse"] == 0
    assert ident["flicker_clean_in"] == ident["flicker_clean"] == res.inputs["flicker_clean"]
    assert ident["flicker_damaged_in"] == res.inputs["flicker_input"]
    assert ident["added_flicker"] == res.inputs["flicker_input"] - res.inputs["flicker_clean"]
    for s in res.scores["identity"]:
        assert s.ssim_clean_in == 1.0 and s.ssim_damaged_in == s.ssim_input
        assert s.flicker_clean_in == s.flicker_clean
    # the temporal median removes one-frame dust from a static clip (ends are left alone)
    assert tmed["ssim_damaged_in"]["mean"] > ident["ssim_damaged_in"]["mean"] + 0.02
    assert tmed["ssim_clean_in"]["mean"] == 1.0 and tmed["worse"] == 0
    assert tmed["flicker_damaged_in"] < ident["flicker_damaged_in"]
    inner = res.scores["tmedian"][1:-1]
    assert all(s.ssim_damaged_in > s.ssim_input for s in inner)

    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "filmclean-clip-evaluation"
    assert [m["name"] for m in report["methods"]] == ["identity", "tmedian"]
    assert report["settings"]["frames"] == [0, N - 1] and report["settings"]["damage"]["seed"] == 1
    assert report["methods"][1]["pix_fmt"] == "gbrp16le" and report["methods"][1]["radius"] == 1
    assert report["methods"][0]["summary"]["flicker_clean"] == 0.0
    assert len(report["per_frame"]) == 2 * N
    assert sorted(report["figures"]) == ["ssim_per_frame.png", "strip.png"]
    assert report["strip"]["panels"] == ["damaged", "tmedian", "clean"]  # identity shows nothing new
    with open(out / "per_frame.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * N and [r["frame"] for r in rows[:N]] == [str(i) for i in range(N)]
    for col in (
        "method",
        "ssim_input",
        "ssim_damaged_in",
        "ssim_clean_in",
        "delta_ssim",
        "flicker_clean",
        "flicker_damaged_in",
        "temporal_error_damaged_in",
        "damaged_fraction",
    ):
        assert col in rows[0]
    assert rows[0]["flicker_clean"] == "" and rows[1]["flicker_clean"] == "0"
    assert all(r["psnr_clean_in"] == "inf" for r in rows if r["method"] == "identity")
    for name in report["figures"]:
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 300, name


def test_flicker_definition_on_frames():
    frames = [np.full((H, W, 3), v, np.float32) for v in (0.2, 0.3, 0.5, 0.5)]
    res = evaluate_sequence(frames, [identity_clip_method()], seed=0, params=DUST, strip=False)
    assert res.inputs["flicker_clean"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    s = res.summaries["identity"]
    assert s["flicker_clean_in"] == res.inputs["flicker_clean"]
    assert s["temporal_error_clean_in"] == 0.0 and s["temporal_error_damaged_in"] > 0
    assert res.strip is None and [f.frame for f in res.scores["identity"]] == [0, 1, 2, 3]

    def broken(frames_in):
        return list(frames_in)[:-1]

    with pytest.raises(ValueError, match="returned 3 frames for 4"):
        evaluate_sequence(frames, [ClipMethod("short", broken)], strip=False)
    with pytest.raises(InputError, match="given twice"):
        evaluate_sequence(frames, [identity_clip_method(), identity_clip_method()])


def test_read_clip_range_and_downscale(moving_clip):
    full = read_clip(moving_clip)
    assert len(full.frames) == N and full.numbers == list(range(N))
    assert full.frames[0].shape == (H, W, 3) and full.frames[0].dtype == np.float32
    part = read_clip(moving_clip, first=2, last=4)
    assert part.numbers == [2, 3, 4]
    for a, b in zip(part.frames, full.frames[2:5]):  # seeking finds exactly those frames
        assert np.array_equal(a, b)
    small = read_clip(moving_clip, first=1, last=3, max_side=32)
    assert small.frames[0].shape == (24, 32, 3) and small.settings["size"] == [32, 24]
    want = cv2.resize(full.frames[1], (32, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(small.frames[0], want, atol=1e-6)
    assert read_clip(moving_clip, first=N - 1).numbers == [N - 1]


def test_input_errors_name_the_file(moving_clip, tmp_path):
    missing = tmp_path / "nope.mkv"
    with pytest.raises(InputError) as err:
        evaluate_clip(missing, ["identity"])
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match="junk.avi"):
        read_clip(junk)
    with pytest.raises(InputError, match="ends after frame 5"):
        read_clip(moving_clip, first=3, last=9)
    with pytest.raises(InputError, match="past the end"):
        read_clip(moving_clip, first=9)
    with pytest.raises(InputError, match="last frame"):
        read_clip(moving_clip, first=3, last=2)
    for bad in ("bogus", "tmedian:radius=0", "tmedian:size=2", "identity:x=1", f"single:{tmp_path / 'm.onnx'}"):
        with pytest.raises(InputError) as err:
            parse_clip_method(bad)
        assert "\n" not in str(err.value)
    result = CliRunner().invoke(evaluate_clip_command, [str(missing), "-o", str(tmp_path / "o"), "-q"])
    assert isinstance(result.exception, InputError) and "\n" not in str(result.exception)
    assert str(missing) in str(result.exception)


def test_single_and_temporal_model_methods(moving_clip, identity_model, temporal_model):
    opts = (RestoreOptions(tile=None), ModelChoice(backend="torch", device="cpu"))
    single = parse_clip_method(f"single:{identity_model}", *opts)
    assert single.name == "single:ident.safetensors" and single.info["uses_neighbours"] is False
    with pytest.raises(ModelError, match="temporal model file"):
        parse_clip_method(f"temporal:{identity_model}", *opts)
    temporal = parse_clip_method(f"temporal:{temporal_model}", *opts)
    assert temporal.info["network_temporal"] and temporal.info["uses_neighbours"]
    res = evaluate_clip(
        moving_clip, [identity_clip_method(), single, temporal, tmedian_clip_method(2)], seed=4, params=DUST, first=1
    )
    assert list(res.summaries) == ["identity", single.name, temporal.name, "tmedian"]
    s = res.summaries[single.name]
    assert s["n"] == N - 1 and s["ssim_clean_in"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert s["ssim_damaged_in"]["mean"] == pytest.approx(res.summaries["identity"]["ssim_damaged_in"]["mean"], abs=1e-5)
    t = res.summaries[temporal.name]
    assert 0.0 < t["ssim_damaged_in"]["mean"] <= 1.0 and t["seconds_per_frame"] > 0
    assert t["flicker_damaged_in"] is not None and t["temporal_error_damaged_in"] is not None


@pytest.mark.skipif(not any(default_model_paths()), reason="needs the shipped single-frame default model")
def test_temporal_with_the_single_frame_default_model_is_an_error(tmp_path, monkeypatch):
    import shutil

    from filmclean.model import models_dir

    for name in ("default.safetensors", "default.onnx", "SHA256SUMS"):  # an install without a temporal model
        shutil.copy(models_dir() / name, tmp_path / name)
    monkeypatch.setenv("FILMCLEAN_MODELS", str(tmp_path))
    assert not any(default_model_paths(TEMPORAL_STEM))
    with pytest.raises(ModelError, match="single-frame; the temporal method needs a temporal model file"):
        parse_clip_method("temporal", choice=ModelChoice(backend="torch", device="cpu"))


def test_cli_writes_report(static_clip, identity_model, tmp_path):
    out = tmp_path / "cli"
    args = [
        str(static_clip),
        "--method",
        "identity",
        "--method",
        "tmedian",
        "--method",
        f"single:{identity_model}",
        "--first",
        "1",
        "--last",
        "4",
        "--seed",
        "3",
        "--polarity",
        "light",
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--no-tile",
        "-q",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(evaluate_clip_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("identity", "tmedian", "single:ident.safetensors", "flicker"):
        assert name in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["frames"] == [1, 4] and report["settings"]["damage"]["polarity"] == "light"
    assert report["settings"]["tile"] is None and report["input"]["n"] == 4
    assert [m["name"] for m in report["methods"]] == ["identity", "tmedian", "single:ident.safetensors"]
    assert (out / "per_frame.csv").is_file() and (out / "ssim_per_frame.png").is_file()
    bad = CliRunner().invoke(evaluate_clip_command, [str(static_clip), "--first", "3", "--last", "1", "-o", str(out)])
    assert bad.exit_code == 2 and "--last" in bad.output
