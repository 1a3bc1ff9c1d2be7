"""Build a compiled Keras model from a params dict: a CNN for images, an LSTM for text.

Layer names are deterministic (``conv_1``, ``conv_1_act``, ``dense_1`` ...) because the
health probe, the dashboard and the 3D viewer find layers by name.  Every layer whose
units can die (conv channels, dense units, LSTM units) is listed in
:func:`unit_layers` together with the tensor that shows whether its units fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config import ConfigError
from core.search_space import defaults

MAX_FILTERS = 512


@dataclass
class ModelPlan:
    """The resolved architecture: what will be built, and any adjustment made to params."""

    kind: str
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    pool_blocks: list[bool] = field(default_factory=list)  # CNN: which blocks pool


def plan_model(params: dict[str, Any], info: Any) -> ModelPlan:
    """Resolve params against a data set and adjust combinations that cannot work.

    Too many pooling steps for small images (8x8 digits has room for three) are dropped
    from the last blocks, with a note saying so, instead of failing deep in Keras.

    Raises:
        ConfigError: when a value is out of its domain (e.g. negative dropout).
    """
    kind = info.kind
    full = {**defaults(kind), **{k: v for k, v in params.items()}}
    notes: list[str] = []
    for key in ("dropout", "recurrent_dropout"):
        if key in full and not 0.0 <= float(full[key]) < 1.0:
            raise ConfigError(f"{key} must be in [0, 1) (got {full[key]})")
    if float(full.get("learning_rate", 1e-3)) <= 0:
        raise ConfigError("learning_rate must be above 0")
    if int(full.get("batch_size", 64)) < 1:
        raise ConfigError("batch_size must be at least 1")
    plan = ModelPlan(kind=kind, params=full, notes=notes)
    if kind == "image":
        blocks = int(full["conv_blocks"])
        if blocks < 1:
            raise ConfigError("conv_blocks must be at least 1")
        size = min(info.input_shape[0], info.input_shape[1])
        for b in range(blocks):
            # 'same' padding keeps size; pooling halves it. Stop at 2x2 so a 3x3 kernel still sees context.
            can_pool = full["pooling"] != "none" and size // 2 >= 2
            plan.pool_blocks.append(can_pool)
            if can_pool:
                size //= 2
        skipped = sum(1 for p in plan.pool_blocks if not p) if full["pooling"] != "none" else 0
        if skipped:
            notes.append(
                f"pooling skipped in {skipped} of {blocks} blocks: {info.input_shape[0]}x{info.input_shape[1]} "
                f"images cannot be halved that many times"
            )
    elif kind == "text":
        if int(full["lstm_layers"]) < 1:
            raise ConfigError("lstm_layers must be at least 1")
    else:
        raise ConfigError(f"no model family for data kind {kind!r}")
    return plan


def _activation_layer(name: str, activation: str):
    import keras

    if activation == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=name)
    return keras.layers.Activation(activation, name=name)


def build_model(
    params: dict[str, Any],
    info: Any,
    *,
    steps_per_epoch: int = 100,
    epochs: int | None = None,
    compile_model: bool = True,
):
    """Build (and compile) the model for ``params`` on the data set described by ``info``.

    Args:
        params: hyperparameters (missing ones take their defaults).
        info: a ``core.datasets.DatasetInfo``.
        steps_per_epoch, epochs: needed by the cosine and step learning-rate schedules.
        compile_model: compile with the optimizer, schedule and loss.

    Returns:
        A ``keras.Model``; ``model.hpo_notes`` lists adjustments made to params.
    """
    import keras

    plan = plan_model(params, info)
    p = plan.params
    act = p["activation"]
    inputs = keras.Input(shape=tuple(info.input_shape), name="input")
    x = inputs
    if plan.kind == "image":
        filters = int(p["filters"])
        k = int(p["kernel_size"])
        for b, pool in enumerate(plan.pool_blocks, start=1):
            n = min(filters * 2 ** (b - 1), MAX_FILTERS)
            x = keras.layers.Conv2D(n, k, padding="same", use_bias=not p["batch_norm"], name=f"conv_{b}")(x)
            if p["batch_norm"]:
                # momentum 0.9: small data sets give few steps, and 0.99 leaves the moving statistics
                # far from the data after a short run (validation accuracy collapses).
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_{b}")(x)
            x = _activation_layer(f"conv_{b}_act", act)(x)
            if pool:
                pool_cls = keras.layers.MaxPooling2D if p["pooling"] == "max" else keras.layers.AveragePooling2D
                x = pool_cls(2, name=f"pool_{b}")(x)
        if p["head"] == "global_avg":
            x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        else:
            x = keras.layers.Flatten(name="flatten")(x)
        if float(p["dropout"]) > 0:
            x = keras.layers.Dropout(float(p["dropout"]), name="features_dropout")(x)
    else:
        vocab = int(info.vocab_size)
        x = keras.layers.Embedding(vocab, int(p["embedding_dim"]), name="embedding")(x)
        layers = int(p["lstm_layers"])
        for i in range(1, layers + 1):
            last = i == layers
            lstm = keras.layers.LSTM(
                int(p["lstm_units"]),
                return_sequences=not last,
                recurrent_dropout=float(p["recurrent_dropout"]),
                name=f"lstm_{i}",
            )
            if p["bidirectional"]:
                x = keras.layers.Bidirectional(lstm, name=f"bilstm_{i}")(x)
            else:
                x = lstm(x)
        if float(p["dropout"]) > 0:
            x = keras.layers.Dropout(float(p["dropout"]), name="features_dropout")(x)
    for d in range(1, int(p["dense_layers"]) + 1):
        x = keras.layers.Dense(int(p["dense_units"]), name=f"dense_{d}")(x)
        x = _activation_layer(f"dense_{d}_act", act)(x)
        if float(p["dropout"]) > 0:
            x = keras.layers.Dropout(float(p["dropout"]), name=f"dense_{d}_dropout")(x)
    outputs = keras.layers.Dense(info.num_classes, activation="softmax", name="output")(x)
    model = keras.Model(inputs, outputs, name=f"{'cnn' if plan.kind == 'image' else 'lstm'}_{info.name}")
    model.hpo_notes = list(plan.notes)
    if compile_model:
        model.compile(
            optimizer=make_optimizer(p, steps_per_epoch=steps_per_epoch, epochs=epochs or int(p.get("epochs", 10))),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model


def make_optimizer(p: dict[str, Any], *, steps_per_epoch: int, epochs: int):
    """The optimizer with its learning-rate schedule and decoupled weight decay."""
    import keras

    lr0 = float(p["learning_rate"])
    total = max(1, steps_per_epoch * epochs)
    schedule = p.get("lr_schedule", "constant")
    if schedule == "cosine":
        lr: Any = keras.optimizers.schedules.CosineDecay(lr0, decay_steps=total, alpha=0.01)
    elif schedule == "step":
        # halve the rate at each third of training
        bounds = [max(1, total // 3), max(2, 2 * total // 3)]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [lr0, lr0 / 2, lr0 / 4])
    elif schedule in ("constant", "plateau"):
        lr = lr0  # plateau is a callback (training.py) that needs a plain float rate
    else:
        raise ConfigError(f"lr_schedule must be one of constant, cosine, step, plateau (got {schedule!r})")
    wd = float(p.get("weight_decay") or 0.0) or None
    name = p.get("optimizer", "adam")
    if name == "adam":
        return keras.optimizers.Adam(lr, weight_decay=wd)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=wd or 1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, weight_decay=wd)
    raise ConfigError(f"optimizer must be one of adam, adamw, sgd, rmsprop (got {name!r})")


def unit_layers(model) -> list[dict[str, Any]]:
    """Layers whose units can die, with the tensor that shows their firing.

    Returns dicts ``{"name", "layer_type", "units", "output_layer", "activation"}``:
    for conv and dense layers the firing is read after their activation layer
    (``<name>_act``), for LSTMs from the LSTM's own output (tanh of the cell state).
    """
    out = []
    names = {layer.name for layer in model.layers}
    for layer in model.layers:
        cls = type(layer).__name__
        if layer.name == "output":
            continue
        if cls in ("Conv2D", "Dense"):
            act_name = f"{layer.name}_act"
            act_layer = model.get_layer(act_name) if act_name in names else layer
            act = getattr(act_layer, "activation", None)
            act_id = "leaky_relu" if type(act_layer).__name__ == "LeakyReLU" else getattr(act, "__name__", str(act))
            act_id = {"silu": "swish"}.get(act_id, act_id)  # Keras names swish "silu"; keep the user's word
            units = layer.filters if cls == "Conv2D" else layer.units
            out.append({"name": layer.name, "layer_type": "conv2d" if cls == "Conv2D" else "dense",
                        "units": int(units), "output_layer": act_layer.name, "activation": act_id})
        elif cls == "LSTM":
            out.append({"name": layer.name, "layer_type": "lstm", "units": int(layer.units),
                        "output_layer": layer.name, "activation": "tanh"})
        elif cls == "Bidirectional":
            out.append({"name": layer.name, "layer_type": "bilstm", "units": int(layer.forward_layer.units) * 2,
                        "output_layer": layer.name, "activation": "tanh"})
    return out


def describe_layers(model) -> list[dict[str, Any]]:
    """A compact, JSON-friendly summary of the model's layers."""
    rows = []
    for layer in model.layers:
        try:
            shape = list(layer.output.shape)
        except Exception:  # noqa: BLE001 - some layers have no single output
            shape = None
        rows.append({"name": layer.name, "type": type(layer).__name__, "output_shape": shape,
                     "params": int(layer.count_params())})
    return rows
