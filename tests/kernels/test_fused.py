"""The fused kernels (cuflow/kernels/fused.py: optim.cu, softmax_ce.cu, philox.cu) against the NumPy code they replace
on the GPU: the optimizers' per-variable ``update``, the softmax cross-entropy ops of ``cuflow/ops/nn.py`` and the
Philox generator of ``cuflow/ops/random.py``, run on the CPU from the same inputs.

Runs on a GPU or on the mock GPU (CI); sizes stay small because emulated kernels are slow. Under the sanitizer modes
of the mock GPU (``CUFLOW_MOCK_GPU=memcheck|racecheck``) the same tests are the kernels' memcheck and racecheck:
``tests/test_mock_gpu_suite.py`` runs every gpu test under memcheck, :func:`test_racecheck` runs this file under
racecheck.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cuflow as tf
from cuflow import losses, optim
from cuflow.kernels import cuda
from cuflow.kernels.emu import compiler_available
from cuflow.ops import random as ops_random

ROOT = Path(__file__).resolve().parents[2]
gpu = pytest.mark.gpu


@pytest.fixture
def fused():
    from cuflow.kernels import fused
    return fused


@pytest.fixture
def launches(fused, monkeypatch):
    """Counts fused-kernel launches by (module, kernel name)."""
    counts = {}
    launch = fused._launch

    def counting(module, kernel, *args):
        counts[kernel] = counts.get(kernel, 0) + 1
        return launch(module, kernel, *args)
    monkeypatch.setattr(fused, "_launch", counting)
    return counts


def _on_both(fn):
    """``fn()`` run on the CPU and on the GPU (numpy results each)."""
    out = []
    for name in ("/CPU:0", "/GPU:0"):
        with tf.device(name):
            result = fn()
        out.append([np.asarray(r) for r in (result if isinstance(result, (list, tuple)) else [result])])
    return out


# --- multi-tensor optimizer updates -------------------------------------------------------------------------------
SHAPES = [(1,), (3,), (1025,), (7, 5), (0,), (2, 3, 33), ()]
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "sgd-momentum": lambda: optim.SGD(0.1, momentum=0.9),
    "sgd-nesterov-clipvalue": lambda: optim.SGD(0.1, momentum=0.9, nesterov=True, clipvalue=0.5),
    "adam-decay-schedule": lambda: optim.Adam(optim.schedules.ExponentialDecay(0.05, 1, 0.5), weight_decay=0.01),
    "adam-amsgrad-clipnorm": lambda: optim.Adam(0.05, amsgrad=True, clipnorm=1.0),
    "adamw-global-clipnorm": lambda: optim.AdamW(0.05, weight_decay=0.1, global_clipnorm=2.0),
    "rmsprop": lambda: optim.RMSprop(0.01),
    "rmsprop-momentum": lambda: optim.RMSprop(0.01, momentum=0.5),
    "rmsprop-centered": lambda: optim.RMSprop(0.01, centered=True),
    "rmsprop-centered-momentum": lambda: optim.RMSprop(0.01, centered=True, momentum=0.5),
    "adagrad": lambda: optim.Adagrad(0.1, initial_accumulator_value=0.2),
}
KERNEL_OF = {"sgd": "sgd_update", "adam": "adam_update", "rmsprop": "rmsprop_update", "adagrad": "adagrad_update"}


def _train(make, dtypes, steps=3):
    rng = np.random.default_rng(7)
    starts = [rng.standard_normal(s).astype(d) for s, d in zip(SHAPES, dtypes)]
    grads = [[rng.standard_normal(s).astype(d) for s, d in zip(SHAPES, dtypes)] for _ in range(steps)]
    variables = [tf.Variable(x) for x in starts]
    opt = make()
    for step in grads:
        opt.apply_gradients(zip([tf.constant(g) for g in step], variables))
    return [v for v in variables] + [s for v in variables for s in opt._slots[v.ref()].values()]


@gpu
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_update_equals_the_reference(name, fused, launches, monkeypatch):
    """Three steps over variables of odd sizes (one of them empty, one spanning three chunks): variables and every
    slot equal the per-variable NumPy update on the CPU, with one launch per step."""
    monkeypatch.setattr(fused, "OPTIM_CHUNK", 512)
    cpu, here = _on_both(lambda: _train(OPTIMIZERS[name], [np.float32] * len(SHAPES)))
    assert launches == {KERNEL_OF[name.split("-")[0].replace("adamw", "adam")]: 3}
    for got, want in zip(here, cpu):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


@gpu
def test_mixed_dtypes_take_one_launch_per_kernel_dtype(launches):
    """float32 and float64 variables each get a launch; float16 ones run the per-variable update."""
    dtypes = [np.float32, np.float64, np.float16, np.float32, np.float64, np.float16, np.float32]
    cpu, here = _on_both(lambda: _train(lambda: optim.Adam(0.05, amsgrad=True), dtypes, steps=2))
    assert launches == {"adam_update": 4}
    for got, want, dtype in zip(here, cpu, dtypes + [d for d in dtypes for _ in range(3)]):
        tol = {np.float16: 1e-3, np.float32: 2e-6, np.float64: 1e-13}[dtype]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


@gpu
def test_tensor_list_is_built_once_per_variable_set(fused, mock_gpu):
    a, b = tf.Variable(np.ones(5, np.float32)), tf.Variable(np.ones(3, np.float32))
    opt = optim.SGD(0.5, momentum=0.5)
    opt.apply_gradients([(tf.ones(5), a), (tf.ones(3), b)])
    table = opt._tensor_lists[np.dtype(np.float32)]
    opt.apply_gradients([(tf.ones(5), a), (tf.ones(3), b)])
    assert opt._tensor_lists[np.dtype(np.float32)] is table
    b.assign(np.zeros(3, np.float32))  # a new array: the table must point at it
    opt.apply_gradients([(tf.ones(5), a), (tf.ones(3), b)])
    assert opt._tensor_lists[np.dtype(np.float32)] is not table
    momentum = [-0.5, -0.75, -0.875]  # m = 0.5 m - 0.5 g, var += m
    np.testing.assert_allclose(b.numpy(), [momentum[2]] * 3)
    np.testing.assert_allclose(a.numpy(), [1 + sum(momentum)] * 5)


@gpu
def test_optimizer_without_kernel_and_repeated_variable(mock_gpu, launches):
    """A custom Optimizer (update only) runs per variable on the GPU; a variable listed twice is updated twice."""
    class Halve(optim.Optimizer):
        def update(self, var, grad, slots):
            var *= 0.5

    v = tf.Variable([4.0])
    Halve().apply_gradients([(tf.ones(1), v)])
    np.testing.assert_allclose(v.numpy(), [2.0])
    optim.SGD(1.0).apply_gradients([(tf.ones(1), v), (tf.ones(1), v)])
    np.testing.assert_allclose(v.numpy(), [0.0])
    assert launches == {"sgd_update": 2}


# --- softmax cross-entropy ----------------------------------------------------------------------------------------
LOGIT_SHAPES = [(1, 1), (3, 5), (4, 33), (2, 3, 70)]


def _logits(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    x[..., 0] += 500  # far from 0: only a shifted (stable) softmax stays finite
    return x.astype(dtype)


def _softmax_ce(logits, labels, sparse):
    x, y = tf.constant(logits), tf.constant(labels)
    with tf.GradientTape() as tape:
        tape.watch(x)
        if sparse:
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)
        else:
            loss = tf.nn.softmax_cross_entropy_with_logits(y, x)
        total = tf.reduce_sum(loss * tf.constant(np.linspace(0.5, 2.0, loss.numpy().size).reshape(loss.shape),
                                                 dtype=loss.dtype))
    return loss, tape.gradient(total, x)


@gpu
@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", LOGIT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_softmax_cross_entropy_forward_and_backward(sparse, shape, dtype, tol, launches):
    logits = _logits(shape, dtype)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, shape[-1], shape[:-1])
    if not sparse:
        labels = rng.random(shape).astype(dtype)  # any rows, not only distributions
    cpu, here = _on_both(lambda: _softmax_ce(logits, labels, sparse))
    name = ("sparse_" if sparse else "") + "softmax_cross_entropy"
    assert launches == {name: 1, name + "_backward": 1}
    for got, want in zip(here, cpu):
        assert np.isfinite(want).all()
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    float64 = _on_both(lambda: _softmax_ce(logits.astype(np.float64), labels.astype(np.float64) if not sparse
                                           else labels, sparse))[0]
    for got, want in zip(here, float64):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@gpu
def test_sparse_labels_out_of_range_give_nan_rows_on_the_gpu(mock_gpu):
    """Kernel (float32) and the float16 fallback alike: NaN rows, no host read, no error."""
    logits = _logits((4, 3), np.float32)
    for labels, dtype in (([0, 3, 1, -1], np.float32), (np.array([0, 3, 1, -1], np.int32), np.float32),
                          ([0, 3, 1, -1], np.float16)):
        loss, grad = _softmax_ce((logits - 500 * (dtype == np.float16)).astype(dtype), labels, sparse=True)
        loss, grad = loss.numpy(), grad.numpy()
        assert np.isnan(loss[[1, 3]]).all() and np.isfinite(loss[[0, 2]]).all()
        assert np.isnan(grad[[1, 3]]).all() and np.isfinite(grad[[0, 2]]).all()
    for from_logits in (True, False):
        probs = tf.nn.softmax(tf.constant(logits))
        per_sample = losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction="none")(
            [0, 3, 1, 2], tf.constant(logits) if from_logits else probs)
        assert np.isnan(per_sample.numpy()[1]) and np.isfinite(per_sample.numpy()[[0, 2, 3]]).all()


@gpu
def test_keras_losses_from_logits_use_the_fused_kernels(launches):
    logits = _logits((5, 4), np.float32)
    labels = np.array([3, 0, 1, 1, 2])
    hot = np.eye(4, dtype=np.float32)[labels]

    def run():
        x = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, x) + \
                losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(hot, x)
        return total, tape.gradient(total, x)
    cpu, here = _on_both(run)
    assert launches == {"sparse_softmax_cross_entropy": 1, "sparse_softmax_cross_entropy_backward": 1,
                        "softmax_cross_entropy": 1, "softmax_cross_entropy_backward": 1}
    for got, want in zip(here, cpu):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


# --- Philox ---------------------------------------------------------------------------------------------------------
def _draws(counter):
    """Every float draw of the kernels from one stream whose low 64 counter bits wrap during the draws."""
    tf.random.set_seed(5)
    g = tf.random.Generator(0x0123_4567_89AB_CDEF, counter)
    out = [g.uniform([n], dtype=d) for n in (1, 5, 4097) for d in (tf.float32, tf.float64)]
    out += [g.uniform([3, 3], minval=-2.0, maxval=5.0), g.uniform([7], minval=1.0, maxval=2.0, dtype=tf.float64)]
    out += [g.normal([n], dtype=d) for n in (1, 7, 1001) for d in (tf.float32, tf.float64)]
    out += [g.normal([3], mean=2.0, stddev=0.5, dtype=tf.float16)]
    out += [g.truncated_normal([n], dtype=d) for n in (3, 5000) for d in (tf.float32, tf.float64)]
    out += [g.truncated_normal([9], mean=-1.0, stddev=3.0)]
    out += [tf.random.categorical(tf.constant(np.zeros((2, 3), np.float32)), 50, seed=1)]
    return out + [np.array(g.counter % 2 ** 64, dtype=np.uint64)]


@gpu
def test_philox_kernel_gives_the_cpu_numbers(launches):
    """Uniforms (and the counter afterwards) bitwise, normals to a few ulps of log/sin/cos, each draw one launch;
    the stream crosses 2**64 blocks, so the kernel's counter carry is checked too."""
    cpu, here = _on_both(lambda: _draws(2 ** 64 - 3000))
    tf.random.set_seed(None)
    for i, (got, want) in enumerate(zip(here, cpu)):
        assert got.dtype == want.dtype and got.shape == want.shape, i
        if want.dtype.kind in "iu" or i < 8:
            np.testing.assert_array_equal(got, want, err_msg=f"draw {i}")
        else:
            eps = np.finfo(want.dtype).eps
            np.testing.assert_allclose(got, want, rtol=8 * eps, atol=8 * eps, err_msg=f"draw {i}")
    assert launches == {"philox_uniform": 9, "philox_normal": 7, "philox_truncated_normal": 5}


def test_truncated_normal_redraws_per_value_in_later_rounds():
    """float64 makes 2 candidates per block, so about 0.2% of values need round 1: they come from the same block
    index with 2**96 added to the counter, and the stream still moves by exactly one block per value."""
    g = tf.random.Generator(99, 0)
    with tf.device("/CPU:0"):
        z = g.truncated_normal([4000], dtype=tf.float64).numpy()
    assert g.counter == 4000 and np.abs(z).max() <= 2
    words = ops_random._philox_blocks(np, 99, 0, np.arange(4000, dtype=np.uint64))
    first = ops_random._normals(np, ops_random._units(np, words, np.float64, 1.0))
    inside = np.abs(first) <= 2
    redrawn = np.flatnonzero(~inside.any(axis=1))
    assert 0 < redrawn.size < 40
    kept = np.flatnonzero(inside.any(axis=1))
    np.testing.assert_array_equal(z[kept], first[kept, inside.argmax(axis=1)[kept]])
    again = ops_random._normals(np, ops_random._units(
        np, ops_random._philox_blocks(np, 99, 0, redrawn.astype(np.uint64), 1), np.float64, 1.0))
    ok = np.abs(again) <= 2
    kept = np.flatnonzero(ok.any(axis=1))
    np.testing.assert_array_equal(z[redrawn[kept]], again[kept, ok.argmax(axis=1)[kept]])


# --- racecheck ----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(cuda.is_mock() or cuda.gpu_count() > 0, reason="runs the mock GPU's racecheck in a subprocess")
@pytest.mark.skipif(not compiler_available(), reason="the mock GPU needs g++ 10+ or clang++ 12+")
def test_racecheck():
    """One pass of every fused kernel under ThreadSanitizer (memcheck: tests/test_mock_gpu_suite.py's gpu run)."""
    env = dict(os.environ, CUFLOW_MOCK_GPU="racecheck")
    cases = "adam-amsgrad or rmsprop-centered-momentum or sgd-nesterov or adagrad or (forward_and_backward and " \
            "4x33 and f32) or philox"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-k", cases,
                           __file__], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
