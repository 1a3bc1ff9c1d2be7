"""GTSRB: the official archives' layout, decoded once (cropped to the sign, 32x32 RGB) and cached
as an npz next to the images.
"""

from __future__ import annotations

import csv
import logging
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from core.datasets._files import _GTSRB_CACHE, _GTSRB_ORIGIN, _GTSRB_ZIPS, _corrupt, _missing_message, _unique
from core.datasets._readers import _image_raw, _Raw, _read_npz
from core.datasets._registry import REGISTRY, DatasetUnavailable
from core.datasets._splits import _TEST_SEED, _split_by_group

log = logging.getLogger("hpo.datasets")


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
