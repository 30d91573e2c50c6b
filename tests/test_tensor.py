import numpy as np
import pytest

import cuflow as tf


def test_issue_examples():
    a, b = tf.constant(5), tf.constant(3)
    c = tf.add(a, b)
    assert c.numpy() == 8 and c.dtype == tf.int32
    t = tf.constant([[1, 2, 3], [4, 5, 6]])
    assert t.dtype == tf.int32 and t.shape == (2, 3) and t.shape.as_list() == [2, 3]
    W = tf.Variable(tf.random.normal(shape=(2, 3)))
    assert W.shape == (2, 3) and W.dtype == tf.float32
    assert tf.executing_eagerly()


def test_tensor_is_immutable_and_numpy_view_is_read_only():
    with tf.device("/CPU:0"):  # on the CPU .numpy() is a view, so it must be read-only
        t = tf.constant([1.0, 2.0])
    view = t.numpy()
    with pytest.raises(ValueError):
        view[0] = 5.0
    with pytest.raises(AttributeError):
        t.shape = (1, 2)


def test_numpy_interop_and_dlpack():
    t = tf.constant(np.arange(6, dtype=np.float64).reshape(2, 3))
    np.testing.assert_array_equal(np.asarray(t), np.arange(6).reshape(2, 3))
    back = np.from_dlpack(t.cpu())
    np.testing.assert_array_equal(back, t.numpy())
    again = tf.from_dlpack(np.arange(4.0))
    assert again.shape == (4,) and again.dtype == tf.float64


def test_repr_is_readable():
    text = repr(tf.constant([1, 2]))
    assert "shape=(2,)" in text and "dtype=int32" in text and "[1, 2]" in text
    assert "Variable 'w:0'" in repr(tf.Variable([1.0], name="w"))


def test_constant_shape_argument_broadcasts_scalars_and_reshapes():
    assert tf.constant(7.0, shape=(2, 2)).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert tf.constant([1, 2, 3, 4], shape=(2, 2)).shape == (2, 2)
    with pytest.raises(ValueError, match="cannot be reshaped to shape"):
        tf.constant([1, 2, 3], shape=(2, 2))


def test_tensors_are_unhashable_but_have_refs():
    t = tf.constant(1.0)
    with pytest.raises(TypeError):
        hash(t)
    assert {t.ref(): 1}[t.ref()] == 1 and t.ref().deref() is t


def test_variable_assign_family():
    v = tf.Variable([1.0, 2.0], name="v")
    assert v.name == "v:0" and v.trainable
    v.assign([3.0, 4.0])
    v.assign_add(tf.constant([1.0, 1.0]))
    v.assign_sub([0.5, 0.5])
    np.testing.assert_array_equal(v.numpy(), [3.5, 4.5])
    assert isinstance(v + 1.0, tf.Tensor) and not isinstance(v + 1.0, tf.Variable)
    snapshot = v.value()
    v.assign([0.0, 0.0])
    np.testing.assert_array_equal(snapshot.numpy(), [3.5, 4.5])


def test_variable_rejects_wrong_shapes_and_dtypes():
    v = tf.Variable([1.0, 2.0], name="kernel")
    with pytest.raises(ValueError, match=r"kernel has shape \(2,\), value has shape \(3,\)"):
        v.assign([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="kernel has dtype float32, value has int32"):
        v.assign(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        tf.Variable([1.0, 2.0], shape=(3,))


def test_variable_from_callable_and_dtype():
    v = tf.Variable(lambda: tf.zeros((2,)), dtype=tf.float64)
    assert v.dtype == tf.float64 and v.shape == (2,)


def test_python_protocols():
    t = tf.constant([[1, 2], [3, 4]])
    assert len(t) == 2
    assert [row.numpy().tolist() for row in t] == [[1, 2], [3, 4]]
    assert bool(tf.constant([True])) and int(tf.constant(3)) == 3 and float(tf.constant(2.5)) == 2.5
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tf.constant([1, 2]))
    with pytest.raises(TypeError):
        len(tf.constant(1))
    assert [10, 20, 30][tf.constant(1)] == 20


def test_scalar_variable_accumulates():
    v = tf.Variable(0.0)
    for _ in range(3):
        v.assign_add(1.5)
    v.assign_sub(0.5)
    assert float(v) == 4.0 and v.shape == ()


@pytest.mark.gpu
def test_constant_from_a_cupy_array_stays_on_the_device():
    """tf.constant / tf.Variable of a CuPy array copy it on the device (no NumPy round trip, which CuPy refuses);
    under a CPU device scope the copy comes to the host."""
    from cuflow.kernels import cuda
    if cuda.gpu_count() == 0 or cuda.is_mock():
        pytest.skip("needs a real GPU (the mock GPU's arrays are NumPy arrays)")
    cp = cuda.cupy()
    source = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    with tf.device("/GPU:0"):
        t = tf.constant(source)
        v = tf.Variable(tf.constant(source, dtype=tf.float64))
    source[0, 0] = 100.0  # a copy: the tensor does not see later writes
    assert t.device.endswith("GPU:0") and isinstance(t._data, cp.ndarray)
    np.testing.assert_array_equal(t.numpy(), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert v.dtype == tf.float64 and v.numpy()[0, 0] == 0.0
    with tf.device("/CPU:0"):
        host = tf.constant(source)
    assert type(host._data) is np.ndarray and host.numpy()[0, 0] == 100.0
