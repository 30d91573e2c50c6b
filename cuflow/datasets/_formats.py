"""Readers for the files the datasets come in, none of which runs code from the file.

- IDX (MNIST, Fashion-MNIST): a 4-byte magic (two zero bytes, a type code, the number of dimensions), the sizes as
  big-endian int32, then the values. Every header field is checked against what the loader expects.
- CIFAR batches: Python pickles of a dict ``{b'data': uint8 array, b'labels': [int], ...}``. They are read with an
  unpickler that can build only NumPy arrays and dtypes (plus the builtin containers pickle makes without naming
  them): any other global, ``os.system`` or ``builtins.eval`` say, is refused before it is looked up.
"""
import gzip
import pickle

import numpy as np

__all__ = ["read_idx", "load_pickle"]

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


def read_idx(path, shape):
    """Reads a (gzipped, if the name ends in .gz) IDX file and checks it against ``shape``.

    Args:
        path: the file.
        shape: the expected shape, ``None`` where any size is fine, e.g. ``(None, 28, 28)``.

    Returns:
        The array, in native byte order.

    Raises:
        ValueError: a wrong magic number or type code, a number of dimensions or sizes other than ``shape``, or a
            body shorter or longer than the header says.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file: it starts with {data[:4].hex() or 'nothing'}, expected "
                         f"0000 followed by a type code ({', '.join(f'{c:02x}' for c in _IDX_TYPES)}) and the "
                         f"number of dimensions")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    if ndim != len(shape):
        raise ValueError(f"{path}: expected an IDX file with {len(shape)} dimensions, its header says {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: the IDX header is cut short ({len(data)} bytes, {header} expected)")
    sizes = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if any(want is not None and want != got for want, got in zip(shape, sizes)):
        raise ValueError(f"{path}: expected sizes {_shape_text(shape)}, the IDX header says {sizes}")
    body = len(data) - header
    expected = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    if body != expected:
        raise ValueError(f"{path}: the IDX header promises {sizes} values of {dtype.itemsize} byte(s) "
                         f"({expected} bytes), the file holds {body}")
    return np.frombuffer(data, dtype, offset=header).reshape(sizes).astype(dtype.newbyteorder("="), copy=False)


def _shape_text(shape):
    return "(" + ", ".join("any" if n is None else str(n) for n in shape) + ")"


def _numpy_globals():
    # NumPy 2 pickles name numpy._core.multiarray, NumPy 1 (and the CIFAR files) numpy.core.multiarray: both map
    # to the one function here, so no module is imported by name from the stream.
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct}


class _ArrayUnpickler(pickle.Unpickler):
    _allowed = _numpy_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a dataset file may only hold NumPy "
                                         f"arrays, numbers, strings, lists and dicts") from None


def load_pickle(file, what):
    """Loads a pickle that may only hold NumPy arrays and plain containers (Python 2 strings read as bytes).

    Raises:
        ValueError: the stream names anything else, or is not a valid pickle; the message names ``what``.
    """
    try:
        value = _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"{what} is not a valid dataset pickle: {error}") from None
    return value
