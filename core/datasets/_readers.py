"""Readers per file format (IDX, npz, CIFAR's pickled batches and tar, Keras's text npz and word
index) and the checks that turn what they read into a :class:`_Raw`.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import pickle
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.datasets._files import _CIFAR_FOLDERS, _corrupt
from core.datasets._registry import REGISTRY, DatasetInfo

if TYPE_CHECKING:
    from core.datasets._local import _Source

log = logging.getLogger("hpo.datasets")

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
