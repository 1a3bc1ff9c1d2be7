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


@pytest.mark.parametrize(
    "params, words",
    [
        ({"foo": 1}, ["foo", "unknown"]),
        ({"learning_rate": float("nan")}, ["learning_rate", "finite"]),
        ({"learning_rate": float("inf")}, ["learning_rate", "finite"]),
        ({"learning_rate": "abc"}, ["learning_rate", "number"]),
        ({"dense_units": 1_000_000_000}, ["dense_units", "16", "512"]),
        ({"epochs": 0}, ["epochs"]),
        ({"epochs": 100_000}, ["epochs", "500"]),
        ({"epochs": 2.5}, ["epochs", "whole"]),
        ({"filters": True}, ["filters", "whole number"]),
        ({"batch_norm": 1}, ["batch_norm", "False"]),
        ({"activation": "sigmoid"}, ["activation", "relu"]),
        ({"activation": ["relu"]}, ["activation"]),
        ({"kernel_size": "3"}, ["kernel_size"]),
        ({"lstm_units": 64}, ["lstm_units", "image"]),
    ],
)
def test_every_value_is_checked_with_a_one_line_message(params, words):
    from core.search_space import validate_params

    with pytest.raises(ConfigError) as info:
        validate_params(params, "image")
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_valid_values_pass_and_are_normalised():
    from core.search_space import validate_params

    assert validate_params({"filters": 16.0, "weight_decay": 0.0, "epochs": 200, "kernel_size": 5, "batch_norm": False},
                           "image") == {"filters": 16, "weight_decay": 0.0, "epochs": 200, "kernel_size": 5,
                                        "batch_norm": False}
    assert validate_params(defaults("image"), "image") == defaults("image")
    assert validate_params(defaults("text"), "text") == defaults("text")


@pytest.mark.parametrize(
    "ranges, word",
    [({"learning_rate": {"low": float("nan"), "high": 0.01}}, "finite"),
     ({"learning_rate": {"low": 1e-4, "high": float("inf")}}, "finite"),
     ({"filters": {"low": "a", "high": "z"}}, "whole number"),
     ({"filters": {"low": 8.5, "high": 16}}, "whole number"),
     ({"pooling": {"choices": "max"}}, "choose"),
     ({"pooling": {"choices": [["max"]]}}, "not allowed"),
     ({"batch_norm": {"choices": [1]}}, "not allowed"),
     ({"filters": {"low": 8, "high": 16, "step": 2}}, "low"),
     ({"filters": [8, 16]}, "range"),
     ({"filters": None}, "range")],
)
def test_hostile_ranges_are_refused_before_sampling(ranges, word):
    from core.search_space import validate_space

    with pytest.raises(ConfigError, match=word):
        validate_space("image", ["filters", "learning_rate", "pooling", "batch_norm"], ranges)
