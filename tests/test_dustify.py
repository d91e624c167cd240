"""Tests of the paired data-set builder (filmclean.train.dustify) and the ``dustify`` command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from filmclean.errors import InputError, OutputError
from filmclean.train.cli_data import dustify_command
from filmclean.train.dustify import build_pairs, resize_center_crop, split_names

SIZES = (16, 32)


def write_images(folder: Path, n: int) -> list[str]:
    """``n`` small smooth colour images of varied sizes and formats; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        rng = np.random.default_rng(i)
        h, w = 40 + 7 * (i % 4), 56 + 9 * (i % 3)
        img = cv2.resize((rng.random((5, 6, 3)) * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
        name = f"img{i:02d}"
        cv2.imwrite(str(folder / f"{name}.{'png' if i % 2 else 'jpg'}"), img)
        names.append(name)
    (folder / "notes.txt").write_text("not an image\n")
    return names


def read(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    assert img is not None, path
    return img


def test_build_pairs_layout_masks_and_manifest(tmp_path):
    names = write_images(tmp_path / "clean", 20)
    out = tmp_path / "pairs"
    with pytest.warns(UserWarning, match="test-list names"):
        manifest = build_pairs(tmp_path / "clean", out, SIZES, seed=3, polarity="both", test_names=["img05", "missing"])
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["sizes"] == list(SIZES) and manifest["seed"] == 3
    assert manifest["polarity"] == "both"
    assert manifest["test_list_missing"] == ["missing"]

    splits = manifest["splits"]
    assert sorted(splits) == ["test", "train", "valid"]
    all_names = splits["train"] + splits["valid"] + splits["test"]
    assert sorted(all_names) == names  # disjoint and complete
    assert (len(splits["train"]), len(splits["valid"]), len(splits["test"])) == (16, 2, 2)
    assert "img05" in splits["test"]

    polarities = set()
    for size in SIZES:
        for kind in ("clean", "damaged", "mask"):
            assert sorted(p.stem for p in (out / str(size) / kind).glob("*.png")) == names
        for name in names:
            clean = read(out / str(size) / "clean" / f"{name}.png")
            damaged = read(out / str(size) / "damaged" / f"{name}.png")
            mask = read(out / str(size) / "mask" / f"{name}.png")
            assert clean.shape == damaged.shape == (size, size, 3) and clean.dtype == np.uint8
            assert mask.shape == (size, size) and mask.dtype == np.uint8
            assert np.array_equal(mask > 0, (clean != damaged).any(axis=-1))
            info = manifest["images"][name]["pairs"][str(size)]
            assert 0.0 < info["ssim"] < 1.0
            polarities.add(info["polarity"])
        for name in names:
            assert manifest["images"][name]["split"] in splits
            assert name in splits[manifest["images"][name]["split"]]
        assert set(manifest["ssim_summary"][str(size)]) == {"mean", "std", "min", "max"}
    assert polarities == {"dark", "light"}
    # A different damage pattern at every size (compare masks resized to a common size).
    m16 = read(out / "16" / "mask" / "img00.png")
    m32 = cv2.resize(read(out / "32" / "mask" / "img00.png"), (16, 16), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(m16 > 0, m32 > 0)


def test_build_pairs_is_deterministic_and_split_is_stable_across_sizes(tmp_path):
    write_images(tmp_path / "clean", 12)
    a = build_pairs(tmp_path / "clean", tmp_path / "a", (16, 24), seed=1)
    b = build_pairs(tmp_path / "clean", tmp_path / "b", (24,), seed=1)
    assert a["splits"] == b["splits"]
    assert a["images"]["img03"]["pairs"]["24"] == b["images"]["img03"]["pairs"]["24"]
    for kind in ("clean", "damaged", "mask"):
        assert (tmp_path / "a" / "24" / kind / "img03.png").read_bytes() == (
            tmp_path / "b" / "24" / kind / "img03.png"
        ).read_bytes()
    c = build_pairs(tmp_path / "clean", tmp_path / "c", (24,), seed=2)
    assert c["images"]["img03"]["pairs"]["24"] != a["images"]["img03"]["pairs"]["24"]


def test_polarity_any_builds_what_both_did(tmp_path):
    """``any`` is the runtime's word; ``both``, the old one, still builds the same pairs."""
    write_images(tmp_path / "clean", 6)
    a = build_pairs(tmp_path / "clean", tmp_path / "a", (16,), seed=2, polarity="any")
    b = build_pairs(tmp_path / "clean", tmp_path / "b", (16,), seed=2, polarity="both")
    assert a["polarity"] == "any" and b["polarity"] == "both"  # the manifest records the word given
    assert {k: v for k, v in a.items() if k != "polarity"} == {k: v for k, v in b.items() if k != "polarity"}
    for kind in ("damaged", "mask"):
        for name in ("img00", "img03"):
            assert (tmp_path / "a" / "16" / kind / f"{name}.png").read_bytes() == (
                tmp_path / "b" / "16" / kind / f"{name}.png"
            ).read_bytes()
    with pytest.raises(InputError, match="polarity"):
        build_pairs(tmp_path / "clean", tmp_path / "c", (16,), polarity="sideways")
    runner = CliRunner()
    res = runner.invoke(
        dustify_command,
        [str(tmp_path / "clean"), "-o", str(tmp_path / "d"), "--sizes", "16", "--seed", "2", "--polarity", "both"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["polarity"] == "any"
    assert "[any|dark|light]" in runner.invoke(dustify_command, ["--help"]).output


def test_split_names_ratio_groups_and_forced_test():
    names = [f"n{i:03d}" for i in range(100)]
    parts = split_names(names, (8, 1, 1), seed=0)
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [80, 10, 10]
    assert split_names(reversed(names), (8, 1, 1), seed=0) == parts
    assert split_names(names, (8, 1, 1), seed=1) != parts
    groups = {n: f"g{int(n[1:]) // 2}" for n in names}  # pairs of names
    forced = ["n042"]
    parts = split_names(names, (8, 1, 1), 0, forced, groups)
    where = {n: s for s, ns in parts.items() for n in ns}
    assert where["n042"] == where["n043"] == "test"
    assert all(where[f"n{2 * k:03d}"] == where[f"n{2 * k + 1:03d}"] for k in range(50))


def test_resize_center_crop_uses_shorter_side():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 90:110] = 255  # a centred vertical bar stays centred
    out = resize_center_crop(img, 50)
    assert out.shape == (50, 50, 3)
    assert out[:, 25].min() > 200 and out[:, 2].max() == 0


def test_build_pairs_errors(tmp_path):
    with pytest.raises(InputError) as exc:
        build_pairs(tmp_path / "nope", tmp_path / "out", SIZES)
    assert "\n" not in str(exc.value) and "nope" in str(exc.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="no images"):
        build_pairs(tmp_path / "empty", tmp_path / "out", SIZES)
    write_images(tmp_path / "clean", 3)
    build_pairs(tmp_path / "clean", tmp_path / "out", (16,))
    with pytest.raises(OutputError, match="overwrite"):
        build_pairs(tmp_path / "clean", tmp_path / "out", (16,))
    build_pairs(tmp_path / "clean", tmp_path / "out", (16,), overwrite=True)
    (tmp_path / "clean" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png"):
        build_pairs(tmp_path / "clean", tmp_path / "out2", (16,))


def test_dustify_command(tmp_path):
    names = write_images(tmp_path / "clean", 10)
    (tmp_path / "clean" / "test_list.txt").write_text("# held out\nimg07.jpg\nimg08\n")
    runner = CliRunner()
    res = runner.invoke(
        dustify_command,
        [str(tmp_path / "clean"), "-o", str(tmp_path / "pairs"), "--sizes", "16,24", "--seed", "4", "--split", "8:1:1"],
    )
    assert res.exit_code == 0, res.output
    assert "wrote 10 images" in res.output
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["sizes"] == [16, 24] and manifest["seed"] == 4
    assert {"img07", "img08"} <= set(manifest["splits"]["test"])
    assert sorted(p.stem for p in (tmp_path / "pairs" / "24" / "mask").glob("*.png")) == names

    res = runner.invoke(dustify_command, [str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    res = runner.invoke(dustify_command, [str(tmp_path / "clean"), "-o", str(tmp_path / "y"), "--sizes", "16,abc"])
    assert res.exit_code == 2 and "sizes" in res.output.lower()
    res = runner.invoke(dustify_command, [str(tmp_path / "clean"), "-o", str(tmp_path / "y"), "--split", "8:1"])
    assert res.exit_code == 2


def test_dustify_command_reads_groups_from_sources_csv(tmp_path):
    write_images(tmp_path / "clean", 20)
    rows = ["name,group"] + [f"img{i:02d},pair{i // 2}" for i in range(20)]
    (tmp_path / "clean" / "sources.csv").write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(dustify_command, [str(tmp_path / "clean"), "-o", str(tmp_path / "pairs"), "--sizes", "16"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    split = {n: v["split"] for n, v in manifest["images"].items()}
    assert all(split[f"img{2 * k:02d}"] == split[f"img{2 * k + 1:02d}"] for k in range(10))
    assert manifest["images"]["img03"]["group"] == "pair1"
