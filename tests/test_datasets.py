"""core.datasets: registry, embedded sets, local file formats, errors a user can act on.

Every test works in its own data folder (HPO_DATASETS) with downloads off (HPO_OFFLINE=1),
writes the tiny files it needs itself, and never imports Keras.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

import core.datasets as ds
from core.config import ConfigError
from core.datasets import DatasetUnavailable, get_info, is_available, list_datasets, load_dataset, preview
from core.datasets import _download, _embedded, _files, _gtsrb  # private modules: patched where the code reads them

ROOT = Path(__file__).resolve().parent.parent
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """A private, empty data folder; no downloads; no user Keras cache to stumble on."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HPO_DATASETS", str(folder))
    monkeypatch.setenv("HPO_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    return folder


@pytest.fixture
def no_keras(monkeypatch):
    """Fail loudly if anything tries a Keras download."""
    calls: list[str] = []

    def loader(name):
        calls.append(name)
        raise AssertionError(f"Keras download attempted for {name}")

    monkeypatch.setattr(_download, "_keras_loader", loader)
    return calls


# --------------------------------------------------------------------------- helpers writing tiny files


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    data = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)


def tiny_images(n: int, shape: tuple[int, ...], num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel is 20 * label: the label can be read back from the pixels."""
    y = (np.arange(n) % num_classes).astype(np.uint8)
    x = np.broadcast_to((y * 20).reshape((n,) + (1,) * len(shape)), (n,) + shape).astype(np.uint8)
    return x, y


def write_idx_set(folder: Path, gz: bool, spelling: str = "-idx") -> None:
    xtr, ytr = tiny_images(40, (28, 28))
    xte, yte = tiny_images(20, (28, 28))
    suffix = ".gz" if gz else ""
    for stem, arr in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte),
    ):
        write_idx(folder / (stem.replace("-idx", spelling) + suffix), arr, gz)


def object_array(seqs: list[list[int]]) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


def assert_labels_match_pixels(x: np.ndarray, y: np.ndarray) -> None:
    np.testing.assert_allclose(x.reshape(len(x), -1).mean(axis=1), y * 20 / 255, atol=1e-6)


# --------------------------------------------------------------------------- registry


def test_registry_entries_are_complete_and_consistent():
    names = [i.name for i in list_datasets()]
    assert names == list(ds.REGISTRY)
    assert {
        "digits",
        "synthetic_text",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "cifar100",
        "gtsrb",
        "imdb",
        "reuters",
    } <= set(names)
    assert ds.DEFAULT_DATASET == "digits" and get_info("digits").embedded
    for info in list_datasets():
        assert info.kind in ("image", "text"), info.name
        assert len(info.class_names) == info.num_classes >= 2, info.name
        assert len(set(info.class_names)) == info.num_classes, info.name
        assert info.description.count(".") >= 2 and info.source and info.license, info.name
        if info.kind == "image":
            assert len(info.input_shape) == 3 and info.input_shape[2] in (1, 3), info.name
            assert info.vocab_size is None and info.seq_len is None
        else:
            assert info.input_shape == (info.seq_len,) and info.vocab_size > 2, info.name
    assert {i.name for i in list_datasets() if i.embedded} == {"digits", "synthetic_text"}
    assert "SYNTHETIC" in get_info("synthetic_text").description
    assert get_info("gtsrb").num_classes == 43 and get_info("gtsrb").class_names[14] == "Stop"
    assert get_info("cifar100").class_names[:2] == ("apple", "aquarium_fish")


def test_get_info_forgives_spelling_and_lists_names_when_unknown():
    assert get_info("Fashion-MNIST").name == "fashion_mnist"
    with pytest.raises(ConfigError) as err:
        get_info("imagenet")
    assert "digits" in str(err.value) and "reuters" in str(err.value)


def test_import_does_not_pull_in_heavy_libraries():
    code = (
        "import sys, core.datasets; "
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'PIL') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# --------------------------------------------------------------------------- digits


def test_digits_shapes_ranges_and_splits():
    d = load_dataset("digits")
    assert d.info.name == "digits"
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1) and len(x) == len(y)
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
        assert 0.0 <= x.min() and x.max() <= 1.0
    assert d.x_train.max() == 1.0  # 16/16: really scaled by 16, not 255
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 1797
    assert abs(len(d.y_test) / 1797 - 0.2) < 0.01
    assert abs(len(d.y_val) / (len(d.y_train) + len(d.y_val)) - 0.15) < 0.01


def test_same_seed_same_arrays_other_seed_other_split():
    a = load_dataset("digits", seed=3, max_samples=300)
    b = load_dataset("digits", seed=3, max_samples=300)
    c = load_dataset("digits", seed=4, max_samples=300)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_array_equal(a.x_test, c.x_test)  # the test split never depends on the seed


def test_max_samples_caps_every_split_and_keeps_classes_balanced():
    d = load_dataset("digits", max_samples=100)
    assert len(d.y_train) == 100
    assert len(d.y_val) == 200 and len(d.y_test) == 200  # max(200, 100 // 4)
    assert np.bincount(d.y_train, minlength=10).min() >= 9  # 10 per class, +-1
    small = load_dataset("digits", max_samples=1000)
    assert len(small.y_test) == 250  # 1000 // 4
    assert len(small.y_val) == len(load_dataset("digits").y_val) == 216  # never more than exist
    assert len(load_dataset("digits", max_samples=10**6).y_train) == len(load_dataset("digits").y_train)


def test_validation_split_is_stratified():
    d = load_dataset("digits", seed=11, val_fraction=0.3)
    train, val = np.bincount(d.y_train, minlength=10), np.bincount(d.y_val, minlength=10)
    expected = (train + val) * 0.3
    assert np.all(np.abs(val - expected) <= 1.0)


def test_returned_arrays_are_private_copies():
    d = load_dataset("digits")
    d.x_train[:] = 0.5
    d.y_train[:] = 0
    again = load_dataset("digits")
    assert again.x_train.max() == 1.0 and len(np.unique(again.y_train)) == 10


@pytest.mark.parametrize(
    "kwargs", [{"max_samples": 0}, {"max_samples": 2.5}, {"val_fraction": 0.0}, {"val_fraction": 1.0}]
)
def test_bad_arguments_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        load_dataset("digits", **kwargs)


def test_preview_images_show_several_classes():
    x, y = preview("digits", n=8)
    assert x.shape == (8, 8, 8, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and len(set(y.tolist())) == 8


# --------------------------------------------------------------------------- synthetic text


def bag_of_words(x: np.ndarray, vocab: int) -> np.ndarray:
    counts = np.zeros((len(x), vocab), dtype=np.float32)
    np.add.at(counts, (np.repeat(np.arange(len(x)), x.shape[1]), x.ravel()), 1.0)
    counts[:, 0] = 0  # padding carries no information
    return counts


def test_synthetic_text_is_learnable_but_not_trivial():
    """A bag-of-words linear classifier (multinomial naive Bayes, numpy only) clearly beats chance.

    The LSTM itself is checked with the models; this is the cheap proxy that the labels are learnable.
    """
    d = load_dataset("synthetic_text")
    info = d.info
    assert d.x_train.dtype == np.int32 and d.x_train.shape[1:] == (info.seq_len,)
    assert len(d.y_train) + len(d.y_val) >= 2000
    assert d.x_train.max() < info.vocab_size and d.x_train.min() >= 0
    # Pre-padding: once a row starts, it has no more zeros.
    for row in d.x_train[:200]:
        nz = np.flatnonzero(row)
        assert nz.size and np.all(row[nz[0] :] != 0)
    train, test = bag_of_words(d.x_train, info.vocab_size), bag_of_words(d.x_test, info.vocab_size)
    counts = np.stack([train[d.y_train == c].sum(axis=0) for c in range(info.num_classes)]) + 1.0
    log_prob = np.log(counts / counts.sum(axis=1, keepdims=True))
    acc = float(np.mean(np.argmax(test @ log_prob.T, axis=1) == d.y_test))
    assert 0.6 < acc < 0.99, acc  # chance is 0.25; ambiguous samples keep it below 100%


def test_synthetic_text_is_deterministic_and_decodes():
    a = load_dataset("synthetic_text", seed=5)
    _download._RAW_CACHE.clear()  # regenerate from scratch, not from the in-process cache
    b = load_dataset("synthetic_text", seed=5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    texts, labels = preview("synthetic_text", n=4)
    assert texts.dtype == object and len(texts) == 4 and sorted(labels.tolist()) == [0, 1, 2, 3]
    vocab = set(_embedded._synthetic_vocabulary())
    assert len(vocab) == get_info("synthetic_text").vocab_size
    for text in texts:
        assert isinstance(text, str) and set(text.split()) <= vocab and "<pad>" not in text


# --------------------------------------------------------------------------- MNIST-family files


@pytest.mark.parametrize(
    "name, folder, gz, spelling",
    [
        ("mnist", "mnist", True, "-idx"),
        ("mnist", "mnist", False, ".idx"),  # the train-images.idx3-ubyte spelling of some mirrors
        ("fashion_mnist", "fashion_mnist", False, "-idx"),
        ("fashion_mnist", "fashion-mnist", True, "-idx"),
    ],
)
def test_idx_files_load(data_dir, no_keras, name, folder, gz, spelling):
    write_idx_set(data_dir / folder, gz, spelling)
    assert is_available(name)
    d = load_dataset(name, seed=1)
    assert d.x_train.shape == (34, 28, 28, 1) and d.x_val.shape == (6, 28, 28, 1) and d.x_test.shape == (20, 28, 28, 1)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert_labels_match_pixels(d.x_train, d.y_train)
    assert_labels_match_pixels(d.x_test, d.y_test)
    assert not no_keras


def test_mnist_npz_loads_from_the_data_folder(data_dir, no_keras):
    xtr, ytr = tiny_images(30, (28, 28))
    xte, yte = tiny_images(10, (28, 28))
    (data_dir / "mnist").mkdir()
    np.savez(data_dir / "mnist" / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d = load_dataset("mnist")  # data_dir comes from HPO_DATASETS
    assert len(d.y_train) + len(d.y_val) == 30 and d.x_test.shape == (10, 28, 28, 1)
    assert_labels_match_pixels(d.x_val, d.y_val)
    assert not no_keras


def test_keras_cache_layout_is_read(data_dir, no_keras):
    """What a Keras download leaves behind (KERAS_HOME=<data>/keras) is found next time."""
    xtr, ytr = tiny_images(30, (28, 28))
    cache = data_dir / "keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xtr[:10], y_test=ytr[:10])
    assert is_available("mnist")
    assert load_dataset("mnist").x_test.shape == (10, 28, 28, 1)


@pytest.mark.parametrize("layout", ["npz_channels_first", "batches_folder", "tar_gz"])
def test_cifar10_local_layouts(data_dir, no_keras, layout):
    xtr, ytr = tiny_images(50, (3, 32, 32))
    xte, yte = tiny_images(10, (3, 32, 32))
    if layout == "npz_channels_first":
        (data_dir / "cifar10").mkdir()
        np.savez(
            data_dir / "cifar10" / "cifar10.npz", x_train=xtr, y_train=ytr[:, None], x_test=xte, y_test=yte[:, None]
        )
    else:
        folder = data_dir / "build" / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        batches = [(f"data_batch_{i + 1}", xtr[i * 10 : (i + 1) * 10], ytr[i * 10 : (i + 1) * 10]) for i in range(5)]
        for fname, x, y in batches + [("test_batch", xte, yte)]:
            with open(folder / fname, "wb") as f:
                pickle.dump({b"data": x.reshape(len(x), -1), b"labels": [int(v) for v in y]}, f, protocol=3)
        target = data_dir / "cifar10"
        target.mkdir()
        if layout == "batches_folder":
            folder.rename(target / "cifar-10-batches-py")
        else:
            with tarfile.open(target / "cifar-10-python.tar.gz", "w:gz") as tar:
                tar.add(folder, arcname="cifar-10-batches-py")
    d = load_dataset("cifar10")
    assert d.x_train.shape[1:] == (32, 32, 3) and len(d.y_train) + len(d.y_val) == 50 and len(d.y_test) == 10
    assert_labels_match_pixels(d.x_train, d.y_train)
    np.testing.assert_array_equal(d.y_test, yte)  # test order is kept when uncapped


def test_cifar100_batches_use_fine_labels(data_dir, no_keras):
    xtr, ytr = tiny_images(30, (3, 32, 32), num_classes=10)
    folder = data_dir / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for fname, x, y in (("train", xtr, ytr + 90), ("test", xtr[:10], ytr[:10] + 90)):
        with open(folder / fname, "wb") as f:
            batch = {
                b"data": x.reshape(len(x), -1),
                b"fine_labels": [int(v) for v in y],
                b"coarse_labels": [0] * len(y),
            }
            pickle.dump(batch, f, protocol=3)
    d = load_dataset("cifar100")
    assert d.x_test.shape == (10, 32, 32, 3) and d.y_test.min() >= 90 and d.info.num_classes == 100
    assert_labels_match_pixels(d.x_train, d.y_train - 90)


def test_imdb_npz_encoding_and_word_index(data_dir, no_keras):
    vocab = get_info("imdb").vocab_size
    seq_len = get_info("imdb").seq_len
    train = [[1, 2, 3], [3, 2, 1], [2, 2], [1, 3]] * 3
    test = [[1, 2, 3], list(range(1, 251)), [5, vocab + 100]]
    (data_dir / "imdb").mkdir()
    np.savez(
        data_dir / "imdb" / "imdb.npz",
        x_train=object_array(train),
        y_train=np.arange(len(train)) % 2,
        x_test=object_array(test),
        y_test=np.array([0, 1, 0]),
    )
    (data_dir / "imdb" / "imdb_word_index.json").write_text(json.dumps({"the": 1, "movie": 2, "great": 3}))
    d = load_dataset("imdb")
    assert d.x_test.dtype == np.int32 and d.x_test.shape == (3, seq_len)
    # rank r -> token r + 1 (0 = padding, 1 = out of vocabulary), pre-padded
    np.testing.assert_array_equal(d.x_test[0, -3:], [2, 3, 4])
    assert not d.x_test[0, :-3].any()
    np.testing.assert_array_equal(d.x_test[1], np.arange(52, 252))  # truncation keeps the end
    np.testing.assert_array_equal(d.x_test[2, -2:], [6, 1])  # too rare -> OOV
    texts, labels = preview("imdb", n=2)
    assert set(texts.tolist()) <= {"the movie great", "great movie the", "movie movie", "the great"}
    assert sorted(labels.tolist()) == [0, 1]


def test_reuters_npz_pool_is_split_like_keras(data_dir, no_keras):
    n = 50
    x = object_array([[i + 1] for i in range(n)])  # sequence i holds rank i+1 -> token i+2
    y = np.arange(n) % 46
    np.savez(data_dir / "reuters.npz", x=x, y=y)
    d = load_dataset("reuters")
    order = np.arange(n)
    np.random.RandomState(113).shuffle(order)
    np.testing.assert_array_equal(d.x_test[:, -1] - 2, order[40:])
    np.testing.assert_array_equal(d.y_test, y[order[40:]])
    assert len(d.y_train) + len(d.y_val) == 40 and d.info.num_classes == 46
    tokens, _ = preview("reuters", n=3)  # no word index: token ids come back
    assert tokens.dtype == np.int32 and tokens.shape == (3, get_info("reuters").seq_len)


# --------------------------------------------------------------------------- GTSRB

CLASS_RED = {0: 50, 1: 150, 14: 250}  # red channel encodes the class, green the track


def make_gtsrb(data_dir: Path, with_test: bool = True) -> None:
    from PIL import Image

    train = data_dir / "gtsrb" / "GTSRB" / "Final_Training" / "Images"  # as the official zip extracts
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"

    def sign(path: Path, red: int, green: int) -> str:
        img = Image.new("RGB", (40, 36), (0, 0, 255))  # blue border must be cropped away
        img.paste((red, green, 0), (5, 4, 35, 32))  # ROI (5, 4)-(34, 31) inclusive
        img.save(path, format="PPM")
        return f"{path.name};40;36;5;4;34;31"

    for label, red in CLASS_RED.items():
        folder = train / f"{label:05d}"
        folder.mkdir(parents=True)
        rows = [
            sign(folder / f"{track:05d}_{i:05d}.ppm", red, 40 + 120 * track) + f";{label}"
            for track in (0, 1)
            for i in range(3)
        ]
        (folder / f"GT-{label:05d}.csv").write_text(header + "\n".join(rows) + "\n")
    if with_test:
        folder = data_dir / "gtsrb" / "GTSRB" / "Final_Test" / "Images"
        folder.mkdir(parents=True)
        rows = [
            sign(folder / f"{i:05d}.ppm", red, 100) + f";{label}" for i, (label, red) in enumerate(CLASS_RED.items())
        ]
        (data_dir / "gtsrb" / "GT-final_test.csv").write_text(header + "\n".join(rows) + "\n")  # where GT zip puts it


def colour_keys(x: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(g)) for r, g in np.rint(x[:, :, :, :2].mean(axis=(1, 2)) * 255)}


def test_gtsrb_tree_is_cropped_resized_cached_and_split_by_track(data_dir, monkeypatch):
    make_gtsrb(data_dir)
    assert is_available("gtsrb")
    d = load_dataset("gtsrb", seed=0)
    assert d.x_train.shape[1:] == (32, 32, 3) and d.x_train.dtype == np.float32
    assert len(d.y_train) + len(d.y_val) == 18 and len(d.y_test) == 3
    # Only the ROI survives: no blue border pixel, every pixel the sign's own colour.
    assert d.x_train[..., 2].max() == 0.0
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        expected = np.array([CLASS_RED[v] for v in y], dtype=np.float32)[:, None] / 255
        assert np.abs(x[..., 0].reshape(len(x), -1) - expected).max() <= 1 / 255
    np.testing.assert_array_equal(d.y_test, [0, 1, 14])
    # A track (same sign, consecutive frames) is never on both sides of the validation split.
    assert len(d.y_val) == 3 and not colour_keys(d.x_val) & colour_keys(d.x_train)

    cache = data_dir / "gtsrb" / "gtsrb_32x32.npz"
    assert cache.is_file()
    _download._RAW_CACHE.clear()
    monkeypatch.setattr(_gtsrb, "_read_ppm", lambda *a, **k: pytest.fail("cache not used"))
    again = load_dataset("gtsrb", seed=0)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    np.testing.assert_array_equal(again.y_test, d.y_test)


def test_gtsrb_official_zips_are_unzipped_and_loaded(data_dir, tmp_path, no_keras):
    build = tmp_path / "build"
    make_gtsrb(build)
    src = build / "gtsrb"
    (data_dir / "gtsrb").mkdir()
    layout = {
        "GTSRB_Final_Training_Images.zip": src / "GTSRB" / "Final_Training",
        "GTSRB_Final_Test_Images.zip": src / "GTSRB" / "Final_Test",
        "GTSRB_Final_Test_GT.zip": src / "GT-final_test.csv",
    }
    for zname, what in layout.items():
        with zipfile.ZipFile(data_dir / "gtsrb" / zname, "w") as z:
            for f in [what] if what.is_file() else sorted(what.rglob("*")):
                z.write(f, f.relative_to(src))
    assert is_available("gtsrb")
    d = load_dataset("gtsrb")
    assert len(d.y_train) + len(d.y_val) == 18 and d.y_test.tolist() == [0, 1, 14]


def test_gtsrb_corrupt_cache_is_rebuilt_or_named(data_dir):
    make_gtsrb(data_dir)
    first = load_dataset("gtsrb")
    cache = data_dir / "gtsrb" / "gtsrb_32x32.npz"
    cache.write_bytes(b"garbage")
    _download._RAW_CACHE.clear()
    np.testing.assert_array_equal(load_dataset("gtsrb").x_train, first.x_train)  # rebuilt from the images
    assert zipfile_ok(cache)
    shutil.rmtree(data_dir / "gtsrb" / "GTSRB")
    cache.write_bytes(b"garbage")
    _download._RAW_CACHE.clear()
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("gtsrb")
    assert str(cache) in str(err.value)


def zipfile_ok(path: Path) -> bool:
    with zipfile.ZipFile(path) as z:
        return z.testzip() is None


def test_gtsrb_without_test_labels_holds_out_whole_tracks(data_dir):
    make_gtsrb(data_dir, with_test=False)
    d = load_dataset("gtsrb")
    assert len(d.y_test) >= 3 and len(d.y_train) + len(d.y_val) + len(d.y_test) == 18
    assert not colour_keys(d.x_test) & (colour_keys(d.x_train) | colour_keys(d.x_val))


def test_gtsrb_unreadable_ppm_is_named(data_dir):
    make_gtsrb(data_dir, with_test=False)
    bad = data_dir / "gtsrb" / "GTSRB" / "Final_Training" / "Images" / "00001" / "00000_00001.ppm"
    bad.write_bytes(b"P6\n40 36\n255\n" + b"\x00" * 100)  # header promises 4320 bytes
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("gtsrb")
    assert str(bad) in str(err.value)


def test_gtsrb_download_fails_fast_offline(data_dir, monkeypatch):
    monkeypatch.delenv("HPO_OFFLINE")
    urls: list[str] = []

    def offline(url, dest, timeout=10.0):
        urls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(_download, "_download_file", offline)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("gtsrb")
    assert urls and urls[0].startswith("https://sid.erda.dk/")
    message = str(err.value)
    assert "download failed" in message and str(data_dir / "gtsrb") in message and "GT-final_test.csv" in message


# --------------------------------------------------------------------------- errors a user can act on


@pytest.mark.parametrize("damage", ["truncated", "bad_magic", "truncated_gzip"])
def test_damaged_idx_is_named(data_dir, damage):
    folder = data_dir / "mnist"
    write_idx_set(folder, gz=damage == "truncated_gzip")
    target = folder / ("train-images-idx3-ubyte" + (".gz" if damage == "truncated_gzip" else ""))
    data = target.read_bytes()
    target.write_bytes(
        {"truncated": data[:-500], "bad_magic": b"\x01\x02" + data[2:], "truncated_gzip": data[: len(data) // 2]}[
            damage
        ]
    )
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist")
    assert str(target) in str(err.value) and "delete it" in str(err.value)


@pytest.mark.parametrize("content", [b"this is not a zip file", "missing_arrays"])
def test_corrupt_npz_is_named(data_dir, content):
    path = data_dir / "cifar10.npz"
    if content == "missing_arrays":
        np.savez(path, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    else:
        path.write_bytes(content)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar10")
    assert str(path) in str(err.value)
    if content == "missing_arrays":
        assert "y_train" in str(err.value)


def test_npz_with_wrong_shapes_or_labels_is_refused(data_dir):
    x, y = tiny_images(20, (28, 28))
    np.savez(data_dir / "mnist.npz", x_train=x, y_train=y + 10, x_test=x, y_test=y)
    with pytest.raises(DatasetUnavailable, match="outside 0..9"):
        load_dataset("mnist")
    np.savez(data_dir / "mnist.npz", x_train=x[:, :20], y_train=y, x_test=x, y_test=y)
    with pytest.raises(DatasetUnavailable, match="expected"):
        load_dataset("mnist")


def test_missing_files_say_what_to_put_where(data_dir, no_keras):
    assert not is_available("mnist") and not is_available("gtsrb")
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist")
    message = str(err.value)
    assert str(data_dir / "mnist" / "mnist.npz") in message
    assert "train-images-idx3-ubyte" in message and "https://" in message and "HPO_OFFLINE" in message
    assert isinstance(err.value, ConfigError)
    with pytest.raises(DatasetUnavailable, match="cifar-10-python.tar.gz"):
        preview("cifar10")
    assert not no_keras  # HPO_OFFLINE=1: nothing was even tried


def test_incomplete_idx_folder_lists_missing_files(data_dir):
    write_idx_set(data_dir / "mnist", gz=True)
    (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not is_available("mnist")
    with pytest.raises(DatasetUnavailable, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist")


def test_keras_offline_failure_becomes_dataset_unavailable(data_dir, monkeypatch):
    monkeypatch.delenv("HPO_OFFLINE")
    seen: dict[str, str | None] = {}

    def loader(name):
        def fetch():
            seen["name"], seen["keras_home"] = name, os.environ.get("KERAS_HOME")
            # What keras.utils.get_file raises offline, after ~0.02 s (DESIGN.md).
            raise Exception(
                "URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or service not known"
            )

        return fetch

    monkeypatch.setattr(_download, "_keras_loader", loader)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("imdb", max_samples=100)
    assert seen == {"name": "imdb", "keras_home": str(data_dir / "keras")}
    assert "KERAS_HOME" not in os.environ  # restored after the attempt
    message = str(err.value)
    assert "download failed" in message and str(data_dir / "imdb" / "imdb.npz") in message


def test_local_files_win_over_a_download(data_dir, monkeypatch, no_keras):
    monkeypatch.delenv("HPO_OFFLINE")
    write_idx_set(data_dir / "fashion_mnist", gz=True)
    load_dataset("fashion_mnist")
    assert not no_keras


# --------------------------------------------------------------------------- the real thing, where installed


@pytest.mark.skipif(
    not (FASHION_SYSTEM / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian_package(no_keras):
    raw = _download._load_raw("fashion_mnist", _files._data_dir(None))
    assert raw.x_train.shape == (60000, 28, 28, 1) and raw.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.y_train).tolist() == [6000] * 10
    d = load_dataset("fashion_mnist", max_samples=500)
    assert (
        d.x_train.shape == (500, 28, 28, 1) and d.x_val.shape == (200, 28, 28, 1) and d.x_test.shape == (200, 28, 28, 1)
    )
    assert d.info.num_classes == 10 and set(np.unique(d.y_train)) == set(range(10))
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0 and d.x_train.mean() > 0.1
    assert not no_keras


@pytest.mark.parametrize("dtype", ["|u1", "<f8"])
def test_npz_whose_header_declares_a_giant_array_is_named_corrupt(data_dir, dtype):
    """A header declaring 10^7 x 10^7 values made numpy try to allocate them: "out of memory", not "corrupt"."""
    import io
    import zipfile

    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": dtype, "fortran_order": False, "shape": (10**7, 10**7)})
    member.write(b"\0" * 64)
    path = data_dir / "cifar10.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{key}.npy", member.getvalue())
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar10")
    assert str(path) in str(err.value) and "corrupt" in str(err.value) and "memory" not in str(err.value)
