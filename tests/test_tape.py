import numpy as np
import pytest

import cuflow as tf


def test_the_issue_example_matches_numpy():
    rng = np.random.default_rng(0)
    x_np, w_np, b_np = rng.normal(size=(4, 2)), rng.normal(size=(2, 3)), rng.normal(size=3)
    x = tf.constant(x_np)
    W, b = tf.Variable(w_np), tf.Variable(b_np)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(tf.nn.relu(tf.matmul(x, W) + b) ** 2)
    dW, db = tape.gradient(y, [W, b])
    h = x_np @ w_np + b_np
    dh = 2 * np.maximum(h, 0) * (h > 0)
    np.testing.assert_allclose(dW.numpy(), x_np.T @ dh, rtol=1e-12)
    np.testing.assert_allclose(db.numpy(), dh.sum(0), rtol=1e-12)


def test_watch_constant_and_non_scalar_target_is_summed():
    x = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [2.0, 4.0, 6.0])


def test_unwatched_constant_gets_none_or_zeros():
    x, c = tf.Variable(2.0), tf.constant(5.0)
    with tf.GradientTape(persistent=True) as tape:
        y = x * c
    assert tape.gradient(y, c) is None
    assert float(tape.gradient(y, c, unconnected_gradients="zero")) == 0.0
    assert float(tape.gradient(y, x)) == 5.0
    with pytest.raises(ValueError, match="unconnected_gradients"):
        tape.gradient(y, x, unconnected_gradients="maybe")


def test_second_gradient_call_on_non_persistent_tape_raises():
    x = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="non-persistent GradientTape can only be used to compute one set"):
        tape.gradient(y, x)


def test_persistent_tape_gives_several_gradients():
    x = tf.Variable(3.0)
    with tf.GradientTape(persistent=True) as tape:
        y = x * x
        z = y * y
    assert float(tape.gradient(y, x)) == 6.0
    assert float(tape.gradient(z, x)) == 108.0  # d/dx x^4 = 4x^3


def test_watch_accessed_variables_false_ignores_variables():
    v, w = tf.Variable(2.0), tf.Variable(3.0)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(w)
        y = v * w
    assert tape.gradient(y, [v, w])[0] is None
    assert tape.watched_variables() == (w,)


def test_non_trainable_variable_is_not_watched():
    v = tf.Variable(2.0, trainable=False)
    with tf.GradientTape() as tape:
        y = v * v
    assert tape.gradient(y, v) is None


def test_stop_recording_and_stop_gradient():
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        y = x * x
        with tape.stop_recording():
            z = x * 10.0
        w = y + z + tf.stop_gradient(x * x)
    assert float(tape.gradient(w, x)) == 4.0


def test_reset_forgets_the_recording():
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        y = x * x
        tape.reset()
        z = x * 3.0
    assert float(tape.gradient(z, x)) == 3.0


def test_nested_tapes_give_second_and_third_derivatives():
    x = tf.constant(2.0)
    with tf.GradientTape() as t3:
        t3.watch(x)
        with tf.GradientTape() as t2:
            t2.watch(x)
            with tf.GradientTape() as t1:
                t1.watch(x)
                y = x ** 4
            dy = t1.gradient(y, x)
        d2y = t2.gradient(dy, x)
    d3y = t3.gradient(d2y, x)
    assert (float(dy), float(d2y), float(d3y)) == (32.0, 48.0, 48.0)


def test_gradients_for_nested_structures():
    a, b, c = tf.Variable(1.0), tf.Variable(2.0), tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = a * b * c
    grads = tape.gradient(y, {"first": a, "rest": [b, (c,)]})
    assert set(grads) == {"first", "rest"}
    assert float(grads["first"]) == 6.0 and float(grads["rest"][0]) == 3.0 and float(grads["rest"][1][0]) == 2.0


def test_integer_sources_get_none():
    i = tf.constant(3)
    x = tf.Variable(1.5)
    with tf.GradientTape() as tape:
        tape.watch(i)
        y = x * tf.cast(i, tf.float32)
    assert tape.gradient(y, [i, x]) == [None, tf.constant(3.0)]


def test_output_gradients_weight_the_target():
    x = tf.Variable([1.0, 2.0])
    with tf.GradientTape() as tape:
        y = x * 3.0
    g = tape.gradient(y, x, output_gradients=tf.constant([10.0, 100.0]))
    np.testing.assert_allclose(g.numpy(), [30.0, 300.0])


def test_gradient_accumulates_over_multiple_uses():
    x = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = x * x + x * 2.0 + tf.sin(x)
    np.testing.assert_allclose(float(tape.gradient(y, x)), 2 * 3.0 + 2.0 + np.cos(3.0), rtol=1e-6)


def test_jacobian_matches_analytic():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 2))
    x = tf.constant(rng.normal(size=(2,)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.tanh(tf.reshape(tf.matmul(tf.constant(w), tf.reshape(x, (2, 1))), (3,)))
    jac = tape.jacobian(y, x)
    expected = (1 - np.tanh(w @ x.numpy()) ** 2)[:, None] * w
    assert jac.shape == (3, 2)
    np.testing.assert_allclose(jac.numpy(), expected, rtol=1e-10)


def test_batch_jacobian_matches_per_example_jacobians():
    x = tf.constant(np.arange(6.0).reshape(3, 2) / 5)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.concat([x * x, tf.reduce_sum(x, axis=1, keepdims=True)], axis=1)  # (3, 3)
    jac = tape.batch_jacobian(y, x).numpy()
    assert jac.shape == (3, 3, 2)
    for b in range(3):
        x0, x1 = x.numpy()[b]
        np.testing.assert_allclose(jac[b], [[2 * x0, 0], [0, 2 * x1], [1, 1]], rtol=1e-12)


def test_tape_records_nothing_outside_its_context():
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        pass
    y = x * x
    assert tape.gradient(y, x) is None


def test_watch_rejects_non_tensors():
    with tf.GradientTape() as tape:
        with pytest.raises(TypeError, match="watch"):
            tape.watch("x")


def test_gradients_of_unwatched_inputs_are_not_computed(monkeypatch):
    from cuflow.ops import conv
    images = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 1)))
    kernel = tf.Variable(np.ones((3, 3, 1, 2)))
    calls = []
    original = conv.conv2d_backprop_input
    monkeypatch.setattr(conv, "conv2d_backprop_input", lambda *a, **k: calls.append(1) or original(*a, **k))
    with tf.GradientTape(persistent=True) as tape:
        y = tf.reduce_sum(tf.nn.conv2d(images, kernel, strides=1, padding="VALID"))
    assert tape.gradient(y, kernel).shape == (3, 3, 1, 2) and calls == []
    with tf.GradientTape() as tape2:
        tape2.watch(images)
        y = tf.reduce_sum(tf.nn.conv2d(images, kernel, strides=1, padding="VALID"))
    assert tape2.gradient(y, images).shape == images.shape and calls == [1]
