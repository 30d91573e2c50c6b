"""Devices: where a tensor's array lives and where new tensors are created.

A tensor's device is its array's: a ``numpy.ndarray`` is on ``/CPU:0``, a ``cupy.ndarray`` on ``/GPU:i``. The
``cuflow.device(...)`` context chooses where *new* tensors (constants, random numbers, variables) are created; an
op runs where its tensor inputs are and never moves them silently (see :func:`common_device`).
"""
import contextlib
import re
import threading

import numpy as np

from . import errors
from .kernels import cuda

__all__ = ["Device", "device", "current_device", "device_of", "to_device", "common_device", "list_devices"]

_SPEC = re.compile(r"^/?(?:job:[^/]+/)?(?:replica:\d+/)?(?:task:\d+/)?(?:device:)?(CPU|GPU)(?::(\d+))?$",
                   re.IGNORECASE)


class Device:
    """A device: ``Device("GPU", 0)``. ``str()`` gives TensorFlow's full name, ``short`` gives ``/GPU:0``."""

    __slots__ = ("kind", "index")

    def __init__(self, kind, index=0):
        self.kind = kind
        self.index = index

    @property
    def short(self):
        return f"/{self.kind}:{self.index}"

    @property
    def is_gpu(self):
        return self.kind == "GPU"

    def __str__(self):
        return f"/job:localhost/replica:0/task:0/device:{self.kind}:{self.index}"

    def __repr__(self):
        return f"Device({self.short!r})"

    def __eq__(self, other):
        return isinstance(other, Device) and self.kind == other.kind and self.index == other.index

    def __hash__(self):
        return hash((self.kind, self.index))


CPU = Device("CPU", 0)


def parse(spec):
    """Parses ``'/GPU:0'``, ``'gpu'``, ``'/device:CPU:0'`` or TensorFlow's full name into a :class:`Device`.

    Raises:
        ValueError: the string names no device.
        cuflow.errors.UnavailableError: a GPU is named but none (or not that many) are present.
    """
    if isinstance(spec, Device):
        dev = spec
    else:
        match = _SPEC.match(str(spec).strip()) if isinstance(spec, str) else None
        if match is None:
            raise ValueError(f"device: cannot parse device name {spec!r}; expected '/CPU:0' or '/GPU:<index>'")
        dev = Device(match.group(1).upper(), int(match.group(2) or 0))
    if dev.kind == "CPU" and dev.index != 0:
        raise ValueError(f"device: cuflow has one CPU device, '/CPU:0'; got {spec!r}")
    if dev.is_gpu:
        count = cuda.gpu_count()
        if count == 0:
            raise errors.UnavailableError(
                f"device {dev.short!r} was asked for but no GPU is available: {cuda.unavailable_reason()}. "
                "Use '/CPU:0', or install CuPy on a machine with an NVIDIA GPU.")
        if dev.index >= count:
            raise errors.UnavailableError(
                f"device {dev.short!r} was asked for but only {count} GPU(s) are present (/GPU:0../GPU:{count - 1})")
    return dev


class _Stack(threading.local):
    def __init__(self):
        self.devices = []


_stack = _Stack()
_default = None


def default_device():
    """The device used outside any ``cuflow.device`` context: the first GPU if one is usable, else the CPU."""
    global _default
    if _default is None:
        _default = Device("GPU", 0) if cuda.gpu_count() else CPU
    return _default


def current_device():
    """The device new tensors are created on right now."""
    devices = _stack.devices
    return devices[-1] if devices else default_device()


@contextlib.contextmanager
def device(name):
    """Context manager that places newly created tensors on the named device.

    Args:
        name: ``'/CPU:0'``, ``'/GPU:0'`` (also ``'gpu'``, ``'/device:GPU:1'``, TensorFlow's full names).

    Raises:
        ValueError: ``name`` is not a device name.
        cuflow.errors.UnavailableError: a GPU is named and none is present.

    Example:

    >>> import cuflow as tf
    >>> with tf.device('/CPU:0'):
    ...     x = tf.constant([1.0, 2.0])
    >>> x.device
    '/job:localhost/replica:0/task:0/device:CPU:0'
    """
    dev = parse(name)
    _stack.devices.append(dev)
    try:
        if dev.is_gpu:
            with cuda.cupy().cuda.Device(dev.index):
                yield dev
        else:
            yield dev
    finally:
        _stack.devices.pop()


def device_of(array):
    """The :class:`Device` an array lives on."""
    if type(array) is np.ndarray:
        return CPU
    return Device("GPU", array.device.id)


def to_device(array, dev):
    """Copies ``array`` to ``dev`` (no copy when it is already there)."""
    if dev.kind == "CPU":
        if type(array) is np.ndarray:
            return array
        return array.get()
    cp = cuda.cupy()
    if type(array) is not np.ndarray and array.device.id == dev.index:
        return array
    with cp.cuda.Device(dev.index):
        return cp.asarray(array)


def common_device(op_name, names, arrays):
    """The one device all ``arrays`` share, or raises :class:`DeviceMismatchError` naming the two that differ."""
    first = None
    for name, array in zip(names, arrays):
        dev = device_of(array)
        if first is None:
            first, first_name = dev, name
        elif dev != first:
            raise errors.DeviceMismatchError(
                f"{op_name}: inputs live on different devices: {first_name} is on {first.short}, {name} is on "
                f"{dev.short}. cuflow never copies between devices silently; move one with .cpu() or .gpu().")
    return first


def list_devices(kind=None):
    """All devices of ``kind`` ('CPU', 'GPU' or None for both)."""
    found = [CPU] if kind in (None, "CPU") else []
    if kind in (None, "GPU"):
        found += [Device("GPU", i) for i in range(cuda.gpu_count())]
    return found


def gpu_info(index=0):
    """Facts about ``/GPU:index`` from NVML (nvidia-ml-py): name, memory (bytes) and utilization (percent).

    Raises:
        cuflow.errors.UnavailableError: no such GPU.
        ImportError: nvidia-ml-py is not installed (it comes with the ``cuda12``/``cuda13`` extras).
    """
    parse(f"/GPU:{index}")
    try:
        import pynvml
    except ImportError:
        raise ImportError("GPU facts need nvidia-ml-py: pip install nvidia-ml-py") from None
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
        return {"name": name.decode() if isinstance(name, bytes) else name, "memory_total": int(memory.total),
                "memory_used": int(memory.used), "utilization_gpu": int(utilization.gpu),
                "utilization_memory": int(utilization.memory),
                "driver": _text(pynvml.nvmlSystemGetDriverVersion())}
    finally:
        pynvml.nvmlShutdown()


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
