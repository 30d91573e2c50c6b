"""The Keras training API: ``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` forms.
:class:`cuflow.models.Model` mixes it in.

Data comes through an adapter (``data_adapters.py``): arrays (NumPy, Tensors, lists and dicts of them for several
inputs or outputs) or an iterable of batches (a ``Dataset``, a generator, a ``PyDataset``-like object). Losses and
metrics are matched to the outputs by ``compile_utils.CompiledOutputs``.

A training step is: forward under a ``GradientTape``, the compiled loss plus the layers' regularization penalties,
gradients, ``optimizer.apply_gradients``, metric updates. The epoch's running loss is summed on the device; the only
host reads are the progress bar's (at most once per step, when it redraws) and the end-of-epoch logs. Batches that
are already Tensors (a prefetched Dataset's, possibly on the GPU) are used as they are: only a floating dtype other
than the model's is cast, on their device.
"""
import numpy as np

from .. import devices as _devices
from .. import dtypes
from ..tensor import Tensor, constant
from ..tape import GradientTape
from ..ops.array import cast, concat, expand_dims, gather, reshape
from ..ops.math import add_n, argmax, minimum
from ..layers.core import flatten, pack_like
from .callbacks import CallbackList, History, ProgbarLogger, format_logs
from .compile_utils import CompiledOutputs
from .data_adapters import (ArrayAdapter, IterableAdapter, is_iterable_data, map_data, split_arrays, warn_ran_out,
                            unpack_x_y_sample_weight)

__all__ = ["Trainer"]


def _num_samples(x):
    if isinstance(x, Tensor):
        return x._data.shape[0]
    return int(flatten(x)[0].shape[0])


class _ClassWeights:
    """``class_weight={class: weight}`` as per-sample weights, computed on the batch's device: the class is the
    label (rounded) or the one-hot argmax, looked up in a table whose last entry (1.0) serves unlisted classes."""

    def __init__(self, class_weight, dtype):
        size = max(int(c) for c in class_weight) + 1
        self.table = np.array([class_weight.get(c, 1.0) for c in range(size)] + [1.0],
                              dtype=dtypes.numpy_dtype(dtype))
        self._on_device = {}

    def apply(self, y, sample_weight):
        leaves = flatten(y) if y is not None else []
        if len(leaves) != 1:
            raise ValueError("`class_weight` is only supported for Models with a single output (and needs y)")
        labels = leaves[0]
        if labels.ndim >= 2 and labels.shape[-1] > 1:
            classes = argmax(labels, axis=-1)
        else:
            labels = reshape(labels, (-1,))
            classes = cast(labels + 0.5 if labels.dtype.is_floating else labels, "int64")
        table = self._on_device.get(labels.device)
        if table is None:
            with _devices.device(labels.device):
                table = self._on_device[labels.device] = constant(self.table)
        weights = gather(table, minimum(classes, len(self.table) - 1))
        if sample_weight is None:
            return weights
        return sample_weight * reshape(weights, (-1,) + (1,) * (sample_weight.ndim - 1))


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
                ``loss(y_true, y_pred)``; with several outputs, one loss for all, a list (one per output) or a
                dict keyed by output name.
            metrics: a list of names (``'accuracy'`` resolves from the loss, as in Keras) or ``Metric`` objects,
                applied to every output; or a list of such lists (one per output), or a dict keyed by output name.
            loss_weights: a scalar, a list or a dict weighting the outputs' losses in the total.

        Raises:
            ValueError: an unknown optimizer, loss or metric name; a list of losses/metrics/weights whose length is
                not the number of outputs; a dict key that names no output.
        """
        from .. import optim
        unknown = set(kwargs) - {"run_eagerly", "jit_compile", "steps_per_execution", "weighted_metrics"}
        if unknown:
            raise TypeError(f"compile: unexpected keyword argument(s) {sorted(unknown)}")
        self.optimizer = optim.get(optimizer)
        self.loss = loss
        self.loss_weight = 1.0 if loss_weights is None else loss_weights
        # one object computes the compiled loss and keeps the running logs (evaluate reuses fit's metrics, as Keras 3)
        self._tracker = self.compiled_loss = CompiledOutputs(loss, loss_weights, metrics, self.output_names)
        self._compiled = True

    @property
    def metrics_names(self):
        return self._tracker.log_names if self._compiled else []

    def _require_compiled(self, what):
        if not self._compiled:
            raise RuntimeError(f"You must call compile() on the model before calling {what}(): "
                               "model.compile(optimizer=..., loss=...)")
        if not self.compiled_loss.has_loss and not self._has_own_loss():
            raise ValueError(f"{what}(): the model was compiled without a loss; pass loss= to compile()")

    def _has_own_loss(self):
        return type(self).compute_loss is not Trainer.compute_loss

    # --- one step -----------------------------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        """The compiled loss (the outputs' losses times ``loss_weights``) plus the layers' regularization
        penalties."""
        loss = self.compiled_loss(y, y_pred, sample_weight)
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
        tracker.update(loss, y, y_pred, sample_weight, _num_samples(x))
        return loss

    def _test_step(self, x, y, sample_weight, tracker):
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        tracker.update(loss, y, y_pred, sample_weight, _num_samples(x))
        return loss

    # --- data ---------------------------------------------------------------------------------------------------
    def _leaf_tensor(self, value, expand_1d=False):
        """A batch's array as a Tensor on the current device, floating data in the model's dtype. A Tensor batch
        (a prefetched Dataset's) is used as it is when it is already there; otherwise it is moved device to device,
        never through NumPy."""
        if isinstance(value, Tensor):
            target = _devices.current_device()
            if value.device_object != target:
                value = value.gpu(target.index) if target.is_gpu else value.cpu()
            if value.dtype.is_floating and value.dtype.name != self.dtype:
                value = cast(value, self.dtype)
            return expand_dims(value, -1) if expand_1d and value.ndim == 1 else value
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.dtype != dtypes.numpy_dtype(self.dtype):  # (numpy's dtype.name is slow)
            array = array.astype(dtypes.numpy_dtype(self.dtype))
        if expand_1d and array.ndim == 1:
            array = array[:, None]
        if array.dtype.kind in "fiub":  # numbers: what constant() would do, without its checks for other data
            return Tensor(_devices.to_device(array, _devices.current_device()))
        return constant(array)

    def _batch_tensors(self, batch, class_weights=None):
        x, y, sample_weight = batch
        x = map_data(lambda v: self._leaf_tensor(v, expand_1d=True), x)
        y, sample_weight = (map_data(self._leaf_tensor, v) for v in (y, sample_weight))
        if class_weights is not None:
            sample_weight = class_weights.apply(y, sample_weight)
        return x, y, sample_weight

    def _adapter(self, what, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                 steps_name="steps"):
        if is_iterable_data(x):
            given = [name for name, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size))
                     if value is not None]
            if given:
                raise ValueError(f"{what}: when x is a dataset, generator or PyDataset (it yields batches), "
                                 f"`{given[0]}` should not be passed; include it in the batches instead "
                                 "((x, y) or (x, y, sample_weight)), and set the batch size when building the data")
            return IterableAdapter(x, steps, steps_name)
        return ArrayAdapter(x, y, sample_weight, batch_size, steps, shuffle, what)

    def _validation_adapter(self, data, batch_size, steps):
        if is_iterable_data(data):
            return IterableAdapter(data, steps, "validation_steps")
        if not isinstance(data, (list, tuple)) or len(data) not in (2, 3):
            raise ValueError("fit: validation_data must be (x_val, y_val), (x_val, y_val, sample_weight_val) or a "
                             f"dataset, got {type(data).__name__}"
                             + (f" of length {len(data)}" if isinstance(data, (list, tuple)) else ""))
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        return ArrayAdapter(x, y, sample_weight, batch_size, steps, False, "validation_data")

    # --- fit / evaluate / predict -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains the model for ``epochs`` passes over the data.

        Args:
            x: the inputs: an array (NumPy, Tensor, nested lists), a list or dict of them (several inputs, dicts
                keyed by input name), or a source of batches: a ``Dataset``, a generator or iterator, or a
                ``PyDataset``-like object, yielding ``x``, ``(x, y)`` or ``(x, y, sample_weight)``.
            y: the targets, like ``x`` (a list or dict keyed by output name for several outputs); not with a
                source of batches.
            batch_size: samples per step (default 32); not with a source of batches.
            verbose: ``'auto'`` or 1 (a tqdm progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: ``Callback`` objects, called in this order, then ``History`` and the progress bar (unless
                the list holds its own ``History`` or ``ProgbarLogger``).
            validation_split: the fraction of the arrays, taken from the end before shuffling, held out for
                validation (arrays only).
            validation_data: ``(x_val, y_val)``, ``(x_val, y_val, sample_weight_val)`` or a source of batches;
                overrides the split. It is evaluated after the epoch's last batch, through the callbacks'
                ``on_test_*`` hooks (as Keras's ``evaluate(callbacks=...)``), its logs joining the epoch's as
                ``val_*``.
            shuffle: shuffle the training samples each epoch (arrays; a dataset shuffles itself).
            class_weight: ``{class: weight}`` multiplying each sample's loss by its class's weight (one output).
            sample_weight: one weight per sample (or a list/dict of them, per output).
            initial_epoch: the epoch to start counting from (when resuming).
            steps_per_epoch: steps per epoch (default: one pass over the data). With a source of batches, the
                batches are read from one iterator kept across epochs, so an infinite dataset works.
            validation_steps: batches per validation (default: all).
            validation_batch_size: batch size for array validation data (default ``batch_size``).
            validation_freq: validate every this many epochs.

        Returns:
            A ``History``: ``history.history['loss']`` (and metrics, per-output losses, ``val_*``) per epoch.

        Raises:
            RuntimeError: ``compile`` was not called.
            ValueError: x and y have different numbers of samples; ``y``, ``batch_size``, ``sample_weight`` or
                ``validation_split`` given with a source of batches.
        """
        self._require_compiled("fit")
        if validation_split and validation_data is None:
            if is_iterable_data(x):
                raise ValueError("fit: `validation_split` is only supported for Tensors or NumPy arrays, got "
                                 f"x of type {type(x).__name__}; pass validation_data instead")
            (x, y, sample_weight), validation_data = split_arrays(x, y, sample_weight, validation_split)
        data = self._adapter("fit", x, y, sample_weight, batch_size, steps_per_epoch, shuffle, "steps_per_epoch")
        val = None if validation_data is None else self._validation_adapter(
            validation_data, validation_batch_size or batch_size, validation_steps)
        class_weights = _ClassWeights(class_weight, self.dtype) if class_weight else None
        verbose = 1 if verbose == "auto" else verbose
        tracker = self._tracker
        listed, history = _fit_callbacks(callbacks, verbose, tracker.read)
        cbs = CallbackList(listed, model=self, params={"epochs": epochs, "steps": data.steps, "verbose": verbose,
                                                       "batch_size": batch_size})
        self.history = history
        self.stop_training = False
        cbs.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            tracker.reset()
            cbs.on_epoch_begin(epoch)
            steps_run = 0
            for step, batch in enumerate(data.epoch()):
                cbs.on_train_batch_begin(step)
                loss = self._train_step(*self._batch_tensors(batch, class_weights), tracker)
                cbs.on_train_batch_end(step, {"loss": loss})  # a device scalar: reading it is the callback's call
                steps_run += 1
                if self.stop_training:
                    break
            if not steps_run:  # a one-shot iterator, consumed by an earlier epoch
                warn_ran_out()
                break
            logs = tracker.read()
            if val is not None and (epoch + 1) % validation_freq == 0:
                # through the test hooks of the same callbacks, as Keras 3's fit calls evaluate(callbacks=...)
                logs.update({f"val_{k}": v for k, v in self._evaluate(val, cbs).items()})
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return history

    def _evaluate(self, data, callbacks=None):
        tracker = self._tracker
        tracker.reset()
        cbs = callbacks or CallbackList([])
        cbs.on_test_begin()
        for step, batch in enumerate(data.epoch()):
            cbs.on_test_batch_begin(step)
            loss = self._test_step(*self._batch_tensors(batch), tracker)
            cbs.on_test_batch_end(step, {"loss": loss})
        logs = tracker.read()
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics) on the data, in batches; ``training=False`` (Dropout is off). ``x``, ``y`` and
        ``sample_weight`` are as for :meth:`fit` (``x`` may be a source of batches).

        Returns:
            The loss when there is nothing else to report, else ``[loss, ...]`` in ``metrics_names`` order (a dict
            with ``return_dict``).
        """
        self._require_compiled("evaluate")
        data = self._adapter("evaluate", x, y, sample_weight, batch_size, steps)
        cbs = CallbackList(callbacks, model=self, params={"verbose": verbose, "steps": data.steps})
        logs = self._evaluate(data, cbs)
        if verbose:  # 'auto' too: one summary line (a per-batch bar for evaluate is still to come)
            print(format_logs(logs))
        return _result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x`` (arrays, a list/dict of them, or a source of batches whose ``y`` is
        ignored), computed in batches with ``training=False``.

        Returns:
            A NumPy array, or a list/dict of them for a model with several outputs.
        """
        data = self._adapter("predict", x, batch_size=batch_size, steps=steps)
        cbs = CallbackList(callbacks, model=self, params={"verbose": verbose, "steps": data.steps})
        cbs.on_predict_begin()
        structure, outputs = None, []
        for step, (batch, _, _) in enumerate(data.epoch()):
            cbs.on_predict_batch_begin(step)
            out = self(map_data(lambda v: self._leaf_tensor(v, expand_1d=True), batch), training=False)
            structure = out
            outputs.append(flatten(out))
            cbs.on_predict_batch_end(step, {"outputs": out})
        cbs.on_predict_end()
        if not outputs:
            raise ValueError("predict: the data yielded no batches")
        # joined on the device, then one copy per output
        joined = [np.asarray(concat([o[i] for o in outputs], axis=0)) for i in range(len(outputs[0]))]
        return pack_like(structure, joined)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on one batch; returns its loss (and metrics) like ``evaluate``."""
        self._require_compiled("train_on_batch")
        batch = ArrayAdapter(x, y, sample_weight, what="train_on_batch").arrays()
        class_weights = _ClassWeights(class_weight, self.dtype) if class_weight else None
        self._tracker.reset()
        self._train_step(*self._batch_tensors(batch, class_weights), self._tracker)
        return _result(self._tracker.read(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) on one batch, without training."""
        self._require_compiled("test_on_batch")
        batch = ArrayAdapter(x, y, sample_weight, what="test_on_batch").arrays()
        self._tracker.reset()
        self._test_step(*self._batch_tensors(batch), self._tracker)
        return _result(self._tracker.read(), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for one batch, as a NumPy array (a list/dict of them for several outputs)."""
        batch = ArrayAdapter(x, what="predict_on_batch").arrays()[0]
        out = self(map_data(lambda v: self._leaf_tensor(v, expand_1d=True), batch), training=False)
        return pack_like(out, [np.asarray(o) for o in flatten(out)])


def _fit_callbacks(callbacks, verbose, logs_reader):
    """fit's callbacks in Keras 3's order: the user's, then ``History``, then the progress bar; a ``History`` or
    ``ProgbarLogger`` the user passed serves instead of a new one. History comes after the user's callbacks so it
    records what they add to the epoch logs (``learning_rate`` from ``ReduceLROnPlateau``...).

    Returns:
        ``(callbacks, history)``.
    """
    callbacks = list(callbacks or [])
    history = next((cb for cb in callbacks if isinstance(cb, History)), None)
    if history is None:
        history = History()
        callbacks.append(history)
    bar = next((cb for cb in callbacks if isinstance(cb, ProgbarLogger)), None)
    if bar is None and verbose:
        callbacks.append(ProgbarLogger(verbose, logs_reader))
    elif bar is not None and bar.read_logs is None:
        bar.read_logs = logs_reader
    return callbacks, history


def _result(logs, return_dict):
    if return_dict:
        return logs
    return logs["loss"] if len(logs) == 1 else list(logs.values())
