"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, and the Input / InputLayer placeholder spec."""
import numpy as np

from .. import activations, initializers, regularizers
from ..tensor import TensorShape
from ..ops.math import matmul
from ..ops.array import reshape
from ..ops.nn import bias_add, dropout
from .base import Layer, InputSpec, unique_name

__all__ = ["Dense", "Activation", "Dropout", "Flatten", "Reshape", "InputLayer", "Input", "KerasInput"]


def set_kernel_options(layer, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                       bias_regularizer):
    """The options Dense and Conv2D share, resolved from names to functions and objects."""
    layer.activation = activations.get(activation)
    layer.use_bias = use_bias
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)


def kernel_options_config(layer):
    """Those options as ``get_config`` entries (names and config dicts)."""
    return {"activation": activations.serialize(layer.activation), "use_bias": layer.use_bias,
            "kernel_initializer": initializers.serialize(layer.kernel_initializer),
            "bias_initializer": initializers.serialize(layer.bias_initializer),
            "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(layer.bias_regularizer)}


class Dense(Layer):
    """A densely connected layer: ``activation(inputs @ kernel + bias)``.

    Args:
        units: the output dimension.
        activation: a name (``'relu'``) or function; None is linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: names or initializers (``glorot_uniform``, ``zeros``).
        kernel_regularizer, bias_regularizer: names or regularizers; their penalties join ``losses``.

    Input shape:
        ``(batch, ..., input_dim)``, rank >= 2.

    Output shape:
        ``(batch, ..., units)``.

    Example:

    >>> from cuflow import keras
    >>> keras.layers.Dense(3)([[1.0, 2.0, 3.0, 4.0]]).shape
    TensorShape([1, 3])
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        self.units = int(units)
        set_kernel_options(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        if inputs.ndim == 2:
            out = matmul(inputs, self.kernel)
        else:  # (batch, ..., input_dim): one matmul over the flattened leading axes
            lead = tuple(inputs.shape[:-1])
            out = reshape(matmul(reshape(inputs, (-1, inputs.shape[-1])), self.kernel), lead + (self.units,))
        if self.bias is not None:
            out = bias_add(out, self.bias)
        return self.activation(out)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, **kernel_options_config(self)}


class Activation(Layer):
    """Applies an activation function (a name or a callable) to its input; the shape is unchanged."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Sets a fraction ``rate`` of its inputs to 0 during training (scaling the rest by ``1 / (1 - rate)``); the
    identity at inference.

    Args:
        rate: the fraction to drop, in ``[0, 1)``.
        noise_shape: the mask's shape, broadcast against the input (None entries take the input's size).
        seed: makes the masks reproducible.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        return dropout(inputs, self.rate, noise_shape=self.noise_shape, seed=self.seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


class Flatten(Layer):
    """Flattens everything but the batch dimension: ``(batch, d1, d2, ...)`` → ``(batch, d1 * d2 * ...)``."""

    def call(self, inputs):
        return reshape(inputs, (inputs.shape[0], -1) if inputs.ndim > 1 else (inputs.shape[0], 1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], size)


class Reshape(Layer):
    """Reshapes to ``(batch,) + target_shape``; one entry of ``target_shape`` may be -1 (inferred)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs):
        return reshape(inputs, (inputs.shape[0],) + self.target_shape)

    def compute_output_shape(self, input_shape):
        target = list(self.target_shape)
        if -1 in target:
            known = int(np.prod([d for d in target if d != -1]))
            rest = input_shape[1:]
            total = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
            if total is not None and total % known:
                raise ValueError(f"Reshape '{self.name}': cannot reshape input of shape {tuple(input_shape)} to "
                                 f"{self.target_shape}")
            target[target.index(-1)] = None if total is None else total // known
        elif None not in input_shape[1:] and np.prod(input_shape[1:]) != np.prod(target):
            raise ValueError(f"Reshape '{self.name}': total size of the input {tuple(input_shape)} differs from "
                             f"target_shape {self.target_shape}")
        return (input_shape[0],) + tuple(target)

    def _build_for(self, input_shape):
        self.compute_output_shape(tuple(input_shape))  # a clear error before the op's
        super()._build_for(input_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class KerasInput:
    """A placeholder for a model's input: its shape (batch dimension first, None) and dtype, no data.

    ``Sequential([keras.Input(shape=(4,)), Dense(1)])`` builds the model for that shape. (Functional models built
    by calling layers on it come with the functional API.)
    """

    def __init__(self, shape, dtype="float32", name=None):
        self.shape, self.dtype, self.name = TensorShape(shape), dtype, name

    def __repr__(self):
        return f"<KerasInput shape={tuple(self.shape)}, dtype={self.dtype}, name={self.name}>"


class InputLayer(Layer):
    """The layer form of an input spec: ``InputLayer(shape=(28, 28, 1))`` (or ``input_shape=``) as a Sequential
    model's first entry sets the model's input shape. Calling it returns its input."""

    def __init__(self, shape=None, batch_size=None, dtype=None, input_tensor=None, name=None, input_shape=None,
                 batch_input_shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        if batch_input_shape is None:
            if shape is None:
                raise ValueError("InputLayer: give shape= (the input's shape without the batch dimension)")
            batch_input_shape = (batch_size,) + tuple(shape)
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, batch_input_shape=batch_input_shape,
                         **kwargs)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "batch_input_shape": self._batch_input_shape}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """A symbolic input spec (``keras.Input``): ``Input(shape=(4,))`` describes batches of 4-vectors."""
    if batch_shape is None:
        if shape is None:
            raise ValueError("Input: give shape= (without the batch dimension) or batch_shape=")
        batch_shape = (batch_size,) + tuple(shape)
    return KerasInput(batch_shape, dtype or "float32", name or unique_name("input_layer"))
