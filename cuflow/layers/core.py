"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, and the functional API's symbolic side: ``Input``,
``InputLayer``, ``KerasTensor`` and the ``Node`` a layer call on KerasTensors records."""
import numpy as np

from .. import activations, dtypes, initializers, regularizers
from ..tensor import TensorShape
from ..ops.math import fused_matmul
from ..ops.array import reshape, zeros
from ..ops.nn import dropout
from .base import Layer, InputSpec, unique_name

__all__ = ["Dense", "Activation", "Dropout", "Flatten", "Reshape", "InputLayer", "Input", "KerasTensor", "KerasInput"]


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
        x = inputs if inputs.ndim == 2 else reshape(inputs, (-1, inputs.shape[-1]))  # one GEMM over leading axes
        fused = activations.fused_name(self.activation)  # the GEMM epilogue applies bias and these for free
        out = fused_matmul(x, self.kernel, self.bias, activation=fused or "linear")
        if inputs.ndim != 2:
            out = reshape(out, tuple(inputs.shape[:-1]) + (self.units,))
        return out if fused is not None else self.activation(out)

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


# --- the functional API's symbolic side: structures, KerasTensor, Node, InputLayer, Input ---------------------------
def flatten(structure):
    """The leaves of a structure of lists, tuples and dicts (dicts in insertion order), in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for item in structure.values() for leaf in flatten(item)]
    return [structure]


def pack_like(structure, leaves):
    """``structure`` with its leaves replaced, in order, by ``leaves`` (the inverse of :func:`flatten`)."""
    leaves = iter(leaves)

    def pack(item):
        if isinstance(item, (list, tuple)):
            return type(item)(pack(v) for v in item)
        if isinstance(item, dict):
            return {k: pack(v) for k, v in item.items()}
        return next(leaves)
    return pack(structure)


def map_structure(fn, structure):
    """``structure`` with ``fn`` applied to each leaf."""
    return pack_like(structure, [fn(leaf) for leaf in flatten(structure)])


class KerasTensor:
    """A symbolic tensor of the functional API: the shape (batch dimension None), dtype and name of a value a model
    will compute, and the layer call that produces it.

    ``keras.Input`` returns one; calling a layer on KerasTensors records the call and returns new KerasTensors;
    ``keras.Model(inputs, outputs)`` turns the recorded graph into a model. A KerasTensor holds no data: reading
    its value is an error (wrap such computations in a Layer).

    Example:

    >>> from cuflow import keras
    >>> x = keras.Input(shape=(4,), name="features")
    >>> x
    <KerasTensor shape=(None, 4), dtype=float32, name=features>
    >>> keras.layers.Dense(2)(x).shape
    TensorShape([None, 2])
    """

    _is_keras_tensor = True

    def __init__(self, shape, dtype="float32", name=None, node=None, index=0):
        self.shape = TensorShape(shape)
        self.dtype = dtypes.as_dtype(dtype).name
        self.name, self._node, self._index = name, node, index

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def _keras_history(self):
        """``(layer, node_index, tensor_index)``: which call of which layer produced this tensor (Keras's name)."""
        layer = self._node.layer
        return layer, layer._inbound_nodes.index(self._node), self._index

    def _no_value(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic (a placeholder of a functional model): it has no value. Call the "
                        "model on data instead, or put this computation inside a keras Layer")

    __array__ = __bool__ = __len__ = __float__ = __int__ = numpy = _no_value

    def __repr__(self):
        return f"<KerasTensor shape={tuple(self.shape)}, dtype={self.dtype}, name={self.name}>"


KerasInput = KerasTensor  # the name before the functional API existed


class Node:
    """One call of a layer on KerasTensors: the ``inputs`` as the layer got them (one, a list or a dict), the call's
    other arguments, and the KerasTensors it returned. The layer keeps its nodes in ``layer._inbound_nodes``."""

    def __init__(self, layer, inputs, args=(), kwargs=None):
        self.layer, self.inputs, self.args, self.kwargs = layer, inputs, tuple(args), dict(kwargs or {})
        self.input_tensors = [] if inputs is None else flatten(inputs)
        self.outputs, self.output_tensors = None, []
        layer._inbound_nodes.append(self)

    def set_outputs(self, outputs):
        """Makes ``outputs`` (a structure of KerasTensors) this call's results."""
        self.outputs, self.output_tensors = outputs, flatten(outputs)
        for i, tensor in enumerate(self.output_tensors):
            tensor._node, tensor._index = self, i
        return outputs


def is_symbolic(inputs):
    """Whether ``inputs`` is a KerasTensor or a list/tuple/dict holding one (a layer call to record, not run)."""
    if isinstance(inputs, dict):
        inputs = inputs.values()
    elif not isinstance(inputs, (list, tuple)):
        return getattr(inputs, "_is_keras_tensor", False)
    return any(getattr(v, "_is_keras_tensor", False) for v in inputs)


def symbolic_call(layer, inputs, args=(), kwargs=None, training=None):
    """``layer(inputs)`` on KerasTensors: builds the layer for their shapes, records the call as a :class:`Node`
    and returns KerasTensors shaped by the layer's ``compute_output_shape``."""
    kwargs = dict(kwargs or {})
    if any(isinstance(v, KerasTensor) for v in flatten([list(args), kwargs])):
        raise NotImplementedError(f"Layer '{layer.name}': KerasTensors are supported in the first argument of a "
                                  "layer call only (pass several as a list or dict)")
    leaves = flatten(inputs)
    if not all(isinstance(t, KerasTensor) for t in leaves):
        raise TypeError(f"Layer '{layer.name}': a call's inputs must be all KerasTensors or all data, got "
                        f"{[type(t).__name__ for t in leaves]}")
    shapes = map_structure(lambda t: t.shape, inputs)
    if not layer.built:
        layer._build_for(shapes)
    elif layer.input_spec is not None and isinstance(inputs, KerasTensor):
        layer.input_spec.check(layer, shapes)
    if training is not None:
        kwargs["training"] = training
    outputs = _symbolic_outputs(layer, inputs, shapes, args, kwargs)
    Node(layer, inputs, args, kwargs).set_outputs(outputs)
    layer.input_shape = map_structure(lambda t: tuple(t.shape), inputs)
    layer.output_shape = map_structure(lambda t: tuple(t.shape), outputs)
    return outputs


def _symbolic_outputs(layer, inputs, shapes, args, kwargs):
    if type(layer).compute_output_shape is not Layer.compute_output_shape:
        return _specs(layer.compute_output_shape(shapes), layer.dtype, layer.name)
    # the default shape rule runs call on zeros; run it here with the inputs' own dtypes (integer ids stay ints)
    probe = map_structure(lambda t: zeros(tuple(1 if d is None else d for d in t.shape), dtype=t.dtype), inputs)
    if layer._call_takes_training:
        kwargs = {**kwargs, "training": False}
    out = layer.call(probe, *args, **kwargs)
    return map_structure(lambda o: KerasTensor((None,) + tuple(o.shape[1:]) if o.ndim else (), o.dtype.name,
                                               layer.name), out)


def _specs(shape, dtype, name):
    """KerasTensors for what ``compute_output_shape`` returned: one shape, or a list/dict of them."""
    if isinstance(shape, dict):
        return {k: _specs(v, dtype, name) for k, v in shape.items()}
    if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in shape):
        return KerasTensor(shape, dtype, name)
    return [_specs(s, dtype, name) for s in shape]


def _batch_shape(what, shape, batch_size, batch_shape):
    if batch_shape is None:
        if shape is None:
            raise ValueError(f"{what}: give shape= (the input's shape without the batch dimension) or batch_shape=")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
        batch_shape = (batch_size,) + tuple(shape)
    batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
    if any(d is not None and d < 0 for d in batch_shape):
        raise ValueError(f"{what}: dimensions must be None or >= 0, got shape {batch_shape}")
    return batch_shape


class InputLayer(Layer):
    """The layer behind ``keras.Input``: it holds the input's KerasTensor (``layer.output``). As the first entry of a
    ``Sequential`` model it sets the model's input shape; in a functional model it is listed in ``model.layers``.
    Calling it on data returns the data.

    Args:
        shape: the input's shape without the batch dimension, e.g. ``(28, 28, 1)``.
        batch_size: a fixed batch size (default None: any).
        dtype: the input's dtype (default float32; ``'int32'`` for token ids).
        batch_shape: the full shape, batch dimension first (instead of ``shape`` and ``batch_size``).
        name: the layer's name, also its KerasTensor's and the key of this input in dict inputs.

    Raises:
        ValueError: no shape, or a negative dimension.
        NotImplementedError: ``sparse=True`` or ``input_tensor=``.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, input_tensor=None,
                 optional=False, name=None, **kwargs):
        batch_shape = kwargs.pop("batch_input_shape", batch_shape)  # tf.keras 2's names
        shape = kwargs.pop("input_shape", shape)
        if sparse or input_tensor is not None or optional:
            raise NotImplementedError("InputLayer: sparse=, input_tensor= and optional= are not supported")
        batch_shape = _batch_shape("InputLayer", shape, batch_size, batch_shape)
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, batch_input_shape=batch_shape,
                         **kwargs)
        self.batch_shape = batch_shape
        self.built = True
        self.input_shape = self.output_shape = batch_shape
        Node(self, None).set_outputs(KerasTensor(batch_shape, self.dtype, self.name))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": self.dtype, "sparse": False, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False):
    """A symbolic input (``keras.Input``): the KerasTensor a functional model starts from.

    Args:
        shape: the shape of one sample, without the batch dimension: ``Input(shape=(4,))`` stands for batches of
            4-vectors.
        batch_size: a fixed batch size (default None: any).
        dtype: the dtype of the data fed to it (default float32).
        batch_shape: the full shape, batch dimension included.
        name: the input's name (unique by default); the key for this input when a model is fed a dict.

    Returns:
        A :class:`KerasTensor` of shape ``(batch_size,) + shape``.

    Example:

    >>> from cuflow import keras
    >>> inputs = keras.Input(shape=(3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    >>> model.predict([[1.0, 2.0, 3.0]], verbose=0).shape
    (1, 1)
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                      input_tensor=tensor, optional=optional, name=name).output
