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

import numpy as np

from .compile import GEMM_TILE, KERNEL_DTYPES, MODULES, NVRTC_OPTIONS, POOL_THREADS, module_source
from .cuda import cupy as _get_cupy

cupy = _get_cupy()

__all__ = [
    "cupy", "matmul", "conv2d", "conv2d_backward_input", "conv2d_backward_filter",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
]

# --- Tiling and launch choices ------------------------------------------------------------------------------------
# GEMM_TILE (threads per block side of matmul and conv) and POOL_THREADS come from compile.py, where the kernel
# instances that bake them in are listed and compile-checked.
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


def _launch_gemm(kernel, m, n, args, splits=1):
    """Launches a tiled-GEMM kernel (matmul.cu's block scheme) over an m x n result; z = batches or K slices."""
    if m == 0 or n == 0 or splits == 0:
        return
    _i32(m, n)
    if _cdiv(n, GEMM_TILE) > MAX_GRID_YZ:
        raise ValueError(f"cuflow's GPU GEMM takes at most {MAX_GRID_YZ * GEMM_TILE} output columns, got {n}")
    kernel((_cdiv(m, GEMM_TILE), _cdiv(n, GEMM_TILE), min(splits, MAX_GRID_YZ)), (GEMM_TILE, GEMM_TILE, 1), args)


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
    _launch_gemm(_kernel("matmul", "gemm", compute), m, n, args, splits=batches)
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
    _launch_gemm(_kernel("conv2d", "conv2d_forward", compute), n * oh * ow, f, (x, w, out, *geometry))
    return out.astype(dtype, copy=False)


def conv2d_backward_input(grad_out, w, input_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                          dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its input: returns ``dx`` of shape ``input_shape``."""
    dtype, compute = grad_out.dtype, _compute_dtype(grad_out.dtype)
    grad_out, w = _contiguous(compute, grad_out, w)
    n, h, wd, c = input_shape
    dx = cupy.empty(tuple(input_shape), dtype=compute)
    geometry = _conv_geometry(input_shape, w.shape, grad_out.shape, strides, padding, dilations)
    _launch_gemm(_kernel("conv2d", "conv2d_backward_input", compute), n * h * wd, c, (grad_out, w, dx, *geometry))
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
    splits = max(1, min(_cdiv(SPLIT_K_TARGET_BLOCKS, _cdiv(m, GEMM_TILE) * _cdiv(f, GEMM_TILE)),
                        k // SPLIT_K_MIN_CHUNK, MAX_GRID_YZ))
    chunk = max(1, _cdiv(k, splits))
    splits = max(1, _cdiv(k, chunk))  # no empty slice
    partial = cupy.empty((splits, *filter_shape), dtype=compute)
    geometry = _conv_geometry(x.shape, filter_shape, grad_out.shape, strides, padding, dilations)
    args = (x, grad_out, partial, *_i32(chunk), *geometry)
    _launch_gemm(_kernel("conv2d", "conv2d_backward_filter", compute), m, f, args, splits=splits)
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
