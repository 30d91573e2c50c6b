"""The mock GPU's stand-in for the ``cupy`` module: what cuflow's GPU backend uses of CuPy, on the CPU.

``CUFLOW_MOCK_GPU=1`` (or ``memcheck`` / ``racecheck``) makes :func:`cuflow.kernels.cuda.cupy` return this module
instead of CuPy, and ``gpu.py``, the ops and ``devices.py`` run unchanged on it:

- arrays are :class:`ndarray`, a NumPy subclass that acts as device memory (see ``_array.py``);
- every NumPy function and ufunc is here under its name (``cupy.add``, ``cupy.add.at``, ``cupy.moveaxis``, ...),
  taking device arrays and returning device arrays; ``asarray``/``array`` copy host data to the device, ``asnumpy``
  and ``ndarray.get`` copy it back;
- ``RawModule`` / ``RawKernel`` compile cuflow's own CUDA source with the CPU emulator (``_kernels.py``);
- ``cupy.cuda`` has the one device, its properties, streams, events and memory pools (``cuda.py``).

Example:
    >>> from cuflow.kernels.emu import mock_cupy as cp
    >>> x = cp.arange(4, dtype=cp.float32)
    >>> (x * 2).sum(), type(x.sum()) is cp.ndarray, x.device.id
    (array(12., dtype=float32), True, 0)
    >>> cp.asnumpy(x + 1)
    array([1., 2., 3., 4.], dtype=float32)
"""
import numpy as np

from . import cuda
from ._array import finish, ndarray, reject_host, ufunc_apply, unwrap, wrap
from ._kernels import ENV, ElementwiseKernel, RawKernel, RawModule, ReductionKernel, sanitizer
from ._memory import get_default_memory_pool, get_default_pinned_memory_pool

__version__ = "mock"
__all__ = ["ndarray", "asarray", "array", "asanyarray", "ascontiguousarray", "asnumpy", "get_array_module",
           "from_dlpack", "is_available", "RawModule", "RawKernel", "ElementwiseKernel", "ReductionKernel", "cuda",
           "get_default_memory_pool", "get_default_pinned_memory_pool", "fuse", "sanitizer", "ENV", "ufunc"]


# --- moving data between host and device ----------------------------------------------------------------------------
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    """A new device array from ``obj`` (host or device data): always a copy unless ``copy=False`` allows none."""
    if isinstance(obj, ndarray) and not copy and (dtype is None or np.dtype(dtype) == obj.dtype) and \
            obj.ndim >= ndmin:
        return obj
    return wrap(np.array(unwrap(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """``a`` as a device array: itself when it already is one (of ``dtype``), else a copy on the device."""
    if isinstance(a, ndarray) and copy is not True and (dtype is None or np.dtype(dtype) == a.dtype) and \
            (order is None or order in "KA" or a.flags[f"{order}_CONTIGUOUS"]):
        return a
    return wrap(np.array(unwrap(a), dtype=dtype, order=order or "K", copy=True))


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    """``a`` (a device array) C-contiguous and of ``dtype``: itself when it already is."""
    if not isinstance(a, ndarray):
        raise TypeError(f"ascontiguousarray takes a device array (cupy.ndarray), got {type(a).__name__}")
    if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return wrap(np.ascontiguousarray(a.view(np.ndarray), dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """A host (NumPy) copy of device array ``a``; host data is returned as NumPy sees it."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    host = np.asarray(a, order=order)
    if out is not None:
        out[...] = host
        return out
    return host


def from_dlpack(array):
    """A device array sharing memory with ``array``: a device array, or an object exporting one through DLPack."""
    if isinstance(array, ndarray):
        return array.view(ndarray)
    device = getattr(array, "__dlpack_device__", None)
    if device is None or tuple(device())[0] != 2:  # not kDLCUDA: host memory, which CuPy does not import
        raise TypeError(f"from_dlpack: the mock GPU imports only device (kDLCUDA) arrays; got "
                        f"{type(array).__name__} on DLPack device {tuple(device()) if device else 'unknown'}")
    return wrap(np.from_dlpack(_Capsule(array.__dlpack__())))


class _Capsule:
    """A mock device array's DLPack capsule (host memory underneath), in the form numpy.from_dlpack reads."""

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **kwargs):
        return self._capsule

    def __dlpack_device__(self):
        return (1, 0)


def get_array_module(*args):
    """This module if any argument is a device array, else NumPy (``cupy.get_array_module``)."""
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


def is_available():
    return True


def fuse(*args, **kwargs):
    """``cupy.fuse``: the mock runs the Python function as it is (one NumPy call per operation)."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda fn: fn


# --- NumPy's functions and ufuncs, on device arrays -----------------------------------------------------------------
class ufunc:
    """A CuPy ufunc: ``cupy.add(x, y)``, ``cupy.add.at(x, indices, y)``, ``cupy.add.reduce(x, axis=0)``, ..."""

    def __init__(self, np_ufunc):
        self._ufunc = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.__doc__ = np_ufunc.__doc__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.types, self.identity = np_ufunc.types, np_ufunc.identity

    def __call__(self, *args, **kwargs):
        if len(args) > self.nin:  # outputs given by position, as NumPy and CuPy allow
            args, kwargs = args[:self.nin], {**kwargs, "out": tuple(args[self.nin:])}
        return ufunc_apply(self._ufunc, "__call__", args, kwargs)

    def at(self, a, indices, b=None):
        ufunc_apply(self._ufunc, "at", (a, indices) if b is None else (a, indices, b), {})

    def reduce(self, array, *args, **kwargs):
        return ufunc_apply(self._ufunc, "reduce", (array, *args), kwargs)

    def accumulate(self, array, *args, **kwargs):
        return ufunc_apply(self._ufunc, "accumulate", (array, *args), kwargs)

    def reduceat(self, array, indices, *args, **kwargs):
        return ufunc_apply(self._ufunc, "reduceat", (array, indices, *args), kwargs)

    def outer(self, a, b, **kwargs):
        return ufunc_apply(self._ufunc, "outer", (a, b), kwargs)

    def __repr__(self):
        return f"<ufunc '{self.__name__}' (cuflow mock GPU)>"


# Functions that take host data on purpose (shapes, dtypes, host arrays to inspect): no host-array check.
_HOST_OK = {"result_type", "can_cast", "min_scalar_type", "shape", "ndim", "size", "isscalar", "broadcast_shapes",
            "iscomplexobj", "isrealobj", "promote_types", "common_type"}
_NOT_EMULATED = {
    "random": "cuflow draws random numbers with its own Philox generator (cuflow.random), not cupy.random",
    "testing": "use numpy.testing on cupy.asnumpy(...) results",
}


class _Namespace:
    """A NumPy submodule (``linalg``, ``fft``) with its functions on device arrays."""

    def __init__(self, module, prefix):
        self._module, self._prefix = module, prefix

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if callable(value) and not isinstance(value, type):
            value = _device_function(f"{self._prefix}.{name}", value)
        setattr(self, name, value)
        return value


def _device_function(name, fn):
    where = f"cupy.{name}"
    check = name not in _HOST_OK

    def function(*args, **kwargs):
        if check:
            reject_host(where, args)
            reject_host(where, kwargs.values())
        return finish(fn(*unwrap(args), **unwrap(kwargs)), kwargs)

    function.__name__ = name
    function.__doc__ = getattr(fn, "__doc__", None)
    return function


def __getattr__(name):
    """Everything else CuPy has under NumPy's names, made once and kept in this module."""
    if name in _NOT_EMULATED:
        raise AttributeError(f"cupy.{name} is not emulated by cuflow's mock GPU: {_NOT_EMULATED[name]}")
    if name.startswith("__") or not hasattr(np, name):
        raise AttributeError(f"cuflow's mock GPU has no cupy.{name} (it emulates what cuflow uses of CuPy; add it "
                             "to cuflow/kernels/emu/mock_cupy)")
    value = getattr(np, name)
    if isinstance(value, np.ufunc):
        value = ufunc(value)
    elif isinstance(value, type(np)):
        value = _Namespace(value, name)
    elif callable(value) and not isinstance(value, type):
        value = _device_function(name, value)
    globals()[name] = value
    return value
