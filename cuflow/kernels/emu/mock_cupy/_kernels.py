"""``cupy.RawModule`` and ``cupy.RawKernel`` of the mock GPU: the same CUDA source, compiled by the emulator.

``RawModule(code=..., options=..., name_expressions=...)`` hands the source to :class:`cuflow.kernels.emu.Module`
(host C++ compiler + ``cuda_emu.h``, cached on disk by source hash), built with the sanitizer that
``CUFLOW_MOCK_GPU`` asks for. Launches keep CuPy's convention, ``kernel(grid, block, args, shared_mem=0)``, and
CuPy's rules: grid and block are tuples, device arrays are passed as pointers, a host (NumPy) array is refused, and
more than 48 KB of dynamic shared memory needs ``max_dynamic_shared_size_bytes`` raised first, as on a GPU.
"""
import os

import numpy as np

from .. import loader as _emu
from ._array import ndarray

__all__ = ["RawModule", "RawKernel", "ElementwiseKernel", "ReductionKernel", "sanitizer", "ENV"]

ENV = "CUFLOW_MOCK_GPU"
_SANITIZERS = {"": None, "0": None, "1": None, "memcheck": "memcheck", "racecheck": "racecheck"}
_DEFAULT_DYNAMIC_SHARED = 48 * 1024   # CUDA's limit on dynamic shared memory without the opt-in attribute
_MAX_DYNAMIC_SHARED = 227 * 1024      # the opt-in limit of the device the mock reports (an H100)


def sanitizer(environ=None):
    """The sanitizer ``CUFLOW_MOCK_GPU`` selects: ``"memcheck"``, ``"racecheck"``, or None (``1``, ``0`` or unset).

    Raises:
        ValueError: the variable holds anything else.
    """
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    if value not in _SANITIZERS:
        raise ValueError(f"{ENV} must be 1 (mock GPU), memcheck (with AddressSanitizer) or racecheck (with "
                         f"ThreadSanitizer), or unset/0 for no mock; got {value!r}")
    return _SANITIZERS[value]


class RawModule:
    """``cupy.RawModule`` on the CPU: ``RawModule(code=source, options=(...), name_expressions=(...))``."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            raise NotImplementedError("RawModule(path=...) loads a compiled cubin/PTX; the mock GPU needs the CUDA "
                                      "source: pass code=")
        if enable_cooperative_groups:
            raise NotImplementedError("cooperative groups (grid-wide sync) are not emulated by the mock GPU")
        self.code = code
        self.options = tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        self._module = _emu.Module(code, self.name_expressions, self.options, sanitizer=sanitizer(),
                                   filename="raw_module.cu")
        self._kernels = {}

    def get_function(self, name):
        """The kernel ``name``: an ``extern "C"`` kernel or one of the name expressions."""
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self._kernels[name] = RawKernel._of(self._module.get_function(name))
        return kernel

    def get_global(self, name):
        """Address of the ``__constant__`` or ``__device__`` variable ``name`` (an int; CuPy gives a MemoryPointer)."""
        return self._module.get_global(name)

    def compile(self, log_stream=None):
        """Compiled already (the emulator compiles when the module is made)."""


class RawKernel:
    """``cupy.RawKernel`` on the CPU: one kernel of a source, launched ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self.code, self.name, self.options = code, name, tuple(options)
        self._enable_cooperative_groups = enable_cooperative_groups
        self._emu_kernel = None
        self.max_dynamic_shared_size_bytes = _DEFAULT_DYNAMIC_SHARED

    @classmethod
    def _of(cls, emu_kernel):
        kernel = cls.__new__(cls)
        kernel.code, kernel.name, kernel.options = None, emu_kernel.name, ()
        kernel._emu_kernel = emu_kernel
        kernel.max_dynamic_shared_size_bytes = _DEFAULT_DYNAMIC_SHARED
        return kernel

    @property
    def kernel(self):
        """The emulator's kernel (compiled on first use, like CuPy compiles on first launch)."""
        if self._emu_kernel is None:
            module = RawModule(code=self.code, options=self.options, name_expressions=(self.name,),
                               enable_cooperative_groups=self._enable_cooperative_groups)
            self._emu_kernel = module.get_function(self.name)._emu_kernel
        return self._emu_kernel

    # CuPy's read-only attributes, with values an sm_90 device would give a small kernel.
    max_threads_per_block = 1024
    num_regs = 32
    local_size_bytes = 0
    const_size_bytes = 0
    shared_size_bytes = 0
    ptx_version = 90
    binary_version = 90

    @property
    def attributes(self):
        return {"max_threads_per_block": self.max_threads_per_block, "num_regs": self.num_regs,
                "max_dynamic_shared_size_bytes": self.max_dynamic_shared_size_bytes}

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        name = self.name
        if not isinstance(grid, tuple) or not isinstance(block, tuple):
            raise TypeError(f"kernel '{name}': grid and block must be tuples, as CuPy requires; got "
                            f"{type(grid).__name__} and {type(block).__name__}")
        if not isinstance(args, tuple):
            raise TypeError(f"kernel '{name}': args must be a tuple, got {type(args).__name__}")
        limit = min(max(self.max_dynamic_shared_size_bytes, _DEFAULT_DYNAMIC_SHARED), _MAX_DYNAMIC_SHARED)
        if shared_mem > limit:
            raise ValueError(
                f"kernel '{name}': {shared_mem} bytes of dynamic shared memory exceed the {limit} allowed; above "
                f"{_DEFAULT_DYNAMIC_SHARED} set kernel.max_dynamic_shared_size_bytes first (the GPU's opt-in "
                f"maximum is {_MAX_DYNAMIC_SHARED})")
        self.kernel(grid, block, tuple(_kernel_arg(name, i, a) for i, a in enumerate(args)), shared_mem)

    def __repr__(self):
        return f"<mock RawKernel {self.name}>"


def _kernel_arg(name, index, value):
    if isinstance(value, ndarray):
        return value.view(np.ndarray)
    if isinstance(value, np.ndarray):
        raise TypeError(f"argument {index} of kernel '{name}' is a numpy.ndarray in host memory, which a GPU kernel "
                        "cannot read: pass a device array (cupy.asarray)")
    return value


class _NotEmulated:
    """A CuPy kernel class the mock GPU does not emulate yet: making one says so."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            f"cupy.{type(self).__name__} is not emulated by cuflow's mock GPU yet; write the kernel as a RawModule "
            "(.cu file) or add the class to cuflow/kernels/emu/mock_cupy")


class ElementwiseKernel(_NotEmulated):
    pass


class ReductionKernel(_NotEmulated):
    pass
