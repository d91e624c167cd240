"""The broad training damage generator (filmclean.train.filmdamage) and its use in training data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from filmclean.errors import InputError
from filmclean.train.filmdamage import (
    KIND_OF,
    VISIBLE,
    FilmDamageParams,
    add_grain,
    film_damage,
    film_damage_kinds,
    sprite_pool,
)


def _picture(h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.2 + 0.6 * xx / w, 0.3 + 0.4 * yy / h, 0.5 + 0.2 * np.sin(xx / 7)], axis=2)
    return np.clip(img, 0, 1).astype(np.float32)


def _sprites(root: Path) -> Path:
    """A tiny sprite folder in the FilmDamageSimulator layout: white RGBA artefacts."""
    for folder, numbers in {"dots": (1, 5, 7), "hair": (2, 10, 11), "scratches": (3, 4)}.items():
        d = root / folder
        d.mkdir(parents=True)
        for n in numbers:
            img = np.zeros((40, 40, 4), np.uint8)
            img[..., :3] = 255
            if folder == "hair":
                cv2.line(img, (3, 5), (36, 30), (255, 255, 255, 255), 2)
            elif folder == "scratches":
                cv2.line(img, (20, 0), (21, 39), (255, 255, 255, 255), 1)
            else:
                cv2.circle(img, (20, 20), 6, (255, 255, 255, 255), -1)
            cv2.imwrite(str(d / f"{folder}_{n}.png"), img)
    return root


ONLY_SPRITES = FilmDamageParams(
    sprite_rate=60.0, dust_rate=0, blotch_rate=0, hair_rate=0, scratch_rate=0, p_synth=0, p_grain=0, kind_jitter=0
)
NO_EXTRAS = dict(p_synth=0.0, p_grain=0.0, p_scratch_flip=0.0, p_scratch_colour=0.0)


def _blotches_on_grey(tmp_path: Path, seeds: int, **params: float) -> list[tuple]:
    """``film_damage_kinds`` of a flat grey 256-px picture with blotches only, opaque, at the
    expected rate, for seeds ``0 .. seeds - 1``."""
    only = dict(NO_EXTRAS, sprite_rate=0, dust_rate=0, hair_rate=0, scratch_rate=0)
    p = FilmDamageParams(**{**only, "kind_jitter": 0, "level_shape": 1e4, "p_faint": 0.0, **params})
    flat = np.full((256, 256, 3), 0.6, np.float32)
    return [film_damage_kinds(flat, np.random.default_rng(s), p, "dark", str(tmp_path)) for s in range(seeds)]


class TestFilmDamage:
    def test_deterministic_given_the_seed(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        a = film_damage(_picture(), np.random.default_rng(3), sprite_root=root)
        b = film_damage(_picture(), np.random.default_rng(3), sprite_root=root)
        c = film_damage(_picture(), np.random.default_rng(4), sprite_root=root)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert not np.array_equal(a[1], c[1])

    def test_mask_is_the_visible_change(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        for seed in range(6):
            target, damaged, mask = film_damage(_picture(), np.random.default_rng(seed), sprite_root=root)
            assert target.shape == damaged.shape == (96, 128, 3) and mask.shape == (96, 128)
            assert damaged.dtype == np.float32 and mask.dtype == np.float32
            assert 0.0 <= damaged.min() and damaged.max() <= 1.0
            np.testing.assert_allclose(mask, np.abs(damaged - target).max(axis=2), atol=1e-7)
            untouched = mask == 0
            np.testing.assert_array_equal(damaged[untouched], target[untouched])
            assert (mask > 0).any()

    @pytest.mark.parametrize("polarity", ["dark", "light"])
    def test_polarity_sets_the_direction_of_change(self, tmp_path: Path, polarity: str) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        params = FilmDamageParams(**NO_EXTRAS)
        for seed in range(5):
            target, damaged, _ = film_damage(_picture(), np.random.default_rng(seed), params, polarity, root)
            diff = damaged - target
            if polarity == "dark":
                assert diff.max() <= 1e-6 and diff.min() < -0.05
            else:
                assert diff.min() >= -1e-6 and diff.max() > 0.05

    def test_scratches_can_go_the_other_way(self, tmp_path: Path) -> None:
        params = FilmDamageParams(
            sprite_rate=0, dust_rate=0, blotch_rate=0, hair_rate=0, scratch_rate=20, p_synth=0, p_grain=0,
            p_scratch_flip=1.0, p_scratch_colour=0.0, kind_jitter=0, p_faint=0.0, level_shape=1e4,
        )  # fmt: skip
        target, damaged, _ = film_damage(_picture(), np.random.default_rng(0), params, "dark", str(tmp_path))
        assert (damaged - target).max() > 0.1  # bright (emulsion-side) scratches on a positive

    def test_other_artefacts_can_go_the_other_way(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        rates = dict(sprite_rate=10, dust_rate=20, blotch_rate=2, hair_rate=2, scratch_rate=0)
        base = dict(NO_EXTRAS, kind_jitter=0, p_faint=0.0, level_shape=1e4, **rates)
        for p_flip, lighter, darker in ((1.0, True, False), (0.5, True, True)):
            params = FilmDamageParams(**base, p_flip=p_flip)
            target, damaged, _ = film_damage(_picture(), np.random.default_rng(3), params, "dark", root)
            diff = damaged - target
            assert bool(diff.max() > 0.05) is lighter  # white dirt printed from the negative
            assert bool(diff.min() < -0.05) is darker  # the print's own dark dirt

    def test_sprites_are_drawn_from_the_training_subset_only(self, tmp_path: Path) -> None:
        root = _sprites(tmp_path / "sprites")
        pool = sprite_pool(str(root))
        names = sorted(Path(p).name for files in pool.values() for p in files)
        assert names == ["dots_1.png", "dots_7.png", "hair_11.png", "hair_2.png", "scratches_3.png", "scratches_4.png"]
        assert set(pool) == {"dust", "hair", "scratch"}

    def test_sprites_alone_damage_the_picture(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        _, _, mask = film_damage(_picture(), np.random.default_rng(1), ONLY_SPRITES, "dark", root)
        assert (mask > 0.05).mean() > 0.01
        _, _, none = film_damage(_picture(), np.random.default_rng(1), ONLY_SPRITES, "dark", str(tmp_path / "nothing"))
        assert (none > 0).mean() < (mask > 0).mean()  # without sprites only the fallback artefact is drawn

    def test_max_blob_caps_the_size_of_blotches(self, tmp_path: Path) -> None:
        def largest(max_blob: float) -> int:
            sides = []
            for *_, kinds in _blotches_on_grey(tmp_path, 8, blotch_rate=1.0, max_blob=max_blob):
                dirt = kinds.get("dirt", np.zeros((256, 256), bool))  # a frame with nothing drawn gets a scratch
                n, _, stats, _ = cv2.connectedComponentsWithStats(dirt.astype(np.uint8))
                sides += [int(max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT])) for i in range(1, n)]
            return max(sides)

        assert largest(12.0) <= 12 * 1.6 + 7  # a blotch's canvas is 1.6 x its diameter + 6 px
        assert largest(0.0) > 40  # the generator's own range reaches 70 px

    def test_plain_shapes(self, tmp_path: Path) -> None:
        only = dict(NO_EXTRAS, sprite_rate=0, dust_rate=0, blotch_rate=0, hair_rate=0, scratch_rate=0)
        flat = np.full((256, 256, 3), 0.6, np.float32)
        params = FilmDamageParams(**only, shape_rate=6.0, kind_jitter=0, level_shape=1e4, p_faint=0.0, max_blob=30.0)
        seen: set[str] = set()
        solid = 0
        for seed in range(6):
            target, damaged, change, kinds = film_damage_kinds(
                flat, np.random.default_rng(seed), params, "dark", str(tmp_path)
            )
            seen |= {k for k, m in kinds.items() if m.any()}
            dirt = kinds.get("dirt", np.zeros(flat.shape[:2], bool))
            n, _, stats, _ = cv2.connectedComponentsWithStats(dirt.astype(np.uint8))
            assert all(max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) <= 30 + 8 for i in range(1, n))
            core = cv2.erode(dirt.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            solid += int((change[core] > 0.2).any())  # opaque shapes with a filled interior, not rings
        assert {"dust", "dirt", "hair"} <= seen
        assert solid >= 3

    def test_plain_shapes_off_leave_the_draw_unchanged(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        a = film_damage(_picture(), np.random.default_rng(5), FilmDamageParams(), sprite_root=root)
        b = film_damage(_picture(), np.random.default_rng(5), FilmDamageParams(shape_rate=0.0), sprite_root=root)
        c = film_damage(_picture(), np.random.default_rng(5), FilmDamageParams(shape_rate=60.0), sprite_root=root)
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[1], c[1])
        d = film_damage(_picture(), np.random.default_rng(5), FilmDamageParams(p_blotch_blur=0.0), sprite_root=root)
        np.testing.assert_array_equal(a[1], d[1])

    def test_defocused_blotches_have_soft_edges(self, tmp_path: Path) -> None:
        def edge_steepness(p_blur: float) -> float:
            steps = []
            for _, _, change, _ in _blotches_on_grey(tmp_path, 4, blotch_rate=3.0, p_blotch_blur=p_blur):
                gy, gx = np.gradient(change)
                steps.append(float(np.hypot(gx, gy).max()))
            return float(np.mean(steps))

        assert edge_steepness(1.0) < 0.6 * edge_steepness(0.0)

    def test_unknown_parameters_are_refused(self) -> None:
        with pytest.raises(ValueError, match="bogus"):
            FilmDamageParams.from_dict({"bogus": 1})
        assert FilmDamageParams.from_dict({"grain_strength": [0.01, 0.02]}).grain_strength == (0.01, 0.02)


class TestFilmDamageKinds:
    """``film_damage_kinds``: the same draw as ``film_damage`` and where each kind of damage is visible."""

    def test_same_draw_as_film_damage(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        for seed in range(3):
            plain = film_damage(_picture(), np.random.default_rng(seed), sprite_root=root)
            with_kinds = film_damage_kinds(_picture(), np.random.default_rng(seed), sprite_root=root)
            for x, y in zip(plain, with_kinds[:3], strict=True):
                np.testing.assert_array_equal(x, y)

    def test_kinds_cover_exactly_the_visible_damage(self, tmp_path: Path) -> None:
        root = str(_sprites(tmp_path / "sprites"))
        params = FilmDamageParams(p_synth=0.0, sprite_rate=20, hair_rate=3, scratch_rate=2, blotch_rate=2)
        seen: set[str] = set()
        for seed in range(6):
            _, _, mask, kinds = film_damage_kinds(_picture(), np.random.default_rng(seed), params, "any", root)
            assert set(kinds) <= set(KIND_OF.values())
            union = np.zeros(mask.shape, bool)
            for kind, m in kinds.items():
                assert m.dtype == bool and m.shape == mask.shape
                union |= m
                if m.any():
                    seen.add(kind)
            np.testing.assert_array_equal(union, mask > VISIBLE)  # every visible change has its kind
        assert seen == {"dust", "dirt", "hair", "scratch"}


class TestAddGrain:
    def test_grain_is_zero_mean_noise_of_the_given_strength(self) -> None:
        img = np.full((128, 128, 3), 0.5, np.float32)
        out = add_grain(img, np.random.default_rng(0), 0.03)
        assert out.shape == img.shape and out.dtype == np.float32
        assert abs(float((out - img).mean())) < 0.005
        assert 0.02 < float((out - img).std()) < 0.05


class TestFilmDamageInTraining:
    def _clean_dir(self, tmp_path: Path) -> Path:
        d = tmp_path / "clean"
        d.mkdir()
        for i in range(3):
            img = (np.roll(_picture(80, 100), i * 9, axis=1) * 255).astype(np.uint8)
            cv2.imwrite(str(d / f"p{i}.png"), img)
        return d

    def test_dataset_items_use_the_film_generator(self, tmp_path: Path) -> None:
        from filmclean.train.data import OnTheFlyDataset

        ds = OnTheFlyDataset(
            self._clean_dir(tmp_path), 64, ["p0", "p1", "p2"], seed=1, polarity="any", crops_per_image=2,
            damage="film", film_params={"p_grain": 1.0},
        )  # fmt: skip
        item = ds[3]
        assert item["input"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
        diff = (item["input"] - item["target"]).abs().amax(0)
        assert float((diff - item["mask"][0]).abs().max()) < 1e-6
        assert float(item["mask"].max()) > 0

    def test_bad_generator_settings_are_refused(self, tmp_path: Path) -> None:
        from filmclean.train.config import TrainConfig
        from filmclean.train.data import OnTheFlyDataset

        with pytest.raises(InputError, match="damage"):
            TrainConfig(clean_dir=str(tmp_path), damage="sprites")
        with pytest.raises(InputError, match="film_params"):
            OnTheFlyDataset(self._clean_dir(tmp_path), 64, ["p0"], seed=1, damage="film", film_params={"nope": 1})
        assert TrainConfig(clean_dir=str(tmp_path), damage="film", film_params={"p_grain": 0.5}).film_params == {
            "p_grain": 0.5
        }
