"""Metrics against NumPy, with sample weights, reset, lookup (Keras's 'accuracy' resolution) and bad input."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import metrics

rng = np.random.default_rng(1)
LABELS = (rng.uniform(size=40) > 0.5).astype(np.float32)
SCORES = np.clip(LABELS * 0.3 + rng.uniform(size=40) * 0.7, 0, 1).astype(np.float32)
WEIGHTS = rng.uniform(size=40).astype(np.float32)


def roc_auc(labels, scores, num_thresholds=200):
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = np.array([-1e-7] + inner + [1 + 1e-7])
    above = scores[None, :] > thresholds[:, None]
    pos = labels > 0.5
    tpr = (above & pos).sum(1) / pos.sum()
    fpr = (above & ~pos).sum(1) / (~pos).sum()
    return np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2)


def test_mean_sum_weighted_and_reset(device):
    m, s = metrics.Mean(), metrics.Sum()
    m.update_state([1.0, 2.0])
    m.update_state(tf.constant([[3.0], [6.0]]), sample_weight=[1.0, 0.5])
    assert float(m.result()) == pytest.approx((1 + 2 + 3 + 3) / 3.5)
    assert m.total.device == tf.constant(0.0).device
    s.update_state([1.0, 2.0], sample_weight=[2.0, 3.0])
    assert float(s.result()) == 8.0
    m.reset_state()
    assert float(m.result()) == 0.0


@pytest.mark.parametrize("metric,y_true,y_pred,expected", [
    (metrics.Accuracy(), [1, 2, 3, 4], [1, 2, 0, 4], 0.75),
    (metrics.BinaryAccuracy(), [[1.0], [0.0], [1.0], [0.0]], [[0.9], [0.6], [0.4], [0.1]], 0.5),
    (metrics.BinaryAccuracy(threshold=0.3), [1.0, 0.0, 1.0, 0.0], [0.9, 0.6, 0.4, 0.1], 0.75),
    (metrics.CategoricalAccuracy(), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], 0.5),
    (metrics.SparseCategoricalAccuracy(), [[2], [1]], [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], 0.5),
    (metrics.SparseCategoricalAccuracy(), [2, 0], [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], 1.0),
    (metrics.MeanSquaredError(), [[0.0, 1.0], [2.0, 2.0]], [[1.0, 1.0], [2.0, 0.0]], (0.5 + 2.0) / 2),
])
def test_accuracy_family(device, metric, y_true, y_pred, expected):
    metric.reset_state()
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(expected)


def test_sample_weight_on_accuracy():
    m = metrics.SparseCategoricalAccuracy()
    m.update_state([2, 0], [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], sample_weight=[1.0, 3.0])
    m.update_state([1], [[0.9, 0.05, 0.05]], sample_weight=[4.0])
    assert float(m.result()) == pytest.approx(4.0 / 8.0)


def test_precision_recall_auc_vs_numpy(device):
    predicted = SCORES > 0.5
    tp = np.sum(WEIGHTS * (predicted & (LABELS == 1)))
    fp = np.sum(WEIGHTS * (predicted & (LABELS == 0)))
    fn = np.sum(WEIGHTS * (~predicted & (LABELS == 1)))
    p, r = metrics.Precision(), metrics.Recall()
    for lo in (0, 20):  # two batches accumulate
        p.update_state(LABELS[lo:lo + 20], SCORES[lo:lo + 20], sample_weight=WEIGHTS[lo:lo + 20])
        r.update_state(LABELS[lo:lo + 20], SCORES[lo:lo + 20], sample_weight=WEIGHTS[lo:lo + 20])
    assert float(p.result()) == pytest.approx(tp / (tp + fp), rel=1e-5)
    assert float(r.result()) == pytest.approx(tp / (tp + fn), rel=1e-5)
    auc = metrics.AUC()
    auc.update_state(LABELS[:20], SCORES[:20])
    auc.update_state(LABELS[20:], SCORES[20:])
    assert float(auc.result()) == pytest.approx(roc_auc(LABELS, SCORES), rel=1e-5)
    auc.reset_state()
    assert float(auc.result()) == 0.0


def test_precision_with_several_thresholds_and_no_data():
    p = metrics.Precision(thresholds=[0.2, 0.8])
    assert p.result().numpy().tolist() == [0.0, 0.0]
    p.update_state([0, 1, 1], [0.5, 0.9, 0.3])
    np.testing.assert_allclose(p.result().numpy(), [2 / 3, 1.0], rtol=1e-6)


def test_mean_metric_wrapper_with_a_cuflow_function():
    m = metrics.MeanMetricWrapper(lambda t, p: tf.reduce_mean(tf.abs(t - p), axis=-1), name="mae")
    with tf.GradientTape() as tape:
        m.update_state([[1.0, 2.0]], [[2.0, 4.0]])
    assert float(m.result()) == pytest.approx(1.5)


def test_get_and_resolve_accuracy():
    assert isinstance(metrics.get("AUC"), metrics.AUC)
    assert isinstance(metrics.get("mse"), metrics.MeanSquaredError)
    acc = metrics.get("acc")
    assert isinstance(acc, metrics.Accuracy) and acc.name == "acc"
    for loss, cls in [("binary_crossentropy", metrics.BinaryAccuracy),
                      ("categorical_crossentropy", metrics.CategoricalAccuracy),
                      ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
                      (tf.losses.SparseCategoricalCrossentropy(from_logits=True) if hasattr(tf, "losses") else
                       "sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy)]:
        assert type(metrics.resolve_accuracy("accuracy", loss)) is cls
    from cuflow import losses
    assert type(metrics.resolve_accuracy("accuracy", losses.binary_crossentropy)) is metrics.BinaryAccuracy
    assert type(metrics.resolve_accuracy("acc", "mse", (8,), (8, 1))) is metrics.BinaryAccuracy
    assert type(metrics.resolve_accuracy("accuracy", "mse", (8,), (8, 5))) is metrics.SparseCategoricalAccuracy
    assert type(metrics.resolve_accuracy("accuracy", "mse", (8, 5), (8, 5))) is metrics.CategoricalAccuracy
    assert type(metrics.resolve_accuracy("accuracy", "mse")) is metrics.Accuracy
    assert isinstance(metrics.resolve_accuracy("auc", "mse"), metrics.AUC)
    with pytest.raises(ValueError, match="'f1'.*accuracy"):
        metrics.get("f1")


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"categorical_accuracy.*\(2, 3\).*\(2, 4\)"):
        metrics.CategoricalAccuracy().update_state(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"sample_weight with shape \(3,\)"):
        metrics.Mean().update_state([1.0, 2.0], sample_weight=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)
