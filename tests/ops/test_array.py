"""Tests for cuflow/ops/array.py: values against NumPy (float64 and float32, on every device), gradients against
central finite differences, second derivatives, bad input, ``Tensor.__getitem__`` and the Python protocol of
Tensor that these ops serve (len, iteration, bool, repr, NumPy conversion)."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import errors, testing
from cuflow.ops import array as array_ops

from .helpers import FLOATS
from .helpers import gradient_of as _gradient_of, grads as _grads, raises as _raises, rand as _rand

X = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7 - 1.5  # distinct values: every index shows up


def _assert_same(tensor, expected, dtype=None):
    """``tensor`` equals ``expected`` exactly (layout ops move values, they do not compute them)."""
    assert isinstance(tensor, tf.Tensor)
    expected = np.asarray(expected)
    assert tensor.dtype == (dtype or expected.dtype), f"dtype {tensor.dtype.name}"
    got = np.asarray(tensor)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def _on_device(tensor, device):
    assert tensor.device.endswith(device.replace("/", "device:")), (tensor.device, device)


def _weights(shape, seed=99):
    """Distinct weights, so a gradient that lands in the wrong place cannot cancel out under the sum."""
    return tf.constant(_rand(shape, np.float64, 0.5, 1.5, seed=seed))


def _weighted(fn):
    """``fn``'s output times fixed distinct weights: checks where each gradient goes, not just its total."""
    def weighted(*args):
        out = fn(*args)
        return out * _weights(out.shape)
    return weighted


# --- layout ops: values -------------------------------------------------------------------------------------------
# name: (cuflow call, NumPy reference); each gets the (2, 3, 4) array X
LAYOUT = {
    "reshape": (lambda t: tf.reshape(t, [6, 4]), lambda x: x.reshape(6, 4)),
    "reshape -1": (lambda t: tf.reshape(t, [4, -1, 2]), lambda x: x.reshape(4, 3, 2)),
    "reshape tensor shape": (lambda t: tf.reshape(t, tf.constant([3, 8])), lambda x: x.reshape(3, 8)),
    "reshape flat": (lambda t: tf.reshape(t, [-1]), lambda x: x.ravel()),
    "transpose": (tf.transpose, lambda x: x.transpose()),
    "transpose perm": (lambda t: tf.transpose(t, [2, 0, 1]), lambda x: x.transpose(2, 0, 1)),
    "transpose negative perm": (lambda t: tf.transpose(t, [-1, 1, 0]), lambda x: x.transpose(2, 1, 0)),
    "expand_dims 0": (lambda t: tf.expand_dims(t, 0), lambda x: x[None]),
    "expand_dims 2": (lambda t: tf.expand_dims(t, 2), lambda x: x[:, :, None]),
    "expand_dims -1": (lambda t: tf.expand_dims(t, -1), lambda x: x[..., None]),
    "expand_dims -4": (lambda t: tf.expand_dims(t, -4), lambda x: x[None]),
    "squeeze": (lambda t: tf.squeeze(t[:1, :, :1]), lambda x: x[0, :, 0]),
    "squeeze axis": (lambda t: tf.squeeze(t[:1, :, :1], axis=-1), lambda x: x[:1, :, 0]),
    "squeeze axes": (lambda t: tf.squeeze(t[:1, :, :1], axis=[0, 2]), lambda x: x[0, :, 0]),
    "broadcast_to": (lambda t: tf.broadcast_to(t[:, :1], [3, 2, 3, 4]), lambda x: np.broadcast_to(x[:, :1],
                                                                                                 (3, 2, 3, 4))),
    "tile": (lambda t: tf.tile(t, [2, 1, 3]), lambda x: np.tile(x, (2, 1, 3))),
    "reverse": (lambda t: tf.reverse(t, [1]), lambda x: x[:, ::-1]),
    "reverse axes": (lambda t: tf.reverse(t, [0, -1]), lambda x: x[::-1, :, ::-1]),
    "pad": (lambda t: tf.pad(t, [[1, 0], [0, 2], [1, 1]]), lambda x: np.pad(x, [(1, 0), (0, 2), (1, 1)])),
    "pad value": (lambda t: tf.pad(t, [[0, 0], [1, 1], [0, 0]], constant_values=2.5),
                  lambda x: np.pad(x, [(0, 0), (1, 1), (0, 0)], constant_values=2.5)),
    "concat 0": (lambda t: tf.concat([t, t[:1] * 2], 0), lambda x: np.concatenate([x, x[:1] * 2], 0)),
    "concat axis=-1": (lambda t: tf.concat([t[..., :1], t, t[..., 1:3]], axis=-1),
                       lambda x: np.concatenate([x[..., :1], x, x[..., 1:3]], -1)),
    "concat one": (lambda t: tf.concat([t], axis=1), lambda x: x),
    "stack": (lambda t: tf.stack([t, t * 2]), lambda x: np.stack([x, x * 2])),
    "stack -1": (lambda t: tf.stack([t, t * 2, t * 3], axis=-1), lambda x: np.stack([x, x * 2, x * 3], -1)),
    "stack 1": (lambda t: tf.stack([t, t * 2], axis=1), lambda x: np.stack([x, x * 2], 1)),
    "gather": (lambda t: tf.gather(t, [1, 0, 1]), lambda x: x[[1, 0, 1]]),
    "gather axis": (lambda t: tf.gather(t, [3, 0, 3], axis=2), lambda x: x[:, :, [3, 0, 3]]),
    "gather axis=-2 2d indices": (lambda t: tf.gather(t, [[0, 2], [1, 1]], axis=-2), lambda x: x[:, [[0, 2], [1, 1]]]),
    "gather scalar": (lambda t: tf.gather(t, 1, axis=1), lambda x: x[:, 1]),
    "gather tensor indices": (lambda t: tf.gather(t, tf.constant([2, 0], dtype=tf.int64), axis=1),
                              lambda x: x[:, [2, 0]]),
    "gather_nd full": (lambda t: tf.gather_nd(t, [[0, 1, 2], [1, 2, 3], [0, 1, 2]]),
                       lambda x: x[[0, 1, 0], [1, 2, 1], [2, 3, 2]]),
    "gather_nd rows": (lambda t: tf.gather_nd(t, [[1], [0]]), lambda x: x[[1, 0]]),
    "gather_nd batch": (lambda t: tf.gather_nd(t, [[[0, 1], [1, 2]], [[1, 0], [1, 0]]]),
                        lambda x: x[[[0, 1], [1, 1]], [[1, 2], [0, 0]]]),
    "identity": (tf.identity, lambda x: x),
    "getitem": (lambda t: t[1], lambda x: x[1]),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_layout_values_match_numpy(device, name, dtype):
    fn, reference = LAYOUT[name]
    x = X.astype(dtype)
    got = fn(tf.constant(x))
    _assert_same(got, reference(x))
    _on_device(got, device)


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_layout_gradients(device, name):
    testing.check_gradients(_weighted(LAYOUT[name][0]), [X])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unstack_and_split_values(device, axis):
    parts = tf.unstack(tf.constant(X), axis=axis)
    assert isinstance(parts, list) and len(parts) == X.shape[axis]
    for i, part in enumerate(parts):
        _assert_same(part, np.take(X, i, axis=axis))
    for sizes, expected in [(1, [X.shape[axis]]), ([1, -1], [1, X.shape[axis] - 1]),
                            ([X.shape[axis] - 1, 1], [X.shape[axis] - 1, 1])]:
        parts = tf.split(tf.constant(X), sizes, axis=axis)
        assert [p.shape[axis] for p in parts] == expected
        np.testing.assert_array_equal(np.concatenate([np.asarray(p) for p in parts], axis=axis), X)
    parts = tf.split(tf.constant(X), 2, axis=0)
    _assert_same(parts[1], X[1:])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unstack_and_split_gradients_including_unused_outputs(device, axis):
    # only some outputs reach the target: the others must contribute zeros, in the right place
    testing.check_gradients(lambda t: tf.unstack(t, axis=axis)[1] * 3.0 + tf.unstack(t, axis=axis)[0] ** 2, [X])
    testing.check_gradients(lambda t: tf.split(t, [1, -1], axis=axis)[1] ** 2, [X])
    testing.check_gradients(lambda t: tf.concat(tf.split(t, [2, 1], axis=1)[::-1], axis=1) ** 2, [X])


def test_concat_and_stack_send_each_input_its_own_gradient():
    a, b = _rand((2, 2), seed=1), _rand((1, 2), seed=2)
    testing.check_gradients(_weighted(lambda p, q: tf.concat([p, q, p], axis=0)), [a, b])
    testing.check_gradients(_weighted(lambda p, q: tf.stack([p, q * 2, p], axis=1)), [a, b[:1].repeat(2, 0)])


# --- where, cast, masks, scatter ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_where_selects_and_broadcasts(device, dtype):
    cond = np.array([[True, False, True], [False, False, True]])
    x, y = _rand((2, 3), dtype, seed=3), _rand((3,), dtype, seed=4)
    _assert_same(tf.where(tf.constant(cond), tf.constant(x), tf.constant(y)), np.where(cond, x, y))
    _assert_same(tf.where(tf.constant(cond), tf.constant(x), 0.5), np.where(cond, x, dtype(0.5)))
    _assert_same(tf.where(cond, 2.0, tf.constant(y)), np.where(cond, dtype(2.0), y))
    assert tf.where(tf.constant(cond), 1.0, 2.0).dtype == tf.float32


def test_where_with_only_a_condition_gives_int64_coordinates(device):
    cond = np.array([[True, False, True], [False, False, True]])
    _assert_same(tf.where(tf.constant(cond)), np.argwhere(cond).astype(np.int64))
    _assert_same(tf.where(cond), np.argwhere(cond).astype(np.int64))
    assert tf.where(tf.constant([False, False])).shape == (0, 1)


def test_where_gradient_follows_the_condition_and_sums_broadcast_operands(device):
    cond = tf.constant([[True, False, True], [False, False, True]])
    testing.check_gradients(_weighted(lambda x, y: tf.where(cond, x, y)), [_rand((2, 3)), _rand((3,), seed=5)])
    testing.check_gradients(_weighted(lambda x, y: tf.where(cond, x, y)), [_rand((3,)), _rand((2, 1), seed=5)])
    testing.check_gradients(_weighted(lambda x, y: tf.where(cond[:, :1], x, y)), [_rand((1, 3)), _rand(())])
    gx, gy = _grads(lambda x, y: tf.where(cond, x, y), np.ones((2, 3)), np.ones(3))
    np.testing.assert_array_equal(gx, [[1, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(gy, [1, 2, 0])
    (gx,) = _grads(lambda x: tf.where(cond, x, 0.0), np.ones((2, 3)))
    np.testing.assert_array_equal(gx, [[1, 0, 1], [0, 0, 1]])


@pytest.mark.parametrize("source, target", [(np.float64, tf.float32), (np.float32, tf.float64),
                                            (np.float32, tf.int32), (np.int32, tf.float32), (np.bool_, tf.float32),
                                            (np.float64, tf.bool), (np.int64, tf.int32), (np.float32, tf.float16)])
def test_cast_values(device, source, target):
    x = np.array([-1.7, -0.5, 0.0, 0.5, 1.7, 3.0]).astype(source)
    got = tf.cast(tf.constant(x), target)
    _assert_same(got, x.astype(target.numpy_dtype), dtype=target)  # float -> int truncates toward zero, like TF
    assert tf.cast(tf.constant(x), x.dtype).dtype == x.dtype


def test_cast_gradient_flows_between_floats_and_stops_at_integers():
    x = np.array([0.25, 1.5, -2.0])
    # a wide step: central differences are exact for this quadratic, and float32 rounding stays below rtol
    testing.check_gradients(lambda t: tf.cast(tf.cast(t, tf.float32) * 2, tf.float64) ** 2, [x], rtol=1e-5,
                            delta=1e-2)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y32 = tf.cast(t, tf.float32)
        y = tf.reduce_sum(y32 * y32) + tf.cast(tf.reduce_sum(tf.cast(t, tf.int32)), tf.float32)
    g = tape.gradient(y, t)
    assert g.dtype == tf.float64  # the gradient comes back in the source's dtype
    np.testing.assert_allclose(np.asarray(g), 2 * x, rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_boolean_mask(device, dtype):
    x = X.astype(dtype)
    rows = np.array([True, False])
    _assert_same(tf.boolean_mask(tf.constant(x), rows), x[rows])
    _assert_same(tf.boolean_mask(tf.constant(x), tf.constant(x[..., 0] > 0)), x[x[..., 0] > 0])
    cols = np.array([True, False, True, True])
    _assert_same(tf.boolean_mask(tf.constant(x), tf.constant(cols), axis=2), x[:, :, cols])


def test_boolean_mask_gradient(device):
    mask = tf.constant(X[..., 0] > -1)
    testing.check_gradients(_weighted(lambda t: tf.boolean_mask(t, mask)), [X])
    testing.check_gradients(_weighted(lambda t: tf.boolean_mask(t, [False, True, True], axis=1)), [X])


def test_scatter_nd_adds_duplicates_and_places_slices(device):
    got = tf.scatter_nd([[0], [0], [2]], tf.constant([1.0, 2.0, 4.0]), [4])
    _assert_same(got, np.array([3.0, 0.0, 4.0, 0.0], np.float32))
    got = tf.scatter_nd(tf.constant([[1, 0], [0, 2]]), tf.constant([[5.0, 6.0], [7.0, 8.0]], tf.float64), [2, 3, 2])
    expected = np.zeros((2, 3, 2))
    expected[1, 0], expected[0, 2] = [5, 6], [7, 8]
    _assert_same(got, expected)


def test_scatter_nd_and_gather_nd_gradients(device):
    idx = [[0, 1], [1, 2], [0, 1]]  # a repeated index: its gradients add
    testing.check_gradients(_weighted(lambda u: tf.scatter_nd(idx, u, [2, 3])), [_rand(3)])
    testing.check_gradients(_weighted(lambda t: tf.gather_nd(t, idx)), [X[:, :, 0]])
    (g,) = _grads(lambda t: tf.gather_nd(t, idx), np.zeros((2, 3)))
    np.testing.assert_array_equal(g, [[0, 2, 0], [0, 0, 1]])


# --- gather and getitem: accumulated gradients ----------------------------------------------------------------------
def test_gather_with_repeated_indices_accumulates_the_gradient(device):
    (g,) = _grads(lambda t: tf.gather(t, [2, 0, 2, 2]), np.zeros(4))
    np.testing.assert_array_equal(g, [1, 0, 3, 0])
    (g,) = _grads(lambda t: tf.gather(t, [[1, 1], [0, 1]], axis=1), np.zeros((2, 3)))
    np.testing.assert_array_equal(g, [[1, 3, 0], [1, 3, 0]])


GETITEM_KEYS = {
    "int": 1,
    "negative int": -1,
    "tuple of ints": (1, -2, 3),
    "slice": np.s_[:, 1:],
    "negative step": np.s_[::-1, ::-2],
    "stepped slice": np.s_[:, ::2, 1:4:2],
    "reverse slice with bounds": np.s_[:, 2:0:-1],
    "ellipsis": np.s_[..., 0],
    "ellipsis in the middle": np.s_[1, ..., 2],
    "newaxis": np.s_[None, :, None, 1],
    "newaxis and ellipsis": np.s_[..., None],
    "empty slice": np.s_[:, 3:1],
    "int list with repeats": [1, 0, 1],
    "int list on an inner axis": np.s_[:, [2, 0, 2, -1]],
    "two int arrays": ([0, 1, 1], [2, 0, 2]),
    "int array and slice": ([1, 1], slice(None), 3),
    "int array after newaxis and ellipsis": np.s_[None, ..., [3, -4, 0]],
    "mask and int array": (np.array([False, True]), [2, 0]),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(GETITEM_KEYS))
def test_getitem_values_match_numpy(device, name, dtype):
    x = X.astype(dtype)
    key = GETITEM_KEYS[name]
    np_key = tuple(np.asarray(k) if isinstance(k, list) else k for k in key) if isinstance(key, tuple) else \
        np.asarray(key) if isinstance(key, list) else key
    _assert_same(tf.constant(x)[key], x[np_key])


@pytest.mark.parametrize("name", sorted(GETITEM_KEYS))
def test_getitem_gradients(device, name):
    testing.check_gradients(_weighted(lambda t: t[GETITEM_KEYS[name]]), [X])


def test_getitem_with_tensor_keys(device):
    t = tf.constant(X)
    _assert_same(t[tf.constant(1)], X[1])
    _assert_same(t[:, tf.constant([2, 0, 2])], X[:, [2, 0, 2]])
    _assert_same(t[tf.constant([1, 0], dtype=tf.int64), 1:], X[[1, 0], 1:])
    mask = X > 0
    _assert_same(t[tf.constant(mask)], X[mask])
    _assert_same(t[tf.constant(mask[:, :, 0])], X[mask[:, :, 0]])
    _assert_same(t[t > 0], X[mask])
    _assert_same(t[np.array([True, False])], X[np.array([True, False])])


def test_getitem_gradient_with_repeated_int_array_accumulates(device):
    (g,) = _grads(lambda t: t[[0, 0, 2, 0]], np.zeros(3))
    np.testing.assert_array_equal(g, [3, 0, 1])
    (g,) = _grads(lambda t: t[tf.constant([[1, 1], [1, 0]])] * 2.0, np.zeros((2, 2)))
    np.testing.assert_array_equal(g, [[2, 2], [6, 6]])
    (g,) = _grads(lambda t: t[t > 0.5], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(g, [0, 1, 1])


# --- one_hot and creation -------------------------------------------------------------------------------------------
def test_one_hot(device):
    idx = [0, 2, 3, -1]  # 3 and -1 are out of range for depth 3: all off_value, as in TF
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]], np.float32)
    got = tf.one_hot(idx, 3)
    _assert_same(got, expected)
    _on_device(got, device)
    _assert_same(tf.one_hot(tf.constant(idx), 3, axis=0), expected.T)
    _assert_same(tf.one_hot(tf.constant([[1], [0]]), 2, on_value=5.0, off_value=-1.0, dtype=tf.float64),
                 np.array([[[-1, 5]], [[5, -1]]], np.float64))
    _assert_same(tf.one_hot([1, 0], 2, dtype=tf.int32), np.array([[0, 1], [1, 0]], np.int32))


def test_creation_ops(device):
    cases = [
        (tf.zeros([2, 3]), np.zeros((2, 3), np.float32)),
        (tf.zeros((2,), dtype=tf.int64), np.zeros(2, np.int64)),
        (tf.zeros(tf.constant([1, 2])), np.zeros((1, 2), np.float32)),
        (tf.ones([3]), np.ones(3, np.float32)),
        (tf.ones([2, 2], tf.float64), np.ones((2, 2))),
        (tf.ones([], tf.int32), np.ones((), np.int32)),
        (tf.fill([2, 3], 7), np.full((2, 3), 7, np.int32)),
        (tf.fill([2], 1.5), np.full(2, 1.5, np.float32)),
        (tf.range(5), np.arange(5, dtype=np.int32)),
        (tf.range(1, 10, 3), np.arange(1, 10, 3, dtype=np.int32)),
        (tf.range(5, 0, -2), np.array([5, 3, 1], np.int32)),
        (tf.range(0.0, 1.0, 0.25), np.arange(0, 1, 0.25, dtype=np.float32)),
        (tf.range(3, dtype=tf.float64), np.arange(3.0)),
        (tf.range(tf.constant(4)), np.arange(4, dtype=np.int32)),
        (tf.linspace(0.0, 1.0, 5), np.linspace(0, 1, 5, dtype=np.float32)),
        (tf.linspace(tf.constant(-1.0, tf.float64), 1.0, 3), np.array([-1.0, 0.0, 1.0])),
        (tf.eye(3), np.eye(3, dtype=np.float32)),
        (tf.eye(2, 3, dtype=tf.int32), np.eye(2, 3, dtype=np.int32)),
        (tf.eye(2, batch_shape=[3]), np.broadcast_to(np.eye(2, dtype=np.float32), (3, 2, 2))),
        (tf.zeros_like(tf.constant(X)), np.zeros_like(X)),
        (tf.zeros_like(tf.constant(X), dtype=tf.int32), np.zeros(X.shape, np.int32)),
        (tf.ones_like(tf.constant([[1, 2]])), np.ones((1, 2), np.int32)),
        (tf.ones_like([1.0, 2.0]), np.ones(2, np.float32)),
    ]
    for got, expected in cases:
        _assert_same(got, expected)
        _on_device(got, device)  # created where the user asked, not on the default device


def test_shape_size_rank_identity_stop_gradient(device):
    t = tf.constant(X)
    _assert_same(tf.shape(t), np.array([2, 3, 4], np.int32))
    _assert_same(tf.shape(t, out_type=tf.int64), np.array([2, 3, 4], np.int64))
    _assert_same(tf.size(t), np.array(24, np.int32))
    _assert_same(tf.rank(t), np.array(3, np.int32))
    assert tf.identity(t) is not t
    (g,) = _grads(lambda x: tf.stop_gradient(x) * x + tf.identity(x), [1.0, 2.0])
    np.testing.assert_array_equal(g, [2.0, 3.0])  # d/dx (c * x + x) with c = x held constant


# --- second derivatives ---------------------------------------------------------------------------------------------
SECOND = {
    "getitem slices": lambda t: t[::-1, 1:] ** 3,
    "getitem repeated ints": lambda t: t[[0, 0, 1]] ** 3,
    "getitem mask": lambda t: t[t > 1.0] ** 3,
    "gather": lambda t: tf.gather(t, [2, 2, 0], axis=1) ** 3,
    "gather_nd": lambda t: tf.gather_nd(t, [[0, 1], [0, 1], [1, 0]]) ** 3,
    "scatter_nd": lambda t: tf.scatter_nd([[1], [0]], t, [3, 3]) ** 3,
    "concat and split": lambda t: tf.concat(tf.split(t ** 2, [1, 2], axis=1)[::-1], axis=1) ** 2,
    "stack and unstack": lambda t: tf.stack(tf.unstack(t ** 2, axis=1)[::-1]) ** 2,
    "tile and transpose": lambda t: tf.transpose(tf.tile(t, [2, 1])) ** 3,
    "pad and reverse": lambda t: tf.reverse(tf.pad(t, [[1, 0], [0, 1]]), [1]) ** 3,
    "where": lambda t: tf.where(t > 1.0, t ** 3, -t ** 2),
    "broadcast_to and reshape": lambda t: tf.reshape(tf.broadcast_to(t, [2, 2, 3]), [4, 3]) ** 3,
    "cast": lambda t: tf.cast(tf.cast(t, tf.float32) ** 3, tf.float64),
}


@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_derivatives_match_finite_differences(name):
    x = _rand((2, 3), np.float64, 0.5, 1.5, seed=12)
    # through float32 a tiny step drowns in rounding; a cubic's derivative is quadratic, where a wide step is exact
    tol = dict(rtol=1e-4, atol=1e-5, delta=1e-2) if name == "cast" else dict(rtol=1e-5, atol=1e-6)
    testing.check_gradients(_weighted(_gradient_of(SECOND[name])), [x], **tol)


def test_second_derivative_of_getitem_is_analytic():
    x = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = x[[0, 0, 2]] ** 3
        g = inner.gradient(y, x)
    np.testing.assert_allclose(np.asarray(g), [6.0, 0.0, 27.0])
    np.testing.assert_allclose(np.asarray(outer.gradient(g, x)), [12.0, 0.0, 18.0])


# --- bad input ------------------------------------------------------------------------------------------------------
BAD = [
    ("reshape size", lambda t: tf.reshape(t, [4]), errors.InvalidArgumentError, ["reshape", "6", "(2, 3)", "[4]"]),
    ("reshape two -1", lambda t: tf.reshape(t, [-1, -1]), errors.InvalidArgumentError, ["reshape", "[-1, -1]"]),
    ("reshape -1 no fit", lambda t: tf.reshape(t, [4, -1]), errors.InvalidArgumentError, ["reshape", "[4, -1]"]),
    ("transpose repeated", lambda t: tf.transpose(t, [0, 0]), errors.InvalidArgumentError,
     ["transpose", "[0, 0]", "(2, 3)"]),
    ("transpose short", lambda t: tf.transpose(t, [1]), errors.InvalidArgumentError, ["transpose", "[1]"]),
    ("transpose out of range", lambda t: tf.transpose(t, [0, 5]), errors.InvalidArgumentError,
     ["transpose", "[0, 5]", "(2, 3)"]),
    ("transpose aliasing", lambda t: tf.transpose(t, [1, 3]), errors.InvalidArgumentError, ["transpose", "[1, 3]"]),
    ("expand_dims axis", lambda t: tf.expand_dims(t, 3), errors.InvalidArgumentError, ["expand_dims", "axis 3"]),
    ("squeeze axis", lambda t: tf.squeeze(t, 2), errors.InvalidArgumentError, ["squeeze", "axis 2", "rank 2"]),
    ("squeeze non-1", lambda t: tf.squeeze(t, 1), errors.InvalidArgumentError, ["squeeze", "axis 1", "3"]),
    ("concat shapes", lambda t: tf.concat([t, tf.zeros((2, 4))], axis=0), errors.InvalidArgumentError,
     ["concat", "values[0]", "(2, 3)", "values[1]", "(2, 4)"]),
    ("concat ranks", lambda t: tf.concat([t, tf.zeros(3)], axis=0), errors.InvalidArgumentError,
     ["concat", "(2, 3)", "(3,)"]),
    ("concat dtypes", lambda t: tf.concat([t, tf.zeros((1, 3), tf.float64)], 0), errors.InvalidArgumentError,
     ["concat", "values[1]", "float64", "float32"]),
    ("concat axis", lambda t: tf.concat([t, t], axis=2), errors.InvalidArgumentError, ["concat", "axis 2", "rank 2"]),
    ("concat scalars", lambda t: tf.concat([tf.constant(1.0), tf.constant(2.0)], 0), errors.InvalidArgumentError,
     ["concat", "scalar"]),
    ("concat empty", lambda t: tf.concat([], 0), ValueError, ["concat", "empty"]),
    ("stack shapes", lambda t: tf.stack([t, tf.zeros((3, 2))]), errors.InvalidArgumentError,
     ["stack", "(2, 3)", "(3, 2)"]),
    ("stack axis", lambda t: tf.stack([t, t], axis=3), errors.InvalidArgumentError, ["stack", "axis 3"]),
    ("unstack axis", lambda t: tf.unstack(t, axis=-3), errors.InvalidArgumentError, ["unstack", "axis -3"]),
    ("split parts", lambda t: tf.split(t, 2, axis=1), errors.InvalidArgumentError, ["split", "3", "2"]),
    ("split sizes", lambda t: tf.split(t, [1, 1], axis=1), errors.InvalidArgumentError, ["split", "[1, 1]", "3"]),
    ("split axis", lambda t: tf.split(t, 1, axis=2), errors.InvalidArgumentError, ["split", "axis 2"]),
    ("tile rank", lambda t: tf.tile(t, [2]), errors.InvalidArgumentError, ["tile", "1", "rank 2"]),
    ("broadcast_to", lambda t: tf.broadcast_to(t, [3, 3]), errors.InvalidArgumentError,
     ["broadcast_to", "(2, 3)", "[3, 3]"]),
    ("reverse axis", lambda t: tf.reverse(t, [2]), errors.InvalidArgumentError, ["reverse", "axis 2"]),
    ("gather range", lambda t: tf.gather(t, [0, 5]), errors.InvalidArgumentError, ["gather", "5", "(2, 3)"]),
    ("gather negative", lambda t: tf.gather(t, [-1], axis=1), errors.InvalidArgumentError, ["gather", "-1"]),
    ("gather axis", lambda t: tf.gather(t, [0], axis=2), errors.InvalidArgumentError, ["gather", "axis 2"]),
    ("gather float indices", lambda t: tf.gather(t, [0.0]), TypeError, ["gather", "integer", "float"]),
    ("gather_nd range", lambda t: tf.gather_nd(t, [[1, 3]]), errors.InvalidArgumentError, ["gather_nd", "(2, 3)"]),
    ("gather_nd depth", lambda t: tf.gather_nd(t, [[0, 0, 0]]), errors.InvalidArgumentError, ["gather_nd", "depth 3"]),
    ("gather_nd batch_dims", lambda t: tf.gather_nd(t, [[0]], batch_dims=1), NotImplementedError,
     ["gather_nd", "batch_dims"]),
    ("scatter_nd range", lambda t: tf.scatter_nd([[5]], tf.ones(1), [4]), errors.InvalidArgumentError,
     ["scatter_nd", "(4,)"]),
    ("getitem range", lambda t: t[2], IndexError, ["2", "(2, 3)"]),
    ("getitem negative range", lambda t: t[:, -4], IndexError, ["(2, 3)"]),
    ("getitem too many", lambda t: t[0, 0, 0], IndexError, ["(2, 3)"]),
    ("getitem int array range", lambda t: t[[0, 2]], IndexError, ["(2, 3)"]),
    ("getitem negative int array range", lambda t: t[:, [0, -4]], IndexError, ["(2, 3)"]),
    ("getitem int array after ellipsis", lambda t: t[None, ..., [0, 3]], IndexError, ["(2, 3)"]),
    ("getitem int array after mask", lambda t: t[[True, False], [3]], IndexError, ["(2, 3)"]),
    ("boolean_mask shape", lambda t: tf.boolean_mask(t, [True, False, True]), errors.InvalidArgumentError,
     ["boolean_mask", "(3,)", "(2, 3)"]),
    ("where condition dtype", lambda t: tf.where(tf.constant([1, 0]), 1.0, 2.0), TypeError, ["where", "bool", "int32"]),
    ("where only x", lambda t: tf.where(tf.constant([True]), x=1.0), ValueError, ["where", "x", "y"]),
    ("pad shape", lambda t: tf.pad(t, [[1, 1]]), errors.InvalidArgumentError, ["pad", "(2, 3)", "[[1, 1]]"]),
    ("pad negative", lambda t: tf.pad(t, [[1, 1], [-1, 0]]), errors.InvalidArgumentError, ["pad", "non-negative"]),
    ("one_hot float indices", lambda t: tf.one_hot([1.0], 3), TypeError, ["one_hot", "integer"]),
]


@pytest.mark.parametrize("name, fn, exc, words", BAD, ids=[case[0] for case in BAD])
def test_bad_input_raises_a_clear_error(device, name, fn, exc, words):
    t = tf.zeros((2, 3))
    _raises(exc, lambda: fn(t), *words)


# --- the Tensor protocol these ops serve ----------------------------------------------------------------------------
def test_numpy_and_asarray(device):
    t = tf.constant(X.astype(np.float32))
    for out in (t.numpy(), np.asarray(t), np.array(t)):
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_array_equal(out, X.astype(np.float32))
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    scalar = tf.constant(2.5).numpy()
    assert np.ndim(scalar) == 0 and scalar == 2.5


def test_len_iteration_and_conversions(device):
    t = tf.constant(X)
    assert len(t) == 2
    rows = list(t)
    assert len(rows) == 2 and all(isinstance(r, tf.Tensor) for r in rows)
    _assert_same(rows[1], X[1])
    with pytest.raises(TypeError, match="scalar"):
        len(tf.constant(1.0))
    with pytest.raises(TypeError, match="scalar"):
        iter(tf.constant(1.0)).__next__()
    assert bool(tf.constant([True])) is True and bool(tf.constant([[0.0]])) is False
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tf.constant([1.0, 2.0]))
    assert float(tf.constant(2.5)) == 2.5 and int(tf.constant(3)) == 3
    assert [10, 20, 30][tf.constant(1)] == 20  # a scalar integer tensor is an index
    with pytest.raises(TypeError):
        [10, 20][tf.constant(1.0)]


def test_iteration_gradient_reaches_every_row():
    testing.check_gradients(lambda t: tf.stack([row * (i + 1.0) for i, row in enumerate(t)]), [X[0]])


def test_repr_shows_shape_dtype_device_and_values(device):
    text = repr(tf.constant([[1, 2], [3, 4]]))
    for word in ("shape=(2, 2)", "dtype=int32", device, "[[1, 2]", "[3, 4]]"):
        assert word in text, (word, text)
    assert "numpy=2.5" in repr(tf.constant(2.5))


def test_every_public_op_is_covered():
    covered = {name.split()[0] for name in LAYOUT} | {
        "unstack", "split", "where", "cast", "boolean_mask", "scatter_nd", "one_hot", "zeros", "ones", "fill",
        "range", "linspace", "eye", "zeros_like", "ones_like", "shape", "size", "rank", "stop_gradient",
        "getitem"}
    assert set(array_ops.__all__) - covered == set(), "write value and gradient tests for the new ops"
