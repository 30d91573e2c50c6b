"""Optimizers against NumPy float64 reimplementations of the Keras 3 formulas, clipping, schedules, minimize,
lookup, and CPU/GPU parity (the `device` fixture)."""
import math

import numpy as np
import pytest

import cuflow as tf
from cuflow import optim
from cuflow.optim import schedules

GRADS = [np.array([[0.5, -1.0], [2.0, 0.1]]), np.array([[-0.3, 0.7], [1.5, -2.0]]),
         np.array([[0.2, 0.2], [-0.4, 0.9]])]
START = np.array([[1.0, -2.0], [0.5, 3.0]])


def reference(kind, lr, steps, **kw):
    """The Keras 3 update rules in float64 NumPy."""
    var = START.copy()
    m, v, vhat = np.zeros_like(var), np.zeros_like(var), np.zeros_like(var)
    acc = np.full_like(var, kw.get("initial_accumulator_value", 0.1))
    avg, mom = np.zeros_like(var), np.zeros_like(var)
    for t, g in enumerate(GRADS[:steps], start=1):
        if kind == "sgd":
            mu = kw.get("momentum", 0.0)
            if mu:
                m = mu * m - lr * g
                var = var + (mu * m - lr * g if kw.get("nesterov") else m)
            else:
                var = var - lr * g
        elif kind in ("adam", "adamw"):
            b1, b2, eps = 0.9, 0.999, 1e-7
            if kind == "adamw":
                var = var - var * kw.get("weight_decay", 0.004) * lr
            alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            denom_v = v
            if kw.get("amsgrad"):
                vhat = np.maximum(vhat, v)
                denom_v = vhat
            var = var - alpha * m / (np.sqrt(denom_v) + eps)
        elif kind == "rmsprop":
            rho, mu, eps = 0.9, kw.get("momentum", 0.0), 1e-7
            v = rho * v + (1 - rho) * g * g
            if kw.get("centered"):
                avg = rho * avg + (1 - rho) * g
                denom = v - avg * avg + eps
            else:
                denom = v + eps
            inc = lr * g / np.sqrt(denom)
            if mu:
                mom = mu * mom + inc
                var = var - mom
            else:
                var = var - inc
        elif kind == "adagrad":
            acc = acc + g * g
            var = var - lr * g / np.sqrt(acc + 1e-7)
    return var


CASES = [
    ("sgd", optim.SGD, 0.1, {}),
    ("sgd", optim.SGD, 0.1, {"momentum": 0.9}),
    ("sgd", optim.SGD, 0.1, {"momentum": 0.9, "nesterov": True}),
    ("adam", optim.Adam, 0.1, {}),
    ("adam", optim.Adam, 0.1, {"amsgrad": True}),
    ("adamw", optim.AdamW, 0.1, {"weight_decay": 0.1}),
    ("rmsprop", optim.RMSprop, 0.01, {}),
    ("rmsprop", optim.RMSprop, 0.01, {"centered": True, "momentum": 0.5}),
    ("adagrad", optim.Adagrad, 0.1, {"initial_accumulator_value": 0.2}),
]


@pytest.mark.parametrize("kind,cls,lr,kw", CASES, ids=[f"{c[1].__name__}-{c[3]}" for c in CASES])
def test_three_steps_match_keras_formula(device, kind, cls, lr, kw):
    var = tf.Variable(START, dtype=tf.float64)
    opt = cls(learning_rate=lr, **kw)
    for g in GRADS:
        opt.apply_gradients([(tf.constant(g), var)])
    assert var.device == tf.constant(0.0).device
    np.testing.assert_allclose(var.numpy(), reference(kind, lr, 3, **kw), rtol=1e-10, atol=1e-12)
    assert int(opt.iterations.numpy()) == 3
    assert opt.iterations.dtype == tf.int64


def test_float32_variable_stays_float32():
    var = tf.Variable(START.astype(np.float32))
    opt = optim.Adam(0.1)
    for g in GRADS:
        opt.apply_gradients([(tf.constant(g.astype(np.float32)), var)])
    assert var.dtype == tf.float32
    np.testing.assert_allclose(var.numpy(), reference("adam", 0.1, 3), rtol=1e-5)


def test_keras_defaults():
    assert optim.Adam().get_config()["learning_rate"] == 0.001
    adam = optim.Adam()
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.999, 1e-7)
    assert optim.SGD().learning_rate == 0.01
    rms = optim.RMSprop()
    assert (rms.learning_rate, rms.rho, rms.epsilon, rms.momentum, rms.centered) == (0.001, 0.9, 1e-7, 0.0, False)
    ada = optim.Adagrad()
    assert (ada.learning_rate, ada.initial_accumulator_value, ada.epsilon) == (0.001, 0.1, 1e-7)
    assert optim.AdamW().weight_decay == 0.004


def test_none_gradients_are_skipped_and_all_none_raises():
    a, b = tf.Variable([1.0]), tf.Variable([2.0])
    opt = optim.SGD(1.0)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        opt.apply_gradients([(tf.constant([1.0]), a), (None, b)])
    assert a.numpy()[0] == 0.0 and b.numpy()[0] == 2.0
    with pytest.raises(ValueError, match="no gradients provided"):
        opt.apply_gradients([(None, a)])


def test_gradient_shape_mismatch_names_variable():
    v = tf.Variable([1.0, 2.0], name="w")
    with pytest.raises(ValueError, match=r"w:0 has shape \(3,\).*\(2,\)"):
        optim.SGD().apply_gradients([(tf.constant([1.0, 2.0, 3.0]), v)])


def test_clipnorm_clipvalue_global_clipnorm(device):
    g1, g2 = np.array([3.0, 4.0]), np.array([0.0, 12.0])
    def step(**kw):
        a, b = tf.Variable([0.0, 0.0], dtype=tf.float64), tf.Variable([0.0, 0.0], dtype=tf.float64)
        optim.SGD(1.0, **kw).apply_gradients([(tf.constant(g1), a), (tf.constant(g2), b)])
        return -a.numpy(), -b.numpy()
    a, b = step(clipnorm=1.0)
    np.testing.assert_allclose(a, g1 / 5.0)
    np.testing.assert_allclose(b, g2 / 12.0)
    a, b = step(clipvalue=2.0)
    np.testing.assert_allclose(a, [2.0, 2.0])
    np.testing.assert_allclose(b, [0.0, 2.0])
    a, b = step(global_clipnorm=6.5)
    np.testing.assert_allclose(np.concatenate([a, b]), np.concatenate([g1, g2]) * 6.5 / 13.0)
    a, b = step(global_clipnorm=100.0)
    np.testing.assert_allclose(a, g1)
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optim.SGD(clipnorm=1.0, clipvalue=1.0)


def test_schedules_values():
    ed = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert ed(0) == pytest.approx(0.1) and ed(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    assert schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.05)
    pc = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [pc(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    cd = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert cd(0) == pytest.approx(1.0) and cd(100) == pytest.approx(0.1) and cd(500) == pytest.approx(0.1)
    assert cd(50) == pytest.approx(0.9 * 0.5 + 0.1)
    out = ed(tf.constant(5))
    assert isinstance(out, tf.Tensor) and float(out) == pytest.approx(0.1 * 0.5 ** 0.5, rel=1e-6)
    with pytest.raises(ValueError, match="one more element"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])


def test_optimizer_uses_schedule_per_step():
    sched = schedules.PiecewiseConstantDecay([0], [1.0, 0.1])  # step 0 -> 1.0, then 0.1
    v = tf.Variable([0.0], dtype=tf.float64)
    opt = optim.SGD(sched)
    assert opt.learning_rate == 1.0
    for _ in range(2):
        opt.apply_gradients([(tf.constant([1.0], dtype=tf.float64), v)])
    np.testing.assert_allclose(v.numpy(), [-1.1])
    assert opt.learning_rate == pytest.approx(0.1)
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5


def test_iterations_assigned_from_outside_drives_schedule():
    opt = optim.SGD(schedules.PiecewiseConstantDecay([5], [1.0, 0.01]))
    opt.iterations.assign(10)
    v = tf.Variable([0.0], dtype=tf.float64)
    opt.apply_gradients([(tf.constant([1.0], dtype=tf.float64), v)])
    np.testing.assert_allclose(v.numpy(), [-0.01])
    assert int(opt.iterations.numpy()) == 11


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad", "adamw"])
def test_minimize_lowers_a_quadratic(device, name):
    w = tf.Variable([3.0, -2.0])
    loss = lambda: tf.reduce_sum(tf.square(w - 1.0))  # noqa: E731
    opt = optim.get(name)
    opt.learning_rate = 0.5 if name == "adagrad" else 0.1  # Adagrad's steps shrink fastest
    before = float(loss())
    for _ in range(20):
        opt.minimize(loss, [w])
    assert float(loss()) < 0.5 * before


def test_minimize_with_tape_and_tensor_loss():
    w = tf.Variable([2.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(w * w)
    optim.SGD(0.25).minimize(loss, [w], tape=tape)
    np.testing.assert_allclose(w.numpy(), [1.0])
    with pytest.raises(ValueError, match="tape"):
        optim.SGD().minimize(loss, [w])


def test_slots_and_variables():
    w = tf.Variable([1.0, 2.0], name="w")
    opt = optim.Adam(amsgrad=True)
    opt.apply_gradients([(tf.constant([1.0, 1.0]), w)])
    assert [v.name for v in opt.variables()] == ["adam/iteration:0", "w/m:0", "w/v:0", "w/v_hat:0"]
    assert opt.get_slot(w, "m").shape == (2,)
    assert all(not v.trainable for v in opt.variables())


def test_variable_built_from_numpy_does_not_write_into_it():
    source = np.array([1.0, 2.0], dtype=np.float32)
    v = tf.Variable(source)
    optim.SGD(1.0).apply_gradients([(tf.constant([1.0, 1.0]), v)])
    np.testing.assert_array_equal(source, [1.0, 2.0])
    np.testing.assert_array_equal(v.numpy(), [0.0, 1.0])


def test_get_strings_and_errors():
    for name, cls in [("sgd", optim.SGD), ("SGD", optim.SGD), ("adam", optim.Adam), ("Adam", optim.Adam),
                      ("rmsprop", optim.RMSprop), ("RMSprop", optim.RMSprop), ("adagrad", optim.Adagrad),
                      ("adamw", optim.AdamW)]:
        assert type(optim.get(name)) is cls
    opt = optim.Adam()
    assert optim.get(opt) is opt
    with pytest.raises(ValueError, match=r"'adamax'.*adagrad, adam, adamw, rmsprop, sgd"):
        optim.get("adamax")


def test_config_round_trip_with_schedule():
    opt = optim.RMSprop(schedules.CosineDecay(0.1, 50), centered=True, clipnorm=1.0)
    again = optim.deserialize(optim.serialize(opt))
    assert type(again) is optim.RMSprop and again.centered and again.clipnorm == 1.0
    assert isinstance(again._learning_rate, schedules.CosineDecay)
    assert again.learning_rate == pytest.approx(0.1)
    sgd = optim.SGD.from_config(optim.SGD(0.3, momentum=0.5, nesterov=True).get_config())
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.3, 0.5, True)


@pytest.mark.gpu
def test_cpu_gpu_parity(mock_gpu):
    results = []
    for dev in ("/CPU:0", "/GPU:0"):
        with tf.device(dev):
            v = tf.Variable(START.astype(np.float32))
            opt = optim.Adam(0.1, amsgrad=True, global_clipnorm=1.0)
            for g in GRADS:
                opt.apply_gradients([(tf.constant(g.astype(np.float32)), v)])
            results.append(v.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)
