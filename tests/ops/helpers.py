"""Helpers shared by the op tests: random inputs, dtype-aware comparisons, tape gradients, error checks."""
import numpy as np
import pytest

import cuflow as tf

FLOATS = [np.float64, np.float32]
TOL = {np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12), np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6)}


def rand(shape, dtype=np.float64, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def assert_close(tensor, expected, dtype, tolerances=TOL):
    """``tensor`` has ``dtype``, ``expected``'s shape and (to ``dtype``'s precision) its values."""
    assert isinstance(tensor, tf.Tensor)
    assert tensor.dtype == dtype, f"dtype {tensor.dtype.name}, expected {np.dtype(dtype).name}"
    got = np.asarray(tensor)
    expected = np.asarray(expected)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), **tolerances[np.dtype(dtype)])


def grads(fn, *inputs):
    """The tape's gradients of ``sum(fn(*inputs))`` for float64 ``inputs`` on the current device, as NumPy."""
    tensors = [tf.constant(np.asarray(x, np.float64)) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        y = fn(*tensors)
    return [None if g is None else np.asarray(g) for g in tape.gradient(y, tensors)]


def gradient_of(fn):
    """x -> the inner tape's gradient of ``sum(fn(x))``; check_gradients' own tape then differentiates it again."""
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.gradient(y, x)
    return gradient


def raises(exc, fn, *words):
    """``fn()`` raises ``exc`` with every one of ``words`` in its message."""
    with pytest.raises(exc) as info:
        fn()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"
    return info.value
