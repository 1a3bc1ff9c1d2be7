"""A network's architecture as plain 3D layout data: what the viewer and the exports draw.

:func:`build_architecture` turns a ``keras.Model`` (or a saved ``.keras`` file) into an
:class:`ArchitectureVisualization`: one :class:`LayerVisualization` per layer with a position along
the network axis (``position_z``), a box size that follows the tensor the layer produces, a colour
intensity and an opacity.  It is pure data: JSON round-trips, no VTK/PyVista here (``core.scene``
draws it), and Keras is imported only inside the functions that need a model, so the UI can read an
exported architecture without paying for TensorFlow.

Coordinates (world units, shared with ``core.scene``):

* ``z`` runs along the network, input first; ``position_z`` is a layer's centre.
* ``width`` is the x extent, ``height`` the y extent, ``depth`` the z extent.
* Conv / pooling: spatial W x H as width x height, channels as depth (a stack of feature maps).
  Dense: units as a tall column.  LSTM/GRU/RNN: units as height, sequence length as width,
  directions as depth.  Embedding: sequence length x embedding width.  Flatten, dropout,
  normalisation and global pooling are thin but visible.
* Sizes use :func:`log_size` (``0.25 + 0.5 * log2(1 + n)``) so an 8x8x1 map and a 224x224x512 one,
  or 10 and 4096 dense units, are both visible on one screen and still ordered by size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from core import health as _health

__all__ = [
    "ARCHITECTURE_TYPES",
    "AUXILIARY_TYPES",
    "LayerVisualization",
    "ArchitectureVisualization",
    "build_architecture",
    "export_architecture_json",
    "load_architecture_json",
    "score_color",
    "log_size",
]

ARCHITECTURE_TYPES = ("CNN", "LSTM", "Generic")
# Layers that reshape or regularise but hold no learned feature of their own: drawn see-through.
AUXILIARY_TYPES = frozenset({"dropout", "normalization"})
RECURRENT_TYPES = frozenset({"lstm", "gru", "rnn"})

# Layout constants, in world units.
LAYER_GAP = 1.0  # empty space between two consecutive layers along z
THIN = 0.18  # extent of a layer that has no size of its own along an axis (dropout, norm, flatten)
COLUMN = 0.6  # cross-section of a dense column
SCHEMA = "hpo-studio.architecture/1"

# Red -> amber -> green; the same three stops the health dashboard uses for bad / fair / good.
_RED, _AMBER, _GREEN = (0xD3, 0x2F, 0x2F), (0xFF, 0xB3, 0x00), (0x38, 0x8E, 0x3C)
_UNKNOWN_COLOR = "#9e9e9e"


# --------------------------------------------------------------------------- helpers


def log_size(n: float | int | None) -> float:
    """World-unit extent for a tensor dimension of ``n`` (log scale, >= 0.75 for n >= 1).

    Logarithmic so a 4096-unit layer is ~3x a 10-unit one rather than 400x: both stay on screen,
    and a bigger dimension is still always drawn bigger.
    """
    if n is None or not isinstance(n, (int, float)) or not math.isfinite(n) or n <= 0:
        return 0.75  # unknown dimension (None in a shape): the size of 1, visible
    return 0.25 + 0.5 * math.log2(1.0 + float(n))


def score_color(score: float | None) -> str:
    """Hex colour for a score in [0, 1] on a red (0) -> amber (0.5) -> green (1) scale.

    ``None`` or NaN (not measured) is a neutral grey, so "unknown" never reads as "bad".
    """
    if score is None or not math.isfinite(float(score)):
        return _UNKNOWN_COLOR
    s = min(1.0, max(0.0, float(score)))
    lo, hi, t = (_RED, _AMBER, s / 0.5) if s <= 0.5 else (_AMBER, _GREEN, (s - 0.5) / 0.5)
    rgb = (round(a + (b - a) * t) for a, b in zip(lo, hi))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _clean(value: Any) -> Any:
    """Plain JSON value: tuples to lists, numpy scalars to Python, NaN/Inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; None reads as "not measured"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --------------------------------------------------------------------------- data


@dataclass
class LayerVisualization:
    """One layer as the 3D view draws it (the brief's fields, plus what the viewer shows on hover).

    Attributes:
        layer_id: Unique, stable id (``"03_conv2d_1"``); the scene names this layer's mesh by it.
        layer_type: Kind of layer: input, conv, pooling, global_pooling, dense, lstm, gru, rnn,
            embedding, flatten, dropout, normalization, reshape, merge, activation or other.
        position_z: Centre of the layer along the network axis.
        width: Extent along x.
        height: Extent along y.
        depth: Extent along z (the network axis).
        parameters: Trainable + non-trainable parameter count of the layer.
        filters: Conv filters / output channels, else None.
        kernel_size: Conv or pooling window, else None.
        units: Dense / recurrent units (per direction for a bidirectional layer), else None.
        color_intensity: Colour value in [0, 1]: the layer's own health when measured, else the
            model's performance.
        opacity: 1 for layers that hold features, lower for auxiliary ones.
        name: The Keras layer name (what per-layer health figures are keyed by).
        output_shape: Output shape without the batch axis; None entries are unknown (sequence length).
        activation: Activation name where the layer has one.
        dead_fraction: Share of units that carry no signal (``core.health.dead_units``), if measured.
        grad_norm: L2 norm of this layer's gradient on a fixed batch (last measured epoch), if measured.
        gradient_score: This layer's gradient health in [0, 1] (``core.health.layer_gradient_scores``).
        update_ratio: How far the layer's weights move per training step, relative to their size.
        dead_label: What "dead" means for this layer's activation, in words.
    """

    layer_id: str
    layer_type: str
    position_z: float
    width: float
    height: float
    depth: float
    parameters: int
    filters: int | None = None
    kernel_size: tuple[int, ...] | None = None
    units: int | None = None
    color_intensity: float = 0.5
    opacity: float = 1.0
    name: str = ""
    output_shape: tuple[int | None, ...] | None = None
    activation: str | None = None
    dead_fraction: float | None = None
    grad_norm: float | None = None
    gradient_score: float | None = None
    update_ratio: float | None = None
    dead_label: str | None = None

    @property
    def health(self) -> float | None:
        """This layer's own health score (``core.health.layer_health``), or None when nothing was measured."""
        return _health.layer_health(self.dead_fraction, self.gradient_score)

    @property
    def directions(self) -> int:
        """2 for a bidirectional recurrent layer (its output is twice its units), else 1."""
        if self.layer_type in RECURRENT_TYPES and self.units and self.output_shape:
            last = self.output_shape[-1]
            if isinstance(last, int) and last == 2 * self.units:
                return 2
        return 1

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _clean(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LayerVisualization":
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("kernel_size", "output_shape"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


@dataclass
class ArchitectureVisualization:
    """A whole network as the 3D view draws it.

    Attributes:
        architecture_type: "CNN", "LSTM" or "Generic".
        layers: Layers in drawing order (input first), ``position_z`` increasing.
        total_parameters: Equal to ``model.count_params()``.
        model_depth: Number of drawn layers (``len(layers)``, the input included).
        max_layer_width: Largest layer width; scaling reference for the camera and labels.
        max_layer_height: Largest layer height.
        performance_score: Model accuracy in [0, 1], or None if not known.
        health_score: Composite health in [0, 1], or None if not measured.
    """

    architecture_type: str
    layers: list[LayerVisualization] = field(default_factory=list)
    total_parameters: int = 0
    model_depth: int = 0
    max_layer_width: float = 0.0
    max_layer_height: float = 0.0
    performance_score: float | None = None
    health_score: float | None = None

    @property
    def performance_color(self) -> str:
        """Hex colour of the performance score (red -> amber -> green; grey when unknown)."""
        return score_color(self.performance_score)

    @property
    def health_color(self) -> str:
        """Hex colour of the health score (red -> amber -> green; grey when unknown)."""
        return score_color(self.health_score)

    @property
    def length(self) -> float:
        """Extent of the whole network along z."""
        if not self.layers:
            return 0.0
        first, last = self.layers[0], self.layers[-1]
        return (last.position_z + last.depth / 2) - (first.position_z - first.depth / 2)

    def layer(self, key: str) -> LayerVisualization:
        """The layer whose ``layer_id`` or Keras ``name`` is ``key`` (KeyError if none)."""
        for lay in self.layers:
            if key in (lay.layer_id, lay.name):
                return lay
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = [lay.to_dict() for lay in value] if f.name == "layers" else _clean(value)
        # Derived, but handy to a consumer that has no colour scale of its own (the brief's JSON has them).
        data["performance_color"] = self.performance_color
        data["health_color"] = self.health_color
        return data

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchitectureVisualization":
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}  # drops the derived colours
        kwargs["layers"] = [LayerVisualization.from_dict(d) for d in data.get("layers", [])]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "ArchitectureVisualization":
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------- keras -> layout

_CLASS_TYPES: dict[str, str] = {
    "InputLayer": "input",
    "Dense": "dense",
    "EinsumDense": "dense",
    "LSTM": "lstm",
    "GRU": "gru",
    "SimpleRNN": "rnn",
    "ConvLSTM1D": "lstm",
    "ConvLSTM2D": "lstm",
    "ConvLSTM3D": "lstm",
    "Embedding": "embedding",
    "Flatten": "flatten",
    "Reshape": "reshape",
    "Permute": "reshape",
    "RepeatVector": "reshape",
    "Activation": "activation",
    "ReLU": "activation",
    "LeakyReLU": "activation",
    "PReLU": "activation",
    "ELU": "activation",
    "Softmax": "activation",
    "Add": "merge",
    "Subtract": "merge",
    "Multiply": "merge",
    "Average": "merge",
    "Maximum": "merge",
    "Minimum": "merge",
    "Concatenate": "merge",
    "Dot": "merge",
}


def _classify(class_name: str) -> str:
    if class_name in _CLASS_TYPES:
        return _CLASS_TYPES[class_name]
    if class_name.startswith("Global") and "Pooling" in class_name:
        return "global_pooling"
    if "Pooling" in class_name:
        return "pooling"
    if "Conv" in class_name:  # Conv1D/2D/3D, SeparableConv, DepthwiseConv, Conv2DTranspose
        return "conv"
    if "Dropout" in class_name or class_name in ("GaussianNoise", "ActivityRegularization"):
        return "dropout"
    if "Normalization" in class_name:
        return "normalization"
    return "other"


def _shape(tensor_or_shape: Any) -> tuple[int | None, ...] | None:
    """Shape without the batch axis, as plain ints/None; None if it cannot be read."""
    shape = getattr(tensor_or_shape, "shape", tensor_or_shape)
    if shape is None:
        return None
    try:
        dims = tuple(None if d is None else int(d) for d in tuple(shape))
    except (TypeError, ValueError):
        return None
    return dims[1:]


def _layer_shapes(layer: Any) -> tuple[tuple[int | None, ...] | None, tuple[int | None, ...] | None]:
    """(input shape, output shape) of a layer built inside a functional graph; Nones if unbuilt."""
    out_shape = in_shape = None
    try:
        out = layer.output
        out_shape = _shape(out[0] if isinstance(out, (list, tuple)) else out)
    except (AttributeError, ValueError, RuntimeError, IndexError):
        pass
    try:
        inp = layer.input
        in_shape = _shape(inp[0] if isinstance(inp, (list, tuple)) else inp)
    except (AttributeError, ValueError, RuntimeError, IndexError):
        pass
    return in_shape, out_shape


def _flatten_layers(model: Any) -> list[Any]:
    """All leaf layers in graph order; nested models are opened so their layers are drawn too."""
    import keras

    leaves: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model) and getattr(layer, "layers", None):
            leaves.extend(lay for lay in _flatten_layers(layer) if type(lay).__name__ != "InputLayer")
        else:
            leaves.append(layer)
    return leaves


def _input_layers(model: Any, leaves: list[Any]) -> list[tuple[str, tuple[int | None, ...] | None]]:
    """(name, shape) of each model input; a Sequential model does not list its InputLayer."""
    if any(type(lay).__name__ == "InputLayer" for lay in leaves):
        return []
    try:
        inputs = model.inputs or []
    except (AttributeError, ValueError):
        inputs = []
    # The tensors are called "keras_tensor_N"; a reader wants "input".
    return [("input" if len(inputs) == 1 else f"input_{i}", _shape(t)) for i, t in enumerate(inputs)]


def _ints(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value,)
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        return None


def _size_for(
    layer_type: str,
    in_shape: tuple[int | None, ...] | None,
    out_shape: tuple[int | None, ...] | None,
    units: int | None,
    directions: int,
) -> tuple[float, float, float]:
    """(width, height, depth) that follow the tensor the layer stands for (see module docstring)."""
    shape = tuple(out_shape or ())
    last = shape[-1] if shape else units

    def spatial(s: tuple[int | None, ...]) -> tuple[float, float, float]:
        # (H, W, C), (T, C) or (D, H, W, C): W x H face, channels along z.
        if len(s) >= 3:
            return log_size(s[-2]), log_size(s[-3]), log_size(s[-1])
        if len(s) == 2:  # 1D conv/pooling: steps as height, one column wide
            return log_size(1), log_size(s[0]), log_size(s[1])
        return COLUMN, log_size(s[0] if s else None), COLUMN

    if layer_type in ("conv", "pooling", "input"):
        if layer_type == "input" and len(shape) <= 1:
            # a token-id sequence or a feature vector: a thin sheet, as long as the sequence
            return THIN, log_size(shape[0] if shape else None), THIN * 2
        w, h, d = spatial(shape)
        return (w, h, max(THIN * 2, d * 0.6)) if layer_type == "input" else (w, h, d)
    if layer_type == "dense":
        if len(shape) >= 2:  # dense applied per time step: sequence as width
            return log_size(shape[-2]), log_size(last), COLUMN
        return COLUMN, log_size(last), COLUMN
    if layer_type in RECURRENT_TYPES:
        seq = in_shape[0] if in_shape and len(in_shape) >= 2 else None
        return log_size(seq), log_size(units or last), 0.8 * directions
    if layer_type == "embedding":
        seq = shape[0] if len(shape) >= 2 else None
        return log_size(seq), log_size(last), THIN * 3
    if layer_type in ("dropout", "normalization", "activation"):
        # same cross-section as the tensor passing through, thin along z
        if len(shape) >= 2:
            w, h, _ = spatial(shape)
            if len(shape) == 2:  # (T, C) sequence: T wide, C high
                w, h = log_size(shape[0]), log_size(shape[1])
            return w, h, THIN
        return COLUMN * 0.9, log_size(last), THIN
    if layer_type == "flatten":
        return THIN * 1.5, log_size(last), THIN * 1.5
    if layer_type == "global_pooling":  # drawn as a funnel: needs some length to read as one
        return THIN * 1.5, log_size(last), 0.8
    if layer_type == "reshape":
        w, h, d = spatial(shape)
        return w, h, min(d, THIN * 2)
    if layer_type == "merge":
        s = log_size(last) * 0.5
        return s, s, s
    w, h, d = spatial(shape) if shape else (COLUMN, COLUMN, COLUMN)
    return w, h, d


def _health_lookup(layer_health: Iterable[Any] | None) -> dict[str, dict[str, Any]]:
    """Per-layer health records keyed by layer name; accepts dicts or LayerHealth-like objects."""
    table: dict[str, dict[str, Any]] = {}
    for item in layer_health or []:
        if isinstance(item, Mapping):
            rec = dict(item)
        else:
            rec = {k: getattr(item, k, None) for k in ("name", "layer_type", "units", "dead_fraction", "grad_norm",
                                                       "gradient_score", "update_ratio", "dead_label")}
        if rec.get("name"):
            table[str(rec["name"])] = rec
    return table


def _architecture_type(layers: Sequence[LayerVisualization], class_names: Sequence[str]) -> str:
    # Image convolutions make it a CNN even with a recurrent head (a CRNN reads as an image model);
    # otherwise any recurrent layer makes it an LSTM-style sequence model.
    if any(c.startswith(("Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D")) for c in class_names):
        return "CNN"
    if any(lay.layer_type in RECURRENT_TYPES for lay in layers):
        return "LSTM"
    if any(lay.layer_type == "conv" for lay in layers):
        return "CNN"
    return "Generic"


def _opacity(layer_type: str) -> float:
    if layer_type == "dropout":
        return 0.3
    if layer_type == "normalization":
        return 0.45
    if layer_type in ("input", "flatten", "reshape", "activation"):
        return 0.6
    return 1.0


def _load_model(model_or_path: Any) -> Any:
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.exists():
            raise FileNotFoundError(f"no model file at {path}")
        import keras

        # compile=False: the layout needs the graph, not the optimizer (and loads faster)
        return keras.models.load_model(path, compile=False)
    return model_or_path


def build_architecture(
    model_or_path: Any,
    *,
    performance_score: float | None = None,
    health_score: float | None = None,
    layer_health: Iterable[Any] | None = None,
) -> ArchitectureVisualization:
    """Lay out a Keras model for the 3D view.

    Args:
        model_or_path: A built ``keras.Model`` or the path of a ``.keras`` file.
        performance_score: Model accuracy in [0, 1] (colours the model, and the layers that have
            no health figures of their own).
        health_score: Composite health in [0, 1].
        layer_health: Per-layer figures, as dicts or ``core.config.LayerHealth`` objects with
            ``name``, ``layer_type``, ``units``, ``dead_fraction`` and ``grad_norm``; matched to
            layers by Keras layer name (a bidirectional wrapper also matches its inner layer's name).

    Returns:
        The layout: input first, ``position_z`` strictly increasing, parameters summing to
        ``model.count_params()``.

    Raises:
        FileNotFoundError: ``model_or_path`` is a path that does not exist.
        ValueError: the model is not built (it has no layers with known shapes and no parameters).
    """
    model = _load_model(model_or_path)
    health_by_name = _health_lookup(layer_health)
    perf = _opt_float(performance_score)
    composite = _opt_float(health_score)
    fallback_intensity = perf if perf is not None else composite if composite is not None else 0.5

    leaves = _flatten_layers(model)
    if not getattr(model, "built", True):
        raise ValueError("the model is not built: call it on data or build(input_shape) first")

    # (name, class name, layer or None, in shape, out shape)
    entries: list[tuple[str, str, Any, Any, Any]] = []
    for name, shape in _input_layers(model, leaves):
        entries.append((name, "InputLayer", None, None, shape))
    for layer in leaves:
        in_shape, out_shape = _layer_shapes(layer)
        if type(layer).__name__ == "InputLayer" and out_shape is None:
            out_shape = _shape(getattr(layer, "batch_shape", None))
        entries.append((layer.name, type(layer).__name__, layer, in_shape, out_shape))

    layers: list[LayerVisualization] = []
    class_names: list[str] = []
    seen_ids: set[str] = set()
    for index, (name, class_name, layer, in_shape, out_shape) in enumerate(entries):
        inner = None
        if class_name in ("Bidirectional", "TimeDistributed"):
            inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
        wrapped = inner is not None
        inner_class = type(inner).__name__ if wrapped else class_name
        layer_type = _classify(inner_class)
        class_names.append(inner_class)
        config: dict[str, Any] = {}
        if layer is not None:
            try:
                config = (inner if wrapped else layer).get_config()
            except Exception:  # a custom layer without get_config is still drawn
                config = {}

        filters = config.get("filters") if layer_type == "conv" else None
        if layer_type == "conv" and filters is None and out_shape:
            filters = out_shape[-1]  # depthwise conv: channels out
        kernel = _ints(config.get("kernel_size") or config.get("pool_size"))
        units = config.get("units")
        if layer_type == "embedding":
            units = None
        directions = 2 if class_name == "Bidirectional" else 1
        if directions == 2 and config.get("merge_mode", None) not in (None, "concat"):
            directions = 1  # sum/mul/ave merge: the output is one direction wide

        width, height, depth = _size_for(layer_type, in_shape, out_shape, units, directions)
        params = int(layer.count_params()) if layer is not None and layer.built else 0

        rec = health_by_name.get(name, {})
        if not rec and wrapped:  # Keras 3 names a Bidirectional's copy "forward_<inner name>"
            inner_name = str(inner.name)
            rec = health_by_name.get(inner_name) or health_by_name.get(inner_name.removeprefix("forward_")) or {}
        dead, grad = _opt_float(rec.get("dead_fraction")), _opt_float(rec.get("grad_norm"))
        grad_score, update = _opt_float(rec.get("gradient_score")), _opt_float(rec.get("update_ratio"))
        own_health = _health.layer_health(dead, grad_score)
        activation = config.get("activation")

        layer_id = f"{index:02d}_{name}"
        while layer_id in seen_ids:  # names repeat only across nested models; keep ids unique
            layer_id += "_"
        seen_ids.add(layer_id)
        layers.append(
            LayerVisualization(
                layer_id=layer_id,
                layer_type=layer_type,
                position_z=0.0,  # placed below, once every depth is known
                width=round(width, 4),
                height=round(height, 4),
                depth=round(depth, 4),
                parameters=params,
                filters=int(filters) if filters is not None else None,
                kernel_size=kernel if layer_type in ("conv", "pooling") else None,
                units=int(units) if units is not None else None,
                color_intensity=round(own_health if own_health is not None else fallback_intensity, 4),
                opacity=_opacity(layer_type),
                name=name,
                output_shape=out_shape,
                activation=str(activation) if isinstance(activation, str) else None,
                dead_fraction=dead,
                grad_norm=grad,
                gradient_score=grad_score,
                update_ratio=update,
                dead_label=rec.get("dead_label") if isinstance(rec.get("dead_label"), str) else None,
            )
        )

    # Centres along z: each layer starts a fixed gap after the previous one ends, so the spacing
    # grows with the layers' own depth and nothing overlaps.
    z = 0.0
    for i, lay in enumerate(layers):
        if i:
            z += layers[i - 1].depth / 2 + LAYER_GAP + lay.depth / 2
        lay.position_z = round(z, 4)

    return ArchitectureVisualization(
        architecture_type=_architecture_type(layers, class_names),
        layers=layers,
        total_parameters=int(model.count_params()),
        model_depth=len(layers),
        max_layer_width=max((lay.width for lay in layers), default=0.0),
        max_layer_height=max((lay.height for lay in layers), default=0.0),
        performance_score=perf,
        health_score=composite,
    )


# --------------------------------------------------------------------------- JSON export


def export_architecture_json(arch: ArchitectureVisualization, metadata: Mapping[str, Any] | None = None) -> str:
    """The downloadable JSON: ``{"schema", "metadata", "architecture"}``.

    Args:
        arch: The layout to export.
        metadata: Anything that identifies the picture; ``study``, ``trial``, ``metrics`` (a dict)
            and ``timestamp`` are always present in the output (``timestamp`` defaults to now, UTC,
            ISO 8601; the others to None / {}).  Other keys are kept as they are.

    Returns:
        Indented JSON text; ``architecture`` is :meth:`ArchitectureVisualization.to_dict`, so
        ``ArchitectureVisualization.from_dict(json.loads(text)["architecture"])`` reads it back.
    """
    meta: dict[str, Any] = {"study": None, "trial": None, "metrics": {}, "timestamp": None}
    meta.update(dict(metadata or {}))
    if not meta.get("timestamp"):
        meta["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    elif isinstance(meta["timestamp"], datetime):
        meta["timestamp"] = meta["timestamp"].isoformat(timespec="seconds")
    payload = {"schema": SCHEMA, "metadata": _clean(meta), "architecture": arch.to_dict()}
    return json.dumps(payload, indent=2)


def load_architecture_json(text: str) -> tuple[ArchitectureVisualization, dict[str, Any]]:
    """Read :func:`export_architecture_json` output (or a bare ``to_json``) back: (arch, metadata)."""
    data = json.loads(text)
    if "architecture" in data:
        return ArchitectureVisualization.from_dict(data["architecture"]), dict(data.get("metadata") or {})
    return ArchitectureVisualization.from_dict(data), {}
