"""Op.__call__'s argument binding (cuflow/ops/base.py): inputs and attributes picked from positional and keyword
arguments, with the plan for each call signature reused, and Python's errors for calls that do not fit."""
import numpy as np
import pytest

import cuflow as tf
from cuflow.ops import op


@op(inputs=("x", "y"))
def _scaled_sum(x, y, scale=1.0, offset=0.0, keepdims=False):
    total = (x + y).sum(axis=-1, keepdims=keepdims)
    return total * scale + offset


@_scaled_sum.gradient
def _(grad, x, y, out, scale=1.0, offset=0.0, keepdims=False):
    g = (grad if keepdims else tf.expand_dims(grad, -1)) * scale * tf.ones_like(x)
    return g, g


X = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
Y = np.array([[0.5, 0.5], [1.0, 2.0]], np.float32)


def expected(scale=1.0, offset=0.0, keepdims=False):
    return (X + Y).sum(axis=-1, keepdims=keepdims) * scale + offset


CALLS = [  # the same call written every way Python allows, each twice (the second reuses the first's plan)
    (lambda x, y: _scaled_sum(x, y, 2.0, 1.0), dict(scale=2.0, offset=1.0)),
    (lambda x, y: _scaled_sum(x, y, offset=1.0, scale=2.0), dict(scale=2.0, offset=1.0)),
    (lambda x, y: _scaled_sum(y=y, x=x, scale=2.0), dict(scale=2.0)),
    (lambda x, y: _scaled_sum(x, y=y, keepdims=True, name="ignored"), dict(keepdims=True)),
    (lambda x, y: _scaled_sum(x, y, 3.0), dict(scale=3.0)),
    (lambda x, y: _scaled_sum(x, y), {}),
]


@pytest.mark.parametrize("index", range(len(CALLS)))
def test_inputs_and_attributes_bind_from_every_call_form(index):
    call, attrs = CALLS[index]
    x, y = tf.constant(X), tf.constant(Y)
    for _ in range(2):
        np.testing.assert_allclose(call(x, y).numpy(), expected(**attrs))
    with tf.GradientTape() as tape:
        tape.watch([x, y])
        out = call(x, y)
    gx, gy = tape.gradient(out, [x, y])  # the recorded attributes reach the gradient
    np.testing.assert_allclose(gx.numpy(), np.full_like(X, attrs.get("scale", 1.0)))
    np.testing.assert_allclose(gy.numpy(), gx.numpy())


def test_a_new_keyword_order_gets_its_own_plan():
    x, y = tf.constant(X), tf.constant(Y)
    a = _scaled_sum(x, y, scale=2.0, offset=1.0).numpy()
    b = _scaled_sum(x, y, offset=5.0, scale=0.5).numpy()
    np.testing.assert_allclose(a, expected(scale=2.0, offset=1.0))
    np.testing.assert_allclose(b, expected(scale=0.5, offset=5.0))


@pytest.mark.parametrize("call, message", [
    (lambda x, y: _scaled_sum(x, y, scael=2.0), "unexpected keyword argument 'scael'"),
    (lambda x, y: _scaled_sum(x, y, 1.0, 0.0, False, 7), "takes 5 positional arguments but 6 were given"),
    (lambda x, y: _scaled_sum(x, y, 2.0, scale=3.0), "multiple values for argument 'scale'"),
    (lambda x, y: _scaled_sum(x, scale=2.0), "missing required argument.*y"),
])
def test_calls_that_do_not_fit_raise_every_time(call, message):
    x, y = tf.constant(X), tf.constant(Y)
    for _ in range(2):  # a bad signature is never cached as a plan
        with pytest.raises(TypeError, match=f"_scaled_sum.*{message}"):
            call(x, y)
