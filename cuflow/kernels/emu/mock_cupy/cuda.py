"""``cupy.cuda`` of the mock GPU: one device, its properties, streams, events and memory pools, all on the CPU.

Kernels run synchronously when launched, so every stream is always idle and every event completes when recorded;
``Event`` timings are host wall-clock times of the emulation and mean nothing about a GPU (benchmarks refuse to run
under the mock). The device reports an H100's limits (compute capability 9.0, 132 SMs, 227 KB opt-in shared memory)
so that launchers make the choices they would make on the GPU cuflow is tuned for, under a name nobody can mistake
for hardware.
"""
import os
import threading
import time

from ._memory import (MemoryPointer, MemoryPool, PinnedMemoryPool, get_allocator, set_allocator,
                      set_pinned_memory_allocator)

__all__ = ["Device", "runtime", "Stream", "ExternalStream", "Event", "get_elapsed_time", "get_current_stream",
           "get_device_id", "is_available", "MemoryPool", "PinnedMemoryPool", "MemoryPointer", "set_allocator",
           "get_allocator", "set_pinned_memory_allocator", "CUDARuntimeError", "DEVICE_NAME"]

DEVICE_NAME = "cuflow mock GPU (CPU emulation)"
DEVICE_COUNT = 1
_VERSION = 13000  # CUDA 13.0, as the driver and runtime versions the mock reports


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``: raised for an invalid device id, as CUDA does."""

    def __init__(self, status, message):
        self.status = status
        super().__init__(message)


def _check_device(device_id):
    device_id = int(device_id)
    if not 0 <= device_id < DEVICE_COUNT:
        raise CUDARuntimeError(101, f"cudaErrorInvalidDevice: invalid device ordinal {device_id} (the mock GPU "
                                    f"has {DEVICE_COUNT} device)")
    return device_id


def _host_memory():
    """(available, total) bytes of host memory: the mock's device memory is the host's."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = free = 16 << 30
    return free, total


class _Runtime:
    """``cupy.cuda.runtime`` for the one mock device."""

    CUDARuntimeError = CUDARuntimeError
    is_hip = False

    @staticmethod
    def getDeviceCount():
        return DEVICE_COUNT

    @staticmethod
    def getDevice():
        return _current_device()

    @staticmethod
    def setDevice(device_id):
        _state.device = _check_device(device_id)

    @staticmethod
    def getDeviceProperties(device_id):
        _check_device(device_id)
        free, total = _host_memory()
        return {
            "name": DEVICE_NAME.encode(), "totalGlobalMem": total, "sharedMemPerBlock": 48 * 1024,
            "sharedMemPerBlockOptin": 227 * 1024, "sharedMemPerMultiprocessor": 228 * 1024,
            "regsPerBlock": 65536, "regsPerMultiprocessor": 65536, "warpSize": 32, "maxThreadsPerBlock": 1024,
            "maxThreadsDim": (1024, 1024, 64), "maxGridSize": (2**31 - 1, 65535, 65535),
            "maxThreadsPerMultiProcessor": 2048, "clockRate": 1980000, "memoryClockRate": 2619000,
            "memoryBusWidth": 5120, "totalConstMem": 65536, "major": 9, "minor": 0, "multiProcessorCount": 132,
            "l2CacheSize": 50 * 1024 * 1024, "concurrentKernels": 1, "integrated": 0, "canMapHostMemory": 1,
            "computeMode": 0, "ECCEnabled": 0, "pciBusID": 0, "pciDeviceID": 0, "pciDomainID": 0,
            "unifiedAddressing": 1, "managedMemory": 1, "cooperativeLaunch": 0, "uuid": b"\0" * 16,
        }

    @staticmethod
    def deviceGetAttribute(attribute, device_id):
        _check_device(device_id)
        return 0

    @staticmethod
    def driverGetVersion():
        return _VERSION

    @staticmethod
    def runtimeGetVersion():
        return _VERSION

    @staticmethod
    def memGetInfo():
        return _host_memory()

    @staticmethod
    def deviceSynchronize():
        pass


runtime = _Runtime()


def is_available():
    return True


class _State(threading.local):
    def __init__(self):
        self.device = 0
        self.streams = []


_state = _State()


def _current_device():
    return _state.device


def get_device_id():
    return _current_device()


class Device:
    """``cupy.cuda.Device``: ``with Device(0): ...`` makes it current; ``Device()`` is the current one."""

    __slots__ = ("id", "_previous")

    def __init__(self, device=None):
        self.id = _current_device() if device is None else _check_device(device)
        self._previous = []

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __enter__(self):
        self._previous.append(_state.device)
        _state.device = self.id
        return self

    def __exit__(self, *exc):
        _state.device = self._previous.pop()

    def use(self):
        _state.device = self.id

    def synchronize(self):
        """Kernels run synchronously on the mock: nothing is ever pending."""

    @property
    def compute_capability(self):
        return "90"

    @property
    def mem_info(self):
        return _host_memory()

    @property
    def attributes(self):
        return {}

    def __int__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id} ({DEVICE_NAME})>"


Device0 = Device(0)  # what every mock array's .device returns


class Stream:
    """``cupy.cuda.Stream``: work runs when it is launched, so a stream is always done."""

    null = None  # set below

    def __init__(self, null=False, non_blocking=False, ptr=0, priority=0):
        self.ptr = 0 if null else id(self)
        self.device_id = 0
        self.done = True

    def __enter__(self):
        _state.streams.append(self)
        return self

    def __exit__(self, *exc):
        _state.streams.pop()

    def use(self):
        _state.streams[:] = [self]
        return self

    def synchronize(self):
        pass

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def add_callback(self, callback, arg):
        callback(self, None, arg)

    def launch_host_func(self, callback, arg):
        callback(arg)

    def begin_capture(self, mode=None):
        raise NotImplementedError("CUDA graph capture is not emulated by the mock GPU (CUFLOW_MOCK_GPU): kernels "
                                  "run when they are launched, so there is nothing to replay")

    def is_capturing(self):
        return False

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return hash(self.ptr)

    def __repr__(self):
        return f"<Stream {self.ptr} (cuflow mock GPU)>"


Stream.null = Stream(null=True)


class ExternalStream(Stream):
    def __init__(self, ptr, device_id=-1):
        super().__init__()
        self.ptr = ptr


def get_current_stream(device_id=None):
    return _state.streams[-1] if _state.streams else Stream.null


class Event:
    """``cupy.cuda.Event``: records the host clock; complete as soon as recorded."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.ptr = id(self)
        self._time = None
        self._disable_timing = disable_timing

    def record(self, stream=None):
        self._time = time.perf_counter()

    def synchronize(self):
        pass

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events (host time of the emulation, not GPU time)."""
    for event in (start_event, end_event):
        if event._time is None:
            raise CUDARuntimeError(600, "cudaErrorNotReady: an event was never recorded")
        if event._disable_timing:
            raise CUDARuntimeError(6, "cudaErrorInvalidResourceHandle: event created with disable_timing=True")
    return (end_event._time - start_event._time) * 1e3


class _Memory:
    """``cupy.cuda.memory``: the pools and allocator hooks under their module name."""

    MemoryPool = MemoryPool
    MemoryPointer = MemoryPointer
    set_allocator = staticmethod(set_allocator)
    get_allocator = staticmethod(get_allocator)


memory = _Memory()
pinned_memory = _Memory()
