"""The public loaders: :func:`load_dataset` (split, cap, scale), :func:`is_available`,
:func:`check_available` and :func:`preview`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.datasets._download import _load_raw
from core.datasets._files import _data_dir, _missing_message, _offline
from core.datasets._local import _locate
from core.datasets._readers import _Raw
from core.datasets._registry import Dataset, DatasetInfo, DatasetUnavailable, get_info
from core.datasets._splits import _TEST_SEED, _split, _split_by_group, _stratified_pick
from core.errors import ConfigError


def _prepare_x(raw: _Raw, x: np.ndarray, info: DatasetInfo) -> np.ndarray:
    if info.kind == "text":
        return np.ascontiguousarray(x, dtype=np.int32)
    out = x.astype(np.float32)
    out /= np.float32(raw.scale)
    return out


def load_dataset(
    name: str,
    *,
    max_samples: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.15,
    data_dir: Path | None = None,
) -> Dataset:
    """Load a data set, split it into train/val/test and cap it for quick runs.

    Args:
        name: a registry key (see :func:`list_datasets`).
        max_samples: cap on training samples (a seeded, class-balanced subset); validation and
            test are then capped to ``max(200, max_samples // 4)``.  None keeps everything.
        seed: seeds the validation split and the subsets: the same seed gives identical arrays.
            The test split (and its capped subset) does not depend on it, so every trial of a
            study is scored on the same test samples.
        val_fraction: share of the training data held out for validation, in (0, 1).
        data_dir: the data folder; default ``Settings.from_env().datasets_dir``.

    Returns:
        A :class:`Dataset`: images float32 in [0, 1] channels-last, text int32 token ids,
        labels int64.

    Raises:
        ConfigError: unknown name or bad argument.
        DatasetUnavailable: files missing or unreadable; the message says what to put where.
    """
    info = get_info(name)
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int | np.integer) or max_samples < 1
    ):
        raise ConfigError(f"max_samples: leave empty for all data or give a whole number >= 1 (got {max_samples!r})")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction: must be between 0 and 1, exclusive (got {val_fraction!r})")
    data_dir = _data_dir(data_dir)
    raw = _load_raw(info.name, data_dir)
    if len(raw.y_train) < 2 or len(raw.y_test) < 1:
        raise DatasetUnavailable(
            f"{info.name}: too few samples ({len(raw.y_train)} train, {len(raw.y_test)} test) to split; check its files"
        )

    rng = np.random.default_rng(seed)
    if raw.groups_train is not None:
        train_idx, val_idx = _split_by_group(raw.y_train, raw.groups_train, float(val_fraction), rng)
    else:
        train_idx, val_idx = _split(raw.y_train, float(val_fraction), rng)
    test_idx = np.arange(len(raw.y_test))
    if max_samples is not None:
        eval_cap = max(200, int(max_samples) // 4)
        if len(train_idx) > max_samples:
            train_idx = train_idx[_stratified_pick(raw.y_train[train_idx], int(max_samples), rng)]
        if len(val_idx) > eval_cap:
            val_idx = val_idx[_stratified_pick(raw.y_train[val_idx], eval_cap, rng)]
        if len(test_idx) > eval_cap:
            test_idx = np.sort(_stratified_pick(raw.y_test, eval_cap, np.random.default_rng(_TEST_SEED)))

    return Dataset(
        info=info,
        x_train=_prepare_x(raw, raw.x_train[train_idx], info),
        y_train=raw.y_train[train_idx].astype(np.int64),
        x_val=_prepare_x(raw, raw.x_train[val_idx], info),
        y_val=raw.y_train[val_idx].astype(np.int64),
        x_test=_prepare_x(raw, raw.x_test[test_idx], info),
        y_test=raw.y_test[test_idx].astype(np.int64),
    )


def is_available(name: str, data_dir: Path | None = None) -> bool:
    """True when ``name`` can be loaded without a download: embedded, or complete local files.

    Only looks for files (no network, no decoding); a present but corrupt file still counts,
    and :func:`load_dataset` then explains what is wrong with it.
    """
    info = get_info(name)
    if info.embedded:
        return True
    source, _ = _locate(info.name, _data_dir(data_dir))
    return source is not None


def check_available(name: str, data_dir: Path | None = None) -> None:
    """Refuse, before a study starts, a data set no trial could load.

    Passes for embedded sets and local copies (a corrupt file is reported when it is read),
    and when downloads are allowed (the first trial downloads the set).

    Raises:
        DatasetUnavailable: no local copy and downloads are off (HPO_OFFLINE); the message
            says what to put where.
    """
    info = get_info(name)
    if info.embedded:
        return
    folder = _data_dir(data_dir)
    source, notes = _locate(info.name, folder)
    if source is None and _offline():
        raise DatasetUnavailable(_missing_message(info.name, folder, "no local copy found and HPO_OFFLINE is set", notes))


def _decode(tokens: np.ndarray, vocabulary: dict[int, str]) -> str:
    return " ".join(vocabulary.get(int(t), "<unk>") for t in tokens if t != 0)


def preview(name: str, n: int = 8, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A few training samples and their labels for the UI, covering as many classes as possible.

    Never downloads: a set that is not available raises :class:`DatasetUnavailable` at once.

    Args:
        name: a registry key.
        n: how many samples.
        data_dir: the data folder; default ``Settings.from_env().datasets_dir``.

    Returns:
        ``(samples, labels)``: images float32 in [0, 1] ``(n, H, W, C)``; text as decoded strings
        (an object array) when a word index is known, else int32 token ids ``(n, seq_len)``;
        labels int64.
    """
    info = get_info(name)
    raw = _load_raw(info.name, _data_dir(data_dir), allow_download=False)
    n = max(0, min(int(n), len(raw.y_train)))
    # One of each class in turn (a fixed shuffle), so the strip shows the variety of the set.
    rng = np.random.default_rng(_TEST_SEED)
    order = rng.permutation(len(raw.y_train))
    by_class: dict[int, list[int]] = {}
    for i in order[: max(50 * n, 1000)]:
        by_class.setdefault(int(raw.y_train[i]), []).append(int(i))
    picked: list[int] = []
    while len(picked) < n and any(by_class.values()):
        for label in sorted(by_class):
            if by_class[label] and len(picked) < n:
                picked.append(by_class[label].pop(0))
    idx = np.asarray(picked, dtype=np.int64)
    labels = raw.y_train[idx].astype(np.int64)
    if info.kind == "text":
        tokens = np.ascontiguousarray(raw.x_train[idx], dtype=np.int32)
        if raw.vocabulary:
            return np.array([_decode(t, raw.vocabulary) for t in tokens], dtype=object), labels
        return tokens, labels
    return _prepare_x(raw, raw.x_train[idx], info), labels
