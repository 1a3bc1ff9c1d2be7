"""The search space: one definition per knob, suggest() draws within it, bad ranges are refused."""

from __future__ import annotations

import optuna
import pytest

from core.config import ConfigError
from core.search_space import DEFAULT_TUNED, HYPERPARAMETERS, defaults, hyperparameters_for, suggest


def test_every_knob_is_documented_and_defaults_are_in_range():
    for hp in HYPERPARAMETERS.values():
        assert hp.explanation and hp.effect, hp.name
        if hp.kind in ("int", "float") and hp.name != "weight_decay":  # weight decay defaults to off
            assert hp.low <= hp.default <= hp.high, hp.name
        if hp.kind == "categorical":
            assert hp.default in hp.choices, hp.name


def test_kinds_get_their_own_knobs():
    image = {h.name for h in hyperparameters_for("image")}
    text = {h.name for h in hyperparameters_for("text")}
    assert {"conv_blocks", "filters", "kernel_size", "pooling", "batch_norm", "head"} <= image
    assert {"embedding_dim", "lstm_layers", "lstm_units", "bidirectional", "recurrent_dropout"} <= text
    shared = {"optimizer", "learning_rate", "lr_schedule", "batch_size", "epochs", "weight_decay", "activation", "dropout"}
    assert shared <= image and shared <= text
    assert not image & {"lstm_units"} and not text & {"filters"}
    assert set(HYPERPARAMETERS["activation"].choices) == {"relu", "leaky_relu", "elu", "gelu", "swish", "tanh"}
    assert set(HYPERPARAMETERS["optimizer"].choices) == {"adam", "adamw", "sgd", "rmsprop"}


@pytest.mark.parametrize("kind", ["image", "text"])
def test_suggest_stays_in_range_and_returns_full_params(kind):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ranges = {"learning_rate": {"low": 1e-3, "high": 1e-2}, "batch_size": {"choices": [32]}}
    tune = list(DEFAULT_TUNED[kind])
    for _ in range(25):
        trial = study.ask()
        params = suggest(trial, kind, tune=tune, ranges=ranges)
        assert set(params) == set(defaults(kind))
        assert 1e-3 <= params["learning_rate"] <= 1e-2
        assert params["batch_size"] == 32
        assert set(trial.params) == set(tune)
        study.tell(trial, 0.5)


def test_untuned_knobs_take_defaults_or_fixed_values():
    trial = optuna.create_study().ask()
    params = suggest(trial, "image", tune=["filters"], fixed={"activation": "elu"})
    assert params["activation"] == "elu" and params["conv_blocks"] == defaults("image")["conv_blocks"]


@pytest.mark.parametrize(
    "tune, ranges, word",
    [(["nope"], {}, "nope"), (["lstm_units"], {}, "lstm_units"), (["filters"], {"filters": {"low": 2, "high": 8}}, "filters"),
     (["pooling"], {"pooling": {"choices": ["median"]}}, "pooling"), (["pooling"], {"pooling": {"choices": []}}, "pooling")],
)
def test_bad_space_is_refused_with_the_knob_named(tune, ranges, word):
    with pytest.raises(ConfigError, match=word):
        suggest(optuna.create_study().ask(), "image", tune=tune, ranges=ranges)
