"""Tests for cuflow/ops/nn.py (``tf.nn``): values against NumPy float64 references written here (direct loops for
convolution and pooling), dtypes, gradients against central finite differences, second derivatives through nested
tapes, and bad input."""
import math

import numpy as np
import pytest

import cuflow as tf

from cuflow import errors, testing
from cuflow.ops import conv as conv_ops
from cuflow.ops import nn as nn_ops
from cuflow.ops import random as random_ops

from .helpers import FLOATS, rand as _rand

TOL = {np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12), np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5)}


def _assert_close(tensor, expected, dtype):
    from .helpers import assert_close
    assert_close(tensor, expected, dtype, TOL)


def _first_gradient(fn, wrt):
    """``x -> d sum(fn(x...)) / d x[wrt]`` computed by a tape (so an outer tape can differentiate it again)."""
    def gradient(*inputs):
        with tf.GradientTape() as tape:
            tape.watch(list(inputs))
            y = fn(*inputs)
        return tape.gradient(y, inputs[wrt])
    return gradient


def _check_second_order(fn, inputs, wrt=0, **tol):
    """The tape's gradient of ``sum(g ** 2)``, with ``g`` the tape's first gradient of ``fn``, against finite
    differences of that first gradient: checks every op's gradient-of-gradient."""
    first = _first_gradient(fn, wrt)
    testing.check_gradients(lambda *xs: tf.reduce_sum(tf.square(first(*xs))), inputs, **tol)


def _away_from(x, points, gap=0.1):
    """``x`` with values closer than ``gap`` to any of ``points`` pushed away (keeps kinks out of finite
    differences)."""
    x = x.copy()
    for p in points:
        near = np.abs(x - p) < gap
        x[near] = p + np.where(x[near] >= p, gap, -gap) * 1.5
    return x


# --- activations ---------------------------------------------------------------------------------------------------
_erf = np.vectorize(math.erf)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


_ALPHA, _SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

# name: (cuflow function, NumPy float64 reference, input range, kinks to avoid in gradient checks)
ACTIVATIONS = {
    "relu": (tf.nn.relu, lambda x: np.maximum(x, 0), (-3, 3), [0]),
    "relu6": (tf.nn.relu6, lambda x: np.clip(x, 0, 6), (-3, 9), [0, 6]),
    "leaky_relu": (tf.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x), (-3, 3), [0]),
    "leaky_relu_0.01": (lambda x: tf.nn.leaky_relu(x, alpha=0.01), lambda x: np.where(x > 0, x, 0.01 * x),
                        (-3, 3), [0]),
    "elu": (tf.nn.elu, lambda x: np.where(x > 0, x, np.expm1(x)), (-3, 3), [0]),
    "selu": (tf.nn.selu, lambda x: _SCALE * np.where(x > 0, x, _ALPHA * np.expm1(x)), (-3, 3), [0]),
    "gelu": (tf.nn.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), (-4, 4), []),
    "gelu_tanh": (lambda x: tf.nn.gelu(x, approximate=True),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), (-4, 4), []),
    "erf": (tf.nn.erf, _erf, (-4, 4), []),
    "softplus": (tf.nn.softplus, lambda x: np.log1p(np.exp(x)), (-5, 5), []),
    "softsign": (tf.nn.softsign, lambda x: x / (1 + np.abs(x)), (-3, 3), [0]),
    "silu": (tf.nn.silu, lambda x: x * _sigmoid(x), (-5, 5), []),
    "swish_beta": (lambda x: tf.nn.swish(x, beta=1.5), lambda x: x * _sigmoid(1.5 * x), (-5, 5), []),
    "sigmoid": (tf.nn.sigmoid, _sigmoid, (-5, 5), []),
    "tanh": (tf.nn.tanh, np.tanh, (-3, 3), []),
}
SECOND_ORDER = ["elu", "selu", "gelu", "gelu_tanh", "erf", "softplus", "softsign", "silu", "swish_beta"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values(device, name, dtype):
    fn, reference, (low, high), _ = ACTIVATIONS[name]
    x = _rand((3, 5), dtype, low, high)
    _assert_close(fn(tf.constant(x)), reference(x.astype(np.float64)), dtype)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients(name):
    fn, _, (low, high), kinks = ACTIVATIONS[name]
    testing.check_gradients(fn, [_away_from(_rand((2, 5), np.float64, low, high, seed=1), kinks)])


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_activation_second_derivatives(name):
    fn, _, (low, high), kinks = ACTIVATIONS[name]
    _check_second_order(fn, [_away_from(_rand((2, 4), np.float64, low, high, seed=2), kinks)])


def test_relu_gradient_at_zero_is_zero():
    x = tf.constant([-1.0, 0.0, 1.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.relu(x)
    np.testing.assert_array_equal(tape.gradient(y, x), [0.0, 0.0, 1.0])


def test_erf_matches_math_erf_to_float64_precision():
    # Cody's approximations: measured max relative error 4.5e-16 over [-30, 30]; asserted at 2e-15
    x = np.concatenate([np.linspace(-6, 6, 2001), [0.0, 1e-12, -1e-300, 0.46875, 4.0, 26.0, 30.0]])
    got = np.asarray(tf.nn.erf(tf.constant(x)))
    np.testing.assert_allclose(got, _erf(x), rtol=2e-15, atol=1e-300)
    np.testing.assert_array_equal(np.asarray(tf.nn.erf(tf.constant([np.inf, -np.inf]))), [1.0, -1.0])
    assert np.isnan(np.asarray(tf.nn.erf(tf.constant([np.nan])))).all()


@pytest.mark.filterwarnings("error")  # no overflow in exp/expm1 for large |x|
@pytest.mark.parametrize("dtype", FLOATS)
def test_activations_stay_finite_for_large_inputs(device, dtype):
    x = tf.constant(np.array([-1000.0, -80.0, 80.0, 1000.0], dtype))
    for fn in (tf.nn.softplus, tf.nn.elu, tf.nn.selu, tf.nn.gelu, tf.nn.silu, tf.nn.erf):
        assert np.isfinite(np.asarray(fn(x))).all(), fn.__name__
    np.testing.assert_allclose(np.asarray(tf.nn.softplus(x)).astype(np.float64), [0, 0, 80, 1000], atol=1e-6)


# --- softmax and log_softmax ---------------------------------------------------------------------------------------
def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_values(device, axis, dtype):
    x = _rand((3, 4, 2), dtype, -3, 3)
    expected = _log_softmax(x.astype(np.float64), axis)
    _assert_close(tf.nn.log_softmax(tf.constant(x), axis=axis), expected, dtype)
    _assert_close(tf.nn.softmax(tf.constant(x), axis=axis), np.exp(expected), dtype)


@pytest.mark.filterwarnings("error")
def test_softmax_is_stable_for_huge_logits(device):
    x = tf.constant([[1000.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(np.asarray(tf.nn.softmax(x)), [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(np.asarray(tf.nn.log_softmax(x))[0, :2], [-np.log(2)] * 2, rtol=1e-6)


@pytest.mark.parametrize("fn", [tf.nn.softmax, tf.nn.log_softmax])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_gradients_first_and_second_order(fn, axis):
    weights = _rand((3, 4), seed=9)  # a weighted sum, or the gradient of sum(softmax) would be identically 0
    x = _rand((3, 4), seed=3)
    testing.check_gradients(lambda t: fn(t, axis=axis) * weights, [x])
    _check_second_order(lambda t: fn(t, axis=axis) * weights, [x])


# --- losses --------------------------------------------------------------------------------------------------------
def _distribution(shape, seed):
    p = _rand(shape, low=0.1, high=1.0, seed=seed)
    return p / p.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_cross_entropy_values(device, dtype):
    labels, logits = _distribution((4, 5), 1).astype(dtype), _rand((4, 5), dtype, -3, 3)
    expected = -(labels * _log_softmax(logits.astype(np.float64), -1)).sum(-1)
    _assert_close(tf.nn.softmax_cross_entropy_with_logits(tf.constant(labels), tf.constant(logits)), expected,
                  dtype)
    by_columns = tf.nn.softmax_cross_entropy_with_logits(tf.constant(labels.T), tf.constant(logits.T), axis=0)
    _assert_close(by_columns, expected, dtype)


def test_softmax_cross_entropy_gradients():
    labels, logits = _distribution((3, 4), 2), _rand((3, 4), seed=3)
    testing.check_gradients(tf.nn.softmax_cross_entropy_with_logits, [labels, logits])
    testing.check_gradients(tf.nn.softmax_cross_entropy_with_logits, [labels * 1.7, logits])  # rows not summing to 1
    _check_second_order(tf.nn.softmax_cross_entropy_with_logits, [labels, logits], wrt=1)
    # the documented closed form: softmax - labels for labels that are distributions
    lab, log = tf.constant(labels), tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(log)
        loss = tf.nn.softmax_cross_entropy_with_logits(lab, log)
    np.testing.assert_allclose(tape.gradient(loss, log), np.exp(_log_softmax(logits, -1)) - labels, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sparse_softmax_cross_entropy_values(device, dtype):
    labels, logits = np.array([[0, 3], [2, 1]]), _rand((2, 2, 4), dtype, -3, 3)
    expected = -np.take_along_axis(_log_softmax(logits.astype(np.float64), -1), labels[..., None], -1)[..., 0]
    for given in (labels, tf.constant(labels), tf.constant(labels.astype(np.int64))):
        _assert_close(tf.nn.sparse_softmax_cross_entropy_with_logits(given, tf.constant(logits)), expected, dtype)
    _assert_close(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.constant(logits)),
                  expected, dtype)


def test_sparse_softmax_cross_entropy_gradients():
    labels = np.array([1, 0, 3])
    fn = lambda logits: tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)  # noqa: E731
    testing.check_gradients(fn, [_rand((3, 4), seed=4)])
    _check_second_order(fn, [_rand((3, 4), seed=4)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_cross_entropy_values_and_gradients(device, dtype):
    labels, logits = _rand((3, 4), dtype, 0, 1, seed=5), _rand((3, 4), dtype, -4, 4, seed=6)
    x, z = logits.astype(np.float64), labels.astype(np.float64)
    expected = -z * np.log(_sigmoid(x)) - (1 - z) * np.log(1 - _sigmoid(x))
    _assert_close(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.constant(labels), logits=tf.constant(logits)),
                  expected, dtype)
    big = tf.nn.sigmoid_cross_entropy_with_logits(tf.constant([1.0, 0.0]), tf.constant([-500.0, 500.0]))
    np.testing.assert_allclose(np.asarray(big), [500.0, 500.0])  # stable form: no log(0)
    if device == "/CPU:0":
        testing.check_gradients(tf.nn.sigmoid_cross_entropy_with_logits, [z, x])
        _check_second_order(tf.nn.sigmoid_cross_entropy_with_logits, [z, x], wrt=1)


@pytest.mark.parametrize("dtype", FLOATS)
def test_l2_loss_moments_l2_normalize_batch_normalization(device, dtype):
    x = _rand((4, 3), dtype, seed=7)
    x64 = x.astype(np.float64)
    loss = tf.nn.l2_loss(tf.constant(x))
    assert loss.shape == ()
    _assert_close(loss, (x64 ** 2).sum() / 2, dtype)
    mean, variance = tf.nn.moments(tf.constant(x), axes=[0])
    _assert_close(mean, x64.mean(0), dtype)
    _assert_close(variance, x64.var(0), dtype)
    mean, variance = tf.nn.moments(tf.constant(x), axes=[0, 1], keepdims=True)
    _assert_close(variance, x64.var(keepdims=True), dtype)
    _assert_close(tf.nn.l2_normalize(tf.constant(x), axis=1), x64 / np.linalg.norm(x64, axis=1, keepdims=True),
                  dtype)
    m, v, offset, scale = x64.mean(0), x64.var(0), np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 0.5])
    got = tf.nn.batch_normalization(tf.constant(x), *(tf.constant(a.astype(dtype)) for a in (m, v, offset, scale)),
                                    variance_epsilon=1e-3)
    _assert_close(got, (x64 - m) / np.sqrt(v + 1e-3) * scale + offset, dtype)


def test_l2_loss_moments_l2_normalize_gradients():
    x = _rand((4, 3), seed=8)
    testing.check_gradients(tf.nn.l2_loss, [x])
    testing.check_gradients(lambda t: tf.nn.moments(t, axes=[0])[1] * [1.0, 2.0, 3.0], [x])
    _check_second_order(lambda t: tf.nn.moments(t, axes=[0])[1], [x])  # variance's mean term matters here
    testing.check_gradients(lambda t: tf.nn.l2_normalize(t, axis=0) * x, [x])


# --- dropout -------------------------------------------------------------------------------------------------------
def test_dropout_zeroes_about_rate_and_scales_the_rest(device):
    x = tf.constant(np.full((200, 100), 3.0, np.float32))
    y = np.asarray(tf.nn.dropout(x, rate=0.25, seed=1))
    assert y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, np.float32(4.0)}
    assert abs((y == 0).mean() - 0.25) < 0.02


def test_dropout_noise_shape_drops_whole_rows(device):
    y = np.asarray(tf.nn.dropout(tf.ones((50, 8)), rate=0.5, noise_shape=[50, 1], seed=2))
    assert ((y == 0).all(axis=1) | (y == 2).all(axis=1)).all()
    assert 0 < (y[:, 0] == 0).sum() < 50


def test_dropout_rate_zero_is_identity_and_seeded_calls_repeat(device):
    x = tf.constant(_rand((4, 5), np.float32))
    np.testing.assert_array_equal(np.asarray(tf.nn.dropout(x, 0.0)), np.asarray(x))
    random_ops.set_seed(7)
    a = np.asarray(tf.nn.dropout(x, 0.5, seed=3))
    random_ops.set_seed(7)
    b = np.asarray(tf.nn.dropout(x, 0.5, seed=3))
    random_ops.set_seed(None)
    np.testing.assert_array_equal(a, b)


def test_dropout_gradient_is_the_mask():
    x = tf.constant(_rand((6, 7), seed=4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.dropout(x, rate=0.5, seed=5)
    mask = np.asarray(y) / np.asarray(x)
    np.testing.assert_allclose(tape.gradient(y, x), mask)
    assert set(np.round(np.unique(mask), 12)) <= {0.0, 2.0}


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "half"])
def test_dropout_rejects_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=r"dropout: rate must be .*\[0, 1\)"):
        tf.nn.dropout(tf.ones((2, 2)), rate)


def test_dropout_rejects_integer_input_and_bad_noise_shape():
    with pytest.raises(ValueError, match="dropout: x must be a floating tensor, got dtype int32"):
        tf.nn.dropout(tf.constant([1, 2]), 0.5)
    with pytest.raises(errors.InvalidArgumentError, match=r"noise_shape \[3, 1\] .* \(2, 2\)"):
        tf.nn.dropout(tf.ones((2, 2)), 0.5, noise_shape=[3, 1])


# --- bias_add ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_add_values_and_gradients(device, dtype):
    value, bias = _rand((2, 3, 4), dtype), _rand((4,), dtype, seed=1)
    _assert_close(tf.nn.bias_add(tf.constant(value), tf.constant(bias)), value + bias, dtype)
    channels_first = tf.nn.bias_add(tf.constant(value), tf.constant(bias[:3]), data_format="NCHW")
    _assert_close(channels_first, value + bias[:3, None], dtype)
    if device == "/CPU:0":
        testing.check_gradients(lambda v, b: tf.nn.bias_add(v, b) * value, [value, bias])
        testing.check_gradients(lambda v, b: tf.nn.bias_add(v, b, "NCHW") * value, [value, bias[:3]])


def test_bias_add_rejects_a_bias_of_the_wrong_size():
    with pytest.raises(errors.InvalidArgumentError, match=r"bias_add: bias must have shape \(4,\).*got shape \(3,\)"):
        tf.nn.bias_add(tf.ones((2, 4)), tf.ones((3,)))
    with pytest.raises(errors.InvalidArgumentError, match=r"bias_add: value must have rank >= 2"):
        tf.nn.bias_add(tf.ones((4,)), tf.ones((4,)))


# --- conv2d --------------------------------------------------------------------------------------------------------
def _same_pads(size, k, stride, dilation):
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(padding, x_shape, window, strides, dilations=(1, 1)):
    if padding == "VALID":
        return (0, 0), (0, 0)
    if padding == "SAME":
        return tuple(_same_pads(x_shape[1 + a], window[a], strides[a], dilations[a]) for a in range(2))
    return tuple(tuple(p) for p in padding[1:3])


def _conv_reference(x, w, strides, padding, dilations):
    """Direct-loop convolution in float64."""
    (pt, pb), (pl, pr) = _pads(padding, x.shape, w.shape[:2], strides, dilations)
    x = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    (sh, sw), (dh, dw), (kh, kw, _, f) = strides, dilations, w.shape
    oh, ow = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1, (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    out[:, i, j] += x[:, i * sh + a * dh, j * sw + b * dw] @ w[a, b]
    return out


# (input shape, filter shape, strides, padding, dilations): even and odd sizes so SAME pads asymmetrically
CONV_CASES = [
    ((2, 5, 5, 3), (3, 3, 3, 4), (1, 1), "SAME", (1, 1)),
    ((2, 5, 6, 3), (3, 2, 3, 4), (2, 2), "SAME", (1, 1)),
    ((1, 6, 6, 2), (3, 3, 2, 3), (2, 1), "SAME", (1, 1)),
    ((1, 7, 6, 2), (3, 3, 2, 3), (1, 2), "VALID", (1, 1)),
    ((1, 7, 7, 2), (3, 3, 2, 2), (1, 1), "SAME", (2, 2)),
    ((1, 8, 7, 2), (2, 3, 2, 2), (2, 2), "VALID", (2, 1)),
    ((2, 4, 5, 1), (3, 3, 1, 2), (1, 1), [[0, 0], [1, 2], [0, 1], [0, 0]], (1, 1)),
    ((1, 6, 6, 2), (3, 3, 2, 2), (2, 2), [[0, 0], [2, 0], [1, 1], [0, 0]], (1, 2)),
]
_ids = [f"{c[0]}-{c[1]}-s{c[2]}-{c[3] if isinstance(c[3], str) else 'explicit'}-d{c[4]}" for c in CONV_CASES]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_conv2d_values_match_a_direct_loop(device, case, dtype):
    x_shape, w_shape, strides, padding, dilations = case
    x, w = _rand(x_shape, dtype, seed=1), _rand(w_shape, dtype, seed=2)
    got = tf.nn.conv2d(tf.constant(x), tf.constant(w), strides=list(strides), padding=padding,
                       dilations=list(dilations))
    _assert_close(got, _conv_reference(x, w, strides, padding, dilations), dtype)


def test_conv2d_strides_and_dilations_in_every_tensorflow_form(device):
    x, w = _rand((1, 7, 7, 2)), _rand((3, 3, 2, 3), seed=1)
    expected = _conv_reference(x, w, (2, 2), "SAME", (1, 1))
    for strides in (2, [2], [2, 2], [1, 2, 2, 1]):
        _assert_close(tf.nn.conv2d(tf.constant(x), tf.constant(w), strides, "SAME"), expected, np.float64)
    expected = _conv_reference(x, w, (1, 1), "VALID", (2, 2))
    for dilations in (2, [2, 2], [1, 2, 2, 1]):
        _assert_close(tf.nn.conv2d(x, tf.constant(w), 1, "VALID", dilations=dilations), expected, np.float64)


def test_conv2d_nchw_matches_nhwc(device):
    x, w = _rand((2, 6, 5, 3)), _rand((3, 3, 3, 4), seed=1)
    expected = _conv_reference(x, w, (2, 1), "SAME", (1, 1)).transpose(0, 3, 1, 2)
    got = tf.nn.conv2d(tf.constant(x.transpose(0, 3, 1, 2)), tf.constant(w), [1, 1, 2, 1], "SAME",
                       data_format="NCHW")
    _assert_close(got, expected, np.float64)


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[5], CONV_CASES[7]], ids=[_ids[1], _ids[5], _ids[7]])
def test_conv2d_gradients(case):
    x_shape, w_shape, strides, padding, dilations = case
    x, w = _rand((1,) + x_shape[1:], seed=3), _rand(w_shape, seed=4)
    weights = _rand(_conv_reference(x, w, strides, padding, dilations).shape, seed=5)
    conv = lambda a, b: tf.nn.conv2d(a, b, strides, padding, dilations=dilations) * weights  # noqa: E731
    testing.check_gradients(conv, [x, w])


def test_conv2d_nchw_gradients():
    x, w = _rand((1, 2, 5, 4), seed=3), _rand((3, 3, 2, 2), seed=4)
    testing.check_gradients(lambda a, b: tf.square(tf.nn.conv2d(a, b, 2, "SAME", data_format="NCHW")), [x, w])


@pytest.mark.parametrize("wrt", [0, 1])
def test_conv2d_second_derivatives(wrt):
    x, w = _rand((1, 5, 4, 2), seed=6), _rand((3, 2, 2, 2), seed=7)
    fn = lambda a, b: tf.square(tf.nn.conv2d(a, b, [2, 1], "SAME", dilations=[1, 2]))  # noqa: E731
    _check_second_order(fn, [x, w], wrt=wrt, rtol=1e-5, atol=1e-6)


def test_conv2d_transpose_is_the_adjoint_of_conv2d(device):
    x, w = _rand((2, 6, 5, 3), seed=1), _rand((3, 3, 3, 4), seed=2)
    y = _rand(_conv_reference(x, w, (2, 2), "SAME", (1, 1)).shape, seed=3)
    back = tf.nn.conv2d_transpose(tf.constant(y), tf.constant(w), output_shape=x.shape, strides=2, padding="SAME")
    assert back.shape == x.shape
    forward = _conv_reference(x, w, (2, 2), "SAME", (1, 1))
    np.testing.assert_allclose((forward * y).sum(), (x * np.asarray(back)).sum(), rtol=1e-10)
    same = tf.nn.conv2d_backprop_input(x.shape, tf.constant(w), tf.constant(y), [1, 2, 2, 1], "SAME")
    np.testing.assert_array_equal(np.asarray(same), np.asarray(back))
    dw = tf.nn.conv2d_backprop_filter(tf.constant(x), w.shape, tf.constant(y), 2, "SAME")
    np.testing.assert_allclose((forward * y).sum(), (w * np.asarray(dw)).sum(), rtol=1e-10)


def test_conv2d_backprop_ops_gradients():
    x, w = _rand((1, 5, 4, 2), seed=1), _rand((3, 3, 2, 3), seed=2)
    y = _rand((1, 3, 2, 3), seed=3)
    config = dict(strides=2, padding="SAME")
    testing.check_gradients(
        lambda b, dy: tf.square(tf.nn.conv2d_backprop_input(x.shape, b, dy, **config)), [w, y])
    testing.check_gradients(
        lambda a, dy: tf.square(tf.nn.conv2d_backprop_filter(a, w.shape, dy, **config)), [x, y])


def test_conv1d_matches_conv2d_on_a_row(device):
    x, w = _rand((2, 9, 3), seed=1), _rand((3, 3, 4), seed=2)
    expected = _conv_reference(x[:, None], w[None], (1, 2), "SAME", (1, 1))[:, 0]
    _assert_close(tf.nn.conv1d(tf.constant(x), tf.constant(w), stride=2, padding="SAME"), expected, np.float64)
    expected = _conv_reference(x[:, None], w[None], (1, 1), [[0, 0], [0, 0], [2, 1], [0, 0]], (1, 1))[:, 0]
    got = tf.nn.conv1d(tf.constant(x), tf.constant(w), 1, [[0, 0], [2, 1], [0, 0]])
    _assert_close(got, expected, np.float64)


# --- pooling -------------------------------------------------------------------------------------------------------
def _pool_reference(x, kind, ksize, strides, padding):
    (pt, pb), (pl, pr) = _pads(padding, x.shape, ksize, strides)
    fill = -np.inf if kind == "max" else np.nan
    x = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    (kh, kw), (sh, sw) = ksize, strides
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, i, j] = window.max(axis=(1, 2)) if kind == "max" else np.nanmean(window, axis=(1, 2))
    return out


POOL_CASES = [
    ((2, 5, 5, 3), (2, 2), (2, 2), "SAME"),
    ((2, 5, 5, 3), (2, 2), (2, 2), "VALID"),
    ((1, 6, 7, 2), (3, 3), (2, 2), "SAME"),
    ((1, 6, 7, 2), (3, 2), (1, 2), "VALID"),
    ((1, 4, 4, 2), (3, 3), (1, 1), "SAME"),
    ((1, 5, 4, 1), (2, 3), (2, 1), [[0, 0], [1, 0], [1, 1], [0, 0]]),
]
_pool_ids = [f"{c[0]}-k{c[1]}-s{c[2]}-{c[3] if isinstance(c[3], str) else 'explicit'}" for c in POOL_CASES]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_ids)
def test_pool_values_match_a_direct_loop(device, case, kind, dtype):
    x_shape, ksize, strides, padding = case
    x = _rand(x_shape, dtype)
    fn = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    _assert_close(fn(tf.constant(x), list(ksize), list(strides), padding),
                  _pool_reference(x, kind, ksize, strides, padding), dtype)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_aliases_nchw_and_1d(device, kind):
    x = _rand((2, 5, 6, 3))
    expected = _pool_reference(x, kind, (3, 3), (2, 2), "SAME")
    alias = tf.nn.max_pool if kind == "max" else tf.nn.avg_pool
    pool2d = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    _assert_close(alias(tf.constant(x), 3, 2, "SAME"), expected, np.float64)
    nchw = pool2d(tf.constant(x.transpose(0, 3, 1, 2)), [1, 1, 3, 3], [1, 1, 2, 2], "SAME", data_format="NCHW")
    _assert_close(nchw, expected.transpose(0, 3, 1, 2), np.float64)
    row = x[:, 0]
    expected_1d = _pool_reference(row[:, None], kind, (1, 3), (1, 2), "SAME")[:, 0]
    _assert_close(alias(tf.constant(row), 3, 2, "SAME"), expected_1d, np.float64)
    pool1d = tf.nn.max_pool1d if kind == "max" else tf.nn.avg_pool1d
    _assert_close(pool1d(tf.constant(row.transpose(0, 2, 1)), [3], [2], "SAME", data_format="NCW"),
                  expected_1d.transpose(0, 2, 1), np.float64)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", [POOL_CASES[0], POOL_CASES[2], POOL_CASES[5]],
                         ids=[_pool_ids[0], _pool_ids[2], _pool_ids[5]])
def test_pool_gradients_first_and_second_order(case, kind):
    x_shape, ksize, strides, padding = case
    x = _rand((1,) + x_shape[1:], seed=8)  # continuous values: no ties, so max pooling is smooth here
    fn = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    pool = lambda t: tf.square(fn(t, ksize, strides, padding))  # noqa: E731
    testing.check_gradients(pool, [x])
    _check_second_order(pool, [x])


def test_max_pool_gradient_goes_to_the_first_maximum_and_its_adjoint_agrees():
    x = np.array([[3, 1, 3], [3, 2, 0], [1, 3, 3]], np.float64)[None, :, :, None]  # ties in every window
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.nn.max_pool2d(t, 2, 1, "VALID")
    grad = np.asarray(tape.gradient(y, t))[0, :, :, 0]
    np.testing.assert_array_equal(grad, [[1, 0, 1], [1, 0, 0], [0, 1, 0]])  # row-major first 3 of each window
    # the second-order helper picks the same cells: <select(x, v), g> == <v, max_pool_grad(x, out, g)>
    v, g = _rand(x.shape, seed=1), _rand((1, 2, 2, 1), seed=2)
    config = dict(ksize=2, strides=1, padding="VALID")
    picked = conv_ops._max_pool2d_select(t, tf.constant(v), **config)
    spread = conv_ops._max_pool2d_grad(t, y, tf.constant(g), **config)
    np.testing.assert_allclose((np.asarray(picked) * g).sum(), (v * np.asarray(spread)).sum(), rtol=1e-12)
    # and its own gradient (what a third derivative of max pooling uses)
    smooth = tf.constant(_rand((1, 4, 5, 2), seed=3))
    select = lambda values: tf.square(conv_ops._max_pool2d_select(smooth, values, 3, 2, "SAME"))  # noqa: E731
    testing.check_gradients(select, [_rand((1, 4, 5, 2), seed=4)])


def test_avg_pool_same_divides_by_the_real_cells_only(device):
    out = tf.nn.avg_pool2d(tf.ones((1, 3, 3, 1)), 2, 2, "SAME")
    np.testing.assert_array_equal(np.asarray(out), np.ones((1, 2, 2, 1), np.float32))


# --- CPU/GPU parity of first and second derivatives ----------------------------------------------------------------
_LABELS = np.array([2, 0, 1])
PARITY = {  # name: (function, input shapes)
    "conv2d": (lambda x, w: tf.square(tf.nn.conv2d(x, w, [2, 1], "SAME", dilations=[1, 2])), [(2, 6, 5, 3),
                                                                                              (3, 2, 3, 4)]),
    "max_pool2d": (lambda x: tf.square(tf.nn.max_pool2d(x, 3, 2, "SAME")), [(2, 6, 5, 3)]),
    "avg_pool2d": (lambda x: tf.square(tf.nn.avg_pool2d(x, [2, 3], 2, "SAME")), [(2, 6, 5, 3)]),
    "softmax_cross_entropy": (lambda a, b: tf.nn.softmax_cross_entropy_with_logits(tf.nn.softmax(a), b),
                              [(3, 4), (3, 4)]),
    "sparse_softmax_cross_entropy": (lambda x: tf.nn.sparse_softmax_cross_entropy_with_logits(_LABELS, x), [(3, 4)]),
    "activations": (lambda x: tf.nn.gelu(x) * tf.nn.elu(x) + tf.nn.softplus(x) * tf.nn.silu(x), [(3, 4)]),
    "bias_add_l2_normalize": (lambda x, b: tf.nn.l2_normalize(tf.nn.bias_add(x, b), axis=-1) * x, [(3, 4), (4,)]),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(PARITY))
def test_first_and_second_derivatives_agree_on_cpu_and_gpu(name):
    fn, shapes = PARITY[name]
    inputs = [_rand(shape, seed=i) for i, shape in enumerate(shapes)]
    second = _first_gradient(lambda *xs: tf.reduce_sum(tf.square(_first_gradient(fn, 0)(*xs))), 0)
    testing.assert_parity(lambda *xs: [fn(*xs)] + [_first_gradient(fn, i)(*xs) for i in range(len(xs))] +
                          [second(*xs)], inputs, rtol=1e-9, atol=1e-10)


# --- bad input -----------------------------------------------------------------------------------------------------
def test_conv2d_rejects_wrong_ranks_and_channel_mismatch():
    with pytest.raises(errors.InvalidArgumentError, match=r"conv2d: input must have rank 4 .*\(5, 5, 3\)"):
        tf.nn.conv2d(tf.ones((5, 5, 3)), tf.ones((3, 3, 3, 4)), 1, "SAME")
    with pytest.raises(errors.InvalidArgumentError, match=r"conv2d: filters must have rank 4 .*\(3, 3, 4\)"):
        tf.nn.conv2d(tf.ones((1, 5, 5, 3)), tf.ones((3, 3, 4)), 1, "SAME")
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"conv2d: the input has 3 channels .*\(1, 5, 5, 3\).*\(3, 3, 2, 4\) expect 2"):
        tf.nn.conv2d(tf.ones((1, 5, 5, 3)), tf.ones((3, 3, 2, 4)), 1, "SAME")
    with pytest.raises(errors.InvalidArgumentError, match="conv2d: filters has dtype float64 but input has dtype float32"):
        tf.nn.conv2d(tf.ones((1, 5, 5, 3)), tf.ones((3, 3, 3, 4), dtype=tf.float64), 1, "SAME")


@pytest.mark.parametrize("kwargs, message", [
    (dict(padding="FULL"), r"conv2d: padding must be 'SAME', 'VALID' or .* got 'FULL'"),
    (dict(padding=[[0, 0], [1, 1], [1, 1]]), r"conv2d: padding must be"),
    (dict(padding=[[0, 0], [1, -1], [1, 1], [0, 0]]), r"conv2d: padding must be"),
    (dict(padding=[[1, 0], [1, 1], [1, 1], [0, 0]]), r"conv2d: explicit padding .* batch and channel"),
    (dict(strides=[1, 2, 2]), r"conv2d: strides must be a positive int or a list of 1, 2 or 4"),
    (dict(strides=0), r"conv2d: strides must be a positive"),
    (dict(strides=[2, 1, 1, 1]), r"conv2d: strides \[2, 1, 1, 1\] must be 1 in the batch and channel"),
    (dict(dilations="x"), r"conv2d: dilations must be an int or a list"),
    (dict(data_format="NWHC"), r"conv2d: data_format must be 'NHWC' or 'NCHW', got 'NWHC'"),
    (dict(padding="VALID", dilations=3), r"conv2d: a window of size \(3, 3\) \(spanning \(7, 7\).*\(5, 5\)"),
])
def test_conv2d_rejects_malformed_arguments(kwargs, message):
    arguments = dict(strides=1, padding="SAME")
    arguments.update(kwargs)
    with pytest.raises(errors.InvalidArgumentError, match=message):
        tf.nn.conv2d(tf.ones((1, 5, 5, 3)), tf.ones((3, 3, 3, 4)), **arguments)


def test_conv2d_backprop_input_rejects_an_out_backprop_of_the_wrong_shape():
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"conv2d_backprop_input: out_backprop has NHWC shape \(1, 4, 4, 2\).*gives "
                             r"\(1, 3, 3, 2\)"):
        tf.nn.conv2d_backprop_input([1, 5, 5, 3], tf.ones((3, 3, 3, 2)), tf.ones((1, 4, 4, 2)), 2, "SAME")


def test_pools_reject_bad_input():
    with pytest.raises(errors.InvalidArgumentError, match=r"max_pool2d: input must have rank 4 .*\(4, 4, 1\)"):
        tf.nn.max_pool2d(tf.ones((4, 4, 1)), 2, 2, "VALID")
    with pytest.raises(errors.InvalidArgumentError, match=r"avg_pool2d: padding must be 'SAME', 'VALID'.*'same-ish'"):
        tf.nn.avg_pool2d(tf.ones((1, 4, 4, 1)), 2, 2, "same-ish")
    with pytest.raises(errors.InvalidArgumentError, match=r"max_pool2d: a window of size \(5, 5\)"):
        tf.nn.max_pool2d(tf.ones((1, 4, 4, 1)), 5, 1, "VALID")
    with pytest.raises(errors.InvalidArgumentError, match=r"max_pool2d: padding .* must be smaller than the window"):
        tf.nn.max_pool2d(tf.ones((1, 4, 4, 1)), 2, 1, [[0, 0], [2, 0], [0, 0], [0, 0]])
    with pytest.raises(errors.InvalidArgumentError, match=r"max_pool: input must have rank 3 .* or 4 .*\(1, 2, 4, 4, 1\)"):
        tf.nn.max_pool(tf.ones((1, 2, 4, 4, 1)), 2, 2, "VALID")
    with pytest.raises(errors.InvalidArgumentError, match=r"max_pool1d: data_format must be 'NWC' or 'NCW'"):
        tf.nn.max_pool1d(tf.ones((1, 4, 1)), 2, 2, "VALID", data_format="NHWC")


@pytest.mark.parametrize("label", [4, -1])
def test_sparse_softmax_cross_entropy_rejects_out_of_range_labels(label):
    """On the CPU, as TF's CPU kernel; on a GPU such labels give NaN rows instead (tests/kernels/test_fused.py)."""
    with tf.device("/CPU:0"), pytest.raises(errors.InvalidArgumentError,
                       match=rf"sparse_softmax_cross_entropy_with_logits: label {label} at index \[1\] is out of "
                             r"range \[0, 4\): logits have 4 classes"):
        tf.nn.sparse_softmax_cross_entropy_with_logits([0, label, 2], tf.ones((3, 4)))


def test_losses_reject_mismatched_shapes_and_float_labels():
    with pytest.raises(errors.InvalidArgumentError, match=r"labels must have logits' shape without the class axis, "
                                                          r"got labels \(2,\) and logits \(3, 4\)"):
        tf.nn.sparse_softmax_cross_entropy_with_logits([0, 1], tf.ones((3, 4)))
    with pytest.raises(TypeError, match="sparse_softmax_cross_entropy_with_logits: labels must be integers"):
        tf.nn.sparse_softmax_cross_entropy_with_logits([0.0, 1.0, 2.0], tf.ones((3, 4)))
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"softmax_cross_entropy_with_logits: .* got labels \(3, 3\) and logits \(3, 4\)"):
        tf.nn.softmax_cross_entropy_with_logits(tf.ones((3, 3)), tf.ones((3, 4)))
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"sigmoid_cross_entropy_with_logits: .* got labels \(4,\) and logits \(3, 4\)"):
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones((4,)), logits=tf.ones((3, 4)))
    with pytest.raises(errors.InvalidArgumentError, match=r"softmax: axis 2 is out of range for a tensor of rank 2"):
        tf.nn.softmax(tf.ones((2, 3)), axis=2)


def test_nn_namespace_reexports_math_activations():
    assert tf.nn.sigmoid is tf.sigmoid and tf.nn.tanh is tf.tanh and tf.nn.swish is tf.nn.silu
    assert tf.nn.max_pool2d is nn_ops.max_pool2d
