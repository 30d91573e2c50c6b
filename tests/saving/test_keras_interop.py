"""Files written by Keras 3 load in cuflow with the same predictions, and the other way round.

Keras runs in its own process (keras_side.py, torch backend). Skipped when Keras 3 or torch is not installed:
neither is a test dependency.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras

_MISSING = importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None
pytestmark = [pytest.mark.slow,  # importing Keras and torch alone takes seconds
              pytest.mark.skipif(_MISSING, reason="Keras 3 with the torch backend is not installed")]

layers = keras.layers
KINDS = ("mlp", "cnn", "fun")
SHAPES = {"mlp": (4,), "cnn": (8, 8, 1), "fun": (6,)}


def build(kind):
    if kind == "fun":  # functional: two branches joined
        inputs = keras.Input(shape=(6,), name="features")
        hidden = layers.Dense(8, activation="relu")(inputs)
        joined = layers.Concatenate()([layers.Dense(4)(hidden), layers.Dense(4, activation="tanh")(hidden)])
        return keras.Model(inputs, layers.Dense(3, activation="softmax")(joined))
    if kind == "mlp":
        return keras.Sequential([keras.Input(shape=(4,)), layers.Dense(8, activation="relu", kernel_regularizer="l2"),
                                 layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    return keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(), layers.Dropout(0.5), layers.Conv2D(2, (2, 2), padding="same"),
                             layers.AveragePooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])


@pytest.fixture(scope="module")
def exchanged(tmp_path_factory):
    """cuflow's files and predictions, then Keras's run over them: the work directory and cuflow's models."""
    work = tmp_path_factory.mktemp("interop")
    models = {}
    for kind in KINDS:
        tf.random.set_seed(3)
        x = np.random.default_rng(0).random((8,) + SHAPES[kind]).astype("float32")
        np.save(work / f"x_{kind}.npy", x)
        model = build(kind)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
        model.save(work / f"cuflow_{kind}.keras")
        model.save(work / f"cuflow_{kind}.h5")
        model.save_weights(work / f"cuflow_{kind}.weights.h5")
        models[kind] = (model, x)
    script = os.path.join(os.path.dirname(__file__), "keras_side.py")
    done = subprocess.run([sys.executable, script, str(work)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"})
    if done.returncode == 77:
        pytest.skip("no usable Keras 3")
    assert done.returncode == 0, done.stderr[-3000:]
    return work, models


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_keras_reads_cuflow_files(exchanged, kind, suffix):
    work, models = exchanged
    model, x = models[kind]
    keras_pred = np.load(work / f"cuflow_{kind}{suffix}.keras_pred.npy")
    np.testing.assert_allclose(keras_pred, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    if suffix == ".keras":  # the optimizer state came along
        assert int(np.load(work / f"cuflow_{kind}.keras.iterations.npy")) == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_cuflow_reads_keras_files(exchanged, kind, suffix):
    work, models = exchanged
    _, x = models[kind]
    path = work / f"keras_{kind}{suffix}"
    if suffix == ".weights.h5":
        model = build(kind)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.load_weights(path)
        assert int(model.optimizer.iterations.numpy()) == 2  # Keras's optimizer state, in Keras's order
    else:
        model = keras.models.load_model(path)
        assert type(model.optimizer).__name__ == "Adam" and model.loss == "sparse_categorical_crossentropy"
        assert [type(layer).__name__ for layer in model.layers] == [type(layer).__name__
                                                                    for layer in build(kind).layers]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(work / f"keras_{kind}.pred.npy"),
                               rtol=1e-5, atol=1e-6)
