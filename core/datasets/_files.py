"""Where a data set's files go and where they come from: the data folder's layout, Keras's
caches, the original sources, and the messages that tell a user what to put where.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.datasets._registry import REGISTRY, DatasetUnavailable
from core.paths import Settings

# Debian's `dataset-fashion-mnist` installs the four IDX files here (measured, DESIGN.md).
_SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_GTSRB_ORIGIN = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
_GTSRB_ZIPS = ("GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip")
_GTSRB_CACHE = "gtsrb_32x32.npz"


_IDX_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_CIFAR_FOLDERS = {
    "cifar10": (
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"),
    ),
    "cifar100": ("cifar-100-python", ("train", "test")),
}
_CIFAR_TARS = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
_KERAS_CIFAR_TARGET = {"cifar10": "cifar-10-batches-py-target", "cifar100": "cifar-100-python-target"}


def _data_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else Settings.from_env().datasets_dir


def _keras_cache(data_dir: Path) -> Path:
    """Where Keras's own downloads land: KERAS_HOME is pointed at ``<data folder>/keras``."""
    return data_dir / "keras" / "datasets"


def _user_keras_cache() -> Path:
    """A Keras cache the user may already have (``~/.keras/datasets``): reading it saves a download."""
    home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(home) / "datasets"


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[str] = set()
    out = []
    for p in paths:
        key = str(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _offline() -> bool:
    return os.environ.get("HPO_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _how_to_get(name: str, data_dir: Path) -> str:
    """The lines of a DatasetUnavailable message: what to put where, and where it comes from."""
    d = data_dir
    k = _KERAS_ORIGIN
    idx = ", ".join(f"{stem}.gz" for stem in _IDX_STEMS.values())
    if name == "mnist":
        lines = [
            f"- {d / 'mnist' / 'mnist.npz'}  (Keras's copy: {k}mnist.npz), or",
            f"- the four IDX files {idx} (gzipped or not) in {d / 'mnist'}/  "
            "(from https://ossci-datasets.s3.amazonaws.com/mnist/, a mirror of yann.lecun.com/exdb/mnist)",
        ]
    elif name == "fashion_mnist":
        lines = [
            f"- the four IDX files {idx} (gzipped or not) in {d / 'fashion_mnist'}/  "
            f"(from https://github.com/zalandoresearch/fashion-mnist, folder data/fashion, or {k}<file>), or",
            "- on Debian/Ubuntu: `sudo apt install dataset-fashion-mnist` "
            "(puts them in /usr/share/datasets/fashion-mnist/), or",
            f"- {d / 'fashion_mnist' / 'fashion_mnist.npz'} with arrays x_train, y_train, x_test, y_test",
        ]
    elif name in ("cifar10", "cifar100"):
        folder, _ = _CIFAR_FOLDERS[name]
        tar = _CIFAR_TARS[name]
        lines = [
            f"- {d / name / tar}  (from https://www.cs.toronto.edu/~kriz/{tar}, the 'python version'), or",
            f"- its extracted folder {d / name / folder}/, or",
            f"- {d / name / (name + '.npz')} with arrays x_train, y_train, x_test, y_test (uint8 images, 32x32x3)",
        ]
    elif name in ("imdb", "reuters"):
        lines = [
            f"- {d / name / (name + '.npz')}  (Keras's copy: {k}{name}.npz), and optionally",
            f"- {d / name / (name + '_word_index.json')}  ({k}{name}_word_index.json) to show samples as words",
        ]
    elif name == "gtsrb":
        g = d / "gtsrb"
        lines = [
            f"- the official archives {', '.join(_GTSRB_ZIPS)} in {g}/  (from {_GTSRB_ORIGIN}; "
            "HPO Studio unzips them), or their extracted contents:",
            f"- {g / 'Final_Training' / 'Images'}/000NN/*.ppm with GT-000NN.csv in each class folder (training), and",
            f"- {g / 'Final_Test' / 'Images'}/*.ppm with GT-final_test.csv (from GTSRB_Final_Test_GT.zip; "
            "without it a test split is held out from training)",
        ]
    else:  # embedded sets never reach here
        lines = []
    return "\n".join(lines)


def _missing_message(name: str, data_dir: Path, reason: str, notes: list[str] | None = None) -> str:
    info = REGISTRY[name]
    where = (
        "downloads it from the official archive"
        if name == "gtsrb"
        else f"downloads it through Keras into {_keras_cache(data_dir)}/"
    )
    parts = [
        f"The {info.name} data set is not available: {reason}",
        "Put one of these in place and try again:",
        _how_to_get(name, data_dir),
        f"With internet access HPO Studio {where} (HPO_OFFLINE=1 turns downloads off).",
        "datasets/README.md has the details.",
    ]
    if notes:
        parts.insert(1, "Found but incomplete: " + "; ".join(notes))
    return "\n".join(parts)


_ORIGINS = {
    "mnist": f"{_KERAS_ORIGIN}mnist.npz, or the IDX files from https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion), or Debian's "
    "dataset-fashion-mnist package",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "imdb": f"{_KERAS_ORIGIN}imdb.npz",
    "reuters": f"{_KERAS_ORIGIN}reuters.npz",
    "gtsrb": _GTSRB_ORIGIN,
}


def _corrupt(path: Path, what: str, detail: Any, name: str) -> DatasetUnavailable:
    """An error for a local file that exists but cannot be read: name it and say what to do."""
    return DatasetUnavailable(
        f"{path} is not a readable {what} ({detail}). It may be truncated or corrupt: delete it and put a "
        f"fresh copy there (from {_ORIGINS.get(name, 'its original source')}); datasets/README.md says "
        "which files go where."
    )
