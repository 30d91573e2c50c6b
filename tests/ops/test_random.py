"""cuflow.random: Philox known answers, seed semantics, distributions, bad input, and CPU/GPU sameness."""
import math

import numpy as np
import pytest

import cuflow as tf
import cuflow.random as tfr
from cuflow import errors
from cuflow.ops import random as ops_random
from cuflow.ops.array import _current_xp


@pytest.fixture(autouse=True)
def _unseeded_afterwards():
    yield
    tfr.set_seed(None)


# --- Philox4x32-10 against Random123's kat_vectors -----------------------------------------------------------------
KATS = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("counter, key, expected", KATS)
def test_philox_known_answers(device, counter, key, expected):
    xp = _current_xp()
    words = [xp.full(3, w, dtype=xp.uint64) for w in counter]
    out = ops_random.philox4x32(words, key)
    for got, want in zip(out, expected):
        assert got.dtype == np.uint64
        assert np.asarray(got.get() if hasattr(got, "get") else got).tolist() == [want] * 3


def test_stream_counter_carries_into_the_high_words():
    # blocks counter, counter+1, ... with the low 64 bits wrapping: the third block has counter 2**64
    counter = (5 << 96) | (2 ** 64 - 2)
    got = ops_random._philox_words(np, 0x1234_5678_9ABC_DEF0, counter, 16)
    key = (0x9ABCDEF0, 0x12345678)
    for block, value in enumerate(counter + i for i in range(4)):
        words = [np.array([(value >> s) & 0xFFFFFFFF], dtype=np.uint64) for s in (0, 32, 64, 96)]
        want = [int(w[0]) for w in ops_random.philox4x32(words, key)]
        assert got[4 * block:4 * block + 4].tolist() == want


# --- seeds ---------------------------------------------------------------------------------------------------------
def test_set_seed_repeats_the_program_and_calls_differ():
    def program():
        return [tfr.normal([50]).numpy(), tfr.uniform([50]).numpy(), tfr.normal([50], seed=3).numpy(),
                tfr.normal([50], seed=3).numpy()]

    tfr.set_seed(1234)
    first = program()
    tfr.set_seed(1234)
    second = program()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], tfr.normal([50]).numpy())  # the next call moves on
    assert not np.array_equal(first[2], first[3])                  # so does a repeated op seed
    tfr.set_seed(4321)
    assert not np.array_equal(first[0], tfr.normal([50]).numpy())


def test_op_seeds_select_different_streams():
    tfr.set_seed(7)
    a = tfr.uniform([100], seed=1).numpy()
    tfr.set_seed(7)
    b = tfr.uniform([100], seed=2).numpy()
    tfr.set_seed(7)
    c = tfr.uniform([100]).numpy()
    assert not np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(b, c)


def test_op_seed_alone_is_reproducible_and_unseeded_is_not():
    tfr.set_seed(None)
    a = tfr.normal([20], seed=11).numpy()
    tfr.set_seed(None)
    np.testing.assert_array_equal(a, tfr.normal([20], seed=11).numpy())
    x = tfr.normal([20]).numpy()
    tfr.set_seed(None)
    assert not np.array_equal(x, tfr.normal([20]).numpy())


def test_stateless_is_a_pure_function_of_the_seed():
    a = tfr.stateless_normal([30], seed=[1, 2]).numpy()
    tfr.normal([1000])
    np.testing.assert_array_equal(a, tfr.stateless_normal([30], seed=[1, 2]).numpy())
    assert not np.array_equal(a, tfr.stateless_normal([30], seed=[2, 1]).numpy())
    u = tfr.stateless_uniform([30], seed=(5, 6), minval=-1, maxval=1).numpy()
    np.testing.assert_array_equal(u, tfr.stateless_uniform([30], seed=(5, 6), minval=-1, maxval=1).numpy())
    assert np.abs(tfr.stateless_truncated_normal([500], seed=[0, 0]).numpy()).max() <= 2


def test_generator_from_seed():
    g1, g2 = tfr.Generator.from_seed(9), tfr.Generator.from_seed(9)
    np.testing.assert_array_equal(g1.normal([10]).numpy(), g2.normal([10]).numpy())
    assert g1.state == g2.state and g1.state[1] > 0
    assert not np.array_equal(g1.uniform([10]).numpy(), tfr.Generator.from_seed(10).uniform([10]).numpy())
    assert tfr.Generator.from_non_deterministic_state().truncated_normal([4]).shape == (4,)


# --- distributions -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_normal_moments(dtype):
    x = np.asarray(tfr.normal([100_000], mean=3.0, stddev=2.0, dtype=dtype, seed=1), dtype=np.float64)
    assert abs(x.mean() - 3.0) < 0.03 and abs(x.std() - 2.0) < 0.03
    z = (x - 3.0) / 2.0
    assert abs(np.mean(z ** 3)) < 0.05 and abs(np.mean(z ** 4) - 3.0) < 0.1  # skew 0, kurtosis 3
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.01


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_uniform_moments_and_range(dtype):
    x = np.asarray(tfr.uniform([100_000], dtype=dtype, seed=2), dtype=np.float64)
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.005 and abs(x.var() - 1 / 12) < 0.002
    y = tfr.uniform([10_000], minval=-3.0, maxval=-1.0, dtype=dtype, seed=2).numpy()
    assert y.min() >= -3.0 and y.max() < -1.0


def test_float64_uses_53_bits():
    x = tfr.uniform([10_000], dtype=tf.float64, seed=4).numpy()
    assert np.any((x * 2.0 ** 32) % 1 != 0)  # not just 32 bits scaled


def test_truncated_normal_within_two_stddev():
    x = np.asarray(tfr.truncated_normal([100_000], mean=1.0, stddev=0.5, seed=3), dtype=np.float64)
    assert np.abs(x - 1.0).max() <= 1.0 + 1e-6
    assert abs(x.mean() - 1.0) < 0.01
    assert abs(x.std() - 0.5 * 0.8796) < 0.01  # the standard normal truncated to [-2, 2] has std 0.8796


@pytest.mark.parametrize("dtype, low, high", [(tf.int32, 0, 10), (tf.int64, -5, 3), (tf.uint8, 250, 256),
                                               (tf.int8, -128, 128)])
def test_int_uniform_covers_half_open_range(dtype, low, high):
    x = tfr.uniform([20_000], minval=low, maxval=high, dtype=dtype, seed=5).numpy()
    assert x.dtype == dtype.numpy_dtype
    counts = np.bincount(x.astype(np.int64) - low, minlength=high - low)
    assert len(counts) == high - low  # maxval is never drawn
    expected = 20_000 / (high - low)
    chi2, df = np.sum((counts - expected) ** 2 / expected), high - low - 1
    assert chi2 < df + 5 * math.sqrt(2 * df)  # five standard deviations of the chi-square statistic


def test_int_uniform_full_int64_range():
    x = tfr.uniform([1000], minval=-2 ** 63, maxval=2 ** 63 - 1, dtype=tf.int64, seed=6).numpy()
    assert (x < 0).mean() > 0.4 and (x > 0).mean() > 0.4


def test_shuffle_is_a_permutation_of_rows(device):
    rows = np.arange(200 * 3).reshape(200, 3)
    out = tfr.shuffle(tf.constant(rows), seed=1).numpy()
    assert not np.array_equal(out, rows)
    np.testing.assert_array_equal(out[np.argsort(out[:, 0])], rows)
    tfr.set_seed(2)
    a = tfr.shuffle(tf.constant(rows)).numpy()
    tfr.set_seed(2)
    np.testing.assert_array_equal(a, tfr.shuffle(tf.constant(rows)).numpy())


def test_categorical_follows_softmax(device):
    logits = tf.constant([[0.0, 1.0, 2.0, -np.inf], [5.0, 0.0, 0.0, 0.0]])
    out = tfr.categorical(logits, 20_000, seed=1)
    assert out.shape == (2, 20_000) and out.dtype == tf.int64 and out.device.endswith(device[1:])
    x = out.numpy()
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(np.bincount(x[0], minlength=4)[:3] / 20_000, p, atol=0.015)
    assert not np.any(x[0] == 3)
    assert abs(np.mean(x[1] == 0) - math.exp(5) / (math.exp(5) + 3)) < 0.01
    assert tfr.categorical(logits, 3, dtype=tf.int32).dtype == tf.int32


# --- dtypes, shapes, devices ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [tfr.normal, tfr.uniform, tfr.truncated_normal])
@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64])
def test_result_dtype_shape_and_device(device, fn, dtype):
    out = fn([2, 0, 3] if fn is tfr.uniform else (4, 5), dtype=dtype, seed=1)
    assert out.dtype == dtype
    assert out.shape == ((2, 0, 3) if fn is tfr.uniform else (4, 5))
    assert out.device.endswith(device[1:])
    assert np.all(np.isfinite(out.numpy()))


def test_bfloat16_is_drawn_in_float32_and_rounded():
    pytest.importorskip("ml_dtypes")
    with tf.device("/CPU:0"):
        out = tfr.normal([100], dtype=tf.bfloat16, seed=1)
        assert out.dtype == tf.bfloat16
        tfr.set_seed(None)
        ref = tfr.normal([100], dtype=tf.float32, seed=1).numpy()
    np.testing.assert_array_equal(out.numpy(), ref.astype(tf.bfloat16.numpy_dtype))


def test_tensor_parameters_broadcast(device):
    out = tfr.normal([4, 3], mean=tf.constant([0.0, 10.0, 100.0]), stddev=0.0, seed=1).numpy()
    np.testing.assert_array_equal(out, np.tile([0.0, 10.0, 100.0], (4, 1)))
    with pytest.raises(errors.InvalidArgumentError, match="shape"):
        tfr.normal([3], mean=tf.zeros([2, 3]))


# --- bad input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [tfr.normal, tfr.uniform, tfr.truncated_normal])
def test_negative_dimension_is_rejected(fn):
    with pytest.raises(ValueError, match="negative"):
        fn([2, -1])
    with pytest.raises(TypeError, match="shape"):
        fn([2.5])


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="maxval"):
        tfr.uniform([3], dtype=tf.int32)
    with pytest.raises(errors.InvalidArgumentError, match="minval < maxval"):
        tfr.uniform([3], minval=5, maxval=5, dtype=tf.int32)
    with pytest.raises(errors.InvalidArgumentError, match="int8"):
        tfr.uniform([3], minval=0, maxval=1000, dtype=tf.int8)
    with pytest.raises(TypeError, match="minval"):
        tfr.uniform([3], minval=0.5, maxval=4, dtype=tf.int32)
    with pytest.raises(TypeError, match="floating"):
        tfr.normal([3], dtype=tf.int32)
    with pytest.raises(TypeError, match="seed"):
        tfr.set_seed("42")
    with pytest.raises(TypeError, match="seed"):
        tfr.normal([3], seed=1.5)
    with pytest.raises(ValueError, match="scalar"):
        tfr.shuffle(tf.constant(3))
    with pytest.raises(ValueError, match="num_classes"):
        tfr.categorical([1.0, 2.0], 3)
    with pytest.raises(ValueError, match="num_samples"):
        tfr.categorical([[1.0, 2.0]], -1)
    with pytest.raises(TypeError, match="int32 or int64"):
        tfr.categorical([[1.0, 2.0]], 1, dtype=tf.float32)
    with pytest.raises(ValueError, match="pair of ints"):
        tfr.stateless_normal([3], seed=[1, 2, 3])


# --- the same numbers on the CPU and the GPU -----------------------------------------------------------------------
def _draws():
    rows = tf.constant(np.arange(1000 * 2).reshape(1000, 2))
    logits = tf.constant(np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(2, 4))
    return {
        "int32": tfr.uniform([5000], minval=-7, maxval=1000, dtype=tf.int32),
        "int64": tfr.uniform([5000], minval=-2 ** 40, maxval=2 ** 50, dtype=tf.int64, seed=1),
        "uniform32": tfr.uniform([5000], minval=-2.0, maxval=3.0),
        "uniform64": tfr.uniform([5000], dtype=tf.float64, seed=2),
        "normal32": tfr.normal([5001], mean=1.0, stddev=3.0),
        "normal64": tfr.normal([5001], dtype=tf.float64, seed=3),
        "truncated": tfr.truncated_normal([20_000], seed=4),
        "shuffle": tfr.shuffle(rows, seed=5),
        "categorical": tfr.categorical(logits, 500),
        "stateless": tfr.stateless_normal([100], seed=[3, 4]),
    }


def test_same_numbers_as_on_the_cpu(device):
    tfr.set_seed(2024)
    with tf.device("/CPU:0"):
        cpu = {k: v.numpy() for k, v in _draws().items()}
    tfr.set_seed(2024)
    here = {k: v.numpy() for k, v in _draws().items()}
    for name in ("int32", "int64", "uniform32", "uniform64", "shuffle", "categorical"):
        np.testing.assert_array_equal(here[name], cpu[name], err_msg=name)  # bitwise
    for name in ("normal32", "truncated", "stateless"):  # float32 log/sin/cos may differ in the last ulp
        np.testing.assert_allclose(here[name], cpu[name], rtol=2e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(here["normal64"], cpu["normal64"], rtol=1e-14, atol=1e-14)
