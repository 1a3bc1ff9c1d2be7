"""The issue's accuracy floors for the default models, trained for real on real (or embedded) data."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

from core.config import TrialSpec
from core.search_space import defaults
from core.training import run_trial

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
def test_lstm_path_clearly_beats_chance_on_embedded_text(clear_keras):
    result = run_trial(TrialSpec(dataset="synthetic_text", params=defaults("text"), epochs=4, save_model=False))
    assert result.status == "complete", result.error
    chance = 1 / 4
    assert result.test_accuracy >= chance + 0.35, result.test_accuracy  # measured ~0.88 after 5 epochs
    assert {layer.layer_type for layer in result.layers} >= {"lstm"}
    assert result.health["neuron_utilization"] is not None


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="Debian package dataset-fashion-mnist not installed (.ci/run installs it)")
def test_default_cnn_on_real_fashion_mnist_reaches_085(clear_keras):
    result = run_trial(TrialSpec(dataset="fashion_mnist", params=defaults("image"), epochs=5, max_samples=10_000,
                                 save_model=False))
    assert result.status == "complete", result.error
    assert result.test_accuracy >= 0.85, result.test_accuracy
    assert all(v is not None and 0.0 <= v <= 1.0 for v in result.health.values()), result.health
