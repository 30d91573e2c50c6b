"""One path for model configs: ``get_config`` of Sequential and functional models gives the entries ``model.save``
writes (Keras 3's form), and ``from_config`` reads configs Keras itself wrote.

keras_configs.json holds ``get_config()``, weights, inputs and predictions of three models built by Keras 3.15.1
(torch backend): ``Sequential([Input((4,)), Dense(3, relu, kernel_regularizer='l2', name='hidden'), Dropout(0.2),
Dense(1)])``, a functional model with two inputs, a shared Dense, a nested Sequential and a Concatenate, and
``Sequential([Input((5, 3)), LSTM(4, return_sequences=True), RNN(GRUCell(3), return_sequences=True), GRU(2)])``.
"""
import json
import os

import numpy as np
import pytest

from cuflow import keras
from cuflow.saving import serialize_keras_object

layers = keras.layers

with open(os.path.join(os.path.dirname(__file__), "keras_configs.json")) as f:
    KERAS = json.load(f)


def two_inputs():
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(3,), name="b")
    shared = layers.Dense(2, activation="tanh", kernel_initializer=keras.initializers.HeNormal(seed=1))
    joined = layers.Concatenate()([shared(a), keras.Sequential([layers.Dense(2)], name="inner")(shared(b))])
    return keras.Model([a, b], layers.Dense(1)(joined), name="two")


def stack():
    return keras.Sequential([layers.Dense(3, activation="relu", input_shape=(4,), kernel_regularizer="l2"),
                             layers.Dense(1)], name="stack")


@pytest.mark.parametrize("build", [stack, two_inputs])
def test_get_config_is_the_entry_model_save_writes(build):
    model = build()
    config = model.get_config()
    assert config == serialize_keras_object(model)["config"]
    dense = next(entry for entry in config["layers"] if entry["class_name"] == "Dense")
    assert (dense["module"], dense["registered_name"]) == ("keras.layers", None)
    assert dense["config"]["kernel_initializer"]["module"] == "keras.initializers"
    assert json.loads(json.dumps(config)) == config  # JSON-ready as it is
    again = type(model).from_config(config)
    assert again.get_config() == config


def test_sequential_config_keeps_the_input_shape_as_keras_3_does():
    config = stack().get_config()
    assert [entry["class_name"] for entry in config["layers"]] == ["InputLayer", "Dense", "Dense"]
    assert config["layers"][0]["config"]["batch_shape"] == config["build_input_shape"] == [None, 4]
    assert "batch_input_shape" not in config["layers"][1]["config"]
    assert config["layers"][1]["build_config"] == {"input_shape": [None, 4]}
    assert config["layers"][1]["config"]["kernel_regularizer"] == {
        "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}, "registered_name": None}
    assert keras.Sequential.from_config(config).input_shape == (None, 4)


@pytest.mark.parametrize("kind", ["sequential", "functional", "recurrent"])
def test_from_config_reads_what_keras_wrote(kind):
    saved = KERAS[kind]
    cls = keras.Model if kind == "functional" else keras.Sequential
    model = cls.from_config(saved["config"])
    assert model.name == saved["config"]["name"]
    model.set_weights([np.asarray(w, "float32") for w in saved["weights"]])
    x = [np.asarray(v, "float32") for v in saved["x"]] if kind == "functional" else np.asarray(saved["x"], "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), saved["y"], rtol=1e-5, atol=1e-6)
    if kind == "sequential":
        assert [layer.name for layer in model.layers] == ["hidden", "drop", "out"]
        assert model.input_shape == (None, 4) and model.layers[0].kernel_regularizer.l2 == pytest.approx(0.01)
    elif kind == "functional":
        assert sorted(layer.name for layer in model.layers) == ["a", "b", "cat", "inner", "out", "shared"]
        assert len(model.get_layer("shared")._inbound_nodes) == 2  # one layer, called twice
        assert type(model.get_layer("inner")).__name__ == "Sequential"
    else:
        assert [type(layer.cell).__name__ for layer in model.layers] == ["LSTMCell", "GRUCell", "GRUCell"]


def test_nested_layers_are_keras_entries_and_come_back():
    model = keras.Sequential([layers.RNN(layers.LSTMCell(2, kernel_regularizer="l1"), input_shape=(4, 3))])
    cell = model.get_config()["layers"][1]["config"]["cell"]
    assert (cell["module"], cell["class_name"], cell["registered_name"]) == ("keras.layers", "LSTMCell", None)
    again = keras.Sequential.from_config(json.loads(json.dumps(model.get_config())))
    assert type(again.layers[0].cell.kernel_regularizer).__name__ == "L1"
    assert again.get_config() == model.get_config()


def test_from_config_reads_tf_keras_2_entries():
    config = {"name": "old", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "dense_input"}},
        {"class_name": "Dense", "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
                                           "activation": "tanh", "use_bias": True,
                                           "kernel_initializer": {"class_name": "Constant", "config": {"value": 0.5}},
                                           "bias_initializer": "zeros", "kernel_regularizer": None,
                                           "kernel_constraint": None}}]}
    model = keras.Sequential.from_config(config)
    np.testing.assert_allclose(model.predict(np.ones((1, 3), "float32"), verbose=0), np.tanh([[1.5, 1.5]]),
                               rtol=1e-6)


def test_custom_layers_resolve_through_scopes_and_the_registry():
    @keras.saving.register_keras_serializable(package="tests")
    class Twice(layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    class Half(layers.Layer):
        def call(self, inputs):
            return inputs * 0.5

    inputs = keras.Input(shape=(2,))
    config = keras.Model(inputs, Half()(Twice()(inputs))).get_config()
    names = [(entry["class_name"], entry["registered_name"]) for entry in config["layers"][1:]]
    assert names == [("Twice", "tests>Twice"), ("Half", "Half")]  # Keras writes an unregistered class's name
    with pytest.raises(ValueError, match=r"Unknown layer class 'Half'.*custom_objects"):
        keras.Model.from_config(config)
    with keras.saving.custom_object_scope({"Half": Half}):
        model = keras.Model.from_config(config)
    assert [type(layer) for layer in model.layers[1:]] == [Twice, Half]


def test_entries_that_are_not_layers_are_refused():
    with pytest.raises(ValueError, match=r"must be a dict with 'class_name' and 'config', got 'Dense'"):
        keras.Sequential.from_config({"layers": ["Dense"]})
    entry = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
    with pytest.raises(ValueError, match="'Zeros' describes a Zeros, not a layer"):
        keras.Sequential.from_config({"layers": [entry]})
