"""``HealthMonitor``: the Keras callback that watches a trial while it trains.

It is the one place where training is observed, in the shape of Keras's own callbacks
(``EarlyStopping``, ``ReduceLROnPlateau``): its state lives in attributes a caller (or a test)
reads after ``fit``.  Per batch it recovers the batch's own training loss and stops on
divergence or on request; per epoch it records the history, the gradient norm of every
weighted layer on a fixed batch, and how far each layer's weights moved (update-to-weight
ratio), then tells the caller.  ``core.health`` turns these figures into the metrics.

This module imports Keras at import time: only the training process imports it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from core.training import DIVERGED_LOSS, EpochCallback, StopCheck
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


def clean_logs(logs: dict[str, Any] | None) -> dict[str, float | None]:
    """Keras logs as plain floats; NaN/Inf become None, non-numbers are dropped."""
    out: dict[str, float | None] = {}
    for k, v in (logs or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f if math.isfinite(f) else None
    return out


def layer_kind(layer: Any) -> str:
    """A short, stable name for a weighted layer's family (used to order and judge depth)."""
    cls = type(layer).__name__
    if layer.name == "output":
        return "output"
    return {"Conv2D": "conv2d", "Dense": "dense", "LSTM": "lstm", "Bidirectional": "bilstm",
            "Embedding": "embedding", "BatchNormalization": "normalization"}.get(cls, cls.lower())


class HealthMonitor(keras.callbacks.Callback):
    """Collects the training-time figures behind the health metrics, and stops a bad run early.

    Args:
        grad_x, grad_y: a fixed batch whose gradient is measured after every epoch (the same
            samples each time, so the norms are comparable across epochs).
        batch_size, n_train: to recover each batch's own loss from Keras's running mean.
        on_epoch: called as ``on_epoch(epoch, logs)`` after each epoch (epoch counted from 1).
        should_stop: polled every ``poll_every`` batches and after each epoch; True stops training.
        poll_every: batches between two ``should_stop`` polls.

    Attributes (read them after ``fit``):
        history: per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``.
        batch_losses: every training batch's own mean loss, in order (all epochs).
        layers: per weighted layer, ``{"name", "kind", "grad_norm": [...], "weight_norm": [...],
            "update_norm": [...], "step_update_norm": [...]}`` with one value per epoch:
            update_norm is the L2 distance the layer's weights moved during the epoch,
            step_update_norm the distance they moved in one training step (the middle step of
            the epoch, measured exactly: before and after it).
        epochs_run: epochs completed.
        diverged_epoch: the epoch (from 1) in which the loss became NaN/Inf or exceeded
            ``DIVERGED_LOSS``, else None.
        stopped: True when ``should_stop`` ended training.
        seconds: time spent measuring (gradients and weight snapshots), for the cost account.
    """

    def __init__(
        self,
        grad_x: Any,
        grad_y: Any,
        *,
        batch_size: int,
        n_train: int,
        on_epoch: EpochCallback | None = None,
        should_stop: StopCheck | None = None,
        poll_every: int = 8,
    ) -> None:
        super().__init__()
        self.grad_x, self.grad_y = grad_x, grad_y
        self.batch_size, self.n_train = int(batch_size), int(n_train)
        self.on_epoch, self.should_stop, self.poll_every = on_epoch, should_stop, poll_every
        self.history: dict[str, list[float | None]] = {}
        self.batch_losses: list[float] = []
        self.layers: list[dict[str, Any]] = []
        self.epochs_run = 0
        self.diverged_epoch: int | None = None
        self.stopped = False
        self.seconds = 0.0
        self._epoch_t0 = 0.0
        self._seen = 0  # samples seen this epoch (for the running-mean inversion)
        self._prev_mean = 0.0
        self._weights: list[list[Any]] = []
        self._before: list[np.ndarray] = []
        self._step_before: list[np.ndarray] | None = None
        self._probe_step = max(0, -(-self.n_train // max(1, self.batch_size)) // 2)  # the middle step of an epoch
        self._grad_fn: Any = None

    # ------------------------------------------------------------------ set-up

    def on_train_begin(self, logs=None):
        self._weights = [layer.trainable_weights for layer in self.model.layers if layer.trainable_weights]
        named = [layer for layer in self.model.layers if layer.trainable_weights]
        self.layers = [{"name": layer.name, "kind": layer_kind(layer), "grad_norm": [], "weight_norm": [],
                        "update_norm": [], "step_update_norm": []} for layer in named]
        self._grad_fn = self._make_grad_fn()

    def _make_grad_fn(self):
        import tensorflow as tf

        model, weights = self.model, self._weights
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        flat = [w for ws in weights for w in ws]
        sizes = [len(ws) for ws in weights]

        @tf.function(reduce_retracing=True)
        def grad_norms(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=False))
            grads = tape.gradient(loss, flat)
            out, i = [], 0
            for n in sizes:
                g = [gr for gr in grads[i: i + n] if gr is not None]
                out.append(tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(gr, tf.float32))) for gr in g]))
                           if g else tf.constant(0.0))
                i += n
            return tf.stack(out)

        return grad_norms

    def _snapshot(self) -> list[np.ndarray]:
        return [np.concatenate([np.ravel(keras.ops.convert_to_numpy(w)).astype(np.float32) for w in ws])
                for ws in self._weights]

    # ------------------------------------------------------------------ per batch

    def on_epoch_begin(self, epoch, logs=None):
        t = time.perf_counter()
        self._epoch_t0 = t
        self._seen, self._prev_mean = 0, 0.0
        self._before = self._snapshot()
        self.seconds += time.perf_counter() - t

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self._probe_step:
            t = time.perf_counter()
            self._step_before = self._snapshot()
            self.seconds += time.perf_counter() - t

    def on_train_batch_end(self, batch, logs=None):
        if batch == self._probe_step and self._step_before is not None:
            t = time.perf_counter()
            for rec, w0, w1 in zip(self.layers, self._step_before, self._snapshot()):
                rec["step_update_norm"].append(float(np.linalg.norm(w1 - w0)))
            self._step_before = None
            self.seconds += time.perf_counter() - t
        loss = (logs or {}).get("loss")
        if loss is not None:
            mean = float(loss)
            if not (math.isfinite(mean) and mean < DIVERGED_LOSS):
                self.diverged_epoch = self.epochs_run + 1
                self.model.stop_training = True
                return
            # Keras reports the epoch's running mean weighted by batch size: invert it to get
            # this batch's own loss (the last batch of an epoch may be smaller).
            size = min(self.batch_size, max(1, self.n_train - self._seen))
            total = self._seen + size
            own = (mean * total - self._prev_mean * self._seen) / size
            self.batch_losses.append(float(own))
            self._seen, self._prev_mean = total, mean
        if self.should_stop is not None and batch % self.poll_every == 0 and self.should_stop():
            self.stopped = True
            self.model.stop_training = True

    # ------------------------------------------------------------------ per epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = clean_logs(logs)
        try:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # noqa: BLE001 - schedules expose lr differently; it is informative only
            logs["lr"] = None
        logs["seconds"] = time.perf_counter() - self._epoch_t0
        for key in HISTORY_KEYS:
            self.history.setdefault(key, []).append(logs.get(key))
        self.epochs_run = epoch + 1
        loss = logs.get("loss")
        if loss is None or loss >= DIVERGED_LOSS or self.diverged_epoch is not None:
            self.diverged_epoch = self.diverged_epoch or epoch + 1
            self.model.stop_training = True
            return
        t = time.perf_counter()
        norms = self._grad_fn(keras.ops.convert_to_tensor(self.grad_x), keras.ops.convert_to_tensor(self.grad_y))
        norms = keras.ops.convert_to_numpy(norms)
        after = self._snapshot()
        for rec, g, w0, w1 in zip(self.layers, norms, self._before, after):
            rec["grad_norm"].append(float(g))
            rec["weight_norm"].append(float(np.linalg.norm(w1)))
            rec["update_norm"].append(float(np.linalg.norm(w1 - w0)))
        self.seconds += time.perf_counter() - t
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, logs)
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            self.model.stop_training = True
