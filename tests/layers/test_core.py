"""Core layers, the Layer base, activations, initializers and regularizers."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import keras, testing
from cuflow import activations, initializers, regularizers
from cuflow.layers import Dense, Activation, Dropout, Flatten, Reshape, Layer

layers = keras.layers


def weight_gradients_match(layer, x, rtol=1e-5, atol=1e-7, delta=1e-6):
    """Tape gradients of sum(layer(x)) w.r.t. each weight against central differences (the layer in float64)."""
    x = tf.constant(np.asarray(x, np.float64))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(x))
    grads = tape.gradient(total, layer.trainable_weights)
    for weight, grad in zip(layer.trainable_weights, grads):
        base = np.array(weight, dtype=np.float64)
        numeric = np.zeros_like(base)
        for i in range(base.size):
            for sign in (1, -1):
                bumped = base.copy()
                bumped.flat[i] += sign * delta
                weight.assign(bumped)
                numeric.flat[i] += sign * float(tf.reduce_sum(layer(x))) / (2 * delta)
        weight.assign(base)
        np.testing.assert_allclose(np.asarray(grad), numeric, rtol=rtol, atol=atol, err_msg=weight.name)


# --- shapes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, in_shape, out_shape", [
    (lambda: Dense(5), (2, 3), (2, 5)),
    (lambda: Dense(5), (2, 4, 3), (2, 4, 5)),
    (lambda: Activation("relu"), (2, 3), (2, 3)),
    (lambda: Dropout(0.5), (2, 3), (2, 3)),
    (lambda: Flatten(), (2, 3, 4, 5), (2, 60)),
    (lambda: Flatten(), (2,), (2, 1)),
    (lambda: Reshape((3, 4)), (2, 12), (2, 3, 4)),
    (lambda: Reshape((-1, 2)), (2, 3, 4), (2, 6, 2)),
])
def test_output_shape_follows_keras(make, in_shape, out_shape):
    layer = make()
    out = layer(np.zeros(in_shape, np.float32))
    assert tuple(out.shape) == out_shape
    assert tuple(layer.compute_output_shape((None,) + in_shape[1:])) == (None,) + out_shape[1:]
    assert layer.output_shape == (None,) + out_shape[1:]


def test_dense_computes_activation_of_affine_map(rng):
    layer = Dense(3, activation="relu", kernel_initializer="random_normal", bias_initializer="ones")
    x = rng.standard_normal((4, 2)).astype(np.float32)
    out = layer(x)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(out.numpy(), np.maximum(x @ kernel + bias, 0), rtol=1e-6)
    assert [w.name for w in layer.weights] == [f"{layer.name}/kernel:0", f"{layer.name}/bias:0"]
    assert layer.count_params() == 9


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("in_shape", [(4, 2), (3, 4, 2)])
def test_dense_softmax_and_sigmoid_outputs_keep_their_logits(activation, in_shape, rng):
    layer = Dense(3, activation=activation, kernel_initializer="random_normal", bias_initializer="ones")
    x = rng.standard_normal(in_shape).astype(np.float32)
    out = layer(x)
    kernel, bias = layer.get_weights()
    logits = x @ kernel + bias
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True) if activation == "softmax" else \
        1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(out.numpy(), probs, rtol=1e-5)
    # what the cross-entropy losses read instead of the probabilities (activations._with_logits)
    assert out._logits[0] == activation
    np.testing.assert_allclose(out._logits[1].numpy(), logits, rtol=1e-5, atol=1e-6)


def test_dense_gradients_match_finite_differences(rng):
    x = rng.standard_normal((3, 4))
    layer = Dense(2, activation="tanh", dtype="float64", bias_initializer="random_normal")
    testing.check_gradients(lambda v: layer(v), [x])
    weight_gradients_match(layer, x)


def test_dropout_is_identity_at_inference_and_scales_in_training():
    x = np.ones((50, 40), np.float32)
    layer = Dropout(0.25, seed=3)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    out = layer(x, training=True).numpy()
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.15 < (out == 0).mean() < 0.35


# --- config, weights, regularizers ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [
    Dense(4, activation="sigmoid", use_bias=False, kernel_regularizer="l2", kernel_initializer="he_normal"),
    Activation("gelu"), Dropout(0.3, seed=1), Flatten(), Reshape((2, -1)),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def test_regularizers_feed_layer_losses():
    layer = Dense(2, kernel_initializer="ones", bias_initializer="ones", kernel_regularizer=regularizers.L1(0.1),
                  bias_regularizer=regularizers.L2(0.5))
    layer(np.zeros((1, 3)))
    assert [round(float(v), 6) for v in layer.losses] == [0.6, 1.0]
    assert float(regularizers.L1L2(0.01, 0.01)([1.0, -2.0])) == pytest.approx(0.03 + 0.05)
    assert float(regularizers.get("l2")([1.0, -2.0])) == pytest.approx(0.05)  # Keras 3 default 0.01, no 1/2


def test_custom_layer_tracks_weights_and_sublayers():
    class Block(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Dense(3)

        def build(self, input_shape):
            self.scale = self.add_weight("scale", (3,), "ones")         # tf.keras 2 order
            self.shift = self.add_weight((3,), "zeros", trainable=False)  # Keras 3 order

        def call(self, inputs):
            return self.inner(inputs) * self.scale + self.shift

    block = Block()
    assert tuple(block(np.ones((2, 5))).shape) == (2, 3)
    assert len(block.trainable_weights) == 3 and len(block.non_trainable_weights) == 1
    assert block.count_params() == 5 * 3 + 3 + 3 + 3
    block.trainable = False
    assert block.trainable_weights == [] and len(block.non_trainable_weights) == 4


def test_layer_names_are_unique_per_type():
    a, b = Dense(1), Dense(1)
    assert a.name != b.name and a.name.startswith("dense") and Dense(1, name="out").name == "out"


# --- parity --------------------------------------------------------------------------------------------------------
def test_dense_same_numbers_on_each_device(device, rng):
    x = rng.standard_normal((8, 6)).astype(np.float32)

    def run():
        layer = Dense(4, activation="gelu", kernel_initializer=initializers.GlorotUniform(seed=7),
                      bias_initializer=initializers.RandomNormal(seed=8))
        return np.asarray(layer(x))

    with tf.device("/CPU:0"):
        expected = run()
    np.testing.assert_allclose(run(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                                  "random_normal", "random_uniform", "truncated_normal", "orthogonal"])
def test_seeded_initializers_repeat_and_match_across_devices(device, name):
    init = type(initializers.get(name))(seed=5)
    with tf.device("/CPU:0"):
        expected = np.asarray(init((6, 4)))
    np.testing.assert_allclose(np.asarray(init((6, 4))), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(init((6, 4))), np.asarray(init((6, 4))))


def test_initializers_follow_keras_formulas():
    tf.random.set_seed(1)
    fan_in, fan_out = 300, 200
    w = np.asarray(initializers.get("glorot_uniform")((fan_in, fan_out)))
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    he = np.asarray(initializers.HeNormal()((3, 3, 64, 64)))  # conv kernel: fan_in = 3 * 3 * 64
    assert he.std() == pytest.approx(np.sqrt(2 / 576), rel=0.03)
    q = np.asarray(initializers.Orthogonal()((5, 3)))
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(initializers.Constant(2.5)((2,))), [2.5, 2.5])


@pytest.mark.parametrize("name", ["relu", "sigmoid", "softmax", "tanh", "linear", "gelu", "elu", "selu",
                                  "softplus", "swish", "leaky_relu", "relu6", "softsign", "hard_sigmoid", "mish"])
def test_activations_by_name_have_gradients(name, rng):
    fn = activations.get(name)
    testing.check_gradients(lambda v: fn(v), [rng.standard_normal((2, 5)) + 0.05])
    assert activations.get(activations.serialize(fn)) is fn


def test_activation_values():
    x = [-2.0, 0.5]
    np.testing.assert_allclose(activations.get("leaky_relu")(x).numpy(), [-0.4, 0.5], rtol=1e-6)
    np.testing.assert_allclose(activations.elu(x, alpha=2.0).numpy(), [2 * (np.exp(-2) - 1), 0.5], rtol=1e-6)
    np.testing.assert_allclose(activations.relu(x, max_value=0.25).numpy(), [0.0, 0.25])


# --- bad input -----------------------------------------------------------------------------------------------------
def test_dense_rejects_wrong_last_dimension_naming_layer_and_shapes():
    layer = Dense(2, name="head")
    layer(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"'head'.*axis -1 of input shape to have value 4.*\(3, 5\)"):
        layer(np.zeros((3, 5)))


def test_dense_rejects_rank_one_input():
    with pytest.raises(ValueError, match=r"min_ndim=2.*\(4,\)"):
        Dense(2)(np.zeros(4))


def test_unknown_names_list_the_options():
    with pytest.raises(ValueError, match="Unknown activation.*'relux'.*relu, relu6"):
        Dense(2, activation="relux")
    with pytest.raises(ValueError, match="Unknown initializer.*'glorot'.*glorot_normal, glorot_uniform"):
        Dense(2, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="Unknown regularizer"):
        regularizers.get("l3")
    with pytest.raises(TypeError, match="unexpected keyword"):
        Dense(2, unit=3)
