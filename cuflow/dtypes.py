"""cuflow dtypes: TensorFlow-style names over NumPy / CuPy dtypes.

A :class:`DType` is a thin, hashable name for a NumPy dtype. ``cuflow.float32 == np.float32 == "float32"`` holds,
so user code may pass any of the three wherever a ``dtype=`` is accepted. ``bfloat16`` comes from the optional
``ml_dtypes`` package on the CPU and is resolved lazily, so ``import cuflow`` needs NumPy only.
"""
import builtins

import numpy as np

__all__ = [
    "DType", "as_dtype", "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "string", "infer_dtype",
]


def _bfloat16_numpy():
    try:
        import ml_dtypes
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("cuflow.bfloat16 needs the 'ml_dtypes' package: pip install ml_dtypes") from e
    return np.dtype(ml_dtypes.bfloat16)


class DType:
    """A tensor element type, e.g. ``cuflow.float32``.

    Attributes:
        name: the TensorFlow name (``"float32"``).
        as_numpy_dtype: the NumPy scalar type (``numpy.float32``).
    """

    __slots__ = ("name", "_np")

    def __init__(self, name, np_dtype):
        self.name = name
        self._np = np_dtype  # a numpy.dtype, or None until first use (bfloat16)

    @property
    def numpy_dtype(self):
        """The ``numpy.dtype`` this DType stands for."""
        if self._np is None:
            self._np = _bfloat16_numpy()
        return self._np

    @property
    def as_numpy_dtype(self):
        return self.numpy_dtype.type

    @property
    def is_floating(self):
        return self.name in ("float16", "bfloat16", "float32", "float64")

    @property
    def is_integer(self):
        return self.name.startswith(("int", "uint"))

    @property
    def is_unsigned(self):
        return self.name.startswith("uint")

    @property
    def is_bool(self):
        return self.name == "bool"

    @property
    def is_differentiable(self):
        """True for the dtypes gradients flow through (floating point)."""
        return self.is_floating

    @property
    def size(self):
        return self.numpy_dtype.itemsize

    @property
    def min(self):
        return (np.finfo if self.is_floating else np.iinfo)(self.numpy_dtype).min

    @property
    def max(self):
        return (np.finfo if self.is_floating else np.iinfo)(self.numpy_dtype).max

    def __eq__(self, other):
        if isinstance(other, DType):
            return self.name == other.name
        try:
            return self.name == as_dtype(other).name
        except (TypeError, ValueError):
            return False

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f"cuflow.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


float16 = DType("float16", np.dtype(np.float16))
bfloat16 = DType("bfloat16", None)
float32 = DType("float32", np.dtype(np.float32))
float64 = DType("float64", np.dtype(np.float64))
int8 = DType("int8", np.dtype(np.int8))
int16 = DType("int16", np.dtype(np.int16))
int32 = DType("int32", np.dtype(np.int32))
int64 = DType("int64", np.dtype(np.int64))
uint8 = DType("uint8", np.dtype(np.uint8))
uint16 = DType("uint16", np.dtype(np.uint16))
uint32 = DType("uint32", np.dtype(np.uint32))
uint64 = DType("uint64", np.dtype(np.uint64))
bool = DType("bool", np.dtype(np.bool_))  # noqa: A001 - TensorFlow's public name
string = DType("string", np.dtype(object))

_BY_NAME = {d.name: d for d in (float16, bfloat16, float32, float64, int8, int16, int32, int64,
                                uint8, uint16, uint32, uint64, bool, string)}
_ALIASES = {"half": float16, "float": float32, "double": float64, "bool_": bool, "str": string,
            "object": string}


def as_dtype(value):
    """Converts a DType, NumPy dtype, NumPy scalar type or name to a :class:`DType`.

    Raises:
        TypeError: if ``value`` does not name a dtype cuflow supports.
    """
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = _BY_NAME.get(value) or _ALIASES.get(value)
        if found is None:
            raise TypeError(f"dtype: unknown dtype name {value!r}; expected one of {sorted(_BY_NAME)}")
        return found
    if value is str or value is bytes:
        return string
    if value is float:
        return float32
    if value is int:
        return int32
    try:
        np_dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype: cannot interpret {value!r} as a dtype") from None
    if np_dtype.kind in "OUS":
        return string
    if np_dtype.name == "bfloat16":
        return bfloat16
    found = _BY_NAME.get(np_dtype.name)
    if found is None:
        raise TypeError(f"dtype: NumPy dtype {np_dtype} is not supported by cuflow")
    return found


def numpy_dtype(value):
    """The ``numpy.dtype`` for anything :func:`as_dtype` accepts."""
    return as_dtype(value).numpy_dtype


def infer_dtype(value):
    """The dtype TensorFlow gives ``constant(value)`` when no dtype is asked for.

    Python ints become int32, Python floats float32, bools bool; NumPy arrays and scalars keep their own dtype
    (so float64 data stays float64), except that NumPy's default int64 from a Python list is narrowed to int32.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return as_dtype(value.dtype)
    if isinstance(value, builtins.bool):
        return bool
    if isinstance(value, int):
        return int32
    if isinstance(value, float):
        return float32
    if isinstance(value, complex):
        raise TypeError("constant: complex values are not supported by cuflow")
    if isinstance(value, (str, bytes)):
        return string
    kind = np.asarray(value).dtype.kind
    return {"b": bool, "i": int32, "u": int32, "f": float32, "U": string, "S": string, "O": string}.get(kind, float32)
