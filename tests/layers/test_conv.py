"""Conv2D and the pooling layers: Keras's shape rules, gradients, config, parity, bad input."""
import numpy as np
import pytest

import cuflow as tf
from cuflow import testing, initializers
from cuflow.layers import (Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D)
from tests.layers.test_core import weight_gradients_match


@pytest.mark.parametrize("make, in_shape, out_shape", [
    (lambda: Conv2D(4, 3), (2, 9, 8, 3), (2, 7, 6, 4)),
    (lambda: Conv2D(4, (3, 2), padding="same"), (2, 9, 8, 3), (2, 9, 8, 4)),
    (lambda: Conv2D(4, 3, strides=2), (2, 9, 8, 3), (2, 4, 3, 4)),
    (lambda: Conv2D(4, 3, strides=2, padding="same"), (2, 9, 8, 3), (2, 5, 4, 4)),
    (lambda: Conv2D(2, 3, dilation_rate=2), (1, 9, 8, 1), (1, 5, 4, 2)),
    (lambda: Conv2D(2, 3, data_format="channels_first"), (1, 3, 9, 8), (1, 2, 7, 6)),
    (lambda: MaxPooling2D(), (2, 9, 8, 3), (2, 4, 4, 3)),
    (lambda: MaxPooling2D((3, 3), strides=2, padding="same"), (2, 9, 8, 3), (2, 5, 4, 3)),
    (lambda: AveragePooling2D((2, 2)), (2, 9, 8, 3), (2, 4, 4, 3)),
    (lambda: GlobalAveragePooling2D(), (2, 9, 8, 3), (2, 3)),
    (lambda: GlobalMaxPooling2D(keepdims=True), (2, 9, 8, 3), (2, 1, 1, 3)),
])
def test_output_shape_follows_keras(make, in_shape, out_shape):
    layer = make()
    out = layer(np.zeros(in_shape, np.float32))
    assert tuple(out.shape) == out_shape
    assert tuple(layer.compute_output_shape((None,) + in_shape[1:])) == (None,) + out_shape[1:]


def test_conv2d_values_against_numpy(rng):
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    layer = Conv2D(4, (3, 2), activation="relu", bias_initializer="random_normal")
    out = layer(x).numpy()
    kernel, bias = layer.get_weights()
    expected = np.zeros((2, 3, 5, 4), np.float32)
    for i in range(3):
        for j in range(5):
            expected[:, i, j] = np.einsum("nhwc,hwcf->nf", x[:, i:i + 3, j:j + 2], kernel)
    np.testing.assert_allclose(out, np.maximum(expected + bias, 0), rtol=1e-4, atol=1e-5)


def test_pooling_values_against_numpy(rng):
    x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    blocks = x.reshape(1, 2, 2, 2, 2, 2)
    np.testing.assert_allclose(MaxPooling2D()(x).numpy(), blocks.max(axis=(2, 4)), rtol=1e-6)
    np.testing.assert_allclose(AveragePooling2D()(x).numpy(), blocks.mean(axis=(2, 4)), rtol=1e-6)
    np.testing.assert_allclose(GlobalAveragePooling2D()(x).numpy(), x.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(GlobalMaxPooling2D()(x).numpy(), x.max(axis=(1, 2)), rtol=1e-6)


def test_conv2d_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 4, 4, 2))
    layer = Conv2D(2, 2, strides=(1, 2), padding="same", activation="tanh", dtype="float64",
                   bias_initializer="random_normal")
    testing.check_gradients(lambda v: layer(v), [x])
    weight_gradients_match(layer, x)


@pytest.mark.parametrize("make", [lambda: MaxPooling2D(), lambda: AveragePooling2D((2, 2), strides=1),
                                  lambda: GlobalAveragePooling2D(), lambda: GlobalMaxPooling2D()])
def test_pooling_gradients_match_finite_differences(make, rng):
    layer = make()
    layer.dtype = "float64"
    testing.check_gradients(lambda v: layer(v) ** 2, [rng.standard_normal((1, 4, 4, 2))])


@pytest.mark.parametrize("layer", [
    Conv2D(8, (3, 5), strides=2, padding="same", dilation_rate=1, activation="relu", use_bias=False,
           kernel_initializer="he_uniform", kernel_regularizer="l2"),
    MaxPooling2D((3, 3), strides=(1, 2), padding="same"), AveragePooling2D(), GlobalAveragePooling2D(keepdims=True),
    GlobalMaxPooling2D(),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


def test_conv_block_same_numbers_on_each_device(device, rng):
    x = rng.standard_normal((2, 10, 10, 3)).astype(np.float32)

    def run():
        conv = Conv2D(5, 3, activation="relu", kernel_initializer=initializers.HeNormal(seed=3),
                      bias_initializer=initializers.RandomUniform(seed=4))
        return [np.asarray(t) for t in (conv(x), MaxPooling2D()(conv(x)), GlobalAveragePooling2D()(conv(x)))]

    with tf.device("/CPU:0"):
        expected = run()
    for got, want in zip(run(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv2d_rejects_wrong_rank_and_channels_naming_the_layer():
    layer = Conv2D(4, 3, name="features")
    with pytest.raises(ValueError, match=r"'features'.*expected ndim=4, found ndim=3.*\(28, 28, 1\)"):
        layer(np.zeros((28, 28, 1)))
    layer(np.zeros((1, 28, 28, 1)))
    with pytest.raises(ValueError, match=r"'features'.*axis -1 of input shape to have value 1.*\(1, 28, 28, 3\)"):
        layer(np.zeros((1, 28, 28, 3)))


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match=r"does not fit the input of shape \(1, 2, 2, 1\)"):
        Conv2D(4, 3)(np.zeros((1, 2, 2, 1)))
