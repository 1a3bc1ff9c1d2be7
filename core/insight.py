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
    examples: list[Example]  # probes first (by index), then misclassified (most confident first)
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


def collect(model: Any, units: list[dict[str, Any]], data: Any, test_probs: np.ndarray,
            unit_stats: list[dict[str, Any]]) -> Insight:
    """The insight of a trained ``model`` (see the module docstring). Imports keras."""
    raise NotImplementedError


def save(insight: Insight, path: Path) -> Path:
    """Write ``insight`` compressed to ``path`` (atomically); returns the path."""
    raise NotImplementedError


def load(path: Path) -> Insight | None:
    """The insight stored at ``path``; None when it is missing or unreadable (older trials)."""
    raise NotImplementedError
