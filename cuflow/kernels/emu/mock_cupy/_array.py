"""The mock GPU's ``cupy.ndarray``: a NumPy array that cuflow (and NumPy) treat as living on the device.

``type(a) is numpy.ndarray`` is False for it, which is all cuflow asks to tell a device array from a host one.
NumPy ufuncs, functions and methods on it return device arrays again, and reductions return 0-d device arrays, never
NumPy scalars (CuPy never hands back a host scalar). Like CuPy, it refuses host arrays as operands: ``dev + host``,
``cupy.concatenate([dev, host])`` or a host array among a kernel's arguments raise ``TypeError``, so a forgotten
transfer fails under the mock as it would on a GPU. What it cannot catch: ``numpy.asarray(dev)`` and
``numpy.array(dev)`` quietly give a host view/copy (CuPy raises), because NumPy never asks a subclass.
"""
import numpy as np

from . import _memory
from .cuda import Device0

__all__ = ["ndarray", "wrap", "unwrap", "device_operand", "reject_host", "finish", "ufunc_apply"]

_PY_SCALARS = (bool, int, float, complex)
# NumPy functions that only read shapes and dtypes: host arrays are fine there (CuPy's twins accept them too).
_METADATA_FUNCTIONS = {np.shape, np.ndim, np.size, np.result_type, np.can_cast, np.min_scalar_type,
                       np.iscomplexobj, np.isrealobj, np.broadcast_shapes}


def _host_array_error(where):
    return TypeError(
        f"{where}: got a numpy.ndarray (host memory) where a device array is needed. The mock GPU, like CuPy, "
        "never moves data between host and device implicitly: convert it with cupy.asarray (or keep it on the "
        "host)")


def device_operand(x, where):
    """``x`` as NumPy's ufunc machinery should see it: device arrays as plain views, scalars as they are."""
    if isinstance(x, ndarray):
        return x.view(np.ndarray)
    if isinstance(x, np.ndarray):
        if x.ndim == 0:  # CuPy takes 0-d host arrays as scalars
            return x
        raise _host_array_error(where)
    if isinstance(x, _PY_SCALARS) or isinstance(x, np.generic):
        return x
    raise TypeError(f"{where}: unsupported operand type {type(x).__name__} (CuPy takes device arrays and scalars)")


def unwrap(x):
    """Device arrays (also inside lists, tuples and dicts) as plain NumPy views of the same memory."""
    if isinstance(x, ndarray):
        return x.view(np.ndarray)
    kind = type(x)
    if kind is tuple or kind is list:
        return kind(unwrap(v) for v in x)
    if kind is dict:
        return {k: unwrap(v) for k, v in x.items()}
    return x


def reject_host(where, values):
    """Raises TypeError if ``values`` (searched through lists, tuples and dicts) hold a host array with ndim >= 1."""
    for x in values:
        kind = type(x)
        if kind is ndarray:
            continue
        if kind is tuple or kind is list:
            reject_host(where, x)
        elif kind is dict:
            reject_host(where, x.values())
        elif isinstance(x, np.ndarray) and not isinstance(x, ndarray) and x.ndim:
            raise _host_array_error(where)


def wrap(x):
    """NumPy results as device results: arrays become device arrays, NumPy scalars 0-d device arrays."""
    kind = type(x)
    if kind is np.ndarray:
        if x.base is None:
            _memory.track(x)
        return x.view(ndarray)
    if kind is ndarray:
        return x
    if isinstance(x, np.generic):
        return wrap(np.asarray(x))
    if kind is tuple or kind is list:
        return kind(wrap(v) for v in x)
    return x


def finish(result, kwargs):
    """The result of a call that may have written into ``out=``: CuPy returns ``out`` itself then."""
    out = kwargs.get("out")
    if out is not None:
        if isinstance(out, tuple):
            return out[0] if len(out) == 1 else out
        return out
    return wrap(result)


def ufunc_apply(ufunc, method, inputs, kwargs):
    """Runs ``ufunc.method`` on device operands and returns device results (CuPy's rules for operands)."""
    where = f"cupy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if method == "at":  # at(a, indices, b=None): indices may be anything NumPy indexes with
        a, indices, *rest = inputs
        if not isinstance(a, ndarray):
            raise TypeError(f"{where}: the array updated in place must be a device array, got {type(a).__name__}")
        getattr(ufunc, "at")(a.view(np.ndarray), unwrap(indices), *(device_operand(b, where) for b in rest))
        return None
    args = [device_operand(x, where) for x in inputs]
    if kwargs:
        out = kwargs.get("out")
        if out is not None:
            out = out if isinstance(out, tuple) else (out,)
            for o in out:
                if not isinstance(o, ndarray):
                    raise TypeError(f"{where}: out= must be a device array, got {type(o).__name__}")
            kwargs = {**kwargs, "out": tuple(o.view(np.ndarray) for o in out)}
            getattr(ufunc, method)(*args, **unwrap(kwargs))
            return out[0] if len(out) == 1 else out
        kwargs = unwrap(kwargs)
    return wrap(getattr(ufunc, method)(*args, **kwargs))


# Methods that NumPy implements without going through a ufunc (or that may return a NumPy scalar): run them on the
# plain view and wrap the result. Methods returning views (reshape, transpose, astype, copy, ...) keep the subclass.
_WRAPPED_METHODS = ("all", "any", "argmax", "argmin", "argsort", "choose", "clip", "compress", "cumprod", "cumsum",
                    "diagonal", "dot", "max", "mean", "min", "nonzero", "prod", "repeat", "round", "searchsorted",
                    "std", "sum", "take", "trace", "var")


class ndarray(np.ndarray):
    """A device array of the mock GPU (``cupy.ndarray``): NumPy memory, CuPy's behaviour where cuflow relies on it."""

    def __array_finalize__(self, obj):
        if obj is None and self.flags.owndata:  # cupy.ndarray(shape, dtype): a fresh allocation
            _memory.track(self)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return array.view(ndarray) if isinstance(array, np.ndarray) else wrap(array)  # 0-d stays 0-d

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return ufunc_apply(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func in _METADATA_FUNCTIONS:
            return func(*unwrap(args), **unwrap(kwargs))
        where = f"numpy.{func.__name__} on a device array"
        reject_host(where, args)
        reject_host(where, kwargs.values())
        return finish(func(*unwrap(args), **unwrap(kwargs)), kwargs)

    # --- CuPy's own API -------------------------------------------------------------------------------------------
    @property
    def device(self):
        """The device the array lives on (a ``cupy.cuda.Device``-like object with ``.id``)."""
        return Device0

    def get(self, stream=None, order="C", out=None, blocking=True):
        """A host (NumPy) copy, like ``cupy.ndarray.get``."""
        host = np.array(self.view(np.ndarray), order=order, copy=True)
        if out is None:
            return host
        out[...] = host
        return out

    def set(self, arr, stream=None):
        """Copies host array ``arr`` (same shape and dtype) into this array, like ``cupy.ndarray.set``."""
        arr = np.asarray(arr)
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"set: shape and dtype must match: {arr.shape} {arr.dtype} vs {self.shape} {self.dtype}")
        self.view(np.ndarray)[...] = arr

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0: the mock array presents itself as a CUDA array

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if dl_device is not None and tuple(dl_device)[0] == 1:  # a host consumer: CuPy copies to the host
            if copy is False:
                raise BufferError("a device array cannot be exported to the host without a copy")
            return self.get().__dlpack__(max_version=max_version)
        return self.view(np.ndarray).__dlpack__(max_version=max_version)

    def toDlpack(self):
        return self.view(np.ndarray).__dlpack__()

    # --- NumPy behaviour that differs from CuPy's -----------------------------------------------------------------
    @property
    def data(self):
        """The device pointer (``.ptr``), like CuPy's ``MemoryPointer``."""
        return _Pointer(self.ctypes.data, self.nbytes)

    def __getitem__(self, key):
        out = np.ndarray.__getitem__(self, key)
        if isinstance(out, np.ndarray):
            return out if type(out) is ndarray else out.view(ndarray)
        # An element: CuPy gives a 0-d view of it (writable into the array), never a scalar.
        return np.ndarray.__getitem__(self, (key if isinstance(key, tuple) else (key,)) + (Ellipsis,))

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return repr(self.view(np.ndarray))

    def __reduce__(self):
        return (_rebuild, (self.get(),))

    def __reduce_ex__(self, protocol):
        return self.__reduce__()


class _Pointer:
    """What ``ndarray.data`` gives: the address (``ptr``) and size of the memory, as CuPy's ``MemoryPointer``."""

    __slots__ = ("ptr", "size")

    def __init__(self, ptr, size):
        self.ptr, self.size = ptr, size

    @property
    def mem(self):
        return self

    @property
    def device_id(self):
        return 0


def _rebuild(host):
    return wrap(np.array(host, copy=True))


def _wrapped_method(name):
    base = getattr(np.ndarray, name)
    where = f"cupy.ndarray.{name}"

    def method(self, *args, **kwargs):
        reject_host(where, args)
        reject_host(where, kwargs.values())
        return finish(base(self.view(np.ndarray), *unwrap(args), **unwrap(kwargs)), kwargs)

    method.__name__ = name
    method.__doc__ = base.__doc__
    return method


for _name in _WRAPPED_METHODS:
    setattr(ndarray, _name, _wrapped_method(_name))
del _name
