"""Neural-network ops (``tf.nn``): activations, losses, dropout and normalization helpers; convolution and pooling
live in ``conv.py`` and are re-exported here.

Each op's forward works on raw arrays through ``xp``; its gradient sits right below it and is written with cuflow
ops, so higher-order gradients work.
"""
import builtins
import math as _pymath

import numpy as np

from .. import errors
from .. import devices as _device
from ..kernels.compile import KERNEL_DTYPES
from ..tensor import Tensor, convert_to_tensor
from . import random
from .base import op, xp, array_of
from .array import _ints, _axis, expand_dims, squeeze, where, one_hot, gather
from .conv import (conv1d, conv2d, conv2d_backprop_input, conv2d_backprop_filter, conv2d_transpose, max_pool,
                   max_pool1d, max_pool2d, avg_pool, avg_pool1d, avg_pool2d)
from .math import (sigmoid, tanh, exp, square, rsqrt, maximum, logical_and, greater, less, abs as _abs,
                   reduce_sum, reduce_mean, squared_difference)

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "erf", "softplus", "softsign", "silu", "swish", "sigmoid",
    "tanh", "softmax", "log_softmax", "dropout", "bias_add", "conv1d", "conv2d", "conv2d_backprop_input",
    "conv2d_backprop_filter", "conv2d_transpose", "max_pool", "max_pool1d", "max_pool2d", "avg_pool", "avg_pool1d",
    "avg_pool2d", "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits", "l2_loss", "moments", "l2_normalize", "batch_normalization",
    "embedding_lookup",
]


@op(inputs=("grad",))
def _where_grad(condition, grad):
    """``grad * condition``: TensorFlow's ReluGrad form ``gradients * (features > 0)`` (a NaN gradient stays NaN).
    One multiply by the bool mask: 4x faster than ``where`` with a zeros tensor on the CPU."""
    return (grad * array_of(condition, like=grad)).astype(grad.dtype, copy=False)


@_where_grad.gradient
def _(grad_of_grad, grad, out, condition):
    return _where_grad(condition, grad_of_grad)


@op(inputs=("grad",))
def _relu_grad(features, grad):
    """TensorFlow's ReluGrad, ``grad * (features > 0)``, as one op (the mask never becomes a tensor of its own).
    ``features`` may be relu's input or its output: both are positive at the same places."""
    return (grad * (array_of(features, like=grad) > 0)).astype(grad.dtype, copy=False)


@_relu_grad.gradient
def _(grad_of_grad, grad, out, features):
    return _relu_grad(features, grad_of_grad)


# --- activations ---------------------------------------------------------------------------------------------------
@op
def relu(features):
    """``max(features, 0)`` elementwise; the gradient at 0 is 0, as in TensorFlow.

    Example:

    >>> import cuflow as tf
    >>> tf.nn.relu([-1.0, 0.0, 2.0]).numpy()
    array([0., 0., 2.], dtype=float32)
    """
    return xp(features).maximum(features, features.dtype.type(0))


@relu.gradient
def _(grad, features, out):
    return _relu_grad(features, grad)


@op
def relu6(features):
    """``min(max(features, 0), 6)`` elementwise."""
    return xp(features).clip(features, features.dtype.type(0), features.dtype.type(6))


@relu6.gradient
def _(grad, features, out):
    return _where_grad(logical_and(greater(features, 0), less(features, 6)), grad)


@op
def leaky_relu(features, alpha=0.2):
    """``features`` where positive, ``alpha * features`` elsewhere."""
    return xp(features).where(features > 0, features, features * alpha)


@leaky_relu.gradient
def _(grad, features, out, alpha=0.2):
    return where(greater(features, 0), grad, grad * alpha)


@op
def elu(features):
    """``features`` where positive, ``exp(features) - 1`` elsewhere."""
    m = xp(features)
    return m.where(features > 0, features, m.expm1(m.minimum(features, 0)))


@elu.gradient
def _(grad, features, out):
    return where(greater(features, 0), grad, grad * (out + 1))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@op
def selu(features):
    """Scaled ELU: ``scale * elu(features)`` with ``alpha`` and ``scale`` from Klambauer et al. (2017)."""
    m = xp(features)
    negative = m.expm1(m.minimum(features, 0)) * _SELU_ALPHA
    return m.where(features > 0, features, negative) * _SELU_SCALE


@selu.gradient
def _(grad, features, out):
    return where(greater(features, 0), grad * _SELU_SCALE, grad * (out + _SELU_SCALE * _SELU_ALPHA))


# W. J. Cody's rational Chebyshev approximations (Math. Comp. 1969; netlib specfun CALERF): erf on |x| <= 0.46875,
# erfc on 0.46875 < |x| <= 4 and on |x| > 4, each good to about 1e-16 relative in float64. All three are evaluated on
# the whole array (with the argument clamped into each interval) and then selected: branch-free, so the same code
# runs on NumPy and CuPy.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
          1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
          8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
          2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
          3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
          6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
          2.33520497626869185e-3)


def _rational(t, num, den, lead):
    """``(num[-1] t^n + num[0] t^(n-1) + ... + num[n-1]) / (t^n + den[0] t^(n-1) + ... + den[n-1])``: Cody's
    Horner form, with ``lead`` the index of the numerator's leading coefficient."""
    top, bottom = num[lead] * t, t
    for a, b in zip(num[:lead - 1], den[:lead - 1]):
        top, bottom = (top + a) * t, (bottom + b) * t
    return (top + num[lead - 1]) / (bottom + den[lead - 1])


def _erf_array(x):
    m = xp(x)
    work = x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)
    y = m.abs(work)
    small = m.minimum(y, 0.46875)
    inner = small * _rational(small * small, _ERF_A, _ERF_B, 4)
    mid = m.clip(y, 0.46875, 4.0)
    erfc_mid = _rational(mid, _ERF_C, _ERF_D, 8)
    far = m.clip(y, 4.0, 27.0)  # erfc(27) underflows even in float64; the clamp keeps inf out of exp's argument
    inv_sq = 1 / (far * far)
    erfc_far = (0.56418958354775628695 - inv_sq * _rational(inv_sq, _ERF_P, _ERF_Q, 5)) / far
    # exp(-y^2) split as exp(-r^2) exp(-(y-r)(y+r)) with r = y rounded down to 1/16: keeps y^2's rounding error out
    base = m.where(y <= 4.0, mid, far)
    r = m.trunc(base * 16) / 16
    decay = m.exp(-r * r) * m.exp(-(base - r) * (base + r))
    outer = 1 - decay * m.where(y <= 4.0, erfc_mid, erfc_far)
    out = m.copysign(m.where(y <= 0.46875, inner, outer), work)
    return out.astype(x.dtype, copy=False)


@op
def erf(x):
    """The Gauss error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt`` (W. J. Cody's approximations, accurate
    to a few units in the last place in float32 and float64).

    Example:

    >>> import cuflow as tf
    >>> round(float(tf.nn.erf(1.0)), 6)
    0.842701
    """
    return _erf_array(x)


@erf.gradient
def _(grad, x, out):
    return grad * (2 / _pymath.sqrt(_pymath.pi)) * exp(-square(x))


_SQRT_HALF = 1 / _pymath.sqrt(2.0)
_GELU_TANH_SCALE = _pymath.sqrt(2 / _pymath.pi)


@op
def gelu(features, approximate=False):
    """Gaussian error linear unit: ``x * Phi(x)`` with the standard normal CDF ``Phi`` (Hendrycks & Gimpel, 2016).

    Args:
        features: a floating tensor.
        approximate: use the tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` instead of the
            exact ``0.5 x (1 + erf(x / sqrt(2)))``.
    """
    m = xp(features)
    if approximate:
        inner = (features + 0.044715 * features * features * features) * _GELU_TANH_SCALE
        return 0.5 * features * (1 + m.tanh(inner))
    return 0.5 * features * (1 + _erf_array(features * _SQRT_HALF))


@gelu.gradient
def _(grad, features, out, approximate=False):
    x = features
    if approximate:
        t = tanh((x + 0.044715 * x * x * x) * _GELU_TANH_SCALE)
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_TANH_SCALE * (1 + 3 * 0.044715 * x * x)
    else:
        slope = 0.5 * (1 + erf(x * _SQRT_HALF)) + x * exp(-0.5 * x * x) * (1 / _pymath.sqrt(2 * _pymath.pi))
    return grad * slope


@op
def softplus(features):
    """``log(exp(features) + 1)``, computed without overflow."""
    m = xp(features)
    return m.maximum(features, features.dtype.type(0)) + m.log1p(m.exp(-m.abs(features)))


@softplus.gradient
def _(grad, features, out):
    return grad * sigmoid(features)


@op
def softsign(features):
    """``features / (abs(features) + 1)``."""
    return features / (xp(features).abs(features) + 1)


@softsign.gradient
def _(grad, features, out):
    return grad / square(_abs(features) + 1)


@op
def silu(features, beta=1.0):
    """Sigmoid linear unit (swish): ``features * sigmoid(beta * features)``."""
    m = xp(features)
    return features * ((m.tanh(features * (0.5 * beta)) + 1) * 0.5)


@silu.gradient
def _(grad, features, out, beta=1.0):
    s = sigmoid(features * beta if beta != 1 else features)
    return grad * (s + features * beta * s * (1 - s))


swish = silu


@op
def softmax(logits, axis=-1):
    """``exp(logits) / reduce_sum(exp(logits), axis)``, computed stably.

    Example:

    >>> import cuflow as tf
    >>> tf.nn.softmax([0.0, 0.0]).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    axis = _axis(-1 if axis is None else axis, logits.ndim, "softmax")
    e = xp(logits).exp(logits - logits.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)  # in place: e is ours
    return e


@softmax.gradient
def _(grad, logits, out, axis=-1):
    axis = -1 if axis is None else axis
    return out * (grad - reduce_sum(grad * out, axis=axis, keepdims=True))


def _log_softmax_array(x, axis):
    m = xp(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - m.log(m.exp(shifted).sum(axis=axis, keepdims=True))


@op
def log_softmax(logits, axis=-1):
    """``logits - log(reduce_sum(exp(logits), axis))``, computed stably."""
    return _log_softmax_array(logits, _axis(-1 if axis is None else axis, logits.ndim, "log_softmax"))


@log_softmax.gradient
def _(grad, logits, out, axis=-1):
    axis = -1 if axis is None else axis
    return grad - exp(out) * reduce_sum(grad, axis=axis, keepdims=True)


def dropout(x, rate, noise_shape=None, seed=None, name=None):
    """Sets each element (or each slice, with ``noise_shape``) to 0 with probability ``rate`` and scales the rest
    by ``1 / (1 - rate)``, so the expected value is unchanged.

    Args:
        x: a floating tensor.
        rate: probability of dropping an element, a float in ``[0, 1)``.
        noise_shape: shape of the random keep/drop mask, broadcast against ``x`` (``None`` entries take ``x``'s
            dimension); ``[batch, 1, 1, channels]`` drops whole feature maps.
        seed: makes the mask reproducible.

    Raises:
        ValueError: ``rate`` is outside ``[0, 1)`` or ``x`` is not floating.
        cuflow.errors.InvalidArgumentError: ``noise_shape`` does not broadcast to ``x``'s shape.
    """
    x = convert_to_tensor(x)
    rate_value = float(rate) if isinstance(rate, (int, float, np.number, Tensor)) else rate
    if not isinstance(rate_value, float) or not 0 <= rate_value < 1:
        raise ValueError(f"dropout: rate must be a float in the range [0, 1), got {rate!r}")
    if not x.dtype.is_floating:
        raise ValueError(f"dropout: x must be a floating tensor, got dtype {x.dtype.name}")
    if rate_value == 0:
        return x
    shape = tuple(x.shape) if noise_shape is None else tuple(
        d if d is not None else x.shape[i] for i, d in enumerate(_optional_ints(noise_shape)))
    try:
        np.broadcast_shapes(shape, tuple(x.shape))
    except ValueError:
        raise errors.InvalidArgumentError(f"dropout: noise_shape {list(shape)} does not broadcast to x's shape "
                                          f"{tuple(x.shape)}") from None
    with _device.device(_device.device_of(x._data)):  # the mask is drawn where x lives
        noise = random.uniform(shape, dtype=x.dtype, seed=seed)._data
    keep = (noise >= rate_value).astype(noise.dtype) * noise.dtype.type(1 / (1 - rate_value))
    return x * Tensor(keep)


def _optional_ints(values):
    if isinstance(values, Tensor):
        values = np.asarray(values).tolist()
    return [None if v is None else int(v) for v in values]


# --- bias and convolution ------------------------------------------------------------------------------------------
def _bias_axis(value_shape, bias_shape, data_format):
    rank = len(value_shape)
    if rank < 2:
        raise errors.InvalidArgumentError(f"bias_add: value must have rank >= 2, got shape {tuple(value_shape)}")
    if data_format is not None and not (isinstance(data_format, str) and data_format.startswith("N")):
        raise errors.InvalidArgumentError(f"bias_add: data_format must be 'N...C' or 'NC...', got {data_format!r}")
    axis = 1 if data_format is not None and data_format.startswith("NC") else rank - 1
    if len(bias_shape) != 1 or bias_shape[0] != value_shape[axis]:
        raise errors.InvalidArgumentError(
            f"bias_add: bias must have shape ({value_shape[axis]},) to match the channel axis {axis} of value with "
            f"shape {tuple(value_shape)}, got shape {tuple(bias_shape)}")
    return axis


@op
def bias_add(value, bias, data_format=None):
    """Adds the 1-D ``bias`` along the channel axis of ``value`` (the last one, or axis 1 for 'NC...' formats)."""
    axis = _bias_axis(value.shape, bias.shape, data_format)
    shape = [1] * value.ndim
    shape[axis] = -1
    return value + bias.reshape(shape)


@bias_add.gradient
def _(grad, value, bias, out, data_format=None):
    axis = _bias_axis(value.shape, bias.shape, data_format)
    return grad, reduce_sum(grad, axis=[i for i in builtins.range(len(value.shape)) if i != axis])


# --- losses --------------------------------------------------------------------------------------------------------
# Softmax cross-entropy, forward and backward, runs as one fused kernel per call on the GPU (softmax_ce.cu, through
# cuflow.kernels.fused) for float32/float64 logits over their last axis; the xp code beside each launch is the
# reference it follows and what runs elsewhere. The logits' gradient is an op of its own (fused too), whose gradient
# is written in cuflow ops, so higher-order gradients still work.
def _fused_softmax_ce(logits, axis):
    """cuflow.kernels.fused when softmax_ce.cu takes ``logits`` along ``axis``, else None."""
    if type(logits) is np.ndarray or axis != logits.ndim - 1 or not logits.shape[-1] or \
            logits.dtype.name not in KERNEL_DTYPES:
        return None
    from ..kernels import fused
    return fused


@op
def softmax_cross_entropy_with_logits(labels, logits, axis=-1):
    """``-reduce_sum(labels * log_softmax(logits), axis)``: cross entropy against a distribution per row.

    Args:
        labels: probabilities, same shape and dtype as ``logits`` (each row should sum to 1).
        logits: unnormalized log-probabilities.
        axis: the class axis.

    Returns:
        The loss per row: ``logits``'s shape without ``axis``.

    Raises:
        cuflow.errors.InvalidArgumentError: ``labels`` and ``logits`` have different shapes.
    """
    if labels.shape != logits.shape:
        raise errors.InvalidArgumentError(
            f"softmax_cross_entropy_with_logits: labels and logits must have the same shape, got labels "
            f"{tuple(labels.shape)} and logits {tuple(logits.shape)}")
    axis = _axis(axis, logits.ndim, "softmax_cross_entropy_with_logits")
    fused = _fused_softmax_ce(logits, axis)
    if fused is not None:
        return fused.softmax_cross_entropy(logits, labels)
    return -(labels * _log_softmax_array(logits, axis)).sum(axis=axis)


@softmax_cross_entropy_with_logits.gradient
def _(grad, labels, logits, out, axis=-1, needs=(True, True)):
    grad_labels = None
    if needs[0]:
        g = expand_dims(grad, _axis(axis, len(logits.shape), "softmax_cross_entropy_with_logits"))
        grad_labels = -g * log_softmax(logits, axis=axis)
    return grad_labels, _softmax_cross_entropy_grad(grad, labels, logits, axis=axis) if needs[1] else None


@op
def _softmax_cross_entropy_grad(grad, labels, logits, axis=-1):
    """The logits' gradient of softmax_cross_entropy_with_logits: ``g * (softmax * sum(labels) - labels)``, exact for
    any labels (TensorFlow's ``softmax - labels`` when each row of labels sums to 1)."""
    axis = _axis(axis, logits.ndim, "softmax_cross_entropy_with_logits")
    fused = _fused_softmax_ce(logits, axis)
    if fused is not None:
        return fused.softmax_cross_entropy_backward(logits, labels, grad)
    m = xp(logits)
    mass = labels.sum(axis=axis, keepdims=True)
    return m.expand_dims(grad, axis) * (m.exp(_log_softmax_array(logits, axis)) * mass - labels)


@_softmax_cross_entropy_grad.gradient
def _(upstream, grad, labels, logits, out, axis=-1):
    axis = _axis(axis, len(logits.shape), "softmax_cross_entropy_with_logits")
    probs = softmax(logits, axis=axis)
    mass = reduce_sum(labels, axis=axis, keepdims=True)
    g = expand_dims(grad, axis)
    weighted = reduce_sum(upstream * probs, axis=axis, keepdims=True)
    return (reduce_sum(upstream * (probs * mass - labels), axis=axis), g * (weighted - upstream),
            g * mass * probs * (upstream - weighted))


def _class_labels(labels, logits):
    """The integer labels as an array on ``logits``'s device, checked against the shape and, on the CPU, the number of
    classes (an InvalidArgumentError, as TensorFlow's CPU kernel). On the GPU the range is not checked here: that
    would read the device every step; out-of-range labels give NaN loss and gradient rows, as TensorFlow's GPU
    kernel does."""
    name = "sparse_softmax_cross_entropy_with_logits"
    idx = array_of(labels, like=logits)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers, got dtype {idx.dtype}")
    if logits.ndim < 1 or tuple(idx.shape) != tuple(logits.shape[:-1]):
        raise errors.InvalidArgumentError(f"{name}: labels must have logits' shape without the class axis, got "
                                          f"labels {tuple(idx.shape)} and logits {tuple(logits.shape)}")
    classes = logits.shape[-1]
    if type(idx) is np.ndarray and idx.size and (idx.min() < 0 or idx.max() >= classes):
        where_bad = tuple(int(i) for i in np.argwhere((idx < 0) | (idx >= classes))[0])
        raise errors.InvalidArgumentError(f"{name}: label {int(idx[where_bad])} at index {list(where_bad)} is out of "
                                          f"range [0, {classes}): logits have {classes} classes")
    return idx


def _in_range(idx, classes, values):
    """``values`` with NaN where ``idx`` is outside ``[0, classes)`` (rows of ``values``: one per label), and the
    labels clipped into range: the GPU's answer to bad labels when no fused kernel runs (float16 logits)."""
    if type(idx) is np.ndarray:  # checked already (_class_labels raised)
        return values
    m = xp(idx)
    bad = (idx < 0) | (idx >= classes)
    return m.where(bad.reshape(bad.shape + (1,) * (values.ndim - bad.ndim)), values.dtype.type(np.nan), values)


@op(inputs=("logits",))
def sparse_softmax_cross_entropy_with_logits(labels, logits):
    """Cross entropy against integer class ``labels``: ``-log_softmax(logits)[..., labels]``.

    Args:
        labels: integers in ``[0, num_classes)``, shape ``logits.shape[:-1]``.
        logits: shape ``(..., num_classes)``.

    Returns:
        The loss per row, ``labels``' shape. On the GPU a label outside ``[0, num_classes)`` gives NaN for its row
        (loss and gradient), as TensorFlow on a GPU: checking it on the host would stall every step.

    Raises:
        cuflow.errors.InvalidArgumentError: the shapes do not fit, or (on the CPU) a label is out of range.

    Example:

    >>> import cuflow as tf
    >>> round(float(tf.nn.sparse_softmax_cross_entropy_with_logits([0], [[0.0, 0.0]])[0]), 4)
    0.6931
    """
    idx = _class_labels(labels, logits)
    fused = _fused_softmax_ce(logits, logits.ndim - 1)
    if fused is not None:
        return fused.sparse_softmax_cross_entropy(logits, idx)
    m, classes = xp(logits), logits.shape[-1]
    rows = logits.reshape(-1, classes)
    shifted = rows - rows.max(axis=-1, keepdims=True)
    log_total = m.log(m.exp(shifted).sum(axis=-1))
    # -log_softmax at the label: log_total - shifted[label], read by fancy indexing (take_along_axis is slower)
    picked = shifted[m.arange(rows.shape[0]), _flat_labels(idx, classes)]
    return _in_range(idx, classes, (log_total - picked).reshape(idx.shape))


def _flat_labels(idx, classes):
    """The labels as one flat index per row, clipped into range on the GPU (where _in_range then makes the rows of
    bad labels NaN); on the CPU, _class_labels has checked them."""
    flat = idx.reshape(-1)
    return flat if type(idx) is np.ndarray else xp(idx).clip(flat, 0, max(classes - 1, 0))


@sparse_softmax_cross_entropy_with_logits.gradient
def _(grad, logits, out, labels):
    return _sparse_softmax_cross_entropy_grad(grad, logits, labels=labels)


@op(inputs=("grad", "logits"))
def _sparse_softmax_cross_entropy_grad(grad, logits, labels):
    """The logits' gradient of sparse_softmax_cross_entropy_with_logits: ``g * (softmax(logits) - one_hot)``."""
    idx = array_of(labels, like=logits)
    fused = _fused_softmax_ce(logits, logits.ndim - 1)
    if fused is not None:
        return fused.sparse_softmax_cross_entropy_backward(logits, idx, grad)
    m, classes = xp(logits), logits.shape[-1]
    rows = logits.reshape(-1, classes)
    probs = m.exp(rows - rows.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    probs[m.arange(rows.shape[0]), _flat_labels(idx, classes)] -= 1  # softmax - one_hot, in place
    probs *= grad.reshape(-1, 1)
    return _in_range(idx, classes, probs.reshape(logits.shape))


@_sparse_softmax_cross_entropy_grad.gradient
def _(upstream, grad, logits, out, labels):
    probs = softmax(logits)
    hot = one_hot(Tensor(array_of(labels, like=logits._data)), logits.shape[-1], dtype=logits.dtype)
    weighted = reduce_sum(upstream * probs, axis=-1, keepdims=True)
    return reduce_sum(upstream * (probs - hot), axis=-1), expand_dims(grad, -1) * probs * (upstream - weighted)


@op(inputs=("labels", "logits"))
def sigmoid_cross_entropy_with_logits(labels=None, logits=None):
    """Elementwise binary cross entropy ``-labels log(sigmoid(logits)) - (1 - labels) log(1 - sigmoid(logits))``,
    computed stably as ``max(x, 0) - x * z + log(1 + exp(-|x|))``.

    Raises:
        cuflow.errors.InvalidArgumentError: ``labels`` and ``logits`` have different shapes.
    """
    if labels is None or logits is None:
        raise ValueError("sigmoid_cross_entropy_with_logits: both labels and logits must be given")
    if labels.shape != logits.shape:
        raise errors.InvalidArgumentError(
            f"sigmoid_cross_entropy_with_logits: labels and logits must have the same shape, got labels "
            f"{tuple(labels.shape)} and logits {tuple(logits.shape)}")
    m = xp(logits)
    return m.maximum(logits, logits.dtype.type(0)) - logits * labels + m.log1p(m.exp(-m.abs(logits)))


@sigmoid_cross_entropy_with_logits.gradient
def _(grad, labels, logits, out):
    return -grad * logits, grad * (sigmoid(logits) - labels)


@op
def l2_loss(t):
    """``sum(t ** 2) / 2``: half the squared L2 norm, a scalar."""
    return (t * t).sum() * t.dtype.type(0.5)


@l2_loss.gradient
def _(grad, t, out):
    return grad * t


# --- normalization helpers -----------------------------------------------------------------------------------------
def moments(x, axes, shift=None, keepdims=False, name=None):
    """The mean and (population) variance of ``x`` over ``axes``: ``(mean, variance)``."""
    mean = reduce_mean(x, axis=axes, keepdims=True)
    variance = reduce_mean(squared_difference(x, mean), axis=axes, keepdims=True)
    if not keepdims:
        axes = _ints(axes, "moments")
        mean, variance = squeeze(mean, axes), squeeze(variance, axes)
    return mean, variance


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """``x / sqrt(max(reduce_sum(x ** 2, axis), epsilon))``."""
    x = convert_to_tensor(x)
    square_sum = reduce_sum(square(x), axis=dim if axis is None else axis, keepdims=True)
    return x * rsqrt(maximum(square_sum, epsilon))


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """``(x - mean) / sqrt(variance + variance_epsilon) * scale + offset`` (``offset``/``scale`` may be None)."""
    inv = rsqrt(variance + variance_epsilon)
    if scale is not None:
        inv = inv * scale
    shift = -mean * inv if offset is None else offset - mean * inv
    return x * inv + shift


def embedding_lookup(params, ids, max_norm=None, name=None):
    """The rows of ``params`` at ``ids`` (``gather`` along axis 0)."""
    if max_norm is not None:
        raise NotImplementedError("embedding_lookup: max_norm is not supported yet")
    return gather(params, ids)
