import numpy as np
import pytest

import cuflow as tf


@pytest.mark.parametrize("value, expected", [
    (5, tf.int32), (5.0, tf.float32), (True, tf.bool), ([1, 2, 3], tf.int32), ([1.0, 2], tf.float32),
    ([[1, 2, 3], [4, 5, 6]], tf.int32), (np.float64(1.5), tf.float64), (np.arange(3, dtype=np.int64), tf.int64),
    (np.zeros(2, np.float16), tf.float16), (np.zeros(2, np.uint8), tf.uint8), ("abc", tf.string),
])
def test_constant_infers_tensorflow_dtypes(value, expected):
    with tf.device("/CPU:0"):  # string constants live on the CPU
        assert tf.constant(value).dtype == expected


def test_dtype_compares_with_numpy_and_names():
    assert tf.float32 == np.float32 and tf.float32 == "float32" and tf.float32 == tf.as_dtype("float32")
    assert tf.int32 != tf.float32
    assert tf.float64.as_numpy_dtype is np.float64
    assert tf.as_dtype(np.dtype("int8")) is tf.int8
    assert {tf.float32: 1}[tf.as_dtype("float32")] == 1
    assert tf.float16.is_floating and tf.int8.is_integer and tf.uint8.is_unsigned and not tf.bool.is_floating


def test_bfloat16_through_ml_dtypes():
    pytest.importorskip("ml_dtypes")
    t = tf.constant([1.0, 2.5], dtype=tf.bfloat16)
    assert t.dtype == tf.bfloat16
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), [1.0, 2.5])
    assert tf.cast(t, tf.float32).dtype == tf.float32


def test_string_constants_on_cpu():
    with tf.device("/CPU:0"):
        t = tf.constant(["a", "bc"])
    assert t.dtype == tf.string and t.numpy().tolist() == [b"a", b"bc"]


def test_unknown_dtype_name_is_a_clear_type_error():
    with pytest.raises(TypeError, match="unknown dtype name 'float33'"):
        tf.as_dtype("float33")


def test_constant_refuses_to_drop_fractions():
    with pytest.raises(TypeError, match="int32"):
        tf.constant(2.5, dtype=tf.int32)
    assert tf.constant(2.0, dtype=tf.int32).numpy() == 2
