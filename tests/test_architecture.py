"""core.architecture: layout data from Keras models (no VTK, JSON round trip)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf  # every test here trains or builds a Keras model

from core.health import layer_health

from core.architecture import (
    ArchitectureVisualization,
    LayerVisualization,
    build_architecture,
    export_architecture_json,
    load_architecture_json,
    log_size,
    score_color,
)
from core.config import LayerHealth

ROOT = Path(__file__).resolve().parent.parent
try:
    import keras
except ImportError:  # make test-fast blocks TensorFlow: every test here is marked tf and deselected
    keras = None


# --------------------------------------------------------------------------- small models


def small_cnn() -> "keras.Model":
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_a"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_b"),
            keras.layers.Dropout(0.25, name="drop"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(64, activation="relu", name="dense_wide"),
            keras.layers.Dense(10, activation="softmax", name="dense_out"),
        ],
        name="small_cnn",
    )


def text_lstm() -> "keras.Model":
    return keras.Sequential(
        [
            keras.Input((40,), dtype="int32"),
            keras.layers.Embedding(500, 24, name="embed"),
            keras.layers.LSTM(16, return_sequences=True, name="lstm_a"),
            keras.layers.Bidirectional(keras.layers.LSTM(8, name="lstm_inner"), name="bi"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ],
        name="text_lstm",
    )


def mixed_model() -> "keras.Model":
    """Branches, a merge, global pooling and a nested Sequential block."""
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    y = keras.layers.Conv2D(8, 1, name="c2")(x)
    x = keras.layers.Add(name="merge")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    head = keras.Sequential(
        [keras.layers.Dense(12, activation="relu", name="h1"), keras.layers.LayerNormalization(name="ln")],
        name="head",
    )
    x = head(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inp, out, name="mixed")


@pytest.fixture(autouse=True)
def _clear_session():
    yield
    keras.backend.clear_session(free_memory=False)  # gc.collect() per test costs ~0.5 s


def types(arch: ArchitectureVisualization) -> list[str]:
    return [lay.layer_type for lay in arch.layers]


def assert_strictly_increasing_z(arch: ArchitectureVisualization) -> None:
    zs = [lay.position_z for lay in arch.layers]
    assert all(b > a for a, b in zip(zs, zs[1:])), zs
    # no overlap: each layer starts after the previous one ends
    for a, b in zip(arch.layers, arch.layers[1:]):
        assert b.position_z - b.depth / 2 > a.position_z + a.depth / 2


# --------------------------------------------------------------------------- layouts


def test_cnn_layout_follows_tensors():
    model = small_cnn()
    arch = build_architecture(model, performance_score=0.9)

    assert arch.architecture_type == "CNN"
    assert types(arch) == ["input", "conv", "normalization", "pooling", "conv", "dropout", "flatten", "dense", "dense"]
    assert arch.model_depth == len(arch.layers) == 9
    assert arch.total_parameters == model.count_params()
    assert sum(lay.parameters for lay in arch.layers) == model.count_params()
    assert_strictly_increasing_z(arch)

    by = {lay.name: lay for lay in arch.layers}
    assert by["conv_a"].filters == 16 and by["conv_a"].kernel_size == (3, 3)
    assert by["conv_a"].output_shape == (26, 26, 16)
    assert by["conv_a"].activation == "relu"
    assert by["pool"].kernel_size == (2, 2)
    # more filters -> deeper; pooling halves the map -> narrower; more units -> taller
    assert by["conv_b"].depth > by["conv_a"].depth
    assert by["pool"].width < by["conv_a"].width and by["pool"].height < by["conv_a"].height
    assert by["dense_wide"].units == 64 and by["dense_out"].units == 10
    assert by["dense_wide"].height > by["dense_out"].height
    # spatial W x H as width x height, channels as depth
    assert by["conv_a"].width == pytest.approx(log_size(26), abs=1e-3)
    assert by["conv_a"].depth == pytest.approx(log_size(16), abs=1e-3)
    # thin but visible; auxiliary layers are see-through
    for name in ("bn", "drop", "flat"):
        assert 0.1 <= by[name].depth < by["conv_a"].depth
    assert by["drop"].opacity < by["conv_a"].opacity and by["bn"].opacity < 1.0
    assert arch.max_layer_width == max(lay.width for lay in arch.layers)
    assert arch.max_layer_height == max(lay.height for lay in arch.layers)
    assert len({lay.layer_id for lay in arch.layers}) == len(arch.layers)


def test_lstm_text_layout():
    model = text_lstm()
    arch = build_architecture(model, performance_score=0.7)

    assert arch.architecture_type == "LSTM"
    assert types(arch) == ["input", "embedding", "lstm", "lstm", "dense"]
    assert arch.total_parameters == model.count_params()
    assert sum(lay.parameters for lay in arch.layers) == model.count_params()
    assert_strictly_increasing_z(arch)

    by = {lay.name: lay for lay in arch.layers}
    emb, lstm, bi = by["embed"], by["lstm_a"], by["bi"]
    # embedding: sequence length x embedding width
    assert emb.width == pytest.approx(log_size(40), abs=1e-3)
    assert emb.height == pytest.approx(log_size(24), abs=1e-3)
    assert lstm.units == 16 and lstm.directions == 1 and lstm.activation == "tanh"
    assert bi.units == 8 and bi.directions == 2 and bi.output_shape == (16,)
    assert bi.depth > lstm.depth  # two directions
    assert lstm.height > bi.height  # 16 units vs 8 per direction
    assert lstm.width == pytest.approx(log_size(40), abs=1e-3)  # sequence length


def test_mixed_model_with_branches_and_nested_block():
    model = mixed_model()
    arch = build_architecture(model)

    assert arch.architecture_type == "CNN"
    names = [lay.name for lay in arch.layers]
    assert names == ["image", "c1", "c2", "merge", "gap", "h1", "ln", "out"]  # nested block opened
    assert types(arch) == ["input", "conv", "conv", "merge", "global_pooling", "dense", "normalization", "dense"]
    assert arch.total_parameters == model.count_params()
    assert sum(lay.parameters for lay in arch.layers) == model.count_params()
    assert_strictly_increasing_z(arch)
    assert arch.performance_score is None
    assert all(lay.color_intensity == 0.5 for lay in arch.layers)  # nothing known: neutral


def test_log_scale_keeps_tiny_and_huge_layers_comparable():
    tiny = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same", name="t")])
    huge = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Conv2D(512, 3, padding="same", name="h"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4096, name="fc"),
        ]
    )
    t = build_architecture(tiny).layer("t")
    big = build_architecture(huge)
    h, fc = big.layer("h"), big.layer("fc")
    for lay in (t, h, fc):
        assert 0.5 < min(lay.width, lay.height, lay.depth) and max(lay.width, lay.height, lay.depth) < 10
    assert h.width > t.width and h.depth > t.depth
    assert 1.5 < h.width / t.width < 5  # bigger, but on the same screen
    assert fc.height / log_size(10) < 4


# --------------------------------------------------------------------------- health, colours


def test_layer_health_matched_by_name():
    model = small_cnn()
    health = [
        LayerHealth(name="dense_wide", layer_type="dense", units=64, dead_fraction=0.5, grad_norm=0.02,
                    gradient_score=1.0, update_ratio=3e-3),
        {"name": "conv_a", "layer_type": "conv", "units": 16, "dead_fraction": 0.0, "grad_norm": 1e-9,
         "gradient_score": 0.2, "update_ratio": 4e-6},
        {"name": "not_a_layer", "dead_fraction": 1.0},
    ]
    arch = build_architecture(model, performance_score=0.8, health_score=0.6, layer_health=health)
    by = {lay.name: lay for lay in arch.layers}

    assert by["dense_wide"].dead_fraction == 0.5 and by["dense_wide"].grad_norm == 0.02
    assert by["dense_wide"].color_intensity == pytest.approx(0.5)  # 1 - dead share
    assert by["conv_a"].grad_norm == 1e-9 and by["conv_a"].update_ratio == 4e-6
    assert by["conv_a"].color_intensity == pytest.approx(0.2)  # stalled: its gradient score
    assert by["dense_out"].dead_fraction is None and by["dense_out"].color_intensity == pytest.approx(0.8)
    assert by["dense_wide"].health == layer_health(0.5, 1.0)


def test_bidirectional_matches_wrapper_or_inner_name():
    arch = build_architecture(text_lstm(), layer_health=[{"name": "lstm_inner", "dead_fraction": 0.25}])
    assert arch.layer("bi").dead_fraction == 0.25


def test_colours_follow_scores():
    assert score_color(0.0) == "#d32f2f"
    assert score_color(0.5) == "#ffb300"
    assert score_color(1.0) == "#388e3c"
    assert score_color(None) == score_color(float("nan")) == "#9e9e9e"
    assert score_color(-3) == score_color(0) and score_color(7) == score_color(1)

    model = small_cnn()
    good = build_architecture(model, performance_score=0.95, health_score=0.9)
    poor = build_architecture(model, performance_score=0.2, health_score=0.1)
    assert good.performance_color != poor.performance_color
    assert good.health_color != poor.health_color
    assert good.performance_color.startswith("#") and len(good.performance_color) == 7
    assert [lay.color_intensity for lay in good.layers] != [lay.color_intensity for lay in poor.layers]


# --------------------------------------------------------------------------- JSON, files


def test_json_round_trip_and_export():
    arch = build_architecture(
        text_lstm(), performance_score=0.75, health_score=0.5,
        layer_health=[{"name": "lstm_a", "dead_fraction": 0.1, "grad_norm": float("nan")}],
    )
    again = ArchitectureVisualization.from_json(arch.to_json())
    assert again == arch
    assert isinstance(again.layers[0], LayerVisualization)
    assert again.layer("lstm_a").grad_norm is None  # NaN is "not measured"

    text = export_architecture_json(
        arch, {"study": "demo", "trial": 3, "metrics": {"val_accuracy": 0.75, "val_loss": float("inf")}}
    )
    data = json.loads(text)  # strict JSON: no NaN/Infinity tokens
    assert data["metadata"]["study"] == "demo" and data["metadata"]["trial"] == 3
    assert data["metadata"]["metrics"] == {"val_accuracy": 0.75, "val_loss": None}
    assert data["metadata"]["timestamp"]
    assert data["architecture"]["performance_color"] == arch.performance_color
    assert data["architecture"]["health_color"] == arch.health_color
    assert len(data["architecture"]["layers"]) == arch.model_depth
    for key in ("layer_id", "layer_type", "position_z", "width", "height", "depth", "parameters", "filters",
                "kernel_size", "units", "color_intensity", "opacity"):
        assert key in data["architecture"]["layers"][0]
    loaded, meta = load_architecture_json(text)
    assert loaded == arch and meta["trial"] == 3


def test_build_from_saved_keras_file(tmp_path):
    model = small_cnn()
    path = tmp_path / "best.keras"
    model.save(path)
    from_file = build_architecture(path, performance_score=0.5)
    from_model = build_architecture(model, performance_score=0.5)
    assert types(from_file) == types(from_model)
    assert [lay.name for lay in from_file.layers] == [lay.name for lay in from_model.layers]
    assert from_file.total_parameters == model.count_params()
    assert build_architecture(str(path)).model_depth == from_model.model_depth
    with pytest.raises(FileNotFoundError):
        build_architecture(tmp_path / "missing.keras")


def test_module_imports_no_vtk_and_no_tensorflow():
    code = (
        "import sys, json\n"
        "from core.architecture import ArchitectureVisualization, LayerVisualization\n"
        "a = ArchitectureVisualization('Generic', [LayerVisualization('00_x', 'dense', 0.0, 1, 2, 1, 10)])\n"
        "ArchitectureVisualization.from_json(a.to_json())\n"
        "print(json.dumps([m in sys.modules for m in ('vtkmodules', 'pyvista', 'tensorflow', 'keras')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False, False, False]


def test_layer_health_rules():
    """One definition (core.health.layer_health): the worse of the live-unit share and the gradient score."""
    assert layer_health(None, None) is None
    assert layer_health(0.2, None) == pytest.approx(0.8)
    assert layer_health(None, 0.7) == pytest.approx(0.7)
    assert layer_health(0.1, 0.5) == pytest.approx(0.5)
    assert layer_health(0.6, 1.0) == pytest.approx(0.4)
    assert layer_health(0.0, math.inf) is None or layer_health(0.0, math.inf) == 1.0
