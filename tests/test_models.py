"""The model builder: CNN for images, LSTM for text, impossible combinations adjusted or refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.tf  # every test here trains or builds a Keras model

from core.config import ConfigError
from core.models import build_model, plan_model, unit_layers
from core.search_space import defaults


@dataclass(frozen=True)
class Info:
    name: str = "t"
    kind: str = "image"
    input_shape: tuple = (8, 8, 1)
    num_classes: int = 10
    vocab_size: int | None = None
    seq_len: int | None = None


def test_default_cnn_builds_and_predicts(clear_keras):
    import numpy as np

    model = build_model(defaults("image"), Info())
    assert model.output_shape == (None, 10)
    assert model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape == (2, 10)
    names = [u["name"] for u in unit_layers(model)]
    assert names == ["conv_1", "conv_2", "dense_1"]


def test_too_many_pooling_steps_are_skipped_with_a_note(clear_keras):
    params = {**defaults("image"), "conv_blocks": 4, "filters": 8}
    plan = plan_model(params, Info())
    assert plan.pool_blocks == [True, True, False, False]  # 8 -> 4 -> 2, then no room
    model = build_model(params, Info())
    assert any("pooling skipped in 2 of 4" in n for n in model.hpo_notes)
    assert sum(type(layer).__name__ == "MaxPooling2D" for layer in model.layers) == 2


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "swish", "tanh"])
def test_every_activation_builds(clear_keras, activation):
    model = build_model({**defaults("image"), "activation": activation, "filters": 8, "dense_units": 16}, Info())
    acts = {u["activation"] for u in unit_layers(model)}
    assert acts == {activation}


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "plateau"])
def test_optimizers_and_schedules_compile(clear_keras, optimizer, schedule):
    model = build_model({**defaults("image"), "optimizer": optimizer, "lr_schedule": schedule, "weight_decay": 1e-4,
                         "filters": 8}, Info(), steps_per_epoch=10, epochs=3)
    assert type(model.optimizer).__name__.lower() == optimizer


def test_global_pooling_head_is_smaller_than_flatten(clear_keras):
    flat = build_model({**defaults("image"), "head": "flatten", "pooling": "none"}, Info())
    gap = build_model({**defaults("image"), "head": "global_avg", "pooling": "none"}, Info())
    assert gap.count_params() < flat.count_params()


def test_lstm_model(clear_keras):
    info = Info(kind="text", input_shape=(20,), num_classes=4, vocab_size=100, seq_len=20)
    model = build_model({**defaults("text"), "lstm_layers": 2, "bidirectional": True, "lstm_units": 8}, info)
    assert model.output_shape == (None, 4)
    kinds = [u["layer_type"] for u in unit_layers(model)]
    assert kinds == ["bilstm", "bilstm", "dense"]


def test_bad_values_are_refused_before_keras(clear_keras):
    with pytest.raises(ConfigError, match="dropout"):
        build_model({**defaults("image"), "dropout": 1.5}, Info())
    with pytest.raises(ConfigError, match="conv_blocks"):
        build_model({**defaults("image"), "conv_blocks": 0}, Info())
    with pytest.raises(ConfigError, match="optimizer"):
        build_model({**defaults("image"), "optimizer": "lbfgs"}, Info())
