"""``HealthMonitor``: the Keras callback that watches a trial while it trains.

It is the one place where training is observed, in the shape of Keras's own callbacks
(``EarlyStopping``, ``ReduceLROnPlateau``): its state lives in attributes a caller (or a test)
reads after ``fit``.  Per batch it recovers the batch's own training loss and stops on
divergence or on request; per epoch it records the history and how far each layer's weights
moved in one step (update-to-weight ratio), at a few scheduled epochs the gradient norm of
every weighted layer on a fixed batch, then tells the caller.  ``core.health`` turns these figures into the metrics.

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
# Gradients on the fixed batch are measured at this many epochs spread over the planned run
# (the first and the last included): the depth spread is their median, which a few points give.
GRAD_POINTS = 3


def grad_epochs(epochs: int | None, points: int = GRAD_POINTS) -> set[int] | None:
    """The epochs (from 1) at which gradients are measured: ``points`` of them, evenly spread, first and last included.

    None (every epoch) when there is no plan (``epochs`` None).
    """
    if epochs is None:
        return None
    epochs = max(1, int(epochs))
    if epochs <= points:
        return set(range(1, epochs + 1))
    return {1 + round(i * (epochs - 1) / (points - 1)) for i in range(points)}



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
        grad_x, grad_y: a fixed batch whose gradient is measured at the end of the scheduled
            epochs (the same samples each time, so the norms are comparable across epochs).
        batch_size, n_train: to recover each batch's own loss from Keras's running mean.
        on_epoch: called as ``on_epoch(epoch, logs)`` after each epoch (epoch counted from 1).
        should_stop: polled every ``poll_every`` batches and after each epoch; True stops training.
        poll_every: batches between two ``should_stop`` polls.
        epochs: the planned number of epochs; gradients are measured at ``grad_points`` of them
            (see ``grad_epochs``). None measures every epoch.

    Attributes (read them after ``fit``):
        history: per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``.
        batch_losses: every training batch's own mean loss, in order (all epochs).
        layers: per weighted layer, ``{"name", "kind", "grad_norm": [...], "weight_norm": [...],
            "update_norm": [...], "step_update_norm": [...]}`` with one value per epoch, taken at
            the epoch's probe step (its middle step, measured exactly: weights before and after):
            step_update_norm is the L2 distance the layer's weights moved in that one step,
            weight_norm their norm just before it, update_norm the distance they travelled since
            the previous epoch's probe step (for the first epoch: since training began);
            grad_norm is the gradient's norm on the fixed batch at the end of the epoch, None
            at the epochs the schedule skips.
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
        epochs: int | None = None,
        grad_points: int = GRAD_POINTS,
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
        self._last: list[np.ndarray] = []  # the weights at the last probe step (at first: as training starts)
        self._probed = False
        self._step_before: list[np.ndarray] | None = None
        self._probe_step = max(0, -(-self.n_train // max(1, self.batch_size)) // 2)  # the middle step of an epoch
        self._grad_fn: Any = None
        self._grad_epochs = grad_epochs(epochs, grad_points)

    # ------------------------------------------------------------------ set-up

    def on_train_begin(self, logs=None):
        self._weights = [layer.trainable_weights for layer in self.model.layers if layer.trainable_weights]
        named = [layer for layer in self.model.layers if layer.trainable_weights]
        self.layers = [{"name": layer.name, "kind": layer_kind(layer), "grad_norm": [], "weight_norm": [],
                        "update_norm": [], "step_update_norm": []} for layer in named]
        self._grad_fn = self._make_grad_fn()
        # the fixed batch as tensors once, and the weights as they start
        self._gx = keras.ops.convert_to_tensor(self.grad_x)
        self._gy = keras.ops.convert_to_tensor(self.grad_y)
        t = time.perf_counter()
        self._last = self._snapshot()
        self.seconds += time.perf_counter() - t

    def _make_grad_fn(self):
        # Eager, not a tf.function: tracing the forward and backward graph costs more (0.08-0.16 s
        # per model on digits) than the few eager calls the schedule makes (~0.02 s each).
        import tensorflow as tf

        model, weights = self.model, self._weights
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        flat = [w for ws in weights for w in ws]
        sizes = [len(ws) for ws in weights]

        def grad_norms(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=False))
            grads = tape.gradient(loss, flat)
            sums, i = [], 0
            for n in sizes:
                g = [tf.reduce_sum(tf.square(tf.cast(gr, tf.float32))) for gr in grads[i: i + n] if gr is not None]
                sums.append(tf.add_n(g) if g else tf.constant(0.0))
                i += n
            return [math.sqrt(float(v)) for v in np.asarray(tf.stack(sums))]

        return grad_norms

    def _snapshot(self) -> list[np.ndarray]:
        return [np.concatenate([np.ravel(keras.ops.convert_to_numpy(w)).astype(np.float32) for w in ws])
                for ws in self._weights]

    # ------------------------------------------------------------------ per batch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_t0 = time.perf_counter()
        self._seen, self._prev_mean = 0, 0.0
        self._probed = False
        if self._probe_step == 0:
            self._take_before()

    def _take_before(self) -> None:
        t = time.perf_counter()
        self._step_before = self._snapshot()
        self.seconds += time.perf_counter() - t

    def _record_step(self) -> None:
        """The probe step just ran: how far it moved each layer, the weights it acted on, and the epoch's travel."""
        t = time.perf_counter()
        after = self._snapshot()
        for rec, w0, w1, prev in zip(self.layers, self._step_before, after, self._last):
            rec["step_update_norm"].append(float(np.linalg.norm(w1 - w0)))
            rec["weight_norm"].append(float(np.linalg.norm(w0)))
            rec["update_norm"].append(float(np.linalg.norm(w1 - prev)))
        self._last, self._step_before, self._probed = after, None, True
        self.seconds += time.perf_counter() - t

    def on_train_batch_end(self, batch, logs=None):
        # (no on_train_batch_begin: Keras calls every hook a callback defines on every batch, so the
        # weights before the probe step are taken at the end of the step before it)
        if batch == self._probe_step and self._step_before is not None:
            self._record_step()
        elif batch == self._probe_step - 1:
            self._take_before()
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
        if not self._probed:  # the epoch ended before its probe step (a stop request): keep the lists aligned
            after = self._snapshot()
            for rec, w1, prev in zip(self.layers, after, self._last):
                rec["step_update_norm"].append(float("nan"))
                rec["weight_norm"].append(float(np.linalg.norm(w1)))
                rec["update_norm"].append(float(np.linalg.norm(w1 - prev)))
            self._last, self._step_before = after, None
        measure = self._grad_epochs is None or epoch + 1 in self._grad_epochs
        norms = self._grad_fn(self._gx, self._gy) if measure else [None] * len(self.layers)
        for rec, g in zip(self.layers, norms):
            rec["grad_norm"].append(None if g is None else float(g))
        self.seconds += time.perf_counter() - t
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, logs)
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            self.model.stop_training = True
