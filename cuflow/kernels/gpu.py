"""GPU primitives: cuflow's own CUDA kernels (``matmul.cu``, ``conv2d.cu``, ``pool.cu``) launched through CuPy.

The twin of ``cpu.py``: the same functions with the same signatures, CuPy arrays in and out. Shapes are checked by
the ops layer above; here we only make operands contiguous, allocate outputs and launch. The kernels index every
legal shape in bounds (sizes up to int32; offsets are 64-bit inside the kernels).

Dtypes: float32 and float64 run our kernels. Other floating dtypes (float16) are computed in float32 by the same
kernels and cast back. Integer, bool and complex ``matmul`` use ``cupy.matmul``: only the float kernels are ours
(and only ours can be captured in a CUDA graph). Convolution and pooling take floating dtypes only.
"""
import functools
import math
import os

import numpy as np

from .compile import (GEMM_THREADS, GEMM_TILINGS, KERNEL_DTYPES, MODULES, NVRTC_OPTIONS, POOL_THREADS,
                      gemm_module_name, module_source)
from .cuda import cupy as _get_cupy

cupy = _get_cupy()

__all__ = [
    "cupy", "matmul", "conv2d", "conv2d_backward_input", "conv2d_backward_filter",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
]

# --- Tiling and launch choices ------------------------------------------------------------------------------------
# The GEMM tilings (compile.GEMM_TILINGS) and POOL_THREADS come from compile.py, where the kernel instances that bake
# them in are listed and compile-checked. Which tiling a GEMM (matmul or convolution) runs is decided here, from this
# table: the one with the least estimated time, counted in waves (every SM running `per_sm` blocks) of padded tiles
# at the tiling's full-GPU speed. Bigger tiles compute faster, but waste work on ragged edges and leave SMs idle on
# small grids; that trade is the whole choice. Speeds: float32 SGEMM 4096^3 with the tiling forced, on an H200
# (2026-11-26); `per_sm` follows from each kernel's registers (65536 per SM, 256 threads per block).
GEMM_TABLE = (  # (tiling, blocks resident per SM, TFLOP/s on a full GPU)
    (GEMM_TILINGS[0], 1, 31.5),   # 128 x 128 x 16, 8 x 8 per thread (~230 registers): big M and N
    (GEMM_TILINGS[1], 2, 28.8),   # 128 x 64 x 8, 8 x 4 per thread (128 registers): big M, N <= 64 or ragged
    (GEMM_TILINGS[2], 2, 22.7),   # 64 x 64 x 16, 4 x 4 per thread: medium
    (GEMM_TILINGS[3], 5, 6.2),    # 16 x 16 x 16, one output per thread: tiny
)
GEMM_TILING_ENV = "CUFLOW_GEMM_TILING"  # e.g. "64x64": force one tiling everywhere (tests, benchmarks)
DEFAULT_SM_COUNT = 132        # when the device cannot be asked (an H100's and an H200's count)
MAX_GRID_YZ = 65535           # CUDA's limit on gridDim.y and gridDim.z (the gemm kernel loops over extra batches)
MAX_POOL_BLOCKS = 1 << 20     # pooling kernels loop grid-stride beyond this many blocks
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
    names = {t.name: t for t in GEMM_TILINGS}
    if forced not in names:
        raise ValueError(f"{GEMM_TILING_ENV} must be one of {sorted(names)}, got {forced!r}")
    return names[forced], _k_slices(names[forced], m, n, k) if split_k else 1


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


def _sm_count():
    try:
        return _device_sm_count(cupy.cuda.runtime.getDevice())
    except Exception:  # a stand-in CuPy that cannot say
        return DEFAULT_SM_COUNT


@functools.lru_cache(maxsize=None)
def _device_sm_count(device_id):
    return int(cupy.cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"])


def _launch_gemm(family, kernel, dtype, tiling, m, n, args, splits=1):
    """Launches ``kernel`` of GEMM ``family`` built for ``tiling`` over an m x n result; z = batches or K slices."""
    if m == 0 or n == 0 or splits == 0:
        return
    _i32(m, n)
    if _cdiv(n, tiling.bn) > MAX_GRID_YZ:
        raise ValueError(f"cuflow's GPU GEMM takes at most {MAX_GRID_YZ * tiling.bn} output columns, got {n}")
    grid = (_cdiv(m, tiling.bm), _cdiv(n, tiling.bn), min(splits, MAX_GRID_YZ))
    _kernel(gemm_module_name(family, tiling), kernel, dtype)(grid, (GEMM_THREADS,), args)


def _launch_pool(kernel, cells, args):
    """Launches a pooling kernel with one thread per cell, grid-stride beyond MAX_POOL_BLOCKS blocks."""
    if cells:
        kernel((min(_cdiv(cells, POOL_THREADS), MAX_POOL_BLOCKS),), (POOL_THREADS,), args)


def _compute_dtype(dtype):
    """The dtype our kernels compute ``dtype`` in: float16 computes in float32 (no half kernels yet)."""
    if dtype.name in KERNEL_DTYPES:
        return dtype
    if dtype.kind == "f":
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
    if dtype.kind != "f":  # integers, bools, complex: CuPy's own matmul, our kernels are float only
        return cupy.matmul(a.swapaxes(-1, -2) if transpose_a else a, b.swapaxes(-1, -2) if transpose_b else b)
    compute = _compute_dtype(dtype)
    m, k = (a.shape[-1], a.shape[-2]) if transpose_a else a.shape[-2:]
    n = b.shape[-2] if transpose_b else b.shape[-1]
    batch_shape = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    batches = math.prod(batch_shape)
    a, stride_a = _batched_operand(a, batch_shape, compute)
    b, stride_b = _batched_operand(b, batch_shape, compute)
    out = cupy.empty(batch_shape + (m, n), dtype=compute)
    args = (a, b, out, *_i32(m, n, k, transpose_a, transpose_b, batches), np.int64(stride_a), np.int64(stride_b))
    tiling, _ = _gemm_plan(m, n, k, batches)
    _launch_gemm("matmul", "gemm", compute, tiling, m, n, args, splits=batches)
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


def conv2d(x, w, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1)):
    """2-D convolution (cross-correlation, like TensorFlow) of NHWC ``x`` with HWIO ``w``; returns NHWC.

    ``padding`` is explicit zero padding ``((top, bottom), (left, right))``.
    """
    dtype, compute = x.dtype, _compute_dtype(x.dtype)
    x, w = _contiguous(compute, x, w)
    (n, h, wd, _), (kh, kw, _, f) = x.shape, w.shape
    oh = _out_size(h, padding[0], kh, strides[0], dilations[0])
    ow = _out_size(wd, padding[1], kw, strides[1], dilations[1])
    out = cupy.empty((n, oh, ow, f), dtype=compute)
    geometry = _conv_geometry(x.shape, w.shape, out.shape, strides, padding, dilations)
    m, k = n * oh * ow, kh * kw * x.shape[3]
    tiling, _ = _gemm_plan(m, f, k)
    _launch_gemm("conv2d", "conv2d_forward", compute, tiling, m, f, (x, w, out, *geometry))
    return out.astype(dtype, copy=False)


def conv2d_backward_input(grad_out, w, input_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                          dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its input: returns ``dx`` of shape ``input_shape``."""
    dtype, compute = grad_out.dtype, _compute_dtype(grad_out.dtype)
    grad_out, w = _contiguous(compute, grad_out, w)
    n, h, wd, c = input_shape
    dx = cupy.empty(tuple(input_shape), dtype=compute)
    geometry = _conv_geometry(input_shape, w.shape, grad_out.shape, strides, padding, dilations)
    m, k = n * h * wd, w.shape[0] * w.shape[1] * w.shape[3]
    tiling, _ = _gemm_plan(m, c, k)
    _launch_gemm("conv2d", "conv2d_backward_input", compute, tiling, m, c, (grad_out, w, dx, *geometry))
    return dx.astype(dtype, copy=False)


def conv2d_backward_filter(x, grad_out, filter_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                           dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its filter: returns ``dw`` of shape ``filter_shape``.

    The reduction over N*OH*OW is split into K slices summed afterwards (deterministic, no atomics).
    """
    dtype, compute = x.dtype, _compute_dtype(x.dtype)
    x, grad_out = _contiguous(compute, x, grad_out)
    kh, kw, c, f = filter_shape
    m, k = kh * kw * c, math.prod(grad_out.shape[:3])
    _i32(k)  # the kernel indexes output cells with int
    tiling, splits = _gemm_plan(m, f, k, split_k=True)
    chunk = max(1, _cdiv(k, splits))
    splits = max(1, _cdiv(k, chunk))  # no empty slice
    partial = cupy.empty((splits, *filter_shape), dtype=compute)
    geometry = _conv_geometry(x.shape, filter_shape, grad_out.shape, strides, padding, dilations)
    args = (x, grad_out, partial, *_i32(chunk), *geometry)
    _launch_gemm("conv2d", "conv2d_backward_filter", compute, tiling, m, f, args, splits=splits)
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
    _launch_pool(_kernel("pool", kernel_name, compute), out.size, (x, out, *geometry))
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
    _launch_pool(_kernel("pool", "max_pool2d_backward", compute), dx.size, (x, out, grad_out, dx, *geometry))
    return dx.astype(dtype, copy=False)


def avg_pool2d_backward(grad_out, input_shape, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Gradient of :func:`avg_pool2d`: returns ``dx`` of shape ``input_shape``."""
    dtype, compute = grad_out.dtype, _compute_dtype(grad_out.dtype)
    (grad_out,) = _contiguous(compute, grad_out)
    geometry, _ = _pool_geometry(input_shape, ksize, strides, padding)
    dx = cupy.empty(tuple(input_shape), dtype=compute)
    _launch_pool(_kernel("pool", "avg_pool2d_backward", compute), dx.size, (grad_out, dx, *geometry))
    return dx.astype(dtype, copy=False)
