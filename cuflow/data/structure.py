"""Elements of a dataset: nested structures of arrays, and :class:`TensorSpec`, the type of one component.

An element is what one step of a dataset yields: a single array, or a tuple (namedtuples too) or dict of them,
nested as deep as the user likes, as in ``tf.data``. Lists are not structure: like TensorFlow, cuflow turns a
list into one tensor (``from_tensor_slices([[1, 2], [3, 4]])`` has two elements ``[1, 2]`` and ``[3, 4]``).

Inside a pipeline elements hold raw arrays (NumPy on the host, CuPy once :meth:`Dataset.prefetch` staged them on a
GPU); they become :class:`cuflow.Tensor` only where the user sees them (iteration, ``map`` and ``filter``
functions). This module is the one place that walks those structures.
"""
import numpy as np

from .. import devices as _devices
from .. import dtypes
from ..tensor import Tensor, TensorShape, Variable, constant

__all__ = ["TensorSpec", "map_structure", "flatten", "pack_as", "same_structure", "shapes_compatible", "normalize",
           "spec_of", "to_tensors", "to_numpy", "stack"]


class TensorSpec:
    """The type of a tensor: its shape (``None`` for unknown dims) and dtype (``tf.TensorSpec``).

    Args:
        shape: a tuple/list of ints and ``None``s, a ``TensorShape``, or ``None`` for an unknown rank.
        dtype: the element type (default ``cuflow.float32``).
        name: an optional name.

    Example:

    >>> import cuflow as tf
    >>> spec = tf.TensorSpec(shape=(None, 3), dtype=tf.float32)
    >>> spec.is_compatible_with(tf.zeros((5, 3)))
    True
    """

    __slots__ = ("_shape", "_dtype", "_name")

    def __init__(self, shape, dtype=dtypes.float32, name=None):
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        if shape is not None and not isinstance(shape, (tuple, list)):
            raise TypeError(f"TensorSpec: shape must be a tuple or list of ints/None (or None for an unknown rank), "
                            f"got {shape!r}")
        self._shape = None if shape is None else TensorShape(shape)
        self._dtype = dtypes.as_dtype(dtype)
        self._name = name

    @classmethod
    def from_tensor(cls, tensor, name=None):
        """The spec of ``tensor`` (a Tensor or an array)."""
        return cls(tuple(tensor.shape), _dtype_of(tensor), name)

    @property
    def shape(self):
        """A ``TensorShape``, or ``None`` when even the rank is unknown."""
        return self._shape

    @property
    def dtype(self):
        return self._dtype

    @property
    def name(self):
        return self._name

    def is_compatible_with(self, other):
        """Whether ``other`` (a TensorSpec, Tensor or array) has this dtype and a shape matching this one."""
        if not isinstance(other, TensorSpec):
            other = TensorSpec.from_tensor(other)
        return other.dtype == self._dtype and shapes_compatible(self._shape, other.shape)

    def __eq__(self, other):
        return (isinstance(other, TensorSpec) and self._shape == other._shape and self._dtype == other._dtype
                and self._name == other._name)

    def __hash__(self):
        return hash((self._shape, self._dtype, self._name))

    def __repr__(self):
        shape = "<unknown>" if self._shape is None else repr(tuple(self._shape))
        return f"TensorSpec(shape={shape}, dtype={self._dtype!r}, name={self._name!r})"


def shapes_compatible(a, b):
    if a is None or b is None:
        return True
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _dtype_of(array):
    return array.dtype if isinstance(array, Tensor) else dtypes.as_dtype(array.dtype)


# --- walking structures ------------------------------------------------------------------------------------------
def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def map_structure(fn, structure, *others):
    """``fn`` applied to every leaf of ``structure`` (and the matching leaves of ``others``), same nesting."""
    if isinstance(structure, dict):
        return type(structure)((k, map_structure(fn, v, *(o[k] for o in others))) for k, v in structure.items())
    if isinstance(structure, tuple):
        items = [map_structure(fn, v, *(o[i] for o in others)) for i, v in enumerate(structure)]
        return type(structure)(*items) if _is_namedtuple(structure) else tuple(items)
    return fn(structure, *others)


def flatten(structure):
    """The leaves of ``structure`` in order (dict values in insertion order)."""
    if isinstance(structure, dict):
        return [leaf for v in structure.values() for leaf in flatten(v)]
    if isinstance(structure, tuple):
        return [leaf for v in structure for leaf in flatten(v)]
    return [structure]


def pack_as(template, leaves):
    """A structure shaped like ``template`` holding ``leaves`` (in :func:`flatten`'s order)."""
    it = iter(leaves)
    return map_structure(lambda _: next(it), template)


def same_structure(a, b):
    """True when ``a`` and ``b`` nest the same way (same containers, lengths and dict keys)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_structure(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same_structure(x, y) for x, y in zip(a, b))
    return not isinstance(b, (dict, tuple))


# --- values in, values out ---------------------------------------------------------------------------------------
def _leaf_array(value, what, host):
    if isinstance(value, Tensor):
        data = value._data
        if isinstance(value, Variable):
            data = data.copy()  # a Variable's value changes under it; a dataset keeps what it was given
        return _devices.to_device(data, _devices.CPU) if host else data
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if value is None:
        raise TypeError(f"{what}: None is not a valid dataset component; use a tensor, an array or a number")
    if hasattr(value, "__cuda_array_interface__") and not host:
        return value
    with _devices.device(_devices.CPU):
        return constant(value)._data  # TensorFlow's dtype rules: Python ints are int32, floats float32


def normalize(value, what, host=True):
    """``value`` (tensors, arrays, numbers, nested in tuples/dicts) as a structure of raw arrays.

    Lists become one array (TensorFlow's rule), namedtuples and dicts keep their type. With ``host``, tensors on
    a GPU are copied to the host (datasets built from data live on the host); without it they stay where they are.
    """
    if isinstance(value, dict):
        return type(value)((k, normalize(v, what, host)) for k, v in value.items())
    if isinstance(value, tuple):
        items = [normalize(v, what, host) for v in value]
        return type(value)(*items) if _is_namedtuple(value) else tuple(items)
    return _leaf_array(value, what, host)


def spec_of(element):
    """The structure of :class:`TensorSpec` describing ``element`` (a structure of arrays)."""
    return map_structure(lambda a: TensorSpec(a.shape, dtypes.as_dtype(a.dtype)), element)


def to_tensors(element):
    """``element`` with every array wrapped in a :class:`cuflow.Tensor` (no copy)."""
    if type(element) is tuple:  # the common (x, y) case, without the recursion
        return tuple(Tensor(a) if not isinstance(a, (tuple, dict)) else to_tensors(a) for a in element)
    return map_structure(Tensor, element)


def to_numpy(element):
    """``element`` as NumPy values: arrays, and NumPy scalars (or bytes) for 0-d components, as TensorFlow gives."""
    return map_structure(lambda a: Tensor(a).numpy(), element)


def stack(arrays):
    """One array from equally shaped ones (NumPy or CuPy, whichever they are)."""
    first = arrays[0]
    if type(first) is np.ndarray:
        return np.stack(arrays)
    from ..kernels import cuda
    return cuda.cupy().stack(arrays)
