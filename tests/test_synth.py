"""Tests of the procedural film-damage synthesis (filmclean.train.synth)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label, regionprops
from skimage.metrics import structural_similarity

from filmclean.train.synth import (
    DamageParams,
    ScratchTrack,
    apply_damage,
    dustify,
    dustify_batch,
    dustify_sequence,
    make_scratch_tracks,
    render_damage,
)

ONLY_DUST = dict(hair_rate=0.0, scratch_rate=0.0, blotch_rate=0.0)
ONLY_SCRATCHES = dict(dust_density=0.0, hair_rate=0.0, blotch_rate=0.0)
ONLY_HAIRS = dict(dust_density=0.0, scratch_rate=0.0, blotch_rate=0.0)


def photo(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth random colour image in [0.1, 0.9] (so both polarities can change every pixel)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((6, 8, 3)).astype(np.float32)
    return (0.1 + 0.8 * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)).astype(np.float32)


def changed(damaged: np.ndarray, clean: np.ndarray) -> np.ndarray:
    return np.abs(damaged - clean).max(-1) > 0


def test_same_seed_same_output_different_seed_different():
    img = photo(0)
    d1, m1 = dustify(img, 7)
    d2, m2 = dustify(img, 7)
    d3, m3 = dustify(img, 8)
    assert np.array_equal(d1, d2) and np.array_equal(m1, m2)
    assert not np.array_equal(d1, d3)
    # A Generator seeded alike gives the same result as the int seed.
    d4, _ = dustify(img, np.random.default_rng(7))
    assert np.array_equal(d1, d4)


@pytest.mark.parametrize("polarity", ["dark", "light", "random"])
@pytest.mark.parametrize("amount", [0.02, 0.3, 1.0])
def test_mask_marks_exactly_the_changed_pixels(polarity, amount):
    for seed in range(3):
        img = photo(seed)
        damaged, mask = dustify(img, seed, DamageParams(amount=amount), polarity)
        assert damaged.dtype == np.float32 and mask.dtype == np.float32
        assert damaged.shape == img.shape and mask.shape == img.shape[:2]
        assert np.array_equal(mask > 0, changed(damaged, img))
        assert damaged.min() >= 0.0 and damaged.max() <= 1.0
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        assert (mask > 0).any()
        # Untouched pixels are bit-identical.
        assert np.array_equal(damaged[mask == 0], img[mask == 0])


def test_mask_contract_holds_on_saturated_pixels():
    img = np.zeros((64, 64, 3), np.float32)
    img[:, 32:] = 1.0  # dark damage cannot change black, light damage cannot change white
    for polarity in ("dark", "light"):
        damaged, mask = dustify(img, 3, DamageParams(amount=0.8), polarity)
        assert np.array_equal(mask > 0, changed(damaged, img))
        side = slice(0, 32) if polarity == "dark" else slice(32, 64)
        assert not (mask[:, side] > 0).any()


def test_dark_damage_darkens_and_light_damage_lightens():
    img = np.full((128, 128, 3), 0.5, np.float32)
    dark, mdark = dustify(img, 1, DamageParams(amount=0.5), "dark")
    light, mlight = dustify(img, 1, DamageParams(amount=0.5), "light")
    assert (dark <= img).all() and (light >= img).all()
    # Opaque damage is near black / near white (a small residual, sometimes slightly tinted).
    assert (mdark > 0.99).any() and (mlight > 0.99).any()
    assert dark[mdark > 0.99].max() < 0.2
    assert light[mlight > 0.99].min() > 0.8


def test_random_polarity_gives_both():
    img = np.full((48, 48, 3), 0.5, np.float32)
    signs = set()
    for seed in range(12):
        d, m = dustify(img, seed, DamageParams(amount=0.3), "random")
        signs.add(float(np.sign((d - img)[m > 0].mean())))
    assert signs == {-1.0, 1.0}


def test_any_polarity_is_what_random_was():
    """``any`` (the runtime's word) draws exactly as the older words ``random`` and ``both`` do."""
    img = photo(4)
    p = DamageParams(amount=0.4)
    for seed in range(4):
        d_any, m_any = dustify(img, seed, p, "any")
        for old in ("random", "both"):
            d_old, m_old = dustify(img, seed, p, old)  # type: ignore[arg-type]
            assert np.array_equal(d_any, d_old) and np.array_equal(m_any, m_old)
    seq_any = dustify_sequence([img, img], 7, p, "any")
    seq_old = dustify_sequence([img, img], 7, p, "random")  # type: ignore[arg-type]
    assert all(np.array_equal(a, b) for a, b in zip(seq_any[0] + seq_any[1], seq_old[0] + seq_old[1]))


def test_dust_sizes_are_heavy_tailed_and_irregular():
    img = np.full((512, 512, 3), 0.5, np.float32)
    p = DamageParams(amount=0.15, softness=0.0, cluster_fraction=0.0, **ONLY_DUST)
    _, mask = dustify(img, 0, p)
    comps = regionprops(label(mask > 0.25, connectivity=2))
    areas = np.array([c.area for c in comps])
    small = (areas <= 9).sum()
    large = (areas >= 40).sum()
    assert large >= 3
    assert small > 8 * large
    # Large specks are not plain discs: a spread of elongations.
    ecc = np.array([c.eccentricity for c in comps if c.area >= 40])
    assert ecc.max() - ecc.min() > 0.3


def test_hairs_are_thin_curves():
    img = np.full((256, 256, 3), 0.5, np.float32)
    _, mask = dustify(img, 2, DamageParams(amount=0.3, hair_length=120.0, **ONLY_HAIRS))
    comps = [c for c in regionprops(label(mask > 0.2, connectivity=2)) if c.area >= 30]
    assert comps
    # A curve covers a small part of its bounding box and is long compared with its width.
    assert np.median([c.extent for c in comps]) < 0.35
    assert max(c.axis_major_length for c in comps) > 40


def test_scratches_are_long_and_near_vertical():
    img = np.full((256, 256, 3), 0.5, np.float32)
    _, mask = dustify(img, 4, DamageParams(amount=1.0, scratch_rate=4.0, **ONLY_SCRATCHES))
    comps = [c for c in regionprops(label(mask > 0, connectivity=2)) if c.area >= 20]
    assert comps
    for c in comps:
        r0, c0, r1, c1 = c.bbox
        assert (r1 - r0) > 3 * (c1 - c0)


def test_amount_controls_damage_and_sampled_amount_spreads_ssim():
    imgs = [photo(s, 256, 256) for s in range(4)]

    def mean_ssim(amount):
        return np.mean(
            [
                structural_similarity(
                    im, dustify(im, i, DamageParams(amount=amount))[0], channel_axis=-1, data_range=1.0
                )
                for i, im in enumerate(imgs)
            ]
        )

    assert mean_ssim(0.05) > mean_ssim(0.4) > mean_ssim(0.9)
    p = DamageParams()
    ssim = [
        structural_similarity(im, dustify(im, 100 * k + i, p, "random")[0], channel_axis=-1, data_range=1.0)
        for k in range(4)
        for i, im in enumerate(imgs)
    ]
    assert max(ssim) - min(ssim) > 0.3
    assert np.std(ssim) > 0.08
    amounts = [p.sample_amount(np.random.default_rng(s)) for s in range(200)]
    assert 0.0 <= min(amounts) and max(amounts) <= 1.0 and np.std(amounts) > 0.1


def test_size_exponent_sets_how_damage_scales_with_resolution():
    def per_area(size, exponent):
        p = DamageParams(amount=0.5, size_exponent=exponent, mix_jitter=0.0)
        counts = [render_damage(size, size, s, p).counts["dust"] for s in range(3)]
        return np.mean(counts) / size**2

    # Scaled pattern (default): at 64 px most dust is below a pixel and is not drawn.
    assert per_area(64, 1.0) < 0.2 * per_area(512, 1.0)
    # Fixed pixel sizes: the same density of specks per pixel at any size.
    assert 0.8 < per_area(64, 0.0) / per_area(512, 0.0) < 1.25


def test_render_and_apply_match_dustify():
    img = photo(3)
    dmg = render_damage(img.shape[0], img.shape[1], 11, None, "light")
    assert dmg.polarity == "light" and 0.0 <= dmg.amount <= 1.0
    assert dmg.alpha.shape == img.shape[:2] and dmg.transmittance.shape == img.shape
    assert (dmg.transmittance[dmg.alpha == 0] == 1.0).all()
    d1, m1 = apply_damage(img, dmg)
    d2, m2 = dustify(img, 11, None, "light")
    assert np.array_equal(d1, d2) and np.array_equal(m1, m2)


def test_sequence_scratches_persist_and_drift_while_dust_changes():
    frames = [photo(0, 96, 160)] * 8
    p = DamageParams(amount=1.0, scratch_rate=6.0, **ONLY_SCRATCHES)
    damaged, masks = dustify_sequence(frames, 5, p)
    assert len(damaged) == len(masks) == 8
    for d, m, f in zip(damaged, masks, frames):
        assert np.array_equal(m > 0, changed(d, f))
    on = [m > 0 for m in masks]
    ious = [(on[0] & on[t]).sum() / (on[0] | on[t]).sum() for t in range(1, 8)]
    assert (on[0]).any() and min(ious[:2]) > 0.3  # the same scratches next frame
    assert not all(np.array_equal(on[0], o) for o in on[1:])  # ... but they move a little

    dust = DamageParams(amount=0.4, **ONLY_DUST)
    _, dmasks = dustify_sequence(frames, 5, dust)
    a, b = dmasks[0] > 0, dmasks[1] > 0
    assert (a & b).sum() / (a | b).sum() < 0.2  # dust is drawn anew every frame
    again = dustify_sequence(frames, 5, dust)[1]
    assert all(np.array_equal(x, y) for x, y in zip(dmasks, again))


def test_scratch_track_drift():
    rng = np.random.default_rng(0)
    tracks = make_scratch_tracks(rng, 200, 300, n_frames=50, count=3)
    assert len(tracks) == 3 and all(isinstance(t, ScratchTrack) for t in tracks)
    t = tracks[0]
    rows = np.arange(200, dtype=float)
    shift = t.centre(10, rows) - t.centre(0, rows)
    assert np.allclose(shift, 10 * t.drift)
    assert all(tr.first_frame <= tr.last_frame and tr.last_frame - tr.first_frame >= 24 for tr in tracks)


def test_batch_is_deterministic_and_keeps_the_contract():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.stack([photo(s, 48, 64) for s in range(3)]).transpose(0, 3, 1, 2)).contiguous()
    d1, m1 = dustify_batch(x, 9, polarity="random")
    d2, m2 = dustify_batch(x, 9, polarity="random")
    d3, _ = dustify_batch(x, 10, polarity="random")
    assert d1.shape == x.shape and m1.shape == (3, 1, 48, 64) and d1.dtype == x.dtype
    assert torch.equal(d1, d2) and torch.equal(m1, m2) and not torch.equal(d1, d3)
    assert torch.equal(m1[:, 0] > 0, (d1 - x).abs().amax(1) > 0)
    assert float(d1.min()) >= 0.0 and float(d1.max()) <= 1.0
    # Image i depends only on (seed, i), not on the batch size.
    d_two, _ = dustify_batch(x[:2], 9, polarity="random")
    assert torch.equal(d_two, d1[:2])


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        dustify(np.zeros((8, 8), np.float32), 0)
    with pytest.raises(ValueError):
        dustify(np.zeros((8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError):
        dustify(np.full((8, 8, 3), 1.5, np.float32), 0)
    with pytest.raises(ValueError):
        dustify(photo(0), 0, polarity="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DamageParams(amount=1.5)
    with pytest.raises(ValueError):
        DamageParams(opacity_range=(0.9, 0.1))
