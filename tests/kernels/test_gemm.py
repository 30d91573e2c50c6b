"""The GEMM ladder of gpu.py against float64 NumPy: the cp.async-pipelined SGEMM, the tensor-core GEMM (TF32, BF16,
FP16) and the fused epilogue (bias, residual, activation), on a GPU or the mock GPU; the kernel log; and one run of
these kernels under the mock's racecheck (tests/test_mock_gpu_suite.py runs the module under memcheck).

Tolerances, as a bound on |gpu - float64 reference| (``scale`` = |op(a)| @ |op(b)| + |bias| + |residual|, the sum
of magnitudes a dot product rounds against):
- float32 (CUDA cores): 1e-5 * scale;
- TF32: 2e-3 * scale — each input is rounded to 10 mantissa bits (relative error <= 2^-11), so each product is off
  by up to ~2^-10 ~ 1e-3 relative;
- bfloat16 / float16 outputs: the float32 result rounded to 8 / 11 mantissa bits: 2^-8 / 2^-11 of |reference|, plus
  1e-5 * scale (inputs are exact 16-bit values, products exact, sums float32); with gelu, sigmoid or tanh the
  pre-activation is rounded too (2^-8 / 2^-11 of 1.13 |z|, the largest slope times z).
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cuflow
from cuflow.kernels import cpu, cuda, log as kernel_log

pytestmark = pytest.mark.gpu

if cuda.gpu_count() == 0:
    pytest.skip(f"no GPU: {cuda.unavailable_reason()}", allow_module_level=True)

from cuflow.kernels import gpu  # noqa: E402

cp = gpu.cupy
ml_dtypes = pytest.importorskip("ml_dtypes")
BF16, F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)
TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]
TRANSPOSE_IDS = ["NN", "TN", "NT", "TT"]
OUTPUT_ROUNDING = {np.dtype(np.float32): 0.0, np.dtype(np.float64): 0.0, BF16: 2.0 ** -8, F16: 2.0 ** -11}


def operands(rng, m, n, k, ta, tb, dtype, batch=()):
    a = rng.standard_normal(batch + ((k, m) if ta else (m, k))).astype(dtype)
    b = rng.standard_normal(batch + ((n, k) if tb else (k, n))).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return a, b, (a64.swapaxes(-1, -2) if ta else a64), (b64.swapaxes(-1, -2) if tb else b64)


def check(got, want, scale, dtype, rel, rounded=0.0):
    """|got - want| <= rel * scale + 16-bit output rounding of (|want| + rounded); ``rounded`` is what else is
    rounded to the output type on the way (the pre-activation, for the deferred activations, times their slope)."""
    got = cp.asnumpy(got)
    assert got.dtype == dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    bound = rel * scale + OUTPUT_ROUNDING[np.dtype(dtype)] * (np.abs(want) + rounded)
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= bound), f"max error {err.max():.3g}, worst ratio {(err / bound).max():.3g}"


@pytest.fixture
def kernel_names(monkeypatch, capfd):
    """The names of the kernels gpu.py launched (through CUFLOW_KERNEL_LOG), as a callable."""
    monkeypatch.setenv(kernel_log.ENV, "1")
    capfd.readouterr()
    return lambda: [line.split()[2] for line in capfd.readouterr().err.splitlines()
                    if line.startswith("cuflow kernel:")]


@pytest.fixture
def tf32():
    previous = cuflow.config.experimental.tensor_float_32_execution_enabled()
    cuflow.config.experimental.enable_tensor_float_32_execution(True)
    yield
    cuflow.config.experimental.enable_tensor_float_32_execution(previous)


# --- the pipelined SGEMM -------------------------------------------------------------------------------------------
# (M, N, K): aligned leading dimensions where the transposes allow (K, N multiples of 4 for NN); 1, primes, K < BK,
# several tiles plus a remainder. M = 1 / 37 make TN and TT unaligned: those must fall back to the blocked kernel.
PIPELINED_SHAPES = [(1, 4, 4), (5, 8, 12), (37, 132, 44), (132, 68, 20), (8, 8, 0)]


@pytest.mark.parametrize("tiling", [t.name for t in gpu.PIPELINED_TILINGS])
@pytest.mark.parametrize("ta, tb", TRANSPOSES, ids=TRANSPOSE_IDS)
@pytest.mark.parametrize("shape", PIPELINED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pipelined_sgemm(shape, ta, tb, tiling, rng, monkeypatch, kernel_names):
    monkeypatch.setenv(gpu.GEMM_TILING_ENV, tiling)
    m, n, k = shape
    a, b, op_a, op_b = operands(rng, m, n, k, ta, tb, np.float32)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=ta, transpose_b=tb)
    check(got, op_a @ op_b, np.abs(op_a) @ np.abs(op_b), np.float32, 1e-5)
    aligned = (m if ta else k) % 4 == 0 and (k if tb else n) % 4 == 0
    expected = "gemm_pipelined<float," if aligned else "gemm<float,"
    assert [name.startswith(expected) for name in kernel_names()] == [True]


def test_pipelined_sgemm_batched_with_epilogue(rng, monkeypatch, kernel_names):
    """Broadcast batches (stride 0), bias, a broadcast residual and sigmoid through the pipelined kernel (forced: the
    table sends problems this small to the 16x16 tiling, which has no pipelined version)."""
    monkeypatch.setenv(gpu.GEMM_TILING_ENV, "64x64-cp3")
    a, b, op_a, op_b = operands(rng, 36, 20, 28, False, True, np.float32, batch=(3,))
    b, op_b = b[0], op_b[0]
    bias = rng.standard_normal(20).astype(np.float32)
    residual = rng.standard_normal((36, 20)).astype(np.float32)
    got = gpu.fused_matmul(cp.asarray(a), cp.asarray(b), cp.asarray(bias), cp.asarray(residual),
                           activation="sigmoid", transpose_b=True)
    z = op_a @ op_b + bias + residual
    check(got, 1 / (1 + np.exp(-z)), np.abs(op_a) @ np.abs(op_b) + np.abs(bias) + np.abs(residual), np.float32, 1e-5)
    assert kernel_names()[0].startswith("gemm_pipelined<float")


# --- the tensor-core GEMM ------------------------------------------------------------------------------------------
# Leading dimensions multiples of 8 (so every transpose runs on tensor cores), K < BK (8), several tiles plus a
# remainder in M (136 = 128 + 8) and N, and K over several stages (160 = 5 x 32 = 10 x 16).
MMA_SHAPES = [(8, 8, 8), (136, 72, 40), (24, 136, 160)]
MMA_CASES = [pytest.param(np.float32, 2e-3, id="tf32"), pytest.param(BF16, 1e-5, id="bf16"),
             pytest.param(F16, 1e-5, id="f16")]


@pytest.mark.parametrize("dtype, rel", MMA_CASES)
@pytest.mark.parametrize("ta, tb", TRANSPOSES, ids=TRANSPOSE_IDS)
@pytest.mark.parametrize("shape", MMA_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_tensor_core_gemm(shape, ta, tb, dtype, rel, rng, tf32, kernel_names):
    m, n, k = shape
    a, b, op_a, op_b = operands(rng, m, n, k, ta, tb, dtype)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=ta, transpose_b=tb)
    check(got, op_a @ op_b, np.abs(op_a) @ np.abs(op_b), dtype, rel)
    precision = {np.dtype(np.float32): 0, BF16: 1, F16: 2}[np.dtype(dtype)]
    assert [name.startswith(f"gemm_mma<{precision},") for name in kernel_names()] == [True]


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bf16", "f16"])
def test_large_tensor_core_tiling(dtype, rng, kernel_names, monkeypatch):
    """Problems with a full wave of 128 x 256 tiles run matmul_mma_large (here: a 1-SM GPU, so one tile is a wave);
    ragged M and N, every transpose pair."""
    monkeypatch.setattr(gpu, "_sm_count", lambda: 1)
    for ta, tb in TRANSPOSES:
        a, b, op_a, op_b = operands(rng, 136, 264, 72, ta, tb, dtype)
        got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=ta, transpose_b=tb)
        check(got, op_a @ op_b, np.abs(op_a) @ np.abs(op_b), dtype, 1e-5)
    assert gpu._mma_gemm(dtype.name, 136, 264) == ("matmul_mma_large", gpu.MMA_LARGE_PRECISIONS[dtype.name][1])
    assert kernel_names() == ["gemm_mma<1," if dtype == BF16 else "gemm_mma<2,"] * 4
    monkeypatch.setattr(gpu, "_sm_count", lambda: 132)
    assert gpu._mma_gemm(dtype.name, 136, 264)[0] == "matmul_mma"  # 2 tiles: far from a wave


def test_tf32_only_when_enabled(rng, kernel_names):
    """TF32 is off by default (cuflow.config): float32 stays on the exact CUDA-core kernels."""
    assert not cuflow.config.experimental.tensor_float_32_execution_enabled()
    a, b, op_a, op_b = operands(rng, 16, 16, 16, False, False, np.float32)
    check(gpu.matmul(cp.asarray(a), cp.asarray(b)), op_a @ op_b, np.abs(op_a) @ np.abs(op_b), np.float32, 1e-5)
    assert not any(name.startswith("gemm_mma") for name in kernel_names())


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bf16", "f16"])
def test_tensor_core_gemm_batched_and_unaligned(dtype, rng, kernel_names):
    a, b, op_a, op_b = operands(rng, 16, 24, 8, True, False, dtype, batch=(2, 3))
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=True)
    check(got, np.matmul(op_a, op_b), np.matmul(np.abs(op_a), np.abs(op_b)), dtype, 1e-5)
    a, b, op_a, op_b = operands(rng, 9, 5, 7, False, False, dtype)  # K = 7: no 16-byte rows, float32 kernels
    got = gpu.matmul(cp.asarray(a), cp.asarray(b))
    check(got, op_a @ op_b, np.abs(op_a) @ np.abs(op_b), dtype, 1e-5)
    names = kernel_names()
    assert names[0].startswith("gemm_mma<") and names[1].startswith("gemm<float,"), names


# --- the fused epilogue --------------------------------------------------------------------------------------------
EPILOGUE_KERNELS = [  # (dtype, forced tiling or None, TF32?, relative tolerance)
    pytest.param(np.float64, "16x16", False, 1e-12, id="blocked-16x16-f64"),
    pytest.param(np.float32, "64x64", False, 1e-5, id="blocked-64x64-f32"),
    pytest.param(np.float32, "128x64-cp3", False, 1e-5, id="pipelined-f32"),
    pytest.param(np.float32, None, True, 2e-3, id="tf32"),
    pytest.param(BF16, None, False, 1e-5, id="bf16"),
]
ACTIVATION_NAMES = sorted(gpu.ACTIVATIONS)


@pytest.mark.parametrize("dtype, tiling, use_tf32, rel", EPILOGUE_KERNELS)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_fused_epilogue(activation, dtype, tiling, use_tf32, rel, rng, monkeypatch):
    if tiling:
        monkeypatch.setenv(gpu.GEMM_TILING_ENV, tiling)
    cuflow.config.experimental.enable_tensor_float_32_execution(use_tf32)
    try:
        a, b, op_a, op_b = operands(rng, 40, 72, 24, False, False, dtype)
        bias = rng.standard_normal(72).astype(dtype)
        residual = rng.standard_normal((40, 72)).astype(dtype)
        got = gpu.fused_matmul(cp.asarray(a), cp.asarray(b), cp.asarray(bias), cp.asarray(residual),
                               activation=activation)
    finally:
        cuflow.config.experimental.enable_tensor_float_32_execution(False)
    z = op_a @ op_b + bias.astype(np.float64) + residual.astype(np.float64)
    want = cpu.ACTIVATIONS[activation](z)
    np.testing.assert_allclose(cpu.fused_matmul(a, b, bias, residual, activation=activation).astype(np.float64),
                               want, rtol=1e-2 if dtype == BF16 else 1e-5, atol=1e-2 if dtype == BF16 else 1e-5)
    scale = np.abs(op_a) @ np.abs(op_b) + np.abs(bias.astype(np.float64)) + np.abs(residual.astype(np.float64))
    # the activations' slopes are at most ~1.13 (gelu): the tolerance of z carries over. 16-bit outputs of gelu,
    # sigmoid and tanh are rounded twice (the pre-activation z is stored, re-read and activated in place).
    deferred = activation in ("gelu", "sigmoid", "tanh")
    check(got, want, scale * 1.13, dtype, rel, rounded=1.13 * np.abs(z) if deferred else 0.0)


def test_fused_matmul_rejects_unknown_activations_and_integers():
    x = cp.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="activation must be one of"):
        gpu.fused_matmul(x, x, activation="softmax")
    with pytest.raises(TypeError, match="floating-point"):
        gpu.fused_matmul(cp.ones((2, 2), np.int32), cp.ones((2, 2), np.int32))


# --- split-K -------------------------------------------------------------------------------------------------------
# Few output tiles and a long K: the K-slice kernel plus the reducing epilogue (gpu._split_k_plan picks it). (7, 5,
# 3000): odd, one tile, slices with a ragged last one; (64, 64, 2048): exactly one 64 x 64 tile; (33, 17, 2053):
# a prime K.
SPLIT_K_SHAPES = [(7, 5, 3000), (64, 64, 2048), (33, 17, 2053)]


@pytest.mark.parametrize("dtype, rel", [(np.float32, 1e-5), (np.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("ta, tb", TRANSPOSES, ids=TRANSPOSE_IDS)
@pytest.mark.parametrize("shape", SPLIT_K_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_split_k_gemm(shape, ta, tb, dtype, rel, rng, kernel_names):
    m, n, k = shape
    assert gpu._split_k_plan(m, n, k, gpu._sm_count()) is not None
    a, b, op_a, op_b = operands(rng, m, n, k, ta, tb, dtype)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=ta, transpose_b=tb)
    check(got, op_a @ op_b, np.abs(op_a) @ np.abs(op_b), dtype, rel)
    names = kernel_names()
    assert len(names) == 2 and names[0].startswith("gemm_split_k<") and names[1].startswith(
        "gemm_split_k_reduce<"), names


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_split_k_epilogue(activation, rng):
    """Bias, a residual broadcast from (n,) and every activation, applied once to the summed slices; a leading batch
    axis of 1 keeps its shape."""
    a, b, op_a, op_b = operands(rng, 9, 12, 2100, False, False, np.float32, batch=(1,))
    bias = rng.standard_normal(12).astype(np.float32)
    residual = rng.standard_normal(12).astype(np.float32)
    got = gpu.fused_matmul(cp.asarray(a), cp.asarray(b[0]), cp.asarray(bias), cp.asarray(residual),
                           activation=activation)
    z = op_a @ op_b[0] + bias + residual
    scale = np.abs(op_a) @ np.abs(op_b[0]) + np.abs(bias) + np.abs(residual)
    check(got, cpu.ACTIVATIONS[activation](z), scale * 1.13, np.float32, 1e-5)


def test_split_k_only_where_it_pays():
    """Big outputs, short K and batches keep the one-pass GEMM."""
    sms = gpu._sm_count()
    assert gpu._split_k_plan(4096, 4096, 4096, sms) is None
    assert gpu._split_k_plan(128, 5408, 10, sms) is None
    assert gpu._split_k_plan(16, 16, 100, sms) is None
    assert gpu._split_k_plan(128, 128, 784, sms) is None  # measured slower split (see _split_k_plan)
    tiling, slices = gpu._split_k_plan(128, 10, 5408, sms)
    assert slices > 8 and tiling in gpu.SPLIT_K_TILINGS


def test_forced_tensor_core_tiling(rng, kernel_names, monkeypatch):
    """CUFLOW_MMA_TILING builds and runs another tiling of the tensor-core GEMM (benchmark sweeps); a malformed one is
    refused, naming the variable."""
    monkeypatch.setenv(gpu.MMA_TILING_ENV, "64x128x64-cp4")
    a, b, op_a, op_b = operands(rng, 72, 136, 80, False, True, BF16)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_b=True)
    check(got, op_a @ op_b, np.abs(op_a) @ np.abs(op_b), BF16, 1e-5)
    assert kernel_names() == ["gemm_mma<1,"]
    assert gpu._MODULES["matmul_mma_64x128x64-cp4"].instance("gemm_mma", "bfloat16") == "gemm_mma<1, 64, 128, 64, 4>"
    monkeypatch.setenv(gpu.MMA_TILING_ENV, "big")
    with pytest.raises(ValueError, match="CUFLOW_MMA_TILING must read"):
        gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_b=True)


# --- the kernel log ------------------------------------------------------------------------------------------------
def test_kernel_log_prints_one_line_per_launch(rng, monkeypatch, capfd):
    monkeypatch.setenv(kernel_log.ENV, "1")
    capfd.readouterr()
    a = cp.asarray(rng.standard_normal((2, 20, 12)).astype(np.float32))
    gpu.fused_matmul(a, a, cp.ones(12, np.float32), activation="relu", transpose_a=True)
    gpu.max_pool2d(cp.ones((1, 4, 4, 2), np.float32), ksize=(2, 2), strides=(2, 2))
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("cuflow kernel:")]
    assert len(lines) == 2, lines  # (the mock's memcheck mode prints launch lines of its own: not ours)
    assert lines[0].startswith("cuflow kernel: gemm") and "grid=(1, 1, 2) block=(256,)" in lines[0], lines[0]
    assert "m=12 n=12 k=20 batches=2 op=TN epilogue=bias+relu" in lines[0], lines[0]
    assert lines[1].startswith("cuflow kernel: max_pool2d<float> [pool] grid=(1,) block=(256,)"), lines[1]
    monkeypatch.setenv(kernel_log.ENV, "0")
    gpu.matmul(a, a, transpose_a=True)
    assert "cuflow kernel:" not in capfd.readouterr().err
    monkeypatch.setenv(kernel_log.ENV, "yes")
    with pytest.raises(ValueError, match="CUFLOW_KERNEL_LOG must be 0 or 1"):
        gpu.matmul(a, a, transpose_a=True)


# --- racecheck (memcheck: tests/test_mock_gpu_suite.py runs this whole module under the mock's memcheck) ---------
@pytest.mark.parametrize("sanitizer", ["racecheck"])
def test_gemm_kernels_pass_the_sanitizers(sanitizer):
    """Every new kernel (pipelined SGEMM, tensor-core TF32 and BF16, every transpose pair, a deferred activation)
    on ragged shapes, in a subprocess under the mock's ThreadSanitizer (the suite's racecheck run covers only
    test_gpu_parity.py). Under memcheck the tests above run with AddressSanitizer themselves."""
    if cuda.is_mock() is False or os.environ.get("CUFLOW_MOCK_GPU") in ("memcheck", "racecheck"):
        pytest.skip("runs the mock's sanitizers itself: only from a plain mock-GPU run")
    from cuflow.kernels import emu
    code = textwrap.dedent("""
        import os
        import numpy as np, ml_dtypes
        import cuflow
        from cuflow.kernels import gpu
        cp, rng = gpu.cupy, np.random.default_rng(0)
        def run(dtype, m, n, k, ta, tb, **kw):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            bias = rng.standard_normal(n).astype(dtype)
            got = cp.asnumpy(gpu.fused_matmul(cp.asarray(a), cp.asarray(b), cp.asarray(bias), activation="gelu",
                                              transpose_a=ta, transpose_b=tb)).astype(np.float64)
            assert np.isfinite(got).all() and got.shape == (m, n)
        for ta, tb in ((False, False), (True, False), (False, True), (True, True)):
            os.environ["CUFLOW_GEMM_TILING"] = "64x64-cp3"
            run(np.float32, 68, 36, 20, ta, tb)
            del os.environ["CUFLOW_GEMM_TILING"]
            cuflow.config.experimental.enable_tensor_float_32_execution(True)
            run(np.float32, 136, 16, 24, ta, tb)
            cuflow.config.experimental.enable_tensor_float_32_execution(False)
            run(ml_dtypes.bfloat16, 136, 16, 40, ta, tb)
        print("clean", flush=True)
    """)
    env = {**os.environ, **emu.sanitizer_env(sanitizer), "CUFLOW_MOCK_GPU": sanitizer,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(cuflow.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-4000:]
    assert "Sanitizer" not in result.stderr, result.stderr[-4000:]
