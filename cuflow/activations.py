"""``keras.activations``: activation functions by name (``activation='relu'``), as Keras 3 defines them.

Each function takes and returns a Tensor and is built from :mod:`cuflow.ops`, so it has gradients on both devices.

Example:

>>> from cuflow import activations
>>> activations.get("relu")([-1.0, 2.0]).numpy()
array([0., 2.], dtype=float32)
"""
from .tensor import convert_to_tensor
from .ops import nn as _nn
from .ops import math as _math
from .ops.array import where

__all__ = ["get", "serialize", "deserialize", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid",
           "hard_sigmoid", "softmax", "log_softmax", "softplus", "softsign", "swish", "silu", "tanh", "exponential",
           "linear", "mish"]


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """``max(x, 0)``; with Keras's options, ``negative_slope * (x - threshold)`` below ``threshold`` and a cap at
    ``max_value``."""
    x = convert_to_tensor(x)
    if negative_slope == 0 and max_value is None and threshold == 0:
        return _nn.relu(x)
    out = where(x > threshold, x, negative_slope * (x - threshold))
    return out if max_value is None else _math.minimum(out, max_value)


def relu6(x):
    return _nn.relu6(convert_to_tensor(x))


def leaky_relu(x, negative_slope=0.2):
    return _nn.leaky_relu(convert_to_tensor(x), alpha=negative_slope)


def elu(x, alpha=1.0):
    out = _nn.elu(convert_to_tensor(x))
    return out if alpha == 1.0 else where(out > 0, out, alpha * out)


def selu(x):
    return _nn.selu(convert_to_tensor(x))


def gelu(x, approximate=False):
    return _nn.gelu(convert_to_tensor(x), approximate=approximate)


def _with_logits(out, activation, logits):
    """``out`` remembering the ``logits`` its ``activation`` was computed from, as Keras 3 does: the cross-entropy
    losses then work from the logits (as with ``from_logits=True``), which costs a few ops instead of a dozen and
    stays finite where the probabilities round to 0 or 1."""
    out._logits = (activation, logits)
    return out


def sigmoid(x):
    x = convert_to_tensor(x)
    return _with_logits(_math.sigmoid(x), "sigmoid", x)


def hard_sigmoid(x):
    """Keras 3's piecewise-linear sigmoid, ``relu6(x + 3) / 6``."""
    return _nn.relu6(convert_to_tensor(x) + 3.0) / 6.0


def softmax(x, axis=-1):
    x = convert_to_tensor(x)
    out = _nn.softmax(x, axis=axis)
    # the losses take logits along the last axis only: a softmax over another axis keeps its probabilities alone
    return _with_logits(out, "softmax", x) if isinstance(axis, int) and axis in (-1, x.ndim - 1) else out


def log_softmax(x, axis=-1):
    return _nn.log_softmax(convert_to_tensor(x), axis=axis)


def softplus(x):
    return _nn.softplus(convert_to_tensor(x))


def softsign(x):
    return _nn.softsign(convert_to_tensor(x))


def silu(x):
    return _nn.silu(convert_to_tensor(x))


swish = silu


def mish(x):
    x = convert_to_tensor(x)
    return x * _math.tanh(_nn.softplus(x))


def tanh(x):
    return _math.tanh(convert_to_tensor(x))


def exponential(x):
    return _math.exp(convert_to_tensor(x))


def linear(x):
    """The identity (``activation=None`` means this)."""
    return convert_to_tensor(x)


_BY_NAME = {fn.__name__: fn for fn in (relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, hard_sigmoid, softmax,
                                       log_softmax, softplus, softsign, silu, mish, tanh, exponential, linear)}
_BY_NAME["swish"] = swish  # Keras 3's name for silu; serialize gives "silu"


def fused_name(activation):
    """The name under which the GEMM and convolution epilogues (``fused_matmul``, ``fused_conv2d``) apply
    ``activation`` for free, or None when it runs as its own op after them.

    Dense, Conv1D and Conv2D fuse linear, relu, gelu (exact) and tanh. sigmoid and softmax are not fused: applied on
    their own, their outputs remember their logits, which the cross-entropy losses then take (as Keras's TF backend
    does); a gelu with ``approximate=True`` or any other callable runs on its own too.
    """
    return _FUSED.get(activation)


def get(identifier):
    """Returns the activation function for ``identifier``: a name, a callable (returned as is) or None (linear).

    Raises:
        ValueError: an unknown name; the message lists the known ones.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier)
        if fn is None:
            raise ValueError(f"Unknown activation function: {identifier!r}. Known activations: "
                             f"{', '.join(sorted(_BY_NAME))}")
        return fn
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation identifier: {identifier!r}")


def serialize(activation):
    """The name ``get`` maps back to ``activation`` (the function itself when it is not a built-in one)."""
    for name, fn in _BY_NAME.items():
        if fn is activation:
            return name
    return activation


deserialize = get


_FUSED = {linear: "linear", relu: "relu", gelu: "gelu", tanh: "tanh"}  # see fused_name
