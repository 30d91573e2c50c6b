"""Datasets made from data: tensor slices, one element, a Python generator, a range of integers."""
import numpy as np

from .. import dtypes, errors
from . import structure
from .dataset import UNKNOWN_CARDINALITY, Dataset, check_callable, check_int
from .structure import TensorSpec


class TensorSlices(Dataset):
    """``Dataset.from_tensor_slices``: element ``i`` is component ``[i]`` of every component."""

    def __init__(self, tensors):
        super().__init__()
        self._data = structure.normalize(tensors, "from_tensor_slices")
        leaves = structure.flatten(self._data)
        for i, leaf in enumerate(leaves):
            if leaf.ndim == 0:
                raise ValueError(f"from_tensor_slices: every component needs a first dimension to slice; component "
                                 f"{i} is a scalar ({leaf.dtype} {leaf[()]!r})")
        sizes = [leaf.shape[0] for leaf in leaves]
        if len(set(sizes)) > 1:
            raise ValueError(f"from_tensor_slices: all components must have the same size in their first dimension, "
                             f"got sizes {sizes}")
        self._size = sizes[0]

    def _iterate(self):
        data = self._data
        if type(data) is tuple and all(type(a) is np.ndarray for a in data):
            for i in range(self._size):  # the common (x, y) case, without the recursion
                yield tuple(a[i, ...] for a in data)
        else:
            for i in range(self._size):
                yield structure.map_structure(lambda a: a[i, ...], data)

    def _batches(self, batch_size, drop_remainder):
        """Batches as slices of the arrays (no per-element stacking): what ``batch`` uses right after this."""
        stop = self._size - self._size % batch_size if drop_remainder else self._size
        for start in range(0, stop, batch_size):
            yield structure.map_structure(lambda a: a[start:start + batch_size], self._data)

    def _cardinality(self):
        return self._size

    def _compute_spec(self):
        return structure.map_structure(lambda a: TensorSpec(a.shape[1:], dtypes.as_dtype(a.dtype)), self._data)


class FromTensors(Dataset):
    """``Dataset.from_tensors``: one element, the data itself."""

    def __init__(self, tensors):
        super().__init__()
        self._data = structure.normalize(tensors, "from_tensors")

    def _iterate(self):
        yield self._data

    def _cardinality(self):
        return 1

    def _compute_spec(self):
        return structure.spec_of(self._data)


class Range(Dataset):
    """``Dataset.range``: the integers of Python's ``range(*args)`` as scalars of ``dtype``."""

    def __init__(self, args, dtype):
        super().__init__()
        if not 1 <= len(args) <= 3:
            raise TypeError(f"Dataset.range takes 1 to 3 arguments (stop | start, stop[, step]), got {len(args)}")
        names = ("stop",) if len(args) == 1 else ("start", "stop", "step")
        args = [check_int(a, n, "Dataset.range") for a, n in zip(args, names)]
        if len(args) == 3 and args[2] == 0:
            raise ValueError("Dataset.range: `step` must not be 0")
        self._range = range(*args)
        self._dtype = dtypes.as_dtype(dtype)

    def _iterate(self):
        np_dtype = self._dtype.numpy_dtype
        for i in self._range:
            yield np.asarray(i, dtype=np_dtype)

    def _cardinality(self):
        return len(self._range)

    def _compute_spec(self):
        return TensorSpec((), self._dtype)


class FromGenerator(Dataset):
    """``Dataset.from_generator``: a fresh ``generator(*args)`` per iteration, each element checked against the
    signature (structure, dtype, shape)."""

    def __init__(self, generator, output_types, output_shapes, args, output_signature):
        super().__init__()
        self._generator = check_callable(generator, "generator", "from_generator")
        if output_signature is not None:
            if output_types is not None or output_shapes is not None:
                raise TypeError("from_generator: give either `output_signature` or `output_types` (and "
                                "`output_shapes`), not both")
            signature = structure.map_structure(_as_spec, output_signature)
        elif output_types is not None:
            signature = _signature_from_types(output_types, output_shapes)
        else:
            raise TypeError("from_generator: `output_signature` (or the older `output_types`) is required, e.g. "
                            "output_signature=tf.TensorSpec(shape=(None,), dtype=tf.float32)")
        self._signature = signature
        self._args = () if args is None else tuple(
            a[()] if a.ndim == 0 else a for a in structure.normalize(tuple(args), "from_generator args"))

    def _iterate(self):
        signature = self._signature
        for value in self._generator(*self._args):
            yield _conform(value, signature, signature)

    def _cardinality(self):
        return UNKNOWN_CARDINALITY

    def _compute_spec(self):
        return self._signature


def _as_spec(spec):
    if not isinstance(spec, TensorSpec):
        raise TypeError(f"from_generator: `output_signature` must be a (nested) structure of tf.TensorSpec, got "
                        f"{spec!r}")
    return spec


def _signature_from_types(types, shapes):
    """TensorSpecs from ``output_types`` and ``output_shapes``; shapes nest like the types down to each leaf."""
    if isinstance(types, dict):
        return {k: _signature_from_types(t, None if shapes is None else shapes[k]) for k, t in types.items()}
    if isinstance(types, tuple):
        if shapes is not None and len(shapes) != len(types):
            raise ValueError(f"from_generator: `output_shapes` {shapes!r} does not match `output_types` {types!r}")
        return tuple(_signature_from_types(t, None if shapes is None else shapes[i]) for i, t in enumerate(types))
    return TensorSpec(None if shapes is None else tuple(shapes), types)


def _conform(value, spec, signature):
    """``value`` (one generated element, or a part of it) as arrays matching ``spec``."""
    if isinstance(spec, dict):
        if not isinstance(value, dict) or value.keys() != spec.keys():
            raise _mismatch(value, signature)
        return {k: _conform(value[k], s, signature) for k, s in spec.items()}
    if isinstance(spec, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(spec):
            raise _mismatch(value, signature)
        return tuple(_conform(v, s, signature) for v, s in zip(value, spec))
    try:
        array = np.asarray(value, dtype=spec.dtype.numpy_dtype)
    except (TypeError, ValueError):
        raise TypeError(f"`generator` yielded an element that could not be converted to the expected type. The "
                        f"expected type was {spec.dtype.name}, but the yielded element was {_short(value)}.") from None
    if spec.dtype == dtypes.string:
        array = structure.normalize(array, "from_generator")
    if not structure.shapes_compatible(spec.shape, array.shape):
        raise errors.InvalidArgumentError(
            f"`generator` yielded an element of shape {tuple(array.shape)} where an element of shape "
            f"{tuple(spec.shape)} was expected.")
    return array


def _mismatch(value, signature):
    return TypeError(f"`generator` yielded an element that did not match the expected structure. The expected "
                     f"structure was {signature}, but the yielded element was {_short(value)}.")


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."
