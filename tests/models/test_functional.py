"""The functional API (Input, Model(inputs, outputs), shared and nested layers, configs), training with several
inputs and outputs, and iterable data (generators, classes with __iter__, PyDataset-like objects) in fit."""
import json
import warnings

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras

layers = keras.layers


class Concat(layers.Layer):
    """Concatenates a list of tensors on the last axis; no compute_output_shape, so symbolic calls probe call()."""

    def call(self, inputs):
        return tf.concat(list(inputs), axis=-1)


def two_tower_model():
    """Two inputs through one shared Dense, concatenated, and two outputs."""
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(3,), name="b")
    shared = layers.Dense(4, activation="tanh", name="shared")
    merged = Concat(name="merged")([shared(a), shared(b)])
    score = layers.Dense(1, name="score")(merged)
    kind = layers.Dense(3, activation="softmax", name="kind")(shared(b))
    return keras.Model(inputs=[a, b], outputs=[score, kind], name="towers")


def _dense(x, layer, activation=None):
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    out = x @ kernel + bias
    if activation == "tanh":
        return np.tanh(out)
    if activation == "softmax":
        e = np.exp(out - out.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return out


def test_graph_runs_like_the_same_computation_in_numpy(device, rng):
    tf.random.set_seed(0)
    model = two_tower_model()
    assert [layer.name for layer in model.layers] == ["a", "b", "shared", "merged", "score", "kind"]
    assert isinstance(model.layers[0], layers.InputLayer) and model.output_names == ["score", "kind"]
    assert model.input_shape == [(None, 3), (None, 3)] and model.output_shape == [(None, 1), (None, 3)]
    assert len(model.weights) == 6  # the shared Dense once
    xa, xb = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    score, kind = model.predict([xa, xb], verbose=0)
    shared = model.get_layer("shared")
    ha, hb = _dense(xa, shared, "tanh"), _dense(xb, shared, "tanh")
    np.testing.assert_allclose(score, _dense(np.concatenate([ha, hb], -1), model.get_layer("score")), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(kind, _dense(hb, model.get_layer("kind"), "softmax"), rtol=1e-5, atol=1e-6)
    by_name = model({"b": xb, "a": xa})  # a dict of inputs is matched by Input name
    np.testing.assert_allclose(by_name[0].numpy(), score, rtol=1e-6)
    assert len(shared._inbound_nodes) == 3 and shared.output.shape == (None, 4)


def test_multi_output_training_lowers_the_loss_with_keras_log_names(rng):
    tf.random.set_seed(1)
    model = two_tower_model()
    xa, xb = rng.standard_normal((96, 3)).astype(np.float32), rng.standard_normal((96, 3)).astype(np.float32)
    score, kind = (xa[:, :1] - xb[:, 1:2]), (xb[:, 0] > 0).astype(np.int64) + (xb[:, 1] > 1)
    model.compile(keras.optimizers.Adam(0.02), loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[1.0, 0.5], metrics=[["mse"], ["accuracy"]])
    before = model.evaluate([xa, xb], [score, kind], verbose=0, return_dict=True)
    history = model.fit([xa, xb], [score, kind], epochs=8, batch_size=16, verbose=0, validation_split=0.25)
    assert list(history.history) == ["loss", "score_loss", "kind_loss", "score_mse", "kind_accuracy", "val_loss",
                                     "val_score_loss", "val_kind_loss", "val_score_mse", "val_kind_accuracy"]
    after = model.evaluate([xa, xb], {"score": score, "kind": kind}, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] and after["score_loss"] < before["score_loss"]
    assert after["loss"] == pytest.approx(after["score_loss"] + 0.5 * after["kind_loss"], rel=1e-4)
    assert model.metrics_names == list(after)
    assert model.evaluate([xa, xb], [score, kind], verbose=0) == pytest.approx(list(after.values()), rel=1e-5)


def test_dict_inputs_and_outputs_with_dict_losses(rng):
    tf.random.set_seed(2)
    inputs = {"left": keras.Input(shape=(2,), name="left"), "right": keras.Input(shape=(2,), name="right")}
    joined = Concat()([inputs["left"], inputs["right"]])
    outputs = {"total": layers.Dense(1)(joined), "flag": layers.Dense(1, activation="sigmoid")(joined)}
    model = keras.Model(inputs, outputs)
    assert model.input_names == ["left", "right"] and model.output_names == ["total", "flag"]
    x = {"left": rng.standard_normal((64, 2)), "right": rng.standard_normal((64, 2))}
    y = {"total": x["left"].sum(1) + x["right"].sum(1), "flag": (x["left"][:, 0] > 0).astype(np.float32)}
    model.compile("adam", loss={"total": "mse", "flag": "binary_crossentropy"}, metrics={"flag": "accuracy"},
                  loss_weights={"total": 0.5})
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert list(history.history) == ["loss", "total_loss", "flag_loss", "flag_accuracy"]
    predictions = model.predict(x, verbose=0)
    assert isinstance(predictions, dict) and predictions["total"].shape == (64, 1)
    flag_only = keras.Model(inputs, outputs)
    flag_only.compile("sgd", loss={"flag": "binary_crossentropy"})  # no loss for 'total': its y may be left out
    loss, flag_loss = flag_only.evaluate(x, {"flag": y["flag"]}, verbose=0)
    assert np.isfinite(loss) and loss == pytest.approx(flag_loss, rel=1e-6)


def test_nested_sequential_and_functional_models_train_and_share_weights(rng):
    tf.random.set_seed(3)
    encoder = keras.Sequential([layers.Dense(6, activation="relu", input_shape=(4,)), layers.Dense(3)],
                               name="encoder")
    inner_in = keras.Input(shape=(3,))
    head = keras.Model(inner_in, layers.Dense(1, name="head_out")(inner_in), name="head")
    x_in = keras.Input(shape=(4,))
    model = keras.Model(x_in, head(encoder(x_in)), name="outer")
    assert [layer.name for layer in model.layers][1:] == ["encoder", "head"] and len(model.weights) == 6
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = x[:, :1] * 2.0
    expected = head.predict(encoder.predict(x, verbose=0), verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first
    np.testing.assert_allclose(encoder.layers[0].kernel.numpy(), model.weights[0].numpy())  # trained in place


def test_config_round_trip_in_keras3_layout_gives_the_same_predictions(rng):
    model = two_tower_model()
    config = json.loads(json.dumps(model.get_config()))  # JSON as a .keras file holds it
    assert config["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert config["output_layers"] == [["score", 0, 0], ["kind", 0, 0]]
    entries = {entry["name"]: entry for entry in config["layers"]}
    assert entries["a"]["class_name"] == "InputLayer" and entries["a"]["inbound_nodes"] == []
    assert entries["a"]["config"]["batch_shape"] == [None, 3]
    shared_calls = entries["shared"]["inbound_nodes"]
    assert [call["args"][0]["config"]["keras_history"] for call in shared_calls] == [["a", 0, 0], ["b", 0, 0],
                                                                                      ["b", 0, 0]]
    assert entries["kind"]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == ["shared", 2, 0]
    assert entries["merged"]["inbound_nodes"][0]["args"][0][1]["class_name"] == "__keras_tensor__"
    with pytest.raises(ValueError, match="Unknown layer class 'Concat'"):
        keras.Model.from_config(config)
    again = keras.Model.from_config(config, custom_objects={"Concat": Concat})
    again.set_weights(model.get_weights())
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    x = [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))]
    for got, want in zip(again.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    nested = keras.Model(x_in := keras.Input((3,)), keras.Sequential([layers.Dense(2)])(x_in))
    rebuilt = keras.Model.from_config(json.loads(json.dumps(nested.get_config())))
    assert type(rebuilt.layers[1]).__name__ == "Sequential" and rebuilt.output_shape == (None, 2)


def test_summary_shows_input_layers_and_connections():
    lines = []
    two_tower_model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "a (InputLayer)" in text and "Connected to" in text and "shared[1][0]" in text
    assert "(None, 8)" in text and "Total params: 40" in text  # shared 16 (once), score 9, kind 15
    chain = keras.Model(x := keras.Input((2,)), layers.Dense(3)(x))
    lines.clear()
    chain.summary(print_fn=lines.append)
    assert "Connected to" not in "\n".join(lines) and "(None, 3)" in "\n".join(lines)


def test_feature_extraction_and_subclass_calling_the_functional_constructor(rng):
    base = keras.Sequential([keras.Input((3,)), layers.Dense(5, name="features"), layers.Dense(1)])
    inputs = keras.Input(shape=(3,))
    hidden = layers.Dense(5, name="hidden")(inputs)
    model = keras.Model(inputs, layers.Dense(1)(hidden))
    extractor = keras.Model(model.input, model.get_layer("hidden").output)
    x = rng.standard_normal((2, 3))
    np.testing.assert_allclose(extractor.predict(x, verbose=0), model.get_layer("hidden")(x).numpy(), rtol=1e-6)
    assert base.output_names == [base.layers[-1].name]

    class Wrapped(keras.Model):
        def __init__(self):
            x_in = keras.Input(shape=(3,))
            super().__init__(x_in, layers.Dense(2)(x_in), name="wrapped")

    wrapped = Wrapped()
    assert isinstance(wrapped, Wrapped) and wrapped.predict(x, verbose=0).shape == (2, 2)


def test_bad_graphs_inputs_and_compile_specs_name_what_is_wrong():
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(2,), name="b")
    out = layers.Dense(1)(Concat()([a, b]))
    with pytest.raises(ValueError, match=r"Graph disconnected.*needs input 'b'.*\['a'\]"):
        keras.Model(a, out)
    with pytest.raises(TypeError, match="inputs must be KerasTensors"):
        keras.Model(np.zeros((1, 3)), out)
    model = keras.Model([a, b], out)
    with pytest.raises(ValueError, match=r"expects 2 input\(s\) \['a', 'b'\], but it received 1"):
        model.predict(np.zeros((4, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"Input 1 \('b'\).*expected shape \(None, 2\), got shape \(4, 5\)"):
        model.predict([np.zeros((4, 3)), np.zeros((4, 5))], verbose=0)
    with pytest.raises(ValueError, match=r"missing input\(s\) \['b'\]"):
        model({"a": np.zeros((1, 3))})
    with pytest.raises(ValueError, match=r"used more than once"):
        x = keras.Input((2,))
        keras.Model(x, layers.Dense(1, name="dup")(layers.Dense(2, name="dup")(x)))
    two = two_tower_model()
    with pytest.raises(ValueError, match=r"loss is a list of 3 but the model has 2 output\(s\) \['score', 'kind'\]"):
        two.compile("sgd", loss=["mse", "mse", "mse"])
    with pytest.raises(ValueError, match=r"key\(s\) \['scor'\].*\['score', 'kind'\]"):
        two.compile("sgd", loss={"scor": "mse"})
    two.compile("sgd", loss="mse")
    with pytest.raises(ValueError, match=r"2 outputs.*list or dict of 2 targets"):
        two.fit([np.zeros((4, 3))] * 2, np.zeros((4, 1)), verbose=0)
    with pytest.raises(ValueError, match="class_weight.*single output"):
        two.fit([np.zeros((4, 3))] * 2, [np.zeros((4, 1)), np.zeros(4)], class_weight={0: 1.0}, verbose=0)


def test_subclassed_model_with_two_outputs_gets_default_output_names(rng):
    class TwoHeads(keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = layers.Dense(1), layers.Dense(2)

        def call(self, inputs):
            return [self.a(inputs), self.b(inputs)]

    model = TwoHeads()
    model.compile("sgd", loss=["mse", "mse"], metrics=["mse"])
    x = rng.standard_normal((8, 3))
    history = model.fit(x, [np.zeros((8, 1)), np.ones((8, 2))], epochs=1, verbose=0)
    assert list(history.history) == ["loss", "output_1_loss", "output_2_loss", "output_1_mse", "output_2_mse"]
    assert [p.shape for p in model.predict(x, verbose=0)] == [(8, 1), (8, 2)]


# --- iterable data ---------------------------------------------------------------------------------------------------
def _regression(rng, n=64):
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32))


def _linear_model(lr=0.1):
    model = keras.Sequential([layers.Dense(1, input_shape=(3,))])
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


class StepsSeen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps, self.batches = None, 0

    def on_train_begin(self, logs=None):
        self.steps = self.params["steps"]

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_fit_on_a_class_with_iter_reiterates_each_epoch_and_reads_len(rng):
    x, y = _regression(rng)

    class Batches:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return ((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16))

        def __len__(self):
            return 4

    data, seen = Batches(), StepsSeen()
    model = _linear_model()
    before = model.evaluate(data, verbose=0)
    history = model.fit(data, epochs=6, verbose=0, callbacks=[seen], validation_data=data)
    assert data.passes == 1 + 6 + 6 and seen.steps == 4 and seen.batches == 24
    assert history.history["loss"][-1] < before / 10
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    np.testing.assert_allclose(model.predict(data, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_fit_on_a_generator_with_steps_per_epoch_and_without(rng):
    x, y = _regression(rng)

    def forever():
        while True:
            for i in range(0, 64, 16):
                yield x[i:i + 16], y[i:i + 16], np.ones(16)

    seen = StepsSeen()
    history = _linear_model().fit(forever(), steps_per_epoch=4, epochs=5, verbose=0, callbacks=[seen])
    assert len(history.history["loss"]) == 5 and seen.steps == 4 and seen.batches == 20
    assert history.history["loss"][-1] < history.history["loss"][0]

    once = ((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16))
    seen = StepsSeen()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = _linear_model().fit(once, epochs=3, verbose=0, callbacks=[seen])
    assert seen.steps is None and seen.batches == 4 and len(history.history["loss"]) == 1


def test_py_dataset_like_object_and_cardinality(rng):
    x, y = _regression(rng, 48)

    class Sequence:  # keras.utils.PyDataset's protocol: batches by index
        epochs_ended = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)]

        def on_epoch_end(self):
            self.epochs_ended += 1

    data, seen = Sequence(), StepsSeen()
    _linear_model().fit(data, epochs=2, verbose=0, callbacks=[seen])
    assert data.epochs_ended == 2 and seen.steps == 3 and seen.batches == 6

    class Counted:
        def __iter__(self):
            return iter([(x[:16], y[:16]), (x[16:32], y[16:32])])

        def cardinality(self):
            return tf.constant(2, dtype=tf.int64)

    seen = StepsSeen()
    _linear_model().fit(Counted(), epochs=1, verbose=0, callbacks=[seen])
    assert seen.steps == 2 and seen.batches == 2

    class Endless(Counted):
        def __iter__(self):
            while True:
                yield x[:16], y[:16]

        def cardinality(self):
            return -1  # tf.data.INFINITE_CARDINALITY

    with pytest.raises(ValueError, match="infinitely repeating dataset.*`steps_per_epoch`"):
        _linear_model().fit(Endless(), epochs=1, verbose=0)
    seen = StepsSeen()
    _linear_model().fit(Endless(), steps_per_epoch=3, epochs=2, verbose=0, callbacks=[seen])
    assert seen.steps == 3 and seen.batches == 6


def test_tensor_batches_are_used_on_their_device_without_numpy(device, rng, monkeypatch):
    x, y = _regression(rng, 32)
    batches = [(tf.constant(x[i:i + 16].astype(np.float64)), tf.constant(y[i:i + 16])) for i in (0, 16)]
    with tf.device("/CPU:0"):  # host batches for a model on the GPU: moved device to device
        batches.append((tf.constant(x[:16]), tf.constant(y[:16])))
    model = _linear_model()

    def no_host_copy(self, *args, **kwargs):
        raise AssertionError("a batch went through NumPy")

    monkeypatch.setattr(tf.Tensor, "__array__", no_host_copy)
    history = model.fit(batches.__iter__(), epochs=1, verbose=0)  # float64 batches are cast to float32 on device
    assert np.isfinite(history.history["loss"][0])
    monkeypatch.undo()
    assert model.layers[0].kernel.device == batches[0][0].device and batches[0][0].device.endswith(device[1:])


def test_iterable_data_rejects_array_only_arguments(rng):
    x, y = _regression(rng, 16)
    model = _linear_model()
    data = [(x, y)].__iter__()
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(data, y, verbose=0)
    with pytest.raises(ValueError, match="`batch_size` should not be passed"):
        model.fit(data, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="`validation_split` is only supported for Tensors or NumPy arrays"):
        model.fit(data, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"format `x`, `\(x,\)`, `\(x, y\)`, or `\(x, y, sample_weight\)`"):
        model.fit(iter([(x, y, None, None)]), verbose=0)


def test_class_weight_on_iterable_batches_matches_arrays(rng):
    x, _ = _regression(rng, 32)
    labels = (x[:, 0] > 0).astype(np.float32)
    weights = {0: 1.0, 1: 3.0}
    results = []
    for data in ((x, labels), [(x[:16], labels[:16]), (x[16:], labels[16:])]):
        tf.random.set_seed(4)
        model = keras.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))])
        model.compile("sgd", "binary_crossentropy")
        if isinstance(data, tuple):
            history = model.fit(*data, batch_size=16, shuffle=False, class_weight=weights, verbose=0)
        else:
            history = model.fit(iter(data), class_weight=weights, verbose=0)
        results.append(history.history["loss"][0])
    assert results[0] == pytest.approx(results[1], rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, labels, class_weight=weights, epochs=1, verbose=0)
