"""Downloads (through Keras's loaders, or GTSRB's official archive) and the in-process cache of
raw arrays; :func:`_load_raw` is the one way to a data set's raw arrays.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from core.datasets._embedded import _read_digits, _read_synthetic_text
from core.datasets._files import _GTSRB_ORIGIN, _GTSRB_ZIPS, _missing_message, _offline
from core.datasets._gtsrb import _extract_gtsrb_zips
from core.datasets._local import _locate, _read_source
from core.datasets._readers import _Raw
from core.datasets._registry import DatasetUnavailable

log = logging.getLogger("hpo.datasets")

_DOWNLOAD_TIMEOUT_S = 10.0  # connect/read timeout: offline must fail in seconds, not minutes


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

    module = getattr(keras.datasets, name)  # each Keras-downloadable set is named as its keras.datasets module

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
