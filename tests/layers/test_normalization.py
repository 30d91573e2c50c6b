"""BatchNormalization and LayerNormalization: NumPy float64 values, moving statistics through fit/evaluate,
gradients, config, parity and bad input."""
import doctest

import numpy as np
import pytest

from cuflow import keras, testing, initializers
from cuflow.layers import normalization, BatchNormalization, LayerNormalization, Dense, Conv2D, Flatten
from tests.layers.test_core import weight_gradients_match
from tests.layers.helpers import fit_lowers_loss, output_and_gradients, same_as_on_cpu


def batch_norm_reference(x, axes, gamma, beta, epsilon):
    mean, variance = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta, mean, variance


# --- BatchNormalization ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((6, 3), -1), ((4, 5, 5, 3), -1), ((4, 3, 5, 5), 1), ((4, 5, 3), [1, 2])])
def test_batch_norm_training_and_inference_against_numpy(shape, axis, rng):
    x = rng.normal(2.0, 3.0, shape)
    layer = BatchNormalization(axis=axis, momentum=0.9, dtype="float64", gamma_initializer="random_normal",
                               beta_initializer="random_normal")
    layer(x)  # builds; inference leaves the moving statistics alone
    gamma, beta = (np.asarray(w) for w in (layer.gamma, layer.beta))
    feature_axes = [a % len(shape) for a in ([axis] if isinstance(axis, int) else axis)]
    broadcast = [shape[a] if a in feature_axes else 1 for a in range(len(shape))]
    reduce_axes = tuple(a for a in range(len(shape)) if a not in feature_axes)
    expected, mean, variance = batch_norm_reference(x, reduce_axes, gamma.reshape(broadcast),
                                                    beta.reshape(broadcast), 1e-3)
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-10, atol=1e-12)
    # moving = moving * momentum + batch * (1 - momentum), from zeros and ones
    moving_mean = 0.1 * mean.reshape(gamma.shape)
    moving_variance = 0.9 + 0.1 * variance.reshape(gamma.shape)
    np.testing.assert_allclose(layer.moving_mean.numpy(), moving_mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.numpy(), moving_variance, rtol=1e-12)
    inference = (x - moving_mean.reshape(broadcast)) / np.sqrt(moving_variance.reshape(broadcast) + 1e-3)
    np.testing.assert_allclose(layer(x).numpy(), inference * gamma.reshape(broadcast) + beta.reshape(broadcast),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.moving_mean.numpy(), moving_mean, rtol=1e-12)  # inference changes nothing


def test_batch_norm_weights_follow_keras_order_and_trainability():
    layer = BatchNormalization()
    layer(np.zeros((2, 4), np.float32))
    names = [w.name.split("/")[-1] for w in layer.weights]
    assert names == ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"]
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2
    plain = BatchNormalization(center=False, scale=False)
    plain(np.zeros((2, 4), np.float32))
    assert [w.name.split("/")[-1] for w in plain.weights] == ["moving_mean:0", "moving_variance:0"]


def test_frozen_batch_norm_runs_in_inference_mode(rng):
    layer = BatchNormalization()
    x = rng.normal(5.0, 2.0, (8, 3)).astype(np.float32)
    layer(x)
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True).numpy(), layer(x).numpy())
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3))


def test_fit_updates_moving_statistics_and_evaluate_uses_them(rng):
    x = rng.normal(4.0, 2.0, (64, 5)).astype(np.float32)
    y = (x[:, :1] - 4.0) * 0.5
    model = keras.Sequential([BatchNormalization(momentum=0.5, input_shape=(5,)), Dense(1)])
    fit_lowers_loss(model, x, y)
    bn, dense = model.layers
    moving_mean, moving_variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    np.testing.assert_allclose(moving_mean, x.mean(axis=0), rtol=0.15)  # momentum 0.5 over 24 steps: converged
    np.testing.assert_allclose(moving_variance, x.var(axis=0), rtol=0.5)
    gamma, beta, _, _ = bn.get_weights()
    kernel, bias = dense.get_weights()
    normalized = (x - moving_mean) / np.sqrt(moving_variance + 1e-3) * gamma + beta
    expected = normalized @ kernel + bias
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    loss = model.evaluate(x, y, verbose=0)
    assert float(np.ravel(loss)[0]) == pytest.approx(float(np.mean((expected - y) ** 2)), rel=1e-4)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving_mean)  # evaluate and predict left them alone


def test_batch_norm_in_a_conv_net_trains(rng):
    x = rng.standard_normal((32, 6, 6, 2)).astype(np.float32)
    y = x.mean(axis=(1, 2, 3))[:, None]
    model = keras.Sequential([Conv2D(4, 3, input_shape=(6, 6, 2)), BatchNormalization(), Flatten(), Dense(1)])
    fit_lowers_loss(model, x, y)


def test_batch_norm_gradients_match_finite_differences(rng):
    x = rng.standard_normal((5, 3))
    layer = BatchNormalization(dtype="float64", gamma_initializer="random_normal")
    testing.check_gradients(lambda v: layer(v, training=True) * [1.0, 2.0, -1.0], [x])
    testing.check_gradients(lambda v: layer(v) ** 2, [x])
    weight_gradients_match(_Training(layer), x)


class _Training(keras.layers.Layer):
    """Calls the wrapped layer with training=True (so weight_gradients_match sees the batch statistics)."""

    def __init__(self, inner):
        super().__init__(dtype=inner.dtype)
        self.inner = inner

    def call(self, inputs):
        return self.inner(inputs, training=True) ** 2


# --- LayerNormalization ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((4, 6), -1), ((2, 3, 4), -1), ((2, 3, 4), [1, 2]), ((2, 3, 4), 1)])
def test_layer_norm_against_numpy(shape, axis, rng):
    x = rng.normal(1.0, 2.0, shape)
    layer = LayerNormalization(axis=axis, dtype="float64", gamma_initializer="random_normal",
                               beta_initializer="random_normal")
    out = layer(x).numpy()
    axes = tuple(a % len(shape) for a in ([axis] if isinstance(axis, int) else axis))
    broadcast = [shape[a] if a in axes else 1 for a in range(len(shape))]
    gamma, beta = (np.asarray(w).reshape(broadcast) for w in (layer.gamma, layer.beta))
    expected, _, _ = batch_norm_reference(x, axes, gamma, beta, 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), out)


def test_layer_norm_rms_scaling(rng):
    x = rng.standard_normal((3, 5))
    layer = LayerNormalization(rms_scaling=True, dtype="float64", gamma_initializer="random_normal")
    out = layer(x).numpy()
    assert [w.name.split("/")[-1] for w in layer.weights] == ["gamma:0"]
    expected = x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + 1e-3) * layer.gamma.numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("options", [{}, {"axis": [1, 2]}, {"rms_scaling": True}])
def test_layer_norm_gradients_match_finite_differences(options, rng):
    x = rng.standard_normal((2, 3, 4))
    layer = LayerNormalization(dtype="float64", gamma_initializer="random_normal", beta_initializer="random_normal",
                               **options)
    testing.check_gradients(lambda v: layer(v) ** 2, [x])
    weight_gradients_match(layer, x)


def test_layer_norm_trains(rng):
    x = rng.normal(3.0, 2.0, (64, 4)).astype(np.float32)
    y = x[:, :1] - x[:, 1:2]
    fit_lowers_loss(keras.Sequential([Dense(8, input_shape=(4,)), LayerNormalization(), Dense(1)]), x, y)


# --- shared checks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [
    BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False, gamma_regularizer="l2",
                       moving_variance_initializer="zeros"),
    BatchNormalization(axis=[1, 2]),
    LayerNormalization(axis=[-2, -1], epsilon=1e-6, scale=False, beta_initializer="ones"),
    LayerNormalization(rms_scaling=True),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    assert {"axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer"} <= set(config)


def test_output_shape_is_the_input_shape():
    for layer in (BatchNormalization(), LayerNormalization()):
        out = layer(np.zeros((2, 3, 4), np.float32))
        assert tuple(out.shape) == (2, 3, 4) and layer.compute_output_shape((None, 3, 4)) == (None, 3, 4)


@pytest.mark.parametrize("cls", [BatchNormalization, LayerNormalization])
def test_same_numbers_on_each_device(device, cls, rng):
    x = rng.normal(1.0, 2.0, (4, 3, 3, 5)).astype(np.float32)

    def run():
        layer = cls(gamma_initializer=initializers.RandomNormal(1.0, 0.2, seed=1),
                    beta_initializer=initializers.RandomNormal(seed=2))
        return output_and_gradients(layer, x, training=True) + [np.asarray(layer(x))]

    same_as_on_cpu(run, atol=1e-4)


def test_docstring_examples():
    assert doctest.testmod(normalization).failed == 0


def test_bad_input_names_the_layer_and_shapes():
    layer = BatchNormalization(name="bn")
    with pytest.raises(ValueError, match=r"'bn'.*expected min_ndim=2, found ndim=1.*\(4,\)"):
        layer(np.zeros(4, np.float32))
    layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"'bn'.*axis 1 of input shape to have value 4.*\(2, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"'ln'.*expected ndim=3, found ndim=2.*\(2, 4\)"):
        ln = LayerNormalization(name="ln")
        ln(np.zeros((2, 3, 4), np.float32))
        ln(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"axis 3 is not valid for inputs of rank 3"):
        LayerNormalization(axis=3)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"axis 0 is not valid.*batch axis"):
        BatchNormalization(axis=0)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got 1.5"):
        BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon must be positive, got 0"):
        LayerNormalization(epsilon=0)
    with pytest.raises(ValueError, match="axis must be an int or a non-empty list of ints, got 'x'"):
        LayerNormalization(axis="x")
