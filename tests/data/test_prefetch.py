"""prefetch: a background thread that keeps order, surfaces errors, stops when the consumer does, and stages
batches on the GPU."""
import gc
import threading
import time
import traceback

import numpy as np
import pytest

import cuflow as tf
from cuflow.data import Dataset


def _data_threads():
    return [t for t in threading.enumerate() if t.name.startswith("cuflow.data")]


def _wait_for_no_data_threads(timeout=5.0):
    """The pipeline threads still alive after up to ``timeout`` seconds (threads started meanwhile count too)."""
    deadline = time.monotonic() + timeout
    while _data_threads() and time.monotonic() < deadline:
        for thread in _data_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
    return _data_threads()


def _slow_source(n, seconds=0.005, produced=None):
    def gen():
        for i in range(n):
            threading.Event().wait(seconds)
            if produced is not None:
                produced.append(i)
            yield i
    return Dataset.from_generator(gen, output_signature=tf.TensorSpec((), tf.int64))


def test_prefetch_of_a_slow_producer_keeps_every_element_in_order():
    ds = _slow_source(20).prefetch(3)
    assert [int(v) for v in ds] == list(range(20))
    assert [int(v) for v in ds.as_numpy_iterator()] == list(range(20))  # and again: re-iterable
    assert _wait_for_no_data_threads() == []


def test_prefetch_runs_ahead_of_the_consumer_by_at_most_its_buffer():
    produced = []
    it = iter(_slow_source(50, seconds=0.0, produced=produced).prefetch(4))
    next(it)
    for _ in range(100):  # let the thread fill the queue
        if len(produced) >= 6:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.05)
    assert 2 <= len(produced) <= 1 + 4 + 1  # the consumed one, the buffer, the one waiting for room
    it.close()
    assert _wait_for_no_data_threads() == []


@pytest.mark.parametrize("stop", ["break", "close", "del"])
def test_a_consumer_that_stops_early_leaves_no_thread_running(stop):
    ds = _slow_source(1000, seconds=0.001).map(lambda x: x + 1, num_parallel_calls=2).prefetch(2).prefetch(1)
    if stop == "break":
        for i, _ in enumerate(ds):
            if i == 3:
                break
    else:
        it = iter(ds)
        next(it)
        if stop == "close":
            it.close()
        del it
        gc.collect()
    assert _wait_for_no_data_threads() == []


def test_a_producer_error_is_raised_in_the_consumer_with_its_type_and_traceback():
    def parse(x):
        if int(x) == 3:
            raise KeyError(f"bad record {int(x)}")
        return x
    ds = Dataset.range(10).map(parse).prefetch(2)
    seen = []
    with pytest.raises(KeyError, match="bad record 3") as info:
        for v in ds:
            seen.append(int(v))
    assert seen == [0, 1, 2]
    assert "in parse" in "".join(traceback.format_tb(info.value.__traceback__))
    assert _wait_for_no_data_threads() == []


def test_a_parallel_map_error_surfaces_through_prefetch():
    def fail(x):
        raise ZeroDivisionError("in map")
    with pytest.raises(ZeroDivisionError, match="in map"):
        list(Dataset.range(5).map(fail, num_parallel_calls=2).prefetch(1))
    assert _wait_for_no_data_threads() == []


def test_prefetch_bad_buffer_size():
    with pytest.raises(ValueError, match="`buffer_size` must be >= 1 \\(or -1\\), got 0"):
        Dataset.range(3).prefetch(0)
    with pytest.raises(TypeError, match="`buffer_size` must be an int, got '2'"):
        Dataset.range(3).prefetch("2")


def test_prefetch_stages_batches_on_the_current_device(device, rng):
    X, y = rng.normal(size=(10, 3)).astype(np.float32), np.arange(10)
    ds = Dataset.from_tensor_slices((X, y)).batch(4)
    for x, _ in ds:  # without prefetch, elements stay on the host
        assert x.device.endswith("CPU:0")
    batches = list(ds.prefetch(tf.data.AUTOTUNE))
    assert len(batches) == 3
    for (x, labels), start in zip(batches, (0, 4, 8)):
        assert x.device.endswith(device[1:]) and labels.device.endswith(device[1:])
        np.testing.assert_array_equal(x.numpy(), X[start:start + 4])
        np.testing.assert_array_equal(labels.numpy(), y[start:start + 4])
    doubled = ds.prefetch(1).map(lambda x, labels: x * 2.0)  # ops after prefetch run where the data is
    first = next(iter(doubled))
    assert first.device.endswith(device[1:])
    np.testing.assert_allclose(first.numpy(), 2 * X[:4])
    assert _wait_for_no_data_threads() == []


@pytest.mark.gpu
def test_prefetch_to_device_places_elements_on_the_named_device():
    ds = Dataset.range(3).apply(tf.data.experimental.prefetch_to_device("/GPU:0"))
    with tf.device("/CPU:0"):
        values = list(ds)
    assert all(v.device.endswith("GPU:0") for v in values) and [int(v) for v in values] == [0, 1, 2]


def test_prefetch_to_a_missing_gpu_is_a_clear_error():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present")
    with pytest.raises(tf.errors.UnavailableError, match="no GPU is available"):
        tf.data.experimental.prefetch_to_device("/GPU:0")
