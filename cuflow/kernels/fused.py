"""Launchers of cuflow's fused GPU kernels: multi-tensor optimizer updates (``optim.cu``), softmax cross-entropy
forward and backward (``softmax_ce.cu``) and the Philox random generator (``philox.cu``).

CuPy arrays in and out, like ``gpu.py`` (whose module loading this reuses). The callers decide when to come here:
``cuflow/optim`` for variables on the GPU, ``cuflow/ops/nn.py`` for logits on the GPU, ``cuflow/ops/random.py`` for
draws on the GPU, each when the dtype is one our kernels are built for (``KERNEL_DTYPES``); their NumPy code is the
reference these kernels follow. Importing this module needs a GPU (or the mock GPU), as ``gpu.py`` does.
"""
import math

import numpy as np

from . import gpu as _gpu
from . import log as _log

cupy = _gpu.cupy

__all__ = [
    "TensorList", "tensor_list", "optimizer_update", "sparse_softmax_cross_entropy",
    "sparse_softmax_cross_entropy_backward", "softmax_cross_entropy", "softmax_cross_entropy_backward",
    "philox_uniform", "philox_normal", "philox_truncated_normal", "philox_blocks",
]

THREADS = 256            # OPTIM_THREADS, SOFTMAX_THREADS and PHILOX_THREADS of the .cu files
TABLE_COLUMNS = 5        # optim.cu: size, variable, three slots
MAX_SLOTS = TABLE_COLUMNS - 2
# Elements per chunk of the optimizer's tensor list, one block each (8 per thread): small enough that 10M parameters
# make ~5000 blocks, so the last partial wave of an H100's 132 x 8 resident blocks costs a few percent.
OPTIM_CHUNK = 2048
ROWS_PER_BLOCK = THREADS // 32  # softmax_ce.cu: one warp per row
MAX_BLOCKS = 1 << 20     # every kernel here loops grid-stride beyond this many blocks


def _launch(module, kernel, dtype, work_blocks, args, shape):
    """Launches ``kernel`` of ``module`` for ``dtype`` on ``work_blocks`` blocks (grid-stride beyond MAX_BLOCKS);
    ``shape`` (a dict) describes the problem for CUFLOW_KERNEL_LOG."""
    if work_blocks <= 0:
        return
    grid = (min(work_blocks, MAX_BLOCKS),)
    if _log.enabled():
        _log.launch(_gpu._MODULES[module].instance(kernel, dtype), module, grid, (THREADS,), shape)
    _gpu._kernel(module, kernel, dtype)(grid, (THREADS,), args)


# --- multi-tensor optimizer updates -------------------------------------------------------------------------------
class TensorList:
    """optim.cu's tensor list for a set of variables and their slots, on the device; built once and reused while
    the same arrays are updated (:func:`tensor_list`).

    Args:
        variables: device arrays of one dtype (float32 or float64), contiguous, updated in place.
        slots: one tuple of slot arrays per variable (at most 3, each the variable's shape and dtype), in the order
            the optimizer's kernel reads them.
        chunk: elements per chunk.
    """

    def __init__(self, variables, slots, chunk=None):
        self.chunk = OPTIM_CHUNK if chunk is None else int(chunk)
        self.dtype = np.dtype(variables[0].dtype)
        self.arrays = tuple(variables) + tuple(a for group in slots for a in group)
        self.sizes = tuple(int(v.size) for v in variables)
        table = np.zeros((len(variables), TABLE_COLUMNS), dtype=np.int64)
        for row, (var, own) in enumerate(zip(variables, slots)):
            if len(own) > MAX_SLOTS:
                raise ValueError(f"the fused optimizer kernels take at most {MAX_SLOTS} slots per variable, "
                                 f"got {len(own)}")
            for array in (var, *own):
                if array.dtype != self.dtype or not array.flags.c_contiguous or array.size != var.size:
                    raise ValueError(f"a tensor list holds contiguous {self.dtype} arrays of their variable's size; "
                                     f"got a {array.dtype} array of shape {array.shape} for a variable of shape "
                                     f"{var.shape}")
            table[row, :2 + len(own)] = [var.size] + [a.data.ptr for a in (var, *own)]
        chunks = [(row, first) for row, size in enumerate(self.sizes) for first in range(0, size, self.chunk)]
        self.n_chunks = len(chunks)
        _gpu._i32(self.n_chunks, self.chunk)
        self.table = cupy.asarray(table)
        self.chunks = cupy.asarray(np.array(chunks, dtype=np.int64).reshape(-1, 2))
        self.grad_pointers = None  # the last step's gradient addresses, and their device copy (grads_table)
        self.grads_table = None

    def grads(self, grads):
        """The device table of ``grads``' addresses: uploaded only when they differ from the last step's (CuPy's
        pool often hands a step's gradients the addresses of the previous step's). Never written in place, so a
        launch still reading the old table is safe."""
        pointers = np.fromiter((g.data.ptr for g in grads), dtype=np.int64, count=len(grads))
        if self.grad_pointers is None or not np.array_equal(pointers, self.grad_pointers):
            self.grads_table = cupy.asarray(pointers)
            self.grad_pointers = pointers
        return self.grads_table

    def matches(self, variables, slots, chunk=None):
        """True when this list was built for exactly these arrays (the same objects) and chunk size."""
        arrays = tuple(variables) + tuple(a for group in slots for a in group)
        return (self.chunk == (OPTIM_CHUNK if chunk is None else chunk) and len(arrays) == len(self.arrays)
                and all(a is b for a, b in zip(arrays, self.arrays)))


def tensor_list(variables, slots, cached=None):
    """``cached`` if it was built for these arrays, else a new :class:`TensorList`."""
    if cached is not None and cached.matches(variables, slots):
        return cached
    return TensorList(variables, slots)


def optimizer_update(kernel, tensors, grads, decay, scalars):
    """Runs optim.cu's ``kernel`` (``"adam_update"``...) once over every variable of ``tensors``.

    Args:
        kernel: the update kernel's name.
        tensors: the :class:`TensorList` of the variables and slots, updated in place.
        grads: one device array per variable, its shape (any dtype and layout: made contiguous in the list's dtype).
        decay: ``weight_decay * learning_rate`` for decoupled weight decay, or None.
        scalars: the kernel's own arguments after the tensor list, already NumPy scalars of the right types.
    """
    dtype = tensors.dtype
    grads = [cupy.ascontiguousarray(g, dtype=dtype) for g in grads]
    args = (tensors.table, tensors.chunks, np.int32(tensors.n_chunks), np.int32(tensors.chunk), tensors.grads(grads),
            np.int32(decay is not None), dtype.type(decay or 0.0), *scalars)
    _launch("optim", kernel, dtype, tensors.n_chunks, args,
            {"tensors": len(grads), "elements": sum(tensors.sizes), "chunks": tensors.n_chunks})


# --- softmax cross-entropy ----------------------------------------------------------------------------------------
def _rows(logits):
    rows, classes = math.prod(logits.shape[:-1]), logits.shape[-1]
    _gpu._i32(rows, classes, rows * classes)
    return np.int32(rows), np.int32(classes)


def _softmax_ce(kernel, logits, labels, grad=None):
    """Launches softmax_ce.cu's ``kernel``: the loss per row, or (with ``grad``, one value per row) the logits'
    gradient."""
    logits = cupy.ascontiguousarray(logits)
    labels = cupy.ascontiguousarray(labels, dtype=np.int64 if kernel.startswith("sparse") else logits.dtype)
    rows, classes = _rows(logits)
    if grad is None:
        out = cupy.empty(logits.shape[:-1], dtype=logits.dtype)
        args = (logits, labels, out, rows, classes)
    else:
        out = cupy.empty(logits.shape, dtype=logits.dtype)
        args = (logits, labels, cupy.ascontiguousarray(grad, dtype=logits.dtype), out, rows, classes)
    _launch("softmax_ce", kernel, logits.dtype, _gpu._cdiv(int(rows), ROWS_PER_BLOCK), args,
            {"rows": int(rows), "classes": int(classes)})
    return out


def sparse_softmax_cross_entropy(logits, labels):
    """``-log_softmax(logits)[..., labels]`` over the last axis; NaN where a label is outside ``[0, classes)``.

    Args:
        logits: ``(..., classes)``, float32 or float64, ``classes >= 1``.
        labels: integers of shape ``logits.shape[:-1]``.
    """
    return _softmax_ce("sparse_softmax_cross_entropy", logits, labels)


def sparse_softmax_cross_entropy_backward(logits, labels, grad):
    """``grad[..., None] * (softmax(logits) - one_hot(labels))``; NaN rows where a label is out of range."""
    return _softmax_ce("sparse_softmax_cross_entropy_backward", logits, labels, grad)


def softmax_cross_entropy(logits, labels):
    """``-sum(labels * log_softmax(logits), axis=-1)``; ``labels`` has ``logits``'s shape."""
    return _softmax_ce("softmax_cross_entropy", logits, labels)


def softmax_cross_entropy_backward(logits, labels, grad):
    """``grad[..., None] * (softmax(logits) * sum(labels, -1, keepdims=True) - labels)``."""
    return _softmax_ce("softmax_cross_entropy_backward", logits, labels, grad)


# --- Philox4x32-10 ------------------------------------------------------------------------------------------------
def philox_blocks(kind, count, dtype):
    """How many Philox blocks (counters) a draw of ``count`` values of ``kind`` takes: uniform and normal make 4
    float32 or 2 float64 values per block, truncated normal one value per block (see philox.cu)."""
    per_block = 4 if np.dtype(dtype) == np.float32 else 2
    return count if kind == "truncated_normal" else _gpu._cdiv(count, per_block)


def _stream_args(key, counter):
    return tuple(np.uint32((value >> shift) & 0xFFFFFFFF)
                 for value, shifts in ((key, (0, 32)), (counter, (0, 32, 64, 96))) for shift in shifts)


def _philox(kind, key, counter, count, dtype, extra, scale, shift):
    dtype = np.dtype(dtype)
    out = cupy.empty(count, dtype=dtype)
    blocks = philox_blocks(kind, count, dtype)
    args = (out, np.int64(count), *_stream_args(key, counter), *(dtype.type(v) for v in (*extra, scale, shift)))
    _launch("philox", f"philox_{kind}", dtype, _gpu._cdiv(blocks, THREADS), args,
            {"count": count, "blocks": blocks})
    return out


def philox_uniform(key, counter, count, dtype, offset=0.0, scale=1.0, shift=0.0):
    """``count`` uniform floats ``(k + offset) * 2**-bits`` from the blocks ``counter, counter + 1, ...`` of the
    stream ``key``, then ``* scale + shift``; offset 0 gives [0, 1), 1 gives (0, 1], 0.5 gives (0, 1)."""
    return _philox("uniform", key, counter, count, dtype, (offset,), scale, shift)


def philox_normal(key, counter, count, dtype, scale=1.0, shift=0.0):
    """``count`` standard normal floats (Box-Muller), then ``* scale + shift``."""
    return _philox("normal", key, counter, count, dtype, (), scale, shift)


def philox_truncated_normal(key, counter, count, dtype, scale=1.0, shift=0.0):
    """``count`` standard normal floats with ``|z| <= 2`` (value i from block ``counter + i``), then
    ``* scale + shift``."""
    return _philox("truncated_normal", key, counter, count, dtype, (), scale, shift)
