"""Embedding: table lookups, integer inputs, gradients by scatter-add, training, config, parity and bad input."""
import doctest

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras, errors, initializers
from cuflow.layers import embedding, Embedding, Flatten, Dense
from tests.layers.helpers import fit_lowers_loss, output_and_gradients, same_as_on_cpu


@pytest.mark.parametrize("in_shape", [(5,), (2, 3), (2, 3, 4)])
def test_rows_of_the_table_in_the_input_shape(in_shape, rng):
    layer = Embedding(10, 4)
    ids = rng.integers(0, 10, in_shape)
    out = layer(ids)
    table = layer.embeddings.numpy()
    np.testing.assert_array_equal(out.numpy(), table[ids])
    assert tuple(out.shape) == in_shape + (4,)
    assert layer.compute_output_shape((None,) + in_shape[1:]) == (None,) + in_shape[1:] + (4,)
    assert np.abs(table).max() <= 0.05 and table.std() > 0.01  # Keras's 'uniform': U(-0.05, 0.05)


def test_integer_inputs_stay_integers_and_floats_are_cast():
    layer = Embedding(4, 2, embeddings_initializer="random_normal")
    ids = np.array([[3, 0]], np.int64)
    expected = layer(ids).numpy()
    assert layer(tf.constant(ids)).dtype == tf.float32
    np.testing.assert_array_equal(layer(ids.astype(np.float32)).numpy(), expected)
    np.testing.assert_array_equal(layer([[3, 0]]).numpy(), expected)


def test_gradient_adds_up_per_looked_up_row(rng):
    layer = Embedding(6, 3, dtype="float64")
    ids = np.array([[1, 4, 1], [0, 1, 5]])
    weights = rng.standard_normal((2, 3, 3))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids) * weights)
    grad = np.asarray(tape.gradient(loss, layer.embeddings))
    expected = np.zeros((6, 3))
    np.add.at(expected, ids.ravel(), weights.reshape(-1, 3))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
    assert not grad[[2, 3]].any()


def test_a_few_fit_steps_lower_the_loss(rng):
    ids = rng.integers(0, 20, (96, 5))
    y = (ids % 2).mean(axis=1, keepdims=True).astype(np.float32)  # a per-token property the table must learn
    model = keras.Sequential([Embedding(20, 4, input_shape=(5,)), Flatten(), Dense(1)])
    fit_lowers_loss(model, ids, y)


def test_mask_zero_gives_the_padding_mask():
    ids = np.array([[3, 0, 1], [0, 0, 2]])
    np.testing.assert_array_equal(Embedding(4, 2, mask_zero=True).compute_mask(ids).numpy(), ids != 0)
    assert Embedding(4, 2).compute_mask(ids) is None


@pytest.mark.parametrize("layer", [
    Embedding(100, 8),
    Embedding(5, 3, embeddings_initializer="glorot_normal", embeddings_regularizer="l2", mask_zero=True, name="emb"),
], ids=["default", "options"])
def test_config_round_trip(layer):
    config = layer.get_config()
    assert Embedding.from_config(config).get_config() == config
    assert config["embeddings_initializer"]["class_name"] in ("RandomUniform", "GlorotNormal")


def test_regularizer_joins_the_losses():
    layer = Embedding(3, 2, embeddings_initializer="ones", embeddings_regularizer=keras.regularizers.L1(0.5))
    layer([0])
    assert float(layer.losses[0]) == pytest.approx(3.0)


def test_same_numbers_on_each_device(device, rng):
    ids = rng.integers(0, 12, (4, 6))

    same_as_on_cpu(lambda: output_and_gradients(
        Embedding(12, 5, embeddings_initializer=initializers.RandomUniform(seed=4)), ids), rtol=1e-6, atol=1e-7)


def test_docstring_examples():
    assert doctest.testmod(embedding).failed == 0


def test_out_of_range_indices_raise_naming_the_layer(device):
    layer = Embedding(10, 2, name="tokens")
    for bad in ([[1, 10]], [[-1, 2]]):
        with pytest.raises(errors.InvalidArgumentError, match=r"'tokens'.*\[0, input_dim=10\).*shape \(1, 2\)"):
            layer(bad)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError, as users catch it
        layer([[12]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_dim must be a positive int, got 0"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="output_dim must be a positive int, got 2.5"):
        Embedding(3, 2.5)
    with tf.device("/CPU:0"), pytest.raises(TypeError, match="integer indices, got dtype string"):
        Embedding(3, 2)(tf.constant(["a"]))  # strings live on the CPU (also when a GPU is the default)
