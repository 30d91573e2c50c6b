"""Model.fit / evaluate / predict on a cuflow.data.Dataset: the seed's ``from_tensor_slices((X, y)).shuffle(1000)
.batch(32)`` example, and the same numbers as training on the arrays."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import keras


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.float32)
    return X, y


def _model(seed=1):
    tf.random.set_seed(seed)
    model = keras.Sequential([keras.layers.Dense(8, activation="relu", input_shape=(4,)),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


class _CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1] += 1


def test_the_seed_example_trains_validates_evaluates_and_predicts():
    X, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((X, y)).shuffle(1000).batch(32)
    val = tf.data.Dataset.from_tensor_slices((X[:64], y[:64])).batch(32)
    model = _model()
    counter = _CountBatches()
    history = model.fit(ds, epochs=8, validation_data=val, callbacks=[counter], verbose=0)
    assert counter.per_epoch == [8] * 8
    losses = history.history["loss"]
    assert losses[-1] < losses[0] and "val_loss" in history.history and "val_accuracy" in history.history
    loss, accuracy = model.evaluate(tf.data.Dataset.from_tensor_slices((X, y)).batch(32), verbose=0)
    ref_loss, ref_accuracy = model.evaluate(X, y, batch_size=32, verbose=0)
    assert loss == pytest.approx(ref_loss, rel=1e-5) and accuracy == pytest.approx(ref_accuracy)
    predictions = model.predict(tf.data.Dataset.from_tensor_slices(X).batch(50), verbose=0)
    np.testing.assert_allclose(predictions, model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
    assert predictions.shape == (256, 1)


def test_fit_on_a_dataset_matches_fit_on_the_arrays():
    X, y = _data(96)
    on_arrays, on_dataset = _model(seed=5), _model(seed=5)
    on_arrays.fit(X, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    on_dataset.fit(tf.data.Dataset.from_tensor_slices((X, y)).batch(32).prefetch(tf.data.AUTOTUNE), epochs=3,
                   verbose=0)
    for a, b in zip(on_arrays.get_weights(), on_dataset.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fit_on_a_repeated_dataset_uses_steps_per_epoch():
    X, y = _data(64)
    counter = _CountBatches()
    ds = tf.data.Dataset.from_tensor_slices((X, y)).batch(16).repeat()
    _model().fit(ds, epochs=2, steps_per_epoch=3, callbacks=[counter], verbose=0)
    assert counter.per_epoch == [3, 3]


@pytest.mark.parametrize("prefetch", [False, True], ids=["host_batches", "prefetched"])
def test_fit_on_a_dataset_trains_on_the_current_device(device, prefetch):
    X, y = _data(64)
    ds = tf.data.Dataset.from_tensor_slices((X, y)).batch(16)
    if prefetch:
        ds = ds.prefetch(2)
    model = _model()
    history = model.fit(ds, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(w.device.endswith(device[1:]) for w in model.trainable_variables)
    predictions = model.predict(ds.map(lambda x, labels: x), verbose=0)
    np.testing.assert_allclose(predictions, model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
