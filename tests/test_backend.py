"""keras.backend: the global settings with Keras's defaults and errors, and clear_session."""
import pytest

import cuflow as tf
from cuflow import backend, keras


@pytest.fixture(autouse=True)
def restore_settings():
    saved = backend.floatx(), backend.epsilon(), backend.image_data_format()
    yield
    backend.set_floatx(saved[0])
    backend.set_epsilon(saved[1])
    backend.set_image_data_format(saved[2])


def test_keras_defaults_and_the_namespace():
    assert keras.backend is tf.keras.backend is backend
    assert backend.backend() == "cuflow"
    assert backend.floatx() == "float32"
    assert backend.epsilon() == 1e-7
    assert backend.image_data_format() == "channels_last"


def test_set_floatx():
    backend.set_floatx("float64")
    assert backend.floatx() == "float64"
    backend.set_floatx(tf.float16)  # a DType reads as its name, as Keras accepts any dtype-like
    assert backend.floatx() == "float16"
    with pytest.raises(ValueError, match="Unknown `floatx` value: 'int32'. Expected one of"):
        backend.set_floatx("int32")
    assert backend.floatx() == "float16"


def test_set_epsilon():
    backend.set_epsilon(1e-5)
    assert backend.epsilon() == 1e-5
    for bad in (0, -1e-3, "tiny", None):
        with pytest.raises(ValueError, match=f"epsilon must be a positive number, got {bad!r}"):
            backend.set_epsilon(bad)
    assert backend.epsilon() == 1e-5


def test_image_data_format():
    backend.set_image_data_format("channels_first")
    assert backend.image_data_format() == "channels_first"
    assert backend.standardize_data_format(None) == "channels_first"
    assert backend.standardize_data_format("Channels_Last") == "channels_last"
    with pytest.raises(ValueError, match="data_format.*Received: data_format='nhwc'"):
        backend.set_image_data_format("nhwc")
    assert backend.image_data_format() == "channels_first"


def test_clear_session_restarts_layer_names():
    keras.layers.Dense(2)
    assert keras.layers.Dense(2).name.startswith("dense_")
    backend.clear_session()
    assert keras.layers.Dense(2).name == "dense"
    assert keras.layers.Dense(2).name == "dense_1"
    backend.clear_session(free_memory=False)
    assert keras.layers.Conv2D(1, 1).name == "conv2d"
