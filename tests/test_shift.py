"""The shifted test set: fixed per data set, really damaged, labels untouched."""

from __future__ import annotations

import numpy as np

from core.shift import IMAGE_CORRUPTIONS, shift_images, shift_text, shifted_test_set


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8, 8, 1), dtype=np.float32)
    x[:, 2:6, 3:5, 0] = 1.0  # a bar in the middle
    return np.clip(x + rng.uniform(0, 0.05, x.shape), 0, 1).astype(np.float32)


def test_same_copy_for_every_trial_and_different_per_data_set():
    x = _images()
    a = shifted_test_set("digits", "image", x)
    b = shifted_test_set("digits", "image", x)
    c = shifted_test_set("mnist", "image", x)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_every_image_is_damaged_in_one_of_four_ways():
    x = _images(n=80)
    out = shift_images(x, seed=1)
    changed = np.abs(out - x).reshape(len(x), -1).max(axis=1)
    assert (changed > 0.05).all()  # nothing passes through untouched
    # contrast halves the spread around the mean; noise raises it; a shift moves the bar
    spreads = out.reshape(len(x), -1).std(axis=1) / x.reshape(len(x), -1).std(axis=1)
    assert (spreads < 0.6).sum() >= len(x) // len(IMAGE_CORRUPTIONS) - 3


def test_text_drops_and_swaps_tokens_and_keeps_pre_padding():
    rng = np.random.default_rng(0)
    x = np.zeros((50, 30), dtype=np.int32)
    for i in range(50):
        n = 10 + i % 15
        x[i, -n:] = rng.integers(2, 500, n)
    out = shift_text(x, seed=3)
    assert out.shape == x.shape
    for row, orig in zip(out, x):
        kept = row[row != 0]
        assert 0 < len(kept) <= (orig != 0).sum()
        assert (row[: len(row) - len(kept)] == 0).all()  # padding stays in front
        assert set(kept.tolist()) <= set(orig[orig != 0].tolist())
    assert (out != x).any(axis=1).mean() > 0.9
