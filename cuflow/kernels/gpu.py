"""GPU primitives: cuflow's own CUDA kernels (``matmul.cu``, ``conv2d.cu``, ``pool.cu``) launched through CuPy.

The twin of ``cpu.py``: the same functions with the same signatures, CuPy arrays in and out. Shapes are checked by
the ops layer above; here we only make operands contiguous, allocate outputs and launch. The kernels index every
legal shape in bounds (sizes up to int32; offsets are 64-bit inside the kernels).

Dtypes: float32 and float64 run our kernels. bfloat16 and float16 matmuls and convolutions run on tensor
cores (float32 accumulate) when their leading dimensions (channels) allow 16-byte copies; otherwise, like the other
primitives on 2-byte floats, they are computed in float32 and cast back. float32 matmul and convolution forward use
TF32 tensor cores only when ``cuflow.config.experimental.enable_tensor_float_32_execution(True)`` was called. Integer, bool and complex
``matmul`` use ``cupy.matmul``: only the float kernels are ours (and only ours can be captured in a CUDA graph).
Convolution and pooling take floating dtypes only. ``CUFLOW_KERNEL_LOG=1`` prints every launch (kernels/log.py).
"""
import functools
import math
import os

import numpy as np

from . import log as _log
from .compile import (CONV_MMA_PRECISIONS, DIRECT_CONV, GEMM_THREADS, GEMM_TILINGS, KERNEL_DTYPES,
                      MMA_LARGE_PRECISIONS, MMA_PRECISIONS, MODULES, NVRTC_OPTIONS, PIPELINED_TILINGS, POOL_THREADS,
                      SPLIT_K_TILINGS, KernelModule, MmaTiling, gemm_module_name, module_source)
from .cuda import cupy as _get_cupy

cupy = _get_cupy()

__all__ = [
    "cupy", "matmul", "fused_matmul", "ACTIVATIONS", "conv2d", "fused_conv2d", "conv2d_backward_input",
    "conv2d_backward_filter",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
]

# --- Tiling and launch choices ------------------------------------------------------------------------------------
# The GEMM tilings (compile.GEMM_TILINGS) and POOL_THREADS come from compile.py, where the kernel instances that bake
# them in are listed and compile-checked. Which tiling a GEMM (matmul or convolution) runs is decided here, from this
# table: the one with the least estimated time, counted in waves (every SM running `per_sm` blocks) of padded tiles
# at the tiling's full-GPU speed. Bigger tiles compute faster, but waste work on ragged edges and leave SMs idle on
# small grids; that trade is the whole choice. Speeds: float32 SGEMM 4096^3 with the tiling forced, on an H200
# (2026-11-26, benchmarks/results/gpu-2026-11-26-NVIDIA-H200-call1.json, "sweep sgemm" rows), of the kernel that runs
# for aligned float32 (the pipelined one where PIPELINED has it); `per_sm` follows from each kernel's registers
# (65536 per SM, 256 threads per block).
GEMM_TABLE = (  # (tiling, blocks resident per SM, TFLOP/s on a full GPU)
    (GEMM_TILINGS[0], 1, 29.8),   # 128 x 128 x 16, 8 x 8 per thread (~230 registers): big M and N
    (GEMM_TILINGS[1], 2, 25.8),   # 128 x 64, 8 x 4 per thread, pipelined (128 x 64 x 16, 3 stages)
    (GEMM_TILINGS[2], 2, 25.5),   # 64 x 64 x 16, 4 x 4 per thread, pipelined (3 stages): medium
    (GEMM_TILINGS[3], 5, 6.3),    # 16 x 16 x 16, one output per thread: tiny
)
GEMM_TILING_ENV = "CUFLOW_GEMM_TILING"  # e.g. "64x64": force one tiling everywhere (tests, benchmarks)
# float32 matmuls whose operands allow 16-byte copies run the cp.async-pipelined version of the tiling the table
# picks (matmul_async.cu) where it paid on the H200: 128 x 64 (25.8 against 20.1 TFLOP/s register-blocked at 4096^3,
# 24.7 against 21.6 at 1024^3) and 64 x 64 (25.5 / 24.7, 24.4 / 23.2). The pipelined 128 x 128 was slower than the
# register-blocked one (27.7 against 29.8; 247 registers leave it 1 block per SM with nothing to hide the barrier),
# so it runs only when forced (CUFLOW_GEMM_TILING=128x128-cp3). CUFLOW_GEMM_PIPELINE=0 keeps the register-blocked
# kernels everywhere, for the benchmark's side-by-side comparison.
GEMM_PIPELINE_ENV = "CUFLOW_GEMM_PIPELINE"
PIPELINED = {(t.bm, t.bn): t for t in PIPELINED_TILINGS if (t.bm, t.bn) != (128, 128)}
FORCEABLE_PIPELINED = {t.name: t for t in PIPELINED_TILINGS}
# Fused epilogue: activation codes of matmul.cu (ACT_*) and its flags.
ACTIVATIONS = {"linear": 0, "relu": 1, "gelu": 2, "sigmoid": 3, "tanh": 4}
EPILOGUE_BIAS, EPILOGUE_RESIDUAL = 1, 2
DEFAULT_SM_COUNT = 132        # when the device cannot be asked (an H100's and an H200's count)
MAX_GRID_YZ = 65535           # CUDA's limit on gridDim.y and gridDim.z (the gemm kernel loops over extra batches)
MAX_POOL_BLOCKS = 1 << 20     # pooling kernels loop grid-stride beyond this many blocks
SPLIT_K_MATMUL_MIN_CHUNK = 128  # matmul split-K: K slices at least this long (_split_k_plan) ...
SPLIT_K_MATMUL_MIN_K = 2048     # ... and only for K at least this long (see _split_k_plan)
MMA_TILING_ENV = "CUFLOW_MMA_TILING"  # e.g. "128x128x64-cp4": the tensor-core GEMM's tiling (benchmark sweeps)
CONV_MMA_TILING_ENV = "CUFLOW_CONV_MMA_TILING"  # the same for the tensor-core convolutions
SPLIT_K_TARGET_BLOCKS = 512   # conv backward-filter: split its long K until about this many blocks run ...
SPLIT_K_MIN_CHUNK = 1024      # ... but never into slices shorter than this
_INT32_MAX = 2**31 - 1

_MODULES = {m.name: m for m in MODULES}


# --- Loading and launching ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _raw_module(name):
    """The compiled RawModule of one entry of compile.MODULES (all its instances); CuPy caches the binary on disk."""
    module = _MODULES[name]
    return cupy.RawModule(code=module_source(module), options=NVRTC_OPTIONS, name_expressions=module.instances())


def _kernel(module_name, kernel, dtype):
    return _raw_module(module_name).get_function(_MODULES[module_name].instance(kernel, dtype))


def _i32(*values):
    """Sizes as the kernels' int arguments."""
    if max(values, default=0) > _INT32_MAX:
        raise ValueError(f"cuflow's GPU kernels take sizes below 2**31, got {max(values)}")
    return tuple(np.int32(v) for v in values)


def _cdiv(a, b):
    return -(-a // b)


def _gemm_plan(m, n, k, batches=1, split_k=False):
    """(tiling, K slices) for ``batches`` m x n x k GEMMs: the forced tiling, else GEMM_TABLE's least estimated time.

    With ``split_k``, K is cut into slices (see _k_slices), each its own grid slice; else there is one.
    """
    forced = os.environ.get(GEMM_TILING_ENV)
    if not forced:
        return _best_gemm_plan(m, n, k, batches, split_k, _sm_count())
    names = {t.name: t for t in GEMM_TILINGS + PIPELINED_TILINGS}
    if forced not in names:
        raise ValueError(f"{GEMM_TILING_ENV} must be one of {sorted(names)}, got {forced!r}")
    tiling = names[forced]
    if tiling.stages:  # a pipelined tiling: it runs where its operands allow, the blocked one of its shape elsewhere
        tiling = next(t for t in GEMM_TILINGS if (t.bm, t.bn) == (tiling.bm, tiling.bn))
    return tiling, _k_slices(tiling, m, n, k) if split_k else 1


@functools.lru_cache(maxsize=4096)
def _best_gemm_plan(m, n, k, batches, split_k, sms):
    def plan(row):
        tiling, per_sm, tflops = row
        slices = _k_slices(tiling, m, n, k) if split_k else 1
        slots = sms * per_sm
        waves = _cdiv(_cdiv(m, tiling.bm) * _cdiv(n, tiling.bn) * batches * slices, slots)
        return waves * slots * tiling.bm * tiling.bn * _cdiv(k, slices) / tflops, tiling, slices

    _, tiling, slices = min((plan(row) for row in GEMM_TABLE), key=lambda p: p[0])  # ties: the first row
    return tiling, slices


def _k_slices(tiling, m, n, k):
    """Split-K: cut K into slices until about SPLIT_K_TARGET_BLOCKS blocks run, none shorter than SPLIT_K_MIN_CHUNK."""
    tiles = _cdiv(m, tiling.bm) * _cdiv(n, tiling.bn)
    return max(1, min(_cdiv(SPLIT_K_TARGET_BLOCKS, tiles), k // SPLIT_K_MIN_CHUNK, MAX_GRID_YZ))


@functools.lru_cache(maxsize=4096)
def _split_k_plan(m, n, k, sms):
    """(tiling, K slices) for split-K of one m x n x k product (matmul.cu's gemm_split_k + gemm_split_k_reduce), or
    None when the plain GEMM is estimated faster. Split-K pays where the output has too few tiles to fill the GPU and
    K is long (the seed CNN's 128 x 5408 -> 10 Dense: one 128 x 64 tile walking K = 5408 alone). Estimated as
    _best_gemm_plan does, plus one pass over the slices for the reduction.

    Only for K >= SPLIT_K_MATMUL_MIN_K: below it the second launch, the partial buffer and their host-side cost
    outweigh the idle SMs. Measured on an H200 (2026-11-26, per call, CUDA events around back-to-back calls):
    128 x 10 x 5408 took 0.102 ms in one pass and 0.087 ms split; 128 x 128 x 784 took 0.059 ms in one pass and
    0.089 ms split."""
    base, _ = _best_gemm_plan(m, n, k, 1, False, sms)
    tiles = _cdiv(m, base.bm) * _cdiv(n, base.bn)
    if tiles * 2 > sms or k < SPLIT_K_MATMUL_MIN_K:
        return None
    rows = {t: (per_sm, tflops) for t, per_sm, tflops in GEMM_TABLE}
    best, best_cost = None, None
    for tiling in (base,) + SPLIT_K_TILINGS:
        per_sm, tflops = rows[tiling]
        tiles = _cdiv(m, tiling.bm) * _cdiv(n, tiling.bn)
        slices = 1 if tiling is base else max(1, min(_cdiv(2 * sms * per_sm, tiles), k // SPLIT_K_MATMUL_MIN_CHUNK,
                                                     MAX_GRID_YZ))
        slots = sms * per_sm
        cost = _cdiv(tiles * slices, slots) * slots * tiling.bm * tiling.bn * _cdiv(k, slices) / tflops
        if slices > 1:
            cost += slices * m * n * 64 / tflops  # the reduction: about a K-step of 64 per output per slice
        if best_cost is None or cost < best_cost:
            best, best_cost = (None if slices == 1 else (tiling, slices)), cost
    return best


def _sm_count():
    try:
        return _device_sm_count(cupy.cuda.runtime.getDevice())
    except Exception:  # a stand-in CuPy that cannot say
        return DEFAULT_SM_COUNT


@functools.lru_cache(maxsize=None)
def _device_sm_count(device_id):
    return int(cupy.cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"])


def _launch_gemm(family, kernel, dtype, tiling, m, n, args, splits=1, shape=None, module_name=None):
    """Launches ``kernel`` of GEMM ``family`` built for ``tiling`` over an m x n result; z = batches or K slices.

    ``module_name`` overrides the module (default: ``family``'s module of ``tiling``); ``shape`` is what the kernel
    log prints (default ``m``, ``n``).
    """
    if m == 0 or n == 0 or splits == 0:
        return
    _i32(m, n)
    if _cdiv(n, tiling.bn) > MAX_GRID_YZ:
        raise ValueError(f"cuflow's GPU GEMM takes at most {MAX_GRID_YZ * tiling.bn} output columns, got {n}")
    grid = (_cdiv(m, tiling.bm), _cdiv(n, tiling.bn), min(splits, MAX_GRID_YZ))
    name = module_name or gemm_module_name(family, tiling)
    module = _MODULES[name]
    function = _raw_module(name).get_function(module.instance(kernel, dtype))
    shared = module.dynamic_shared(dtype)
    if _log.enabled():
        _log.launch(module.instance(kernel, dtype), name, grid, (GEMM_THREADS,), shape or {"m": m, "n": n}, shared)
    if shared:
        if function.max_dynamic_shared_size_bytes < shared:
            function.max_dynamic_shared_size_bytes = shared
        function(grid, (GEMM_THREADS,), args, shared_mem=shared)
    else:
        function(grid, (GEMM_THREADS,), args)


def _launch_cells(module_name, kernel_name, dtype, cells, args, shape):
    """Launches a 1-D kernel with one thread per cell (pooling, the split-K reduction; blocks of POOL_THREADS, which
    is GEMM_THREADS too), grid-stride beyond MAX_POOL_BLOCKS blocks."""
    if cells:
        grid, block = (min(_cdiv(cells, POOL_THREADS), MAX_POOL_BLOCKS),), (POOL_THREADS,)
        if _log.enabled():
            _log.launch(_MODULES[module_name].instance(kernel_name, dtype), module_name, grid, block, shape)
        _kernel(module_name, kernel_name, dtype)(grid, block, args)


def _launch_pool(kernel_name, dtype, cells, args, shape):
    _launch_cells("pool", kernel_name, dtype, cells, args, shape)


def _compute_dtype(dtype):
    """The dtype our CUDA-core kernels compute ``dtype`` in: float16 and bfloat16 compute in float32."""
    if dtype.name in KERNEL_DTYPES:
        return dtype
    if _is_float(dtype):
        return np.dtype(np.float32)
    raise TypeError(f"cuflow's GPU kernels take floating-point arrays, got {dtype}")


def _contiguous(dtype, *arrays):
    return tuple(cupy.ascontiguousarray(a, dtype=dtype) for a in arrays)


def _out_size(size, pads, window, stride, dilation=1):
    """Output length of a sliding window: TensorFlow's (size + pads - dilated window) // stride + 1."""
    return (size + sum(pads) - ((window - 1) * dilation + 1)) // stride + 1


# --- matmul -------------------------------------------------------------------------------------------------------
def matmul(a, b, *, transpose_a=False, transpose_b=False):
    """Batched matrix product ``op(a) @ op(b)`` with ``op`` an optional transpose of the last two axes.

    Args:
        a: ``(..., M, K)``, or ``(..., K, M)`` with ``transpose_a``.
        b: ``(..., K, N)``, or ``(..., N, K)`` with ``transpose_b``.
        transpose_a, transpose_b: read the operand transposed (the kernel indexes it so; nothing is copied).

    Returns:
        ``(..., M, N)``; leading batch axes broadcast like ``numpy.matmul``.
    """
    dtype = cupy.result_type(a, b)
    if not _is_float(dtype):  # integers, bools, complex: CuPy's own matmul, our kernels are float only
        return cupy.matmul(a.swapaxes(-1, -2) if transpose_a else a, b.swapaxes(-1, -2) if transpose_b else b)
    return _gemm(a, b, transpose_a, transpose_b, None, None, "linear", dtype)


def fused_matmul(a, b, bias=None, residual=None, *, activation="linear", transpose_a=False, transpose_b=False):
    """``activation(op(a) @ op(b) + bias + residual)`` in one GEMM: the epilogue adds and activates in registers.

    Args:
        a, b, transpose_a, transpose_b: as :func:`matmul` (floating dtypes).
        bias: ``(N,)``, added to every row; None for none.
        residual: broadcastable to the result ``(..., M, N)``, added before the activation; None for none.
        activation: ``"linear"``, ``"relu"``, ``"gelu"`` (exact, erf), ``"sigmoid"`` or ``"tanh"``.

    Returns:
        ``(..., M, N)`` in the operands' dtype.
    """
    dtype = cupy.result_type(a, b)
    if not _is_float(dtype):
        raise TypeError(f"fused_matmul: a and b must be floating-point, got {a.dtype} and {b.dtype}")
    return _gemm(a, b, transpose_a, transpose_b, bias, residual, activation, dtype)


def _is_float(dtype):
    return dtype.kind == "f" or dtype.name == "bfloat16"


def _activation_code(activation, what="fused_matmul"):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{what}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]


def _epilogue_args(bias, residual, out, compute, activation):
    """(bias, residual, flags) kernel arguments of the fused epilogue, and its description for the kernel log
    (None when it does nothing). ``out`` stands in for a missing bias or residual (the flags say it is not read)."""
    flags, bias_arg, residual_arg = 0, out, out
    if bias is not None:
        bias_arg, flags = cupy.ascontiguousarray(bias, dtype=compute), flags | EPILOGUE_BIAS
    if residual is not None:
        residual_arg = cupy.ascontiguousarray(cupy.broadcast_to(residual, out.shape), dtype=compute)
        flags |= EPILOGUE_RESIDUAL
    parts = ["bias"] * (bias is not None) + ["residual"] * (residual is not None) + [activation]
    described = "+".join(parts) if flags or activation != "linear" else None
    return (bias_arg, residual_arg, flags), described


def _tf32_enabled():
    from .. import config  # noqa: PLC0415  (config imports the devices layer, which imports this package)
    return config.experimental.tensor_float_32_execution_enabled()


def _mma_module(base, precision):
    """(module name, tiling) of tensor-core module ``base`` ("matmul_mma", "conv2d_mma" or "conv2d_mma_filter") for
    ``precision``: the table's (MMA_PRECISIONS for the GEMM, CONV_MMA_PRECISIONS for the convolutions), or the tiling
    CUFLOW_MMA_TILING / CUFLOW_CONV_MMA_TILING names (``BMxBNxBK-cpSTAGES``), whose module is built on first use
    (benchmark sweeps; the table's tilings are the ones compile.py checks)."""
    env = MMA_TILING_ENV if base == "matmul_mma" else CONV_MMA_TILING_ENV
    table = MMA_PRECISIONS if base == "matmul_mma" else CONV_MMA_PRECISIONS
    forced = os.environ.get(env)
    if not forced:
        return base, table[precision][1]
    try:
        sizes, stages = forced.split("-cp")
        bm, bn, bk = (int(v) for v in sizes.split("x"))
        tiling = MmaTiling(bm, bn, bk, int(stages))
    except ValueError:
        raise ValueError(f"{env} must read BMxBNxBK-cpSTAGES (e.g. 128x128x32-cp3), got {forced!r}") from None
    name = f"{base}_{tiling.name}"
    if name not in _MODULES:
        default = _MODULES[base]
        keys = [key for key, _ in default.dtypes]
        _MODULES[name] = KernelModule(
            name, default.files, default.kernels,
            dtypes=tuple((key, f"{table[key][0]}, {tiling}") for key in keys),
            shared=tuple((key, tiling.shared_bytes(4 if key == "tf32" else 2)) for key in keys))
    return name, tiling


def _mma_gemm(precision, m=0, n=0, batches=1):
    """(module name, tiling) of the tensor-core GEMM for ``precision`` and an m x n result (see _mma_module): the
    128 x 256 tiling of ``matmul_mma_large`` for 16-bit problems with at least one full wave of its tiles (one per
    SM; measured faster at 4096^3 and 8192^3, compile.py), else the table's. The crossover was not measured: below a
    wave the bigger tiles leave SMs idle that 128 x 128 ones would fill."""
    module_name, tiling = _mma_module("matmul_mma", precision)
    large = MMA_LARGE_PRECISIONS.get(precision)
    if module_name == "matmul_mma" and large is not None:
        tiles = _cdiv(m, large[1].bm) * _cdiv(n, large[1].bn) * batches
        if tiles >= _sm_count():
            return "matmul_mma_large", large[1]
    return module_name, tiling


def _gemm_kernel(dtype, m, n, k, ta, tb, batches):
    """(compute dtype, kernel, module name, tiling) of the GEMM that runs this problem.

    - bfloat16 / float16 with every leading dimension a multiple of 8: the tensor-core GEMM (``gemm_mma``);
    - float32 with TF32 enabled and leading dimensions multiples of 4: the tensor-core GEMM in TF32;
    - float32 with leading dimensions multiples of 4: the cp.async-pipelined SGEMM of the tiling GEMM_TABLE picks
      (where one exists and CUFLOW_GEMM_PIPELINE is not 0);
    - anything else: matmul.cu's register-blocked GEMM (2-byte floats computed in float32).
    """
    lda, ldb = (m if ta else k), (k if tb else n)
    if dtype.name in ("bfloat16", "float16") and lda % 8 == 0 and ldb % 8 == 0:
        module_name, tiling = _mma_gemm(dtype.name, m, n, batches)
        return dtype, "gemm_mma", module_name, tiling, dtype.name
    compute = _compute_dtype(dtype)
    aligned = compute.name == "float32" and lda % 4 == 0 and ldb % 4 == 0
    if aligned and _tf32_enabled():
        module_name, tiling = _mma_gemm("tf32")
        return compute, "gemm_mma", module_name, tiling, "tf32"
    tiling, _ = _gemm_plan(m, n, k, batches)
    forced = os.environ.get(GEMM_TILING_ENV, "")
    pipelined = FORCEABLE_PIPELINED.get(forced) if forced else PIPELINED.get((tiling.bm, tiling.bn))
    if forced:
        use = pipelined is not None
    else:
        use = pipelined is not None and os.environ.get(GEMM_PIPELINE_ENV, "1") != "0"
    if aligned and use:
        return compute, "gemm_pipelined", gemm_module_name("matmul", pipelined), pipelined, compute.name
    return compute, "gemm", gemm_module_name("matmul", tiling), tiling, compute.name


def _aligned16(*arrays):
    return all(x.data.ptr % 16 == 0 for x in arrays)


def _gemm(a, b, ta, tb, bias, residual, activation, dtype):
    act = _activation_code(activation)
    m, k = (a.shape[-1], a.shape[-2]) if ta else a.shape[-2:]
    n = b.shape[-2] if tb else b.shape[-1]
    batch_shape = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    batches = math.prod(batch_shape)
    compute, kernel, module_name, tiling, key = _gemm_kernel(dtype, m, n, k, ta, tb, batches)
    if kernel in ("gemm", "gemm_pipelined") and batches == 1 and not os.environ.get(GEMM_TILING_ENV):
        split = _split_k_plan(m, n, k, _sm_count())
        if split is not None:
            return _gemm_split_k(a, b, ta, tb, bias, residual, activation, dtype, compute, batch_shape, *split)
    a, stride_a = _batched_operand(a, batch_shape, compute)
    b, stride_b = _batched_operand(b, batch_shape, compute)
    if kernel != "gemm" and not _aligned16(a, b):  # a view at an odd offset: 16-byte copies would fault
        a, b = cupy.array(a, copy=True), cupy.array(b, copy=True)
    out = cupy.empty(batch_shape + (m, n), dtype=compute)
    (bias_arg, residual_arg, flags), epilogue = _epilogue_args(bias, residual, out, compute, activation)
    args = (a, b, out, *_i32(m, n, k, ta, tb, batches), np.int64(stride_a), np.int64(stride_b), bias_arg,
            residual_arg, *_i32(flags, act))
    shape = {"m": m, "n": n, "k": k, "batches": batches, "op": ("T" if ta else "N") + ("T" if tb else "N")}
    if epilogue:
        shape["epilogue"] = epilogue
    _launch_gemm("matmul", kernel, key, tiling, m, n, args, splits=batches, shape=shape, module_name=module_name)
    return out.astype(dtype, copy=False)


def _gemm_split_k(a, b, ta, tb, bias, residual, activation, dtype, compute, batch_shape, tiling, slices):
    """One product as ``slices`` K-slice GEMMs into a (slices, m, n) buffer, then their sum through the epilogue."""
    m, k = (a.shape[-1], a.shape[-2]) if ta else a.shape[-2:]
    n = b.shape[-2] if tb else b.shape[-1]
    a, b = _contiguous(compute, a.reshape(a.shape[-2:]), b.reshape(b.shape[-2:]))
    chunk = _cdiv(k, slices)
    slices = _cdiv(k, chunk)  # no empty slice
    partial = cupy.empty((slices, m, n), dtype=compute)
    shape = {"m": m, "n": n, "k": k, "k_slices": slices, "op": ("T" if ta else "N") + ("T" if tb else "N")}
    _launch_gemm("matmul_split_k", "gemm_split_k", compute.name, tiling, m, n,
                 (a, b, partial, *_i32(m, n, k, ta, tb, chunk)), splits=slices, shape=shape)
    out = cupy.empty(batch_shape + (m, n), dtype=compute)
    (bias_arg, residual_arg, flags), epilogue = _epilogue_args(bias, residual, out, compute, activation)
    args = (partial, out, *_i32(slices, m, n), bias_arg, residual_arg, *_i32(flags, _activation_code(activation)))
    _launch_cells("matmul_split_k_reduce", "gemm_split_k_reduce", compute.name, m * n, args,
                  dict(shape, epilogue=epilogue or "none"))
    return out.astype(dtype, copy=False)


def _batched_operand(x, batch_shape, dtype):
    """``x`` as a contiguous stack of matrices, and its batch stride in elements (0: one matrix serves all)."""
    x = cupy.ascontiguousarray(x, dtype=dtype)
    own_batches = math.prod(x.shape[:-2])
    if own_batches == 1:
        return x, 0
    if own_batches != math.prod(batch_shape):  # broadcast along some batch axes: no single stride, materialize
        x = cupy.ascontiguousarray(cupy.broadcast_to(x, batch_shape + x.shape[-2:]))
    return x, x.shape[-2] * x.shape[-1]


# --- conv2d -------------------------------------------------------------------------------------------------------
def _conv_geometry(input_shape, filter_shape, output_shape, strides, padding, dilations):
    """conv2d.cu's ConvGeometry, as its 15 int arguments."""
    n, h, w, c = input_shape
    kh, kw, _, f = filter_shape
    _, oh, ow, _ = output_shape
    return _i32(n, h, w, c, kh, kw, f, oh, ow, *strides, padding[0][0], padding[1][0], *dilations)


def _conv_shape(input_shape, filter_shape, strides, padding, dilations):
    return (f"input={tuple(input_shape)} filter={tuple(filter_shape)} strides={tuple(strides)} "
            f"padding={tuple(map(tuple, padding))} dilations={tuple(dilations)}")


def conv2d(x, w, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1)):
    """2-D convolution (cross-correlation, like TensorFlow) of NHWC ``x`` with HWIO ``w``; returns NHWC.

    ``padding`` is explicit zero padding ``((top, bottom), (left, right))``.
    """
    return fused_conv2d(x, w, strides=strides, padding=padding, dilations=dilations)


def fused_conv2d(x, w, bias=None, residual=None, *, activation="linear", strides=(1, 1), padding=((0, 0), (0, 0)),
                 dilations=(1, 1)):
    """``activation(conv2d(x, w) + bias + residual)`` in one kernel: the epilogue adds and activates in registers.

    Args:
        x, w, strides, padding, dilations: as :func:`conv2d` (floating dtypes).
        bias: ``(F,)``, added to every output cell; None for none.
        residual: broadcastable to the output ``(N, OH, OW, F)``, added before the activation; None for none.
        activation: ``"linear"``, ``"relu"``, ``"gelu"`` (exact, erf), ``"sigmoid"`` or ``"tanh"``.

    Returns:
        ``(N, OH, OW, F)`` in ``x``'s dtype. The kernel is :func:`_conv_forward_kernel`'s choice.
    """
    act = _activation_code(activation, "fused_conv2d")
    dtype = x.dtype
    if not _is_float(dtype):
        raise TypeError(f"fused_conv2d: x must be floating-point, got {dtype}")
    (n, h, wd, c), (kh, kw, _, f) = x.shape, w.shape
    oh = _out_size(h, padding[0], kh, strides[0], dilations[0])
    ow = _out_size(wd, padding[1], kw, strides[1], dilations[1])
    m, k = n * oh * ow, kh * kw * c
    _i32(m, f, k + 64)  # + 64: the tensor-core copier's k may run one tile past K
    compute, kernel, module_name, tiling, key = _conv_forward_kernel(dtype, m, f, k, c)
    x, w = _contiguous(compute, x, w)
    if kernel == "conv2d_forward_mma" and not _aligned16(x, w):  # a view at an odd offset: 16-byte copies would fault
        x, w = cupy.array(x, copy=True), cupy.array(w, copy=True)
    out = cupy.empty((n, oh, ow, f), dtype=compute)
    (bias_arg, residual_arg, flags), epilogue = _epilogue_args(bias, residual, out, compute, activation)
    geometry = _conv_geometry(x.shape, w.shape, out.shape, strides, padding, dilations)
    shape = _conv_shape(x.shape, w.shape, strides, padding, dilations) + (f" epilogue={epilogue}" if epilogue else "")
    _launch_gemm("conv2d", kernel, key, tiling, m, f, (x, w, out, bias_arg, residual_arg, *_i32(flags, act), *geometry),
                 shape=shape, module_name=module_name)
    return out.astype(dtype, copy=False)


def _conv_forward_kernel(dtype, m, f, k, channels):
    """(compute dtype, kernel, module name, tiling, instance key) of the convolution forward for this problem.

    - bfloat16 / float16 with C and F multiples of 8: tensor cores (``conv2d_forward_mma``, conv2d_mma.cu);
    - float32 with at most DIRECT_CONV.max_taps taps (KH*KW*C, e.g. the 1-channel seed layer): ``conv2d_direct``
      (float32 keeps FP32 precision here even with TF32 enabled: one K tile holds the whole sum);
    - float32 with TF32 enabled and C, F multiples of 4: tensor cores in TF32;
    - anything else: conv2d.cu's implicit GEMM of the tiling GEMM_TABLE picks (2-byte floats computed in float32).
    ``CUFLOW_GEMM_TILING`` forces its tiling on the last two (the direct kernel then is not used).
    """
    mma = _conv_mma_precision(dtype, channels, f)
    if mma in ("bfloat16", "float16"):
        return (dtype, "conv2d_forward_mma", *_mma_module("conv2d_mma", mma), mma)
    compute = _compute_dtype(dtype)
    forced = os.environ.get(GEMM_TILING_ENV)
    if compute.name == "float32" and k <= DIRECT_CONV.max_taps and not forced:
        return compute, "conv2d_direct", "conv2d_direct", DIRECT_CONV, compute.name
    if mma == "tf32":
        return (compute, "conv2d_forward_mma", *_mma_module("conv2d_mma", "tf32"), "tf32")
    tiling, _ = _gemm_plan(m, f, k)
    return compute, "conv2d_forward", gemm_module_name("conv2d", tiling), tiling, compute.name


def _conv_mma_precision(dtype, channels, f):
    """The tensor-core precision (a key of CONV_MMA_PRECISIONS) of a convolution of ``dtype`` with C = ``channels`` and
    F = ``f``, or None: bfloat16 / float16 with C and F multiples of 8, float32 with TF32 enabled and C and F
    multiples of 4 (16-byte chunks of channels, conv2d_mma.cu)."""
    if dtype.name in ("bfloat16", "float16") and channels % 8 == 0 and f % 8 == 0:
        return dtype.name
    if dtype.name == "float32" and channels % 4 == 0 and f % 4 == 0 and _tf32_enabled():
        return "tf32"
    return None


def conv2d_backward_input(grad_out, w, input_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                          dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its input: returns ``dx`` of shape ``input_shape``.

    On tensor cores (``conv2d_backward_input_mma``) under the forward's conditions (:func:`_conv_mma_precision`),
    else conv2d.cu's register-blocked kernel (2-byte floats computed in float32).
    """
    dtype = grad_out.dtype
    n, h, wd, c = input_shape
    kh, kw, _, f = w.shape
    m, k = n * h * wd, kh * kw * f
    _i32(m, c, k + 64)  # + 64: the tensor-core copier's k may run one tile past K
    mma = _conv_mma_precision(dtype, c, f)
    if mma:
        compute = np.dtype(np.float32) if mma == "tf32" else dtype
        kernel, key = "conv2d_backward_input_mma", mma
        module_name, tiling = _mma_module("conv2d_mma", mma)
    else:
        compute, kernel = _compute_dtype(dtype), "conv2d_backward_input"
        tiling, _ = _gemm_plan(m, c, k)
        module_name, key = gemm_module_name("conv2d", tiling), compute.name
    grad_out, w = _contiguous(compute, grad_out, w)
    if mma and not _aligned16(grad_out, w):  # a view at an odd offset: 16-byte copies would fault
        grad_out, w = cupy.array(grad_out, copy=True), cupy.array(w, copy=True)
    dx = cupy.empty(tuple(input_shape), dtype=compute)
    geometry = _conv_geometry(input_shape, w.shape, grad_out.shape, strides, padding, dilations)
    _launch_gemm("conv2d", kernel, key, tiling, m, c, (grad_out, w, dx, *geometry),
                 shape=_conv_shape(input_shape, w.shape, strides, padding, dilations), module_name=module_name)
    return dx.astype(dtype, copy=False)


def conv2d_backward_filter(x, grad_out, filter_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                           dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its filter: returns ``dw`` of shape ``filter_shape``.

    The reduction over N*OH*OW is split into K slices summed afterwards (deterministic, no atomics; float32 for
    2-byte floats).
    Under the forward's tensor-core conditions (:func:`_conv_mma_precision`) it runs ``conv2d_backward_filter_mma``
    in TF32 for every precision: bfloat16 / float16 inputs go in as float32 copies, which TF32 holds exactly, so the
    products are exact and the partial sums stay float32. Else conv2d.cu's register-blocked kernel.
    """
    dtype = x.dtype
    kh, kw, c, f = filter_shape
    m, k = kh * kw * c, math.prod(grad_out.shape[:3])
    _i32(k + 64)  # the kernels index output cells with int (+ 64: the tensor-core copier may run one tile past K)
    if _conv_mma_precision(dtype, c, f):
        compute = np.dtype(np.float32)
        module_name, tiling = _mma_module("conv2d_mma_filter", "tf32")
        kernel, key = "conv2d_backward_filter_mma", "tf32"
        splits = _k_slices(tiling, m, f, k)
    else:
        compute = _compute_dtype(dtype)
        tiling, splits = _gemm_plan(m, f, k, split_k=True)
        kernel, module_name, key = "conv2d_backward_filter", gemm_module_name("conv2d", tiling), compute.name
    chunk = max(1, _cdiv(k, splits))
    splits = max(1, _cdiv(k, chunk))  # no empty slice
    x, grad_out = _contiguous(compute, x, grad_out)
    if kernel.endswith("_mma") and not _aligned16(x, grad_out):  # a view at an odd offset: 16-byte copies would fault
        x, grad_out = cupy.array(x, copy=True), cupy.array(grad_out, copy=True)
    partial = cupy.empty((splits, *filter_shape), dtype=compute)
    geometry = _conv_geometry(x.shape, filter_shape, grad_out.shape, strides, padding, dilations)
    args = (x, grad_out, partial, *_i32(chunk), *geometry)
    _launch_gemm("conv2d", kernel, key, tiling, m, f, args, splits=splits, module_name=module_name,
                 shape=f"{_conv_shape(x.shape, filter_shape, strides, padding, dilations)} k_slices={splits}")
    dw = partial[0] if splits == 1 else partial.sum(axis=0)
    return dw.astype(dtype, copy=False)


# --- pooling ------------------------------------------------------------------------------------------------------
def _pool_geometry(input_shape, ksize, strides, padding):
    """pool.cu's PoolGeometry as its 12 int arguments, and the output shape."""
    n, h, w, c = input_shape
    oh = _out_size(h, padding[0], ksize[0], strides[0])
    ow = _out_size(w, padding[1], ksize[1], strides[1])
    return _i32(n, h, w, c, oh, ow, *ksize, *strides, padding[0][0], padding[1][0]), (n, oh, ow, c)


def _pool_forward(kernel_name, x, ksize, strides, padding):
    dtype, compute = x.dtype, _compute_dtype(x.dtype)
    (x,) = _contiguous(compute, x)
    geometry, out_shape = _pool_geometry(x.shape, ksize, strides, padding)
    out = cupy.empty(out_shape, dtype=compute)
    _launch_pool(kernel_name, compute, out.size, (x, out, *geometry),
                 {"input": tuple(x.shape), "ksize": tuple(ksize), "strides": tuple(strides)})
    return out.astype(dtype, copy=False)


def max_pool2d(x, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Max pooling of NHWC ``x`` over ``ksize`` windows; padded cells never win (they act as -inf)."""
    return _pool_forward("max_pool2d", x, ksize, strides, padding)


def avg_pool2d(x, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Average pooling of NHWC ``x``: each window's mean over its non-padded cells (TensorFlow's 'SAME')."""
    return _pool_forward("avg_pool2d", x, ksize, strides, padding)


def max_pool2d_backward(x, out, grad_out, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its first (row-major) cell equal to the max."""
    dtype, compute = grad_out.dtype, _compute_dtype(grad_out.dtype)
    x, out, grad_out = _contiguous(compute, x, out, grad_out)
    geometry, _ = _pool_geometry(x.shape, ksize, strides, padding)
    dx = cupy.empty(x.shape, dtype=compute)
    _launch_pool("max_pool2d_backward", compute, dx.size, (x, out, grad_out, dx, *geometry),
                 {"input": tuple(x.shape), "ksize": tuple(ksize), "strides": tuple(strides)})
    return dx.astype(dtype, copy=False)


def avg_pool2d_backward(grad_out, input_shape, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Gradient of :func:`avg_pool2d`: returns ``dx`` of shape ``input_shape``."""
    dtype, compute = grad_out.dtype, _compute_dtype(grad_out.dtype)
    (grad_out,) = _contiguous(compute, grad_out)
    geometry, _ = _pool_geometry(input_shape, ksize, strides, padding)
    dx = cupy.empty(tuple(input_shape), dtype=compute)
    _launch_pool("avg_pool2d_backward", compute, dx.size, (grad_out, dx, *geometry),
                 {"input": tuple(input_shape), "ksize": tuple(ksize), "strides": tuple(strides)})
    return dx.astype(dtype, copy=False)
