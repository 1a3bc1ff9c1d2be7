"""Local copies: find the first complete one of a data set, then read it, whatever its format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.datasets._files import (
    _CIFAR_FOLDERS,
    _CIFAR_TARS,
    _GTSRB_CACHE,
    _GTSRB_ZIPS,
    _IDX_STEMS,
    _KERAS_CIFAR_TARGET,
    _SYSTEM_DIRS,
    _corrupt,
    _keras_cache,
    _unique,
    _user_keras_cache,
)
from core.datasets._gtsrb import _build_gtsrb, _extract_gtsrb_zips, _gtsrb_training_dir, _read_gtsrb_cache
from core.datasets._readers import (
    _as_labels,
    _as_uint8_images,
    _image_raw,
    _Raw,
    _read_cifar_pickle,
    _read_cifar_tar,
    _read_idx,
    _read_npz,
    _read_text_npz,
)
from core.datasets._registry import REGISTRY, DatasetUnavailable

log = logging.getLogger("hpo.datasets")


@dataclass(frozen=True)
class _Source:
    """A complete local copy of a data set: how to read it and which files it is."""

    kind: str  # npz | idx | cifar_dir | cifar_tar | text_npz | gtsrb_cache | gtsrb_tree | gtsrb_zips
    paths: tuple[Path, ...]
    extra: tuple[Path, ...] = ()  # optional companions (a word index)

    def signature(self) -> tuple:
        """Paths with size and mtime: the in-process cache notices a replaced file."""
        sig = []
        for p in self.paths + self.extra:
            try:
                st = p.stat()
                sig.append((str(p), st.st_size, st.st_mtime_ns))
            except OSError:
                sig.append((str(p), None, None))
        return tuple(sig)


def _find_idx(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in ``folder`` (``name``, ``name.gz``, or the ``train-images.idx3-ubyte`` spelling)."""
    found: dict[str, Path] = {}
    missing = []
    for key, stem in _IDX_STEMS.items():
        for variant in (stem, stem.replace("-idx", ".idx")):
            hit = next((folder / (variant + s) for s in (".gz", "") if (folder / (variant + s)).is_file()), None)
            if hit is not None:
                found[key] = hit
                break
        else:
            missing.append(stem + "[.gz]")
    return found, missing


def _locate(name: str, data_dir: Path) -> tuple[_Source | None, list[str]]:
    """The first complete local copy of ``name``, and notes about incomplete ones.

    Earlier entries win: the data set's own folder, then the data folder itself, then the Keras
    cache under it, then the user's Keras cache, then system folders.
    """
    d = data_dir
    keras_dirs = _unique([_keras_cache(d), _user_keras_cache()])
    notes: list[str] = []

    if name in ("mnist", "fashion_mnist"):
        if name == "mnist":
            ordered: list[tuple[str, Path]] = [
                ("npz", d / "mnist" / "mnist.npz"),
                ("idx", d / "mnist"),
                ("idx", d / "mnist" / "raw"),
                ("idx", d / "MNIST" / "raw"),  # torchvision's layout
                ("npz", d / "mnist.npz"),
            ] + [("npz", k / "mnist.npz") for k in keras_dirs]
        else:
            ordered = [
                ("npz", d / "fashion_mnist" / "fashion_mnist.npz"),
                ("idx", d / "fashion_mnist"),
                ("idx", d / "fashion-mnist"),
                ("npz", d / "fashion_mnist.npz"),
            ] + [("idx", k / "fashion-mnist") for k in keras_dirs]
            ordered += [("idx", p) for p in _SYSTEM_DIRS.get(name, ())]
        for kind, path in ordered:
            if kind == "npz" and path.is_file():
                return _Source("npz", (path,)), notes
            if kind == "idx" and path.is_dir():
                found, missing = _find_idx(path)
                if not missing:
                    return _Source("idx", tuple(found[k] for k in _IDX_STEMS)), notes
                if found:
                    notes.append(f"{path}/ lacks {', '.join(missing)}")
        return None, notes

    if name in ("cifar10", "cifar100"):
        folder, members = _CIFAR_FOLDERS[name]
        tar = _CIFAR_TARS[name]
        candidates: list[tuple[str, Path]] = [
            ("npz", d / name / f"{name}.npz"),
            ("cifar_dir", d / name / folder),
            ("cifar_tar", d / name / tar),
            ("cifar_dir", d / folder),
            ("npz", d / f"{name}.npz"),
            ("cifar_tar", d / tar),
        ] + [("cifar_dir", k / _KERAS_CIFAR_TARGET[name] / folder) for k in keras_dirs]
        for kind, path in candidates:
            if kind in ("npz", "cifar_tar") and path.is_file():
                return _Source(kind, (path,)), notes
            if kind == "cifar_dir" and path.is_dir():
                missing = [m for m in members if not (path / m).is_file()]
                if not missing:
                    return _Source(kind, tuple(path / m for m in members)), notes
                notes.append(f"{path}/ lacks {', '.join(missing)}")
        return None, notes

    if name in ("imdb", "reuters"):
        npz_files = [d / name / f"{name}.npz", d / f"{name}.npz"] + [k / f"{name}.npz" for k in keras_dirs]
        for path in npz_files:
            if path.is_file():
                index_dirs = _unique([path.parent, d / name, d, *keras_dirs])
                index = next(
                    (p / f"{name}_word_index.json" for p in index_dirs if (p / f"{name}_word_index.json").is_file()),
                    None,
                )
                return _Source("text_npz", (path,), (index,) if index else ()), notes
        return None, notes

    if name == "gtsrb":
        g = d / "gtsrb"
        if (g / _GTSRB_CACHE).is_file():
            return _Source("gtsrb_cache", (g / _GTSRB_CACHE,)), notes
        if _gtsrb_training_dir(d) is not None:
            return _Source("gtsrb_tree", (g,)), notes
        if (g / _GTSRB_ZIPS[0]).is_file():
            return _Source("gtsrb_zips", tuple(g / z for z in _GTSRB_ZIPS if (g / z).is_file())), notes
        return None, notes

    return None, notes


# --------------------------------------------------------------------------- reading local files


def _read_source(name: str, source: _Source, data_dir: Path) -> _Raw:
    info = REGISTRY[name]
    kind, path = source.kind, source.paths[0]
    if kind == "npz":
        a = _read_npz(path, name, ("x_train", "y_train", "x_test", "y_test"))
        return _image_raw(info, path, a["x_train"], a["y_train"], a["x_test"], a["y_test"])
    if kind == "idx":
        arrays = {key: _read_idx(p, name) for key, p in zip(_IDX_STEMS, source.paths, strict=True)}
        for key, p in zip(_IDX_STEMS, source.paths, strict=True):
            want = 1 if key.startswith("y") else 3
            if arrays[key].ndim != want:
                raise _corrupt(p, "IDX file", f"{arrays[key].ndim} dimensions, expected {want}", name)
        raw = _Raw(
            _as_uint8_images(arrays["x_train"], info, source.paths[0]),
            _as_labels(arrays["y_train"], info, source.paths[1], len(arrays["x_train"])),
            _as_uint8_images(arrays["x_test"], info, source.paths[2]),
            _as_labels(arrays["y_test"], info, source.paths[3], len(arrays["x_test"])),
        )
        return raw
    if kind == "cifar_dir":
        label_key = "labels" if name == "cifar10" else "fine_labels"
        parts = []
        for p in source.paths:
            try:
                with open(p, "rb") as f:
                    parts.append(_read_cifar_pickle(f, p, name, label_key))
            except OSError as exc:
                raise _corrupt(p, "CIFAR batch", exc, name) from None
        train, test = parts[:-1], parts[-1]
        return _image_raw(
            info,
            path.parent,
            np.concatenate([x for x, _ in train]),
            np.concatenate([y for _, y in train]),
            test[0],
            test[1],
        )
    if kind == "cifar_tar":
        return _read_cifar_tar(name, path)
    if kind == "text_npz":
        return _read_text_npz(name, source)
    if kind == "gtsrb_cache":
        try:
            return _read_gtsrb_cache(path)
        except DatasetUnavailable:
            if _gtsrb_training_dir(data_dir) is None:
                raise
            log.warning("GTSRB cache %s is unreadable; rebuilding it from the images", path)
            return _build_gtsrb(data_dir)
    if kind == "gtsrb_zips":
        _extract_gtsrb_zips(data_dir / "gtsrb")
        return _build_gtsrb(data_dir)
    if kind == "gtsrb_tree":
        return _build_gtsrb(data_dir)
    raise AssertionError(f"unknown source kind {kind}")
