"""Losses against NumPy float64, sample weights and reductions, gradients, lookup, and bad input."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import losses
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
    with pytest.raises(ValueError, match=r"label 3 is out of range \[0, 3\)"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 3, 1, 2]), SOFT)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy.*\(4, 3\)"):
        losses.SparseCategoricalCrossentropy()(ONE_HOT, SOFT)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="mean_all")
    with pytest.raises(ValueError, match="sample_weight"):
        losses.MeanSquaredError()(Y_TRUE, Y_PRED, sample_weight=np.ones(3))
