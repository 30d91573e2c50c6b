"""Elementwise math, comparisons, reductions and matmul.

Each op's forward works on raw arrays through ``xp`` (NumPy or CuPy) or a primitive from ``kernels``; its gradient
sits right below it and is written with cuflow ops, so gradients of gradients work.
"""
import functools

import numpy as np

from .. import dtypes, errors
from .base import op, xp, backend, shape_of
from ..tensor import Tensor

__all__ = [
    "add", "subtract", "multiply", "divide", "truediv", "floordiv", "floormod", "mod", "pow", "negative", "abs",
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "sin", "cos", "tan", "tanh", "sigmoid", "sign",
    "reciprocal", "maximum", "minimum", "clip_by_value", "squared_difference",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
    "logical_not", "logical_xor", "is_nan", "is_inf", "is_finite",
    "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_any", "reduce_all",
    "reduce_logsumexp", "reduce_variance", "reduce_std", "argmax", "argmin", "matmul", "fused_matmul", "add_n",
    "unbroadcast", "cumsum",
]


def unbroadcast(grad, shape):
    """Sums ``grad`` down to ``shape``: undoes the broadcasting a binary op did to one of its inputs."""
    shape = tuple(shape)
    grad_shape = tuple(grad.shape)
    if grad_shape == shape:
        return grad
    extra = len(grad_shape) - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, d in enumerate(shape) if d == 1 and grad_shape[i + extra] != 1)
    if axes:
        grad = reduce_sum(grad, axis=axes, keepdims=True)
    from .array import reshape
    return reshape(grad, shape)


def _binary_grads(x, y, gx, gy):
    return (None if gx is None else unbroadcast(gx, shape_of(x)),
            None if gy is None else unbroadcast(gy, shape_of(y)))


# --- arithmetic ---------------------------------------------------------------------------------------------------
@op
def add(x, y):
    """``x + y`` elementwise, with broadcasting."""
    return xp(x, y).add(x, y)


@add.gradient
def _(grad, x, y, out, needs=(True, True)):
    return _binary_grads(x, y, grad if needs[0] else None, grad if needs[1] else None)


@op
def subtract(x, y):
    """``x - y`` elementwise, with broadcasting."""
    return xp(x, y).subtract(x, y)


@subtract.gradient
def _(grad, x, y, out, needs=(True, True)):
    return _binary_grads(x, y, grad if needs[0] else None, -grad if needs[1] else None)


@op
def multiply(x, y):
    """``x * y`` elementwise, with broadcasting."""
    return xp(x, y).multiply(x, y)


@multiply.gradient
def _(grad, x, y, out, needs=(True, True)):
    # `needs` skips the product for a constant or a Python number (`x * 2.0`, a mask): one op fewer each way
    return _binary_grads(x, y, grad * y if needs[0] else None, grad * x if needs[1] else None)


@op
def divide(x, y):
    """``x / y`` elementwise. Integer inputs give float64, as in TensorFlow's ``truediv``."""
    return xp(x, y).true_divide(x, y)


@divide.gradient
def _(grad, x, y, out, needs=(True, True)):
    return _binary_grads(x, y, grad / y if needs[0] else None, -grad * out / y if needs[1] else None)


truediv = divide


@op
def floordiv(x, y):
    """``x // y`` elementwise (no gradient, like TensorFlow)."""
    return xp(x, y).floor_divide(x, y)


@floordiv.gradient
def _(grad, x, y, out):
    return None, None


@op
def floormod(x, y):
    """``x % y`` elementwise, with the sign of ``y`` (Python semantics)."""
    return xp(x, y).mod(x, y)


@floormod.gradient
def _(grad, x, y, out):
    return _binary_grads(x, y, grad, -grad * floordiv(x, y))


mod = floormod


@op
def pow(x, y):  # noqa: A001 - TensorFlow's name
    """``x ** y`` elementwise."""
    return xp(x, y).power(x, y)


@pow.gradient
def _(grad, x, y, out):
    gx = grad * y * pow(x, y - 1) if isinstance(x, Tensor) else None
    gy = None
    if isinstance(y, Tensor) and y.dtype.is_floating:
        # TensorFlow takes log(x) as 0 where x <= 0, so the exponent's gradient stays finite there; a Python
        # number base stays a Python number, so the gradient keeps y's dtype
        log_x = log(where_positive(x)) if isinstance(x, Tensor) else float(np.log(x)) if x > 0 else 0.0
        gy = grad * out * log_x
    return _binary_grads(x, y, gx, gy)


def where_positive(x):
    """``x`` where it is positive, 1 elsewhere: keeps ``log`` finite in the exponent gradient of ``pow``."""
    from .array import where
    return where(greater(x, 0), x, 1)


@op
def negative(x):
    """``-x``."""
    return xp(x).negative(x)


@negative.gradient
def _(grad, x, out):
    return -grad


@op
def abs(x):  # noqa: A001
    """``|x|`` elementwise (gradient ``sign(x)``; 0 at 0)."""
    return xp(x).abs(x)


@abs.gradient
def _(grad, x, out):
    return grad * sign(x)


@op
def sign(x):
    """-1, 0 or 1 elementwise."""
    return xp(x).sign(x)


@sign.gradient
def _(grad, x, out):
    return grad * 0


@op
def exp(x):
    """``e ** x`` elementwise."""
    return xp(x).exp(x)


@exp.gradient
def _(grad, x, out):
    return grad * out


@op
def expm1(x):
    """``exp(x) - 1``, accurate near 0."""
    return xp(x).expm1(x)


@expm1.gradient
def _(grad, x, out):
    return grad * (out + 1)


@op
def log(x):
    """Natural logarithm elementwise."""
    return xp(x).log(x)


@log.gradient
def _(grad, x, out):
    return grad / x


@op
def log1p(x):
    """``log(1 + x)``, accurate near 0."""
    return xp(x).log1p(x)


@log1p.gradient
def _(grad, x, out):
    return grad / (x + 1)


@op
def sqrt(x):
    """Square root elementwise."""
    return xp(x).sqrt(x)


@sqrt.gradient
def _(grad, x, out):
    return grad * 0.5 / out


@op
def rsqrt(x):
    """``1 / sqrt(x)`` elementwise."""
    m = xp(x)
    return m.reciprocal(m.sqrt(x))


@rsqrt.gradient
def _(grad, x, out):
    return grad * -0.5 * out * out * out


@op
def reciprocal(x):
    """``1 / x`` elementwise."""
    return xp(x).reciprocal(x)


@reciprocal.gradient
def _(grad, x, out):
    return -grad * out * out


@op
def square(x):
    """``x * x`` elementwise."""
    return xp(x).square(x)


@square.gradient
def _(grad, x, out):
    return grad * 2 * x


@op
def squared_difference(x, y):
    """``(x - y) ** 2`` elementwise."""
    return xp(x, y).square(x - y)


@squared_difference.gradient
def _(grad, x, y, out):
    g = grad * 2 * (x - y)
    return _binary_grads(x, y, g, -g)


@op
def sin(x):
    """Sine elementwise."""
    return xp(x).sin(x)


@sin.gradient
def _(grad, x, out):
    return grad * cos(x)


@op
def cos(x):
    """Cosine elementwise."""
    return xp(x).cos(x)


@cos.gradient
def _(grad, x, out):
    return -grad * sin(x)


@op
def tan(x):
    """Tangent elementwise."""
    return xp(x).tan(x)


@tan.gradient
def _(grad, x, out):
    return grad * (1 + out * out)


@op
def tanh(x):
    """Hyperbolic tangent elementwise."""
    return xp(x).tanh(x)


@tanh.gradient
def _(grad, x, out):
    return grad * (1 - out * out)


@op
def sigmoid(x):
    """``1 / (1 + exp(-x))``, without overflow and to full relative precision in both tails."""
    m = xp(x)
    # exp(-|x|) never overflows; for x < 0, e / (1 + e) keeps the tiny tail (sigmoid(-40) = 4.2e-18) that
    # 1 - sigmoid(40), or a tanh form, would round to 0 (and log(sigmoid(x)) to -inf)
    e = m.exp(-m.abs(x))
    r = 1 / (1 + e)
    return m.where(x >= 0, r, e * r)


@sigmoid.gradient
def _(grad, x, out):
    return grad * out * (1 - out)


def _select_grad(grad, take_x, x, y):
    from .array import where
    zero = grad * 0
    return _binary_grads(x, y, where(take_x, grad, zero), where(take_x, zero, grad))


@op
def maximum(x, y):
    """Elementwise maximum (ties send the gradient to ``x``)."""
    return xp(x, y).maximum(x, y)


@maximum.gradient
def _(grad, x, y, out):
    return _select_grad(grad, greater_equal(x, y), x, y)


@op
def minimum(x, y):
    """Elementwise minimum (ties send the gradient to ``x``)."""
    return xp(x, y).minimum(x, y)


@minimum.gradient
def _(grad, x, y, out):
    return _select_grad(grad, less_equal(x, y), x, y)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """Clips ``t`` to ``[clip_value_min, clip_value_max]``; the gradient passes where ``t`` is inside."""
    return minimum(maximum(t, clip_value_min), clip_value_max)


def add_n(inputs, name=None):
    """Adds a list of tensors of the same shape and dtype."""
    total = inputs[0]
    for t in inputs[1:]:
        total = add(total, t)
    return total


# --- comparisons and logic (no gradient) --------------------------------------------------------------------------
def _predicate(name, fn, same_dtype=True):
    declared = op(fn, name=name, same_dtype=same_dtype)
    declared.gradient(lambda grad, *args, **attrs: (None,) * (len(args) - 1))
    return declared


equal = _predicate("equal", lambda x, y: xp(x, y).equal(x, y))
not_equal = _predicate("not_equal", lambda x, y: xp(x, y).not_equal(x, y))
less = _predicate("less", lambda x, y: xp(x, y).less(x, y))
less_equal = _predicate("less_equal", lambda x, y: xp(x, y).less_equal(x, y))
greater = _predicate("greater", lambda x, y: xp(x, y).greater(x, y))
greater_equal = _predicate("greater_equal", lambda x, y: xp(x, y).greater_equal(x, y))
logical_and = _predicate("logical_and", lambda x, y: xp(x, y).logical_and(x, y))
logical_or = _predicate("logical_or", lambda x, y: xp(x, y).logical_or(x, y))
logical_xor = _predicate("logical_xor", lambda x, y: xp(x, y).logical_xor(x, y))
logical_not = _predicate("logical_not", lambda x: xp(x).logical_not(x))
is_nan = _predicate("is_nan", lambda x: xp(x).isnan(x))
is_inf = _predicate("is_inf", lambda x: xp(x).isinf(x))
is_finite = _predicate("is_finite", lambda x: xp(x).isfinite(x))


# --- reductions ---------------------------------------------------------------------------------------------------
def _axes(axis, ndim, what="reduction"):
    """Normalizes ``axis`` (None, int, list, Tensor) to a sorted tuple of non-negative axes, checking the range
    (``what`` names the op in the error)."""
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, without the loop below
        return (axis % ndim,)
    if isinstance(axis, Tensor):
        axis = np.asarray(axis).tolist()
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise errors.InvalidArgumentError(f"{what}: axis {a} is out of range for a tensor of rank {ndim}")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _restore_reduced(grad, x, axis, keepdims):
    """Reshapes a reduction's gradient so it broadcasts against ``x``."""
    from .array import reshape
    if keepdims:
        return grad
    shape = x.shape
    axes = _axes(axis, len(shape))
    if axes == tuple(range(len(axes))):  # leading axes reduced (a bias gradient, a total): it broadcasts already
        return grad
    return reshape(grad, tuple([1 if i in axes else d for i, d in enumerate(shape)]))


_BLAS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@functools.lru_cache(maxsize=16)
def _cached_ones(n, dtype):
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def _ones(n, dtype):
    """A vector of ``n`` ones, kept for the sizes a training step meets again and again (up to 1 MiB each)."""
    return _cached_ones(n, dtype) if n * dtype.itemsize <= 1 << 20 else np.ones(n, dtype)


def _cpu_sum(x, axes, keepdims, dtype):
    """``np.sum`` of a NumPy array over sorted ``axes``, without its Python wrapper (several µs a call). Column sums
    of a contiguous float array (leading axes reduced: bias gradients, batch statistics) go to BLAS as a product
    with a vector of ones: NumPy adds those up row by row, about 10x slower (and less accurately)."""
    k = len(axes)
    if 0 < k < x.ndim and axes[-1] == k - 1 and x.dtype in _BLAS_DTYPES and dtype == x.dtype and \
            x.flags.c_contiguous:
        rows = cols = 1
        for d in x.shape[:k]:
            rows *= d
        for d in x.shape[k:]:
            cols *= d
        if rows > 1:
            total = _ones(rows, x.dtype) @ x.reshape(rows, cols)
            return total.reshape((1,) * k + x.shape[k:] if keepdims else x.shape[k:])
    return np.add.reduce(x, axis=axes, dtype=dtype, keepdims=keepdims)


@op
def reduce_sum(input_tensor, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None). Booleans and integers sum as in TensorFlow (same dtype)."""
    axes = _axes(axis, input_tensor.ndim, "reduce_sum")
    dtype = input_tensor.dtype if input_tensor.dtype.kind != "b" else np.int32
    if type(input_tensor) is np.ndarray:
        return _cpu_sum(input_tensor, axes, keepdims, dtype)
    return input_tensor.sum(axis=axes, dtype=dtype, keepdims=keepdims)


@reduce_sum.gradient
def _(grad, x, out, axis=None, keepdims=False):
    from .array import broadcast_to
    return broadcast_to(_restore_reduced(grad, x, axis, keepdims), x.shape)


@op
def reduce_mean(input_tensor, axis=None, keepdims=False):
    """Mean over ``axis``. Integer inputs give an integer (truncated) mean, as in TensorFlow."""
    m = xp(input_tensor)
    axes = _axes(axis, input_tensor.ndim, "reduce_mean")
    dtype = input_tensor.dtype
    count = 1
    for a in axes:
        count *= input_tensor.shape[a]
    if dtype.kind in "iu":
        total = m.sum(input_tensor, axis=axes, keepdims=keepdims)
        # TensorFlow divides in C++, truncating toward zero: mean([-1, -2]) is -1 (floor division would give -2)
        return (m.sign(total) * (m.abs(total) // (count or 1))).astype(dtype)
    if type(input_tensor) is np.ndarray and dtype.itemsize >= 4 and dtype.kind == "f" and count:
        # np.mean's own steps (a sum, then one correctly rounded division) without its Python wrapper
        return np.true_divide(_cpu_sum(input_tensor, axes, keepdims, dtype), count, dtype=dtype)
    return m.mean(input_tensor, axis=axes, keepdims=keepdims)


@reduce_mean.gradient
def _(grad, x, out, axis=None, keepdims=False):
    from .array import broadcast_to
    count = int(np.prod([x.shape[a] for a in _axes(axis, len(x.shape))])) or 1
    return broadcast_to(_restore_reduced(grad, x, axis, keepdims), x.shape) / count


def _extreme_grad(grad, x, out, axis, keepdims):
    """Gradient of max/min: shared equally between the elements that reach the extreme (as TensorFlow does)."""
    from .array import cast
    hit = cast(equal(x, _restore_reduced(out, x, axis, keepdims)), x.dtype)
    count = reduce_sum(hit, axis=axis, keepdims=True)
    return hit * _restore_reduced(grad, x, axis, keepdims) / count


@op
def reduce_max(input_tensor, axis=None, keepdims=False):
    """Maximum over ``axis``."""
    return xp(input_tensor).max(input_tensor, axis=_axes(axis, input_tensor.ndim, "reduce_max"), keepdims=keepdims)


@reduce_max.gradient
def _(grad, x, out, axis=None, keepdims=False):
    return _extreme_grad(grad, x, out, axis, keepdims)


@op
def reduce_min(input_tensor, axis=None, keepdims=False):
    """Minimum over ``axis``."""
    return xp(input_tensor).min(input_tensor, axis=_axes(axis, input_tensor.ndim, "reduce_min"), keepdims=keepdims)


@reduce_min.gradient
def _(grad, x, out, axis=None, keepdims=False):
    return _extreme_grad(grad, x, out, axis, keepdims)


@op
def reduce_prod(input_tensor, axis=None, keepdims=False):
    """Product over ``axis``, in ``input_tensor``'s dtype (NumPy would widen int32 to int64)."""
    return xp(input_tensor).prod(input_tensor, axis=_axes(axis, input_tensor.ndim, "reduce_prod"), keepdims=keepdims,
                                 dtype=input_tensor.dtype)


@reduce_prod.gradient
def _(grad, x, out, axis=None, keepdims=False):
    # product of all the *other* elements, without dividing (exact when x has zeros): exclusive cumprods
    from .array import transpose, reshape
    axes = _axes(axis, len(x.shape))
    rest = [i for i in range(len(x.shape)) if i not in axes]
    perm = rest + list(axes)
    moved = transpose(x, perm)
    lead = [x.shape[i] for i in rest]
    flat = reshape(moved, lead + [-1])
    left = cumprod(flat, axis=-1, exclusive=True)
    right = cumprod(flat, axis=-1, exclusive=True, reverse=True)
    others = reshape(left * right, [moved.shape[i] for i in range(len(perm))])
    inverse = list(np.argsort(perm))
    return transpose(others, inverse) * _restore_reduced(grad, x, axis, keepdims)


@op
def cumsum(x, axis=0, exclusive=False, reverse=False):
    """Cumulative sum along ``axis``."""
    m = xp(x)
    if reverse:
        x = m.flip(x, axis)
    out = m.cumsum(x, axis=axis)
    if exclusive:
        out = out - x
    return m.flip(out, axis) if reverse else out


@cumsum.gradient
def _(grad, x, out, axis=0, exclusive=False, reverse=False):
    return cumsum(grad, axis=axis, exclusive=exclusive, reverse=not reverse)


@op
def cumprod(x, axis=0, exclusive=False, reverse=False):
    """Cumulative product along ``axis``."""
    m = xp(x)
    if reverse:
        x = m.flip(x, axis)
    out = m.cumprod(x, axis=axis)
    if exclusive:
        ones_shape = list(x.shape)
        ones_shape[axis] = 1
        out = m.concatenate([m.ones(ones_shape, x.dtype), m.take(out, m.arange(x.shape[axis] - 1), axis=axis)],
                            axis=axis)
    return m.flip(out, axis) if reverse else out


@cumprod.gradient
def _(grad, x, out, axis=0, exclusive=False, reverse=False):
    # d/dx_j sum_i g_i prod_{k<=i, k!=j} x_k: exact for x without zeros, which is where TF's formula holds too
    return cumsum(grad * out, axis=axis, exclusive=exclusive, reverse=not reverse) / x


def reduce_any(input_tensor, axis=None, keepdims=False, name=None):
    """Logical or over ``axis``."""
    from .array import cast
    axis = _axes(axis, np.ndim(input_tensor), "reduce_any")
    return cast(reduce_max(cast(input_tensor, dtypes.int8), axis=axis, keepdims=keepdims), dtypes.bool)


def reduce_all(input_tensor, axis=None, keepdims=False, name=None):
    """Logical and over ``axis``."""
    from .array import cast
    axis = _axes(axis, np.ndim(input_tensor), "reduce_all")
    return cast(reduce_min(cast(input_tensor, dtypes.int8), axis=axis, keepdims=keepdims), dtypes.bool)


def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None):
    """``log(sum(exp(x)))`` over ``axis``, computed stably."""
    from .array import stop_gradient, where, reshape
    axis = _axes(axis, np.ndim(input_tensor), "reduce_logsumexp")
    peak = reduce_max(input_tensor, axis=axis, keepdims=True)
    # shifting an all -inf slice by its max would give -inf - -inf = nan; shift it by 0 instead, as TensorFlow does
    peak = stop_gradient(where(is_finite(peak), peak, 0))
    total = log(reduce_sum(exp(input_tensor - peak), axis=axis, keepdims=keepdims))
    return total + (peak if keepdims else reshape(peak, shape_of(total)))


def reduce_variance(input_tensor, axis=None, keepdims=False, name=None):
    """Population variance over ``axis``."""
    axis = _axes(axis, np.ndim(input_tensor), "reduce_variance")
    mean = reduce_mean(input_tensor, axis=axis, keepdims=True)
    return reduce_mean(square(input_tensor - mean), axis=axis, keepdims=keepdims)


def reduce_std(input_tensor, axis=None, keepdims=False, name=None):
    """Population standard deviation over ``axis``."""
    axis = _axes(axis, np.ndim(input_tensor), "reduce_std")
    return sqrt(reduce_variance(input_tensor, axis=axis, keepdims=keepdims))


def _arg_extreme(name, fn):
    def forward(input, axis=None, output_type=dtypes.int64):
        if axis is None:
            axis = 0
        axis = int(np.asarray(axis))
        if not -input.ndim <= axis < input.ndim:
            raise errors.InvalidArgumentError(f"{name}: axis {axis} is out of range for a tensor of rank {input.ndim}")
        return getattr(xp(input), fn)(input, axis=axis).astype(dtypes.numpy_dtype(output_type))
    declared = op(forward, name=name)
    declared.gradient(lambda grad, x, out, **attrs: None)
    return declared


argmax = _arg_extreme("argmax", "argmax")
argmin = _arg_extreme("argmin", "argmin")


# --- matmul -------------------------------------------------------------------------------------------------------
@op
def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False):
    """Matrix product of the last two axes of ``a`` and ``b``, batched (with broadcasting) over the rest.

    Args:
        a: tensor of rank >= 2, shape ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
        b: tensor of rank >= 2, shape ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``).
        transpose_a, transpose_b: use the transpose of the last two axes, without copying.

    Returns:
        A tensor of shape ``(..., M, N)``.

    Raises:
        cuflow.errors.InvalidArgumentError: the inner dimensions differ or a rank is below 2.

    Example:

    >>> import cuflow as tf
    >>> tf.matmul(tf.ones((2, 3)), tf.ones((3, 4))).shape
    TensorShape([2, 4])
    """
    ta, tb = transpose_a or adjoint_a, transpose_b or adjoint_b
    _matmul_shape("matmul", a, b, ta, tb)
    return backend(a).matmul(a, b, transpose_a=ta, transpose_b=tb)


@matmul.gradient
def _(grad, a, b, out, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False, needs=(True, True)):
    ta, tb = transpose_a or adjoint_a, transpose_b or adjoint_b
    ga = gb = None
    if needs[0]:
        ga = matmul(b, grad, transpose_a=tb, transpose_b=True) if ta else matmul(grad, b, transpose_b=not tb)
        ga = unbroadcast(ga, a.shape)
    if needs[1]:
        gb = matmul(grad, a, transpose_a=True, transpose_b=ta) if tb else matmul(a, grad, transpose_a=not ta)
        gb = unbroadcast(gb, b.shape)
    return ga, gb


FUSED_ACTIVATIONS = ("linear", "relu", "gelu", "sigmoid", "tanh")


@op(inputs=("a", "b", "bias", "residual"))
def fused_matmul(a, b, bias=None, residual=None, activation="linear", transpose_a=False, transpose_b=False):
    """``activation(matmul(a, b) + bias + residual)`` in one GEMM: on the GPU the bias, residual and activation are
    applied in the kernel's epilogue, while the results are still in registers (no intermediate tensors).

    ``Dense`` layers call it. The gradient uses the saved output for ``relu``, ``sigmoid`` and ``tanh``; ``gelu``
    recomputes the pre-activation (one more GEMM in the backward pass).

    Args:
        a: tensor of rank >= 2, ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
        b: tensor of rank >= 2, ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``).
        bias: ``(N,)``, added to every row; None for none.
        residual: broadcastable to the result ``(..., M, N)``, added before the activation; None for none.
        activation: ``"linear"``, ``"relu"``, ``"gelu"`` (exact, with erf), ``"sigmoid"`` or ``"tanh"``.
        transpose_a, transpose_b: as in :func:`matmul`.

    Returns:
        A tensor of shape ``(..., M, N)``.

    Raises:
        cuflow.errors.InvalidArgumentError (a ValueError): an unknown activation; shapes that do not fit (as :func:`matmul`; bias not ``(N,)``; a
            residual that does not broadcast to the result).

    Example:

    >>> import cuflow as tf
    >>> from cuflow.ops.math import fused_matmul
    >>> fused_matmul(tf.ones((2, 3)), tf.ones((3, 4)), tf.fill((4,), -4.0), activation="relu").numpy()
    array([[0., 0., 0., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    """
    if activation not in FUSED_ACTIVATIONS:  # InvalidArgumentError is a ValueError
        raise errors.InvalidArgumentError(
            f"fused_matmul: activation must be one of {list(FUSED_ACTIVATIONS)}, got {activation!r}")
    out_shape = _matmul_shape("fused_matmul", a, b, transpose_a, transpose_b)
    if bias is not None and tuple(bias.shape) != out_shape[-1:]:
        raise errors.InvalidArgumentError(
            f"fused_matmul: bias must have shape ({out_shape[-1]},) (the result's last axis), got {tuple(bias.shape)}")
    if residual is not None:
        try:
            if np.broadcast_shapes(tuple(residual.shape), out_shape) != out_shape:
                raise ValueError
        except ValueError:
            raise errors.InvalidArgumentError(
                f"fused_matmul: residual with shape {tuple(residual.shape)} does not broadcast to the result's "
                f"shape {out_shape}") from None
    return backend(a).fused_matmul(a, b, bias, residual, activation=activation, transpose_a=transpose_a,
                                   transpose_b=transpose_b)


def _matmul_shape(name, a, b, ta, tb):
    """The result shape of ``matmul(a, b)`` with those transposes; InvalidArgumentError when it has none."""
    if a.ndim < 2 or b.ndim < 2:
        raise errors.InvalidArgumentError(
            f"{name}: both inputs must have rank >= 2, got a with shape {tuple(a.shape)} and b with shape "
            f"{tuple(b.shape)}")
    ka = a.shape[-2] if ta else a.shape[-1]
    kb = b.shape[-1] if tb else b.shape[-2]
    if ka != kb:
        raise errors.InvalidArgumentError(
            f"{name}: inner dimensions differ: a has shape {tuple(a.shape)}{' (transposed)' if ta else ''}, b has "
            f"shape {tuple(b.shape)}{' (transposed)' if tb else ''}; {ka} != {kb}")
    return _batch_shape(name, a, b) + (a.shape[-1] if ta else a.shape[-2], b.shape[-2] if tb else b.shape[-1])


def _batch_shape(name, a, b):
    """The broadcast batch shape of two matmul operands (``()`` for plain matrices, decided without NumPy's
    slow ``broadcast_shapes``); InvalidArgumentError when it does not broadcast."""
    if a.ndim == 2 and b.ndim == 2:
        return ()
    try:
        return tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    except ValueError:
        raise errors.InvalidArgumentError(f"{name}: batch dimensions of a {tuple(a.shape)} and b {tuple(b.shape)} "
                                          "do not broadcast") from None


def fused_activation_grad(grad, out, activation, preactivation):
    """The gradient through a fused epilogue's ``activation``, from its output ``out`` (relu, sigmoid, tanh) or, for
    gelu, whose output does not give its input back, from ``preactivation()`` (which recomputes it)."""
    from . import nn  # noqa: PLC0415  (nn imports this module)
    if activation == "relu":
        return nn._relu_grad(out, grad)
    if activation == "sigmoid":
        return grad * out * (1 - out)
    if activation == "tanh":
        return grad * (1 - out * out)
    if activation == "gelu":
        return nn.gelu.grad_fn(grad, preactivation(), None)
    return grad


@fused_matmul.gradient
def _(grad, a, b, bias, residual, out, activation="linear", transpose_a=False, transpose_b=False,
      needs=(True, True, True, True)):
    grad = fused_activation_grad(grad, out, activation, lambda: fused_matmul(
        a, b, bias, residual, transpose_a=transpose_a, transpose_b=transpose_b))
    ga, gb = matmul.grad_fn(grad, a, b, None, transpose_a=transpose_a, transpose_b=transpose_b, needs=needs[:2])
    gbias = gres = None
    if bias is not None and needs[2]:
        gbias = reduce_sum(grad, axis=tuple(range(grad.ndim - 1))) if grad.ndim > 1 else grad
    if residual is not None and needs[3]:
        gres = unbroadcast(grad, residual.shape)
    return ga, gb, gbias, gres
