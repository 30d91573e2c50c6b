"""Where the GPU backend gets CuPy from, and whether a usable GPU is present.

This is the one place that imports ``cupy``. Everything above ``cuflow.kernels`` asks :func:`cupy` for the module
and :func:`gpu_count` for the devices, so a stand-in can be put here without touching the backend: with
``CUFLOW_MOCK_GPU=1`` (or ``memcheck`` / ``racecheck``) the module is the mock GPU's
(:mod:`cuflow.kernels.emu.mock_cupy`: NumPy arrays as device memory, our CUDA kernels compiled for the CPU) and one
GPU is present. ``cuflow.testing.mock_gpu()`` switches it on inside one process.
"""
import functools
import os

__all__ = ["cupy", "gpu_count", "unavailable_reason", "is_mock", "MOCK_ENV"]

MOCK_ENV = "CUFLOW_MOCK_GPU"


def is_mock():
    """True when ``CUFLOW_MOCK_GPU`` asks for the mock GPU (any value but unset, empty or ``0``)."""
    return os.environ.get(MOCK_ENV, "").strip() not in ("", "0")


@functools.lru_cache(maxsize=None)
def _probe():
    """Returns (cupy module or None, device count, reason it is unavailable)."""
    if is_mock():
        from .emu import mock_cupy
        mock_cupy.sanitizer()  # a value it does not understand raises ValueError here, not a silent "no GPU"
        return mock_cupy, mock_cupy.cuda.runtime.getDeviceCount(), ""
    try:
        import cupy as cp
    except ImportError:
        return None, 0, "CuPy is not installed (pip install 'cuflow[cuda13]' or 'cuflow[cuda12]')"
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, no device: CuPy raises CUDARuntimeError
        return None, 0, f"CuPy found no CUDA device ({type(e).__name__}: {e})"
    if count == 0:
        return None, 0, "CuPy found no CUDA device"
    return cp, count, ""


def cupy():
    """The CuPy module, or raises :class:`cuflow.errors.UnavailableError` when no GPU can be used."""
    cp, _, reason = _probe()
    if cp is None:
        from ..errors import UnavailableError
        raise UnavailableError(f"no GPU is available: {reason}")
    return cp


def gpu_count():
    """Number of usable GPUs (0 when CuPy or a CUDA device is missing)."""
    return _probe()[1]


def unavailable_reason():
    """Why no GPU can be used, or '' when one can."""
    return _probe()[2]
