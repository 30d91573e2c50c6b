"""The mock GPU's kernel runner: cuflow's CUDA C kernels compiled by the host C++ compiler and run on the CPU.

``cuda_emu.h`` emulates the CUDA thread hierarchy (blocks in turn, threads as fibers), shared memory, barriers,
warp intrinsics and atomics; ``loader.py`` compiles a source into a cached shared library and launches its kernels
on NumPy arrays with CuPy's RawKernel calling convention. ``sanitizer="memcheck"`` / ``"racecheck"`` build with
AddressSanitizer / ThreadSanitizer; run those in a process started with `sanitizer_env`.

Needs only NumPy, the standard library and a C++20 compiler (g++ 10+ or clang++ 12+) on x86-64 Linux.

Example:
    >>> from cuflow.kernels.emu import Module
    >>> mod = Module('extern "C" __global__ void add1(float* x, int n) {'
    ...              '  int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] += 1; }')
    >>> x = np.zeros(5, np.float32)
    >>> mod.get_function("add1")((2,), (4,), (x, np.int32(5)))
    >>> x.tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
"""
import numpy as np  # noqa: F401  (used by the doctest above)

from .loader import (CompileError, CompilerNotFoundError, Kernel, KernelError, Module, build, cache_dir,
                     compiler_available, sanitizer_env)

__all__ = ["Module", "Kernel", "sanitizer_env", "compiler_available", "build", "cache_dir", "CompileError",
           "CompilerNotFoundError", "KernelError"]
