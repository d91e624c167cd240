"""Tests of FFmpeg's temporal median through PyAV (filmclean.classical.tmedian)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from filmclean.classical import TMEDIAN_PIX_FMT, tmedian

H, W = 48, 64


def smooth_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((4, 5, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def clamped_median(frames: list[np.ndarray], radius: int) -> list[np.ndarray]:
    """The reference: per-pixel median of each frame's window, indices clamped to the sequence."""
    n = len(frames)
    return [
        np.median(np.stack([frames[min(max(k, 0), n - 1)] for k in range(t - radius, t + radius + 1)]), axis=0)
        for t in range(n)
    ]


def test_one_frame_speck_is_removed_from_a_static_sequence():
    clean = smooth_frame()
    frames = [clean.copy() for _ in range(5)]
    frames[2][20:24, 30:35] = 0.0  # dark speck in one frame only
    frames[3][5:7, 5:9] = 1.0  # light speck in another
    out = list(tmedian(frames))
    assert len(out) == 5
    for o in out:
        assert o.shape == (H, W, 3) and o.dtype == np.float32
        np.testing.assert_allclose(o, clean, atol=0.5 / 65535)  # within 16-bit rounding (here even exact)
    assert np.array_equal(out[2], clean) and np.array_equal(out[3], clean)


def test_identical_frames_pass_through():
    clean = smooth_frame(3)
    for r in (1, 2):
        out = list(tmedian([clean] * 4, radius=r))
        assert len(out) == 4
        for o in out:
            np.testing.assert_allclose(o, clean, atol=0.5 / 65535)
            assert np.array_equal(o, clean)  # the float samples are mapped back: bit-identical


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("radius", [1, 2])
def test_frame_count_order_and_values_match_a_clamped_median(n, radius):
    rng = np.random.default_rng(n * 10 + radius)
    frames = [rng.random((H, W, 3)).astype(np.float32) for _ in range(n)]
    out = list(tmedian(iter(frames), radius=radius))
    assert len(out) == n
    for got, want in zip(out, clamped_median(frames, radius)):
        assert np.abs(got - want).max() < 1.0 / 65535  # exact, or a sample within one 16-bit step of it
    # ends are clamped: the first and last frame are the majority of their windows
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[-1], frames[-1])


def test_order_is_kept_on_a_ramp():
    frames = [np.full((H, W, 3), t / 10, np.float32) for t in range(6)]
    out = list(tmedian(frames))
    assert [float(o[0, 0, 0]) for o in out] == [float(f[0, 0, 0]) for f in frames]


def test_lazy_and_empty():
    consumed = []

    def source():
        for t in range(6):
            consumed.append(t)
            yield smooth_frame(t)

    it = tmedian(source(), radius=1)
    next(it)
    assert len(consumed) <= 3  # the first output needs frames 0 and 1 only
    assert len(list(it)) == 5
    assert list(tmedian([])) == []


def test_bad_input():
    with pytest.raises(ValueError, match="radius"):
        list(tmedian([smooth_frame()], radius=0))
    with pytest.raises(ValueError, match="one size"):
        list(tmedian([smooth_frame(), np.zeros((H, W + 2, 3), np.float32)]))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        list(tmedian([np.zeros((H, W), np.float32)]))
    assert TMEDIAN_PIX_FMT == "gbrp16le"
