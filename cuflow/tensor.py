"""Tensor, Variable and the functions that make tensors from Python and NumPy values.

A :class:`Tensor` wraps exactly one array (``numpy.ndarray`` on the CPU, ``cupy.ndarray`` on a GPU) and is
immutable. A :class:`Variable` is the one mutable holder; it is a Tensor, so it works wherever one does.
Operators (``+``, ``@``, ``[]``, ...) are attached by :mod:`cuflow.ops`, which is where the ops live.
"""
import builtins

import numpy as np

from . import dtypes
from . import devices as _device

__all__ = ["Tensor", "Variable", "TensorShape", "constant", "convert_to_tensor", "is_tensor", "from_dlpack"]

_DTYPE_OF = {}  # numpy dtype -> DType, filled lazily: Tensor.dtype sits on hot paths


def _dtype_of(np_dtype):
    found = _DTYPE_OF.get(np_dtype)
    if found is None:
        found = _DTYPE_OF[np_dtype] = dtypes.as_dtype(np_dtype)
    return found


class TensorShape(tuple):
    """A tensor's shape: a tuple of ints (``None`` for unknown dims) with TensorFlow's helpers."""

    def __new__(cls, dims=()):
        if dims is None:
            dims = ()
        return super().__new__(cls, (None if d is None else int(d) for d in dims))

    @property
    def rank(self):
        return len(self)

    @property
    def ndims(self):
        return len(self)

    def as_list(self):
        return list(self)

    def num_elements(self):
        if any(d is None for d in self):
            return None
        return int(np.prod(self, dtype=np.int64))

    def is_fully_defined(self):
        return all(d is not None for d in self)

    def __getitem__(self, key):
        got = super().__getitem__(key)
        return TensorShape(got) if isinstance(key, slice) else got

    def __repr__(self):
        return f"TensorShape({list(self)})"


_new_shape = tuple.__new__  # TensorShape without converting each dimension: Tensor.shape sits on hot paths


class Tensor:
    """An immutable n-dimensional array on a device.

    Make tensors with :func:`cuflow.constant`, :func:`cuflow.convert_to_tensor` or any op; read them back with
    ``.numpy()`` or ``np.asarray(t)``.

    Example:

    >>> import cuflow as tf
    >>> t = tf.constant([[1, 2, 3], [4, 5, 6]])
    >>> t.shape, t.dtype
    (TensorShape([2, 3]), cuflow.int32)
    """

    # _logits: ("softmax" or "sigmoid", the logits), set only on the output of those activations (Keras 3 keeps
    # `_keras_logits` there) so the cross-entropy losses can work from the logits; unset on every other tensor.
    __slots__ = ("_data", "_logits", "__weakref__")
    __array_priority__ = 100  # NumPy scalars and arrays defer to our reflected operators

    def __init__(self, data):
        self._data = data

    # --- what it is -------------------------------------------------------------------------------------------
    @property
    def shape(self):
        return _new_shape(TensorShape, self._data.shape)  # an array's shape is a tuple of ints already

    @property
    def dtype(self):
        return _dtype_of(self._data.dtype)

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def rank(self):
        return self._data.ndim

    @property
    def size(self):
        return self._data.size

    @property
    def device(self):
        """TensorFlow's full device name, e.g. ``'/job:localhost/replica:0/task:0/device:GPU:0'``."""
        return str(_device.device_of(self._data))

    @property
    def device_object(self):
        return _device.device_of(self._data)

    def get_shape(self):
        return self.shape

    # --- getting data out -------------------------------------------------------------------------------------
    def numpy(self):
        """The value as a NumPy array (a copy from the GPU; on the CPU the array itself, read-only)."""
        data = self._data
        if type(data) is np.ndarray:
            view = data.view()
            view.flags.writeable = False
            return view if view.ndim else view[()]
        out = data.get()
        return out if out.ndim else out[()]

    def __array__(self, dtype=None, copy=None):
        out = self._data if type(self._data) is np.ndarray else self._data.get()
        if dtype is not None and out.dtype != dtype:
            return out.astype(dtype)
        return out.copy() if copy else out

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def cpu(self):
        """This tensor's value on the CPU (itself when already there)."""
        return self._moved(_device.CPU)

    def gpu(self, index=0):
        """This tensor's value on ``/GPU:index``; raises :class:`cuflow.errors.UnavailableError` without a GPU."""
        return self._moved(_device.parse(f"/GPU:{index}"))

    def _moved(self, dev):
        data = _device.to_device(self._data, dev)
        return self if data is self._data and type(self) is Tensor else Tensor(data)

    def ref(self):
        """A hashable reference to this tensor (Tensors themselves compare elementwise and are unhashable)."""
        return _Ref(self)

    # --- Python protocol --------------------------------------------------------------------------------------
    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a scalar (0-d) tensor is not defined")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a scalar (0-d) tensor is not defined")
        for i in range(self._data.shape[0]):
            yield self[i]

    def __bool__(self):
        if self._data.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {tuple(self._data.shape)} is ambiguous; "
                             "use cuflow.reduce_any or cuflow.reduce_all")
        return builtins.bool(self._data.item())

    def __float__(self):
        return float(self._data.item())

    def __int__(self):
        return int(self._data.item())

    def __index__(self):
        if not self.dtype.is_integer or self._data.ndim:
            raise TypeError(f"only scalar integer tensors can be used as an index, got {self.dtype.name} "
                            f"shape {tuple(self._data.shape)}")
        return int(self._data.item())

    __hash__ = None  # like tf.Tensor in TF2: == is elementwise; use .ref() as a dict key

    def __repr__(self):
        value = np.asarray(self)
        text = np.array2string(value) if value.ndim == 0 else repr(value)
        return (f"<cuflow.Tensor: shape={tuple(self._data.shape)}, dtype={self.dtype.name}, "
                f"device={_device.device_of(self._data).short}, numpy={chr(10) if chr(10) in text else ''}{text}>")

    def __str__(self):
        return f"cuflow.Tensor({np.asarray(self)}, shape={tuple(self._data.shape)}, dtype={self.dtype.name})"


class _Ref:
    __slots__ = ("_tensor",)

    def __init__(self, tensor):
        self._tensor = tensor

    def deref(self):
        return self._tensor

    def __hash__(self):
        return id(self._tensor)

    def __eq__(self, other):
        return isinstance(other, _Ref) and other._tensor is self._tensor


class Variable(Tensor):
    """A mutable tensor: model weights and other training state.

    Args:
        initial_value: a Tensor or anything :func:`constant` accepts (or a zero-argument callable returning one).
        trainable: whether ``GradientTape`` watches it automatically and optimizers update it.
        name: a name for it (shown in ``repr`` and saved files).
        dtype: cast the initial value to this dtype.

    Example:

    >>> import cuflow as tf
    >>> v = tf.Variable([1.0, 2.0], name="v")
    >>> _ = v.assign_add([1.0, 1.0])
    >>> v.numpy()
    array([2., 3.], dtype=float32)
    """

    __slots__ = ("trainable", "_name")
    _counter = 0

    def __init__(self, initial_value, trainable=True, name=None, dtype=None, shape=None):
        if callable(initial_value):
            initial_value = initial_value()
        if isinstance(initial_value, Tensor):
            data = initial_value._data
            if dtype is not None and _dtype_of(data.dtype) != dtype:
                data = data.astype(dtypes.numpy_dtype(dtype))
            else:
                data = data.copy()
        else:
            data = constant(initial_value, dtype=dtype)._data
        if shape is not None and tuple(shape) != tuple(data.shape):
            raise ValueError(f"Variable: initial value has shape {tuple(data.shape)}, but shape={tuple(shape)}")
        super().__init__(data)
        self.trainable = builtins.bool(trainable)
        if name is None:
            Variable._counter += 1
            name = "Variable" if Variable._counter == 1 else f"Variable_{Variable._counter - 1}"
        self._name = name

    @property
    def name(self):
        return f"{self._name}:0"

    def assign(self, value, read_value=True):
        """Sets the value. ``value`` must have this variable's shape; it is cast to its dtype and must be on its
        device (Python and NumPy values are copied there)."""
        self._data = self._checked(value, "assign")
        return self if read_value else None

    def assign_add(self, delta, read_value=True):
        self._data = _xp_of(self._data).asarray(self._data + self._checked(delta, "assign_add"))
        return self if read_value else None

    def assign_sub(self, delta, read_value=True):
        self._data = _xp_of(self._data).asarray(self._data - self._checked(delta, "assign_sub"))
        return self if read_value else None

    def _checked(self, value, method):
        dev = _device.device_of(self._data)
        if isinstance(value, Tensor):
            if value.device_object != dev:
                raise ValueError(f"Variable.{method}: {self._name} is on {dev.short} but the value is on "
                                 f"{value.device_object.short}")
            if value.dtype != self.dtype and not (value.dtype.is_floating and self.dtype.is_floating):
                raise TypeError(f"Variable.{method}: {self._name} has dtype {self.dtype.name}, value has "
                                f"{value.dtype.name}")
            data = value._data
        else:
            data = _device.to_device(np.asarray(value, dtype=self._data.dtype), dev)
        if tuple(data.shape) != tuple(self._data.shape):
            if data.ndim == 0 and method != "assign":
                return data.astype(self._data.dtype, copy=False)
            raise ValueError(f"Variable.{method}: {self._name} has shape {tuple(self._data.shape)}, value has shape "
                             f"{tuple(data.shape)}")
        return data.astype(self._data.dtype, copy=False)

    def value(self):
        """A snapshot of the current value, as an immutable Tensor (a copy: optimizers update variables in place)."""
        return Tensor(self._data.copy())

    read_value = value

    def __repr__(self):
        value = np.asarray(self)
        text = np.array2string(value) if value.ndim == 0 else repr(value)
        return f"<cuflow.Variable '{self.name}' shape={tuple(self._data.shape)} dtype={self.dtype.name}, numpy={text}>"


def is_tensor(value):
    return isinstance(value, Tensor)


def _to_numpy(value, dtype):
    """Converts Python/NumPy data (possibly nested lists holding tensors) to a NumPy array of the inferred dtype."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in _flat(value)):
        value = _nested_numpy(value)
    if dtype is None:
        dtype = dtypes.infer_dtype(value)
    else:
        dtype = dtypes.as_dtype(dtype)
    if dtype == dtypes.string:
        return np.vectorize(lambda s: s.encode() if isinstance(s, str) else s, otypes=[object])(
            np.asarray(value, dtype=object)) if np.ndim(value) else np.asarray(
            value.encode() if isinstance(value, str) else value, dtype=object)
    if isinstance(value, np.ndarray) and not dtypes.as_dtype(value.dtype).is_floating and dtype.is_integer:
        return value.astype(dtype.numpy_dtype, copy=False)
    source = np.asarray(value)
    if source.dtype.kind in "OUS":
        raise TypeError(f"constant: cannot convert {value!r} to {dtype.name}: it holds strings or objects")
    if source.dtype.kind == "f" and dtype.is_integer:
        if not np.all(np.isfinite(source)) or not np.array_equal(source, np.trunc(source)):
            raise TypeError(f"constant: cannot convert {_short(value)} to {dtype.name} without losing the fraction")
    return source.astype(dtype.numpy_dtype, copy=False)


def _short(value):
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _flat(value):
    for v in value:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def _nested_numpy(value):
    if isinstance(value, Tensor):
        return np.asarray(value)
    if isinstance(value, (list, tuple)):
        return [_nested_numpy(v) for v in value]
    return value


def constant(value, dtype=None, shape=None, name=None):
    """Creates a Tensor on the current device from a Python value, NumPy array or Tensor.

    Without ``dtype``, TensorFlow's rules apply: Python ints become int32, Python floats float32, NumPy arrays keep
    their dtype.

    Args:
        value: a number, a (nested) list, a NumPy array, a CuPy array or a Tensor. A CuPy array is copied on the
            device (to the host when the current device is a CPU), never through NumPy.
        dtype: the element type to create (``cuflow.float32``, ``"float32"`` or ``np.float32``).
        shape: if given, a scalar ``value`` is broadcast to it, otherwise ``value`` is reshaped to it.
        name: ignored (kept for TensorFlow compatibility).

    Returns:
        A Tensor.

    Raises:
        TypeError: ``value`` cannot be represented in ``dtype`` (e.g. ``constant(2.5, dtype=cuflow.int32)``).
        ValueError: ``value`` has a different number of elements than ``shape``.

    Example:

    >>> import cuflow as tf
    >>> tf.constant(5).dtype, tf.constant(5.0).dtype
    (cuflow.int32, cuflow.float32)
    """
    if isinstance(value, Tensor):
        data = value._data
        if dtype is not None and value.dtype != dtype:
            data = data.astype(dtypes.numpy_dtype(dtype))
        host = None
    elif hasattr(value, "__cuda_array_interface__"):  # a CuPy (or other CUDA) array: stays on the device
        data = _device_array_copy(value, dtype)
        host = None
    else:
        host = _to_numpy(value, dtype)
        data = None
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        arr = host if host is not None else data
        count = int(np.prod(shape, dtype=np.int64))
        if arr.size == 1 and count != 1:
            arr = _xp_of(arr).broadcast_to(arr.reshape(()), shape).copy()
        elif arr.size != count:
            raise ValueError(f"constant: value has {arr.size} elements, which cannot be reshaped to shape {shape}")
        else:
            arr = arr.reshape(shape)
        host, data = (arr, None) if host is not None else (None, arr)
    if host is not None:
        dev = _device.current_device()
        if dev.is_gpu and host.dtype == object:
            raise TypeError("constant: string tensors live on the CPU only; create them inside "
                            "cuflow.device('/CPU:0')")
        data = _device.to_device(host, dev) if dev.is_gpu else host
    elif not isinstance(value, Tensor):
        data = _device.to_device(data, _device.current_device())
    return Tensor(data)


def _device_array_copy(value, dtype):
    """A CuPy copy of the CUDA array ``value`` in ``dtype`` (default: its own), on the device it is on."""
    from .kernels import cuda
    cp = cuda.cupy()
    target = value.dtype if dtype is None else dtypes.as_dtype(dtype).numpy_dtype
    return cp.array(value, dtype=target, copy=True)


def _xp_of(array):
    from .kernels import cuda
    return np if type(array) is np.ndarray else cuda.cupy()


def convert_to_tensor(value, dtype=None, dtype_hint=None, name=None):
    """Returns ``value`` as a Tensor: Tensors pass through (checked against ``dtype``), anything else goes to
    :func:`constant`.

    Raises:
        TypeError: ``value`` is a Tensor of another dtype than ``dtype``.
    """
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != dtype:
            raise TypeError(f"convert_to_tensor: tensor has dtype {value.dtype.name}, requested {dtypes.as_dtype(dtype).name}")
        return value
    if dtype is None and dtype_hint is not None:
        try:
            return constant(value, dtype=dtype_hint)
        except (TypeError, ValueError):
            pass
    return constant(value, dtype=dtype)


def from_dlpack(capsule_or_array):
    """Creates a Tensor sharing memory with a DLPack-capable array (NumPy, CuPy, PyTorch, JAX)."""
    dev_type = None
    if hasattr(capsule_or_array, "__dlpack_device__"):
        dev_type = int(capsule_or_array.__dlpack_device__()[0])
    if dev_type in (2, 3, 13):  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged
        from .kernels import cuda
        return Tensor(cuda.cupy().from_dlpack(capsule_or_array))
    return Tensor(np.from_dlpack(capsule_or_array))
