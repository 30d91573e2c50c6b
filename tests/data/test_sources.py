"""Dataset sources (from_tensor_slices, from_tensors, range, from_generator, zip) against Python/NumPy; TensorSpec."""
import collections

import numpy as np
import pytest

import cuflow as tf
from cuflow import errors
from cuflow.data import Dataset, TensorSpec

Point = collections.namedtuple("Point", ["x", "y"])


def _numpy(ds):
    return list(ds.as_numpy_iterator())


# --- from_tensor_slices ------------------------------------------------------------------------------------------
def test_from_tensor_slices_of_an_array_yields_its_rows(rng):
    X = rng.normal(size=(5, 3))
    out = list(Dataset.from_tensor_slices(X))
    assert len(out) == 5
    for row, t in zip(X, out):
        assert isinstance(t, tf.Tensor) and t.dtype == tf.float64 and t.shape == (3,)
        np.testing.assert_array_equal(t.numpy(), row)
        assert t.device.endswith("CPU:0")


def test_from_tensor_slices_of_tuples_dicts_and_nesting_keeps_the_structure(rng):
    X, y, w = rng.normal(size=(4, 2)), np.arange(4), rng.uniform(size=4).astype(np.float32)
    ds = Dataset.from_tensor_slices(((X, {"y": y}), w))
    out = _numpy(ds)
    assert len(out) == 4
    for i, ((xi, d), wi) in enumerate(out):
        np.testing.assert_array_equal(xi, X[i])
        assert d["y"] == y[i] and wi == w[i]
    spec = ds.element_spec
    assert spec == ((TensorSpec((2,), tf.float64), {"y": TensorSpec((), tf.int64)}), TensorSpec((), tf.float32))


def test_from_tensor_slices_keeps_namedtuples():
    out = _numpy(Dataset.from_tensor_slices(Point(np.arange(3), np.arange(3) * 10)))
    assert out[2] == Point(2, 20) and isinstance(out[2], Point)


def test_from_tensor_slices_takes_lists_as_one_tensor_with_tensorflows_dtypes():
    ds = Dataset.from_tensor_slices([[1, 2], [3, 4]])
    assert ds.element_spec == TensorSpec((2,), tf.int32)
    assert [a.tolist() for a in _numpy(ds)] == [[1, 2], [3, 4]]
    assert Dataset.from_tensor_slices([1.5, 2.5]).element_spec.dtype == tf.float32
    assert _numpy(Dataset.from_tensor_slices(["ab", "c"])) == [b"ab", b"c"]


def test_from_tensor_slices_of_tensors_and_variables():
    v = tf.Variable([1.0, 2.0, 3.0])
    ds = Dataset.from_tensor_slices((tf.constant([[1, 2], [3, 4], [5, 6]]), v))
    v.assign([7.0, 8.0, 9.0])  # the dataset keeps the value it was given, as TensorFlow's does
    assert [(a.tolist(), float(b)) for a, b in _numpy(ds)] == [([1, 2], 1.0), ([3, 4], 2.0), ([5, 6], 3.0)]


def test_from_tensor_slices_bad_input():
    with pytest.raises(ValueError, match=r"same size in their first dimension, got sizes \[3, 2\]"):
        Dataset.from_tensor_slices((np.zeros(3), np.zeros(2)))
    with pytest.raises(ValueError, match="component 1 is a scalar"):
        Dataset.from_tensor_slices((np.zeros(3), 5))
    with pytest.raises(TypeError, match="None is not a valid dataset component"):
        Dataset.from_tensor_slices((np.zeros(3), None))


def test_from_tensors_is_one_element():
    ds = Dataset.from_tensors((np.arange(6).reshape(2, 3), 1.0))
    (x, y), = _numpy(ds)
    np.testing.assert_array_equal(x, np.arange(6).reshape(2, 3))
    assert y == np.float32(1.0) and ds.cardinality() == 1 and len(ds) == 1
    assert ds.element_spec == (TensorSpec((2, 3), tf.int64), TensorSpec((), tf.float32))


# --- range ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [(5,), (2, 7), (10, 0, -3), (3, 3), (0, 10, 4)])
def test_range_matches_python(args):
    ds = Dataset.range(*args)
    assert [int(v) for v in _numpy(ds)] == list(range(*args))
    assert len(ds) == len(range(*args)) and ds.element_spec == TensorSpec((), tf.int64)


def test_range_dtype_and_bad_arguments():
    assert Dataset.range(3, dtype=tf.int32).element_spec.dtype == tf.int32
    assert next(iter(Dataset.range(3, dtype=tf.int32))).dtype == tf.int32
    with pytest.raises(ValueError, match="`step` must not be 0"):
        Dataset.range(0, 5, 0)
    with pytest.raises(TypeError, match="`stop` must be an int, got 2.5"):
        Dataset.range(2.5)
    with pytest.raises(TypeError, match="1 to 3 arguments"):
        Dataset.range()


# --- from_generator ------------------------------------------------------------------------------------------------
def _ragged():
    for i in range(4):
        yield np.arange(i, dtype=np.float64), i


def test_from_generator_converts_to_the_signature_and_is_reiterable():
    sig = (TensorSpec((None,), tf.float32), TensorSpec((), tf.int32))
    ds = Dataset.from_generator(_ragged, output_signature=sig)
    for _ in range(2):
        out = _numpy(ds)
        assert [(a.tolist(), int(b)) for a, b in out] == [([], 0), ([0.0], 1), ([0.0, 1.0], 2), ([0.0, 1.0, 2.0], 3)]
        assert all(a.dtype == np.float32 and b.dtype == np.int32 for a, b in out)
    assert ds.element_spec == sig
    assert int(ds.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    with pytest.raises(TypeError, match="length is unknown"):
        len(ds)


def test_from_generator_with_output_types_shapes_and_args():
    def gen(n, scale):
        for i in range(int(n)):
            yield {"x": [i * scale, i], "label": i % 2}
    ds = Dataset.from_generator(gen, output_types={"x": tf.float32, "label": tf.int64},
                                output_shapes={"x": (2,), "label": ()}, args=(3, 0.5))
    assert ds.element_spec == {"x": TensorSpec((2,), tf.float32), "label": TensorSpec((), tf.int64)}
    out = _numpy(ds)
    assert [d["x"].tolist() for d in out] == [[0, 0], [0.5, 1], [1, 2]] and [d["label"] for d in out] == [0, 1, 0]
    unknown = Dataset.from_generator(lambda: iter([[1, 2, 3]]), output_types=tf.int32)
    assert unknown.element_spec.shape is None and _numpy(unknown)[0].tolist() == [1, 2, 3]


def test_from_generator_rejects_elements_that_do_not_match():
    sig = (TensorSpec((2,), tf.float32), TensorSpec((), tf.int32))
    with pytest.raises(TypeError, match="did not match the expected structure"):
        _numpy(Dataset.from_generator(lambda: iter([np.zeros(2)]), output_signature=sig))
    with pytest.raises(errors.InvalidArgumentError, match=r"shape \(3,\) where an element of shape \(2,\)"):
        _numpy(Dataset.from_generator(lambda: iter([(np.zeros(3), 1)]), output_signature=sig))
    with pytest.raises(TypeError, match="expected type was float32, but the yielded element was \\['a', 'b'\\]"):
        _numpy(Dataset.from_generator(lambda: iter([(["a", "b"], 1)]), output_signature=sig))


def test_from_generator_bad_arguments():
    with pytest.raises(TypeError, match="`generator` must be callable"):
        Dataset.from_generator(_ragged(), output_signature=TensorSpec((), tf.int32))
    with pytest.raises(TypeError, match="`output_signature`.*is required"):
        Dataset.from_generator(_ragged)
    with pytest.raises(TypeError, match="not both"):
        Dataset.from_generator(_ragged, output_types=tf.int32, output_signature=TensorSpec((), tf.int32))
    with pytest.raises(TypeError, match="structure of tf.TensorSpec"):
        Dataset.from_generator(_ragged, output_signature=(tf.float32, tf.int32))


# --- zip -----------------------------------------------------------------------------------------------------------
def test_zip_positional_tuple_and_dict_forms_stop_at_the_shortest():
    a, b = Dataset.range(5), Dataset.range(10, 13)
    expected = [(0, 10), (1, 11), (2, 12)]
    assert [tuple(map(int, e)) for e in _numpy(Dataset.zip(a, b))] == expected
    assert [tuple(map(int, e)) for e in _numpy(Dataset.zip((a, b)))] == expected
    assert [(int(e["a"]), int(e["b"])) for e in _numpy(Dataset.zip({"a": a, "b": b}))] == expected
    assert len(Dataset.zip(a, b)) == 3
    assert Dataset.zip(a, b.repeat()).cardinality() == 5
    with pytest.raises(TypeError, match="must be Datasets"):
        Dataset.zip((a, [1, 2]))


# --- TensorSpec ----------------------------------------------------------------------------------------------------
def test_tensor_spec():
    spec = tf.TensorSpec((None, 3), tf.float32, name="x")
    assert spec.shape == (None, 3) and spec.dtype == tf.float32 and spec.name == "x"
    assert repr(spec) == "TensorSpec(shape=(None, 3), dtype=cuflow.float32, name='x')"
    assert spec.is_compatible_with(tf.zeros((7, 3)))
    assert not spec.is_compatible_with(tf.zeros((7, 4)))
    assert not spec.is_compatible_with(tf.zeros((7, 3), dtype=tf.float64))
    assert TensorSpec(None).is_compatible_with(np.zeros((1, 2, 3), np.float32))
    assert TensorSpec.from_tensor(tf.constant([1, 2])) == TensorSpec((2,), tf.int32)
    assert hash(TensorSpec((2,), "int32")) == hash(TensorSpec([2], tf.int32))
    with pytest.raises(TypeError, match="shape must be a tuple or list"):
        TensorSpec("abc")
