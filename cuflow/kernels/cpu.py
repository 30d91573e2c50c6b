"""CPU primitives: the NumPy twin of ``kernels/gpu.py`` (same functions, same signatures, NumPy arrays).

Layouts follow TensorFlow: images NHWC, conv filters HWIO ``(KH, KW, C, F)``, padding given explicitly as zero
(or, for max pooling, -inf) cells ``((top, bottom), (left, right))``. Every function returns the dtype it was given;
half-precision inputs are computed in float32 (NumPy has no float16 BLAS, and float16 sums lose digits fast).

Why convolution is fast here (this is the CPU training path):

- im2col: :func:`_windows` is a strided *view* ``(N, OH, OW, KH, KW, C)`` of the padded input (no copy).
  :func:`_im2col` copies it a few images at a time into a contiguous ``(rows, KH*KW*C)`` matrix that one BLAS GEMM
  multiplies by the filter reshaped to ``(KH*KW*C, F)``. Chunks are ~2 MiB so the patch matrix is still in cache
  when the GEMM reads it; a whole-batch im2col goes to RAM and back (seed CNN layer 2 forward: ~45 ms vs ~25).
- backward filter: the same patch chunks, transposed, times ``grad_out``, summed over chunks.
- backward input (col2im): ``grad_out @ filter^T`` computed as KH*KW separate ``(rows, C)`` blocks, so each block
  is added into the padded input gradient with one strided-slice add per kernel offset whose inner run is a whole
  output row (``OW*C`` floats) rather than ``C`` floats (seed CNN layer 2: adds ~28 ms -> ~12, GEMMs +5).

Pooling reduces each window separably (over its rows, then its columns); the pooling gradients walk the kernel
offsets like col2im. Loops run over kernel offsets only, never over pixels.
This module imports only NumPy, so benchmarks and the mock GPU can load it on its own.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = [
    "matmul", "fused_matmul", "ACTIVATIONS", "conv2d", "fused_conv2d", "conv2d_backward_input",
    "conv2d_backward_filter",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
]

# Patch-matrix bytes per chunk: small enough for the L2/L3 caches, big enough for BLAS to run at full speed.
_CHUNK_BYTES = 2 << 20


def _compute_dtype(dtype):
    """float32 for 2-byte floats (float16, bfloat16), else the dtype itself."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.itemsize == 2 and dtype.kind not in "iub" else dtype


def _output_size(size, k, stride, pad, dilation, what):
    span = (k - 1) * dilation + 1
    out = (size + pad[0] + pad[1] - span) // stride + 1
    if out < 1:
        raise ValueError(f"{what}: a window spanning {span} does not fit in an input of size {size} "
                         f"padded by {tuple(pad)}")
    return out


def _pad(x, padding, value=0):
    """``x`` with ``padding`` cells of ``value`` around H and W (``x`` itself when there is none)."""
    (pt, pb), (pl, pr) = padding
    if not (pt or pb or pl or pr):
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + pt + pb, w + pl + pr, c), value, dtype=x.dtype)
    out[:, pt:pt + h, pl:pl + w] = x
    return out


def _crop(xp, padding, input_shape):
    """The inverse of :func:`_pad`: the unpadded region of ``xp`` as a contiguous array."""
    (pt, _), (pl, _) = padding
    h, w = input_shape[1:3]
    if xp.shape[1:3] == (h, w):
        return xp
    return np.ascontiguousarray(xp[:, pt:pt + h, pl:pl + w])


def _offsets(ksize, out_hw, strides, dilations=(1, 1)):
    """Yield ``(i, j, index)``: for kernel offset (i, j), ``padded[index]`` holds the cell it reads for every
    output pixel, shaped ``(N, OH, OW, C)``. Distinct output pixels read distinct cells at one offset, so
    ``padded[index] += ...`` scatters without collisions."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, strides, dilations
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            yield i, j, (slice(None), slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def _windows(xp, ksize, out_hw, strides, dilations):
    """Strided view ``(N, OH, OW, KH, KW, C)`` of padded input ``xp``: output pixel (oy, ox) at offset (i, j)."""
    sn, sh, sw, sc = xp.strides
    shape = (xp.shape[0], *out_hw, *ksize, xp.shape[3])
    strides_ = (sn, sh * strides[0], sw * strides[1], sh * dilations[0], sw * dilations[1], sc)
    return as_strided(xp, shape, strides_, writeable=False)


def _batch_chunks(n, bytes_per_image):
    """Slices of the batch holding about ``_CHUNK_BYTES`` of work each (at least one image; one empty slice for
    an empty batch)."""
    step = max(1, _CHUNK_BYTES // max(1, bytes_per_image))
    return [slice(start, min(n, start + step)) for start in range(0, max(n, 1), step)]


def _im2col(windows):
    """Yield ``(batch slice, patch matrix)`` chunk by chunk; the matrix is ``(rows, KH*KW*C)`` and lives in one
    reused buffer, so consume it before asking for the next chunk."""
    patch_size = windows.shape[3] * windows.shape[4] * windows.shape[5]
    chunks = _batch_chunks(windows.shape[0], windows.shape[1] * windows.shape[2] * patch_size * windows.itemsize)
    buffer = np.empty((chunks[0].stop,) + windows.shape[1:], windows.dtype)
    for chunk in chunks:
        cols = buffer[:chunk.stop - chunk.start]
        if windows.shape[5] == 1:
            # One channel: NumPy's copy loop would run over KW (3 floats); offset by offset it runs over OW.
            for i in range(windows.shape[3]):
                for j in range(windows.shape[4]):
                    np.copyto(cols[:, :, :, i, j], windows[chunk, :, :, i, j])
        else:
            np.copyto(cols, windows[chunk])
        yield chunk, cols.reshape(-1, patch_size)


def _conv_setup(x_shape, w_shape, strides, padding, dilations, what):
    """Output (OH, OW) of a convolution, after checking that the shapes fit together."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"{what} expects an NHWC input and an HWIO filter of rank 4, got shapes "
                         f"{tuple(x_shape)} and {tuple(w_shape)}")
    if x_shape[3] != w_shape[2]:
        raise ValueError(f"{what}: input has {x_shape[3]} channels but the filter of shape {tuple(w_shape)} "
                         f"expects {w_shape[2]}")
    return tuple(_output_size(x_shape[1 + a], w_shape[a], strides[a], padding[a], dilations[a], what)
                 for a in range(2))


def matmul(a, b, *, transpose_a=False, transpose_b=False):
    """Matrix product over the last two axes; leading (batch) axes broadcast like ``numpy.matmul``.

    Args:
        a: array ``(..., M, K)``, or ``(..., K, M)`` with ``transpose_a``.
        b: array ``(..., K, N)``, or ``(..., N, K)`` with ``transpose_b``.
        transpose_a, transpose_b: use the operand with its last two axes swapped (a view; BLAS reads it as is).

    Returns:
        Array ``(..., M, N)`` of the operands' common dtype.

    Raises:
        ValueError: if the inner dimensions differ.

    Example:
        >>> matmul(np.ones((2, 3)), np.ones((2, 4)), transpose_a=True).shape
        (3, 4)
    """
    if type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == b.dtype and a.dtype.char in "fd":
        dtype = a.dtype  # the training-step case: same float32/float64 arrays, nothing to convert (saves ~5 us)
    else:
        dtype = np.result_type(a, b)
        compute = _compute_dtype(dtype)
        a = np.asarray(a).astype(compute, copy=False)
        b = np.asarray(b).astype(compute, copy=False)
    if transpose_a:
        a = a.swapaxes(-1, -2)
    if transpose_b:
        b = b.swapaxes(-1, -2)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} (after transposes)")
    return np.matmul(a, b).astype(dtype, copy=False)



def _erf(x):
    """erf elementwise to full precision (Cody's rational approximations, shared with ``cuflow.ops.nn.erf``)."""
    from ..ops.nn import _erf_array  # noqa: PLC0415  (the ops layer imports this module)
    return _erf_array(x)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


# The fused epilogue's activations (gpu.py's ACTIVATIONS has the same names).
ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, z.dtype.type(0)),  # maximum propagates NaN: relu(NaN) = NaN, as on the GPU
    "gelu": lambda z: 0.5 * z * (1 + _erf(z / np.sqrt(2).astype(z.dtype))),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
}


def fused_matmul(a, b, bias=None, residual=None, *, activation="linear", transpose_a=False, transpose_b=False):
    """``activation(op(a) @ op(b) + bias + residual)``: the NumPy twin of ``gpu.fused_matmul``.

    Args:
        a, b, transpose_a, transpose_b: as :func:`matmul` (floating dtypes).
        bias: ``(N,)`` added to every row, or None.
        residual: broadcastable to the result, added before the activation, or None.
        activation: ``"linear"``, ``"relu"``, ``"gelu"`` (exact, erf), ``"sigmoid"`` or ``"tanh"``.

    Returns:
        Array ``(..., M, N)`` of the operands' dtype (2-byte floats computed in float32).
    """
    _check_activation(activation, "fused_matmul")
    dtype = np.result_type(a, b)
    if not (dtype.kind == "f" or dtype.name == "bfloat16"):
        raise TypeError(f"fused_matmul: a and b must be floating-point, got {np.asarray(a).dtype} and "
                        f"{np.asarray(b).dtype}")
    compute = _compute_dtype(dtype)
    z = matmul(np.asarray(a).astype(compute, copy=False), np.asarray(b).astype(compute, copy=False),
               transpose_a=transpose_a, transpose_b=transpose_b)
    return _epilogue(z, bias, residual, activation, dtype)


def _check_activation(activation, what):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{what}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


def _epilogue(z, bias, residual, activation, dtype):
    """``activation(z + bias + residual)`` in ``z``'s dtype, returned as ``dtype``: the GPU kernels' epilogue."""
    # z is the GEMM's fresh result, so the adds run in place (an 11 MB temporary per conv layer otherwise)
    if bias is not None:
        z += np.asarray(bias).astype(z.dtype, copy=False)
    if residual is not None:
        z += np.asarray(residual).astype(z.dtype, copy=False)
    return ACTIVATIONS[activation](z).astype(dtype, copy=False)

def conv2d(x, w, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1)):
    """2-D convolution (cross-correlation, like TensorFlow) of NHWC images with an HWIO filter.

    Args:
        x: input ``(N, H, W, C)``.
        w: filter ``(KH, KW, C, F)``.
        strides: ``(sh, sw)``.
        padding: explicit zero padding ``((top, bottom), (left, right))``.
        dilations: ``(dh, dw)``; a dilated kernel spans ``(KH - 1) * dh + 1`` rows.

    Returns:
        ``(N, OH, OW, F)`` with ``OH = (H + top + bottom - ((KH - 1) * dh + 1)) // sh + 1`` (likewise OW).

    Raises:
        ValueError: if ranks or channel counts do not match, or the kernel does not fit the padded input.

    Example:
        >>> conv2d(np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 4)), padding=((1, 1), (1, 1)))[0, 2, 2]
        array([18., 18., 18., 18.])
    """
    out_hw = _conv_setup(x.shape, w.shape, strides, padding, dilations, "conv2d")
    compute = _compute_dtype(x.dtype)
    kh, kw, c, f = w.shape
    w2 = w.astype(compute, copy=False).reshape(kh * kw * c, f)
    windows = _windows(_pad(x.astype(compute, copy=False), padding), (kh, kw), out_hw, strides, dilations)
    out = np.empty((x.shape[0], *out_hw, f), compute)
    for chunk, cols in _im2col(windows):
        np.matmul(cols, w2, out=out[chunk].reshape(-1, f))
    return out.astype(x.dtype, copy=False)


def fused_conv2d(x, w, bias=None, residual=None, *, activation="linear", strides=(1, 1), padding=((0, 0), (0, 0)),
                 dilations=(1, 1)):
    """``activation(conv2d(x, w) + bias + residual)``: the NumPy twin of ``gpu.fused_conv2d``.

    Args:
        x, w, strides, padding, dilations: as :func:`conv2d` (floating dtypes).
        bias: ``(F,)`` added to every output cell, or None.
        residual: broadcastable to the output ``(N, OH, OW, F)``, added before the activation, or None.
        activation: ``"linear"``, ``"relu"``, ``"gelu"`` (exact, erf), ``"sigmoid"`` or ``"tanh"``.

    Returns:
        ``(N, OH, OW, F)`` of ``x``'s dtype (2-byte floats computed in float32).

    Example:
        >>> fused_conv2d(np.ones((1, 3, 3, 1)), np.ones((3, 3, 1, 2)), np.array([-10.0, 0.0]), activation="relu")
        array([[[[0., 9.]]]])
    """
    _check_activation(activation, "fused_conv2d")
    if not (x.dtype.kind == "f" or x.dtype.name == "bfloat16"):
        raise TypeError(f"fused_conv2d: x must be floating-point, got {x.dtype}")
    compute = _compute_dtype(x.dtype)
    z = conv2d(x.astype(compute, copy=False), w.astype(compute, copy=False), strides=strides, padding=padding,
               dilations=dilations)
    return _epilogue(z, bias, residual, activation, x.dtype)


def conv2d_backward_filter(x, grad_out, filter_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                           dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its filter.

    Args:
        x: the forward input ``(N, H, W, C)``.
        grad_out: gradient of the forward output ``(N, OH, OW, F)``.
        filter_shape: ``(KH, KW, C, F)``.
        strides, padding, dilations: as given to :func:`conv2d`.

    Returns:
        ``dw`` of shape ``filter_shape`` and the dtype of ``x``.

    Raises:
        ValueError: if ``grad_out`` does not have the forward output's shape.
    """
    out_hw = _conv_setup(x.shape, filter_shape, strides, padding, dilations, "conv2d_backward_filter")
    kh, kw, c, f = filter_shape
    if tuple(grad_out.shape) != (x.shape[0], *out_hw, f):
        raise ValueError(f"conv2d_backward_filter: grad_out has shape {grad_out.shape}, the forward output "
                         f"has shape {(x.shape[0], *out_hw, f)}")
    compute = _compute_dtype(x.dtype)
    g = np.ascontiguousarray(grad_out, dtype=compute).reshape(-1, f)
    windows = _windows(_pad(x.astype(compute, copy=False), padding), (kh, kw), out_hw, strides, dilations)
    rows_per_image = out_hw[0] * out_hw[1]
    dw = np.zeros((kh * kw * c, f), compute)
    for chunk, cols in _im2col(windows):
        dw += cols.T @ g[chunk.start * rows_per_image:chunk.stop * rows_per_image]
    return dw.reshape(filter_shape).astype(x.dtype, copy=False)


def conv2d_backward_input(grad_out, w, input_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                          dilations=(1, 1)):
    """Gradient of :func:`conv2d` with respect to its input (a transposed convolution, done as col2im).

    Args:
        grad_out: gradient of the forward output ``(N, OH, OW, F)``.
        w: the filter ``(KH, KW, C, F)``.
        input_shape: ``(N, H, W, C)`` of the forward input.
        strides, padding, dilations: as given to :func:`conv2d`.

    Returns:
        ``dx`` of shape ``input_shape`` and the dtype of ``grad_out``; input cells no window read get zero.

    Raises:
        ValueError: if ``grad_out`` does not have the forward output's shape.
    """
    out_hw = _conv_setup(input_shape, w.shape, strides, padding, dilations, "conv2d_backward_input")
    kh, kw, c, f = w.shape
    n = input_shape[0]
    if tuple(grad_out.shape) != (n, *out_hw, f):
        raise ValueError(f"conv2d_backward_input: grad_out has shape {grad_out.shape}, the forward output "
                         f"has shape {(n, *out_hw, f)}")
    compute = _compute_dtype(grad_out.dtype)
    g = np.ascontiguousarray(grad_out, dtype=compute).reshape(n, out_hw[0] * out_hw[1], f)
    # (KH*KW, F, C): one (rows, F) @ (F, C) GEMM per kernel offset, each result a contiguous (rows, C) block.
    w_t = np.ascontiguousarray(w.astype(compute, copy=False).reshape(kh * kw, c, f).transpose(0, 2, 1))
    (pt, pb), (pl, pr) = padding
    dxp = np.zeros((n, input_shape[1] + pt + pb, input_shape[2] + pl + pr, c), compute)
    rows_per_image = out_hw[0] * out_hw[1]
    chunks = _batch_chunks(n, kh * kw * rows_per_image * c * dxp.itemsize)
    buffer = np.empty(kh * kw * chunks[0].stop * rows_per_image * c, compute)
    for chunk in chunks:
        images = chunk.stop - chunk.start
        blocks = buffer[:kh * kw * images * rows_per_image * c].reshape(kh * kw, images * rows_per_image, c)
        np.matmul(g[chunk].reshape(-1, f), w_t, out=blocks)
        blocks = blocks.reshape(kh, kw, images, *out_hw, c)
        dx_chunk = dxp[chunk]
        for i, j, index in _offsets((kh, kw), out_hw, strides, dilations):
            dx_chunk[index] += blocks[i, j]
    return _crop(dxp, padding, input_shape).astype(grad_out.dtype, copy=False)


def _pool_setup(x_shape, ksize, strides, padding, what):
    """Output (OH, OW) of a pooling, after checking that every window holds at least one real cell."""
    if len(x_shape) != 4:
        raise ValueError(f"{what} expects an NHWC input of rank 4, got shape {tuple(x_shape)}")
    if any(p >= k for k, pads in zip(ksize, padding) for p in pads):
        raise ValueError(f"{what}: padding {tuple(map(tuple, padding))} must be smaller than the window "
                         f"{tuple(ksize)}, or some windows would hold only padding")
    return tuple(_output_size(x_shape[1 + a], ksize[a], strides[a], padding[a], 1, what) for a in range(2))


def _window_reduce(xp, ksize, out_hw, strides, ufunc):
    """Fold ``ufunc`` (``np.maximum`` or ``np.add``) over every window of padded ``xp``, into a new array.

    Separable: first over each window's KH rows for every column (whole image rows, contiguous runs of W*C
    floats), then over its KW columns; KH + KW passes instead of KH*KW passes with C-float runs."""
    (kh, kw), (oh, ow), (sh, sw) = ksize, out_hw, strides
    rows = [xp[:, i:i + sh * (oh - 1) + 1:sh] for i in range(kh)]
    acc = rows[0] if kh == 1 else ufunc(rows[0], rows[1])
    for band in rows[2:]:
        ufunc(acc, band, out=acc)
    cols = [acc[:, :, j:j + sw * (ow - 1) + 1:sw] for j in range(kw)]
    out = cols[0].copy() if kw == 1 else ufunc(cols[0], cols[1])
    for band in cols[2:]:
        ufunc(out, band, out=out)
    return out


def max_pool2d(x, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Max over ``ksize`` windows of NHWC ``x``, moved by ``strides``; padded cells are -inf, so they never win.

    Args:
        x: input ``(N, H, W, C)``.
        ksize: window ``(kh, kw)``.
        strides: ``(sh, sw)``.
        padding: ``((top, bottom), (left, right))``, each smaller than the window.

    Returns:
        ``(N, OH, OW, C)`` with ``OH = (H + top + bottom - kh) // sh + 1`` (likewise OW).

    Raises:
        ValueError: if ``x`` is not rank 4, a padding is not smaller than the window, or the window does not fit.

    Example:
        >>> max_pool2d(np.arange(16.).reshape(1, 4, 4, 1), ksize=(2, 2), strides=(2, 2))[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """
    out_hw = _pool_setup(x.shape, ksize, strides, padding, "max_pool2d")
    return _window_reduce(_pad(x, padding, -np.inf), ksize, out_hw, strides, np.maximum)


def max_pool2d_backward(x, out, grad_out, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Gradient of :func:`max_pool2d`: each window's gradient goes to the first cell (row-major within the
    window) equal to the window's max, like TensorFlow; overlapping windows add up.

    Args:
        x: the forward input ``(N, H, W, C)``.
        out: the forward output ``(N, OH, OW, C)``.
        grad_out: gradient of ``out``.
        ksize, strides, padding: as given to :func:`max_pool2d`.

    Returns:
        ``dx`` shaped like ``x``, of the dtype of ``grad_out``.
    """
    out_hw = _pool_setup(x.shape, ksize, strides, padding, "max_pool2d_backward")
    xp = _pad(x, padding, -np.inf)
    compute = _compute_dtype(grad_out.dtype)
    g = grad_out.astype(compute, copy=False)
    # grad * mask is 4x faster than np.where, and exact unless grad holds inf or NaN (inf * 0 is NaN).
    exact = np.isfinite(g).all()
    if all(strides[a] == ksize[a] and out_hw[a] * ksize[a] == xp.shape[1 + a] for a in (0, 1)):
        dxp = _max_pool2d_backward_tiled(xp, out, g, ksize, exact)
        return _crop(dxp, padding, x.shape).astype(grad_out.dtype, copy=False)
    # Disjoint windows (stride >= window) send each cell at most one gradient: write it in place (no temporary, no
    # read-modify-write).
    disjoint = strides[0] >= ksize[0] and strides[1] >= ksize[1]
    dxp = np.zeros(xp.shape, compute)
    unclaimed = np.ones(out.shape, bool)      # windows whose gradient has not been routed yet
    winner = np.empty(out.shape, bool)
    for _, _, index in _offsets(ksize, out_hw, strides):     # row-major, so ties go to the first max
        np.equal(xp[index], out, out=winner)
        winner &= unclaimed
        unclaimed ^= winner
        if disjoint and exact:
            np.multiply(g, winner, out=dxp[index])
        elif disjoint:
            dxp[index] = np.where(winner, g, 0)
        else:
            dxp[index] += g * winner if exact else np.where(winner, g, 0)
    return _crop(dxp, padding, x.shape).astype(grad_out.dtype, copy=False)


def _max_pool2d_backward_tiled(xp, out, g, ksize, exact):
    """max_pool2d_backward for windows that tile the padded input ``xp`` (stride = window, e.g. the usual 2x2 / 2).

    ``xp`` is then a view ``(N, OH, KH, OW, KW, C)``: one broadcast comparison with the maxima marks every cell equal
    to its window's max, reading ``xp`` once in order (offset by offset, each strided pass drags in the cache lines
    of the others: about twice the time); ties keep only the first mark in row-major order, working on the marks
    (a quarter of the bytes); one broadcast product writes the whole gradient."""
    (kh, kw), (n, oh, ow, c) = ksize, out.shape
    hit = xp.reshape(n, oh, kh, ow, kw, c) == out[:, :, None, :, None, :]
    seen = None  # windows with a mark at an earlier offset
    for i in range(kh):
        for j in range(kw):
            mark = hit[:, :, i, :, j, :]
            if seen is None:
                seen = mark.copy()
                continue
            np.greater(mark, seen, out=mark)  # mark and not seen
            if (i, j) != (kh - 1, kw - 1):
                seen |= mark
    per_window = g[:, :, None, :, None, :]
    dx = per_window * hit if exact else np.where(hit, per_window, g.dtype.type(0))
    return dx.reshape(xp.shape)


def _real_cells(size, k, stride, pad_before, out_len):
    """For each of ``out_len`` windows along one axis, how many of its ``k`` cells are inside the input."""
    starts = np.arange(out_len) * stride - pad_before
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


def _avg_divisor(x_shape, ksize, strides, padding, out_hw, dtype):
    """``(OH, OW, 1)`` count of real (non-padding) cells per window: TensorFlow's 'SAME' average."""
    rows, cols = (_real_cells(x_shape[1 + a], ksize[a], strides[a], padding[a][0], out_hw[a]) for a in range(2))
    return np.multiply.outer(rows, cols).astype(dtype)[:, :, None]


def avg_pool2d(x, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Mean over ``ksize`` windows of NHWC ``x``, counting only the real (non-padding) cells of each window.

    Args and Returns as :func:`max_pool2d`.

    Example:
        >>> avg_pool2d(np.ones((1, 3, 3, 1)), ksize=(2, 2), strides=(2, 2), padding=((0, 1), (0, 1)))[0, :, :, 0]
        array([[1., 1.],
               [1., 1.]])
    """
    out_hw = _pool_setup(x.shape, ksize, strides, padding, "avg_pool2d")
    compute = _compute_dtype(x.dtype)
    total = _window_reduce(_pad(x.astype(compute, copy=False), padding), ksize, out_hw, strides, np.add)
    total /= _avg_divisor(x.shape, ksize, strides, padding, out_hw, compute)
    return total.astype(x.dtype, copy=False)


def avg_pool2d_backward(grad_out, input_shape, *, ksize, strides, padding=((0, 0), (0, 0))):
    """Gradient of :func:`avg_pool2d`: each window's gradient, divided by its real-cell count, to each real cell.

    Returns:
        ``dx`` of shape ``input_shape`` and the dtype of ``grad_out``.
    """
    out_hw = _pool_setup(input_shape, ksize, strides, padding, "avg_pool2d_backward")
    compute = _compute_dtype(grad_out.dtype)
    share = grad_out.astype(compute) / _avg_divisor(input_shape, ksize, strides, padding, out_hw, compute)
    (pt, pb), (pl, pr) = padding
    dxp = np.zeros((input_shape[0], input_shape[1] + pt + pb, input_shape[2] + pl + pr, input_shape[3]), compute)
    for _, _, index in _offsets(ksize, out_hw, strides):
        dxp[index] += share
    return _crop(dxp, padding, input_shape).astype(grad_out.dtype, copy=False)
