"""Shared test setup: every test run gets its own HPO_HOME, quiet TensorFlow, a fresh Keras session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Set before TensorFlow initialises (it reads these once).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


class _NoTensorFlow:
    """``make test-fast`` (HPO_TEST_FAST=1) runs without TensorFlow: a test that imports it in this
    process fails at once, saying which marker it lacks, instead of quietly making the loop slow."""

    def find_spec(self, name, path=None, target=None):  # noqa: ARG002 - the finder protocol
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} imported by a test without the `tf` marker: mark it "
                              "@pytest.mark.tf (make test-fast runs without TensorFlow)")
        return None


if os.environ.get("HPO_TEST_FAST") == "1":
    sys.meta_path.insert(0, _NoTensorFlow())


@pytest.fixture(autouse=True, scope="session")
def _hpo_home(tmp_path_factory):
    """Tests never write into the project's runs/, logs/ or datasets/.

    The home is the session's temporary root, so every ``tmp_path`` lies inside HPO_HOME:
    a spec's ``artifacts_dir`` may only point inside HPO_HOME, and tests name theirs under tmp_path.
    """
    home = tmp_path_factory.getbasetemp()
    old = os.environ.get("HPO_HOME")
    os.environ["HPO_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("HPO_HOME", None)
    else:
        os.environ["HPO_HOME"] = old


@pytest.fixture
def hpo_home(tmp_path, monkeypatch):
    """A private HPO_HOME for one test."""
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def clear_keras():
    """Keras keeps global state (layer-name counters, graphs); clear it around a test."""
    import keras

    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
