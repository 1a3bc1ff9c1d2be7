"""Seeded, class-stratified subsets and the train/validation splits carved from them.
"""

from __future__ import annotations

import numpy as np

# The test split of a set without an official one, and the capped test subset, use this fixed
# seed rather than the trial's: every trial of a study is then scored on the same test samples.
_TEST_SEED = 20_240_601


def _stratified_pick(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a seeded random subset of ``n`` samples with each class in proportion.

    Quotas are floored, then the remaining places go to the classes with the largest fractional
    parts, so a class keeps its share even in small subsets.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if n >= total:
        return rng.permutation(total)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    exact = counts * (n / total)
    quota = np.floor(exact).astype(np.int64)
    remainder = int(n - quota.sum())
    if remainder > 0:
        order = np.lexsort((rng.random(len(counts)), -(exact - quota)))  # random tie-break
        quota[order[:remainder]] += 1
    picked = [rng.permutation(np.flatnonzero(inverse == k))[:q] for k, q in enumerate(quota)]
    out = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    rng.shuffle(out)
    return out


def _split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = len(labels)
    n_val = min(max(1, round(fraction * n)), n - 1)
    val = _stratified_pick(labels, n_val, rng)
    keep = np.ones(n, dtype=bool)
    keep[val] = False
    return rng.permutation(np.flatnonzero(keep)), val


def _split_by_group(
    labels: np.ndarray, groups: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_split`, but whole groups move together (stratified by each group's label)."""
    unique, first = np.unique(groups, return_index=True)
    if len(unique) < 2:
        return _split(labels, fraction, rng)
    n_val = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    val_groups = unique[_stratified_pick(labels[first], n_val, rng)]
    is_val = np.isin(groups, val_groups)
    return rng.permutation(np.flatnonzero(~is_val)), rng.permutation(np.flatnonzero(is_val))
