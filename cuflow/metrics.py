"""Metrics (``cuflow.metrics`` / ``cuflow.keras.metrics``): stateful accumulators with Keras's
``update_state`` / ``result`` / ``reset_state``.

A metric's state is Variables on the device that was current when it was created; ``update_state`` works on raw
arrays of that device and never copies a value to the host, so metrics accumulate on the GPU during ``fit`` and
only ``result()`` read on the host (``float(m.result())``) syncs.

Example:

>>> from cuflow import metrics
>>> m = metrics.Mean()
>>> m.update_state([1.0, 2.0, 6.0])
>>> float(m.result())
3.0
"""
import numpy as np

from .ops.base import array_of, xp
from .tensor import Tensor, Variable, constant

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "MeanSquaredError", "Precision", "Recall", "AUC", "accuracy",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "get", "resolve_accuracy",
           "serialize", "deserialize"]

_EPSILON = 1e-7


class Metric:
    """Base class: state made with :meth:`add_variable` in ``__init__``, ``update_state(...)`` adds to it,
    ``result()`` reads it (a Tensor on the metric's device), ``reset_state()`` zeroes it."""

    def __init__(self, name=None, dtype="float32"):
        self.name = name or type(self).__name__.lower()
        self.dtype = dtype
        self._variables = []

    def add_variable(self, shape=(), name=None, initializer=0.0):
        var = Variable(constant(initializer, dtype=self.dtype, shape=tuple(shape)), trainable=False,
                       name=f"{self.name}/{name}")
        self._variables.append((var, initializer))
        return var

    @property
    def variables(self):
        return [v for v, _ in self._variables]

    def reset_state(self):
        for var, initial in self._variables:
            var._data = xp(var._data).full_like(var._data, initial)

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def __call__(self, *args, **kwargs):
        """Updates the state and returns the result, as in Keras."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<cuflow.metrics.{type(self).__name__} name={self.name!r}>"

    # --- helpers for subclasses: raw arrays on the state's device --------------------------------------------------
    def _array(self, value):
        return array_of(value, like=self._variables[0][0]._data)

    def _add(self, var, amount):
        data = var._data
        data += amount  # in place: NumPy turns a 0-d array plus a scalar into a scalar


def _tensor(array):
    """A Tensor of a result (NumPy reductions return scalars; a Tensor holds an array)."""
    return Tensor(xp(array).asarray(array))


def _divide_no_nan(num, den):
    m = xp(num)
    return m.where(den == 0, m.zeros_like(num), num / m.where(den == 0, m.ones_like(den), den))


def _weights(metric, sample_weight, values):
    """``sample_weight`` broadcast to ``values`` (Keras squeezes or expands one trailing axis first)."""
    w = metric._array(sample_weight).astype(values.dtype, copy=False)
    if w.ndim == values.ndim + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    while w.ndim < values.ndim:
        w = w[..., None]
    try:
        return xp(values).broadcast_to(w, values.shape)
    except ValueError:
        raise ValueError(f"{metric.name}: sample_weight with shape {tuple(np.shape(sample_weight))} does not fit "
                         f"values of shape {tuple(values.shape)}") from None


class Sum(Metric):
    """The (weighted) sum of the values seen."""

    def __init__(self, name="sum", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(name="total")

    def update_state(self, values, sample_weight=None):
        values = self._array(values).astype(self.total._data.dtype, copy=False)
        if sample_weight is not None:
            values = values * _weights(self, sample_weight, values)
        self._add(self.total, values.sum())

    def result(self):
        return _tensor(self.total._data.copy())


class Mean(Metric):
    """The (weighted) mean of the values seen: ``sum(values * w) / sum(w)`` (0 before any update)."""

    def __init__(self, name="mean", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(name="total")
        self.count = self.add_variable(name="count")

    def update_state(self, values, sample_weight=None):
        values = self._array(values).astype(self.total._data.dtype, copy=False)
        if sample_weight is None:
            self._add(self.total, values.sum())
            self._add(self.count, xp(values).asarray(values.size))
            return
        w = _weights(self, sample_weight, values)
        self._add(self.total, (values * w).sum())
        self._add(self.count, w.sum())

    def result(self):
        return _tensor(_divide_no_nan(self.total._data, self.count._data))


# --- per-sample metric functions: raw arrays in, raw arrays out ------------------------------------------------------
def _same_rank(y_true, y_pred):
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    return y_true, y_pred


def _check_shapes(name, y_true, y_pred):
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"{name}: labels and predictions must have the same shape, got y_true with shape "
                         f"{tuple(y_true.shape)} and y_pred with shape {tuple(y_pred.shape)}")


def accuracy(y_true, y_pred):
    """1.0 where ``y_true == y_pred`` elementwise, else 0.0."""
    y_true, y_pred = _same_rank(y_true, y_pred)
    _check_shapes("accuracy", y_true, y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Mean over the last axis of ``y_true == (y_pred > threshold)``."""
    y_true, y_pred = _same_rank(y_true, y_pred)
    _check_shapes("binary_accuracy", y_true, y_pred)
    hits = (y_true.astype(np.float32) == (y_pred > threshold).astype(np.float32)).astype(np.float32)
    return hits.mean(axis=-1) if hits.ndim else hits


def categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_true) == argmax(y_pred)`` over the last axis."""
    _check_shapes("categorical_accuracy", y_true, y_pred)
    return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label equals ``argmax(y_pred)`` over the last axis."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1:] == (1,):
        y_true = y_true[..., 0]
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"sparse_categorical_accuracy: y_true must have y_pred's shape without the class axis, got "
                         f"y_true with shape {tuple(y_true.shape)} and y_pred with shape {tuple(y_pred.shape)}")
    return (y_true.astype(np.int64) == y_pred.argmax(axis=-1)).astype(np.float32)


def mean_squared_error(y_true, y_pred):
    """``mean(square(y_true - y_pred), axis=-1)``."""
    y_true, y_pred = _same_rank(y_true, y_pred)
    _check_shapes("mean_squared_error", y_true, y_pred)
    diff = y_true.astype(np.float32) - y_pred.astype(np.float32)
    return (diff * diff).mean(axis=-1)


class MeanMetricWrapper(Mean):
    """The running mean of ``fn(y_true, y_pred, **kwargs)``.

    ``fn`` receives raw arrays (NumPy or CuPy) when it is one of this module's functions, and Tensors otherwise (a
    user function written with cuflow ops, as in ``metrics=[my_fn]``).
    """

    def __init__(self, fn, name=None, dtype="float32", **kwargs):
        super().__init__(name=name or fn.__name__, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        self._on_arrays = fn in _ARRAY_FUNCTIONS

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = self._array(y_true), self._array(y_pred)
        if self._on_arrays:
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
        else:  # fresh Tensors: an active GradientTape does not record the metric
            values = self._fn(Tensor(y_true), Tensor(y_pred), **self._fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_ARRAY_FUNCTIONS = (accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, mean_squared_error)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly."""

    def __init__(self, name="accuracy", dtype="float32"):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches 0/1 labels."""

    def __init__(self, name="binary_accuracy", dtype="float32", threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg max of the predictions matches that of one-hot labels."""

    def __init__(self, name="categorical_accuracy", dtype="float32"):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg max of the predictions matches integer labels."""

    def __init__(self, name="sparse_categorical_accuracy", dtype="float32"):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    """The running mean of ``mean(square(y_true - y_pred), axis=-1)``."""

    def __init__(self, name="mean_squared_error", dtype="float32"):
        super().__init__(mean_squared_error, name=name, dtype=dtype)


# --- confusion-matrix metrics ------------------------------------------------------------------------------------
class _ConfusionMatrixMetric(Metric):
    """Counts true/false positives/negatives at each threshold (a prediction counts as positive when it is
    strictly above the threshold, as in Keras)."""

    _counts = ()

    def __init__(self, thresholds, name, dtype):
        super().__init__(name=name, dtype=dtype)
        self.thresholds = list(thresholds)
        self._scalar = False
        for count in self._counts:
            setattr(self, count, self.add_variable((len(self.thresholds),), name=count))
        self._thresholds = self._array(np.asarray(self.thresholds, dtype=np.float32))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _same_rank(self._array(y_true), self._array(y_pred))
        _check_shapes(self.name, y_true, y_pred)
        labels = (y_true > 0.5).reshape(-1)
        above = y_pred.reshape(1, -1) > self._thresholds.reshape(-1, 1)   # (thresholds, values)
        w = None if sample_weight is None else \
            _weights(self, sample_weight, y_pred.astype(np.float32)).reshape(1, -1)
        cases = {"true_positives": above & labels, "false_positives": above & ~labels,
                 "true_negatives": ~above & ~labels, "false_negatives": ~above & labels}
        for count in self._counts:
            hits = cases[count].astype(np.float32)
            self._add(getattr(self, count), (hits if w is None else hits * w).sum(axis=1))

    def _out(self, values):
        return _tensor(values[0] if self._scalar else values)


def _thresholds_of(thresholds):
    if thresholds is None:
        return [0.5], True
    if isinstance(thresholds, (int, float)):
        return [float(thresholds)], True
    return [float(t) for t in thresholds], False


class Precision(_ConfusionMatrixMetric):
    """``true_positives / (true_positives + false_positives)`` at ``thresholds`` (default 0.5; a list gives one
    value per threshold)."""

    _counts = ("true_positives", "false_positives")

    def __init__(self, thresholds=None, name="precision", dtype="float32"):
        values, scalar = _thresholds_of(thresholds)
        super().__init__(values, name, dtype)
        self._scalar = scalar
        self.init_thresholds = thresholds

    def result(self):
        tp, fp = self.true_positives._data, self.false_positives._data
        return self._out(_divide_no_nan(tp, tp + fp))

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class Recall(_ConfusionMatrixMetric):
    """``true_positives / (true_positives + false_negatives)`` at ``thresholds`` (default 0.5)."""

    _counts = ("true_positives", "false_negatives")

    def __init__(self, thresholds=None, name="recall", dtype="float32"):
        values, scalar = _thresholds_of(thresholds)
        super().__init__(values, name, dtype)
        self._scalar = scalar
        self.init_thresholds = thresholds

    def result(self):
        tp, fn = self.true_positives._data, self.false_negatives._data
        return self._out(_divide_no_nan(tp, tp + fn))

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class AUC(_ConfusionMatrixMetric):
    """Area under the ROC curve, by the trapezoid rule over ``num_thresholds`` evenly spaced thresholds (Keras's
    thresholds: ``(i + 1) / (num_thresholds - 1)`` plus one just below 0 and one just above 1).

    Args:
        num_thresholds: at least 2 (default 200).
        curve: 'ROC' (the only curve supported so far).
        summation_method: 'interpolation' (trapezoids), 'minoring' or 'majoring' (lower/upper Riemann sums).
    """

    _counts = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc",
                 dtype="float32"):
        if num_thresholds < 2:
            raise ValueError(f"AUC: num_thresholds must be > 1, got {num_thresholds}")
        if str(curve).upper() != "ROC":
            raise NotImplementedError(f"AUC: curve={curve!r} is not supported yet; use 'ROC'")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', got "
                             f"{summation_method!r}")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        super().__init__([0.0 - _EPSILON] + inner + [1.0 + _EPSILON], name, dtype)
        self.num_thresholds = num_thresholds
        self.curve = "ROC"
        self.summation_method = summation_method

    def result(self):
        tp, fp = self.true_positives._data, self.false_positives._data
        tn, fn = self.true_negatives._data, self.false_negatives._data
        tpr, fpr = _divide_no_nan(tp, tp + fn), _divide_no_nan(fp, fp + tn)
        m = xp(tp)
        if self.summation_method == "interpolation":
            heights = (tpr[:-1] + tpr[1:]) / 2
        elif self.summation_method == "minoring":
            heights = m.minimum(tpr[:-1], tpr[1:])
        else:
            heights = m.maximum(tpr[:-1], tpr[1:])
        return _tensor(((fpr[:-1] - fpr[1:]) * heights).sum())

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method}


# --- lookup ------------------------------------------------------------------------------------------------------
_CLASSES = {cls.__name__: cls for cls in (Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                          SparseCategoricalAccuracy, MeanSquaredError, Precision, Recall, AUC)}
_ALIASES = {"accuracy": Accuracy, "acc": Accuracy, "binary_accuracy": BinaryAccuracy,
            "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
            "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError, "precision": Precision,
            "recall": Recall, "auc": AUC, "mean": Mean, "sum": Sum}


def get(identifier):
    """Resolves a metric: an instance is returned as is, a name (``'mse'``, ``'AUC'``, ``'accuracy'``...) gives
    a new instance, a plain function becomes a :class:`MeanMetricWrapper`, a dict is deserialized. For
    ``'accuracy'`` chosen by the loss, as ``compile`` does, use :func:`resolve_accuracy`.

    Raises:
        ValueError: the identifier names no known metric.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier) or _ALIASES.get(identifier.lower())
        if cls is not None:
            return cls(name=identifier) if identifier.lower() in ("accuracy", "acc") else cls()
    elif isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    elif callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. Known metrics: "
                     f"{', '.join(sorted(set(_ALIASES) | set(_CLASSES)))}")


def _loss_kind(loss):
    """'binary', 'categorical', 'sparse' or None, from a loss given as a name, function or Loss object."""
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None) or type(loss).__name__
    name = name.lower().replace("_", "")
    if name.startswith("sparsecategoricalcrossentropy"):
        return "sparse"
    if name.startswith("categoricalcrossentropy"):
        return "categorical"
    if name.startswith("binarycrossentropy"):
        return "binary"
    return None


def resolve_accuracy(identifier, loss=None, y_true_shape=None, y_pred_shape=None):
    """The metric ``compile(metrics=['accuracy'])`` means, as Keras picks it: by the loss when it is one of the
    crossentropies, else by the shapes (Keras 3: a last prediction axis of 1 is binary, labels of lower rank or
    with a last axis of 1 are sparse, otherwise categorical), else plain :class:`Accuracy`. Identifiers other than
    'accuracy'/'acc' go to :func:`get`.

    Example:

    >>> from cuflow import metrics
    >>> type(metrics.resolve_accuracy("accuracy", "sparse_categorical_crossentropy")).__name__
    'SparseCategoricalAccuracy'
    """
    if not (isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc")):
        return get(identifier)
    kind = None if loss is None else _loss_kind(loss)
    if kind is None and y_pred_shape is not None and y_true_shape is not None:
        y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
        if y_pred_shape[-1:] == (1,):
            kind = "binary"
        elif len(y_true_shape) < len(y_pred_shape) or (len(y_true_shape) >= 2 and y_true_shape[-1] == 1):
            kind = "sparse"
        else:
            kind = "categorical"
    cls = {"binary": BinaryAccuracy, "categorical": CategoricalAccuracy, "sparse": SparseCategoricalAccuracy,
           None: Accuracy}[kind]
    return cls(name=identifier)


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config, custom_objects=None):
    """The metric described by :func:`serialize`'s dict."""
    from ._known import deserialize_known
    return deserialize_known(config, {**_CLASSES, **(custom_objects or {})}, "metric", "metrics")
