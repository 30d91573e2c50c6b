"""Device-memory bookkeeping of the mock GPU: CuPy's memory pools and allocator hooks, over NumPy allocations.

Every array the mock allocates is an exact-size NumPy buffer (which is what memcheck needs: one element past the end
is outside the allocation). The pools only count bytes, so ``tf.config.experimental.get_memory_info`` and code that
reads ``used_bytes()`` / ``total_bytes()`` see numbers that move like CuPy's: ``used`` is the bytes of live arrays,
``total`` what a caching pool would hold (the high-water mark since the last ``free_all_blocks``).
"""
import ctypes
import weakref

__all__ = ["track", "MemoryPool", "PinnedMemoryPool", "MemoryPointer", "get_default_memory_pool",
           "get_default_pinned_memory_pool", "set_allocator", "get_allocator", "set_pinned_memory_allocator"]


class _Usage:
    used = 0
    held = 0
    refs = {}  # id(weakref) -> weakref: the weakrefs must live as long as their arrays


def _release(ref, nbytes):
    _Usage.used -= nbytes
    _Usage.refs.pop(id(ref), None)


def track(owner):
    """Counts a freshly allocated buffer (a NumPy array that owns its memory) until it is freed."""
    nbytes = owner.nbytes
    if not nbytes:
        return
    _Usage.used += nbytes
    _Usage.held = max(_Usage.held, _Usage.used)
    ref = weakref.ref(owner, lambda ref: _release(ref, nbytes))
    _Usage.refs[id(ref)] = ref


class MemoryPointer:
    """A raw allocation from ``MemoryPool.malloc`` (``.ptr``, ``.mem.size``), kept alive with the pointer."""

    def __init__(self, size):
        self._buffer = (ctypes.c_char * max(int(size), 1))()
        self.ptr = ctypes.addressof(self._buffer)
        self.mem = self
        self.size = int(size)
        self.device_id = 0


class MemoryPool:
    """``cupy.cuda.MemoryPool``: counts the bytes of live device arrays (see the module docstring)."""

    def __init__(self, allocator=None):
        self._limit = 0

    def malloc(self, size):
        return MemoryPointer(size)

    def used_bytes(self):
        return _Usage.used

    def total_bytes(self):
        return _Usage.held

    def free_bytes(self):
        return _Usage.held - _Usage.used

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        _Usage.held = _Usage.used

    def set_limit(self, size=None, fraction=None):
        self._limit = int(size or 0)

    def get_limit(self):
        return self._limit


class PinnedMemoryPool:
    """``cupy.cuda.PinnedMemoryPool``: host memory is ordinary memory on the mock; nothing is pooled."""

    def malloc(self, size):
        return MemoryPointer(size)

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self):
        pass


_default_pool = MemoryPool()
_default_pinned_pool = PinnedMemoryPool()
_allocator = [_default_pool.malloc]
_pinned_allocator = [_default_pinned_pool.malloc]


def get_default_memory_pool():
    return _default_pool


def get_default_pinned_memory_pool():
    return _default_pinned_pool


def set_allocator(allocator=None):
    """``cupy.cuda.set_allocator``: None means one exact-size allocation per array, which the mock always does."""
    _allocator[0] = allocator


def get_allocator():
    return _allocator[0]


def set_pinned_memory_allocator(allocator=None):
    _pinned_allocator[0] = allocator
