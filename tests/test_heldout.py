"""The held-out damage generator (filmclean.evaluation.heldout): determinism, masks, scale, polarity,
and the held-out/training split of the real damage sprites."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from filmclean.evaluation import heldout
from filmclean.evaluation.heldout import (
    DEFAULT_SPRITE_ROOT,
    KINDS,
    HeldoutParams,
    damage_heldout,
    heldout_sprites,
    training_sprites,
)

SEEDS = range(8)


def picture(side: int, width: int | None = None) -> np.ndarray:
    """A smooth, textured picture in [0.2, 0.8] (the same content at every size)."""
    base = np.random.default_rng(7).random((32, 32, 3)).astype(np.float32)
    img = cv2.resize(base, (width or side, side), interpolation=cv2.INTER_CUBIC)
    return np.clip(0.2 + 0.6 * img, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def runs() -> dict[int, list]:
    """Damage at 256 and 1024 px for the same seeds."""
    return {side: [damage_heldout(picture(side), seed) for seed in SEEDS] for side in (256, 1024)}


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    clean = picture(256)
    a, b, c = damage_heldout(clean, 3), damage_heldout(clean, 3), damage_heldout(clean, 4)
    assert np.array_equal(a.damaged, b.damaged)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in KINDS)
    assert a.polarity == b.polarity and a.counts == b.counts
    assert not np.array_equal(a.damaged, c.damaged)


def test_result_types(runs: dict[int, list]) -> None:
    for side, results in runs.items():
        for r in results:
            assert r.damaged.dtype == np.float32 and r.damaged.shape == (side, side, 3)
            assert r.damaged.min() >= 0.0 and r.damaged.max() <= 1.0
            assert r.polarity in ("dark", "light")
            assert set(r.masks) == set(KINDS)
            assert all(m.dtype == bool and m.shape == (side, side) for m in r.masks.values())
            union = np.zeros((side, side), bool)
            for m in r.masks.values():
                union |= m
            assert np.array_equal(union, r.mask)


@pytest.mark.parametrize("side", [256, 1024])
def test_every_kind_appears(runs: dict[int, list], side: int) -> None:
    for kind in KINDS:
        assert any(r.masks[kind].any() for r in runs[side]), kind


def test_untouched_outside_mask_and_visible_inside(runs: dict[int, list]) -> None:
    for side, results in runs.items():
        clean = picture(side)
        for r in results:
            assert np.array_equal(r.damaged[~r.mask], clean[~r.mask])
            if r.mask.any():
                diff = np.abs(r.damaged - clean).max(axis=2)
                assert diff[r.mask].min() > 2.0 / 255.0


def test_polarity_only_darkens_or_brightens(runs: dict[int, list]) -> None:
    seen = set()
    for side, results in runs.items():
        clean = picture(side)
        for r in results:
            seen.add(r.polarity)
            if r.polarity == "dark":
                assert np.all(r.damaged <= clean)
            else:
                assert np.all(r.damaged >= clean)
    assert seen == {"dark", "light"}
    p = HeldoutParams(p_light=1.0)
    r = damage_heldout(picture(256), 1, p)
    assert r.polarity == "light" and np.all(r.damaged >= picture(256))


def _component_areas(mask: np.ndarray) -> list[int]:
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [int(a) for a in stats[1:, cv2.CC_STAT_AREA]]


def test_damage_size_scales_with_picture(runs: dict[int, list]) -> None:
    """The same seed draws the same damage relative to the short side: at 4x the side, blob and
    hair components cover many times more pixels, and about the same share of the picture."""
    areas: dict[int, list[int]] = {256: [], 1024: []}
    share: dict[int, float] = {256: 0.0, 1024: 0.0}
    for side in (256, 1024):
        for r in runs[side]:
            for kind in ("dirt", "hair"):
                areas[side] += _component_areas(r.masks[kind])
            share[side] += float(r.mask.mean())
    assert areas[256] and areas[1024]
    # the large components (not the specks that only become visible at 1024 px) grow with the picture
    assert np.percentile(areas[1024], 90) > 4 * np.percentile(areas[256], 90)
    assert 1 / 3 < share[1024] / share[256] < 3


def test_non_square_frame() -> None:
    clean = picture(270, 480)
    r = damage_heldout(clean, 5)
    assert r.damaged.shape == clean.shape
    assert np.array_equal(r.damaged[~r.mask], clean[~r.mask])


def test_missing_sprite_root_still_works(tmp_path: Path) -> None:
    missing = tmp_path / "no-sprites"
    r = damage_heldout(picture(256), 2, sprite_root=missing)
    assert r.sprites_used == 0
    assert "not found" in r.sprite_status
    assert heldout_sprites(missing) == [] and training_sprites(missing) == []
    off = damage_heldout(picture(256), 2, HeldoutParams(use_sprites=False))
    assert off.sprites_used == 0 and "disabled" in off.sprite_status


needs_sprites = pytest.mark.skipif(not DEFAULT_SPRITE_ROOT.is_dir(), reason="sprite set not present")


@needs_sprites
def test_sprite_split() -> None:
    held, train = heldout_sprites(DEFAULT_SPRITE_ROOT), training_sprites(DEFAULT_SPRITE_ROOT)
    everything = set(DEFAULT_SPRITE_ROOT.resolve().glob("*/*.png"))  # listed with the root resolved
    assert set(held).isdisjoint(train)
    assert set(held) | set(train) == everything
    assert 0.17 < len(held) / len(everything) < 0.23
    assert all(int(p.stem.rsplit("-", 1)[1]) % 5 == 0 for p in held)
    assert {p.parent.name for p in held} == {p.parent.name for p in everything}


@needs_sprites
def test_only_heldout_sprites_are_composited(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    real = heldout._load_sprite

    def recording(path: str):
        loaded.append(path)
        return real(path)

    monkeypatch.setattr(heldout, "_load_sprite", recording)
    used = sum(damage_heldout(picture(256), seed).sprites_used for seed in SEEDS)
    assert used > 0 and loaded
    held = {str(p) for p in heldout_sprites(DEFAULT_SPRITE_ROOT)}
    assert set(loaded) <= held


class TestEvaluateOnHeldoutDamage:
    """``filmclean evaluate --damage heldout``: pairs damaged by the held-out generator, reported per kind."""

    def test_per_kind_report(self, tmp_path):
        import json

        import cv2
        from click.testing import CliRunner

        from filmclean.evaluation.cli import evaluate_command

        corpus = tmp_path / "corpus"
        corpus.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            img = cv2.GaussianBlur(rng.random((96, 128, 3)).astype(np.float32), (0, 0), 3) * 255
            assert cv2.imwrite(str(corpus / f"c{i}.png"), np.clip(img * 2 - 60, 0, 255).astype(np.uint8))
        out = tmp_path / "report"
        args = [
            "--pairs",
            str(corpus),
            "--size",
            "full",
            "--split",
            "all",
            "--damage",
            "heldout",
            "--model",
            "identity",
            "--model",
            "oracle",
            "--no-lpips",
            "--no-figures",
            "-q",
            "-o",
            str(out),
        ]
        result = CliRunner().invoke(evaluate_command, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
        report = json.loads((out / "report.json").read_text())
        assert report["settings"]["damage"] == "heldout"
        by_name = {m["name"]: m["summary"] for m in report["models"]}
        identity, oracle = by_name["identity"]["per_kind"], by_name["oracle"]["per_kind"]
        seen = [k for k in KINDS if identity[k]["images"] > 0]
        assert seen  # some kind of damage was drawn
        for kind in seen:
            assert identity[kind]["missed_share"]["mean"] == 1.0  # identity leaves all of it
            assert oracle[kind]["missed_share"]["mean"] < 0.5  # the true mask repairs most of it
        rows = report["per_image"]
        assert all(f"missed_share_{k}" in rows[0] for k in KINDS)

    def test_training_generator_damage(self, tmp_path):
        """``--damage film``: the training generator drawn on each image, visible damage only."""
        from filmclean.evaluation.pairs import open_pairs, with_film_damage

        corpus = tmp_path / "corpus"
        corpus.mkdir()
        for name in ("a", "b"):
            assert cv2.imwrite(str(corpus / f"{name}.png"), (picture(160, 200) * 255).astype(np.uint8))
        pairs = with_film_damage(open_pairs(corpus, "full", "all"), 2)
        assert pairs.has_masks and pairs.settings["damage"].startswith("film")
        for name in pairs.names:
            pair = pairs.load(name)
            changed = np.abs(pair.damaged - pair.clean).max(axis=-1)
            np.testing.assert_array_equal(changed > 0, pair.mask)  # changed exactly where damaged
            assert pair.mask.any() and changed[pair.mask].min() > 2 / 255
            union = np.zeros_like(pair.mask)
            for m in pair.kinds.values():
                union |= m
            assert not (union & ~pair.mask).any()
            np.testing.assert_array_equal(pairs.load(name).damaged, pair.damaged)  # seeded
        other = with_film_damage(open_pairs(corpus, "full", "all"), 3).load("a")
        assert not np.array_equal(other.damaged, pairs.load("a").damaged)

    def test_kind_errors(self):
        from filmclean.evaluation.metrics import kind_errors

        clean = np.full((20, 20, 3), 0.5, np.float32)
        damaged = clean.copy()
        damaged[2:4, 2:4] = 0.0  # dust
        damaged[10:20, 10] = 0.0  # a scratch
        restored = damaged.copy()
        restored[2:4, 2:4] = 0.5  # the dust repaired, the scratch left
        kinds = {
            "dust": (damaged != clean).any(-1) & (np.arange(20)[:, None] < 5),
            "scratch": np.zeros((20, 20), bool),
            "hair": np.zeros((20, 20), bool),
        }
        kinds["scratch"][10:20, 10] = True
        got = kind_errors(clean, damaged, restored, kinds)
        assert got["dust"]["missed_share"] == 0.0 and got["scratch"]["missed_share"] == 1.0
        assert got["scratch"]["ssim_lost_missed"] > 0 and "hair" not in got
        assert got["dust"]["unrepaired_share"] == 0.0 and got["scratch"]["unrepaired_share"] == 1.0
        touched = restored.copy()
        touched[10:20, 10] = 0.01  # changed, but still visibly damaged: touched is not repaired
        got = kind_errors(clean, damaged, touched, kinds)
        assert got["scratch"]["missed_share"] == 0.0 and got["scratch"]["unrepaired_share"] == 1.0
        half = restored.copy()
        half[10:20, 10] = 0.4  # most of the damage removed
        assert kind_errors(clean, damaged, half, kinds)["scratch"]["unrepaired_share"] == 0.0


class TestSpritesOnlyAndNamedImages:
    """``--damage sprites`` draws every artefact from the held-out sprites; ``--names`` picks images."""

    def test_sprites_only_damage(self, tmp_path, monkeypatch):
        from filmclean.evaluation import heldout
        from filmclean.evaluation.pairs import open_pairs, with_heldout_damage

        if not heldout_sprites(DEFAULT_SPRITE_ROOT):
            pytest.skip("the shared sprite folder is not present")
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        import cv2

        for name in ("a", "b", "c"):
            assert cv2.imwrite(str(corpus / f"{name}.png"), (picture(200) * 255).astype(np.uint8))
        procedural = []
        real_blob = heldout._blob
        monkeypatch.setattr(heldout, "_blob", lambda *a, **k: procedural.append(1) or real_blob(*a, **k))
        pairs = with_heldout_damage(open_pairs(corpus, "full", "all", names=["c", "a"]), 0, sprites_only=True)
        assert pairs.names == ["c", "a"] and pairs.settings["damage"] == "heldout sprites"
        for name in pairs.names:
            pair = pairs.load(name)
            assert pair.mask.any()
        assert not procedural  # no dust or dirt drawn procedurally


class TestCropsOfDamagedImages:
    """``--crops N``: crops of whole images damaged at their own scale, masks cut alike."""

    def test_crops_cut_pictures_and_masks_alike(self, tmp_path):
        from filmclean.evaluation.pairs import crops_of, open_pairs, with_heldout_damage

        corpus = tmp_path / "corpus"
        corpus.mkdir()
        assert cv2.imwrite(str(corpus / "big.png"), (picture(300, 400) * 255).astype(np.uint8))
        assert cv2.imwrite(str(corpus / "small.png"), (picture(40, 50) * 255).astype(np.uint8))
        whole = with_heldout_damage(open_pairs(corpus, "full", "all"), 3)
        crops = crops_of(whole, 64, 3, seed=3)
        assert crops.size == "64" and crops.has_masks
        big = [n for n in crops.names if n.startswith("big@")]
        small = [n for n in crops.names if n.startswith("small@")]
        assert 1 <= len(big) <= 3 and 1 <= len(small) <= 3
        full = whole.load("big")
        for name in big:
            pair = crops.load(name)
            x, y = (int(v) for v in name.split("@")[1].split(","))
            assert pair.clean.shape == (64, 64, 3)
            np.testing.assert_array_equal(pair.damaged, full.damaged[y : y + 64, x : x + 64])
            np.testing.assert_array_equal(pair.mask, full.mask[y : y + 64, x : x + 64])
            for kind, m in pair.kinds.items():
                np.testing.assert_array_equal(m, full.kinds[kind][y : y + 64, x : x + 64])
        assert crops_of(whole, 64, 3, seed=3).names == crops.names  # positions are seeded
        assert crops.load(small[0]).clean.shape == (40, 40, 3)  # under 64 px: squares of the short side
