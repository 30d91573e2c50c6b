"""Merge layers: combine a list of tensors into one (Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate), with Keras's shape rules, and their functional forms (``add``, ``concatenate``, ...)."""
import functools

from ..ops.array import concat, expand_dims
from ..ops.math import add_n, maximum as _maximum, minimum as _minimum
from .base import Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "add", "subtract",
           "multiply", "average", "maximum", "minimum", "concatenate"]


class _Merge(Layer):
    """The base of the elementwise merges: inputs of equal batch size whose other axes broadcast (Keras aligns
    them from the right and inserts axes after the batch axis into lower-rank inputs)."""

    _min_inputs, _max_inputs = 1, None

    def _merge(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} must define _merge(inputs)")

    def _convert_inputs(self, inputs):
        return _convert_each(self, inputs)

    def _check_inputs(self, shapes):
        """Raises ValueError (naming the layer and what it got) unless ``shapes`` is a usable list of shapes."""
        what = f"{type(self).__name__} '{self.name}'"
        if not isinstance(shapes, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in shapes):
            raise ValueError(f"{what}: a merge layer should be called on a list of tensors, got input with shape "
                             f"{None if shapes is None else tuple(shapes)}")
        count = len(shapes)
        if count < self._min_inputs or (self._max_inputs is not None and count > self._max_inputs):
            expected = self._min_inputs if self._max_inputs == self._min_inputs else f"at least {self._min_inputs}"
            raise ValueError(f"{what}: expected {expected} input(s), got {count} with shapes {_listed(shapes)}")
        if any(len(s) == 0 for s in shapes):
            raise ValueError(f"{what}: inputs need a batch axis, got shapes {_listed(shapes)}")
        batch_sizes = {s[0] for s in shapes} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(f"{what}: cannot merge tensors with different batch sizes, got shapes {_listed(shapes)}")

    def build(self, input_shape):
        self.compute_output_shape(input_shape)  # a clear error before any op's

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        batch = next((s[0] for s in shapes if s[0] is not None), None)
        return (batch,) + functools.reduce(lambda a, b: self._broadcast(a, b, shapes), [s[1:] for s in shapes])

    def _broadcast(self, a, b, shapes):
        if len(a) < len(b):
            a, b = b, a
        out = list(a[:len(a) - len(b)])
        for i, j in zip(a[len(a) - len(b):], b):
            if i is None or j is None:
                out.append(None)
            elif i != j and 1 not in (i, j):
                raise ValueError(f"{type(self).__name__} '{self.name}': inputs have incompatible shapes "
                                 f"{_listed(shapes)} (dimensions {i} and {j} do not broadcast)")
            else:
                out.append(j if i == 1 else i)
        return tuple(out)

    def call(self, inputs):
        self.compute_output_shape([tuple(x.shape) for x in inputs] if isinstance(inputs, (list, tuple))
                                  else getattr(inputs, "shape", None))
        rank = max(x.ndim for x in inputs)
        aligned = []
        for x in inputs:
            for _ in range(rank - x.ndim):
                x = expand_dims(x, 1)
            aligned.append(x)
        return self._merge(aligned)


def _convert_each(layer, inputs):
    """A list's entries each become a tensor, even when given as nested Python lists."""
    if isinstance(inputs, (list, tuple)):
        return [Layer._convert_inputs(layer, v) for v in inputs]
    return Layer._convert_inputs(layer, inputs)


def _listed(shapes):
    return [tuple(s) for s in shapes]


class Add(_Merge):
    """The sum of its inputs (a list of tensors whose shapes broadcast).

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> keras.layers.Add()([np.ones((2, 3)), np.full((2, 3), 2.0)]).numpy()
    array([[3., 3., 3.],
           [3., 3., 3.]], dtype=float32)
    """

    def _merge(self, inputs):
        return add_n(inputs) if len({tuple(x.shape) for x in inputs}) == 1 else functools.reduce(
            lambda a, b: a + b, inputs)


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``: exactly two inputs."""

    _min_inputs = _max_inputs = 2

    def _merge(self, inputs):
        return inputs[0] - inputs[1]


class Multiply(_Merge):
    """The elementwise product of its inputs."""

    def _merge(self, inputs):
        return functools.reduce(lambda a, b: a * b, inputs)


class Average(_Merge):
    """The elementwise mean of its inputs."""

    def _merge(self, inputs):
        return functools.reduce(lambda a, b: a + b, inputs) * (1.0 / len(inputs))


class Maximum(_Merge):
    """The elementwise maximum of its inputs."""

    def _merge(self, inputs):
        return functools.reduce(_maximum, inputs)


class Minimum(_Merge):
    """The elementwise minimum of its inputs."""

    def _merge(self, inputs):
        return functools.reduce(_minimum, inputs)


class Concatenate(Layer):
    """Joins a list of tensors along ``axis`` (default -1); all other axes must match.

    Args:
        axis: the axis to concatenate along.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> keras.layers.Concatenate()([np.zeros((2, 3)), np.ones((2, 4))]).shape
    TensorShape([2, 7])
    """

    def _convert_inputs(self, inputs):
        return _convert_each(self, inputs)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"Concatenate: axis must be an int, got {axis!r}")
        self.axis = axis

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        what = f"Concatenate '{self.name}'"
        if not isinstance(input_shape, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in input_shape) \
                or not input_shape:
            raise ValueError(f"{what}: should be called on a list of at least one tensor, got input with shape "
                             f"{None if input_shape is None else tuple(input_shape)}")
        shapes = _listed(input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(f"{what}: inputs must have one rank that has axis {self.axis}, got shapes {shapes}")
        axis = self.axis % rank
        out = list(shapes[0])
        for shape in shapes[1:]:
            for i, (have, size) in enumerate(zip(out, shape)):
                if i == axis:
                    out[i] = None if None in (have, size) else have + size
                elif have is None:
                    out[i] = size
                elif size is not None and size != have:
                    raise ValueError(f"{what}: a Concatenate layer requires inputs with matching shapes except for "
                                     f"the concatenation axis {self.axis}, got shapes {shapes}")
        return tuple(out)

    def call(self, inputs):
        self.compute_output_shape([tuple(x.shape) for x in inputs] if isinstance(inputs, (list, tuple))
                                  else getattr(inputs, "shape", None))
        return concat(list(inputs), axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _functional(layer_class):
    def merge(inputs, **kwargs):
        return layer_class(**kwargs)(inputs)

    merge.__name__ = merge.__qualname__ = layer_class.__name__.lower()
    merge.__doc__ = f"The functional form of :class:`{layer_class.__name__}`: ``{layer_class.__name__}(**kwargs)" \
                    f"(inputs)``."
    return merge


add, subtract, multiply, average, maximum, minimum = (
    _functional(c) for c in (Add, Subtract, Multiply, Average, Maximum, Minimum))


def concatenate(inputs, axis=-1, **kwargs):
    """The functional form of :class:`Concatenate`: ``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
