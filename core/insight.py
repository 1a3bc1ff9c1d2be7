"""What a trained model does with its inputs, kept small at training time (issue 14).

``run_trial`` calls :func:`collect` while the model is in memory and :func:`save` writes the
result beside ``result.json`` as ``insight.npz`` (``core.paths.INSIGHT_FILE``).  The UI reads
it back with :func:`load` and never imports TensorFlow: this module imports only numpy at
module level (``collect`` imports keras inside).

What is kept, per trial (all on the *test* split):

- the confusion matrix (rows: true class, columns: predicted class) and so per-class accuracy;
- a few **examples**: fixed probe examples (the same test indices for every trial of a data set,
  so trials can be compared on the same inputs) and up to ``MAX_MISCLASSIFIED`` misclassified
  ones, each with its input (an image, or the decoded words of a text), true and predicted class,
  and the model's output probabilities;
- for each example, each unit layer's output (``core.models.unit_layers``: conv feature maps,
  dense activations, an LSTM's hidden state over the tokens), quantised to 8 bits;
- per unit layer, which units the health metrics call dead (``core.health.dead_units``, the same
  definition as neuron utilisation, on the same held-out probe batch) and which are saturated;
- the first conv layer's learned filters.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Probe examples per data set (fixed test indices, one per class while classes last).
N_PROBES = 6
#: Misclassified test examples kept per trial (the most confident mistakes first).
MAX_MISCLASSIFIED = 12
#: Feature-map channels kept per conv layer (the first ones, in filter order).
MAX_CHANNELS = 32


@dataclass
class LayerInsight:
    """One unit layer (named as in ``TrialResult.architecture`` and the 3D scene)."""

    name: str
    layer_type: str  # "conv2d" | "dense" | "lstm" | "bilstm"
    activation: str
    units: int
    dead: np.ndarray  # bool (units,): dead by core.health.dead_units on the held-out probe batch
    saturated: np.ndarray  # bool (units,): saturated on >= core.health.SATURATED_SHARE of outputs
    dead_label: str  # core.health.dead_label(activation): what "dead" means here, in words


@dataclass
class Example:
    """One test example and what the model did with it."""

    index: int  # position in the test split
    role: str  # "probe" | "misclassified"
    true: int
    predicted: int
    probs: np.ndarray  # float (classes,): the model's output probabilities
    image: np.ndarray | None = None  # uint8 (H, W) or (H, W, 3), for image data sets
    words: list[str] | None = None  # decoded tokens (padding dropped), for text data sets
    # unit layer name -> its output for this example, as float32 (dequantised on load):
    # conv2d (H, W, channels<=MAX_CHANNELS), dense (units,), lstm/bilstm (tokens, units)
    activations: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        return float(self.probs[self.predicted])

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class Insight:
    kind: str  # "image" | "text"
    class_names: list[str]
    confusion: np.ndarray  # int (classes, classes) on the test split; rows true, columns predicted
    examples: list[Example]  # probes first (in class order), then misclassified (most confident first)
    layers: list[LayerInsight]  # unit layers, input to output
    filters: np.ndarray | None = None  # float32 (kh, kw, in, out) of the first conv layer; None without one
    filters_layer: str | None = None

    @property
    def class_accuracy(self) -> list[float | None]:
        """Test recall per class; None for a class with no test sample."""
        totals = self.confusion.sum(axis=1)
        return [None if t == 0 else float(self.confusion[i, i] / t) for i, t in enumerate(totals)]

    def layer(self, name: str) -> LayerInsight | None:
        return next((lay for lay in self.layers if lay.name == name), None)



FORMAT_VERSION = 1


def probe_indices(labels: np.ndarray, n: int = N_PROBES) -> list[int]:
    """The fixed probe examples: the first test example of each class, in class order, while classes last."""
    labels = np.asarray(labels)
    out: list[int] = []
    for c in np.unique(labels):
        if len(out) >= n:
            break
        out.append(int(np.flatnonzero(labels == c)[0]))
    return out


def misclassified_indices(labels: np.ndarray, probs: np.ndarray, n: int = MAX_MISCLASSIFIED) -> list[int]:
    """Up to ``n`` misclassified test indices, the most confident mistakes first (ties: by index)."""
    pred = probs.argmax(-1)
    wrong = np.flatnonzero(pred != labels)
    conf = probs[wrong, pred[wrong]]
    order = np.lexsort((wrong, -conf))
    return [int(i) for i in wrong[order][:n]]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return cm


def _vocabulary(info: Any) -> dict[int, str] | None:
    """Token id -> word for a text data set, when its files know one (never downloads)."""
    try:
        from core.datasets._download import _load_raw
        from core.paths import Settings

        return _load_raw(info.name, Settings.from_env().datasets_dir, allow_download=False).vocabulary
    except Exception:  # noqa: BLE001 - words are a nicety: fall back to "#<id>" tokens
        return None


def decode_tokens(tokens: np.ndarray, vocabulary: dict[int, str] | None) -> tuple[list[str], np.ndarray]:
    """The words of one padded token sequence and the positions they came from (padding dropped)."""
    tokens = np.asarray(tokens)
    keep = np.flatnonzero(tokens != 0)
    vocab = vocabulary or {}
    words = [vocab.get(int(t)) or ("<unk>" if int(t) == 1 else f"#{int(t)}") for t in tokens[keep]]
    return words, keep


def _sequence_twin(layer: Any) -> Any:
    """A copy of an LSTM/Bidirectional layer that returns the whole sequence, with the same weights."""
    cfg = layer.get_config()
    if type(layer).__name__ == "Bidirectional":
        cfg["layer"]["config"]["return_sequences"] = True
        if cfg.get("backward_layer"):
            cfg["backward_layer"]["config"]["return_sequences"] = True
    else:
        cfg["return_sequences"] = True
    cfg["name"] = f"{layer.name}_sequence"
    return type(layer).from_config(cfg)


def lstm_sequence_outputs(model: Any, layer_name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An LSTM layer's hidden state at every token, and its own output, for inputs ``x``.

    A last LSTM returns only its final state; its twin returning sequences shares the trained
    weights, so its last step (forward) equals that output.  Returns ``(sequence, own_output)``.
    """
    import keras

    layer = model.get_layer(layer_name)
    feed = keras.Model(model.input, [layer.input, layer.output])
    inp, own = (keras.ops.convert_to_numpy(t) for t in feed(x, training=False))
    if own.ndim == 3:
        return own, own
    twin = _sequence_twin(layer)
    twin.build(inp.shape)
    twin.set_weights(layer.get_weights())
    seq = keras.ops.convert_to_numpy(twin(inp, training=False))
    return seq, own


def _quantise(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 codes with one (low, step) pair per array; arrays of one shape except the first axis of text."""
    lo = np.array([float(a.min()) if a.size else 0.0 for a in arrays], dtype=np.float32)
    hi = np.array([float(a.max()) if a.size else 0.0 for a in arrays], dtype=np.float32)
    step = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
    rows = max((a.shape[0] for a in arrays), default=0)
    codes = []
    for a, low, st in zip(arrays, lo, step):
        q = np.rint((a - low) / st).clip(0, 255).astype(np.uint8)
        if q.shape[0] < rows:  # text: pad the token axis to the longest example
            q = np.concatenate([q, np.zeros((rows - q.shape[0], *q.shape[1:]), np.uint8)])
        codes.append(q)
    return np.stack(codes) if codes else np.zeros((0,), np.uint8), lo, step


def collect(model: Any, units: list[dict[str, Any]], data: Any, test_probs: np.ndarray,
            unit_stats: list[dict[str, Any]]) -> Insight:
    """The insight of a trained ``model`` (see the module docstring). Imports keras.

    Args:
        model: the trained Keras model.
        units: ``core.models.unit_layers(model)``.
        data: the trial's ``core.datasets.Dataset``.
        test_probs: the model's probabilities on ``data.x_test`` (already computed by training).
        unit_stats: per unit layer, ``core.health.unit_statistics`` merged into the unit dict
            (what the health metrics scored), in the order of ``units``.
    """
    import keras

    from core import health as H

    info = data.info
    y = np.asarray(data.y_test, dtype=np.int64)
    probs = np.asarray(test_probs, dtype=np.float32)
    confusion = confusion_matrix(y, probs.argmax(-1), info.num_classes)
    chosen = [(i, "probe") for i in probe_indices(y)] + [(i, "misclassified") for i in misclassified_indices(y, probs)]
    idx = np.array([i for i, _ in chosen], dtype=np.int64)
    x = data.x_test[idx]

    layers: list[LayerInsight] = []
    stats_by_name = {s["name"]: s for s in unit_stats}
    for u in units:
        st = stats_by_name.get(u["name"])
        act = u["activation"]
        if st is not None:
            dead = H.dead_units(st, act)
            sat_share = np.array([np.nan if v is None else v for v in st["saturated"]], dtype=float)
            saturated = np.nan_to_num(sat_share, nan=0.0) >= H.SATURATED_SHARE
            if act not in ("tanh", "sigmoid"):  # unbounded activations have no saturated side
                saturated = np.zeros(len(sat_share), dtype=bool)
        else:
            dead = saturated = np.zeros(int(u["units"]), dtype=bool)
        layers.append(LayerInsight(name=u["name"], layer_type=u["layer_type"], activation=act, units=int(u["units"]),
                                   dead=np.asarray(dead, dtype=bool), saturated=np.asarray(saturated, dtype=bool),
                                   dead_label=H.dead_label(act)))

    # each unit layer's output for the chosen examples in one pass; an LSTM that returns only its last
    # state gives its input here, and a twin returning sequences (same weights) runs on it below
    outputs: dict[str, np.ndarray] = {}
    if units and len(idx):
        tensors, twins = [], {}
        for u in units:
            layer = model.get_layer(u["output_layer"])
            if u["layer_type"] in ("lstm", "bilstm") and len(layer.output.shape) == 2:
                twins[u["name"]] = layer
                tensors.append(layer.input)
            else:
                tensors.append(layer.output)
        outs = keras.Model(model.input, tensors)(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for u, o in zip(units, outs):
            a = keras.ops.convert_to_numpy(o)
            if u["name"] in twins:
                layer = twins[u["name"]]
                twin = _sequence_twin(layer)
                twin.build(a.shape)
                twin.set_weights(layer.get_weights())
                a = keras.ops.convert_to_numpy(twin(a, training=False))
            outputs[u["name"]] = a[..., :MAX_CHANNELS] if u["layer_type"] == "conv2d" else a
    kept: list[np.ndarray] = []
    words: list[list[str] | None] = [None] * len(idx)
    if info.kind == "text":
        vocab = _vocabulary(info)
        for k in range(len(idx)):
            w, keep = decode_tokens(data.x_test[idx[k]], vocab)
            words[k] = w
            kept.append(keep)

    examples: list[Example] = []
    for k, (i, role) in enumerate(chosen):
        acts: dict[str, np.ndarray] = {}
        for u in units:
            if u["name"] not in outputs:
                continue
            a = outputs[u["name"]][k]
            if u["layer_type"] in ("lstm", "bilstm") and kept:
                a = a[kept[k]]  # one row per kept word
            acts[u["name"]] = np.asarray(a, dtype=np.float32)
        image = None
        if info.kind == "image":
            img = np.rint(np.clip(data.x_test[i], 0.0, 1.0) * 255.0).astype(np.uint8)  # loaders scale to [0, 1]
            image = img[..., 0] if img.shape[-1] == 1 else img
        examples.append(Example(index=int(i), role=role, true=int(y[i]), predicted=int(probs[i].argmax()),
                                probs=probs[i].copy(), image=image, words=words[k], activations=acts))

    filters = filters_layer = None
    first_conv = next((u for u in units if u["layer_type"] == "conv2d"), None)
    if first_conv is not None:
        kernel = model.get_layer(first_conv["name"]).get_weights()[0]
        filters, filters_layer = np.asarray(kernel, dtype=np.float32), first_conv["name"]
    return Insight(kind=info.kind, class_names=[str(c) for c in info.class_names], confusion=confusion,
                   examples=examples, layers=layers, filters=filters, filters_layer=filters_layer)


def to_arrays(insight: Insight) -> dict[str, np.ndarray]:
    """The arrays ``save`` writes (no pickled objects: a JSON header as bytes, then plain arrays)."""
    ex = insight.examples
    meta = {
        "version": FORMAT_VERSION,
        "kind": insight.kind,
        "class_names": list(insight.class_names),
        "examples": [{"index": e.index, "role": e.role, "true": e.true, "predicted": e.predicted, "words": e.words}
                     for e in ex],
        "layers": [{"name": lay.name, "layer_type": lay.layer_type, "activation": lay.activation, "units": lay.units,
                    "dead_label": lay.dead_label} for lay in insight.layers],
        "filters_layer": insight.filters_layer,
        "activations": [],
    }
    arrays: dict[str, np.ndarray] = {
        "confusion": np.asarray(insight.confusion, dtype=np.int32),
        "probs": np.stack([e.probs for e in ex]).astype(np.float32) if ex else np.zeros((0, len(insight.class_names)), np.float32),
        "dead": np.concatenate([lay.dead for lay in insight.layers]).astype(bool) if insight.layers else np.zeros(0, bool),
        "saturated": (np.concatenate([lay.saturated for lay in insight.layers]).astype(bool) if insight.layers
                      else np.zeros(0, bool)),
    }
    if ex and all(e.image is not None for e in ex):
        arrays["images"] = np.stack([e.image for e in ex]).astype(np.uint8)
    for j, lay in enumerate(insight.layers):
        have = [e.activations.get(lay.name) for e in ex]
        if not have or any(a is None for a in have):
            continue
        codes, lo, step = _quantise([np.asarray(a, dtype=np.float32) for a in have])
        arrays[f"act{j}"], arrays[f"act{j}_lo"], arrays[f"act{j}_step"] = codes, lo, step
        arrays[f"act{j}_rows"] = np.array([a.shape[0] if a.ndim else 0 for a in have], dtype=np.int32)
        meta["activations"].append(j)
    if insight.filters is not None:
        arrays["filters"] = np.asarray(insight.filters, dtype=np.float16)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return arrays


def from_arrays(arrays: Any) -> Insight:
    meta = json.loads(bytes(np.asarray(arrays["meta"], dtype=np.uint8)).decode("utf-8"))
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"insight format {meta.get('version')!r}")
    probs = np.asarray(arrays["probs"], dtype=np.float32)
    images = np.asarray(arrays["images"]) if "images" in arrays else None
    dead, sat = np.asarray(arrays["dead"], dtype=bool), np.asarray(arrays["saturated"], dtype=bool)
    layers, at = [], 0
    for m in meta["layers"]:
        n = int(m["units"])
        layers.append(LayerInsight(name=m["name"], layer_type=m["layer_type"], activation=m["activation"], units=n,
                                   dead=dead[at:at + n], saturated=sat[at:at + n], dead_label=m["dead_label"]))
        at += n
    examples = []
    for k, e in enumerate(meta["examples"]):
        examples.append(Example(index=int(e["index"]), role=e["role"], true=int(e["true"]), predicted=int(e["predicted"]),
                                probs=probs[k], image=None if images is None else images[k], words=e.get("words")))
    for j in meta["activations"]:
        codes = np.asarray(arrays[f"act{j}"])
        lo, step = np.asarray(arrays[f"act{j}_lo"]), np.asarray(arrays[f"act{j}_step"])
        rows = np.asarray(arrays[f"act{j}_rows"])
        lay = layers[j]
        for k, ex in enumerate(examples):
            q = codes[k][: rows[k]] if lay.layer_type in ("lstm", "bilstm") else codes[k]
            ex.activations[lay.name] = (lo[k] + q.astype(np.float32) * step[k]).astype(np.float32)
    filters = np.asarray(arrays["filters"], dtype=np.float32) if "filters" in arrays else None
    return Insight(kind=meta["kind"], class_names=list(meta["class_names"]),
                   confusion=np.asarray(arrays["confusion"], dtype=np.int64), examples=examples, layers=layers,
                   filters=filters, filters_layer=meta.get("filters_layer"))


def save(insight: Insight, path: Path) -> Path:
    """Write ``insight`` compressed to ``path`` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".insight-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **to_arrays(insight))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: Path) -> Insight | None:
    """The insight stored at ``path``; None when it is missing or unreadable (older trials)."""
    try:
        with np.load(Path(path), allow_pickle=False) as arrays:
            return from_arrays({k: arrays[k] for k in arrays.files})
    except Exception:  # noqa: BLE001 - missing, truncated, foreign or older files all read as "no insight"
        return None


def class_report(insight: Insight) -> dict[str, Any]:
    """The JSON-able summary a user downloads: confusion matrix, per-class test accuracy, misclassified list."""
    totals = insight.confusion.sum(axis=1)
    per_class = [{"class": i, "name": insight.class_names[i] if i < len(insight.class_names) else str(i),
                  "test_samples": int(totals[i]), "correct": int(insight.confusion[i, i]),
                  "accuracy": acc} for i, acc in enumerate(insight.class_accuracy)]
    wrong = [{"test_index": e.index, "true": e.true, "true_name": insight.class_names[e.true],
              "predicted": e.predicted, "predicted_name": insight.class_names[e.predicted],
              "confidence": round(e.confidence, 4),
              **({"text": " ".join(e.words)} if e.words is not None else {})}
             for e in insight.examples if e.role == "misclassified"]
    return {"split": "test", "test_samples": int(insight.confusion.sum()),
            "test_accuracy": float(np.trace(insight.confusion) / max(1, insight.confusion.sum())),
            "class_names": list(insight.class_names), "confusion": insight.confusion.tolist(),
            "per_class": per_class, "misclassified": wrong}
