"""Losses (``cuflow.losses`` / ``cuflow.keras.losses``), with Keras 3's names, defaults and formulas.

Each loss is a function from ``(y_true, y_pred)`` to one value per sample (the last axis reduced) written with
cuflow ops, so gradients flow through it, plus a :class:`Loss` class that applies ``sample_weight`` and a
reduction. Probability inputs are clipped to ``[epsilon, 1 - epsilon]`` before the log, as Keras does, with
``keras.backend.epsilon()`` (1e-7 unless ``set_epsilon`` changed it) read at each call.

Example:

>>> import cuflow as tf
>>> round(float(tf.losses.MeanSquaredError()([[0.0, 1.0]], [[1.0, 1.0]])), 4)
0.5
"""
import numpy as np

from . import backend as _backend
from . import ops
from .ops import nn as _nn
from .ops.base import array_of, xp
from .tensor import Tensor, convert_to_tensor

__all__ = ["Loss", "LossFunctionWrapper", "MeanSquaredError", "MeanAbsoluteError", "Huber", "BinaryCrossentropy",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "mean_squared_error", "mse",
           "mean_absolute_error", "mae", "huber", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "get", "serialize", "deserialize"]

_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


# --- input checks ----------------------------------------------------------------------------------------------
def _prepare(name, y_true, y_pred):
    """Tensors of one dtype and one rank: ``y_true`` of shape ``(n,)`` meets ``y_pred`` of shape ``(n, 1)`` as
    Keras allows; any other shape mismatch is an error naming the loss and both shapes."""
    y_pred = convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = ops.cast(y_pred, "float32")
    y_true = _like(y_true, y_pred)
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(true_shape) == len(pred_shape) + 1 and true_shape[-1:] == (1,):
        y_true = ops.squeeze(y_true, -1)
    elif len(pred_shape) == len(true_shape) + 1 and pred_shape[-1:] == (1,):
        y_true = ops.expand_dims(y_true, -1)
    if tuple(y_true.shape) != pred_shape:
        raise ValueError(f"{name}: labels and predictions must have the same shape, got y_true with shape "
                         f"{true_shape} and y_pred with shape {pred_shape}")
    return y_true, y_pred


def _like(value, reference):
    """``value`` as a Tensor of ``reference``'s dtype on its device (labels are never differentiated)."""
    if isinstance(value, Tensor):
        return value if value.dtype == reference.dtype else ops.cast(value, reference.dtype)
    return Tensor(array_of(value, like=reference._data, dtype=reference.dtype))


def _logits_behind(y_pred, from_logits, activation):
    """``(y_pred, from_logits)``: probabilities that ``activation`` (``"softmax"`` or ``"sigmoid"``) made are replaced
    by the logits it remembered, as Keras 3's TensorFlow backend does. The loss and its gradient are then those of
    the logits path: equal to the probability path's wherever no probability is clipped to ``[epsilon,
    1 - epsilon]``, finite where it is, and a few ops instead of a dozen."""
    if not from_logits:
        made = getattr(y_pred, "_logits", None)
        if made is not None and made[0] == activation:
            return made[1], True
    return y_pred, from_logits


def _clipped(p):
    epsilon = _backend.epsilon()
    return ops.clip_by_value(p, epsilon, 1.0 - epsilon)


# --- loss functions: one value per sample -------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    """``mean(square(y_true - y_pred), axis=-1)``."""
    y_true, y_pred = _prepare("mean_squared_error", y_true, y_pred)
    return ops.reduce_mean(ops.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_true - y_pred), axis=-1)``."""
    y_true, y_pred = _prepare("mean_absolute_error", y_true, y_pred)
    return ops.reduce_mean(ops.abs(y_true - y_pred), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """``0.5 * e ** 2`` where ``|e| <= delta``, else ``delta * |e| - 0.5 * delta ** 2``; mean over the last
    axis."""
    y_true, y_pred = _prepare("huber", y_true, y_pred)
    error = ops.abs(y_pred - y_true)
    quadratic = ops.minimum(error, delta)
    # the same piecewise value, written so that its gradient needs no `where`
    return ops.reduce_mean(0.5 * quadratic * quadratic + delta * (error - quadratic), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross entropy, mean over ``axis``; labels are smoothed towards 0.5 by ``label_smoothing``."""
    y_pred, from_logits = _logits_behind(y_pred, from_logits, "sigmoid")
    y_true, y_pred = _prepare("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        elementwise = _nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
    else:
        p = _clipped(y_pred)
        elementwise = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.reduce_mean(elementwise, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross entropy against one-hot (or soft) labels along ``axis``; probabilities are renormalized to sum to 1,
    as Keras does."""
    if axis in (-1, np.ndim(y_pred) - 1):  # the activation's logits are along the last axis
        y_pred, from_logits = _logits_behind(y_pred, from_logits, "softmax")
    y_true, y_pred = _prepare("categorical_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    if from_logits:
        return _nn.softmax_cross_entropy_with_logits(y_true, y_pred, axis=axis)
    p = _clipped(y_pred / ops.reduce_sum(y_pred, axis=axis, keepdims=True))
    return -ops.reduce_sum(y_true * ops.log(p), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Cross entropy against integer labels: ``y_true`` has ``y_pred``'s shape without the class axis (or with it
    of size 1). Labels equal to ``ignore_class`` contribute 0 (and :class:`SparseCategoricalCrossentropy` leaves
    them out of the mean)."""
    return _sparse_crossentropy(y_true, y_pred, from_logits, ignore_class, axis)[0]


def _sparse_crossentropy(y_true, y_pred, from_logits, ignore_class, axis):
    """The per-sample losses and the mask of the samples that count (None without ``ignore_class``)."""
    name = "sparse_categorical_crossentropy"
    y_pred, from_logits = _logits_behind(convert_to_tensor(y_pred), from_logits, "softmax")
    if axis not in (-1, y_pred.ndim - 1):
        raise NotImplementedError(f"{name}: only the last axis can be the class axis, got axis={axis}")
    labels = array_of(y_true, like=y_pred._data)
    if labels.ndim == y_pred.ndim and labels.shape[-1:] == (1,):
        labels = labels[..., 0]
    if y_pred.ndim < 1 or tuple(labels.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"{name}: y_true must have y_pred's shape without the class axis, got y_true with shape "
                         f"{tuple(np.shape(labels))} and y_pred with shape {tuple(y_pred.shape)}")
    if labels.dtype.kind == "f":
        labels = labels.astype(np.int64)  # Keras casts float labels
    elif labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: y_true must hold integer class indices, got dtype {labels.dtype}")
    mask = None
    if ignore_class is not None:
        mask = labels != ignore_class
        labels = labels * mask
    classes = y_pred.shape[-1]
    on_cpu = type(labels) is np.ndarray
    if on_cpu and labels.size and (labels.min() < 0 or labels.max() >= classes):
        first = labels[(labels < 0) | (labels >= classes)].ravel()[0]
        raise ValueError(f"{name}: label {int(first)} is out of range [0, {classes}): y_pred has {classes} classes")
    # On the GPU the range is not checked on the host (a device read that would stall every step): a bad label
    # makes its sample's loss and gradient NaN, as TensorFlow on a GPU.
    if from_logits:  # one fused kernel each way on the GPU (softmax_ce.cu)
        losses = _nn.sparse_softmax_cross_entropy_with_logits(labels, y_pred)
    else:
        hot = ops.one_hot(Tensor(labels), classes, dtype=y_pred.dtype)
        log_probs = ops.log(_clipped(y_pred / ops.reduce_sum(y_pred, axis=-1, keepdims=True)))
        losses = -ops.reduce_sum(hot * log_probs, axis=-1)
        if not on_cpu:  # times NaN where a label is bad, else times 1 (exact)
            bad = (labels < 0) | (labels >= classes)
            losses = losses * Tensor(xp(labels).where(bad, np.nan, 1.0).astype(losses._data.dtype))
    if mask is not None:
        mask = Tensor(mask.astype(y_pred._data.dtype))
        losses = losses * mask
    return losses, mask


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# --- loss classes ------------------------------------------------------------------------------------------------
class Loss:
    """Base class: ``loss(y_true, y_pred, sample_weight=None)`` computes :meth:`call` per sample, weights it and
    reduces it.

    Args:
        reduction: ``'sum_over_batch_size'`` (the default: the weighted sum divided by the number of values),
            ``'sum'``, or ``'none'``/``None`` (the weighted per-sample values).
        name: the loss's name.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of 'sum_over_batch_size', 'sum', "
                             f"'none', got {reduction!r}")
        self.name = name or type(self).__name__
        self.reduction = reduction
        self.dtype = dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.call(y_true, y_pred)
        mask = None
        if isinstance(values, tuple):
            values, mask = values
        return _reduce(self.name, values, sample_weight, mask, self.reduction)

    def call(self, y_true, y_pred):
        """The per-sample losses (or ``(losses, mask)``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _reduce(name, values, sample_weight, mask, reduction):
    count = values.size
    weights = None
    if sample_weight is not None:
        weights = _like(sample_weight, values)
        if weights.ndim == values.ndim + 1 and weights.shape[-1] == 1:
            weights = ops.squeeze(weights, -1)
        while weights.ndim < values.ndim:
            weights = ops.expand_dims(weights, -1)
        try:
            np.broadcast_shapes(tuple(weights.shape), tuple(values.shape))
        except ValueError:
            raise ValueError(f"{name}: sample_weight with shape {tuple(weights.shape)} does not fit the "
                             f"per-sample losses of shape {tuple(values.shape)}") from None
    if mask is not None:
        weights = mask if weights is None else weights * mask
        if reduction == "sum_over_batch_size":
            # Keras 3: masked-out values leave the mean, so it averages over the values that count
            count = None
            denominator = ops.maximum(ops.reduce_sum(mask), _backend.epsilon())
    if weights is not None:
        values = values * weights
    if reduction in ("none", None):
        return values
    if reduction == "sum_over_batch_size" and count and count == values.size:
        return ops.reduce_mean(values)  # the sum over the count, in one op
    total = ops.reduce_sum(values)
    if reduction == "sum":
        return total
    return total / denominator if count is None else total / max(count, 1)


class LossFunctionWrapper(Loss):
    """A :class:`Loss` around a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        super().__init__(name=name or fn.__name__, reduction=reduction)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class MeanSquaredError(LossFunctionWrapper):
    """Mean of squares of errors: ``mean(square(y_true - y_pred), axis=-1)``, then the reduction."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(mean_squared_error, reduction=reduction, name=name)


class MeanAbsoluteError(LossFunctionWrapper):
    """Mean of absolute errors: ``mean(abs(y_true - y_pred), axis=-1)``, then the reduction."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(mean_absolute_error, reduction=reduction, name=name)


class Huber(LossFunctionWrapper):
    """Huber loss: quadratic for errors up to ``delta``, linear beyond."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(huber, reduction=reduction, name=name, delta=delta)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary cross entropy for 0/1 labels; ``from_logits=True`` takes logits instead of probabilities."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy"):
        super().__init__(binary_crossentropy, reduction=reduction, name=name, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class CategoricalCrossentropy(LossFunctionWrapper):
    """Cross entropy for one-hot labels; ``from_logits=True`` takes logits instead of probabilities."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy"):
        super().__init__(categorical_crossentropy, reduction=reduction, name=name, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross entropy for integer labels; ``ignore_class`` labels are left out of the loss and of the mean."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        super().__init__(sparse_categorical_crossentropy, reduction=reduction, name=name, from_logits=from_logits,
                         ignore_class=ignore_class)

    def call(self, y_true, y_pred):
        kw = self._fn_kwargs
        return _sparse_crossentropy(y_true, y_pred, kw["from_logits"], kw["ignore_class"], -1)


# --- lookup ------------------------------------------------------------------------------------------------------
_CLASSES = {cls.__name__: cls for cls in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
                                          CategoricalCrossentropy, SparseCategoricalCrossentropy)}
_FUNCTIONS = {"mean_squared_error": mean_squared_error, "mse": mean_squared_error, "MSE": mean_squared_error,
              "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error, "MAE": mean_absolute_error,
              "huber": huber, "huber_loss": huber, "binary_crossentropy": binary_crossentropy,
              "categorical_crossentropy": categorical_crossentropy,
              "sparse_categorical_crossentropy": sparse_categorical_crossentropy}


def serialize(loss):
    """``{"class_name": ..., "config": ...}`` for a Loss object, the name for a loss function."""
    if isinstance(loss, Loss):
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    return loss.__name__


def deserialize(config, custom_objects=None):
    """The loss described by :func:`serialize`'s output."""
    from ._known import deserialize_known
    if isinstance(config, str):
        return get(config) if config not in (custom_objects or {}) else custom_objects[config]
    return deserialize_known(config, {**_CLASSES, **_FUNCTIONS, **(custom_objects or {})}, "loss", "losses")


def get(identifier):
    """Resolves a loss: a name gives the loss function (``'mse'`` -> :func:`mean_squared_error`), a class name
    (``'MeanSquaredError'``) or dict gives an instance, a callable is returned as is, None gives None.

    Raises:
        ValueError: the identifier names no known loss.
    """
    if identifier is None or isinstance(identifier, Loss) or (callable(identifier) and
                                                                not isinstance(identifier, type)):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}. Known losses: "
                     f"{', '.join(sorted(_FUNCTIONS))} (or a class name: {', '.join(sorted(_CLASSES))})")
