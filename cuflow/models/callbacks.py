"""Callbacks for ``fit``/``evaluate``/``predict``: the ``Callback`` base, ``History`` and the progress bar.

The progress bar is tqdm (terminals and Jupyter both). It reads the running loss and metrics from the device at most
once per step, and only when tqdm is about to redraw, so a fast loop does not sync on every batch.
"""
import time

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger"]


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
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
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
    def hook(self, *args, **kwargs):
        for cb in self.callbacks:
            getattr(cb, name)(*args, **kwargs)
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
