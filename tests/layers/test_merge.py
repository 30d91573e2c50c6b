"""Merge layers: values and Keras's broadcast rules, gradients, training in a two-branch model, config, parity and
bad input."""
import doctest

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras, testing
from cuflow.layers import (merge, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dense)
from tests.layers.helpers import fit_lowers_loss, same_as_on_cpu

NUMPY = {
    Add: lambda xs: sum(xs),
    Subtract: lambda xs: xs[0] - xs[1],
    Multiply: lambda xs: np.prod(np.broadcast_arrays(*xs), axis=0),
    Average: lambda xs: sum(xs) / len(xs),
    Maximum: lambda xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    Minimum: lambda xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
}
SHAPES = {  # batch-first shapes; lower-rank inputs get axes after the batch axis, as in Keras
    "same": [(2, 3, 4)] * 3,
    "broadcast": [(2, 3, 4), (2, 1, 4), (2, 3, 1)],
    "ranks": [(2, 3, 4), (2, 4), (2, 3, 4)],
}


def _aligned(arrays):
    rank = max(a.ndim for a in arrays)
    return [a.reshape(a.shape[:1] + (1,) * (rank - a.ndim) + a.shape[1:]) for a in arrays]


@pytest.mark.parametrize("cls", NUMPY, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_values_and_shapes_against_numpy(cls, shapes, rng):
    arrays = [rng.standard_normal(s) for s in SHAPES[shapes]][:2 if cls is Subtract else None]
    layer = cls(dtype="float64")
    out = layer(arrays)
    expected = NUMPY[cls](_aligned(arrays))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    assert layer.compute_output_shape([(None,) + a.shape[1:] for a in arrays]) == (None,) + expected.shape[1:]


def test_unknown_dimensions_in_shape_rules():
    assert Add().compute_output_shape([(None, 3, None), (None, 1, 5)]) == (None, 3, None)
    assert Add().compute_output_shape([(8, 3), (None, 3)]) == (8, 3)
    assert Concatenate(axis=1).compute_output_shape([(None, 3, 4), (None, None, 4)]) == (None, None, 4)
    assert Concatenate().compute_output_shape([(None, 3, 4), (None, 3, 2)]) == (None, 3, 6)


@pytest.mark.parametrize("axis, shapes", [(-1, [(2, 3), (2, 4), (2, 1)]), (1, [(2, 1, 5), (2, 3, 5)]),
                                          (0, [(2, 3), (1, 3)])])
def test_concatenate_against_numpy(axis, shapes, rng):
    arrays = [rng.standard_normal(s) for s in shapes]
    layer = Concatenate(axis=axis, dtype="float64")
    np.testing.assert_array_equal(layer(arrays).numpy(), np.concatenate(arrays, axis=axis))


@pytest.mark.parametrize("layer", [Add(), Subtract(), Multiply(), Average(), Maximum(), Minimum(),
                                   Concatenate(axis=1)], ids=lambda layer: type(layer).__name__)
def test_gradients_match_finite_differences(layer, rng):
    layer.dtype = "float64"
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    c = rng.standard_normal((2, 1))
    if isinstance(layer, Subtract):
        testing.check_gradients(lambda x, y: layer([x, y]) ** 2, [a, c])
    else:
        testing.check_gradients(lambda x, y, z: layer([x, y, z]) ** 2, [a, b, c])


class TwoBranch(keras.Model):
    """A subclassed model merging two Dense branches (the functional API is not needed for merge layers)."""

    def __init__(self, merge_layer):
        super().__init__()
        self.left, self.right = Dense(4, activation="tanh"), Dense(4, activation="relu")
        self.merge = merge_layer
        self.head = Dense(1)

    def call(self, inputs, training=None):
        return self.head(self.merge([self.left(inputs), self.right(inputs)]))


@pytest.mark.parametrize("make", [Add, Multiply, Average, Maximum, lambda: Concatenate()],
                         ids=["Add", "Multiply", "Average", "Maximum", "Concatenate"])
def test_a_few_fit_steps_lower_the_loss(make, rng):
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x[:, :1] * x[:, 1:2] + x[:, 2:]
    fit_lowers_loss(TwoBranch(make()), x, y)


def test_functional_forms():
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 3.0, np.float32)
    np.testing.assert_array_equal(keras.layers.add([a, b]).numpy(), a + b)
    np.testing.assert_array_equal(keras.layers.subtract([a, b]).numpy(), a - b)
    np.testing.assert_array_equal(keras.layers.average([a, b], name="avg").numpy(), (a + b) / 2)
    np.testing.assert_array_equal(keras.layers.maximum([a, b]).numpy(), b)
    np.testing.assert_array_equal(keras.layers.minimum([a, b]).numpy(), a)
    np.testing.assert_array_equal(keras.layers.multiply([a, b]).numpy(), a * b)
    assert keras.layers.concatenate([a, b], axis=0).shape == (4, 3)
    assert keras.layers.add.__name__ == "add"


@pytest.mark.parametrize("layer", [Add(name="sum"), Maximum(trainable=False), Concatenate(axis=1),
                                   Concatenate(axis=-2, dtype="float64")], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


@pytest.mark.parametrize("cls", [Add, Maximum, Concatenate], ids=lambda c: c.__name__)
def test_same_numbers_on_each_device(device, cls, rng):
    arrays = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]

    def run():
        inputs = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            for t in inputs:
                tape.watch(t)
            out = cls()(inputs)
            loss = tf.reduce_sum(out * out)
        return [np.asarray(out)] + [np.asarray(g) for g in tape.gradient(loss, inputs)]

    same_as_on_cpu(run, rtol=1e-6, atol=1e-6)


def test_docstring_examples():
    assert doctest.testmod(merge).failed == 0


# --- bad input -----------------------------------------------------------------------------------------------------
def test_incompatible_shapes_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"Add 'join': inputs have incompatible shapes \[\(2, 3\), \(2, 4\)\]"):
        Add(name="join")([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"Multiply '.*': cannot merge tensors with different batch sizes, got "
                                         r"shapes \[\(2, 3\), \(3, 3\)\]"):
        Multiply()([np.ones((2, 3)), np.ones((3, 3))])
    with pytest.raises(ValueError, match=r"Concatenate 'cat': .*matching shapes except for the concatenation axis "
                                         r"-1, got shapes \[\(2, 3\), \(3, 4\)\]"):
        Concatenate(name="cat")([np.ones((2, 3)), np.ones((3, 4))])
    with pytest.raises(ValueError, match=r"Concatenate .*one rank that has axis 2, got shapes \[\(2, 3\), \(2, 3\)\]"):
        Concatenate(axis=2)([np.ones((2, 3)), np.ones((2, 3))])


def test_inputs_must_be_a_list_of_the_right_length():
    layer = Add(name="plus")
    with pytest.raises(ValueError, match=r"'plus': a merge layer should be called on a list of tensors, got input "
                                         r"with shape \(2, 3\)"):
        layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Subtract '.*': expected 2 input\(s\), got 3 with shapes"):
        Subtract()([np.ones((1, 2))] * 3)
    with pytest.raises(ValueError, match=r"expected at least 1 input\(s\), got 0"):
        Average()([])
    with pytest.raises(ValueError, match="should be called on a list of at least one tensor"):
        Concatenate()(np.ones((2, 3)))
    with pytest.raises(ValueError, match="axis must be an int, got 'last'"):
        Concatenate(axis="last")
    # once built, a later call is checked just the same
    layer([np.ones((2, 3)), np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"incompatible shapes \[\(2, 3\), \(2, 5\)\]"):
        layer([np.ones((2, 3)), np.ones((2, 5))])
