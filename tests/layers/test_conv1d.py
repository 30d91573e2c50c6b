"""Conv1D: Keras's shape rules (valid, same, causal), values against NumPy, gradients, training, config, parity and
bad input."""
import numpy as np
import pytest

from cuflow import keras, testing, initializers
from cuflow.layers import Conv1D, Flatten, Dense
from tests.layers.test_core import weight_gradients_match
from tests.layers.helpers import fit_lowers_loss, output_and_gradients, same_as_on_cpu


def conv1d_reference(x, kernel, bias, stride=1, dilation=1, padding="valid"):
    """Cross-correlation in float64, channels last, with Keras's padding rules."""
    k = kernel.shape[0]
    span = dilation * (k - 1) + 1
    steps = x.shape[1]
    if padding == "causal":
        x = np.pad(x, ((0, 0), (span - 1, 0), (0, 0)))
    elif padding == "same":
        total = max((-(-steps // stride) - 1) * stride + span - steps, 0)
        x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    out_steps = (x.shape[1] - span) // stride + 1
    out = np.stack([np.einsum("nkc,kcf->nf", x[:, t * stride:t * stride + span:dilation], kernel)
                    for t in range(out_steps)], axis=1)
    return out + bias


@pytest.mark.parametrize("options, in_shape, out_shape", [
    ({}, (2, 10, 3), (2, 8, 4)),
    ({"padding": "same"}, (2, 10, 3), (2, 10, 4)),
    ({"padding": "causal"}, (2, 10, 3), (2, 10, 4)),
    ({"strides": 3}, (2, 10, 3), (2, 3, 4)),
    ({"strides": 3, "padding": "same"}, (2, 10, 3), (2, 4, 4)),
    ({"dilation_rate": 2}, (2, 10, 3), (2, 6, 4)),
    ({"data_format": "channels_first"}, (2, 3, 10), (2, 4, 8)),
])
def test_output_shape_follows_keras(options, in_shape, out_shape):
    layer = Conv1D(4, 3, **options)
    assert tuple(layer(np.zeros(in_shape, np.float32)).shape) == out_shape
    assert layer.compute_output_shape((None,) + in_shape[1:]) == (None,) + out_shape[1:]


@pytest.mark.parametrize("options", [{}, {"padding": "same", "strides": 2}, {"padding": "causal", "dilation_rate": 2},
                                     {"padding": "same", "dilation_rate": 2}])
def test_values_against_numpy(options, rng):
    x = rng.standard_normal((2, 9, 3))
    layer = Conv1D(4, 3, activation="relu", bias_initializer="random_normal", dtype="float64", **options)
    out = layer(x).numpy()
    kernel, bias = layer.get_weights()
    expected = conv1d_reference(x, kernel, bias, options.get("strides", 1), options.get("dilation_rate", 1),
                                options.get("padding", "valid"))
    np.testing.assert_allclose(out, np.maximum(expected, 0), rtol=1e-10, atol=1e-12)


def test_causal_output_never_sees_the_future(rng):
    layer = Conv1D(2, 4, padding="causal", dilation_rate=2)
    x = rng.standard_normal((1, 12, 1)).astype(np.float32)
    changed = x.copy()
    changed[:, 7:] += 1.0
    before, after = layer(x).numpy(), layer(changed).numpy()
    np.testing.assert_array_equal(before[:, :7], after[:, :7])
    assert not np.allclose(before[:, 7:], after[:, 7:])


def test_channels_first_matches_channels_last(rng):
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    last, first = Conv1D(5, 2, padding="same"), Conv1D(5, 2, padding="same", data_format="channels_first")
    expected = last(x).numpy()
    first(np.transpose(x, (0, 2, 1)))
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(np.transpose(first(np.transpose(x, (0, 2, 1))).numpy(), (0, 2, 1)), expected,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("padding", ["valid", "causal"])
def test_gradients_match_finite_differences(padding, rng):
    x = rng.standard_normal((2, 6, 2))
    layer = Conv1D(3, 3, strides=2, padding=padding, activation="tanh", dtype="float64",
                   bias_initializer="random_normal")
    testing.check_gradients(lambda v: layer(v) ** 2, [x])
    weight_gradients_match(layer, x)


def test_a_few_fit_steps_lower_the_loss(rng):
    x = rng.standard_normal((64, 12, 2)).astype(np.float32)
    y = (x[:, 1:, 0] - x[:, :-1, 1]).mean(axis=1, keepdims=True)
    model = keras.Sequential([Conv1D(4, 2, activation="relu", input_shape=(12, 2)), Flatten(), Dense(1)])
    fit_lowers_loss(model, x, y)


@pytest.mark.parametrize("layer", [
    Conv1D(8, 5, strides=2, padding="causal", dilation_rate=1, activation="relu", use_bias=False,
           kernel_initializer="he_uniform", kernel_regularizer="l2"),
    Conv1D(2, (3,), data_format="channels_first", dilation_rate=(2,)),
], ids=["causal", "channels_first"])
def test_config_round_trip(layer):
    config = layer.get_config()
    assert Conv1D.from_config(config).get_config() == config
    assert config["kernel_size"] == layer.kernel_size and isinstance(config["strides"], tuple)


def test_same_numbers_on_each_device(device, rng):
    x = rng.standard_normal((2, 11, 3)).astype(np.float32)

    same_as_on_cpu(lambda: output_and_gradients(
        Conv1D(4, 3, padding="causal", dilation_rate=2, kernel_initializer=initializers.HeNormal(seed=3),
               bias_initializer=initializers.RandomUniform(seed=4)), x))


def test_rejects_wrong_rank_and_channels_naming_the_layer():
    layer = Conv1D(4, 3, name="temporal")
    with pytest.raises(ValueError, match=r"'temporal'.*expected ndim=3, found ndim=4.*\(1, 9, 9, 1\)"):
        layer(np.zeros((1, 9, 9, 1)))
    layer(np.zeros((1, 9, 2)))
    with pytest.raises(ValueError, match=r"'temporal'.*axis -1 of input shape to have value 2.*\(1, 9, 5\)"):
        layer(np.zeros((1, 9, 5)))
    with pytest.raises(ValueError, match=r"does not fit the input of shape \(1, 2, 1\)"):
        Conv1D(4, 3)(np.zeros((1, 2, 1)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="Conv1D: kernel_size must be an int or a tuple of 1 positive ints"):
        Conv1D(4, (3, 3))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same', got 'full'"):
        Conv1D(4, 3, padding="full")
    with pytest.raises(ValueError, match="filters must be a positive int, got 0"):
        Conv1D(0, 3)
