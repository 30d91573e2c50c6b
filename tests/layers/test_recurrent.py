"""SimpleRNN, LSTM, GRU and RNN(cell): Keras's equations against a NumPy float64 reference, gradients through time,
training, config, state handling, parity and bad input."""
import doctest

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras, testing, initializers
from cuflow.layers import recurrent, SimpleRNN, LSTM, GRU, RNN, LSTMCell, GRUCell, SimpleRNNCell, Dense, Layer
from tests.layers.test_core import weight_gradients_match
from tests.layers.helpers import fit_lowers_loss, output_and_gradients, same_as_on_cpu


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference(layer, x, h0=None, c0=None):
    """The Keras 3 equations in NumPy float64: (sequence of outputs in processing order, final states)."""
    cell = layer.cell
    kernel, recurrent_kernel = (np.asarray(w, np.float64) for w in (cell.kernel, cell.recurrent_kernel))
    bias = np.zeros(cell.bias.shape) if cell.bias is None else np.asarray(cell.bias, np.float64)
    units, batch = cell.units, x.shape[0]
    h = np.zeros((batch, units)) if h0 is None else h0
    c = np.zeros((batch, units)) if c0 is None else c0
    steps = range(x.shape[1])[::-1] if layer.go_backwards else range(x.shape[1])
    outputs = []
    for t in steps:
        xt = x[:, t]
        if isinstance(cell, LSTMCell):
            i, f, g, o = np.split(xt @ kernel + h @ recurrent_kernel + bias, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        elif isinstance(cell, GRUCell) and cell.reset_after:
            xz, xr, xh = np.split(xt @ kernel + bias[0], 3, axis=1)
            rz, rr, rh = np.split(h @ recurrent_kernel + bias[1], 3, axis=1)
            z, r = sigmoid(xz + rz), sigmoid(xr + rr)
            h = z * h + (1 - z) * np.tanh(xh + r * rh)
        elif isinstance(cell, GRUCell):
            xz, xr, xh = np.split(xt @ kernel + bias, 3, axis=1)
            z = sigmoid(xz + h @ recurrent_kernel[:, :units])
            r = sigmoid(xr + h @ recurrent_kernel[:, units:2 * units])
            h = z * h + (1 - z) * np.tanh(xh + (r * h) @ recurrent_kernel[:, 2 * units:])
        else:
            h = np.maximum(xt @ kernel + h @ recurrent_kernel + bias, 0)  # the tests' SimpleRNN uses relu
        outputs.append(h)
    return np.stack(outputs, axis=1), ([h, c] if isinstance(cell, LSTMCell) else [h])


LAYERS = {
    "lstm": lambda **kw: LSTM(3, **kw),
    "gru": lambda **kw: GRU(3, **kw),
    "gru_reset_before": lambda **kw: GRU(3, reset_after=False, **kw),
    "simple_rnn": lambda **kw: SimpleRNN(3, activation="relu", **kw),
}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_outputs_and_states_match_numpy_reference(kind, go_backwards, rng):
    layer = LAYERS[kind](return_sequences=True, return_state=True, go_backwards=go_backwards, dtype="float64",
                         bias_initializer="random_normal")
    x = rng.standard_normal((4, 5, 2))
    output, *states = layer(x)
    expected, expected_states = reference(layer, x)
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-10, atol=1e-12)
    for got, want in zip(states, expected_states):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    last = LAYERS[kind](go_backwards=go_backwards, dtype="float64")
    last(x)
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(last(x).numpy(), expected[:, -1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_initial_state_is_used(kind, rng):
    layer = LAYERS[kind](dtype="float64")
    x = rng.standard_normal((2, 4, 3))
    h0, c0 = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    initial = [h0, c0] if kind == "lstm" else [h0]
    out = layer(x, initial_state=initial)
    expected, _ = reference(layer, x, *initial)
    np.testing.assert_allclose(out.numpy(), expected[:, -1], rtol=1e-10)


def test_keras_default_initializers_and_weight_layout():
    lstm = LSTM(4)
    lstm(np.zeros((1, 2, 3), np.float32))
    kernel, recurrent_kernel, bias = lstm.get_weights()
    assert kernel.shape == (3, 16) and recurrent_kernel.shape == (4, 16)
    np.testing.assert_allclose(recurrent_kernel @ recurrent_kernel.T, np.eye(4), atol=1e-5)  # orthogonal rows
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])  # unit_forget_bias
    assert np.abs(kernel).max() <= np.sqrt(6 / (3 + 16))  # glorot_uniform
    gru = GRU(4)
    gru(np.zeros((1, 2, 3), np.float32))
    assert [w.shape for w in gru.get_weights()] == [(3, 12), (4, 12), (2, 12)]
    assert [w.name for w in gru.weights][0] == f"{gru.name}/gru_cell/kernel:0"
    assert GRU(4, reset_after=False).compute_output_shape((None, 2, 3)) == (None, 4)


@pytest.mark.parametrize("make, out_shape", [
    (lambda: LSTM(5), (2, 5)),
    (lambda: LSTM(5, return_sequences=True), (2, 7, 5)),
    (lambda: GRU(5, return_state=True), [(2, 5), (2, 5)]),
    (lambda: LSTM(5, return_sequences=True, return_state=True), [(2, 7, 5), (2, 5), (2, 5)]),
    (lambda: SimpleRNN(5, go_backwards=True), (2, 5)),
    (lambda: RNN(GRUCell(5), return_sequences=True), (2, 7, 5)),
])
def test_output_shape_follows_keras(make, out_shape):
    layer = make()
    out = layer(np.zeros((2, 7, 3), np.float32))
    got = [tuple(t.shape) for t in out] if isinstance(out, list) else tuple(out.shape)
    assert got == out_shape
    predicted = layer.compute_output_shape((None, 7, 3))
    as_batchless = [(None,) + s[1:] for s in out_shape] if isinstance(out_shape, list) else (None,) + out_shape[1:]
    assert predicted == as_batchless


@pytest.mark.parametrize("kind", LAYERS)
def test_gradients_match_finite_differences(kind, rng):
    layer = LAYERS[kind](return_sequences=True, dtype="float64", bias_initializer="random_normal")
    x = rng.standard_normal((2, 3, 2))
    testing.check_gradients(lambda v: layer(v) ** 2, [x])
    weight_gradients_match(layer, x)


def test_lstm_gradients_reach_initial_state(rng):
    layer = LSTM(2, dtype="float64")
    x = rng.standard_normal((2, 3, 2))
    layer(x)
    testing.check_gradients(lambda h, c: layer(tf.constant(x), initial_state=[h, c]),
                            [rng.standard_normal((2, 2)), rng.standard_normal((2, 2))])


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_a_few_fit_steps_lower_the_loss(cls, rng):
    x = rng.standard_normal((64, 6, 2)).astype(np.float32)
    y = x[:, :, :1].sum(axis=1) * 0.5
    model = keras.Sequential([cls(8, input_shape=(6, 2)), Dense(1)])
    fit_lowers_loss(model, x, y)


def test_dropout_masks_inputs_in_training_only(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    plain = LSTM(3)
    dropped = LSTM(3, dropout=0.5, recurrent_dropout=0.3, seed=1)
    plain(x)
    dropped(x)
    dropped.set_weights(plain.get_weights())
    np.testing.assert_array_equal(dropped(x).numpy(), plain(x).numpy())  # inference: no dropout
    np.testing.assert_array_equal(dropped(x, training=False).numpy(), plain(x).numpy())
    assert not np.allclose(dropped(x, training=True).numpy(), plain(x).numpy())


def test_input_dropout_mask_is_shared_across_time():
    tf.random.set_seed(3)
    layer = SimpleRNN(1, dropout=0.5, use_bias=False, kernel_initializer="ones", recurrent_initializer="zeros",
                      activation="linear", return_sequences=True)
    x = np.ones((40, 6, 1), np.float32)
    out = layer(x, training=True).numpy()[..., 0]  # each step: that step's input times the sequence's mask
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert (out == out[:, :1]).all() and 0 < (out[:, 0] == 0).sum() < 40


def test_stateful_layer_carries_states_between_calls(rng):
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    whole = GRU(4, return_sequences=True)
    expected = whole(x).numpy()
    stateful = GRU(4, return_sequences=True, stateful=True)
    stateful(x[:, :1])
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    got = np.concatenate([stateful(x[:, :3]).numpy(), stateful(x[:, 3:]).numpy()], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :3]).numpy(), expected[:, :3], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"stateful.*batches of 2, got a batch of 3"):
        stateful(np.zeros((3, 2, 3), np.float32))


def test_rnn_runs_a_custom_cell():
    class Accumulate(Layer):
        state_size = 2

        def call(self, inputs, states):
            total = states[0] + inputs
            return total * 2.0, [total]

    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    out, state = RNN(Accumulate(), return_sequences=True, return_state=True)(x)
    np.testing.assert_allclose(out.numpy(), 2 * np.cumsum(x, axis=1))
    np.testing.assert_allclose(state.numpy(), x.sum(axis=1))


def test_cells_step_like_keras_cells(rng):
    cell = LSTMCell(3, dtype="float64", bias_initializer="random_normal")
    x, h, c = rng.standard_normal((2, 4)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    out, (h1, c1) = cell(x, [h, c])
    expected, (eh, ec) = reference(RNN(cell), x[:, None], h, c)
    np.testing.assert_allclose(h1.numpy(), eh, rtol=1e-10)
    np.testing.assert_allclose(c1.numpy(), ec, rtol=1e-10)
    assert cell.state_size == [3, 3] and GRUCell(2).state_size == 2


@pytest.mark.parametrize("layer", [
    LSTM(4, return_sequences=True, dropout=0.1, unit_forget_bias=False, kernel_regularizer="l2", seed=3),
    GRU(3, reset_after=False, go_backwards=True, recurrent_activation="hard_sigmoid", stateful=True),
    SimpleRNN(2, activation="relu", use_bias=False, return_state=True, recurrent_initializer="glorot_uniform"),
    RNN(LSTMCell(2, recurrent_dropout=0.2), return_sequences=True),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    if not isinstance(layer, RNN) or type(layer) is not RNN:
        assert config["units"] == layer.cell.units and "cell" not in config  # flat, as Keras writes it


def test_sequential_config_round_trip_keeps_weights_layout(rng):
    model = keras.Sequential([LSTM(4, return_sequences=True, input_shape=(5, 3)), GRU(2)])
    again = keras.Sequential.from_config(model.get_config())
    again.set_weights(model.get_weights())
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_regularizers_reach_the_layer_losses():
    layer = LSTM(2, kernel_regularizer=keras.regularizers.L2(0.5), recurrent_regularizer="l1")
    layer(np.zeros((1, 2, 3), np.float32))
    assert len(layer.losses) == 2


@pytest.mark.parametrize("kind", LAYERS)
def test_same_numbers_on_each_device(device, kind, rng):
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)

    same_as_on_cpu(lambda: output_and_gradients(
        LAYERS[kind](return_sequences=True, kernel_initializer=initializers.GlorotUniform(seed=1),
                     recurrent_initializer=initializers.Orthogonal(seed=2),
                     bias_initializer=initializers.RandomNormal(seed=3)), x))


@pytest.mark.slow  # importing torch takes seconds; CI installs .[test] without torch, so it skips there
def test_matches_torch_with_copied_weights(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 5, 3))
    units = 4
    lstm = LSTM(units, return_sequences=True, dtype="float64", bias_initializer="random_normal")
    lstm(x)
    kernel, recurrent_kernel, bias = lstm.get_weights()
    ref = torch.nn.LSTM(3, units, batch_first=True).double()
    with torch.no_grad():  # torch's gate order is Keras's (i, f, g, o); it has a second bias, set to 0
        ref.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
        ref.weight_hh_l0.copy_(torch.from_numpy(recurrent_kernel.T))
        ref.bias_ih_l0.copy_(torch.from_numpy(bias))
        ref.bias_hh_l0.zero_()
        expected = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(lstm(x).numpy(), expected, rtol=1e-10, atol=1e-12)

    gru = GRU(units, return_sequences=True, dtype="float64", bias_initializer="random_normal")
    gru(x)
    kernel, recurrent_kernel, bias = gru.get_weights()
    order = np.r_[units:2 * units, 0:units, 2 * units:3 * units]  # torch's (r, z, n) from Keras's (z, r, h)
    ref = torch.nn.GRU(3, units, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.from_numpy(kernel[:, order].T.copy()))
        ref.weight_hh_l0.copy_(torch.from_numpy(recurrent_kernel[:, order].T.copy()))
        ref.bias_ih_l0.copy_(torch.from_numpy(bias[0, order].copy()))
        ref.bias_hh_l0.copy_(torch.from_numpy(bias[1, order].copy()))
        expected = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(gru(x).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_docstring_examples():
    assert doctest.testmod(recurrent).failed == 0


# --- bad input -----------------------------------------------------------------------------------------------------
def test_rejects_wrong_rank_and_features_naming_the_layer():
    layer = LSTM(3, name="encoder")
    with pytest.raises(ValueError, match=r"'encoder'.*expected ndim=3, found ndim=2.*\(4, 5\)"):
        layer(np.zeros((4, 5), np.float32))
    layer(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"'encoder'.*axis -1 of input shape to have value 5.*\(2, 4, 6\)"):
        layer(np.zeros((2, 4, 6), np.float32))
    with pytest.raises(ValueError, match=r"'encoder': initial_state must be 2 tensor\(s\) of shape\(s\) "
                                         r"\[\(2, 3\), \(2, 3\)\], got shape\(s\) \[\(2, 4\)\]"):
        layer(np.zeros((2, 4, 5), np.float32), initial_state=[np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match=r"at least one time step.*\(2, 0, 5\)"):
        layer(np.zeros((2, 0, 5), np.float32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="units must be a positive int, got 0"):
        LSTM(0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        GRU(2, dropout=1.5)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['reset_after'\]"):
        LSTM(2, reset_after=True)
    with pytest.raises(TypeError, match="cell must be a layer with a state_size"):
        RNN(Dense(2))
    with pytest.raises(AttributeError, match="reset_states.*stateful=True"):
        SimpleRNN(2).reset_states()
    with pytest.raises(ValueError, match="unknown cell class 'MyCell'"):
        RNN.from_config({"cell": {"class_name": "MyCell", "config": {}}})
    assert SimpleRNNCell(2).output_size == 2
