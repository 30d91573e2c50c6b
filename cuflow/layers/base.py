"""``Layer``: the base of every Keras layer (and of ``Model``): config, lazy build, weights, call.

A layer stores its configuration in ``__init__``, creates its weights in ``build(input_shape)`` — called once, on
the first call, with the input's shape (or eagerly when ``input_shape=`` is known) — and computes in
``call(inputs, training=None)``. ``get_config()`` returns what ``__init__`` took, so ``from_config`` rebuilds it.
Layers assigned as attributes (or in lists) of a layer are tracked, so their weights are the parent's weights too.
"""
import inspect
import re

import numpy as np

from .. import backend as _backend
from .. import dtypes
from ..tensor import Tensor, Variable, TensorShape, constant
from ..ops.array import cast, zeros
from .. import initializers, regularizers

__all__ = ["Layer", "InputSpec"]

_name_counts = {}


def unique_name(base):
    """``dense``, ``dense_1``, ``dense_2``, ... per base name, like Keras's auto-naming."""
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)  # Keras's rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class InputSpec:
    """What a layer accepts: an exact rank (``ndim``), a minimum rank, and fixed sizes of some axes."""

    def __init__(self, ndim=None, min_ndim=None, axes=None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})

    def check(self, layer, shape):
        """Raises ValueError naming the layer, what it expects and the shape it got."""
        shape = tuple(shape)
        problem = None
        if self.ndim is not None and len(shape) != self.ndim:
            problem = f"expected ndim={self.ndim}, found ndim={len(shape)}"
        elif self.min_ndim is not None and len(shape) < self.min_ndim:
            problem = f"expected min_ndim={self.min_ndim}, found ndim={len(shape)}"
        else:
            for axis, size in self.axes.items():
                if shape[axis] is not None and shape[axis] != size:
                    problem = f"expected axis {axis} of input shape to have value {size}"
                    break
        if problem:
            raise ValueError(f"Input 0 of layer '{layer.name}' ({type(layer).__name__}) is incompatible with the "
                             f"layer: {problem}, but received input with shape {shape}")


class Layer:
    """The base class of layers.

    Args:
        trainable: whether the layer's weights are updated by training.
        name: the layer's name (unique per type by default: ``dense``, ``dense_1``, ...).
        dtype: the dtype of its weights and computations (default ``keras.backend.floatx()``: float32 unless
            ``set_floatx`` changed it); floating inputs are cast to it.
        input_shape: the input's shape without the batch dimension; the first layer of a ``Sequential`` model
            then builds right away.

    Example:

    >>> from cuflow import keras
    >>> class Scale(keras.layers.Layer):
    ...     def build(self, input_shape):
    ...         self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")
    ...     def call(self, inputs):
    ...         return inputs * self.scale
    >>> Scale()([[1.0, 2.0]]).numpy()
    array([[1., 2.]], dtype=float32)
    """

    _cast_numeric = True  # False for layers that take integer indices (Embedding)

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None, batch_input_shape=None,
                 input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        object.__setattr__(self, "_sublayers", [])
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.dtype = dtypes.as_dtype(dtype or _backend.floatx()).name
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None:
            batch_input_shape = (None,) + tuple(input_shape)
        self._batch_input_shape = None if batch_input_shape is None else tuple(batch_input_shape)
        self._weights = []
        self._penalties = []      # (variable, regularizer)
        self.input_spec = None
        self.built = False
        self.input_shape = self.output_shape = None
        self._inbound_nodes = []  # the functional API's record of calls on KerasTensors (layers/core.py Node)
        self._call_takes_training = "training" in inspect.signature(self.call).parameters

    # --- tracking sub-layers ----------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if isinstance(value, Layer) or (isinstance(value, (list, tuple)) and value
                                        and all(isinstance(v, Layer) for v in value)):
            if "_sublayers" not in self.__dict__:
                raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning layers")
            for layer in (value if isinstance(value, (list, tuple)) else [value]):
                if layer is not self and not any(layer is s for s in self._sublayers):
                    self._sublayers.append(layer)
        elif isinstance(value, Variable) and "_weights" in self.__dict__:
            if not any(value is w for w in self._weights):
                self._weights.append(value)
        object.__setattr__(self, name, value)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self._sublayers:
            layer.trainable = value

    # --- weights ----------------------------------------------------------------------------------------------
    def add_weight(self, name=None, shape=None, initializer=None, regularizer=None, trainable=True, dtype=None):
        """Creates a weight Variable of ``shape`` on the current device and tracks it.

        Accepts both Keras 3's order (``add_weight(shape, initializer, ...)``) and tf.keras 2's
        (``add_weight(name, shape, ...)``); keyword arguments are clearer.

        Args:
            name: the weight's name (shown as ``layer_name/name:0``).
            shape: a tuple of ints.
            initializer: a name, an initializer or a callable (default ``glorot_uniform`` for floats).
            regularizer: a name or callable; its penalty joins ``layer.losses``.
            trainable: whether optimizers update it.
            dtype: defaults to the layer's dtype.
        """
        if name is not None and not isinstance(name, str):  # Keras 3 order: shape first
            name, shape, initializer = None, name, shape if initializer is None else initializer
        shape = tuple(int(d) for d in (shape or ()))
        dtype = dtypes.as_dtype(dtype or self.dtype)
        init = initializers.get(initializer if initializer is not None else
                                ("glorot_uniform" if dtype.is_floating else "zeros"))
        variable = Variable(init(shape, dtype=dtype), trainable=trainable, name=f"{self.name}/{name or 'weight'}",
                            dtype=dtype)
        self._weights.append(variable)
        regularizer = regularizers.get(regularizer)
        if regularizer is not None:
            self._penalties.append((variable, regularizer))
        return variable

    def _all_layers(self):
        yield self
        for layer in self._sublayers:
            yield from layer._all_layers()

    @property
    def weights(self):
        """All weights, trainable first (Keras's order), of this layer and the layers it holds."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        found = [w for w in self._weights if w.trainable]
        for layer in self._sublayers:
            found += layer.trainable_weights
        return _unique(found)

    @property
    def non_trainable_weights(self):
        found = [w for w in self._weights if not (w.trainable and self.trainable)]
        for layer in self._sublayers:
            found += layer.non_trainable_weights if self.trainable else layer.weights
        return _unique(found)

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights
    variables = weights

    def get_weights(self):
        return [np.array(w) for w in self.weights]

    def set_weights(self, values):
        weights = self.weights
        if len(values) != len(weights):
            raise ValueError(f"Layer '{self.name}': set_weights got {len(values)} arrays for {len(weights)} weights")
        for w, v in zip(weights, values):
            w.assign(np.asarray(v))

    def count_params(self):
        """The number of scalars in the weights; the layer must be built."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet, so it has no weights to count: call it on "
                             "data or give input_shape=")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    @property
    def losses(self):
        """The regularization penalties of this layer's (and its sub-layers') weights, as scalar tensors, computed
        now (so inside a ``GradientTape`` they are differentiable)."""
        found = [reg(var) for var, reg in self._penalties]
        for layer in self._sublayers:
            found += layer.losses
        return found

    # --- building and calling ---------------------------------------------------------------------------------
    def build(self, input_shape):
        """Creates the weights for inputs of ``input_shape`` (batch dimension included, possibly None)."""
        self.built = True

    def _build_for(self, input_shape):
        if self.input_spec is not None and not isinstance(input_shape, list):
            self.input_spec.check(self, input_shape)
        self.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return inputs

    # what the last eager call saw (a training step calls each layer with the same shapes every time, so the
    # input check and the Keras shapes below are worked out once per shape, not once per call)
    _checked_input = None   # (input array shape, the InputSpec that accepted it)
    _seen_shapes = None     # ((input array shape, output array shape), (input_shape, output_shape))

    def __call__(self, inputs, *args, training=None, **kwargs):
        if not isinstance(inputs, Tensor) and is_symbolic(inputs):  # the functional API: record, don't run
            return symbolic_call(self, inputs, args, kwargs, training)
        inputs = self._convert_inputs(inputs)
        if not self.built:
            self._build_for(_shape_of(inputs))
        elif self.input_spec is not None and isinstance(inputs, Tensor):
            seen = self._checked_input
            if seen is None or seen[0] != inputs._data.shape or seen[1] is not self.input_spec:
                self.input_spec.check(self, inputs.shape)
                self._checked_input = (inputs._data.shape, self.input_spec)
        if self._call_takes_training:
            kwargs["training"] = training
        outputs = self.call(inputs, *args, **kwargs)
        self._set_shapes(inputs, outputs)
        return outputs

    def _set_shapes(self, inputs, outputs):
        """Sets ``input_shape`` and ``output_shape`` (batchless, as Keras reports them) after an eager call."""
        key = None
        if isinstance(inputs, Tensor) and isinstance(outputs, Tensor):
            key = (inputs._data.shape, outputs._data.shape)
            if self._seen_shapes is not None and self._seen_shapes[0] == key:
                shapes = self._seen_shapes[1]
                # shape tuples are never layers or variables: nothing for __setattr__ to track
                object.__setattr__(self, "input_shape", shapes[0])
                object.__setattr__(self, "output_shape", shapes[1])
                return
        shapes = _batchless(_shape_of(inputs)), _batchless(_shape_of(outputs))
        self._seen_shapes = None if key is None else (key, shapes)
        self.input_shape, self.output_shape = shapes

    @property
    def input(self):
        """The KerasTensor(s) this layer was first called on in the functional API."""
        return self._first_node("input").inputs

    @property
    def output(self):
        """The KerasTensor(s) this layer's first call in the functional API returned (``layer.output`` of a model's
        inner layer is how features are pulled out: ``keras.Model(model.input, model.get_layer('x').output)``)."""
        return self._first_node("output").outputs

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on a KerasTensor and thus has no "
                                 f"defined {what}")
        return self._inbound_nodes[0]

    def _convert_inputs(self, inputs):
        if isinstance(inputs, Tensor):
            dtype = inputs.dtype
            return cast(inputs, self.dtype) if dtype.is_floating and dtype.name != self.dtype else inputs
        if isinstance(inputs, (list, tuple)) and inputs and any(isinstance(v, (Tensor, np.ndarray)) for v in inputs):
            return type(inputs)(self._convert_inputs(v) for v in inputs)
        if isinstance(inputs, dict):
            return {k: self._convert_inputs(v) for k, v in inputs.items()}
        array = np.asarray(inputs)
        # Keras promotes numeric data (NumPy arrays, lists) to the layer's dtype; index-taking layers opt out
        cast_to = self.dtype if array.dtype.kind == "f" or (self._cast_numeric and array.dtype.kind in "iub") else None
        return constant(array, dtype=cast_to)

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (batch included). This default runs ``call`` on zeros; layers
        override it with the shape rule."""
        if not self.built:
            self._build_for(TensorShape(input_shape))
        probe = zeros(tuple(1 if d is None else d for d in input_shape), dtype=self.dtype)
        kwargs = {"training": False} if self._call_takes_training else {}
        out = tuple(self.call(probe, **kwargs).shape)
        return (input_shape[0],) + out[1:]

    # --- config -----------------------------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = self._batch_input_shape
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _shape_of(value):
    if isinstance(value, Tensor):
        return TensorShape(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shape_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape_of(v) for k, v in value.items()}
    return None


def _batchless(shape):
    """Keras reports layer shapes with the batch dimension as None."""
    if isinstance(shape, TensorShape):
        return (None,) + tuple(shape[1:]) if len(shape) else ()
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _batchless(s) for k, s in shape.items()}
    return shape


from .core import is_symbolic, symbolic_call  # noqa: E402 - core builds on Layer, defined above
