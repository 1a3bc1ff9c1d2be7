"""Data sets: a registry of what HPO Studio can train on, and loaders that turn files into arrays.

Every loader ends in the same :class:`Dataset`: images as float32 in [0, 1], channels-last;
text as int32 token ids, pre-padded with 0 to a fixed length (1 is the out-of-vocabulary
token); labels as int64 class indices; a validation split carved from the training data (the
study optimises on it) and a test split kept apart (reported, never optimised).

Where the data comes from, in order:

1. embedded sets (``digits`` ships with scikit-learn, ``synthetic_text`` is generated here);
2. local files in the data folder (``Settings.from_env().datasets_dir``): the npz files Keras
   uses, MNIST-style IDX files, CIFAR's pickled batches, the official GTSRB archive layout;
   for Fashion-MNIST also ``/usr/share/datasets/fashion-mnist`` (Debian's package);
3. only when nothing local exists: a download through ``keras.datasets`` (cached under
   ``<data folder>/keras``) or, for GTSRB, from the official archive.

Offline, step 3 fails fast and becomes :class:`DatasetUnavailable`, whose message says which
files to put where and where they come from.  ``HPO_OFFLINE=1`` skips step 3 altogether.

This module imports only numpy and the standard library at import time: the UI reads the
registry without paying for TensorFlow (about 4 s and 700 MB, DESIGN.md).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import functools
import gzip
import io
import json
import logging
import math
import os
import pickle
import struct
import sys
import tarfile
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np

from core.errors import ConfigError
from core.paths import Settings

log = logging.getLogger("hpo.datasets")

__all__ = [
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetInfo",
    "DatasetUnavailable",
    "REGISTRY",
    "get_info",
    "is_available",
    "list_datasets",
    "load_dataset",
    "preview",
]

DEFAULT_DATASET = "digits"  # embedded, real, and small enough that a trial takes seconds on a CPU

# The test split of a set without an official one, and the capped test subset, use this fixed
# seed rather than the trial's: every trial of a study is then scored on the same test samples.
_TEST_SEED = 20_240_601
# Debian's `dataset-fashion-mnist` installs the four IDX files here (measured, DESIGN.md).
_SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_GTSRB_ORIGIN = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
_GTSRB_ZIPS = ("GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip")
_GTSRB_CACHE = "gtsrb_32x32.npz"
_DOWNLOAD_TIMEOUT_S = 10.0  # connect/read timeout: offline must fail in seconds, not minutes


class DatasetUnavailable(ConfigError):
    """A data set's files are missing or unreadable; the message says what to put where."""


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is, without loading it (cheap: the UI lists these).

    Attributes:
        name: registry key, e.g. ``"digits"``.
        kind: ``"image"`` (a CNN is built) or ``"text"`` (an LSTM is built).
        input_shape: one sample's shape: images ``(H, W, C)`` channels-last, text ``(seq_len,)``.
        num_classes: number of classes; labels are ``0 .. num_classes - 1``.
        class_names: a readable name per class index.
        description: two or three sentences for a learner.
        source: who made it and where it comes from.
        license: the terms it is shared under, as far as its authors state them.
        embedded: True when it needs no download and no local file.
        vocab_size: text only: token ids are ``< vocab_size``; 0 is padding, 1 out-of-vocabulary.
        seq_len: text only: every sequence is padded or truncated to this length.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    description: str
    source: str
    license: str
    embedded: bool
    vocab_size: int | None = None
    seq_len: int | None = None


@dataclass
class Dataset:
    """Arrays ready for Keras: train (fit), val (the objective), test (reported once)."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# --------------------------------------------------------------------------- registry

_DIGITS = tuple(str(d) for d in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100 fine labels in index order (alphabetical, as in the archive's `meta` file).
_CIFAR100 = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
    camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
    dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
    leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid
    otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road
    rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower
    sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
    willow_tree wolf woman worm""".split()
)
# Reuters newswire topics in index order (keras.datasets.reuters.get_label_names()).
_REUTERS = tuple(
    """cocoa grain veg-oil earn acq wheat copper housing money-supply coffee sugar trade reserves ship
    cotton carcass crude nat-gas cpi money-fx interest gnp meal-feed alum oilseed gold tin strat-metal
    livestock retail ipi iron-steel rubber heat jobs lei bop zinc orange pet-chem dlr gas silver wpi hog
    lead""".split()
)
_GTSRB = (
    "Speed limit (20km/h)",
    "Speed limit (30km/h)",
    "Speed limit (50km/h)",
    "Speed limit (60km/h)",
    "Speed limit (70km/h)",
    "Speed limit (80km/h)",
    "End of speed limit (80km/h)",
    "Speed limit (100km/h)",
    "Speed limit (120km/h)",
    "No passing",
    "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection",
    "Priority road",
    "Yield",
    "Stop",
    "No vehicles",
    "Vehicles over 3.5 metric tons prohibited",
    "No entry",
    "General caution",
    "Dangerous curve to the left",
    "Dangerous curve to the right",
    "Double curve",
    "Bumpy road",
    "Slippery road",
    "Road narrows on the right",
    "Road work",
    "Traffic signals",
    "Pedestrians",
    "Children crossing",
    "Bicycles crossing",
    "Beware of ice/snow",
    "Wild animals crossing",
    "End of all speed and passing limits",
    "Turn right ahead",
    "Turn left ahead",
    "Ahead only",
    "Go straight or right",
    "Go straight or left",
    "Keep right",
    "Keep left",
    "Roundabout mandatory",
    "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
)
_TOPICS = ("sport", "science", "food", "travel")

REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            kind="image",
            input_shape=(8, 8, 1),
            num_classes=10,
            class_names=_DIGITS,
            description=(
                "1,797 real handwritten digits scanned at 8x8 pixels with 17 grey levels. "
                "It ships with scikit-learn, so it works offline, and a small CNN reaches about 95% "
                "in seconds: the quickest way to watch a search unfold."
            ),
            source="UCI ML Optical Recognition of Handwritten Digits (Alpaydin & Kaynak, 1998), via scikit-learn",
            license="CC BY 4.0",
            embedded=True,
        ),
        DatasetInfo(
            name="mnist",
            kind="image",
            input_shape=(28, 28, 1),
            num_classes=10,
            class_names=_DIGITS,
            description=(
                "70,000 handwritten digits, 28x28 grey-scale: the classic first image benchmark. "
                "Most reasonable CNNs pass 98%, so differences between trials are small and health "
                "metrics often tell models apart better than accuracy does."
            ),
            source="Yann LeCun, Corinna Cortes, Christopher Burges; file from Keras (tf-keras-datasets/mnist.npz)",
            license="CC BY-SA 3.0",
            embedded=False,
        ),
        DatasetInfo(
            name="fashion_mnist",
            kind="image",
            input_shape=(28, 28, 1),
            num_classes=10,
            class_names=_FASHION,
            description=(
                "70,000 28x28 grey-scale photos of clothing in 10 categories, a drop-in but harder "
                "replacement for MNIST. Shirts, pullovers and coats look alike, so good models "
                "land around 90-93% and hyperparameters matter."
            ),
            source="Zalando Research (Xiao, Rasul & Vollgraf, 2017), github.com/zalandoresearch/fashion-mnist",
            license="MIT",
            embedded=False,
        ),
        DatasetInfo(
            name="cifar10",
            kind="image",
            input_shape=(32, 32, 3),
            num_classes=10,
            class_names=_CIFAR10,
            description=(
                "60,000 tiny 32x32 colour photos of 10 everyday classes (planes, cars, birds, cats...). "
                "Objects vary in pose, colour and background, so depth, regularisation and learning "
                "rate all change the result; expect 70-85% from a small CNN."
            ),
            source="Alex Krizhevsky, Vinod Nair, Geoffrey Hinton (2009), cs.toronto.edu/~kriz/cifar.html",
            license="No formal license; the authors ask that you cite Krizhevsky (2009)",
            embedded=False,
        ),
        DatasetInfo(
            name="cifar100",
            kind="image",
            input_shape=(32, 32, 3),
            num_classes=100,
            class_names=_CIFAR100,
            description=(
                "The same kind of 32x32 colour photos as CIFAR-10 but in 100 classes with only 500 "
                "training images each. It is hard: small CNNs reach 40-55%, and overfitting shows "
                "up quickly in the health metrics."
            ),
            source="Alex Krizhevsky, Vinod Nair, Geoffrey Hinton (2009), cs.toronto.edu/~kriz/cifar.html",
            license="No formal license; the authors ask that you cite Krizhevsky (2009)",
            embedded=False,
        ),
        DatasetInfo(
            name="gtsrb",
            kind="image",
            input_shape=(32, 32, 3),
            num_classes=43,
            class_names=_GTSRB,
            description=(
                "More than 50,000 photos of 43 kinds of German traffic signs taken from a moving car, "
                "cropped to the sign and resized to 32x32 colour. Lighting, blur and very unequal "
                "class sizes make it a realistic test of robustness."
            ),
            source="German Traffic Sign Recognition Benchmark, Stallkamp et al. (2012), INI Ruhr-Universitaet Bochum",
            license="No formal license stated by the authors; cite Stallkamp et al. (2012)",
            embedded=False,
        ),
        DatasetInfo(
            name="synthetic_text",
            kind="text",
            input_shape=(40,),
            num_classes=4,
            class_names=_TOPICS,
            description=(
                "SYNTHETIC data generated by HPO Studio, not real text: 3,000 word sequences about four "
                "topics (sport, science, food, travel), each mixing topic words with shared filler "
                "and a few words borrowed from a neighbouring topic. It works offline and lets an "
                "LSTM learn in seconds; accuracy on it says nothing about real language."
            ),
            source="Generated deterministically by core/datasets.py (HPO Studio)",
            license="Same as HPO Studio",
            embedded=True,
            vocab_size=500,
            seq_len=40,
        ),
        DatasetInfo(
            name="imdb",
            kind="text",
            input_shape=(200,),
            num_classes=2,
            class_names=("negative", "positive"),
            description=(
                "50,000 movie reviews from IMDB labelled positive or negative, as sequences of the "
                "10,000 most frequent words (last 200 words kept). Sentiment hides in word order and "
                "negation, which is what an LSTM is for; good models reach 85-90%."
            ),
            source="Maas et al. (2011), Large Movie Review Dataset; file from Keras (tf-keras-datasets/imdb.npz)",
            license="No formal license; the authors ask that you cite Maas et al. (2011)",
            embedded=False,
            vocab_size=10_000,
            seq_len=200,
        ),
        DatasetInfo(
            name="reuters",
            kind="text",
            input_shape=(150,),
            num_classes=46,
            class_names=_REUTERS,
            description=(
                "11,228 Reuters newswires from 1987 sorted into 46 topics (earnings, acquisitions, "
                "crude oil...), as sequences of the 10,000 most frequent words. A few topics dominate, "
                "so compare against always guessing 'earn' (about 35%)."
            ),
            source="Reuters-21578 (David D. Lewis); file from Keras (tf-keras-datasets/reuters.npz)",
            license="Free for research use (Reuters-21578 Distribution 1.0 terms)",
            embedded=False,
            vocab_size=10_000,
            seq_len=150,
        ),
    )
}


def _normalise_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def get_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` (case and ``-``/``_`` are forgiven).

    Raises:
        ConfigError: the name is unknown; the message lists the valid names.
    """
    info = REGISTRY.get(_normalise_name(name))
    if info is None:
        raise ConfigError(f"dataset: unknown data set {name!r}; choose one of {', '.join(REGISTRY)}")
    return info


def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, images first, then text (the UI's order)."""
    return list(REGISTRY.values())


# --------------------------------------------------------------------------- where files go

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


# --------------------------------------------------------------------------- low-level readers


def _read_bytes(path: Path, name: str, what: str) -> bytes:
    """A file's bytes, gunzipped when it starts with gzip's magic (whatever its name says)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as gz:
                    return gz.read()
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, what, exc, name) from None


def _read_idx(path: Path, name: str = "mnist") -> np.ndarray:
    """Read an IDX file (the MNIST format: big-endian header, then raw uint8 values).

    Args:
        path: an IDX file, gzipped or not.
        name: the data set it belongs to (for the error message).

    Returns:
        A uint8 array shaped as the header says.

    Raises:
        DatasetUnavailable: bad magic number, unsupported value type, or a short read.
    """
    data = _read_bytes(path, name, "IDX file")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise _corrupt(path, "IDX file", "bad magic number: it should start with two zero bytes", name)
    type_code, ndim = data[2], data[3]
    if type_code != 0x08:  # MNIST-family files hold unsigned bytes only
        raise _corrupt(path, "IDX file", f"value type 0x{type_code:02x}, expected 0x08 (unsigned byte)", name)
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise _corrupt(path, "IDX file", "header is cut short", name)
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header
    if found != expected:
        raise _corrupt(path, "IDX file", f"expected {expected} data bytes for shape {dims}, found {found}", name)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only, so a tampered file cannot run code."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_npy_member(raw: bytes) -> np.ndarray:
    buf = io.BytesIO(raw)
    _check_npy_size(buf, len(raw))
    try:
        return np.lib.format.read_array(buf, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
    # Ragged text sequences are object arrays, which numpy stores as a pickle stream after the header.
    buf.seek(0)
    major, _ = np.lib.format.read_magic(buf)
    if major == 1:
        np.lib.format.read_array_header_1_0(buf)
    else:
        np.lib.format.read_array_header_2_0(buf)
    return _ArrayUnpickler(buf, encoding="latin1").load()


def _check_npy_size(buf: io.BytesIO, size: int) -> None:
    """Refuse a member whose header declares more data than it holds (leaves ``buf`` at 0).

    A damaged or hostile header can declare a 10^7 x 10^7 array: numpy would try to
    allocate it first and fail with MemoryError, which reads as "out of memory", not "corrupt".
    """
    major, _ = np.lib.format.read_magic(buf)
    if major == 1:
        shape, _, dtype = np.lib.format.read_array_header_1_0(buf, max_header_size=100_000)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(buf, max_header_size=100_000)
    if not dtype.hasobject:  # object arrays are a pickle stream: their size is not declared
        declared = math.prod(int(d) for d in shape) * dtype.itemsize
        available = size - buf.tell()
        if declared > available:
            raise ValueError(f"its header declares a {'x'.join(map(str, shape)) or 'scalar'} {dtype} array "
                             f"({declared:,} bytes) but it holds {available:,} bytes")
    buf.seek(0)


def _read_npz(path: Path, name: str, required: tuple[str, ...] | tuple[tuple[str, ...], ...]) -> dict[str, np.ndarray]:
    """Read an .npz archive safely (no arbitrary unpickling) and check it holds what is needed.

    Args:
        path: the .npz file.
        name: the data set (for the error message).
        required: key names that must all be present, or several alternative groups of them.

    Raises:
        DatasetUnavailable: not a zip, a damaged member, or missing arrays.
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    arrays[member[: -len(".npy")]] = _read_npy_member(archive.read(member))
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        zlib.error,
        pickle.UnpicklingError,
        MemoryError,  # a header or zip entry that declares more than memory holds: corrupt, not "out of memory"
    ) as exc:
        raise _corrupt(path, ".npz archive", str(exc) or type(exc).__name__, name) from None
    groups = required if required and isinstance(required[0], tuple) else (required,)
    if not any(all(k in arrays for k in group) for group in groups):  # type: ignore[union-attr]
        wanted = " or ".join(", ".join(g) for g in groups)  # type: ignore[arg-type]
        raise _corrupt(path, ".npz archive", f"it holds {sorted(arrays) or 'no arrays'}; expected {wanted}", name)
    return arrays


def _read_ppm(path: Path, roi: tuple[int, int, int, int] | None, size: int = 32) -> np.ndarray:
    """Read one GTSRB image, crop it to the sign and resize it.

    Args:
        path: a .ppm file (any format PIL reads works).
        roi: ``(x1, y1, x2, y2)`` inclusive corners of the sign, or None for the whole image.
        size: output side in pixels.

    Returns:
        A ``(size, size, 3)`` uint8 RGB array.

    Raises:
        DatasetUnavailable: the image cannot be decoded.
    """
    from PIL import Image  # lazy: only GTSRB needs it

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if roi is not None:
                x1, y1, x2, y2 = roi
                x1, y1 = max(0, x1), max(0, y1)
                x2, y2 = min(img.width - 1, x2), min(img.height - 1, y2)
                if x2 > x1 and y2 > y1:  # a broken ROI keeps the whole image rather than failing
                    img = img.crop((x1, y1, x2 + 1, y2 + 1))  # GTSRB's X2/Y2 are inclusive
            img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for bad/truncated files
        raise _corrupt(path, "PPM image", exc, "gtsrb") from None


def _read_cifar_pickle(stream: Any, path: Path, name: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(stream, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key.encode()], dtype=np.int64)
        images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        OSError,
        zlib.error,
    ) as exc:
        raise _corrupt(path, "CIFAR batch", exc, name) from None
    return images, labels


# --------------------------------------------------------------------------- raw data and checks


@dataclass
class _Raw:
    """A data set as read from its source, before splitting, capping and scaling."""

    x_train: np.ndarray  # images uint8 (N, H, W, C); text int32 (N, seq_len), already encoded
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    groups_train: np.ndarray | None = None  # samples sharing a group stay on one side of the val split
    scale: float = 255.0  # images: divide by this to land in [0, 1]
    vocabulary: dict[int, str] | None = None  # text: token id -> word, when a word index is known


def _as_uint8_images(x: np.ndarray, info: DatasetInfo, path: Path) -> np.ndarray:
    """Coerce the usual layouts ((N,H,W), (N,H,W,C), (N,C,H,W), flat) to uint8 (N,H,W,C)."""
    h, w, c = info.input_shape
    x = np.asarray(x)
    if x.dtype == object:
        raise _corrupt(path, f"{info.name} image array", "it holds Python objects, not pixels", info.name)
    if x.ndim == 2 and x.shape[1] == h * w * c:
        x = x.reshape(len(x), c, h, w).transpose(0, 2, 3, 1) if c == 3 else x.reshape(len(x), h, w, c)
    elif x.ndim == 3 and c == 1:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] == c and x.shape[-1] != c:
        x = x.transpose(0, 2, 3, 1)
    if x.shape[1:] != (h, w, c):
        raise _corrupt(path, f"{info.name} image array", f"shape {x.shape}, expected (N, {h}, {w}, {c})", info.name)
    if x.dtype != np.uint8:
        x = np.asarray(x, dtype=np.float64)
        if x.size and np.nanmax(x) <= 1.0:  # already scaled to [0, 1]
            x = x * 255.0
        if x.size and (np.isnan(x).any() or x.min() < 0 or x.max() > 255.5):
            raise _corrupt(path, f"{info.name} image array", "pixel values outside 0..255", info.name)
        x = np.rint(x).astype(np.uint8)
    return np.ascontiguousarray(x)


def _as_labels(y: np.ndarray, info: DatasetInfo, path: Path, n: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise _corrupt(path, f"{info.name} label array", f"{len(y)} labels for {n} samples", info.name)
    try:
        y = y.astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise _corrupt(path, f"{info.name} label array", exc, info.name) from None
    if len(y) and (y.min() < 0 or y.max() >= info.num_classes):
        raise _corrupt(
            path,
            f"{info.name} label array",
            f"labels {y.min()}..{y.max()} outside 0..{info.num_classes - 1}",
            info.name,
        )
    return y


def _image_raw(info: DatasetInfo, path: Path, x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> _Raw:
    xtr = _as_uint8_images(x_train, info, path)
    xte = _as_uint8_images(x_test, info, path)
    return _Raw(xtr, _as_labels(y_train, info, path, len(xtr)), xte, _as_labels(y_test, info, path, len(xte)))


def _encode_sequences(seqs: Any, vocab_size: int, seq_len: int, offset: int = 1) -> np.ndarray:
    """Word ranks (1 = most frequent) -> token ids: +offset, rare words -> 1, pre-pad/truncate.

    Truncation keeps the end of each sequence: a review's verdict tends to come last, and this
    matches Keras's ``pad_sequences`` default.
    """
    out = np.zeros((len(seqs), seq_len), dtype=np.int32)
    for i, seq in enumerate(seqs):
        tokens = np.asarray(seq, dtype=np.int64).reshape(-1)[-seq_len:] + offset
        tokens[(tokens >= vocab_size) | (tokens < 2)] = 1
        if len(tokens):
            out[i, seq_len - len(tokens) :] = tokens
    return out


def _text_raw(
    info: DatasetInfo,
    path: Path,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    vocabulary: dict[int, str] | None,
) -> _Raw:
    try:
        xtr = _encode_sequences(x_train, int(info.vocab_size), int(info.seq_len))
        xte = _encode_sequences(x_test, int(info.vocab_size), int(info.seq_len))
    except (TypeError, ValueError, OverflowError) as exc:
        raise _corrupt(path, f"{info.name} sequence array", exc, info.name) from None
    return _Raw(
        xtr,
        _as_labels(y_train, info, path, len(xtr)),
        xte,
        _as_labels(y_test, info, path, len(xte)),
        vocabulary=vocabulary,
    )


# --------------------------------------------------------------------------- embedded sets


def _read_digits() -> _Raw:
    from sklearn.datasets import load_digits  # lazy: sklearn costs ~1 s to import

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., None]  # values are whole numbers 0..16
    labels = bunch.target.astype(np.int64)
    # No official test split: hold out 20% once, with a fixed seed, so every trial is scored alike.
    test_idx = np.sort(_stratified_pick(labels, round(0.2 * len(labels)), np.random.default_rng(_TEST_SEED)))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return _Raw(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], scale=16.0)


_TOPIC_WORDS = {
    "sport": """goal match team coach player score league season stadium referee penalty striker keeper
        tournament champion trophy defender midfield tackle sprint marathon medal race athlete fans pitch
        court racket serve dribble basket inning wicket umpire halftime overtime transfer captain victory defeat""",
    "science": """atom molecule cell gene protein experiment theory physics chemistry biology laboratory
        microscope telescope galaxy planet orbit energy particle quantum electron neutron reaction hypothesis
        data sample enzyme virus fossil climate carbon oxygen equation gravity research journal professor
        neuron evolution spectrum isotope""",
    "food": """recipe oven flour sugar butter garlic onion tomato pasta noodle soup salad bread cheese pepper
        salt sauce grill roast bake fry simmer dessert chocolate vanilla lemon spice herb kitchen chef menu
        dinner lunch breakfast taste flavor spoon fork plate delicious""",
    "travel": """flight airport passport hotel luggage ticket train station beach island mountain museum tour
        guide map journey visa border cruise harbor hostel backpack suitcase resort booking itinerary
        sightseeing souvenir road bus taxi ferry camping village city capital coast desert trip vacation""",
}
_FUNCTION_WORDS = """the a of and to in is it that was for on with as at by this from they we be or an are
    but not have has had were one all there their what so up out if about who get which go me when make can
    like time just him know take people into year your good some could them see other than then now look
    only come its over think also back after use two how our work first well way even new want because any
    these give day most us very much many said""".split()


@functools.lru_cache(maxsize=1)
def _synthetic_vocabulary() -> tuple[str, ...]:
    """Token id -> word for synthetic_text: pad, unk, topic words, function words, then pseudo-words."""
    vocab_size = int(REGISTRY["synthetic_text"].vocab_size)
    words = ["<pad>", "<unk>"]
    for topic in _TOPICS:
        words += _TOPIC_WORDS[topic].split()
    words += _FUNCTION_WORDS
    # Filler pseudo-words ("bavo", "kemi"...) are neutral noise that belongs to no topic.
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    rng = np.random.default_rng(7)
    taken = set(words)
    while len(words) < vocab_size:
        word = "".join(syllables[i] for i in rng.integers(0, len(syllables), size=2))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return tuple(words)


def _read_synthetic_text() -> _Raw:
    """Generate the synthetic topic set; fixed seed, so every machine builds the same arrays.

    Each sequence has 12-40 words.  A per-sample share (8-35%) of them are topic words, a quarter
    of which come from the *next* topic to blur the boundaries; the rest is shared filler
    (Zipf-distributed function words and neutral pseudo-words).  Short, low-share samples are
    genuinely ambiguous, so accuracy tops out below 100%.
    """
    info = REGISTRY["synthetic_text"]
    vocab = _synthetic_vocabulary()
    seq_len = int(info.seq_len)
    # Token ids are laid out as in _synthetic_vocabulary: each topic's words are one contiguous block.
    sizes = np.array([len(_TOPIC_WORDS[t].split()) for t in _TOPICS])
    starts = 2 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    first_function = 2 + int(sizes.sum())
    function_ids = np.arange(first_function, first_function + len(_FUNCTION_WORDS))
    filler_ids = np.arange(first_function + len(_FUNCTION_WORDS), len(vocab))
    zipf = 1.0 / np.arange(1, len(function_ids) + 1)  # "the" far more often than "said"
    zipf /= zipf.sum()

    rng = np.random.default_rng(1234)
    n_train, n_test = 2400, 600
    total = n_train + n_test
    labels = rng.permutation(np.arange(total) % len(_TOPICS)).astype(np.int64)
    neighbour = (labels + 1) % len(_TOPICS)
    shape = (total, seq_len)
    lengths = rng.integers(12, seq_len + 1, size=total)
    share = rng.uniform(0.08, 0.35, size=total)
    is_topic = rng.random(shape) < share[:, None]
    borrowed = rng.random(shape) < 0.25
    own = starts[labels][:, None] + (rng.random(shape) * sizes[labels][:, None]).astype(np.int64)
    other = starts[neighbour][:, None] + (rng.random(shape) * sizes[neighbour][:, None]).astype(np.int64)
    filler = np.where(
        rng.random(shape) < 0.75, rng.choice(function_ids, size=shape, p=zipf), rng.choice(filler_ids, size=shape)
    )
    x = np.where(is_topic, np.where(borrowed, other, own), filler).astype(np.int32)
    x[np.arange(seq_len)[None, :] < (seq_len - lengths)[:, None]] = 0  # pre-padding
    return _Raw(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], vocabulary=dict(enumerate(vocab)))


# --------------------------------------------------------------------------- locating local files


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


def _read_cifar_tar(name: str, path: Path) -> _Raw:
    """Read CIFAR straight from the archive as downloaded; no need to extract 170 MB first."""
    folder, members = _CIFAR_FOLDERS[name]
    label_key = "labels" if name == "cifar10" else "fine_labels"
    parts = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in members:
                try:
                    stream = tar.extractfile(f"{folder}/{member}")
                except KeyError:
                    stream = None
                if stream is None:
                    raise _corrupt(path, "CIFAR archive", f"it has no {folder}/{member}", name)
                parts.append(_read_cifar_pickle(stream, path, name, label_key))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, "CIFAR archive (.tar.gz)", exc, name) from None
    train, test = parts[:-1], parts[-1]
    return _image_raw(
        REGISTRY[name],
        path,
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        test[0],
        test[1],
    )


def _read_word_index(path: Path, vocab_size: int) -> dict[int, str] | None:
    """Token id -> word from Keras's word index (word -> frequency rank, 1 = most frequent)."""
    try:
        with open(path, encoding="utf-8") as f:
            ranks = json.load(f)
        return {int(rank) + 1: word for word, rank in ranks.items() if 2 <= int(rank) + 1 < vocab_size}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        # Optional and cosmetic: training goes on, samples are shown as token ids.
        log.warning("ignoring unreadable word index %s (%s); delete it or replace it with a fresh copy", path, exc)
        return None


def _read_text_npz(name: str, source: _Source) -> _Raw:
    info = REGISTRY[name]
    path = source.paths[0]
    a = _read_npz(path, name, (("x_train", "y_train", "x_test", "y_test"), ("x", "y")))
    if "x_train" in a:
        x_train, y_train, x_test, y_test = a["x_train"], a["y_train"], a["x_test"], a["y_test"]
    else:
        # Keras's reuters.npz is one pool; reproduce Keras's own split (seed 113, last 20% test).
        x, y = a["x"], a["y"]
        if len(x) != len(y):
            raise _corrupt(path, ".npz archive", f"{len(x)} sequences but {len(y)} labels", name)
        order = np.arange(len(x))
        np.random.RandomState(113).shuffle(order)
        cut = int(len(x) * 0.8)
        x_train, y_train, x_test, y_test = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
    vocabulary = _read_word_index(source.extra[0], int(info.vocab_size)) if source.extra else None
    if vocabulary is not None:
        vocabulary = {0: "<pad>", 1: "<unk>", **vocabulary}
    return _text_raw(info, path, x_train, y_train, x_test, y_test, vocabulary)


# --------------------------------------------------------------------------- GTSRB


def _gtsrb_roots(data_dir: Path) -> list[Path]:
    g = data_dir / "gtsrb"
    return [g, g / "GTSRB", data_dir / "GTSRB"]


def _gtsrb_training_dir(data_dir: Path) -> Path | None:
    """The folder holding 000NN class folders (official zip: GTSRB/Final_Training/Images)."""
    for root in _gtsrb_roots(data_dir):
        for sub in (root / "Final_Training" / "Images", root / "Training"):
            if sub.is_dir() and any(p.is_dir() and p.name.isdigit() for p in sub.iterdir()):
                return sub
    return None


def _gtsrb_rows(csv_path: Path, need_class: bool = True) -> list[dict[str, str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _corrupt(csv_path, "GTSRB annotation file", exc, "gtsrb") from None
    needed = {"Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"} | ({"ClassId"} if need_class else set())
    if rows and not needed <= set(rows[0]):
        raise _corrupt(
            csv_path, "GTSRB annotation file", f"columns {sorted(rows[0])}, expected {sorted(needed)}", "gtsrb"
        )
    return rows


def _gtsrb_images(folder: Path, csv_path: Path) -> tuple[list[np.ndarray], list[int], list[str]]:
    xs, ys, names = [], [], []
    for row in _gtsrb_rows(csv_path):
        try:
            roi = (int(row["Roi.X1"]), int(row["Roi.Y1"]), int(row["Roi.X2"]), int(row["Roi.Y2"]))
            label = int(row["ClassId"])
        except (TypeError, ValueError) as exc:
            raise _corrupt(csv_path, "GTSRB annotation file", f"row {row}: {exc}", "gtsrb") from None
        if not 0 <= label < 43:
            raise _corrupt(csv_path, "GTSRB annotation file", f"ClassId {label} outside 0..42", "gtsrb")
        image = folder / row["Filename"]
        if not image.is_file():
            raise DatasetUnavailable(
                f"{image} is listed in {csv_path} but missing. Re-extract the GTSRB archive there."
            )
        xs.append(_read_ppm(image, roi))
        ys.append(label)
        names.append(row["Filename"])
        if len(xs) % 5000 == 0:
            log.info("GTSRB: decoded %d images in %s", len(xs), folder)
    return xs, ys, names


def _build_gtsrb(data_dir: Path) -> _Raw:
    """Decode the official GTSRB tree once (crop to ROI, 32x32 RGB) and cache it as an npz."""
    train_dir = _gtsrb_training_dir(data_dir)
    if train_dir is None:
        raise DatasetUnavailable(_missing_message("gtsrb", data_dir, "no training images found"))
    xs: list[np.ndarray] = []
    ys: list[int] = []
    groups: list[int] = []
    for class_dir in sorted(p for p in train_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        csv_path = class_dir / f"GT-{class_dir.name}.csv"
        if not csv_path.is_file():
            raise DatasetUnavailable(
                f"{csv_path} is missing: each GTSRB class folder needs its annotation file. Re-extract "
                f"{_GTSRB_ZIPS[0]} (from {_GTSRB_ORIGIN}) into {data_dir / 'gtsrb'}/."
            )
        cx, cy, names = _gtsrb_images(class_dir, csv_path)
        xs += cx
        ys += cy
        # Files are named TTTTT_IIIII.ppm: ~30 frames of one physical sign share a track. Keeping a
        # track on one side of the validation split stops near-duplicates inflating val accuracy.
        for label, fname in zip(cy, names, strict=True):
            track = fname.split("_")[0]
            groups.append(label * 100_000 + (int(track) if track.isdigit() else 0))
    if not xs:
        raise DatasetUnavailable(_missing_message("gtsrb", data_dir, f"{train_dir} holds no annotated images"))
    x_train, y_train, g_train = np.stack(xs), np.asarray(ys, np.int64), np.asarray(groups, np.int64)

    test = _gtsrb_test(data_dir, train_dir)
    if test is not None:
        x_test, y_test = test
    else:
        log.warning("GTSRB: no official test labels (GT-final_test.csv); holding out 20%% of training tracks as test")
        rng = np.random.default_rng(_TEST_SEED)
        tr, te = _split_by_group(y_train, g_train, 0.2, rng)
        x_test, y_test = x_train[te], y_train[te]
        x_train, y_train, g_train = x_train[tr], y_train[tr], g_train[tr]

    cache = data_dir / "gtsrb" / _GTSRB_CACHE
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez(f, x_train=x_train, y_train=y_train, groups_train=g_train, x_test=x_test, y_test=y_test)
        os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache behind
        log.info("GTSRB: cached %d+%d images in %s", len(y_train), len(y_test), cache)
    except OSError as exc:  # a read-only data folder still trains, just without the cache
        log.warning("GTSRB: could not write the cache %s (%s)", cache, exc)
    return _Raw(x_train, y_train, x_test, y_test, groups_train=g_train)


def _gtsrb_test(data_dir: Path, train_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    for root in _gtsrb_roots(data_dir):
        images = root / "Final_Test" / "Images"
        if not images.is_dir():
            continue
        for csv_dir in _unique([images, root / "Final_Test", root, data_dir / "gtsrb", data_dir / "gtsrb" / "GTSRB"]):
            csv_path = csv_dir / "GT-final_test.csv"
            if csv_path.is_file():
                xs, ys, _ = _gtsrb_images(images, csv_path)
                if xs:
                    return np.stack(xs), np.asarray(ys, np.int64)
    return None


def _read_gtsrb_cache(path: Path) -> _Raw:
    a = _read_npz(path, "gtsrb", ("x_train", "y_train", "groups_train", "x_test", "y_test"))
    info = REGISTRY["gtsrb"]
    raw = _image_raw(info, path, a["x_train"], a["y_train"], a["x_test"], a["y_test"])
    raw.groups_train = np.asarray(a["groups_train"], np.int64)
    if len(raw.groups_train) != len(raw.y_train):
        raise _corrupt(path, "GTSRB cache", "group and label counts differ", "gtsrb")
    return raw


def _extract_gtsrb_zips(folder: Path) -> None:
    """Unzip the official GTSRB archives found in ``folder`` in place (they hold GTSRB/... paths)."""
    for zname in _GTSRB_ZIPS:
        zpath = folder / zname
        if not zpath.is_file():
            continue
        try:
            with zipfile.ZipFile(zpath) as archive:
                for member in archive.namelist():
                    target = (folder / member).resolve()
                    if not str(target).startswith(str(folder.resolve())):  # refuse ../ escapes
                        raise zipfile.BadZipFile(f"unsafe path {member!r}")
                archive.extractall(folder)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise _corrupt(zpath, "zip archive", exc, "gtsrb") from None


def _download_file(url: str, dest: Path, timeout: float = _DOWNLOAD_TIMEOUT_S) -> None:
    """Stream ``url`` to ``dest`` via a .part file, so an interrupted download never looks complete."""
    import urllib.request  # lazy: rarely needed

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _download_gtsrb(data_dir: Path) -> None:
    folder = data_dir / "gtsrb"
    for zname in _GTSRB_ZIPS:
        if not (folder / zname).is_file():
            log.info("GTSRB: downloading %s%s", _GTSRB_ORIGIN, zname)
            _download_file(_GTSRB_ORIGIN + zname, folder / zname)
    _extract_gtsrb_zips(folder)


# --------------------------------------------------------------------------- Keras downloads

_KERAS_MODULES = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "imdb": "imdb",
    "reuters": "reuters",
}


@contextlib.contextmanager
def _keras_home(home: Path) -> Iterator[None]:
    """Point Keras's cache at ``home`` for the duration of a download.

    Keras reads KERAS_HOME once, when first imported; a process that imported it earlier is
    redirected through its config module (get_file asks ``keras_home()`` on every call).
    """
    home.mkdir(parents=True, exist_ok=True)
    previous_env = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(home)
    config = sys.modules.get("keras.src.backend.config")
    previous_dir = getattr(config, "_KERAS_DIR", None)
    if config is not None and previous_dir is not None:
        config._KERAS_DIR = str(home)
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop("KERAS_HOME", None)
        else:
            os.environ["KERAS_HOME"] = previous_env
        if config is not None and previous_dir is not None:
            config._KERAS_DIR = previous_dir


def _keras_loader(name: str) -> Callable[[], None]:
    """A callable that makes Keras download ``name`` into its cache (and the word index for text)."""
    import keras  # lazy: ~4 s and ~700 MB; only paid when a download is really needed

    module = getattr(keras.datasets, _KERAS_MODULES[name])

    def fetch() -> None:
        module.load_data()
        if hasattr(module, "get_word_index"):
            try:
                module.get_word_index()
            except Exception as exc:  # the word index only decodes previews; the data is what matters
                log.warning("%s: could not fetch the word index (%s)", name, exc)

    return fetch


# --------------------------------------------------------------------------- loading

_RAW_CACHE: collections.OrderedDict[tuple, _Raw] = collections.OrderedDict()
_RAW_CACHE_SIZE = 2  # a worker runs many trials on one set; two covers switching between a pair
_RAW_LOCK = threading.Lock()


def _freeze(raw: _Raw) -> _Raw:
    for arr in (raw.x_train, raw.y_train, raw.x_test, raw.y_test, raw.groups_train):
        if arr is not None:
            arr.flags.writeable = False  # cached: callers get copies, never these arrays
    return raw


def _cached(key: tuple, read: Callable[[], _Raw]) -> _Raw:
    with _RAW_LOCK:
        if key in _RAW_CACHE:
            _RAW_CACHE.move_to_end(key)
            return _RAW_CACHE[key]
    raw = _freeze(read())
    with _RAW_LOCK:
        _RAW_CACHE[key] = raw
        while len(_RAW_CACHE) > _RAW_CACHE_SIZE:
            _RAW_CACHE.popitem(last=False)
    return raw


def _load_raw(name: str, data_dir: Path, allow_download: bool = True) -> _Raw:
    if name == "digits":
        return _cached(("digits",), _read_digits)
    if name == "synthetic_text":
        return _cached(("synthetic_text",), _read_synthetic_text)

    source, notes = _locate(name, data_dir)
    if source is None:
        if not allow_download:
            raise DatasetUnavailable(_missing_message(name, data_dir, "no local copy found", notes))
        if _offline():
            raise DatasetUnavailable(
                _missing_message(name, data_dir, "no local copy found and HPO_OFFLINE is set", notes)
            )
        try:
            if name == "gtsrb":
                _download_gtsrb(data_dir)
            else:
                with _keras_home(data_dir / "keras"):
                    _keras_loader(name)()
        except DatasetUnavailable:
            raise
        except Exception as exc:  # Keras raises a bare Exception offline (~0.02 s); urllib an OSError
            reason = f"no local copy found, and the download failed ({type(exc).__name__}: {exc})"
            raise DatasetUnavailable(_missing_message(name, data_dir, reason, notes)) from None
        source, notes = _locate(name, data_dir)
        if source is None:
            raise DatasetUnavailable(
                _missing_message(name, data_dir, "the download finished but its files were not found", notes)
            )
    return _cached((name, str(data_dir), source.kind, source.signature()), lambda: _read_source(name, source, data_dir))


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
