"""Tests of the evaluation protocol (filmclean.evaluation) and its commands (filmclean.evaluation.cli)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from filmclean.api import ModelChoice
from filmclean.engine import RestoreOptions
from filmclean.errors import InputError
from filmclean.evaluation import (
    SSIM_SETTINGS,
    ImageScores,
    LpipsScorer,
    Method,
    analyze_layers,
    attribute_errors,
    attribution_table,
    dust_and_scratches,
    evaluate,
    identity_method,
    layer_responses,
    open_pairs,
    oracle_inpaint,
    oracle_method,
    parse_method,
    ssim,
    summarize,
    write_layer_report,
    write_report,
)
from filmclean.evaluation.cli import analyze_layers_command, evaluate_command
from filmclean.modelfile import save_model
from filmclean.nets.simple import IdentityNet
from filmclean.nets.vgg16 import VGG16Features, default_vgg_weights_path, lpips_vgg
from filmclean.train.synth import DamageParams, dustify

SIZE = 48
NAMES = [f"img{i}" for i in range(5)]
TEST_NAMES = NAMES[:4]
PARAMS = DamageParams(amount=0.6, size_exponent=0.0, blotch_rate=0.0)


def smooth_image(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth colour image (uint8 RGB): what inpainting can fill well."""
    rng = np.random.default_rng(seed)
    small = (rng.random((4, 5, 3)) * 200 + 30).astype(np.float32)
    return np.clip(np.rint(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)), 0, 255).astype(np.uint8)


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img[..., ::-1] if img.ndim == 3 else img)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """A dustify-layout set: 5 pairs of 48 px (4 in the test split) + full-size originals (80x64)."""
    root = tmp_path_factory.mktemp("eval")
    corpus, pairs = root / "corpus", root / "pairs"
    for i, name in enumerate(NAMES):
        write_png(corpus / f"{name}.png", smooth_image(i, 64, 80))
        clean8 = smooth_image(100 + i, SIZE, SIZE)
        damaged, mask = dustify(clean8.astype(np.float32) / 255.0, i, PARAMS, "dark")
        damaged8 = np.clip(np.rint(damaged * 255.0), 0, 255).astype(np.uint8)
        changed = (damaged8 != clean8).any(axis=-1)
        assert changed.any()
        mask8 = np.where(changed, np.clip(np.rint(mask * 255.0), 1, 255), 0).astype(np.uint8)
        for sub, img in (("clean", clean8), ("damaged", damaged8), ("mask", mask8)):
            write_png(pairs / str(SIZE) / sub / f"{name}.png", img)
    (corpus / "test_list.txt").write_text("# held out\n" + "\n".join(TEST_NAMES[:2]) + "\n")
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(PARAMS).items()}
    manifest = {
        "format": "filmclean-dustified-pairs",
        "version": 1,
        "clean_dir": str(corpus),
        "sizes": [SIZE],
        "seed": 7,
        "polarity": "dark",
        "splits": {"train": NAMES[4:], "valid": [], "test": TEST_NAMES},
        "images": {n: {"file": f"{n}.png"} for n in NAMES},
        "params": params,
    }
    (pairs / "manifest.json").write_text(json.dumps(manifest))
    return pairs


@pytest.fixture(scope="module")
def blank_model(tmp_path_factory) -> Path:
    """A filmclean model file whose output is black whatever the input: x + (-I) x = 0."""
    net = IdentityNet()
    with torch.no_grad():
        net.zero.weight.copy_(-torch.eye(3).view(3, 3, 1, 1))
    return save_model(net, "identity", {"size_multiple": 1}, tmp_path_factory.mktemp("model") / "blank.safetensors")


def test_identity_is_exact_and_split_is_the_manifests(pairs_dir):
    pairs = open_pairs(pairs_dir, SIZE, "test")
    assert pairs.names == TEST_NAMES and pairs.has_masks and pairs.mode == "pairs"
    assert open_pairs(pairs_dir, SIZE, "all").names == NAMES
    assert open_pairs(pairs_dir, SIZE, "all", limit=2).names == NAMES[:2]
    res = evaluate(pairs, [identity_method()], worst=0)
    scores = res.scores["identity"]
    assert [s.image for s in scores] == TEST_NAMES
    for s in scores:
        assert s.ssim_clean_in == 1.0
        assert s.delta_ssim == 0.0
        assert s.ssim_input < 0.999
        assert s.psnr_clean_in == math.inf and math.isfinite(s.psnr_input)
        assert not s.clean_changed and s.lpips_input is None
    summ = res.summaries["identity"]
    assert summ["worse"] == 0 and summ["clean_changed"] == 0 and summ["clean_below_floor"] == 0
    assert summ["ssim_clean_in"]["mean"] == 1.0 and summ["ssim_clean_in"]["sd"] == 0.0
    assert summ["psnr_clean_in"] == {"mean": None, "sd": None, "identical": 4}


def test_blank_model_file_and_blank_callable_score_low(pairs_dir, blank_model):
    pairs = open_pairs(pairs_dir, SIZE)
    blank_file = parse_method(str(blank_model), RestoreOptions(tile=32), ModelChoice(backend="torch", device="cpu"))
    assert blank_file.kind == "model" and blank_file.name == "blank.safetensors"
    grey = Method("grey", lambda image, mask: np.full_like(image, 0.5))
    res = evaluate(pairs, [identity_method(), blank_file, grey], worst=0)
    ident = res.summaries["identity"]
    assert res.summaries["blank.safetensors"]["ssim_damaged_in"]["max"] < 0.01  # black: no luminance match
    assert res.summaries["blank.safetensors"]["ssim_clean_in"]["max"] < 0.01
    for name in ("blank.safetensors", "grey"):
        summ = res.summaries[name]
        assert summ["ssim_damaged_in"]["mean"] < ident["ssim_damaged_in"]["mean"] - 0.2
        assert summ["ssim_clean_in"]["max"] < 0.4
        assert summ["worse"] == summ["n"] == 4 and summ["worse_share"] == 1.0
        assert summ["clean_changed"] == 4 and summ["clean_below_floor"] == 4
        assert summ["psnr_clean_in"]["mean"] < 15
    assert all(s.seconds_damaged >= 0 and s.seconds_clean >= 0 for s in res.scores["grey"])


def scores(delta: float, clean_ssim: float, changed: bool, psnr_clean: float = math.inf) -> ImageScores:
    return ImageScores(
        "m", f"x{delta}", 0.7, 0.7 + delta, clean_ssim, 20.0, 21.0, psnr_clean, None, None, None, changed, 0.5, 0.25
    )


def test_shares_on_a_hand_built_case():
    cases = [
        scores(-0.1, 1.0, False),
        scores(0.0, 0.999, True, 50.0),
        scores(0.2, 0.9979, True, 30.0),
        scores(-0.001, 0.5, True, 10.0),
        scores(0.05, 1.0, False),
    ]
    summ = summarize(cases)
    assert summ["n"] == 5
    assert summ["worse"] == 2 and summ["worse_share"] == pytest.approx(0.4)  # 0.0 is not worse
    assert summ["clean_changed"] == 3 and summ["clean_changed_share"] == pytest.approx(0.6)
    assert summ["clean_below_floor"] == 2  # 0.9979 and 0.5; 0.999 is above 0.998
    assert summ["delta_ssim"]["mean"] == pytest.approx(np.mean([-0.1, 0.0, 0.2, -0.001, 0.05]))
    assert summ["delta_ssim"]["sd"] == pytest.approx(np.std([-0.1, 0.0, 0.2, -0.001, 0.05]))
    assert summ["psnr_clean_in"]["identical"] == 2 and summ["psnr_clean_in"]["mean"] == pytest.approx(30.0)
    assert summ["seconds_per_image"] == pytest.approx(0.375)
    assert summ["lpips_damaged_in"]["mean"] is None
    assert summarize(cases, clean_floor=0.9)["clean_below_floor"] == 1


def test_oracle_beats_identity_and_leaves_clean_inputs_alone(pairs_dir):
    pairs = open_pairs(pairs_dir, SIZE)
    res = evaluate(pairs, [identity_method(), oracle_method()], worst=0)
    ident, oracle = res.scores["identity"], res.scores["oracle"]
    means = {k: v["ssim_damaged_in"]["mean"] for k, v in res.summaries.items()}
    assert means["oracle"] > means["identity"] + 0.05
    for i, o in zip(ident, oracle):
        assert o.ssim_damaged_in > i.ssim_damaged_in and o.delta_ssim > 0
        assert o.ssim_clean_in == 1.0 and not o.clean_changed
    # pixels outside the mask are untouched
    pair = pairs.load(pairs.names[0])
    out = oracle_inpaint(pair.damaged, pair.mask)
    assert np.array_equal(out[~pair.mask], pair.damaged[~pair.mask])
    assert np.array_equal(oracle_inpaint(pair.clean, np.zeros_like(pair.mask)), pair.clean)


class TestAttributeErrors:
    """Where a restoration loses SSIM: missed damage and false repairs, by hand-built cases."""

    def setup_method(self):
        self.clean = smooth_image(7, 32, 40).astype(np.float32) / 255.0
        self.mask = np.zeros((32, 40), bool)
        self.mask[10:14, 12:18] = True
        self.damaged = self.clean.copy()
        self.damaged[self.mask] *= 0.2

    def test_perfect_repair_loses_nothing(self):
        a = attribute_errors(self.clean, self.damaged, self.clean, self.mask)
        assert a == {"missed_share": 0.0, "false_share": 0.0, "ssim_lost_false": 0.0, "ssim_lost_missed": 0.0}

    def test_doing_nothing_misses_everything_and_costs_the_whole_damage(self):
        a = attribute_errors(self.clean, self.damaged, self.damaged, self.mask)
        assert a["missed_share"] == 1.0 and a["false_share"] == 0.0 and a["ssim_lost_false"] == 0.0
        assert a["ssim_lost_missed"] == pytest.approx(1.0 - ssim(self.damaged, self.clean), abs=1e-12)

    def test_half_the_damage_and_a_false_repair(self):
        out = self.clean.copy()
        out[10:14, 12:15] = self.damaged[10:14, 12:15]  # half the damaged pixels left as they were
        out[25:27, 30:34] = 0.0  # 8 undamaged pixels blacked out
        s_out = ssim(out, self.clean)
        a = attribute_errors(self.clean, self.damaged, out, self.mask, ssim_restored=s_out)
        assert a["missed_share"] == pytest.approx(0.5)
        assert a["false_share"] == pytest.approx(8 / (32 * 40 - 24))
        undone = out.copy()
        undone[25:27, 30:34] = self.damaged[25:27, 30:34]
        assert a["ssim_lost_false"] == pytest.approx(ssim(undone, self.clean) - s_out, abs=1e-12)
        assert a["ssim_lost_false"] > 0 and a["ssim_lost_missed"] > 0

    def test_evaluate_reports_it_with_masks_and_not_without(self, pairs_dir, tmp_path):
        res = evaluate(open_pairs(pairs_dir, SIZE), [identity_method(), oracle_method()], worst=0)
        ident, oracle = res.summaries["identity"], res.summaries["oracle"]
        assert ident["missed_share"]["mean"] == 1.0 and ident["false_share"]["mean"] == 0.0
        assert oracle["false_share"]["mean"] == 0.0 and oracle["ssim_lost_false"]["mean"] == 0.0
        assert ident["ssim_lost_missed"]["mean"] == pytest.approx(1.0 - ident["ssim_damaged_in"]["mean"], abs=1e-9)
        assert attribution_table(res) is not None
        row = res.scores["identity"][0].row()
        assert row["missed_share"] == 1.0 and list(row)[-4:] == [
            "missed_share",
            "false_share",
            "ssim_lost_false",
            "ssim_lost_missed",
        ]
        plain = tmp_path / "plain"
        c = smooth_image(1, 32, 40)
        write_png(plain / "clean" / "p.png", c)
        write_png(plain / "damaged" / "p.png", (c * 0.9).astype(np.uint8))
        res = evaluate(open_pairs(plain), [identity_method()], worst=0)
        assert res.scores["identity"][0].missed_share is None and attribution_table(res) is None
        assert res.summaries["identity"]["ssim_lost_missed"]["mean"] is None


def test_dust_and_scratches_and_method_specs(tmp_path):
    img = np.full((20, 20, 3), 0.5, np.float32)
    img[10, 10] = 0.0
    out = dust_and_scratches(img, radius=2, threshold=0.1)
    assert np.array_equal(out, np.full_like(img, 0.5))
    flat = np.full((20, 20, 3), 0.3, np.float32)
    assert np.array_equal(dust_and_scratches(flat), flat)
    assert np.array_equal(dust_and_scratches(img, 2, threshold=0.6), img)  # below threshold: kept
    m = parse_method("dns:radius=1,threshold=0.05")
    assert m.name == "dns:radius=1,threshold=0.05" and m.info == {"radius": 1, "threshold": 0.05}
    assert parse_method("oracle:radius=5").info == {"radius": 5} and parse_method("oracle").needs_mask
    for bad in ("dns:radius=1.5", "dns:size=3", "identity:x=1", "bogus", str(tmp_path / "missing.safetensors")):
        with pytest.raises(InputError) as err:
            parse_method(bad)
        assert "\n" not in str(err.value)


def test_evaluate_command_writes_report_csv_and_figures(pairs_dir, blank_model, tmp_path):
    out = tmp_path / "report"
    args = [
        "--pairs",
        str(pairs_dir),
        "--size",
        str(SIZE),
        "--model",
        "identity",
        "--model",
        "dns",
        "--model",
        "oracle",
        "--model",
        str(blank_model),
        "--tile",
        "32",
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--no-lpips",
        "--worst",
        "2",
        "-q",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(evaluate_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("identity", "dns", "oracle", "blank.safetensors", "δSSIM", "where SSIM is lost", "lost: false"):
        assert name in result.output
    report = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in report["models"]] == ["identity", "dns", "oracle", "blank.safetensors"]
    assert {k: report["settings"]["ssim"][k] for k in SSIM_SETTINGS} == SSIM_SETTINGS
    assert report["settings"]["lpips"]["available"] is False and report["settings"]["tile"] == 32
    assert "delta_ssim" in report["definitions"] and report["input_pairs"]["n"] == 4
    assert report["models"][0]["summary"]["psnr_clean_in"]["identical"] == 4
    assert len(report["per_image"]) == 16
    with open(out / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16
    for col in (
        "model",
        "image",
        "ssim_damaged_in",
        "ssim_clean_in",
        "delta_ssim",
        "psnr_damaged_in",
        "psnr_clean_in",
        "lpips_damaged_in",
        "lpips_clean_in",
        "seconds_damaged",
    ):
        assert col in rows[0]
    ident = [r for r in rows if r["model"] == "identity"]
    assert all(
        float(r["ssim_clean_in"]) == 1.0
        and float(r["delta_ssim"]) == 0.0
        and r["psnr_clean_in"] == "inf"
        and r["lpips_clean_in"] == ""
        for r in ident
    )
    figures = ["ssim_input_pairs.png"] + [
        f"{kind}_{label}.png"
        for kind in ("ssim", "delta_ssim", "worst")
        for label in ("identity", "dns", "oracle", "blank_safetensors")
    ]
    assert sorted(report["figures"]) == sorted(figures)
    for name in figures:
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 400, name


def test_lpips_missing_weights_is_reported_not_fatal(pairs_dir, tmp_path):
    scorer = LpipsScorer(weights=tmp_path / "nothing.safetensors")
    assert not scorer.available and "not found" in scorer.reason and "\n" not in scorer.reason
    pairs = open_pairs(pairs_dir, SIZE, limit=2)
    res = evaluate(pairs, [identity_method()], lpips=scorer, worst=0)
    assert all(s.lpips_damaged_in is None for s in res.scores["identity"])
    write_report(res, tmp_path / "r", figures=False)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["settings"]["lpips"] == {
        "available": False,
        "reason": scorer.reason,
        "weights": str(tmp_path / "nothing.safetensors"),
    }
    assert report["models"][0]["summary"]["lpips_damaged_in"]["mean"] is None
    assert not list((tmp_path / "r").glob("*.png"))


@pytest.mark.skipif(not default_vgg_weights_path().is_file(), reason="converted VGG16/LPIPS weights not cached")
def test_lpips_scores_match_lpips_vgg(pairs_dir):
    pair = open_pairs(pairs_dir, SIZE).load(TEST_NAMES[0])
    cands = [pair.damaged, pair.clean, dust_and_scratches(pair.damaged), pair.damaged]
    got = LpipsScorer().score(pair.clean, cands)
    x = torch.from_numpy(np.stack(cands).transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(np.stack([pair.clean] * 4).transpose(0, 3, 1, 2).copy())
    want = lpips_vgg(x, y).numpy()
    assert got[1] == 0.0 and got[0] == got[3] > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_input_errors_are_one_line(pairs_dir, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_pairs(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no 256/clean/ or clean/ folder \(sizes here: 48\)"):
        open_pairs(pairs_dir, 256)
    plain = tmp_path / "plain"
    write_png(plain / "clean" / "a.png", smooth_image(1, 32, 32))
    write_png(plain / "damaged" / "b.png", smooth_image(2, 32, 32))
    with pytest.raises(InputError, match="no image name is in both"):
        open_pairs(plain)
    with pytest.raises(InputError, match="no pair named zzz"):
        open_pairs(pairs_dir, SIZE, names=["zzz"])
    result = CliRunner().invoke(evaluate_command, ["--pairs", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert isinstance(result.exception, InputError) and "\n" not in str(result.exception)


def test_plain_folder_without_masks(tmp_path):
    plain = tmp_path / "plain"
    for i in range(3):
        c = smooth_image(i, 32, 40)
        d = c.copy()
        d[10:13, 5:30] = 0
        write_png(plain / "clean" / f"p{i}.png", c)
        write_png(plain / "damaged" / f"p{i}.png", d)
    pairs = open_pairs(plain, split="test")
    assert pairs.mode == "folder" and not pairs.has_masks and pairs.names == ["p0", "p1", "p2"]
    assert pairs.split == "all (no manifest split)"
    res = evaluate(pairs, [identity_method(), parse_method("dns")], worst=1)
    assert res.summaries["dns"]["delta_ssim"]["mean"] > 0  # a 3-px dark line is what D&S removes
    assert len(res.worst["dns"]) == 1
    with pytest.raises(InputError, match="needs true damage masks"):
        evaluate(pairs, [oracle_method()])


def test_full_size_images_damaged_on_the_fly(pairs_dir):
    pairs = open_pairs(pairs_dir, "full")
    assert pairs.mode == "full" and pairs.names == TEST_NAMES and pairs.has_masks
    a, b = pairs.load("img1"), pairs.load("img1")
    assert a.clean.shape == (64, 80, 3)
    assert np.array_equal(a.damaged, b.damaged)  # fixed seed per image
    assert np.array_equal(a.mask, np.abs(a.damaged - a.clean).max(-1) > 0) and a.mask.any()
    assert np.array_equal(np.rint(a.damaged * 255) / 255, a.damaged)  # 8-bit PNG: damaged on the 8-bit grid
    assert not np.array_equal(pairs.load("img2").mask, a.mask)
    folder = open_pairs(pairs_dir.parent / "corpus", "full")  # a folder of clean images + test_list.txt
    assert folder.names == TEST_NAMES[:2]
    res = evaluate(pairs, [identity_method(), parse_method("oracle")], worst=0)
    assert res.summaries["oracle"]["delta_ssim"]["mean"] > 0


def test_full_size_reads_every_format_dustify_and_train_accept(tmp_path):
    """``--size full`` lists and reads clean images as dustify and train do: .bmp and .webp too."""
    from filmclean.train.dustify import IMAGE_EXTENSIONS, build_pairs, list_images

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, ext in enumerate((".png", ".bmp", ".webp")):
        img = smooth_image(i, 40, 48)
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []  # 101: lossless
        assert cv2.imwrite(str(corpus / f"c{i}{ext}"), img[..., ::-1], params)
    assert {".bmp", ".webp"} <= IMAGE_EXTENSIONS and list(list_images(corpus)) == ["c0", "c1", "c2"]
    folder = open_pairs(corpus, "full", "all")
    assert folder.names == ["c0", "c1", "c2"]
    for name in folder.names:
        pair = folder.load(name)
        assert pair.clean.shape == (40, 48, 3) and pair.mask.any()
        assert np.array_equal(np.rint(pair.damaged * 255) / 255, pair.damaged)  # 8-bit files: 8-bit grid
    build_pairs(corpus, tmp_path / "pairs", sizes=(32,), seed=3, split=(1, 0, 2))
    for pairs_dir in (corpus, tmp_path / "pairs"):
        out = tmp_path / f"report_{pairs_dir.name}"
        result = CliRunner().invoke(
            evaluate_command,
            [
                "--pairs",
                str(pairs_dir),
                "--size",
                "full",
                "--split",
                "all",
                "--model",
                "identity",
                "--model",
                "oracle",
                "--no-lpips",
                "--no-figures",
                "-q",
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        report = json.loads((out / "report.json").read_text())
        assert report["settings"]["names"] == ["c0", "c1", "c2"] and report["input_pairs"]["n"] == 3


def test_package_names_resolve_on_first_use():
    """``import filmclean.evaluation`` loads none of its modules; every name in ``__all__`` resolves."""
    import subprocess
    import sys

    code = (
        "import sys, filmclean.evaluation as ev\n"
        "loaded = [m for m in sys.modules if m.startswith('filmclean.evaluation.')]\n"
        "missing = [n for n in ev.__all__ if getattr(ev, n, None) is None]\n"
        "print(loaded, missing, sorted(ev.__all__) == sorted(ev._EXPORTS))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "[]", "True"]


def test_analyze_layers_with_injected_features(pairs_dir, tmp_path, monkeypatch):
    torch.manual_seed(0)
    vgg = VGG16Features().eval()
    pairs = open_pairs(pairs_dir, SIZE)
    same = layer_responses(pairs.load("img0").clean, pairs.load("img0").clean, vgg)
    assert [r.n_different for r in same] == [0] * 5
    analysis = analyze_layers(pairs, ["img0", "img2"], features=vgg)
    for name in ("img0", "img2"):
        resp = analysis.responses[name]
        assert [r.layer for r in resp] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
        assert [r.channels for r in resp] == [64, 128, 256, 512, 512]
        for r in resp:
            assert len(r.top_clean) == len(r.top_damaged) == 9
            assert r.n_different == 2 * (9 - len(set(r.top_clean) & set(r.top_damaged)))
            assert r.top_clean[0] == int(np.argmax(r.mean_clean))
    paths = write_layer_report(analysis, tmp_path / "layers")
    data = json.loads(paths["json"].read_text())
    assert list(data["images"]) == ["img0", "img2"] and len(data["images"]["img0"]["layers"][4]["mean_clean"]) == 512
    for p in ("layers_top_different.png", "layers_img0.png", "layers_img2.png"):
        assert cv2.imread(str(tmp_path / "layers" / p)) is not None

    # the command, with the random network standing in for the ImageNet weights
    import filmclean.nets.vgg16 as vgg16

    monkeypatch.setattr(vgg16, "ensure_vgg_weights", lambda: Path("random"))
    monkeypatch.setattr(vgg16, "load_vgg16_features", lambda source=None: vgg)
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        analyze_layers_command, ["--pairs", str(pairs_dir), "--size", str(SIZE), "-o", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "relu3_3" in result.output and "ReLU 22" in result.output
    data = json.loads((out / "layer_response.json").read_text())
    assert len(data["images"]) == 3 and set(data["images"]) <= set(TEST_NAMES)  # spread over the test split
    assert (out / "layers_top_different.png").is_file()


@pytest.mark.parametrize("polarity", ["any", "both", "dark"])
def test_full_size_accepts_every_polarity_word_dustify_writes(tmp_path, polarity):
    """A pair set built with ``--polarity any`` (and the older ``both``) evaluates at full size."""
    from filmclean.train.dustify import build_pairs

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        assert cv2.imwrite(str(corpus / f"c{i}.png"), smooth_image(i, 40, 48)[..., ::-1])
    build_pairs(corpus, tmp_path / "pairs", sizes=(32,), seed=3, split=(1, 0, 2), polarity=polarity)
    pairs = open_pairs(tmp_path / "pairs", "full", "all")
    assert pairs.names == ["c0", "c1", "c2"] and pairs.load("c0").mask.any()
