"""fused_conv2d: the op (values against float64 NumPy, gradients against finite differences, CPU and GPU), the
Conv2D / Conv1D layers that call it, and the GPU kernels behind it on the mock GPU or a real one: the direct kernel
for few taps, the register-blocked implicit GEMM with its epilogue, and the tensor-core forward (TF32, BF16, FP16),
each chosen where gpu._conv_forward_kernel says (checked through CUFLOW_KERNEL_LOG), the backward passes (the
tensor-core ones under the forward's conditions, else the register-blocked ones), plus one run of the new
kernels under the mock's racecheck (tests/test_mock_gpu_suite.py runs the gpu cases under memcheck).

Kernel tolerances, as a bound on |gpu - float64 reference| (``scale`` = conv(|x|, |w|) + |bias| + |residual|, the
sum of magnitudes the dot products round against; activations have slopes <= 1.13): float32 on CUDA cores 1e-5 *
scale; TF32 2e-3 * scale (inputs rounded to 10 mantissa bits); bfloat16 / float16 1e-5 * scale plus the output
rounding 2^-8 / 2^-11 of |reference| (for gelu, sigmoid and tanh also of the pre-activation, stored in 16 bits and
activated in place).
"""
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cuflow
import cuflow as tf
from cuflow import errors, keras, testing
from cuflow.kernels import cpu, cuda, log as kernel_log
from cuflow.ops.conv import fused_conv2d

ACTIVATIONS = ["linear", "relu", "gelu", "sigmoid", "tanh"]
ml_dtypes = pytest.importorskip("ml_dtypes")
BF16, F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)
OUTPUT_ROUNDING = {np.dtype(np.float32): 0.0, np.dtype(np.float64): 0.0, BF16: 2.0 ** -8, F16: 2.0 ** -11}


def ref_conv2d(x, w, strides, padding, dilations):
    """Cross-correlation of NHWC x with HWIO w in float64, one kernel offset at a time."""
    (s0, s1), (d0, d1) = strides, dilations
    kh, kw = w.shape[:2]
    xp = np.pad(x.astype(np.float64), ((0, 0), padding[0], padding[1], (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * d0 - 1) // s0 + 1
    ow = (xp.shape[2] - (kw - 1) * d1 - 1) // s1 + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i * d0:i * d0 + (oh - 1) * s0 + 1:s0, j * d1:j * d1 + (ow - 1) * s1 + 1:s1] @ w[i, j]
    return out


def activate(z, activation):
    return {"linear": z, "relu": np.maximum(z, 0), "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z),
            "gelu": 0.5 * z * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))}[activation]


# --- the op and the layers (CPU, and the GPU when present: the mock in CI) ------------------------------------------
OP_CASES = [  # x shape (data_format layout), filter shape, strides, padding, its NHWC pairs, dilations, data_format
    pytest.param((1, 5, 4, 2), (3, 2, 2, 3), (2, 1), "SAME", ((1, 1), (0, 1)), (1, 1), "NHWC", id="same-stride2"),
    pytest.param((2, 6, 5, 1), (2, 2, 1, 3), (1, 1), "VALID", ((0, 0), (0, 0)), (2, 1), "NHWC",
                 id="1-channel-dilated"),
    pytest.param((1, 2, 5, 4), (3, 3, 2, 3), (1, 2), [[0, 0], [0, 0], [1, 1], [2, 0]], ((1, 1), (2, 0)), (1, 1),
                 "NCHW", id="nchw-explicit-pad"),
]


# every activation on the first case; one each on the others (the gradient checks are the costly part under the mock)
OP_RUNS = [(case, activation) for activation in ACTIVATIONS for case in OP_CASES[:1]] + [
    (OP_CASES[1], "relu"), (OP_CASES[2], "gelu")]


@pytest.mark.parametrize("xshape, wshape, strides, padding, pairs, dilations, data_format, activation", [
    pytest.param(*case.values, activation, id=f"{case.id}-{activation}") for case, activation in OP_RUNS])
def test_fused_conv2d_values_and_gradients(device, activation, xshape, wshape, strides, padding, pairs, dilations,
                                           data_format):
    rng = np.random.default_rng(7)
    x, w, bias = rng.standard_normal(xshape), rng.standard_normal(wshape), rng.standard_normal(wshape[3])
    config = dict(strides=strides, padding=padding, data_format=data_format, dilations=dilations)
    nchw = data_format == "NCHW"
    z = ref_conv2d(x.transpose(0, 2, 3, 1) if nchw else x, w, strides, pairs, dilations) + bias
    if nchw:
        z = z.transpose(0, 3, 1, 2)
    residual = rng.standard_normal(z.shape)
    got = fused_conv2d(tf.constant(x), tf.constant(w), tf.constant(bias), tf.constant(residual), activation=activation,
                       **config)
    np.testing.assert_allclose(np.asarray(got), activate(z + residual, activation), rtol=1e-12, atol=1e-12)
    testing.check_gradients(lambda a, b, c, r: fused_conv2d(a, b, c, r, activation=activation, **config),
                            [x, w, bias, residual])
    testing.check_gradients(lambda a, b: fused_conv2d(a, b, activation=activation, **config), [x, w])


def test_fused_conv2d_second_derivative(device):
    """The gradient is written in ops (conv2d_backprop_*), so a tape over the gradient sees it: d/dw of
    sum(d/dx sum(tanh(conv)))."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 4, 4, 2)), rng.standard_normal((2, 2, 2, 2))
    testing.check_gradients(lambda a, b: _input_grad_norm(a, b), [x, w], rtol=1e-4, atol=1e-6)


def _input_grad_norm(x, w):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(fused_conv2d(x, w, activation="tanh", padding="SAME"))
    return tf.reduce_sum(tape.gradient(y, x) ** 2)


def test_fused_conv2d_bad_arguments(device):
    x, w = tf.ones((1, 4, 4, 2)), tf.ones((3, 3, 2, 5))
    with pytest.raises(errors.InvalidArgumentError, match="activation must be one of .* got 'softmax'"):
        fused_conv2d(x, w, activation="softmax")
    with pytest.raises(errors.InvalidArgumentError, match=r"bias must have shape \(5,\).* got \(4,\)"):
        fused_conv2d(x, w, tf.ones(4))
    with pytest.raises(errors.InvalidArgumentError, match=r"residual with shape \(1, 3, 3, 5\) .* \(1, 2, 2, 5\)"):
        fused_conv2d(x, w, None, tf.ones((1, 3, 3, 5)))
    with pytest.raises(errors.InvalidArgumentError, match="input has 2 channels"):
        fused_conv2d(x, tf.ones((3, 3, 3, 5)))


@pytest.mark.parametrize("activation, fused", [("relu", True), ("tanh", True), ("sigmoid", False), ("elu", False)])
def test_conv_layers_use_the_fused_op(device, activation, fused, monkeypatch):
    """Conv2D and Conv1D compute activation(conv + bias) through fused_conv2d; activations the epilogue does not
    apply (sigmoid keeps its logits for binary cross-entropy, as in Dense) run after it."""
    from cuflow.ops import conv as conv_ops
    calls = []
    original = conv_ops.fused_conv2d
    monkeypatch.setattr(conv_ops, "fused_conv2d", lambda *a, **k: calls.append(k["activation"]) or original(*a, **k))
    monkeypatch.setattr("cuflow.layers.conv.fused_conv2d", conv_ops.fused_conv2d)
    rng = np.random.default_rng(5)
    images, steps = rng.standard_normal((2, 6, 5, 3)).astype(np.float32), rng.standard_normal((2, 7, 3))
    layer2d = keras.layers.Conv2D(4, 3, padding="same", activation=activation, bias_initializer="glorot_uniform")
    layer1d = keras.layers.Conv1D(4, 3, padding="causal", activation=activation, bias_initializer="glorot_uniform")
    out2d, out1d = layer2d(images), layer1d(steps.astype(np.float32))
    expected = "linear" if not fused else activation
    assert calls == [expected, expected]
    act = keras.activations.get(activation)
    k2, b2 = layer2d.kernel.numpy().astype(np.float64), layer2d.bias.numpy()
    want2d = np.asarray(act(tf.constant(ref_conv2d(images, k2, (1, 1), ((1, 1), (1, 1)), (1, 1)) + b2)))
    np.testing.assert_allclose(out2d.numpy(), want2d, rtol=1e-5, atol=1e-5)
    k1, b1 = layer1d.kernel.numpy().astype(np.float64)[None], layer1d.bias.numpy()
    z1 = ref_conv2d(steps[:, None], k1, (1, 1), ((0, 0), (2, 0)), (1, 1))[:, 0] + b1
    np.testing.assert_allclose(out1d.numpy(), np.asarray(act(tf.constant(z1))), rtol=1e-5, atol=1e-5)


# --- the GPU kernels ------------------------------------------------------------------------------------------------
@pytest.fixture
def gpu():
    if cuda.gpu_count() == 0:
        pytest.skip(f"no GPU: {cuda.unavailable_reason()}")
    from cuflow.kernels import gpu as gpu_module
    return gpu_module


@pytest.fixture
def kernel_names(monkeypatch, capfd):
    """The names of the kernels gpu.py launched (through CUFLOW_KERNEL_LOG), as a callable."""
    monkeypatch.setenv(kernel_log.ENV, "1")
    capfd.readouterr()
    prefix = "cuflow kernel: "
    return lambda: [line[len(prefix):line.index(" [")] for line in capfd.readouterr().err.splitlines()
                    if line.startswith(prefix)]


def run_kernel(gpu, rng, dtype, xshape, wshape, geometry, activation, residual=False, rel=1e-5):
    """gpu.fused_conv2d against float64 (and cpu.fused_conv2d), within the module docstring's bound."""
    cp = gpu.cupy
    x, w = rng.standard_normal(xshape).astype(dtype), rng.standard_normal(wshape).astype(dtype)
    bias = rng.standard_normal(wshape[3]).astype(dtype)
    conv = ref_conv2d(x.astype(np.float64), w.astype(np.float64), **geometry)
    res = rng.standard_normal(conv.shape).astype(dtype) if residual else None
    extra = 0.0 if res is None else res.astype(np.float64)
    z = conv + bias.astype(np.float64) + extra
    want = activate(z, activation)
    got = gpu.fused_conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(bias), None if res is None else cp.asarray(res),
                           activation=activation, **geometry)
    got = cp.asnumpy(got)
    assert got.dtype == dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    scale = 1.13 * (ref_conv2d(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), **geometry)
                    + np.abs(bias.astype(np.float64)) + np.abs(extra))
    rounded = 1.13 * np.abs(z) if activation in ("gelu", "sigmoid", "tanh") else 0.0
    bound = rel * scale + OUTPUT_ROUNDING[np.dtype(dtype)] * (np.abs(want) + rounded)
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= bound), f"max error {err.max():.3g}, worst ratio {(err / bound).max():.3g}"
    if dtype in (np.float32, np.float64):
        cpu_out = cpu.fused_conv2d(x, w, bias, res, activation=activation, **geometry)
        np.testing.assert_allclose(cpu_out, want, rtol=1e-5, atol=1e-5 * scale.max())


def geometry(strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1)):
    return {"strides": strides, "padding": padding, "dilations": dilations}


# Each: dtype, x shape, w shape, geometry, the kernel that must run, tolerance (rel), TF32?
# M = N*OH*OW and F give several tiles plus a remainder where the kernel tiles them (direct: 32 x 32; 128 x 128).
KERNEL_CASES = [
    pytest.param(np.float32, (2, 11, 7, 1), (3, 3, 1, 37), geometry((2, 1), ((1, 1), (0, 2)), (1, 2)),
                 "conv2d_direct<float>", 1e-5, False, id="direct-1ch"),
    pytest.param(np.float32, (3, 5, 6, 4), (2, 2, 4, 9), geometry((1, 1), ((1, 0), (0, 1))),
                 "conv2d_direct<float>", 1e-5, False, id="direct-16taps"),
    pytest.param(np.float32, (2, 6, 5, 3), (3, 3, 3, 20), geometry((1, 2), ((1, 1), (1, 1))),
                 "conv2d_forward<float,", 1e-5, False, id="blocked-f32"),
    pytest.param(np.float64, (2, 5, 5, 1), (3, 3, 1, 5), geometry(), "conv2d_forward<double,", 1e-12, False,
                 id="blocked-f64-1ch"),
    pytest.param(np.float32, (2, 9, 8, 12), (3, 3, 12, 136), geometry((1, 1), ((1, 1), (1, 1))),
                 "conv2d_forward_mma<0,", 2e-3, True, id="tf32"),
    pytest.param(BF16, (2, 9, 8, 16), (3, 3, 16, 136), geometry((1, 1), ((1, 1), (1, 1))),
                 "conv2d_forward_mma<1,", 1e-5, False, id="bf16"),
    pytest.param(F16, (1, 10, 9, 8), (3, 2, 8, 24), geometry((2, 1), ((2, 1), (0, 1)), (2, 2)),
                 "conv2d_forward_mma<2,", 1e-5, False, id="f16-stride-dilation"),
    pytest.param(BF16, (2, 5, 5, 12), (3, 3, 12, 8), geometry(), "conv2d_forward<float,", 1e-5, False,
                 id="bf16-unaligned-C"),
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, xshape, wshape, geom, kernel, rel, use_tf32", KERNEL_CASES)
def test_conv_forward_kernels(gpu, kernel_names, rng, dtype, xshape, wshape, geom, kernel, rel, use_tf32):
    cuflow.config.experimental.enable_tensor_float_32_execution(use_tf32)
    try:
        run_kernel(gpu, rng, dtype, xshape, wshape, geom, "relu", residual=True, rel=rel)
    finally:
        cuflow.config.experimental.enable_tensor_float_32_execution(False)
    assert [name.startswith(kernel) for name in kernel_names()] == [True]


EPILOGUE_KERNELS = [KERNEL_CASES[0], KERNEL_CASES[2], KERNEL_CASES[5]]  # direct, blocked, tensor cores


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, xshape, wshape, geom, kernel, rel, use_tf32", EPILOGUE_KERNELS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_conv_epilogue_activations(gpu, rng, activation, dtype, xshape, wshape, geom, kernel, rel, use_tf32):
    run_kernel(gpu, rng, dtype, xshape, wshape, geom, activation, rel=rel)


@pytest.mark.gpu
def test_forced_tiling_replaces_the_direct_kernel(gpu, kernel_names, rng, monkeypatch):
    """CUFLOW_GEMM_TILING forces the implicit GEMM even where the direct kernel would run (benchmarks compare them)."""
    monkeypatch.setenv(gpu.GEMM_TILING_ENV, "64x64")
    run_kernel(gpu, rng, np.float32, (2, 6, 6, 1), (3, 3, 1, 8), geometry(), "sigmoid")
    assert kernel_names() == ["conv2d_forward<float, 64, 64, 16, 4, 4>"]


def ref_conv2d_backward(x, w, dy, strides, padding, dilations):
    """(dx, dw) of ref_conv2d in float64: each kernel offset's slice of the padded input gets dy @ w[i, j]^T, and
    w[i, j] the slice^T @ dy."""
    (s0, s1), (d0, d1) = strides, dilations
    x, w, dy = (a.astype(np.float64) for a in (x, w, dy))
    xp = np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    oh, ow = dy.shape[1:3]
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            window = (slice(None), slice(i * d0, i * d0 + (oh - 1) * s0 + 1, s0),
                      slice(j * d1, j * d1 + (ow - 1) * s1 + 1, s1))
            dxp[window] += dy @ w[i, j].T
            dw[i, j] = np.einsum("nhwc,nhwf->cf", xp[window], dy)
    return dxp[:, padding[0][0]:padding[0][0] + x.shape[1], padding[1][0]:padding[1][0] + x.shape[2]], dw


# Each: dtype, x shape, w shape, geometry, the backward-input and backward-filter kernels that must run, tolerance
# (rel), TF32? dx's M = N*H*W and the filter's M = KH*KW*C or F pass one 128-row tile; with SPLIT_K_MIN_CHUNK
# lowered to 32 the filter gradient's K = N*OH*OW is cut into slices that are not multiples of BK.
BACKWARD_CASES = [
    pytest.param(np.float32, (2, 9, 8, 12), (3, 3, 12, 20), geometry((1, 1), ((1, 1), (1, 1))),
                 "conv2d_backward_input_mma<0,", "conv2d_backward_filter_mma<0,", 2e-3, True, id="tf32"),
    pytest.param(BF16, (1, 10, 9, 8), (3, 2, 8, 24), geometry((2, 1), ((2, 1), (0, 1)), (2, 2)),
                 "conv2d_backward_input_mma<1,", "conv2d_backward_filter_mma<0,", 1e-5, False,
                 id="bf16-stride-dilation"),
    pytest.param(F16, (2, 7, 6, 16), (2, 3, 16, 136), geometry((1, 2), ((1, 0), (1, 1))),
                 "conv2d_backward_input_mma<2,", "conv2d_backward_filter_mma<0,", 1e-5, False, id="f16-stride"),
    pytest.param(BF16, (2, 5, 5, 12), (3, 3, 12, 8), geometry((2, 2), ((1, 1), (1, 1))),
                 "conv2d_backward_input<float,", "conv2d_backward_filter<float,", 1e-5, False, id="bf16-unaligned-C"),
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, xshape, wshape, geom, input_kernel, filter_kernel, rel, use_tf32", BACKWARD_CASES)
def test_conv_backward_kernels(gpu, kernel_names, rng, monkeypatch, dtype, xshape, wshape, geom, input_kernel,
                               filter_kernel, rel, use_tf32):
    """gpu.conv2d_backward_input / _filter against float64, within |err| <= rel * (the same gradient of |x|, |w|,
    |dy|) + the output rounding of |reference|. 16-bit filter gradients run the TF32 kernel on float32 copies, which
    TF32 holds exactly: they must meet rel = 1e-5 (float32 sums), not TF32's 2e-3."""
    monkeypatch.setattr(gpu, "SPLIT_K_MIN_CHUNK", 32)
    cp = gpu.cupy
    x, w = rng.standard_normal(xshape).astype(dtype), rng.standard_normal(wshape).astype(dtype)
    dy = rng.standard_normal(ref_conv2d(x, w, **geom).shape).astype(dtype)
    want = ref_conv2d_backward(x, w, dy, **geom)
    scale = ref_conv2d_backward(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)),
                                np.abs(dy.astype(np.float64)), **geom)
    cuflow.config.experimental.enable_tensor_float_32_execution(use_tf32)
    try:
        dx = gpu.conv2d_backward_input(cp.asarray(dy), cp.asarray(w), xshape, **geom)
        dw = gpu.conv2d_backward_filter(cp.asarray(x), cp.asarray(dy), wshape, **geom)
    finally:
        cuflow.config.experimental.enable_tensor_float_32_execution(False)
    names = kernel_names()
    assert [names[0].startswith(input_kernel), names[1].startswith(filter_kernel)] == [True, True], names
    for name, got, ref, bound in zip(("dx", "dw"), (dx, dw), want, scale):
        got = cp.asnumpy(got)
        assert got.dtype == dtype and got.shape == ref.shape, (name, got.dtype, got.shape)
        err = np.abs(got.astype(np.float64) - ref)
        bound = rel * bound + OUTPUT_ROUNDING[np.dtype(dtype)] * np.abs(ref)
        assert np.all(err <= bound), f"{name}: max error {err.max():.3g}, worst ratio {(err / bound).max():.3g}"


@pytest.mark.gpu
def test_forced_conv_tensor_core_tiling(gpu, kernel_names, rng, monkeypatch):
    """CUFLOW_CONV_MMA_TILING builds and runs another tiling of the three tensor-core convolutions (benchmark
    sweeps): 32-deep K tiles in 4 stages, BF16 forward and TF32 backward passes, within the same bounds."""
    monkeypatch.setenv(gpu.CONV_MMA_TILING_ENV, "128x128x32-cp4")
    run_kernel(gpu, rng, BF16, (2, 9, 8, 16), (3, 3, 16, 136), geometry((1, 1), ((1, 1), (1, 1))), "relu")
    assert kernel_names() == ["conv2d_forward_mma<1, 128, 128, 32, 4>"]
    test_conv_backward_kernels(gpu, kernel_names, rng, monkeypatch, *BACKWARD_CASES[0].values)
    assert {"conv2d_mma_128x128x32-cp4", "conv2d_mma_filter_128x128x32-cp4"} <= set(gpu._MODULES)


@pytest.mark.gpu
def test_fused_conv2d_primitive_rejects_bad_activations_and_integers(gpu):
    cp = gpu.cupy
    x, w = cp.ones((1, 3, 3, 1), np.float32), cp.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="fused_conv2d: activation must be one of"):
        gpu.fused_conv2d(x, w, activation="softmax")
    with pytest.raises(TypeError, match="floating-point"):
        gpu.fused_conv2d(cp.ones((1, 3, 3, 1), np.int32), cp.ones((1, 1, 1, 1), np.int32))


@pytest.mark.gpu
def test_new_conv_kernels_pass_racecheck(gpu):
    """The direct kernel, the tensor-core forward (TF32 and BF16, with a deferred activation) and the tensor-core
    backward passes (split-K filter gradient included) on ragged shapes, in a subprocess under the mock's
    ThreadSanitizer (the suite's racecheck run covers test_gpu_parity.py only)."""
    if cuda.is_mock() is False or os.environ.get("CUFLOW_MOCK_GPU") in ("memcheck", "racecheck"):
        pytest.skip("runs the mock's sanitizers itself: only from a plain mock-GPU run")
    from cuflow.kernels import emu
    code = textwrap.dedent("""
        import numpy as np, ml_dtypes
        import cuflow
        from cuflow.kernels import gpu
        cp, rng = gpu.cupy, np.random.default_rng(0)
        def run(dtype, xshape, wshape):
            x, w = rng.standard_normal(xshape).astype(dtype), rng.standard_normal(wshape).astype(dtype)
            b = rng.standard_normal(wshape[3]).astype(dtype)
            got = cp.asnumpy(gpu.fused_conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), activation="gelu",
                                              padding=((1, 1), (1, 0)))).astype(np.float64)
            assert np.isfinite(got).all()
        def backward(dtype, xshape, wshape):
            x, w = (cp.asarray(rng.standard_normal(shape).astype(dtype)) for shape in (xshape, wshape))
            geom = dict(strides=(2, 1), padding=((1, 1), (1, 0)))
            dy = cp.asarray(rng.standard_normal(gpu.conv2d(x, w, **geom).shape).astype(dtype))
            for got in (gpu.conv2d_backward_input(dy, w, xshape, **geom),
                        gpu.conv2d_backward_filter(x, dy, wshape, **geom)):
                assert np.isfinite(cp.asnumpy(got).astype(np.float64)).all()
        gpu.SPLIT_K_MIN_CHUNK = 16  # several K slices of the filter gradient
        run(np.float32, (2, 7, 6, 1), (3, 3, 1, 40))
        cuflow.config.experimental.enable_tensor_float_32_execution(True)
        run(np.float32, (2, 9, 8, 4), (3, 3, 4, 16))
        backward(np.float32, (2, 9, 8, 4), (3, 3, 4, 16))
        cuflow.config.experimental.enable_tensor_float_32_execution(False)
        run(ml_dtypes.bfloat16, (2, 9, 8, 8), (3, 3, 8, 16))
        backward(ml_dtypes.bfloat16, (2, 9, 8, 8), (3, 3, 8, 16))
        print("clean", flush=True)
    """)
    env = {**os.environ, **emu.sanitizer_env("racecheck"), "CUFLOW_MOCK_GPU": "racecheck",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(cuflow.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-4000:]
    assert "Sanitizer" not in result.stderr, result.stderr[-4000:]
