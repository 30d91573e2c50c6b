"""Callbacks for ``fit``/``evaluate``/``predict`` (``keras.callbacks``): the ``Callback`` base, ``History``, the
progress bar, and Keras 3's callbacks with their names, arguments and defaults.

The progress bar is tqdm (terminals and Jupyter both). It reads the running loss and metrics from the device at most
once per step, and only when tqdm is about to redraw, so a fast loop does not sync on every batch. The other
callbacks read epoch logs (host floats); only ``TerminateOnNaN``, ``ModelCheckpoint(save_freq=N)`` and
``TensorBoard(update_freq=N)`` read a batch's loss from the device, when they act on it.
"""
import collections.abc
import csv
import os
import time

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback",
           "TensorBoard"]


class Callback:
    """Base class: override the ``on_*`` hooks you need. ``self.model`` and ``self.params`` are set by ``fit``."""

    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)  # Keras's alias: on_batch_* are the training batch hooks

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList(Callback):
    """Forwards every hook to each callback in order."""

    def __init__(self, callbacks, model=None, params=None):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)


def _forward_hook(name):
    # as Keras's CallbackList, pass logs (None when the caller gave none) positionally: a LambdaCallback's
    # `lambda logs: ...` or `lambda epoch, logs: ...` is then always called with the arguments it names
    if name.endswith(("_begin", "_end")) and ("batch" in name or "epoch" in name):
        def hook(self, index, logs=None):
            for cb in self.callbacks:
                getattr(cb, name)(index, logs)
    else:
        def hook(self, logs=None):
            for cb in self.callbacks:
                getattr(cb, name)(logs)
    hook.__name__ = name
    return hook


for _name in [n for n in vars(Callback) if n.startswith("on_")]:
    setattr(CallbackList, _name, _forward_hook(_name))


class History(Callback):
    """Records each epoch's logs: ``history.history['loss']`` is the list of per-epoch losses."""

    def __init__(self):
        super().__init__()
        self.history, self.epoch = {}, []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def format_logs(logs):
    return " - ".join(f"{k}: {_number(v)}" for k, v in logs.items())


def _number(value):
    value = float(value)
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.4e}"  # Keras's progress-bar rule


class ProgbarLogger(Callback):
    """The fit/evaluate/predict display: a tqdm bar per epoch (verbose=1) or one line per epoch (verbose=2).

    ``logs_reader`` turns the running device values into floats; the bar calls it only when it redraws.
    """

    def __init__(self, verbose=1, logs_reader=None, refresh_s=0.1):
        super().__init__()
        self.verbose, self.read_logs, self.refresh_s = verbose, logs_reader, refresh_s
        self._bar, self._started, self._last = None, 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        if self.verbose == 1:
            from tqdm.auto import tqdm
            epochs = self.params.get("epochs", 1)
            self._bar = tqdm(total=self.params.get("steps"), desc=f"Epoch {epoch + 1}/{epochs}", unit="step",
                             leave=True, dynamic_ncols=True)
            self._last = 0.0

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        last_step = self._bar.n == self._bar.total
        if (now - self._last >= self.refresh_s or last_step) and self.read_logs is not None:
            self._bar.set_postfix_str(format_logs(self.read_logs()), refresh=True)
            self._last = now

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs or {}), refresh=True)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            seconds = time.perf_counter() - self._started
            print(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)} - {seconds:.0f}s - {format_logs(logs or {})}")


# --- helpers shared by the callbacks below ---------------------------------------------------------------------
def _scalar(value):
    """A log value as a Python float (a device scalar is read here, once)."""
    return float(value)


def _host_logs(logs):
    """``logs`` with scalar values (device scalars included) as Python floats; other values are kept."""
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value) if np.ndim(value) == 0 and not isinstance(value, str) else value
        except (TypeError, ValueError):
            out[key] = value
    return out


class CSVLogger(Callback):
    """Streams each epoch's logs to a CSV file: a header ``epoch,<sorted log names>``, then one row per epoch.

    Args:
        filename: the CSV file, e.g. ``'run/log.csv'``.
        separator: the field separator.
        append: append to an existing file (resuming a run) instead of overwriting it; the header is written only
            if the file is empty.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.writer = self.keys = self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self.append_header = not f.readline()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self.writer = self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and np.ndim(value) > 0:
        return f'"[{", ".join(map(str, value))}]"'
    return _scalar(value) if np.ndim(value) == 0 else value


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite. It reads each batch's loss from the device.

    Args:
        raise_error: raise ``RuntimeError`` at once instead of stopping gracefully (``model.stop_training``, which
            still runs every callback's ``on_train_end``).
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = _scalar(loss)
        if np.isnan(loss) or np.isinf(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating "
                                   "training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch))``.

    Args:
        on_epoch_begin, on_epoch_end: ``f(epoch, logs)``.
        on_train_begin, on_train_end: ``f(logs)``.
        on_train_batch_begin, on_train_batch_end: ``f(batch, logs)``.
        **kwargs: any other hook by name (``on_test_end=...``, ``on_predict_batch_end=...``).

    Raises:
        TypeError: a keyword is not the name of a callback hook.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        unknown = [name for name in kwargs if not (name.startswith("on_") and hasattr(Callback, name))]
        if unknown:
            raise TypeError(f"LambdaCallback: unexpected keyword argument(s) {sorted(unknown)}; hooks are "
                            f"{sorted(n for n in vars(Callback) if n.startswith('on_'))}")
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


# these subclass Callback, defined above
from .monitoring import EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau  # noqa: E402
from .tensorboard import TensorBoard  # noqa: E402
