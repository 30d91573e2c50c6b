"""Primitives: one interface, two implementations.

``cpu.py`` (NumPy) and ``gpu.py`` (CuPy and cuflow's own CUDA kernels in ``*.cu``) expose the same functions with
the same signatures: ``matmul``, ``conv2d``, ``conv2d_backward_input``, ``conv2d_backward_filter``,
``max_pool2d``, ``max_pool2d_backward``, ``avg_pool2d``, ``avg_pool2d_backward``. Ops pick the implementation with
:func:`backend` and write everything else against the array module from :func:`xp`.
Nothing here imports from layers, models or ops.
"""
import numpy as np

from . import cpu

__all__ = ["backend", "xp", "cpu"]

_gpu = None


def _gpu_backend():
    global _gpu
    if _gpu is None:
        from . import gpu
        _gpu = gpu
    return _gpu


_HOST_SCALARS = (int, float, bool)


def _on_gpu(arrays):
    for a in arrays:
        kind = type(a)
        if kind is np.ndarray:
            return False
        if kind in _HOST_SCALARS or isinstance(a, np.generic) or a is None:
            continue
        return True
    return False


def xp(*arrays):
    """The array module (``numpy`` or ``cupy``) for the first array among ``arrays`` (Python numbers skipped)."""
    if type(arrays[0]) is np.ndarray:  # the common CPU case, decided without a call
        return np
    return _gpu_backend().cupy if _on_gpu(arrays) else np


def backend(*arrays):
    """The primitive module (``kernels.cpu`` or ``kernels.gpu``) for the device of ``arrays``."""
    if type(arrays[0]) is np.ndarray:
        return cpu
    return _gpu_backend() if _on_gpu(arrays) else cpu
