"""Dataset transformations against plain Python/NumPy equivalents; shuffle's seeds; cardinality of each transform."""
import itertools
import os
import threading

import numpy as np
import pytest

import cuflow as tf
from cuflow import errors
from cuflow.data import INFINITE_CARDINALITY as INF, UNKNOWN_CARDINALITY as UNK, Dataset, TensorSpec


def _ints(ds):
    return [int(v) for v in ds.as_numpy_iterator()]


# --- batch / unbatch -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("drop_remainder", [False, True])
@pytest.mark.parametrize("source", ["slices", "generic"])  # the direct slicing path and the stacking path
def test_batch_matches_numpy_slicing(rng, drop_remainder, source):
    X, y = rng.normal(size=(10, 3)).astype(np.float32), np.arange(10)
    ds = Dataset.from_tensor_slices((X, y))
    if source == "generic":
        ds = ds.map(lambda a, b: (a, b))
    batched = ds.batch(4, drop_remainder=drop_remainder)
    out = list(batched.as_numpy_iterator())
    stops = [4, 8] if drop_remainder else [4, 8, 10]
    assert len(out) == len(stops) == len(batched)
    for (xb, yb), stop in zip(out, stops):
        np.testing.assert_array_equal(xb, X[stop - 4 if stop % 4 == 0 else 8:stop])
        np.testing.assert_array_equal(yb, y[stop - 4 if stop % 4 == 0 else 8:stop])
    first = 4 if drop_remainder else None
    assert batched.element_spec == (TensorSpec((first, 3), tf.float32), TensorSpec((first,), tf.int64))


def test_batch_of_different_shapes_raises_naming_the_component():
    ds = Dataset.from_generator(lambda: iter([np.zeros(2), np.zeros(3)]), output_signature=TensorSpec((None,)))
    with pytest.raises(errors.InvalidArgumentError, match=r"component 0. First element had shape \[2\] and element 1 "
                                                          r"had shape \[3\]"):
        list(ds.batch(2))
    with pytest.raises(ValueError, match="`batch_size` must be >= 1, got 0"):
        ds.batch(0)


def test_unbatch_inverts_batch_and_splits_dicts(rng):
    X = rng.normal(size=(7, 2))
    ds = Dataset.from_tensor_slices({"x": X, "i": np.arange(7)})
    back = ds.batch(3).unbatch()
    out = list(back.as_numpy_iterator())
    assert [d["i"] for d in out] == list(range(7))
    np.testing.assert_array_equal(np.stack([d["x"] for d in out]), X)
    assert back.element_spec == {"x": TensorSpec((2,), tf.float64), "i": TensorSpec((), tf.int64)}
    assert Dataset.from_tensors(np.zeros((4, 2))).unbatch().cardinality() == 4
    with pytest.raises(errors.InvalidArgumentError, match="same first dimension"):
        list(Dataset.from_tensors((np.zeros(3), np.zeros(2))).unbatch())


# --- shuffle -------------------------------------------------------------------------------------------------------
def test_shuffle_is_a_permutation_through_a_bounded_buffer():
    n, buffer = 200, 10
    order = _ints(Dataset.range(n).shuffle(buffer, seed=3))
    assert sorted(order) == list(range(n)) and order != list(range(n))
    for position, value in enumerate(order):  # output k comes from the first k + buffer inputs
        assert value < position + buffer
    assert _ints(Dataset.range(20).shuffle(1, seed=3)) == list(range(20))  # a buffer of one changes nothing


def test_shuffle_with_a_full_buffer_is_roughly_uniform():
    counts = np.zeros((4, 4))
    ds = Dataset.range(4).shuffle(4, seed=11)
    for _ in range(400):
        for position, value in enumerate(_ints(ds)):
            counts[position, value] += 1
    assert np.all(np.abs(counts - 100) < 40), counts  # each value in each place about 1/4 of the time


def test_shuffle_seeds_repeat_and_reshuffle_each_iteration():
    a, b = Dataset.range(50).shuffle(50, seed=7), Dataset.range(50).shuffle(50, seed=7)
    first, second = _ints(a), _ints(a)
    assert first != second  # a new order per iteration (epoch)
    assert _ints(b) == first and _ints(b) == second  # the same seed: the same sequence of orders
    assert _ints(Dataset.range(50).shuffle(50, seed=8)) != first
    fixed = Dataset.range(50).shuffle(50, seed=7, reshuffle_each_iteration=False)
    assert _ints(fixed) == _ints(fixed)


def test_shuffle_without_a_seed_follows_the_global_seed():
    def run():
        tf.random.set_seed(1234)
        ds = Dataset.range(30).shuffle(30)
        return _ints(ds), _ints(ds), _ints(Dataset.range(30).shuffle(30))
    one, two = run(), run()
    assert one == two  # the program repeats
    assert one[0] != one[1] and one[0] != one[2]  # but iterations and datasets differ
    tf.random.set_seed(None)
    assert _ints(Dataset.range(30).shuffle(30)) != _ints(Dataset.range(30).shuffle(30))


def test_shuffle_then_repeat_reshuffles_each_repetition():
    out = _ints(Dataset.range(20).shuffle(20, seed=1).repeat(2))
    assert sorted(out[:20]) == sorted(out[20:]) == list(range(20)) and out[:20] != out[20:]


def test_shuffle_bad_arguments():
    with pytest.raises(ValueError, match="`buffer_size` must be >= 1, got 0"):
        Dataset.range(3).shuffle(0)
    with pytest.raises(TypeError, match="`seed` must be an int, got 1.5"):
        Dataset.range(3).shuffle(3, seed=1.5)


# --- map / filter --------------------------------------------------------------------------------------------------
def test_map_passes_tuple_components_as_arguments_and_dicts_whole():
    ds = Dataset.from_tensor_slices((np.arange(4.0), np.arange(4)))
    seen = []

    def fn(x, y):
        seen.append((type(x), x.device))
        return x * 2.0, [y + 1, y - 1]  # a list becomes a tuple
    out = list(ds.map(fn).as_numpy_iterator())
    assert [(float(a), int(b), int(c)) for a, (b, c) in out] == [(2.0 * i, i + 1, i - 1) for i in range(4)]
    assert all(t is tf.Tensor and d.endswith("CPU:0") for t, d in seen)
    dicts = Dataset.from_tensor_slices({"a": np.arange(3)}).map(lambda d: d["a"] + 10)
    assert _ints(dicts) == [10, 11, 12]


@pytest.mark.parametrize("num_parallel_calls", [2, tf.data.AUTOTUNE])
def test_parallel_map_keeps_the_order_and_matches_the_serial_map(num_parallel_calls):
    def slow_square(x):
        value = int(x)
        threading.Event().wait(0.002 * (value % 3))  # later elements may finish first
        return x * x
    serial = _ints(Dataset.range(30).map(slow_square))
    assert serial == [i * i for i in range(30)]
    assert _ints(Dataset.range(30).map(slow_square, num_parallel_calls=num_parallel_calls)) == serial


def test_parallel_map_runs_calls_concurrently():
    barrier = threading.Barrier(2, timeout=10)  # two calls must be in flight at once, or this raises

    def meet(x):
        barrier.wait()
        return x
    assert _ints(Dataset.range(4).map(meet, num_parallel_calls=2)) == [0, 1, 2, 3]


def test_map_element_spec_comes_from_the_function():
    ds = Dataset.from_tensor_slices(np.zeros((10, 3), np.float32)).batch(4)
    mapped = ds.map(lambda x: (tf.reduce_sum(x, axis=1), tf.cast(x, tf.int32)))
    assert mapped.element_spec == (TensorSpec((None,), tf.float32), TensorSpec((None, 3), tf.int32))
    assert ds.map(lambda x: x).element_spec == ds.element_spec


def test_map_and_filter_bad_arguments():
    with pytest.raises(TypeError, match="`map_func` must be callable"):
        Dataset.range(3).map(5)
    with pytest.raises(ValueError, match="`num_parallel_calls` must be >= 1 \\(or -1\\), got 0"):
        Dataset.range(3).map(lambda x: x, num_parallel_calls=0)
    with pytest.raises(TypeError, match="`predicate` must be callable"):
        Dataset.range(3).filter(None)
    with pytest.raises(ValueError, match="scalar boolean tensor, got dtype int64"):
        list(Dataset.range(3).filter(lambda x: x))


def test_filter_matches_python():
    assert _ints(Dataset.range(20).filter(lambda x: x % 3 == 0)) == [i for i in range(20) if i % 3 == 0]
    assert _ints(Dataset.range(5).filter(lambda x: True)) == list(range(5))


# --- repeat / take / skip / concatenate / enumerate -----------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 1, 3])
def test_repeat_take_skip_match_itertools(count):
    base = list(range(5))
    assert _ints(Dataset.range(5).repeat(count)) == base * count
    assert _ints(Dataset.range(5).take(count)) == base[:count]
    assert _ints(Dataset.range(5).skip(count)) == base[count:]
    assert _ints(Dataset.range(5).repeat().take(12)) == list(itertools.islice(itertools.cycle(base), 12))
    assert _ints(Dataset.range(5).take(-1)) == base and _ints(Dataset.range(5).skip(-1)) == []


def test_repeat_of_an_empty_dataset_ends():
    assert _ints(Dataset.range(0).repeat()) == []


def test_concatenate_and_enumerate():
    assert _ints(Dataset.range(3).concatenate(Dataset.range(10, 12))) == [0, 1, 2, 10, 11]
    pairs = [(int(i), int(v)) for i, v in Dataset.range(5, 8).enumerate(start=1).as_numpy_iterator()]
    assert pairs == [(1, 5), (2, 6), (3, 7)]
    with pytest.raises(TypeError, match="differ in structure or dtype"):
        Dataset.range(3).concatenate(Dataset.from_tensor_slices(np.zeros(3)))


# --- cache ---------------------------------------------------------------------------------------------------------
def _counting(n):
    calls = []

    def fn(x):
        calls.append(int(x))
        return x * 10
    return Dataset.range(n).map(fn), calls


def test_cache_in_memory_runs_the_pipeline_once():
    ds, calls = _counting(5)
    cached = ds.cache()
    calls.clear()
    assert _ints(cached) == _ints(cached) == [0, 10, 20, 30, 40]
    assert calls == [0, 1, 2, 3, 4]


def test_cache_in_memory_ignores_an_interrupted_iteration():
    ds, calls = _counting(5)
    cached = ds.cache()
    calls.clear()
    assert _ints(cached.take(2)) == [0, 10]
    assert _ints(cached) == [0, 10, 20, 30, 40] and _ints(cached) == [0, 10, 20, 30, 40]
    assert calls == [0, 1, 0, 1, 2, 3, 4]


def test_cache_to_a_file_round_trips_structures_and_is_atomic(tmp_path):
    path = tmp_path / "cache.npz"
    source = Dataset.from_tensor_slices((np.arange(6.0).reshape(3, 2), {"s": ["a", "bc", "d"], "i": [1, 2, 3]}))
    ds = source.cache(str(path))
    list(ds.take(1))
    assert not path.exists() and os.listdir(tmp_path) == []  # an interrupted iteration leaves nothing
    expected = list(source.as_numpy_iterator())
    assert _same(list(ds.as_numpy_iterator()), expected) and path.exists()
    replay = Dataset.range(1).map(lambda x: (x, {"s": "never", "i": 0})).cache(str(path))  # reads the file
    assert _same(list(replay.as_numpy_iterator()), expected)
    with np.load(path) as archive:  # a plain .npz: members "<element>.<component>"
        np.testing.assert_array_equal(archive["2.0"], [4.0, 5.0])
    with pytest.raises(TypeError, match="`filename` must be a str path"):
        source.cache(3)


def _same(a, b):
    return [repr(x) for x in a] == [repr(x) for x in b]


# --- cardinality, len, iteration ------------------------------------------------------------------------------------
def test_cardinality_of_each_transformation():
    r = Dataset.range(10)
    gen = Dataset.from_generator(lambda: iter(range(3)), output_signature=TensorSpec((), tf.int64))
    cases = {
        "batch": (r.batch(3), 4), "batch_drop": (r.batch(3, drop_remainder=True), 3), "shuffle": (r.shuffle(4), 10),
        "map": (r.map(lambda x: x), 10), "filter": (r.filter(lambda x: x > 2), UNK), "repeat": (r.repeat(3), 30),
        "repeat_forever": (r.repeat(), INF), "filter_repeat": (r.filter(lambda x: x > 2).repeat(), INF),
        "repeat_forever_take": (r.repeat().take(7), 7), "take": (r.take(4), 4),
        "take_more": (r.take(40), 10), "skip": (r.skip(4), 6), "skip_more": (r.skip(40), 0),
        "cache": (r.cache(), 10), "prefetch": (r.prefetch(2), 10), "generator": (gen, UNK),
        "generator_take": (gen.take(2), UNK), "infinite_batch": (r.repeat().batch(2), INF),
        "zip": (Dataset.zip(r, r.take(3)), 3), "concatenate": (r.concatenate(r), 20),
        "unbatch": (r.batch(2, drop_remainder=True).unbatch(), 10), "unbatch_unknown": (r.batch(3).unbatch(), UNK),
    }
    got = {name: int(ds.cardinality()) for name, (ds, _) in cases.items()}
    assert got == {name: n for name, (_, n) in cases.items()}
    assert tf.data.experimental.cardinality(r.take(2)) == 2


def test_len_raises_type_error_when_infinite_or_unknown():
    assert len(Dataset.range(4).batch(3)) == 2
    with pytest.raises(TypeError, match="The dataset is infinite."):
        len(Dataset.range(4).repeat())
    with pytest.raises(TypeError, match="The dataset length is unknown."):
        len(Dataset.range(4).filter(lambda x: x > 1))
    assert bool(Dataset.range(0).repeat())  # truthiness never asks for the length


def test_datasets_are_reiterable_and_iterators_are_independent():
    ds = Dataset.range(4).map(lambda x: x + 1)
    it1, it2 = iter(ds), iter(ds)
    assert [int(next(it1)), int(next(it1)), int(it2.get_next())] == [1, 2, 1]
    assert [int(v) for v in it1] == [3, 4]
    with pytest.raises(StopIteration):
        next(it1)
    assert _ints(ds) == [1, 2, 3, 4] and it1.element_spec == TensorSpec((), tf.int64)


def test_transformations_return_new_datasets():
    ds = Dataset.range(6)
    ds.batch(2), ds.shuffle(3), ds.map(lambda x: x), ds.take(1), ds.prefetch(1)
    assert _ints(ds) == list(range(6))
