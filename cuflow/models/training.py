"""The Keras training API on NumPy arrays and Tensors: ``compile``, ``fit``, ``evaluate``, ``predict`` and the
``*_on_batch`` forms. :class:`cuflow.models.Model` mixes it in.

A training step is: forward under a ``GradientTape``, the compiled loss plus the layers' regularization penalties,
gradients, ``optimizer.apply_gradients``, metric updates. The epoch's running loss is summed on the device; the only
host reads are the progress bar's (at most once per step, when it redraws) and the end-of-epoch logs.
"""
import math

import numpy as np

from .. import devices as _devices
from .. import dtypes
from ..tensor import Tensor, constant
from ..tape import GradientTape
from ..ops.math import add_n
from ..ops import random as _random
from .callbacks import CallbackList, History, ProgbarLogger, format_logs

__all__ = ["Trainer"]


def _as_array(value, what):
    if value is None:
        return None
    if isinstance(value, Tensor):
        return np.asarray(value)
    if isinstance(value, dict) or (isinstance(value, (list, tuple)) and value
                                   and all(isinstance(v, (np.ndarray, Tensor)) for v in value) and len(value) > 1):
        raise NotImplementedError(f"{what}: several inputs or outputs (lists or dicts of arrays) come with the "
                                  "functional API; pass one array")
    return np.asarray(value)


def _as_inputs(value, what):
    """Keras's rule for array inputs: one sample per row, so a 1-D array is a column ``(n, 1)``."""
    x = _as_array(value, what)
    if x is None:
        raise ValueError(f"{what}: x is required")
    if x.ndim == 0:
        raise ValueError(f"{what}: x must have a batch dimension, got a scalar")
    return x[:, None] if x.ndim == 1 else x


def _batches(n, batch_size):
    return max(1, math.ceil(n / batch_size))


class _Tracker:
    """The running loss (summed on the device, weighted by batch size, as Keras's loss tracker) and the metrics.

    Metrics are resolved on the first batch, when the label and prediction shapes are known: that is how
    ``'accuracy'`` picks binary, categorical or sparse accuracy for a custom loss, as Keras does.
    """

    def __init__(self, requests, loss):
        self.requests, self.loss, self.metrics = list(requests or []), loss, None
        self.reset()

    def reset(self):
        self.loss_sum, self.count = None, 0
        for _, metric in self.metrics or []:
            metric.reset_state()

    def _resolve(self, y, y_pred):
        from .. import metrics as metrics_mod
        self.metrics = []
        for spec in self.requests:
            if isinstance(spec, str):
                metric = metrics_mod.resolve_accuracy(spec, self.loss, tuple(y.shape), tuple(y_pred.shape))
                self.metrics.append((spec, metric))
            else:
                metric = metrics_mod.get(spec)
                self.metrics.append((getattr(metric, "name", type(metric).__name__), metric))

    def update(self, loss, y, y_pred, sample_weight, n):
        if self.metrics is None:
            self._resolve(y, y_pred)
        weighted = loss * float(n)
        self.loss_sum = weighted if self.loss_sum is None else self.loss_sum + weighted
        self.count += n
        for _, metric in self.metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)

    def read(self):
        logs = {"loss": float(self.loss_sum) / self.count if self.count else float("nan")}
        for name, metric in self.metrics or []:
            logs[name] = float(metric.result())
        return logs


class Trainer:
    """The training API, mixed into ``Model``: needs ``__call__``, ``trainable_variables`` and ``losses``."""

    optimizer = None
    compiled_loss = None
    _compiled = False

    # --- compile ----------------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, **kwargs):
        """Configures training.

        Args:
            optimizer: a name (``'sgd'``, ``'adam'``, ``'rmsprop'``...) or an optimizer instance.
            loss: a name (``'mse'``, ``'binary_crossentropy'``...), a ``Loss`` or a function
                ``loss(y_true, y_pred)``.
            metrics: a list of names (``'accuracy'`` resolves from the loss, as in Keras) or ``Metric`` objects.
            loss_weights: a scalar (or a one-element list/dict) multiplying the loss.

        Raises:
            ValueError: an unknown optimizer, loss or metric name.
            NotImplementedError: several losses (multi-output models come with the functional API).
        """
        from .. import optim, losses as losses_mod, metrics as metrics_mod
        unknown = set(kwargs) - {"run_eagerly", "jit_compile", "steps_per_execution", "weighted_metrics"}
        if unknown:
            raise TypeError(f"compile: unexpected keyword argument(s) {sorted(unknown)}")
        if isinstance(loss, (list, tuple, dict)):
            raise NotImplementedError("compile: one loss per model for now; several outputs come with the "
                                      "functional API")
        self.optimizer = optim.get(optimizer)
        self.loss = loss
        self.compiled_loss = losses_mod.get(loss)
        if self.compiled_loss is not None and not isinstance(self.compiled_loss, losses_mod.Loss):
            # a per-sample function ('mse', a user's fn): Keras wraps it to weight and average
            self.compiled_loss = losses_mod.LossFunctionWrapper(self.compiled_loss)
        if isinstance(loss_weights, dict):
            loss_weights = list(loss_weights.values())
        if isinstance(loss_weights, (list, tuple)):
            if len(loss_weights) != 1:
                raise ValueError(f"compile: this model has one output, got {len(loss_weights)} loss_weights")
            loss_weights = loss_weights[0]
        self.loss_weight = 1.0 if loss_weights is None else float(loss_weights)
        for spec in metrics or []:  # unknown names fail here, not on the first batch
            if not (isinstance(spec, str) and spec.lower() in ("accuracy", "acc")):
                metrics_mod.get(spec)
        self._tracker = _Tracker(metrics, loss)  # evaluate reuses fit's metrics after reading them, as Keras 3
        self._compiled = True

    @property
    def metrics_names(self):
        if not self._compiled:
            return []
        return ["loss"] + [name for name, _ in self._tracker.metrics or []]

    def _require_compiled(self, what):
        if not self._compiled:
            raise RuntimeError(f"You must call compile() on the model before calling {what}(): "
                               "model.compile(optimizer=..., loss=...)")
        if self.compiled_loss is None and not self._has_own_loss():
            raise ValueError(f"{what}(): the model was compiled without a loss; pass loss= to compile()")

    def _has_own_loss(self):
        return type(self).compute_loss is not Trainer.compute_loss

    # --- one step -----------------------------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        """The compiled loss (times ``loss_weights``) plus the layers' regularization penalties."""
        loss = self.compiled_loss(y, y_pred, sample_weight=sample_weight)
        if self.loss_weight != 1.0:
            loss = loss * self.loss_weight
        penalties = self.losses
        return loss + add_n(penalties) if penalties else loss

    def _train_step(self, x, y, sample_weight, tracker):
        variables = self.trainable_variables
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        if not variables:
            variables = self.trainable_variables  # built by this first call
        grads = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if not pairs:
            raise ValueError(f"No gradients for any trainable variable of model '{self.name}': the loss does not "
                             "depend on them")
        self.optimizer.apply_gradients(pairs)
        tracker.update(loss, y, y_pred, sample_weight, len(x))
        return loss

    def _test_step(self, x, y, sample_weight, tracker):
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        tracker.update(loss, y, y_pred, sample_weight, len(x))
        return loss

    # --- data ---------------------------------------------------------------------------------------------------
    def _tensor(self, array):
        if array is None:
            return None
        if array.dtype.kind == "f" and array.dtype != np.dtype(dtypes.numpy_dtype(self.dtype)):
            array = array.astype(dtypes.numpy_dtype(self.dtype))
        return constant(array)

    def _sample_weights(self, y, sample_weight, class_weight, n):
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(n)
        if class_weight:
            if y is None:
                raise ValueError("class_weight needs targets y")
            labels = y.reshape(n, -1)
            classes = labels[:, 0] if labels.shape[1] == 1 else np.argmax(labels, axis=1)
            per_sample = np.array([class_weight.get(int(round(c)), 1.0) for c in classes], dtype=np.float64)
            weights = per_sample if weights is None else weights * per_sample
        return weights

    def _checked_data(self, what, x, y, sample_weight=None):
        x, y = _as_inputs(x, what), _as_array(y, what)
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None and len(value) != len(x):
                raise ValueError(f"{what}: x and {name} must have the same number of samples, got {len(x)} and "
                                 f"{len(value)}")
        return x, y

    def _shuffled(self, n):
        with _devices.device("/CPU:0"):  # the order follows tf.random.set_seed
            seed = int(np.asarray(_random.uniform([], maxval=2 ** 31 - 1, dtype=dtypes.int64)))
        return np.random.default_rng(seed).permutation(n)

    # --- fit / evaluate / predict -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains the model for ``epochs`` passes over ``(x, y)`` (NumPy arrays, Tensors or lists).

        Args:
            batch_size: samples per step (default 32).
            verbose: ``'auto'`` or 1 (a tqdm progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: ``Callback`` objects.
            validation_split: the fraction of the data, taken from the end before shuffling, held out for
                validation.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``; overrides the split.
            shuffle: shuffle the training samples each epoch.
            class_weight: ``{class: weight}`` multiplying each sample's loss by its class's weight.
            sample_weight: one weight per sample.
            initial_epoch: the epoch to start counting from (when resuming).
            steps_per_epoch: steps per epoch (default: one pass over the data).

        Returns:
            A ``History``: ``history.history['loss']`` (and metrics, ``val_*``) per epoch.

        Raises:
            RuntimeError: ``compile`` was not called.
            ValueError: x and y have different numbers of samples.
        """
        self._require_compiled("fit")
        x, y = self._checked_data("fit", x, y, sample_weight)
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
            cut = int(len(x) * (1 - validation_split))
            head = [None if a is None else a[:cut] for a in (x, y, sample_weight)]
            validation_data = tuple(None if a is None else a[cut:] for a in (x, y, sample_weight))
            x, y, sample_weight = head  # class_weight applies to training only, as in Keras
        weights = self._sample_weights(y, sample_weight, class_weight, len(x))
        batch_size = batch_size or 32
        n = len(x)
        steps = steps_per_epoch or _batches(n, batch_size)
        verbose = 1 if verbose == "auto" else verbose
        tracker = self._tracker
        history = History()
        progress = [ProgbarLogger(verbose, tracker.read)] if verbose else []
        cbs = CallbackList([history, *(callbacks or []), *progress], model=self,
                           params={"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size})
        self.history = history
        self.stop_training = False
        cbs.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            tracker.reset()
            cbs.on_epoch_begin(epoch)
            order = self._shuffled(n) if shuffle else np.arange(n)
            for step in range(steps):
                start = (step * batch_size) % n
                idx = order[start:start + batch_size]
                cbs.on_train_batch_begin(step)
                loss = self._train_step(self._tensor(x[idx]), self._tensor(None if y is None else y[idx]),
                                        self._tensor(None if weights is None else weights[idx]), tracker)
                cbs.on_train_batch_end(step, {"loss": loss})  # a device scalar: reading it is the callback's call
            logs = tracker.read()
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val = self._evaluate_arrays(*_unpack(validation_data), validation_batch_size or batch_size,
                                            validation_steps)
                logs.update({f"val_{k}": v for k, v in val.items()})
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return history

    def _evaluate_arrays(self, x, y, sample_weight, batch_size, steps=None, callbacks=None):
        x, y = self._checked_data("evaluate", x, y, sample_weight)
        weights = self._sample_weights(y, sample_weight, None, len(x))
        tracker = self._tracker
        tracker.reset()
        cbs = callbacks or CallbackList([])
        cbs.on_test_begin()
        for step in range(steps or _batches(len(x), batch_size)):
            sl = slice(step * batch_size, (step + 1) * batch_size)
            cbs.on_test_batch_begin(step)
            loss = self._test_step(self._tensor(x[sl]), self._tensor(None if y is None else y[sl]),
                                   self._tensor(None if weights is None else weights[sl]), tracker)
            cbs.on_test_batch_end(step, {"loss": loss})
        logs = tracker.read()
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics) on ``(x, y)``, in batches; ``training=False`` (Dropout is off).

        Returns:
            The loss when no metrics were compiled, else ``[loss, metric, ...]`` (a dict with ``return_dict``).
        """
        self._require_compiled("evaluate")
        cbs = CallbackList(callbacks, model=self, params={"verbose": verbose})
        logs = self._evaluate_arrays(x, y, sample_weight, batch_size or 32, steps, cbs)
        if verbose:  # 'auto' too: one summary line (a per-batch bar for evaluate is still to come)
            print(format_logs(logs))
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x``, computed in batches with ``training=False``, as a NumPy array."""
        x = _as_inputs(x, "predict")
        batch_size = batch_size or 32
        cbs = CallbackList(callbacks, model=self, params={"verbose": verbose})
        cbs.on_predict_begin()
        outputs = []
        for step in range(steps or _batches(len(x), batch_size)):
            cbs.on_predict_batch_begin(step)
            out = self(self._tensor(x[step * batch_size:(step + 1) * batch_size]), training=False)
            outputs.append(out)
            cbs.on_predict_batch_end(step, {"outputs": out})
        cbs.on_predict_end()
        if isinstance(outputs[0], (list, tuple)):
            return [np.concatenate([np.asarray(o[i]) for o in outputs]) for i in range(len(outputs[0]))]
        return np.concatenate([np.asarray(o) for o in outputs])

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on one batch; returns its loss (and metrics) like ``evaluate``."""
        self._require_compiled("train_on_batch")
        x, y = self._checked_data("train_on_batch", x, y, sample_weight)
        weights = self._sample_weights(y, sample_weight, class_weight, len(x))
        self._tracker.reset()
        self._train_step(self._tensor(x), self._tensor(y), self._tensor(weights), self._tracker)
        return _result(self._tracker.read(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) on one batch, without training."""
        self._require_compiled("test_on_batch")
        return _result(self._evaluate_arrays(x, y, sample_weight, len(x)), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for one batch, as a NumPy array."""
        x = _as_inputs(x, "predict_on_batch")
        return np.asarray(self(self._tensor(x), training=False))


def _unpack(data):
    if not isinstance(data, (list, tuple)) or len(data) not in (2, 3):
        raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight_val)")
    return tuple(data) + (None,) * (3 - len(data))


def _result(logs, return_dict):
    if return_dict:
        return logs
    return logs["loss"] if len(logs) == 1 else list(logs.values())
