"""Helpers for testing cuflow code: finite-difference gradient checks, CPU/GPU parity, and the mock GPU.

Example:

>>> import cuflow as tf
>>> from cuflow import testing
>>> testing.check_gradients(lambda x: tf.reduce_sum(tf.sin(x) * x), [[0.5, -1.0, 2.0]])
"""
import contextlib
import os
import sys

import numpy as np

from .tensor import constant
from .tape import GradientTape
from . import devices as _devices
from . import kernels as _kernels
from .kernels import cuda as _cuda

__all__ = ["numerical_gradients", "tape_gradients", "check_gradients", "assert_parity", "mock_gpu"]


def _as_float64_inputs(inputs):
    return [np.array(np.asarray(x), dtype=np.float64) for x in inputs]


def numerical_gradients(fn, inputs, delta=1e-6):
    """Central finite differences of ``sum(fn(*inputs))`` w.r.t. each input (float64 NumPy arrays)."""
    values = _as_float64_inputs(inputs)
    grads = []
    for i, x in enumerate(values):
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            saved = flat[j]
            flat[j] = saved + delta
            up = _total(fn, values)
            flat[j] = saved - delta
            down = _total(fn, values)
            flat[j] = saved
            gflat[j] = (up - down) / (2 * delta)
        grads.append(g)
    return grads


def _total(fn, values):
    out = fn(*[constant(v) for v in values])
    return float(np.sum(np.asarray(out, dtype=np.float64)))


def tape_gradients(fn, inputs):
    """Gradients of ``sum(fn(*inputs))`` from ``GradientTape`` (float64), as NumPy arrays (zeros when None)."""
    tensors = [constant(v) for v in _as_float64_inputs(inputs)]
    with GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        out = fn(*tensors)
    grads = tape.gradient(out, tensors)
    return [np.zeros(t.shape) if g is None else np.asarray(g) for g, t in zip(grads, tensors)]


def check_gradients(fn, inputs, rtol=1e-5, atol=1e-7, delta=1e-6):
    """Asserts that the tape's gradients of ``fn`` match central finite differences in float64.

    Raises:
        AssertionError: naming the input and the largest difference.
    """
    numeric = numerical_gradients(fn, inputs, delta)
    analytic = tape_gradients(fn, inputs)
    for i, (n, a) in enumerate(zip(numeric, analytic)):
        if n.shape != a.shape:
            raise AssertionError(f"gradient of input {i}: shape {a.shape} from the tape, {n.shape} expected")
        if not np.allclose(a, n, rtol=rtol, atol=atol):
            worst = np.max(np.abs(a - n))
            raise AssertionError(f"gradient of input {i} differs from finite differences by up to {worst:.3g}\n"
                                 f"tape:    {a.ravel()[:8]}\nnumeric: {n.ravel()[:8]}")


def assert_parity(fn, inputs, rtol=1e-5, atol=1e-6):
    """Runs ``fn(*inputs)`` on the CPU and on the GPU and asserts the results agree; returns the largest
    absolute difference. Raises :class:`cuflow.errors.UnavailableError` when no GPU is present."""
    results = []
    for name in ("/CPU:0", "/GPU:0"):
        with _devices.device(name):
            args = [constant(np.asarray(x)) for x in inputs]
            out = fn(*args)
        results.append([np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])])
    worst = 0.0
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=atol)
        if cpu.size:
            worst = max(worst, float(np.max(np.abs(gpu.astype(np.float64) - cpu.astype(np.float64)))))
    return worst


_MOCK_MODES = ("1", "memcheck", "racecheck")


@contextlib.contextmanager
def mock_gpu(mode="1"):
    """Switches the mock GPU on in this process: cuflow sees one GPU whose kernels run on the CPU.

    The same as starting Python with ``CUFLOW_MOCK_GPU=<mode>``: ``/GPU:0`` exists, new tensors go there by
    default, and the GPU backend runs unchanged on :mod:`cuflow.kernels.emu.mock_cupy`. On exit the previous state
    (no GPU, a real GPU, or an outer mock) comes back. Kernels are compiled once and cached on disk, so entering
    again is cheap. Tensors made inside stay mock-GPU tensors; don't use them after the block.

    Args:
        mode: ``"1"``, or ``"memcheck"`` / ``"racecheck"`` for kernels built with a sanitizer; those need the
            sanitizer runtime loaded at process start (``CUFLOW_MOCK_GPU=memcheck pytest`` does that).

    Yields:
        ``mode``.

    Raises:
        ValueError: an unknown mode.
        RuntimeError: a sanitizer mode in a process started without its runtime.

    Example:

    >>> import cuflow as tf
    >>> from cuflow import testing
    >>> with testing.mock_gpu():
    ...     x = tf.constant([1.0, 2.0])
    ...     x.device, float(tf.reduce_sum(x * x))
    ('/job:localhost/replica:0/task:0/device:GPU:0', 5.0)
    """
    if mode not in _MOCK_MODES:
        raise ValueError(f"mock_gpu: mode must be one of {_MOCK_MODES}, got {mode!r}")
    if mode != "1":
        from .kernels.emu.mock_cupy import pytest_plugin
        if not pytest_plugin.runtime_loaded(mode):
            raise RuntimeError(f"mock_gpu({mode!r}) needs the sanitizer runtime loaded at process start: run under "
                               f"CUFLOW_MOCK_GPU={mode} pytest, or start Python with the variables from "
                               f"cuflow.kernels.emu.sanitizer_env({mode!r})")
    previous = os.environ.get(_cuda.MOCK_ENV)
    changed = previous != mode
    os.environ[_cuda.MOCK_ENV] = mode
    if changed:
        _forget_gpu()
    try:
        yield mode
    finally:
        if previous is None:
            os.environ.pop(_cuda.MOCK_ENV, None)
        else:
            os.environ[_cuda.MOCK_ENV] = previous
        if changed:
            _forget_gpu()


def _forget_gpu():
    """Drops everything that remembers which GPU (or none) was found, so the next use looks again."""
    _cuda._probe.cache_clear()
    _devices._default = None
    _kernels._gpu = None
    for name in ("gpu", "fused"):  # both bind the cupy module at import: import them afresh
        sys.modules.pop(f"cuflow.kernels.{name}", None)
        _kernels.__dict__.pop(name, None)
