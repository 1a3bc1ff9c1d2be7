"""The shifted test set: the test split as a deployed model meets it, a little damaged.

A model can score well on test data drawn exactly like its training data and still fail on
data that is slightly off: a noisier camera, a digit written off-centre or at a slant, a
faded scan, a review with words missing.  *Shifted-data accuracy* is the trial's accuracy on
such a copy of the test split, and it is what the health measurements are judged against
(does a healthier model hold up better?).

Every trial on a data set sees the same corrupted copy: the corruptions are drawn from a
fixed seed per data set, independent of the trial's own seed, so shifted accuracies of
different trials are comparable.  Pure numpy (and scipy's image rotation): no TensorFlow.

Images (values in [0, 1]) get one corruption each, in equal shares:
    noise     Gaussian noise, sigma 0.15, clipped back to [0, 1]
    shift     a translation of up to 1/8 of the image side in each direction (zeros fill in)
    rotate    a rotation of 10-20 degrees either way
    contrast  contrast halved around the image's mean
Text (token ids, 0 = padding, 1 = out of vocabulary) gets, in every sequence:
    drop      15 % of the real tokens removed (the rest close up; padding stays in front, as loaded)
    swap      15 % of neighbouring pairs swapped
"""

from __future__ import annotations

import zlib

import numpy as np

IMAGE_CORRUPTIONS = ("noise", "shift", "rotate", "contrast")
NOISE_SIGMA = 0.15
SHIFT_FRACTION = 0.125
ROTATION_DEGREES = (10.0, 20.0)
CONTRAST_FACTOR = 0.5
TEXT_DROP = 0.15
TEXT_SWAP = 0.15

DESCRIPTION = (
    "Test accuracy on a fixed, damaged copy of the test split, the same for every trial: images get noise, "
    "a small shift, a 10-20° rotation or halved contrast; texts lose 15% of their words and have neighbouring "
    "words swapped."
)


def _seed(name: str) -> int:
    return zlib.crc32(f"hpo-shift:{name}".encode())


def shift_images(x: np.ndarray, seed: int) -> np.ndarray:
    """One corruption per image, in equal shares, seeded.  ``x`` is (N, H, W, C) in [0, 1]."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    out = x.copy()
    n, h, w = x.shape[0], x.shape[1], x.shape[2]
    kinds = rng.permutation(np.arange(n) % len(IMAGE_CORRUPTIONS))
    for i in range(n):
        kind = IMAGE_CORRUPTIONS[kinds[i]]
        img = x[i]
        if kind == "noise":
            out[i] = np.clip(img + rng.normal(0.0, NOISE_SIGMA, img.shape), 0.0, 1.0)
        elif kind == "shift":
            dy = int(rng.integers(1, max(2, round(h * SHIFT_FRACTION) + 1))) * int(rng.choice((-1, 1)))
            dx = int(rng.integers(1, max(2, round(w * SHIFT_FRACTION) + 1))) * int(rng.choice((-1, 1)))
            out[i] = ndimage.shift(img, (dy, dx, 0), order=0, mode="constant", cval=0.0)
        elif kind == "rotate":
            angle = float(rng.uniform(*ROTATION_DEGREES)) * float(rng.choice((-1.0, 1.0)))
            out[i] = np.clip(ndimage.rotate(img, angle, axes=(0, 1), reshape=False, order=1, mode="constant"), 0.0, 1.0)
        else:
            mean = img.mean()
            out[i] = np.clip(mean + CONTRAST_FACTOR * (img - mean), 0.0, 1.0)
    return out


def shift_text(x: np.ndarray, seed: int) -> np.ndarray:
    """Drop and swap tokens, seeded.  ``x`` is (N, seq_len) token ids with 0 as padding."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x)
    out = np.zeros_like(x)
    for i, row in enumerate(x):
        tokens = row[row != 0]
        if len(tokens) > 1:
            tokens = tokens[rng.random(len(tokens)) >= TEXT_DROP]
            tokens = tokens.copy()
            for j in range(len(tokens) - 1):
                if rng.random() < TEXT_SWAP:
                    tokens[j], tokens[j + 1] = tokens[j + 1], tokens[j]
        if len(tokens):
            out[i, x.shape[1] - len(tokens):] = tokens  # pre-padding, like the loaders
    return out


def shifted_test_set(name: str, kind: str, x_test: np.ndarray) -> np.ndarray:
    """The corrupted copy of a data set's test inputs (labels are unchanged).

    Args:
        name: the data set's registry name; it fixes the seed, so every trial gets the same copy.
        kind: "image" or "text".
        x_test: the test inputs.
    """
    if kind == "image":
        return shift_images(x_test, _seed(name))
    if kind == "text":
        return shift_text(x_test, _seed(name))
    raise ValueError(f"no shifted test set for data kind {kind!r}")


SHORT = {"image": "noise, shifts, rotations, low contrast", "text": "dropped and swapped words"}


def short_description(dataset: str) -> str:
    """A few words on how a data set's shifted test split is damaged (for captions and the CLI)."""
    try:
        from core.datasets import get_info

        return SHORT[get_info(dataset).kind]
    except Exception:  # noqa: BLE001 - an unknown data set: say both
        return f"{SHORT['image']}; or {SHORT['text']}"
