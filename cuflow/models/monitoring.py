"""The callbacks that watch the logs and act on the model: ``EarlyStopping``, ``ModelCheckpoint``,
``ReduceLROnPlateau``, and ``LearningRateScheduler``. Re-exported by :mod:`cuflow.models.callbacks`
(``keras.callbacks``).

The first three share :class:`_Monitored`: which log entry they watch, whether lower or higher is better, and what
counts as an improvement, decided as in Keras 3.
"""
import inspect
import os
import warnings

import numpy as np

from .callbacks import Callback, _host_logs, _scalar

__all__ = ["EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler"]

# Keras decides 'auto' from the metric's direction; these are the names whose direction is known
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "fmeasure", "f1", "iou", "r2", "cosine_similarity")
_LOWER_IS_BETTER = ("loss", "error", "crossentropy", "hinge", "divergence", "poisson", "logcosh", "mse", "mae",
                    "mape", "msle")


def _check_mode(owner, mode):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


class _Monitored(Callback):
    """What EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share: a monitored log entry, whether lower or
    higher is better (``mode``), and ``min_delta``, the least change that counts as an improvement."""

    _unknown_direction = None  # 'min' or 'max' to fall back to in 'auto' mode; None raises (Keras 3)

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        self.monitor, self.mode = monitor, _check_mode(type(self).__name__, mode)
        self.min_delta = abs(min_delta)
        self.higher_is_better = None

    def _direction(self):
        if self.higher_is_better is None:
            self.higher_is_better = self._resolve_direction()
        return self.higher_is_better

    def _resolve_direction(self):
        if self.mode != "auto":
            return self.mode == "max"
        name = self.monitor.removeprefix("val_").lower()
        if name == "loss" or any(part in name for part in _LOWER_IS_BETTER):
            return False
        if any(part in name for part in _HIGHER_IS_BETTER):
            return True
        if self._unknown_direction is not None:
            return self._unknown_direction == "max"
        raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor} but cuflow isn't able to "
                         "automatically determine whether that metric should be maximized or minimized. Pass "
                         "`mode='max'` in order to use the highest metric value, or pass `mode='min'` in order to "
                         "use the lowest value.")

    def _is_improvement(self, current, reference):
        if reference is None:
            return True
        if self._direction():
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def _monitored_value(self, logs, what):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{what} conditioned on metric `{self.monitor}` which is not available. Available metrics "
                          f"are: {','.join(logs or {})}", stacklevel=3)
            return None
        return _scalar(value)


def _optimizer_of(model, owner):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{owner}: the model has no optimizer with a learning_rate; call model.compile(optimizer=...) "
                         f"first, got optimizer={optimizer!r}")
    return optimizer


def _set_learning_rate(model, value, owner):
    from ..optim.schedules import LearningRateSchedule
    optimizer = _optimizer_of(model, owner)
    if isinstance(getattr(optimizer, "_learning_rate", None), LearningRateSchedule):
        raise TypeError(f"{owner}: this optimizer was created with a `LearningRateSchedule` object as its "
                        "`learning_rate` constructor argument, hence its learning rate is not settable. Pass a float "
                        "learning_rate to the optimizer to use this callback.")
    optimizer.learning_rate = value


# --- the callbacks ---------------------------------------------------------------------------------------------
class EarlyStopping(_Monitored):
    """Stops training when a monitored quantity has stopped improving.

    Args:
        monitor: the log entry to watch (``'val_loss'``; ``'loss'``, ``'val_accuracy'``...).
        min_delta: the least change counted as an improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a message when the callback acts.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (inferred from the name: losses go down, accuracies go up).
        baseline: training stops unless the quantity beats this value within ``patience`` epochs.
        restore_best_weights: at the end of training, set the weights back to those of the best epoch.
        start_from_epoch: epochs to wait (warm-up) before watching for improvement.

    Raises:
        ValueError: ``mode='auto'`` and the direction of ``monitor`` cannot be inferred from its name.

    Example:

    >>> import numpy as np
    >>> from cuflow import keras
    >>> callback = keras.callbacks.EarlyStopping(monitor="loss", patience=3)
    >>> model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    >>> model.compile(keras.optimizers.SGD(learning_rate=0.0), loss="mse")  # lr 0: the loss never improves
    >>> history = model.fit(np.ones((8, 2)), np.zeros(8), epochs=10, callbacks=[callback], verbose=0)
    >>> len(history.history["loss"])  # one epoch sets the best, three more without improvement
    4
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def on_train_begin(self, logs=None):
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitored_value(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0  # only a value beating both the baseline and the best so far restarts the wait
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitored):
    """Saves the model (``model.save``) or its weights (``model.save_weights``) during training.

    Args:
        filepath: where to save; may hold ``{epoch:02d}`` (1-based), ``{batch}`` and any log entry, e.g.
            ``'ckpt-{epoch:02d}-{val_loss:.2f}.keras'``. It must end in ``.weights.h5`` with
            ``save_weights_only=True``, else in ``.keras`` or ``.h5``.
        monitor: the log entry compared by ``save_best_only``.
        verbose: 1 prints a message on each save.
        save_best_only: save only when ``monitor`` improves on the best value so far.
        save_weights_only: save the weights only.
        mode: ``'min'``, ``'max'`` or ``'auto'``.
        save_freq: ``'epoch'``, or an integer: save every that many training batches.
        initial_value_threshold: the best value to beat before the first save (with ``save_best_only``).

    Raises:
        ValueError: ``save_freq`` is neither ``'epoch'`` nor an integer, or ``filepath`` has the wrong ending.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, 0)
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.save_freq, self.best = save_freq, initial_value_threshold
        if save_freq != "epoch" and (not isinstance(save_freq, int) or isinstance(save_freq, bool) or save_freq < 1):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or integer "
                             "values")
        if save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must "
                             f"end in `.weights.h5` (Keras weights format). Received: filepath={self.filepath}")
        if not save_weights_only and not self.filepath.endswith((".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}")
        self._current_epoch, self._batches_since_save = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = _host_logs(logs)
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                          f"directory: {filepath}")
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=4)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, saving model to "
                      f"{filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None


class ReduceLROnPlateau(_Monitored):
    """Multiplies the learning rate by ``factor`` when a monitored quantity has stopped improving, and logs the
    learning rate as ``logs['learning_rate']``.

    Args:
        monitor: the log entry to watch.
        factor: the new learning rate is ``lr * factor`` (must be below 1).
        patience: epochs without improvement before the learning rate is reduced.
        verbose: 1 prints a message on each reduction.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (names with ``acc`` go up, anything else down, as in Keras).
        min_delta: the least change counted as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the learning rate is never lowered below this.

    Raises:
        ValueError: ``factor >= 1``.
        TypeError: (during training) the optimizer's learning rate is a ``LearningRateSchedule``.
    """

    _unknown_direction = "min"

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if "epsilon" in kwargs:  # the tf.keras 1 name of min_delta
            min_delta = kwargs.pop("epsilon")
            warnings.warn("`epsilon` argument is deprecated and will be removed, use `min_delta` instead.",
                          stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected keyword argument(s) {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait = self.cooldown_counter = 0
        self.best = None

    def on_train_begin(self, logs=None):
        self.wait = self.cooldown_counter = 0
        self.best = None

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(_optimizer_of(self.model, "ReduceLROnPlateau").learning_rate)
        current = self._monitored_value(logs, "Learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = logs["learning_rate"]
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    _set_learning_rate(self.model, new_lr, "ReduceLROnPlateau")
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (``epoch`` counts from 0,
    ``lr`` is the current rate; a one-argument ``schedule(epoch)`` works too), and logs it as
    ``logs['learning_rate']``.

    Args:
        schedule: the function; it must return a float.
        verbose: 1 prints the new rate each epoch.

    Raises:
        ValueError: (during training) ``schedule`` returned something other than a float.

    Example:

    >>> from cuflow import keras
    >>> halve_after_two = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function schedule(epoch, lr), got "
                            f"{schedule!r}")
        self.schedule, self.verbose = schedule, verbose
        self._takes_lr = _accepts_two_arguments(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _optimizer_of(self.model, "LearningRateScheduler")
        lr = self.schedule(epoch, float(optimizer.learning_rate)) if self._takes_lr else self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        _set_learning_rate(self.model, lr, "LearningRateScheduler")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(_optimizer_of(self.model, "LearningRateScheduler").learning_rate)


def _accepts_two_arguments(fn):
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: call them the Keras 3 way
        return True
    try:
        signature.bind(0, 0.0)
        return True
    except TypeError:
        return False
