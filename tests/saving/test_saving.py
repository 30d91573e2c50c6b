"""Round trips through .keras, .h5 and .weights.h5, the files' layout (Keras 3's and tf.keras 2's exactly), the
compile config and optimizer state, and atomic saves."""
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import cuflow as tf
from cuflow import keras
from cuflow.saving import atomic, h5io

layers = keras.layers


def mlp():
    return keras.Sequential([layers.Dense(8, activation="relu", input_shape=(4,), kernel_regularizer="l2",
                                          name="hidden"),
                             layers.Dropout(0.3, name="drop"), layers.Dense(3, activation="softmax", name="probs")])


def cnn():
    return keras.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), layers.MaxPooling2D(),
                             layers.Dropout(0.5), layers.Conv2D(2, (2, 2), padding="same"),
                             layers.AveragePooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")])


def functional():
    inputs = keras.Input(shape=(5,), name="features")
    hidden = layers.Dense(6, activation="relu")(inputs)
    joined = layers.Concatenate()([layers.Dense(3)(hidden), layers.Dropout(0.2)(layers.Dense(3)(hidden))])
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(joined), name="branches")


def data(model, n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(model.input_shape[1:])).astype("float32")
    return x, rng.integers(0, 3, n)


def trained(build, optimizer="adam"):
    tf.random.set_seed(1)
    model = build()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*data(model), epochs=1, batch_size=3, shuffle=False, verbose=0)
    return model


def _config(layer):  # Keras 3 keeps the input shape in the model's InputLayer entry, not on the first layer
    return {k: v for k, v in layer.get_config().items() if k != "batch_input_shape"}


def h5_paths(source):
    paths = []
    with h5py.File(source, "r") as f:
        f.visit(paths.append)
    return sorted(paths)


@pytest.mark.parametrize("build", [mlp, cnn, functional])
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_round_trip_gives_identical_predictions(tmp_path, device, build, suffix):
    model = trained(build)
    path = str(tmp_path / f"model{suffix}")
    x, _ = data(model, seed=5)
    if suffix == ".weights.h5":
        model.save_weights(path)
        tf.random.set_seed(2)
        restored = build()
        assert not np.array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
        restored.load_weights(path)
    else:
        model.save(path)
        restored = keras.models.load_model(path)
        assert [type(a) for a in restored.layers] == [type(b) for b in model.layers]
        assert [_config(a) for a in restored.layers] == [_config(b) for b in model.layers]
        assert restored.input_shape == model.input_shape and restored.name == model.name
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_compile_and_optimizer_state_are_restored(tmp_path, suffix):
    model = trained(mlp, keras.optimizers.Adam(learning_rate=0.01, amsgrad=True))
    path = str(tmp_path / f"model{suffix}")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.optimizer) is keras.optimizers.Adam
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert restored.loss == "sparse_categorical_crossentropy" and restored.metrics_names[:1] == ["loss"]
    assert int(restored.optimizer.iterations.numpy()) == 2
    for var, twin in zip(model.trainable_variables, restored.trainable_variables):
        for slot in ("m", "v", "v_hat"):
            np.testing.assert_array_equal(restored.optimizer.get_slot(twin, slot), model.optimizer.get_slot(var, slot))
    # the next step matches: same moments, same step count (and the same dropout mask)
    x, y = data(model, seed=3)
    for m in (model, restored):
        tf.random.set_seed(7)
        m.train_on_batch(x, y)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)
    assert not keras.models.load_model(path, compile=False)._compiled


def test_keras_zip_members_and_config(tmp_path):
    model = trained(cnn)
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        assert set(json.loads(archive.read("metadata.json"))) == {"keras_version", "date_saved"}
    assert (config["module"], config["class_name"], config["registered_name"]) == ("keras", "Sequential", None)
    assert config["build_config"] == {"input_shape": [None, 8, 8, 1]}
    entries = config["config"]["layers"]
    assert entries[0]["class_name"] == "InputLayer" and entries[0]["config"]["batch_shape"] == [None, 8, 8, 1]
    conv = entries[1]
    assert (conv["module"], conv["class_name"], conv["build_config"]) == ("keras.layers", "Conv2D",
                                                                            {"input_shape": [None, 8, 8, 1]})
    assert conv["config"]["kernel_initializer"] == {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                    "config": {"seed": None}, "registered_name": None}
    assert conv["config"]["kernel_size"] == [3, 3] and conv["config"]["activation"] == "relu"
    compiled = config["compile_config"]
    assert compiled["optimizer"]["module"] == "keras.optimizers" and compiled["optimizer"]["class_name"] == "Adam"
    assert (compiled["loss"], compiled["metrics"]) == ("sparse_categorical_crossentropy", ["accuracy"])


def test_weights_layout_is_keras_3s(tmp_path):
    model = trained(cnn)
    model.save_weights(tmp_path / "m.weights.h5")
    groups = ["layers", "optimizer", "optimizer/vars", "vars"]
    for name in ("conv2d", "conv2d_1", "dense"):
        groups += [f"layers/{name}", f"layers/{name}/vars", f"layers/{name}/vars/0", f"layers/{name}/vars/1"]
    for name in ("max_pooling2d", "dropout", "average_pooling2d", "flatten"):
        groups += [f"layers/{name}", f"layers/{name}/vars"]
    groups += [f"optimizer/vars/{i}" for i in range(2 + 2 * 6)]  # iteration, learning_rate, (m, v) per variable
    assert h5_paths(tmp_path / "m.weights.h5") == sorted(groups)
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        assert f["vars"].attrs["name"] == model.name and f["optimizer/vars"].attrs["name"] == "adam"
        np.testing.assert_array_equal(f["layers/conv2d_1/vars/0"], model.layers[3].kernel.numpy())
        np.testing.assert_array_equal(f["optimizer/vars/2"], model.optimizer.get_slot(model.layers[0].kernel, "m"))
        np.testing.assert_array_equal(f["optimizer/vars/3"], model.optimizer.get_slot(model.layers[0].kernel, "v"))
        assert f["optimizer/vars/0"][()] == 2 and f["optimizer/vars/1"][()] == np.float32(0.001)


def test_paths_follow_class_names_and_attributes_not_layer_names(tmp_path):
    class Sub(keras.Model):  # Keras 3 writes this model as: blocks/dense, blocks/dense_1, hidden, layers/dense
        def __init__(self):
            super().__init__()
            self.out = layers.Dense(1)
            self.hidden = layers.Dense(4)
            self.blocks = [layers.Dense(3), layers.Dense(3)]

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return self.out(self.hidden(x))

    model = Sub()
    model(np.zeros((1, 2), "float32"))
    model.save_weights(tmp_path / "sub.weights.h5")
    found = [p for p in h5_paths(tmp_path / "sub.weights.h5") if p.endswith("/0")]
    assert found == ["blocks/dense/vars/0", "blocks/dense_1/vars/0", "hidden/vars/0", "layers/dense/vars/0"]
    twin = Sub()
    twin(np.zeros((1, 2), "float32"))
    twin.load_weights(tmp_path / "sub.weights.h5")
    x = np.ones((2, 2), "float32")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))

    named = keras.Sequential([layers.Dense(2, name="first", input_shape=(3,)), layers.Dense(1, name="second")])
    named.save_weights(tmp_path / "named.weights.h5")
    assert "layers/dense_1/vars/0" in h5_paths(tmp_path / "named.weights.h5")


def test_legacy_h5_layout_is_tf_keras_2s(tmp_path):
    model = trained(mlp)
    model.save(tmp_path / "m.h5")
    paths = h5_paths(tmp_path / "m.h5")
    assert "model_weights/hidden/hidden/kernel:0" in paths and "model_weights/probs/probs/bias:0" in paths
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert set(f.attrs) == {"backend", "keras_version", "model_config", "training_config"}
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential" and "module" not in config
        assert config["config"]["layers"][0] == {"class_name": "InputLayer", "config": {
            "batch_input_shape": [None, 4], "dtype": "float32", "sparse": False, "name": "input_layer"}}
        assert h5io.string_list(f["model_weights"], "layer_names") == ["hidden", "drop", "probs"]
        assert h5io.string_list(f["model_weights/hidden"], "weight_names") == ["hidden/kernel:0", "hidden/bias:0"]
        assert json.loads(f.attrs["training_config"])["optimizer_config"]["class_name"] == "Adam"


def test_tf_keras_2_h5_file_loads(tmp_path):
    # written by hand as tf.keras 2.15 writes it: legacy configs, plain-string initializers and dtypes
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "dense_input"}},
        {"class_name": "Dense", "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
                                           "activation": "tanh", "use_bias": True,
                                           "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
                                           "kernel_regularizer": None, "bias_regularizer": None,
                                           "activity_regularizer": None, "kernel_constraint": None,
                                           "bias_constraint": None}}]}}
    kernel, bias = np.arange(6, dtype="float32").reshape(3, 2) / 10, np.array([0.5, -0.5], "float32")
    with h5py.File(tmp_path / "tf2.h5", "w") as f:
        f.attrs["keras_version"], f.attrs["backend"] = "2.15.0", "tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        f.attrs["training_config"] = json.dumps({"loss": "mse", "metrics": None, "loss_weights": None,
                                                 "optimizer_config": {"class_name": "SGD", "config": {
                                                     "name": "SGD", "learning_rate": 0.1, "momentum": 0.0,
                                                     "nesterov": False, "is_legacy_optimizer": False}}}).encode()
        weights = f.create_group("model_weights")
        h5io.set_string_list(weights, "layer_names", ["dense"])
        dense = weights.create_group("dense")
        h5io.set_string_list(dense, "weight_names", ["dense/kernel:0", "dense/bias:0"])
        dense["dense/kernel:0"], dense["dense/bias:0"] = kernel, bias
    model = keras.models.load_model(tmp_path / "tf2.h5")
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.tanh(x @ kernel + bias), rtol=1e-6)
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.learning_rate == 0.1


def test_keras_config_forms_are_accepted():
    dense = keras.saving.deserialize_keras_object({
        "module": "keras.layers", "class_name": "Dense", "registered_name": None,
        "build_config": {"input_shape": [None, 5]},
        "config": {"name": "d", "trainable": True, "units": 2, "activation": "relu", "use_bias": True,
                   "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"},
                             "registered_name": None},
                   "kernel_initializer": {"module": "keras.initializers", "class_name": "Constant",
                                          "config": {"value": 0.5}, "registered_name": None},
                   "bias_initializer": "ones", "kernel_regularizer": None, "bias_regularizer": None,
                   "kernel_constraint": None, "bias_constraint": None, "quantization_config": None}})
    assert dense.built and dense.dtype == "float64" and dense.kernel.shape == (5, 2)
    np.testing.assert_array_equal(dense.kernel.numpy(), np.full((5, 2), 0.5))
    np.testing.assert_array_equal(dense.bias.numpy(), np.ones(2))


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_failed_save_leaves_old_file_and_no_temp_files(tmp_path, monkeypatch, suffix):
    model = trained(mlp)
    path = tmp_path / f"m{suffix}"
    (model.save_weights if suffix == ".weights.h5" else model.save)(path)
    before = path.read_bytes()
    model.layers[0].kernel.assign(np.zeros((4, 8), "float32"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    if suffix == ".keras":  # fail while writing the zip, after its first members
        real = zipfile.ZipFile.writestr
        monkeypatch.setattr(zipfile.ZipFile, "writestr",
                            lambda self, name, data, *a, **k: broken() if name == "model.weights.h5"
                            else real(self, name, data, *a, **k))
    else:  # fail after some datasets are written
        real_write, calls = h5io.write, []
        monkeypatch.setattr(h5io, "write", lambda *a: broken() if calls.append(1) or len(calls) > 2 else real_write(*a))
    with pytest.raises(OSError, match="disk full"):
        (model.save_weights if suffix == ".weights.h5" else model.save)(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_save_is_fsynced_and_replaced_in_one_step(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append("replace") or real_replace(a, b))
    mlp().save(tmp_path / "m.keras")
    assert calls[:2] == ["fsync", "replace"]
    assert os.stat(tmp_path / "m.keras").st_mode & 0o777 == 0o666 & ~atomic._UMASK  # not mkstemp's 0600


def test_legacy_weights_files_load_by_order_or_name(tmp_path):
    model = trained(mlp)
    model.save(tmp_path / "m.h5")
    x, _ = data(model, seed=4)
    for path, kwargs in ((tmp_path / "m.h5", {}), (tmp_path / "m.h5", {"by_name": True})):
        twin = mlp()
        twin.load_weights(path, **kwargs)
        np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    with h5py.File(tmp_path / "m.h5", "r") as source, h5py.File(tmp_path / "tf2.weights.h5", "w") as f:
        for key in ("layer_names", "backend", "keras_version"):  # tf.keras 2's save_weights: the group at the root
            f.attrs[key] = source["model_weights"].attrs[key]
        for name in source["model_weights"]:
            source.copy(source["model_weights"][name], f, name)
    twin = mlp()
    twin.load_weights(tmp_path / "tf2.weights.h5")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
