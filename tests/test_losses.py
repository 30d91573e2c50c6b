"""Losses against NumPy float64, sample weights and reductions, gradients, lookup, and bad input."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import activations, losses
from cuflow.testing import check_gradients

EPS = 1e-7
rng = np.random.default_rng(0)
Y_TRUE = rng.normal(size=(4, 3))
Y_PRED = rng.normal(size=(4, 3))
PROBS = rng.uniform(0.05, 0.95, size=(4, 3))
BINARY = (rng.uniform(size=(4, 3)) > 0.5).astype(np.float64)
SOFT = np.exp(Y_PRED) / np.exp(Y_PRED).sum(-1, keepdims=True)
ONE_HOT = np.eye(3)[[0, 2, 1, 2]]
SPARSE = np.array([0, 2, 1, 2])


def np_huber(t, p, d=1.0):
    e = np.abs(p - t)
    return np.where(e <= d, 0.5 * e ** 2, d * e - 0.5 * d ** 2).mean(-1)


CASES = [
    (losses.MeanSquaredError(), Y_TRUE, Y_PRED, ((Y_TRUE - Y_PRED) ** 2).mean(-1)),
    (losses.MeanAbsoluteError(), Y_TRUE, Y_PRED, np.abs(Y_TRUE - Y_PRED).mean(-1)),
    (losses.Huber(delta=0.7), Y_TRUE, Y_PRED, np_huber(Y_TRUE, Y_PRED, 0.7)),
    (losses.BinaryCrossentropy(), BINARY, PROBS,
     -(BINARY * np.log(PROBS) + (1 - BINARY) * np.log(1 - PROBS)).mean(-1)),
    (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), BINARY, Y_PRED,
     (lambda t, s: -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean(-1))(BINARY * 0.8 + 0.1,
                                                                         1 / (1 + np.exp(-Y_PRED)))),
    (losses.CategoricalCrossentropy(), ONE_HOT, SOFT, -(ONE_HOT * np.log(SOFT)).sum(-1)),
    (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3), ONE_HOT, Y_PRED,
     -((ONE_HOT * 0.7 + 0.1) * np.log(SOFT)).sum(-1)),
    (losses.SparseCategoricalCrossentropy(), SPARSE, SOFT, -np.log(SOFT[np.arange(4), SPARSE])),
    (losses.SparseCategoricalCrossentropy(from_logits=True), SPARSE, Y_PRED, -np.log(SOFT[np.arange(4), SPARSE])),
]


@pytest.mark.parametrize("loss,y_true,y_pred,expected", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_values_and_reductions(device, loss, y_true, y_pred, expected):
    pred = tf.constant(y_pred)
    assert float(loss(y_true, pred)) == pytest.approx(expected.mean(), rel=1e-6)
    loss.reduction = "sum"
    assert float(loss(y_true, pred)) == pytest.approx(expected.sum(), rel=1e-6)
    loss.reduction = "none"
    np.testing.assert_allclose(loss(y_true, pred).numpy(), expected, rtol=1e-6)
    weights = np.array([1.0, 0.0, 2.0, 0.5])
    np.testing.assert_allclose(loss(y_true, pred, sample_weight=weights).numpy(), expected * weights, rtol=1e-6)
    loss.reduction = "sum_over_batch_size"
    assert float(loss(y_true, pred, sample_weight=weights)) == pytest.approx((expected * weights).sum() / 4, rel=1e-6)


def test_probabilities_are_clipped():
    out = losses.binary_crossentropy(tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 1.0]], dtype=tf.float64))
    assert float(out[0]) == pytest.approx(-np.log(EPS), rel=1e-4)


def test_functions_take_rank_one_labels_against_column_predictions():
    out = losses.mse(tf.constant([1.0, 2.0]), tf.constant([[1.5], [2.0]]))
    np.testing.assert_allclose(out.numpy(), [0.25, 0.0])


@pytest.mark.parametrize("fn,y_true,y_pred", [
    (losses.mean_squared_error, Y_TRUE, Y_PRED),
    (losses.huber, Y_TRUE, Y_PRED),
    (lambda t, p: losses.binary_crossentropy(t, tf.sigmoid(p)), BINARY, Y_PRED),
    (lambda t, p: losses.categorical_crossentropy(t, p, from_logits=True), ONE_HOT, Y_PRED),
    (lambda t, p: losses.sparse_categorical_crossentropy(t, tf.nn.softmax(p)), SPARSE, Y_PRED),
])
def test_gradients_flow(fn, y_true, y_pred):
    check_gradients(lambda p: fn(tf.constant(y_true), p), [y_pred], rtol=1e-4, atol=1e-6)


def test_ignore_class_leaves_the_mean():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    labels = np.array([0, -1, 1, 2])
    per_sample = -np.log(SOFT[[0, 2, 3], [0, 1, 2]])
    assert float(loss(labels, Y_PRED)) == pytest.approx(per_sample.mean(), rel=1e-6)


def test_get_strings_and_objects():
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("mean_squared_error") is losses.mean_squared_error
    assert losses.get("mae") is losses.mean_absolute_error
    assert losses.get("huber") is losses.huber
    for name in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
        assert losses.get(name).__name__ == name
    assert isinstance(losses.get("BinaryCrossentropy"), losses.BinaryCrossentropy)
    with pytest.raises(ValueError, match="'msle'.*mean_squared_error"):
        losses.get("msle")
    bce = losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)
    again = losses.deserialize(losses.serialize(bce))
    assert again.get_config() == bce.get_config()


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"mean_squared_error.*\(4, 2\).*\(4, 3\)"):
        losses.MeanSquaredError()(np.zeros((4, 2)), Y_PRED)
    with pytest.raises(ValueError, match=r"categorical_crossentropy.*\(4,\).*\(4, 3\)"):
        losses.CategoricalCrossentropy()(SPARSE, SOFT)
    with tf.device("/CPU:0"), pytest.raises(ValueError, match=r"label 3 is out of range \[0, 3\)"):
        # the CPU checks labels; on a GPU they give NaN rows, as TF does (tests/kernels/test_fused.py)
        losses.SparseCategoricalCrossentropy()(np.array([0, 3, 1, 2]), SOFT)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy.*\(4, 3\)"):
        losses.SparseCategoricalCrossentropy()(ONE_HOT, SOFT)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="mean_all")
    with pytest.raises(ValueError, match="sample_weight"):
        losses.MeanSquaredError()(Y_TRUE, Y_PRED, sample_weight=np.ones(3))


# --- outputs of softmax / sigmoid activations: the losses work from the logits they remember, as Keras 3 does ------
LOGIT_CASES = [(losses.sparse_categorical_crossentropy, SPARSE, activations.softmax),
               (losses.categorical_crossentropy, ONE_HOT, activations.softmax),
               (losses.binary_crossentropy, BINARY, activations.sigmoid)]


@pytest.mark.parametrize("fn,y_true,activation", LOGIT_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_activation_outputs_give_the_same_loss_and_gradient_through_their_logits(device, fn, y_true, activation):
    logits = tf.constant(Y_PRED.astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        out = activation(logits)
        through_logits = fn(y_true, out)
        through_probs = fn(y_true, tf.identity(out))  # a new tensor: probabilities only, clipped and logged
    np.testing.assert_allclose(through_logits.numpy(), through_probs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(through_logits, logits).numpy(),
                               tape.gradient(through_probs, logits).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fn,y_true,activation", LOGIT_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_saturated_activation_outputs_stay_exact_through_their_logits(fn, y_true, activation):
    # probabilities round to 0 and 1 here: clipped to epsilon they would cap the loss at -log(1e-7) = 16.1
    logits = tf.constant(np.array([[40.0, -40.0, 0.0]] * 4, np.float32))
    expected = fn(y_true, logits, from_logits=True)
    np.testing.assert_array_equal(fn(y_true, activation(logits)).numpy(), expected.numpy())
    assert float(tf.reduce_max(expected)) > 20  # beyond what the clipped probabilities can give


def test_probabilities_are_used_where_the_logits_do_not_apply():
    x = tf.constant(Y_PRED)
    softmax_out = activations.softmax(x)  # sigmoid's logits only for binary cross-entropy
    assert float(losses.binary_crossentropy(BINARY, softmax_out)[0]) == \
        float(losses.binary_crossentropy(BINARY, tf.identity(softmax_out))[0])
    over_rows = activations.softmax(x, axis=0)  # normalized over another axis than the losses' class axis
    np.testing.assert_array_equal(losses.categorical_crossentropy(ONE_HOT, over_rows).numpy(),
                                  losses.categorical_crossentropy(ONE_HOT, tf.identity(over_rows)).numpy())
    # from_logits=True keeps its meaning: the softmax output itself is taken as logits
    np.testing.assert_array_equal(
        losses.sparse_categorical_crossentropy(SPARSE, softmax_out, from_logits=True).numpy(),
        losses.sparse_categorical_crossentropy(SPARSE, tf.identity(softmax_out), from_logits=True).numpy())
