"""keras.utils: to_categorical, normalize, pad_sequences, split_dataset, set_random_seed, plot_history
(get_file is tested with the dataset downloader in tests/datasets/test_download.py)."""
import random

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras

utils = keras.utils


# --- to_categorical ------------------------------------------------------------------------------------------------
def test_to_categorical_matches_one_hot_rows():
    labels = np.array([3, 0, 2, 2, 1])
    out = utils.to_categorical(labels)
    np.testing.assert_array_equal(out, np.eye(4)[labels])
    assert out.dtype == np.float32 and out.shape == (5, 4)
    assert utils.to_categorical(labels, num_classes=6, dtype="int64").shape == (5, 6)
    assert utils.to_categorical([1, 0], dtype="int64").dtype == np.int64


def test_to_categorical_drops_a_trailing_unit_axis_like_keras():
    cifar_like = np.array([[1], [0], [2]], dtype=np.uint8)  # CIFAR-10 labels are (n, 1)
    np.testing.assert_array_equal(utils.to_categorical(cifar_like, 3), np.eye(3)[[1, 0, 2]])
    assert utils.to_categorical(np.zeros((2, 5), np.int32), 3).shape == (2, 5, 3)
    np.testing.assert_array_equal(utils.to_categorical(2, 4), [0, 0, 1, 0])


def test_to_categorical_of_a_tensor_stays_on_its_device(device):
    labels = tf.constant([2, 0, 1])
    out = utils.to_categorical(labels, 3)
    assert isinstance(out, tf.Tensor) and out.device == labels.device and out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), np.eye(3)[[2, 0, 1]])


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0, 3], 3, r"class indices must be in \[0, num_classes=3\), got values from 0 to 3"),
    ([-1, 1], None, r"got values from -1 to 1"),
    ([0.5, 1.0], None, "must hold integer class indices, got dtype float64"),
])
def test_to_categorical_bad_labels(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        utils.to_categorical(labels, num_classes)


# --- normalize -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3, np.inf])
@pytest.mark.parametrize("axis", [-1, 0])
def test_normalize_against_numpy_float64(order, axis, rng):
    x = rng.normal(size=(4, 5))
    x[1] = 0.0  # a zero row stays zero instead of becoming NaN
    norm = np.linalg.norm(x, order, axis, keepdims=True)
    expected = x / np.where(norm == 0, 1, norm)
    np.testing.assert_allclose(utils.normalize(x, axis=axis, order=order), expected, rtol=1e-12)
    out = utils.normalize(tf.constant(x), axis=axis, order=order)
    assert isinstance(out, tf.Tensor)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_normalize_ints_and_tensors_on_the_device(device):
    np.testing.assert_allclose(utils.normalize([[3, 4]]), [[0.6, 0.8]])
    out = utils.normalize(tf.constant([[3.0, 4.0], [0.0, 0.0]]))
    assert out.device == tf.constant(1.0).device
    np.testing.assert_allclose(out.numpy(), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


# --- pad_sequences -------------------------------------------------------------------------------------------------
def test_pad_sequences_keras_examples():
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(utils.pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(utils.pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(utils.pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(utils.pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(utils.pad_sequences(seqs, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]])
    assert utils.pad_sequences(seqs).dtype == np.int32
    assert utils.pad_sequences([[], [1]], maxlen=0).shape == (2, 0)


def test_pad_sequences_of_vectors_and_strings():
    out = utils.pad_sequences([np.ones((1, 2)), np.full((2, 2), 7.0)], dtype="float32", padding="post")
    np.testing.assert_array_equal(out, [[[1, 1], [0, 0]], [[7, 7], [7, 7]]])
    words = utils.pad_sequences([["a"], ["b", "c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["<pad>", "a"], ["b", "c"]]


@pytest.mark.parametrize("kwargs, message", [
    ({"padding": "middle"}, "padding must be 'pre' or 'post', got 'middle'"),
    ({"truncating": "both"}, "truncating must be 'pre' or 'post', got 'both'"),
    ({"value": "x"}, "a string value 'x' needs dtype=object"),
])
def test_pad_sequences_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        utils.pad_sequences([[1, 2]], **kwargs)


def test_pad_sequences_bad_sequences():
    with pytest.raises(ValueError, match="must be a list of sequences"):
        utils.pad_sequences([[1], 2])
    with pytest.raises(ValueError, match=r"sequence 1 has items of shape \(3,\), expected \(2,\)"):
        utils.pad_sequences([np.ones((1, 2)), np.ones((1, 3))])


# --- split_dataset -------------------------------------------------------------------------------------------------
def rows(dataset):
    return [tuple(np.atleast_1d(v).tolist() for v in (e if isinstance(e, tuple) else (e,)))
            for e in dataset.as_numpy_iterator()]


def test_split_dataset_sizes_and_order():
    x = np.arange(10.0)
    left, right = utils.split_dataset(x, left_size=0.8)
    assert [r[0][0] for r in rows(left)] == list(range(8)) and [r[0][0] for r in rows(right)] == [8.0, 9.0]
    left, right = utils.split_dataset(x, right_size=3)
    assert int(left.cardinality()) == 7 and int(right.cardinality()) == 3
    left, right = utils.split_dataset(x, left_size=2, right_size=0.5)  # the middle is dropped, as in Keras
    assert [r[0][0] for r in rows(right)] == [5.0, 6.0, 7.0, 8.0, 9.0] and int(left.cardinality()) == 2


def test_split_dataset_shuffles_tuples_together_and_repeats_with_a_seed():
    x, y = np.arange(20.0), np.arange(20) * 10
    left, right = utils.split_dataset((x, y), left_size=0.75, shuffle=True, seed=3)
    pairs = rows(left) + rows(right)
    assert all(b[0] == 10 * a[0] for a, b in pairs)
    assert sorted(a[0] for a, _ in pairs) == list(range(20)) and [a[0] for a, _ in pairs] != list(range(20))
    again, _ = utils.split_dataset((x, y), left_size=0.75, shuffle=True, seed=3)
    assert rows(again) == rows(left)


def test_split_dataset_of_dicts_and_datasets():
    left, right = utils.split_dataset({"a": np.arange(4), "b": np.ones((4, 2))}, left_size=1)
    element = next(right.as_numpy_iterator())
    assert set(element) == {"a", "b"} and element["a"] == 1 and element["b"].shape == (2,)
    source = tf.data.Dataset.from_tensor_slices((np.arange(5), np.arange(5) * 2))
    left, right = utils.split_dataset(source, right_size=0.4)
    assert rows(right) == [([3], [6]), ([4], [8])]


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, ValueError, "give left_size or right_size"),
    ({"left_size": 1.5}, ValueError, r"left_size must be a fraction in \(0, 1\) or a count in \(0, 10\), got 1.5"),
    ({"right_size": 10}, ValueError, "right_size must be a fraction"),
    ({"left_size": "half"}, TypeError, "left_size must be an int, a float or None, got str"),
    ({"left_size": 0.7, "right_size": 0.5}, ValueError, "give 7 and 5 of 10 samples"),
    ({"left_size": 0.01}, ValueError, "give 0 and 10 of 10 samples"),
])
def test_split_dataset_bad_sizes(kwargs, error, message):
    with pytest.raises(error, match=message):
        utils.split_dataset(np.arange(10), **kwargs)


def test_split_dataset_bad_data():
    with pytest.raises(ValueError, match=r"same length, got lengths \[3, 2\]"):
        utils.split_dataset((np.zeros(3), np.zeros(2)), left_size=1)
    with pytest.raises(TypeError, match="got str"):
        utils.split_dataset("abc", left_size=1)


# --- set_random_seed -----------------------------------------------------------------------------------------------
def test_set_random_seed_repeats_python_numpy_and_cuflow_draws():
    def draw():
        return random.random(), np.random.rand(), tf.random.normal((3,)).numpy().tolist()
    utils.set_random_seed(7)
    first = draw()
    utils.set_random_seed(7)
    assert draw() == first
    utils.set_random_seed(8)
    assert draw() != first
    with pytest.raises(ValueError, match="expected seed to be an integer, got '7'"):
        utils.set_random_seed("7")


# --- plot_history --------------------------------------------------------------------------------------------------
@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    yield pyplot
    pyplot.close("all")


HISTORY = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.9], "val_loss": [1.1, 0.6, 0.4],
           "val_accuracy": [0.4, 0.6, 0.8]}


def test_plot_history_draws_training_and_validation_curves(plt):
    axes = utils.plot_history(HISTORY)
    assert [a.get_title() for a in axes] == ["loss", "accuracy"]
    curves = {line.get_label(): line.get_ydata().tolist() for line in axes[0].get_lines()}
    assert curves == {"training": HISTORY["loss"], "validation": HISTORY["val_loss"]}
    assert axes[1].get_lines()[0].get_xdata().tolist() == [1, 2, 3]


def test_plot_history_of_a_fit_into_given_axes(plt):
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((8, 2), np.float32), np.ones((8, 1), np.float32), epochs=2, verbose=0)
    _, ax = plt.subplots()
    assert utils.plot_history(history, metrics=["loss"], ax=ax) == [ax]
    assert len(ax.get_lines()) == 1 and len(ax.get_lines()[0].get_ydata()) == 2


def test_plot_history_bad_arguments(plt):
    with pytest.raises(ValueError, match=r"metrics \['auc'\] are not in the history"):
        utils.plot_history(HISTORY, metrics=["auc"])
    with pytest.raises(ValueError, match="got 1 Axes for 2 metrics"):
        utils.plot_history(HISTORY, ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="non-empty dict"):
        utils.plot_history({})


def test_serialization_registry_is_reachable_from_utils_as_in_keras():
    from cuflow import saving
    assert utils.register_keras_serializable is saving.register_keras_serializable
    assert utils.get_custom_objects is saving.get_custom_objects
