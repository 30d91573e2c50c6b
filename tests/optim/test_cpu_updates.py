"""The optimizers' CPU updates write their temporaries into reused work arrays (Optimizer._work_arrays): the results
must be bit for bit those of the plain float32 expressions of the Keras formulas, for variables of several shapes
sharing the buffers."""
import math

import numpy as np
import pytest

import cuflow as tf
from cuflow import optim

LR = 0.05


def plain_update(kind, kw, var, g, state, t):
    """One step of the Keras 3 formula written as plain NumPy expressions (each temporary a new array)."""
    if kw.get("weight_decay"):
        var -= var * (kw["weight_decay"] * LR)
    if kind == "adam":
        alpha = LR * math.sqrt(1.0 - math.pow(0.999, t)) / (1.0 - math.pow(0.9, t))
        state["m"] += (g - state["m"]) * (1 - 0.9)
        state["v"] += (g * g - state["v"]) * (1 - 0.999)
        v = state["v"]
        if kw.get("amsgrad"):
            np.maximum(state["v_hat"], v, out=state["v_hat"])
            v = state["v_hat"]
        var -= alpha * state["m"] / (np.sqrt(v) + 1e-7)
    elif kind == "sgd":
        mu = kw.get("momentum", 0.0)
        if not mu:
            var -= LR * g
            return
        state["m"] *= mu
        state["m"] -= LR * g
        if kw.get("nesterov"):
            var += mu * state["m"] - LR * g
        else:
            var += state["m"]
    elif kind == "rmsprop":
        state["v"] *= 0.9
        state["v"] += (1 - 0.9) * g * g
        if kw.get("centered"):
            state["avg"] *= 0.9
            state["avg"] += (1 - 0.9) * g
            denominator = state["v"] - state["avg"] * state["avg"] + 1e-7
        else:
            denominator = state["v"] + 1e-7
        increment = LR * g / np.sqrt(denominator)
        if kw.get("momentum"):
            state["mom"] *= kw["momentum"]
            state["mom"] += increment
            var -= state["mom"]
        else:
            var -= increment
    else:  # adagrad
        state["acc"] += g * g
        var -= LR * g / np.sqrt(state["acc"] + 1e-7)


CASES = [("adam", optim.Adam, {}), ("adam", optim.Adam, {"amsgrad": True}),
         ("adam", optim.AdamW, {"weight_decay": 0.01}), ("sgd", optim.SGD, {}),
         ("sgd", optim.SGD, {"momentum": 0.9}), ("sgd", optim.SGD, {"momentum": 0.9, "nesterov": True}),
         ("rmsprop", optim.RMSprop, {}), ("rmsprop", optim.RMSprop, {"centered": True, "momentum": 0.5}),
         ("adagrad", optim.Adagrad, {})]


@pytest.mark.parametrize("kind, cls, kw", CASES, ids=[f"{c.__name__}{kw or ''}" for _, c, kw in CASES])
def test_updates_match_the_plain_float32_formulas_bit_for_bit(kind, cls, kw, rng):
    shapes = [(3,), (5, 7), (2, 3, 2)]  # the small one first: the buffers grow for the larger, then are shared
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    with tf.device("/CPU:0"):  # the CPU path, also when the (mock) GPU is the default device
        variables = [tf.Variable(s.copy()) for s in starts]
    opt = cls(learning_rate=LR, **kw)
    states = [{"m": np.zeros_like(s), "v": np.zeros_like(s), "v_hat": np.zeros_like(s), "avg": np.zeros_like(s),
               "mom": np.zeros_like(s), "acc": np.full_like(s, 0.1)} for s in starts]
    expected = [s.copy() for s in starts]
    for t in range(1, 4):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        with tf.device("/CPU:0"):
            opt.apply_gradients([(tf.constant(g), v) for g, v in zip(grads, variables)])
        for var, g, state in zip(expected, grads, states):
            plain_update(kind, kw, var, g, state, t)
        for v, e in zip(variables, expected):
            np.testing.assert_array_equal(v.numpy(), e)
    buffers = opt._work_buffers[np.dtype(np.float32)]
    assert all(b.size == 5 * 7 for b in buffers)  # as large as the largest variable, not one set per variable
