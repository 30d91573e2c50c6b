"""Sequential / Model and the training API: the seed's examples, convergence on real data, and bad input."""
import time

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras

layers = keras.layers


# --- the seed's examples, written as TensorFlow code ------------------------------------------------------------
def test_seed_linear_regression_predicts_six():
    tf.random.set_seed(0)
    xs = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    ys = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0])  # y = x, so predict(6) is about 6
    model = tf.keras.Sequential([keras.layers.Dense(units=1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(xs, ys, epochs=500, verbose=0)
    assert len(history.history["loss"]) == 500 and history.history["loss"][-1] < 1e-3
    assert abs(float(model.predict([[6.0]], verbose=0)[0, 0]) - 6.0) < 0.1


def test_seed_logistic_regression_runs_and_returns_history(rng):
    X = rng.standard_normal((200, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 1.5]) > 0).astype(np.float32)
    model = keras.Sequential([layers.Dense(1, input_shape=(4,), activation="sigmoid")])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=5, verbose=0)
    assert isinstance(history, keras.callbacks.History) and history.epoch == [0, 1, 2, 3, 4]
    assert sorted(history.history) == ["accuracy", "loss"] and len(history.history["loss"]) == 5
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert type(model.compiled_loss.metrics[0][1]).__name__ == "BinaryAccuracy"  # 'accuracy' resolved from the loss


def test_seed_three_layer_network_learns(rng):
    tf.random.set_seed(1)
    X = rng.standard_normal((256, 8)).astype(np.float32)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2] > 0).astype(np.float32)
    model = keras.Sequential([layers.Dense(32, input_shape=(8,)), layers.Dense(16, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.8 > history.history["accuracy"][0] - 0.1
    loss, accuracy = model.evaluate(X, y, verbose=0)
    assert accuracy > 0.8 and loss < history.history["loss"][0]


def seed_cnn():
    return keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


def test_seed_cnn_training_steps_lower_the_loss(device, rng):
    tf.random.set_seed(2)
    x = rng.random((64, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    model = seed_cnn()
    assert model.output_shape == (None, 10) and model.count_params() == 320 + 5408 * 10 + 10
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    after = model.evaluate(x, y, verbose=0)[0]
    assert after < before
    assert model.predict(x[:5], verbose=0).shape == (5, 10)
    np.testing.assert_allclose(model.predict(x[:5], verbose=0).sum(axis=1), 1.0, rtol=1e-5)


def test_custom_gradient_tape_loop(rng):
    tf.random.set_seed(3)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X @ np.array([[2.0], [-1.0], [0.5]]) + 0.3).astype(np.float32)
    model = keras.Sequential([layers.Dense(1, input_shape=(3,))])
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    loss_fn = keras.losses.MeanSquaredError()
    losses = []
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(X, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < 1e-3 < losses[0]
    np.testing.assert_allclose(model.layers[0].kernel.numpy().ravel(), [2.0, -1.0, 0.5], atol=0.02)


# --- convergence on real data ------------------------------------------------------------------------------------
def test_small_cnn_reaches_97_percent_on_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    X = (digits.images / 16.0).astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], digits.target[order]
    tf.random.set_seed(0)
    with tf.device("/CPU:0"):
        model = keras.Sequential([
            layers.Conv2D(32, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
            layers.MaxPooling2D(), layers.Flatten(), layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(X[:1400], y[:1400], epochs=12, batch_size=32, verbose=0)
        _, accuracy = model.evaluate(X[1400:], y[1400:], verbose=0)
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f} after {time.perf_counter() - start:.1f}s"


# --- the rest of the API ---------------------------------------------------------------------------------------
def test_validation_split_weights_and_batch_methods(rng):
    X = rng.standard_normal((100, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input(shape=(2,)), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=2, validation_split=0.2, class_weight={0: 1.0, 1: 2.0},
                        sample_weight=np.ones(100), verbose=0, shuffle=False)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    logs = model.evaluate(X[80:], y[80:], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    loss, accuracy = model.train_on_batch(X[:10], y[:10])
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert model.test_on_batch(X[:10], y[:10], return_dict=True).keys() == {"loss", "accuracy"}
    np.testing.assert_allclose(model.predict_on_batch(X[:3]), model.predict(X[:3], verbose=0), rtol=1e-6)
    assert model.metrics_names == ["loss", "accuracy"]


def test_sample_weight_zero_ignores_samples(rng):
    X = rng.standard_normal((8, 3)).astype(np.float32)
    model = keras.Sequential([layers.Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse")
    y = np.zeros(8, np.float32)
    y_bad = y.copy()
    y_bad[4:] = 1e3
    weights = np.r_[np.ones(4), np.zeros(4)]
    assert model.evaluate(X, y_bad, sample_weight=weights, verbose=0) == pytest.approx(
        model.evaluate(X[:4], y[:4], verbose=0) / 2, rel=1e-5)  # Keras: weighted sum over all 8 samples


def test_subclassed_model_trains_and_counts_variables(rng):
    class TwoLayers(keras.Model):
        def __init__(self):
            super().__init__(name="two")
            self.hidden = layers.Dense(8, activation="relu")
            self.drop = layers.Dropout(0.1)
            self.out = layers.Dense(1)

        def call(self, inputs, training=None):
            return self.out(self.drop(self.hidden(inputs), training=training))

    model = TwoLayers()
    X = rng.standard_normal((32, 4)).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(X, X.sum(axis=1), epochs=3, verbose=0)
    assert len(model.trainable_variables) == 4 and len(history.history["loss"]) == 3
    lines = []
    model.summary(print_fn=lines.append)
    assert any("hidden" not in line and "dense" in line and "(None, 8)" in line for line in lines)


def test_summary_table_and_config_round_trip():
    model = seed_cnn()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"{model.layers[0].name} (Conv2D)" in text and "(None, 26, 26, 32)" in text and "(None, 5408)" in text
    assert "Total params: 54,410" in text and "Trainable params: 54,410" in text
    again = keras.Sequential.from_config(model.get_config())
    assert again.output_shape == (None, 10) and again.count_params() == model.count_params()
    assert [type(layer).__name__ for layer in again.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]


def test_callbacks_see_every_epoch_and_can_stop_training(rng):
    seen = []

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))
            if epoch == 1:
                self.model.stop_training = True

    model = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse")
    history = model.fit(rng.standard_normal((10, 2)), np.zeros(10), epochs=5, callbacks=[StopAfterTwo()],
                        verbose=0, initial_epoch=0)
    assert seen == [(0, ["loss"]), (1, ["loss"])] and history.epoch == [0, 1]


def test_progress_output_for_each_verbosity(rng, capsys):
    model = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse")
    X, y = rng.standard_normal((40, 2)), np.zeros(40)
    model.fit(X, y, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch") == 2 and "Epoch 2/2" in out and "loss: " in out
    model.fit(X, y, epochs=1, batch_size=8, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "5/5" in err and "loss" in err
    model.fit(X, y, epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")


# --- keras.backend settings ---------------------------------------------------------------------------------------
def test_set_floatx_gives_float64_layers_that_train(rng):
    keras.backend.set_floatx("float64")
    try:
        model = keras.Sequential([layers.Dense(4, input_shape=(3,), activation="relu"), layers.Dense(1)])
        explicit = layers.Dense(2, dtype="float32")
    finally:
        keras.backend.set_floatx("float32")
    assert model.dtype == "float64" and [layer.dtype for layer in model.layers] == ["float64", "float64"]
    assert {w.dtype.name for w in model.weights} == {"float64"} and explicit.dtype == "float32"
    model.compile(keras.optimizers.SGD(0.05), "mse")
    x = rng.standard_normal((32, 3)).astype(np.float32)  # float32 data is cast to the model's float64
    y = x @ np.array([1.0, -1.0, 0.5])
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).dtype == np.float64 and {w.dtype for w in model.get_weights()} == {np.dtype(np.float64)}
    assert layers.Dense(1).dtype == "float32"  # the default is read when the layer is made


def test_losses_clip_with_keras_epsilon_read_at_call_time():
    cases = [(keras.losses.BinaryCrossentropy(), [[1.0]], [[0.0]]),  # probability 0 for the true label
             (keras.losses.CategoricalCrossentropy(), [[0.0, 1.0]], [[1.0, 0.0]]),
             (keras.losses.SparseCategoricalCrossentropy(), [1], [[1.0, 0.0]])]
    for epsilon in (1e-3, 1e-7):  # the second restores Keras's default
        keras.backend.set_epsilon(epsilon)
        for loss, y_true, y_pred in cases:
            assert float(loss(y_true, np.array(y_pred, np.float32))) == pytest.approx(-np.log(epsilon), rel=1e-4)
    assert keras.backend.epsilon() == 1e-7


# --- bad input -----------------------------------------------------------------------------------------------------
def test_fit_before_compile_says_to_compile():
    model = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    with pytest.raises(RuntimeError, match=r"compile\(\)"):
        model.fit(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(np.zeros((4, 2)), np.zeros(4))


def test_wrong_input_shape_names_the_layer():
    model = keras.Sequential([layers.Dense(3, input_shape=(4,), name="first"), layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"'first'.*value 4.*\(2, 5\)"):
        model.fit(np.zeros((2, 5)), np.zeros(2), verbose=0)
    with pytest.raises(ValueError, match=r"'conv2d.*expected ndim=4.*\(None, 28, 28\)"):
        keras.Sequential([layers.Conv2D(2, 3, input_shape=(28, 28))])


def test_mismatched_data_and_unknown_names():
    model = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="optimizer"):
        model.compile("sgdd", "mse")
    with pytest.raises(ValueError, match="loss"):
        model.compile("sgd", "msee")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="same number of samples, got 4 and 3"):
        model.fit(np.zeros((4, 2)), np.zeros(3), verbose=0)
    with pytest.raises(TypeError, match="outputs must be KerasTensors"):
        keras.Model(inputs=keras.Input((2,)), outputs=None)
