"""Tests for cuflow/ops/math.py: values against NumPy (float64 and float32, on every device), result dtypes,
gradients against central finite differences, second derivatives, bad input, and the Tensor operators that
cuflow/ops/__init__.py builds from these ops."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import errors, testing
from cuflow.ops import math as math_ops

from .helpers import FLOATS
from .helpers import assert_close as _assert_close, gradient_of as _gradient_of, grads as _grads, rand as _rand
from .helpers import raises as _raises


# --- elementwise unary ops --------------------------------------------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name: (cuflow op, NumPy reference, input range)
UNARY = {
    "negative": (tf.negative, np.negative, (-2, 2)),
    "abs": (tf.abs, np.abs, (-2, 2)),
    "sign": (tf.sign, np.sign, (-2, 2)),
    "exp": (tf.exp, np.exp, (-2, 2)),
    "expm1": (tf.expm1, np.expm1, (-2, 2)),
    "log": (tf.log, np.log, (0.1, 3)),
    "log1p": (tf.log1p, np.log1p, (-0.5, 2)),
    "sqrt": (tf.sqrt, np.sqrt, (0.1, 3)),
    "rsqrt": (tf.rsqrt, lambda x: 1 / np.sqrt(x), (0.1, 3)),
    "reciprocal": (tf.reciprocal, np.reciprocal, (0.3, 3)),
    "square": (tf.square, np.square, (-2, 2)),
    "sin": (tf.sin, np.sin, (-3, 3)),
    "cos": (tf.cos, np.cos, (-3, 3)),
    "tan": (tf.tan, np.tan, (-1.2, 1.2)),
    "tanh": (tf.tanh, np.tanh, (-3, 3)),
    "sigmoid": (tf.sigmoid, _sigmoid, (-6, 6)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_match_numpy(device, name, dtype):
    fn, reference, (low, high) = UNARY[name]
    x = _rand((3, 4), dtype, low, high)
    _assert_close(fn(tf.constant(x)), reference(x.astype(np.float64)), dtype)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_of_a_scalar_tensor_is_a_scalar(name):
    fn, reference, (low, high) = UNARY[name]
    x = np.float64((low + high) / 2 + 0.1)
    _assert_close(fn(tf.constant(x)), reference(x), np.float64)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(device, name):
    fn, _, (low, high) = UNARY[name]
    x = _rand((2, 3), np.float64, low, high, seed=1)
    x[np.abs(x) < 0.05] = 0.5  # keep abs/sign away from their kink
    testing.check_gradients(fn, [x])


@pytest.mark.filterwarnings("error")  # exp must not overflow in either tail
@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_is_accurate_in_both_tails(device, dtype):
    x = np.array([-80.0, -40.0, -20.0, -10.0, 0.0, 10.0, 20.0, 40.0, 80.0], dtype)
    got = np.asarray(tf.sigmoid(tf.constant(x))).astype(np.float64)
    expected = _sigmoid(x.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)
    assert np.all(np.isfinite(np.log(got)))  # log(sigmoid(x)) stays finite: the tail is not rounded to 0


# --- elementwise binary ops with broadcasting --------------------------------------------------------------------
def _away_from_zero(v):
    return np.where(v < 0, v - 0.5, v + 0.5)


# name: (cuflow op, NumPy reference, x range, y range, differentiable)
BINARY = {
    "add": (tf.add, np.add, (-2, 2), (-2, 2), True),
    "subtract": (tf.subtract, np.subtract, (-2, 2), (-2, 2), True),
    "multiply": (tf.multiply, np.multiply, (-2, 2), (-2, 2), True),
    "divide": (tf.divide, np.true_divide, (-2, 2), None, True),
    "truediv": (tf.truediv, np.true_divide, (-2, 2), None, True),
    "floordiv": (tf.floordiv, np.floor_divide, (-4, 4), None, False),
    "floormod": (tf.floormod, np.mod, (-4, 4), None, True),
    "mod": (tf.mod, np.mod, (-4, 4), None, True),
    "pow": (tf.pow, np.power, (0.2, 2), (-2, 2), True),
    "maximum": (tf.maximum, np.maximum, (-2, 2), (-2, 2), True),
    "minimum": (tf.minimum, np.minimum, (-2, 2), (-2, 2), True),
    "squared_difference": (tf.squared_difference, lambda x, y: (x - y) ** 2, (-2, 2), (-2, 2), True),
}
BROADCAST_SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((3,), (2, 3)), ((2, 1, 3), (4, 1)), ((), (2, 3)),
                    ((2, 3), ()), ((1, 3), (2, 1))]


def _binary_inputs(name, x_shape, y_shape, dtype=np.float64):
    _, _, (xl, xh), y_range, _ = BINARY[name]
    x = _rand(x_shape, dtype, xl, xh, seed=2)
    y = _rand(y_shape, dtype, *(y_range or (-2, 2)), seed=3)
    if y_range is None:  # divisors: |y| >= 0.5
        y = _away_from_zero(y).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_values_broadcast_like_numpy(device, name, shapes, dtype):
    fn, reference = BINARY[name][:2]
    x, y = _binary_inputs(name, *shapes, dtype=dtype)
    _assert_close(fn(tf.constant(x), tf.constant(y)), reference(x, y), dtype)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(n for n in BINARY if BINARY[n][4]))
def test_binary_gradients_sum_back_to_each_operand(device, name, shapes):
    x, y = _binary_inputs(name, *shapes)  # random floats never tie, so maximum/minimum are smooth here
    testing.check_gradients(BINARY[name][0], [x, y])


def test_binary_gradient_shapes_follow_the_operands():
    gx, gy = _grads(tf.multiply, np.ones((4, 1, 3)), np.full((2, 1), 2.0))
    assert gx.shape == (4, 1, 3) and gy.shape == (2, 1)
    np.testing.assert_allclose(gx, np.full((4, 1, 3), 4.0))  # each x element meets both y rows
    np.testing.assert_allclose(gy, np.full((2, 1), 12.0))    # each y element meets all 12 x elements


def test_floordiv_has_no_gradient():
    gx, gy = _grads(lambda x, y: tf.floordiv(x, y) + x * 0, [3.5, -2.5], [2.0, 2.0])
    np.testing.assert_array_equal(gx, [0.0, 0.0])
    assert gy is None


def test_pow_with_python_exponent_and_negative_base():
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    _assert_close(tf.constant(x) ** 3, x ** 3, np.float64)
    (gx,) = _grads(lambda t: t ** 3, x)
    np.testing.assert_allclose(gx, 3 * x ** 2)
    testing.check_gradients(lambda t: tf.pow(t, 2.5), [np.abs(x)])


def test_pow_exponent_gradient_is_zero_not_nan_where_the_base_is_not_positive():
    x, y = np.array([-2.0, 0.0, 2.0]), np.array([2.0, 2.0, 2.0])
    gx, gy = _grads(tf.pow, x, y)
    np.testing.assert_allclose(gx, 2 * x)
    np.testing.assert_allclose(gy, [0.0, 0.0, 4 * np.log(2.0)])  # TF: log(x) taken as 0 where x <= 0


@pytest.mark.parametrize("fn, x_share", [(tf.maximum, 1.0), (tf.minimum, 1.0)])
def test_maximum_and_minimum_send_the_gradient_of_a_tie_to_x(fn, x_share):
    gx, gy = _grads(fn, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gx, [x_share] * 3)
    np.testing.assert_array_equal(gy, [1 - x_share] * 3)


@pytest.mark.parametrize("dtype", FLOATS)
def test_clip_by_value_values(device, dtype):
    x = np.array([[-3.0, -1.0, 0.5], [1.0, 3.0, 0.0]], dtype)
    _assert_close(tf.clip_by_value(tf.constant(x), -1.0, 1.0), np.clip(x, -1, 1), dtype)
    lo, hi = np.array([-2.0, 0.0, 0.0], dtype), np.array([0.0, 2.0, 0.25], dtype)
    _assert_close(tf.clip_by_value(tf.constant(x), tf.constant(lo), tf.constant(hi)), np.clip(x, lo, hi), dtype)


def test_clip_by_value_gradient_passes_inside_and_on_the_bounds():
    (g,) = _grads(lambda t: tf.clip_by_value(t, -1.0, 1.0), [-3.0, -1.0, 0.5, 1.0, 3.0])
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_add_n(device):
    xs = [_rand((2, 3), seed=s) for s in range(3)]
    _assert_close(tf.add_n([tf.constant(x) for x in xs]), xs[0] + xs[1] + xs[2], np.float64)
    testing.check_gradients(lambda a, b, c: tf.add_n([a, b, c * a]), xs)


def test_unbroadcast_sums_down_to_the_shape():
    g = tf.constant(_rand((2, 3, 4)))
    got = math_ops.unbroadcast(g, (3, 1))
    assert got.shape == (3, 1)
    np.testing.assert_allclose(np.asarray(got), np.asarray(g).sum(axis=(0, 2))[:, None])
    assert math_ops.unbroadcast(g, (2, 3, 4)) is g
    assert math_ops.unbroadcast(g, ()).shape == ()


# --- dtypes of results ----------------------------------------------------------------------------------------------
INT_BINARY = ["add", "subtract", "multiply", "floordiv", "floormod", "maximum", "minimum", "pow"]


@pytest.mark.parametrize("int_dtype", [tf.int32, tf.int64])
@pytest.mark.parametrize("name", INT_BINARY)
def test_integer_arithmetic_keeps_the_integer_dtype(device, name, int_dtype):
    x = np.array([[7, -7, 3], [0, 5, -2]], int_dtype.numpy_dtype)
    y = np.array([2, 3, -2], int_dtype.numpy_dtype) if name != "pow" else np.array([2, 3, 1], int_dtype.numpy_dtype)
    fn, reference = BINARY[name][:2]
    got = fn(tf.constant(x), tf.constant(y))
    assert got.dtype == int_dtype
    np.testing.assert_array_equal(np.asarray(got), reference(x, y))
    assert fn(tf.constant(x), 2).dtype == int_dtype  # a Python int follows the tensor


def test_integer_true_division_gives_float64_like_tensorflow(device):
    got = tf.constant([7, -7]) / tf.constant([2, 2])
    assert got.dtype == tf.float64
    np.testing.assert_array_equal(np.asarray(got), [3.5, -3.5])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.float16])
def test_python_and_numpy_scalars_follow_the_tensor_dtype(device, dtype):
    t = tf.constant([1.0, 2.0], dtype=dtype)
    for result in (t + 1, t * 2.5, 2.5 - t, t / 3, t ** 2, 2 ** t, np.float64(2) * t, t + np.float64(0.5),
                   tf.maximum(t, 0.5), tf.sqrt(t), tf.sigmoid(t)):
        assert result.dtype == dtype


@pytest.mark.parametrize("name", ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_comparisons_give_bool_and_broadcast(device, name, dtype):
    x = np.array([[1, 2, 3], [3, 2, 1]], dtype)
    y = np.array([2, 2, 2], dtype)
    got = getattr(tf, name)(tf.constant(x), tf.constant(y))
    assert got.dtype == tf.bool
    np.testing.assert_array_equal(np.asarray(got), getattr(np, name)(x, y))
    np.testing.assert_array_equal(np.asarray(getattr(tf, name)(tf.constant(x), 2)), getattr(np, name)(x, 2))


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
def test_logical_binary_ops(device, name):
    x = np.array([[True, True], [False, False]])
    y = np.array([True, False])
    got = getattr(tf, name)(tf.constant(x), tf.constant(y))
    assert got.dtype == tf.bool
    np.testing.assert_array_equal(np.asarray(got), getattr(np, name)(x, y))


def test_logical_not_and_float_predicates(device):
    np.testing.assert_array_equal(np.asarray(tf.logical_not(tf.constant([True, False]))), [False, True])
    x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0], np.float32)
    for name, reference in [("is_nan", np.isnan), ("is_inf", np.isinf), ("is_finite", np.isfinite)]:
        got = getattr(tf, name)(tf.constant(x))
        assert got.dtype == tf.bool
        np.testing.assert_array_equal(np.asarray(got), reference(x), err_msg=name)


def test_comparisons_have_no_gradient():
    x = tf.constant([1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(tf.greater(x, 1.5), tf.float32) * x + x
    np.testing.assert_array_equal(np.asarray(tape.gradient(y, x)), [1.0, 2.0])


# --- reductions -----------------------------------------------------------------------------------------------------
def _logsumexp(x, axis=None, keepdims=False):
    peak = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


REDUCTIONS = {
    "reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min,
    "reduce_prod": np.prod, "reduce_logsumexp": _logsumexp, "reduce_variance": np.var, "reduce_std": np.std,
}
AXES = [None, 0, 1, -1, [0, 2], (-1, 0), [1, -2]]


def _np_axis(axis):
    if axis is None or isinstance(axis, int):
        return axis
    return tuple(sorted({a % 3 for a in axis}))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_values_match_numpy(device, name, dtype, axis, keepdims):
    x = _rand((2, 3, 4), dtype, 0.5, 1.5)
    got = getattr(tf, name)(tf.constant(x), axis=axis, keepdims=keepdims)
    _assert_close(got, REDUCTIONS[name](x.astype(np.float64), axis=_np_axis(axis), keepdims=keepdims), dtype)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_of_a_scalar_and_with_a_tensor_axis(device, name):
    x = _rand((2, 3))
    _assert_close(getattr(tf, name)(tf.constant(np.float64(1.5))), REDUCTIONS[name](np.float64(1.5)), np.float64)
    _assert_close(getattr(tf, name)(tf.constant(x), axis=tf.constant(1)), REDUCTIONS[name](x, axis=1), np.float64)


@pytest.mark.parametrize("name", ["reduce_sum", "reduce_mean"])
def test_column_sums_propagate_nan_and_inf(device, name):
    # leading axes of a float array: summed on the CPU by a BLAS product with ones, which must not hide specials
    x = np.ones((2, 5, 3), np.float32)
    x[0, 1, 0], x[1, 2, 1], x[0, 3, 2], x[1, 4, 2] = np.nan, np.inf, np.inf, -np.inf
    with np.errstate(invalid="ignore"):  # inf - inf
        got = getattr(tf, name)(tf.constant(x), axis=[0, 1], keepdims=True)
        expected = REDUCTIONS[name](x, axis=(0, 1), keepdims=True)
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 1, -1, [0, 2]], ids=str)
@pytest.mark.parametrize("name", ["reduce_any", "reduce_all"])
def test_logical_reductions(device, name, axis, keepdims):
    x = np.random.default_rng(4).uniform(size=(2, 3, 4)) > 0.3
    got = getattr(tf, name)(tf.constant(x), axis=axis, keepdims=keepdims)
    assert got.dtype == tf.bool
    reference = np.any if name == "reduce_any" else np.all
    np.testing.assert_array_equal(np.asarray(got), reference(x, axis=_np_axis(axis), keepdims=keepdims))


def test_integer_reductions_keep_the_dtype_and_mean_truncates_toward_zero(device):
    x = tf.constant([[-1, -2], [3, 4], [5, 5]])
    for name in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_mean"):
        assert getattr(tf, name)(x).dtype == tf.int32, name
    np.testing.assert_array_equal(np.asarray(tf.reduce_sum(x, axis=0)), [7, 7])
    # TensorFlow divides integer sums in C++, truncating: mean([-1, -2]) is -1, not floor(-1.5) = -2
    np.testing.assert_array_equal(np.asarray(tf.reduce_mean(x, axis=1)), [-1, 3, 5])
    assert int(tf.reduce_sum(tf.constant([True, True, False]))) == 2


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # log(0) = -inf is the right answer here
def test_logsumexp_is_stable_for_large_and_infinite_inputs(device):
    x = np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, 0.0], [-np.inf, -np.inf]])
    got = np.asarray(tf.reduce_logsumexp(tf.constant(x), axis=1))
    np.testing.assert_allclose(got[:3], [1000 + np.log(2), -1000 + np.log(2), 0.0])
    assert got[3] == -np.inf  # an all -inf row (a fully masked row) is -inf, not nan


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 1, -1, [0, 2]], ids=str)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_gradients(device, name, axis, keepdims):
    x = _rand((2, 3, 4), np.float64, 0.5, 1.5, seed=5)
    testing.check_gradients(lambda t: getattr(tf, name)(t, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("x, expected", [([2.0, 0.0, 3.0], [0.0, 6.0, 0.0]), ([0.0, 0.0, 3.0], [0.0, 0.0, 0.0])])
def test_reduce_prod_gradient_is_exact_with_zeros(x, expected):
    (g,) = _grads(tf.reduce_prod, x)
    np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("name, x, axis, expected", [
    ("reduce_max", [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], 1, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]),
    ("reduce_min", [[1.0, 3.0, 1.0], [2.0, 0.0, 2.0]], 1, [[0.5, 0, 0.5], [0, 1, 0]]),
    ("reduce_max", [[1.0, 3.0], [3.0, 2.0]], None, [[0, 0.5], [0.5, 0]]),
    ("reduce_max", [[1.0, 3.0], [3.0, 3.0]], 0, [[0, 0.5], [1, 0.5]]),
])
def test_max_and_min_share_the_gradient_equally_among_ties(device, name, x, axis, expected):
    (g,) = _grads(lambda t: getattr(tf, name)(t, axis=axis) * 6.0, x)  # upstream 6: the share is scaled, not 1
    np.testing.assert_allclose(g, 6.0 * np.array(expected))


@pytest.mark.parametrize("output_type", [None, tf.int32])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(device, name, axis, output_type):
    x = _rand((3, 4), seed=6)
    kwargs = {} if output_type is None else {"output_type": output_type}
    got = getattr(tf, name)(tf.constant(x), axis=axis, **kwargs)
    assert got.dtype == (output_type or tf.int64)  # TF's default output_type is int64
    np.testing.assert_array_equal(np.asarray(got), getattr(np, name)(x, axis=0 if axis is None else axis))


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(device, axis, exclusive, reverse):
    x = _rand((3, 4), seed=7)
    expected = np.flip(x, axis) if reverse else x
    expected = np.cumsum(expected, axis=axis) - (expected if exclusive else 0)
    expected = np.flip(expected, axis) if reverse else expected
    _assert_close(tf.cumsum(tf.constant(x), axis=axis, exclusive=exclusive, reverse=reverse), expected, np.float64)
    testing.check_gradients(lambda t: tf.cumsum(t, axis, exclusive, reverse) * tf.constant(x), [x])


# --- matmul ---------------------------------------------------------------------------------------------------------
def _matmul_inputs(a_shape, b_shape, transpose_a, transpose_b, dtype=np.float64):
    """``a``, ``b`` as passed to matmul (transposed as the flags say) and the NumPy product."""
    a, b = _rand(a_shape, dtype, seed=8), _rand(b_shape, dtype, seed=9)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    if transpose_a:
        a = np.ascontiguousarray(np.swapaxes(a, -1, -2))
    if transpose_b:
        b = np.ascontiguousarray(np.swapaxes(b, -1, -2))
    return a, b, expected


MATMUL_SHAPES = [((3, 4), (4, 2)), ((1, 5), (5, 1)), ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
                 ((3, 4), (2, 4, 5)), ((2, 3, 4), (4, 2))]


@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_values(device, shapes, transpose_a, transpose_b, dtype):
    a, b, expected = _matmul_inputs(*shapes, transpose_a, transpose_b, dtype)
    got = tf.matmul(tf.constant(a), tf.constant(b), transpose_a=transpose_a, transpose_b=transpose_b)
    _assert_close(got, expected, dtype)


def test_matmul_integers_and_the_operator(device):
    a, b = np.arange(6, dtype=np.int32).reshape(2, 3), np.arange(12, dtype=np.int32).reshape(3, 4)
    got = tf.constant(a) @ tf.constant(b)
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(np.asarray(got), a @ b)


@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("shapes", [((3, 2), (2, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((2, 3), (2, 3, 2))], ids=str)
def test_matmul_gradients(device, shapes, transpose_a, transpose_b):
    a, b, _ = _matmul_inputs(*shapes, transpose_a, transpose_b)
    testing.check_gradients(
        lambda x, y: tf.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b) ** 2, [a, b])


# --- fused_matmul: act(a @ b + bias + residual) ----------------------------------------------------------------------
def _fused_reference(a, b, bias, residual, activation, ta, tb):
    import math
    z = np.matmul(a.swapaxes(-1, -2) if ta else a, b.swapaxes(-1, -2) if tb else b).astype(np.float64)
    z = z + (0 if bias is None else bias) + (0 if residual is None else residual)
    return {"linear": z, "relu": np.maximum(z, 0), "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z),
            "gelu": 0.5 * z * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))}[activation]


@pytest.mark.parametrize("activation", ["linear", "relu", "gelu", "sigmoid", "tanh"])
@pytest.mark.parametrize("transposes", [(False, False), (True, True)], ids=["NN", "TT"])
def test_fused_matmul_values_and_gradients(device, activation, transposes):
    ta, tb = transposes
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 5, 4) if ta else (2, 4, 5))
    b = rng.standard_normal((3, 5) if tb else (5, 3))
    bias, residual = rng.standard_normal(3), rng.standard_normal((4, 3))
    got = math_ops.fused_matmul(tf.constant(a), tf.constant(b), tf.constant(bias), tf.constant(residual),
                                activation=activation, transpose_a=ta, transpose_b=tb)
    np.testing.assert_allclose(np.asarray(got), _fused_reference(a, b, bias, residual, activation, ta, tb),
                               rtol=1e-12, atol=1e-12)
    testing.check_gradients(lambda x, y, c, r: math_ops.fused_matmul(x, y, c, r, activation=activation,
                                                                      transpose_a=ta, transpose_b=tb), [a, b, bias, residual])
    testing.check_gradients(lambda x, y: math_ops.fused_matmul(x, y, activation=activation, transpose_a=ta,
                                                               transpose_b=tb), [a, b])


def test_fused_matmul_float32_and_bad_arguments(device):
    a, b = tf.ones((2, 3)), tf.ones((3, 4))
    got = math_ops.fused_matmul(a, b, tf.constant([-4.0, -3.0, 0.0, 1.0]), activation="relu")
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(np.asarray(got), [[0, 0, 3, 4]] * 2)
    with pytest.raises(ValueError, match="activation must be one of .* got 'softmax'"):
        math_ops.fused_matmul(a, b, activation="softmax")
    _raises(errors.InvalidArgumentError, lambda: math_ops.fused_matmul(a, b, tf.ones(3)), "bias", "(4,)", "(3,)")
    _raises(errors.InvalidArgumentError, lambda: math_ops.fused_matmul(a, b, None, tf.ones((3, 4))), "residual",
            "(3, 4)", "(2, 4)")
    _raises(errors.InvalidArgumentError, lambda: math_ops.fused_matmul(a, tf.ones((2, 4))), "inner dimensions")


# --- second derivatives ---------------------------------------------------------------------------------------------
def _second(fn, x):
    """(f'(x), f''(x)) elementwise for an elementwise ``fn``, from nested tapes."""
    x = tf.constant(np.asarray(x, np.float64))
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = fn(x)
        g = inner.gradient(y, x)
    return np.asarray(g), np.asarray(outer.gradient(g, x))


SECOND = {
    "cube": (lambda x: x ** 3, lambda x: 3 * x ** 2, lambda x: 6 * x),
    "sin": (tf.sin, np.cos, lambda x: -np.sin(x)),
    "tanh": (tf.tanh, lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "sigmoid": (tf.sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
                lambda x: _sigmoid(x) * (1 - _sigmoid(x)) * (1 - 2 * _sigmoid(x))),
    "exp*log": (lambda x: tf.exp(x) * tf.log(x), lambda x: np.exp(x) * (np.log(x) + 1 / x),
                lambda x: np.exp(x) * (np.log(x) + 2 / x - 1 / x ** 2)),
    "sqrt": (tf.sqrt, lambda x: 0.5 / np.sqrt(x), lambda x: -0.25 * x ** -1.5),
    "rsqrt": (tf.rsqrt, lambda x: -0.5 * x ** -1.5, lambda x: 0.75 * x ** -2.5),
    "reciprocal": (lambda x: 1 / x, lambda x: -1 / x ** 2, lambda x: 2 / x ** 3),
}


@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_derivatives_match_analytic(name):
    fn, d1, d2 = SECOND[name]
    x = np.array([0.3, 0.9, 1.7])
    g, gg = _second(fn, x)
    np.testing.assert_allclose(g, d1(x), rtol=1e-10)
    np.testing.assert_allclose(gg, d2(x), rtol=1e-10)


_W = _rand((3, 2), seed=10)
_V = _rand((2, 2), seed=11)
SECOND_FD = {
    "matmul chain": lambda x: tf.matmul(tf.tanh(tf.matmul(x, tf.constant(_W))), tf.constant(_V)) ** 2,
    "matmul transposed": lambda x: tf.matmul(x, x, transpose_a=True) ** 2,
    "reduce_prod": lambda x: tf.reduce_prod(x, axis=1) * tf.reduce_prod(x),
    "reduce_logsumexp": lambda x: tf.reduce_logsumexp(x, axis=0) ** 2,
    "reduce_std": lambda x: tf.reduce_std(x, axis=1) ** 3,
    "divide": lambda x: x / (1 + x * x),
    "pow tensor exponent": lambda x: tf.pow(x, x),
    "maximum": lambda x: tf.maximum(x, 1.0) ** 3,
    "cumsum": lambda x: tf.cumsum(x, axis=1, exclusive=True) ** 3,
    "broadcast": lambda x: (x[:, :1] * x) ** 2,
}


@pytest.mark.parametrize("name", sorted(SECOND_FD))
def test_second_derivatives_match_finite_differences(name):
    x = _rand((2, 3), np.float64, 0.5, 1.5, seed=12)
    testing.check_gradients(_gradient_of(SECOND_FD[name]), [x], rtol=1e-5, atol=1e-6)


# --- bad input ------------------------------------------------------------------------------------------------------
def test_matmul_inner_dimension_mismatch():
    a, b = tf.ones((2, 3)), tf.ones((4, 5))
    e = _raises(errors.InvalidArgumentError, lambda: tf.matmul(a, b), "matmul", "(2, 3)", "(4, 5)")
    assert isinstance(e, ValueError)
    _raises(errors.InvalidArgumentError, lambda: a @ b, "matmul", "(2, 3)", "(4, 5)")
    _raises(errors.InvalidArgumentError, lambda: tf.matmul(a, tf.ones((2, 5)), transpose_a=False), "matmul")
    _raises(errors.InvalidArgumentError, lambda: tf.matmul(tf.ones(3), tf.ones((3, 2))), "matmul", "rank")
    _raises(errors.InvalidArgumentError, lambda: tf.matmul(tf.ones((2, 2, 3)), tf.ones((3, 3, 4))),
            "matmul", "(2, 2, 3)", "(3, 3, 4)")


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "pow", "maximum", "squared_difference",
                                  "equal", "less", "logical_and"])
def test_non_broadcastable_shapes_name_the_op_and_both_shapes(name):
    dtype = tf.bool if name == "logical_and" else tf.float32
    x, y = tf.ones((2, 3), dtype=dtype), tf.ones((4,), dtype=dtype)
    e = _raises(ValueError, lambda: getattr(tf, name)(x, y), name, "(2, 3)", "(4,)")
    assert isinstance(e, errors.InvalidArgumentError)


def test_non_broadcastable_operator():
    _raises(errors.InvalidArgumentError, lambda: tf.ones((2, 3)) + tf.ones((2,)), "add", "(2, 3)", "(2,)")


def test_mixed_float_dtypes_are_rejected():
    x, y = tf.ones(2, dtype=tf.float32), tf.ones(2, dtype=tf.float64)
    _raises(errors.InvalidArgumentError, lambda: x + y, "add", "float32", "float64")
    _raises(errors.InvalidArgumentError, lambda: tf.matmul(tf.ones((2, 2)), tf.ones((2, 2), tf.float64)),
            "matmul", "float32", "float64")
    _raises(errors.InvalidArgumentError, lambda: tf.constant([1, 2]) < tf.constant([1.0, 2.0]), "less", "int32",
            "float32")


def test_string_operand_is_rejected():
    _raises(TypeError, lambda: tf.ones(2) + "a", "add", "'a'", "float32")
    _raises(TypeError, lambda: "a" * tf.ones(2), "multiply", "'a'", "float32")


def test_fractional_python_number_with_an_integer_tensor_is_rejected():
    _raises(TypeError, lambda: tf.constant([1, 2]) + 2.5, "add", "2.5", "int32")
    _raises(TypeError, lambda: tf.maximum(tf.constant([1, 2]), 0.5), "maximum", "0.5", "int32")


def test_whole_python_float_with_an_integer_tensor_keeps_the_integer_dtype():
    got = tf.constant([1, 2]) + 2.0
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(np.asarray(got), [3, 4])


@pytest.mark.parametrize("name", sorted(REDUCTIONS) + ["reduce_any", "reduce_all", "argmax", "argmin"])
def test_reduction_axis_out_of_range(name):
    x = tf.constant([[True, False]]) if name in ("reduce_any", "reduce_all") else tf.ones((2, 3))
    _raises(errors.InvalidArgumentError, lambda: getattr(tf, name)(x, axis=2), name, "axis 2", "rank 2")
    _raises(errors.InvalidArgumentError, lambda: getattr(tf, name)(x, axis=-3), name, "axis -3", "rank 2")
    if name.startswith("reduce_"):
        _raises(errors.InvalidArgumentError, lambda: getattr(tf, name)(x, axis=[0, 5]), name, "axis 5")


def test_unknown_keyword_and_missing_argument():
    _raises(TypeError, lambda: tf.add(tf.ones(2), tf.ones(2), alpha=2), "add", "alpha")
    _raises(TypeError, lambda: tf.matmul(tf.ones((2, 2))), "matmul", "b")


# --- Tensor operators (cuflow/ops/__init__.py wires them to the ops above) -----------------------------------------
OPERATORS = [
    ("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b), ("/", lambda a, b: a / b),
    ("//", lambda a, b: a // b), ("%", lambda a, b: a % b), ("**", lambda a, b: a ** b),
]


@pytest.mark.parametrize("symbol, fn", OPERATORS, ids=[s for s, _ in OPERATORS])
@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_operators_with_tensors_scalars_and_numpy_on_either_side(device, symbol, fn, dtype):
    x = np.array([[1.5, 2.0, 3.0], [0.5, 4.0, 2.5]], dtype)
    y = np.array([2.0, 0.5, 1.5], dtype)
    expected = fn(x.astype(np.float64), y.astype(np.float64))
    _assert_close(fn(tf.constant(x), tf.constant(y)), expected, dtype)
    _assert_close(fn(tf.constant(x), y), expected, dtype)          # NumPy on the right
    _assert_close(fn(x, tf.constant(y)), expected, dtype)          # NumPy on the left: reflected, not NumPy's op
    _assert_close(fn(tf.constant(x), 2.0), fn(x.astype(np.float64), 2.0), dtype)
    _assert_close(fn(3.0, tf.constant(x)), fn(3.0, x.astype(np.float64)), dtype)
    _assert_close(fn(3, tf.constant(x)), fn(3, x.astype(np.float64)), dtype)


def test_matmul_operator_with_numpy_on_either_side(device):
    a, b = _rand((2, 3)), _rand((3, 2), seed=1)
    _assert_close(tf.constant(a) @ tf.constant(b), a @ b, np.float64)
    _assert_close(tf.constant(a) @ b, a @ b, np.float64)
    _assert_close(a @ tf.constant(b), a @ b, np.float64)


def test_unary_operators(device):
    x = np.array([-1.5, 0.0, 2.0])
    _assert_close(-tf.constant(x), -x, np.float64)
    _assert_close(abs(tf.constant(x)), np.abs(x), np.float64)
    t = tf.constant(x)
    assert +t is t
    np.testing.assert_array_equal(np.asarray(~tf.constant([True, False])), [False, True])


@pytest.mark.parametrize("symbol, fn, reference", [
    ("<", lambda a, b: a < b, np.less), ("<=", lambda a, b: a <= b, np.less_equal),
    (">", lambda a, b: a > b, np.greater), (">=", lambda a, b: a >= b, np.greater_equal),
    ("==", lambda a, b: a == b, np.equal), ("!=", lambda a, b: a != b, np.not_equal),
], ids=lambda v: v if isinstance(v, str) else "")
def test_comparison_operators(device, symbol, fn, reference):
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    for left, right in [(tf.constant(x), tf.constant(y)), (tf.constant(x), 2.0), (2.0, tf.constant(y) * 0 + x),
                        (x, tf.constant(y))]:
        got = fn(left, right)
        assert isinstance(got, tf.Tensor) and got.dtype == tf.bool
        np.testing.assert_array_equal(np.asarray(got), reference(np.asarray(left), np.asarray(right)))


LOGICAL_OPERATORS = [("&", lambda p, q: p & q, np.logical_and), ("|", lambda p, q: p | q, np.logical_or),
                     ("^", lambda p, q: p ^ q, np.logical_xor)]


@pytest.mark.parametrize("symbol, fn, reference", LOGICAL_OPERATORS, ids=[s for s, *_ in LOGICAL_OPERATORS])
def test_logical_operators(device, symbol, fn, reference):
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    np.testing.assert_array_equal(np.asarray(fn(tf.constant(a), tf.constant(b))), reference(a, b))
    np.testing.assert_array_equal(np.asarray(fn(tf.constant(a), True)), reference(a, True))
    np.testing.assert_array_equal(np.asarray(fn(True, tf.constant(b))), reference(True, b))


def test_operator_gradients_including_reflected_forms():
    testing.check_gradients(lambda x, y: (2.0 - x) * y / (3.0 + y) - 1.5 / x + x ** 2 % 1.7 + 2.0 ** y,
                            [[0.5, 1.25, 2.0], [0.3, 0.7, 1.1]])


def test_every_public_op_is_covered():
    covered = set(UNARY) | set(BINARY) | set(REDUCTIONS) | {
        "clip_by_value", "add_n", "unbroadcast", "equal", "not_equal", "less", "less_equal", "greater",
        "greater_equal", "logical_and", "logical_or", "logical_xor", "logical_not", "is_nan", "is_inf", "is_finite",
        "reduce_any", "reduce_all", "argmax", "argmin", "matmul", "cumsum", "fused_matmul"}
    assert set(math_ops.__all__) - covered == set(), "write value and gradient tests for the new ops"
