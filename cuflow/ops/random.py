"""Random numbers that are the same on the CPU and the GPU: Philox4x32-10, written once against ``xp``.

Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the generator behind cuRAND, JAX
and TensorFlow's stateless ops) is *counter-based*: block ``i`` of a stream is the pure function
``philox(key, counter + i)``, four 32-bit words. So a stream's whole state is two Python ints, a 64-bit key and
a 128-bit counter (:class:`Generator`). A draw takes the next blocks and moves the counter past them. On the CPU it
builds ``counter + arange(blocks)`` and runs the ten rounds as uint64 multiply / shift / xor in NumPy; on the GPU
uniform, normal and truncated normal floats come from one launch of ``cuflow/kernels/philox.cu`` (scale and shift
included), which follows the NumPy code here bit for bit (integers, shuffles and the stateless key derivation run
the NumPy code on CuPy arrays). No array crosses between host and device, uniform floats and integers are bitwise
the same on both devices, and normals differ at most by the last-ulp differences of ``log``/``sin``/``cos``.

What a block makes (``philox.cu`` documents the same): 4 uniform float32 (24 bits of one word each) or 2 float64
(53 bits of two words); Box-Muller turns each pair of uniforms ``(u_2p, u_2p+1)`` of a block into the normals
``2p`` (cos) and ``2p + 1`` (sin). Truncated normal value ``i`` owns block ``i``: the first of its normals within
2 standard deviations, else (probability 0.0455 ** 4 in float32) the same with ``2**96 * round`` added to the counter.

Seeds follow TensorFlow (``tf.random.set_seed``): a call's stream is chosen by (global seed, op seed), and every
call moves that stream on, so two calls differ while re-running a program after ``set_seed`` repeats it:

- global and op seed given: the stream of (global, op).
- only the global seed: one shared stream of (global, "no op seed").
- only the op seed: the global seed is TensorFlow's default, 87654321 (so the result is still reproducible).
- neither: the global seed is drawn from ``os.urandom`` once (again after ``set_seed(None)``).

Keys are derived from seeds by Philox itself, with a different domain word for op seeds, seedless calls,
``Generator.from_seed`` and the stateless functions, so distinct seeds share a stream only by a 2**-64 accident.

The generator must not be Python's ``random`` module: this file imports ``os`` only, and ``cuflow/random.py`` is the
``tf.random`` namespace.
"""
import contextlib
import math
import os
import threading

import numpy as np

from .. import dtypes, errors
from .. import devices as _device
from ..tensor import Tensor, constant
from .array import _current_xp
from .base import array_of

__all__ = [
    "Generator", "set_seed", "normal", "uniform", "truncated_normal", "shuffle", "categorical",
    "stateless_normal", "stateless_uniform", "stateless_truncated_normal", "philox4x32",
]

# --- Philox4x32-10 -------------------------------------------------------------------------------------------------
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85                       # Weyl key increments (golden ratio, sqrt(3) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_TWO64 = 1 << 64


def philox4x32(counter, key, rounds=10):
    """The Philox4x32 block function on arrays (NumPy or CuPy) or NumPy scalars.

    Args:
        counter: four uint64 arrays holding the counter's 32-bit words, least significant first.
        key: two Python ints, the key's 32-bit words.
        rounds: 10 for Philox4x32-10.

    Returns:
        Four uint64 arrays holding the output's 32-bit words.
    """
    c0, c1, c2, c3 = counter
    for r in range(rounds):
        # mulhi/mullo of two 32-bit words through one exact 64-bit product: both NumPy and CuPy have uint64.
        k0 = np.uint64((key[0] + r * _W0) & 0xFFFFFFFF)
        k1 = np.uint64((key[1] + r * _W1) & 0xFFFFFFFF)
        p0 = c0 * _M0
        p1 = c2 * _M1
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32
    return c0, c1, c2, c3


def _philox_blocks(xp, key, counter, index, attempt=0):
    """The four words (uint64 arrays) of blocks ``counter + index`` (a uint64 array), plus ``attempt * 2**96``."""
    low, high = counter % _TWO64, counter >> 64
    index = index + np.uint64(low)
    carry = (index < np.uint64(low)).astype(xp.uint64)  # the low 64 bits wrapped: carry into the high ones
    high = carry + np.uint64((high + (attempt << 32)) % _TWO64)
    return philox4x32((index & _MASK32, index >> _SHIFT32, high & _MASK32, high >> _SHIFT32),
                      (key & 0xFFFFFFFF, key >> 32))


def _philox_words(xp, key, counter, count):
    """``count`` random 32-bit words (in a uint64 array) from blocks ``counter, counter + 1, ...``."""
    words = _philox_blocks(xp, key, counter, xp.arange(-(-count // 4), dtype=xp.uint64))
    return xp.stack(words, axis=-1).reshape(-1)[:count]


_DOMAIN_OP_SEED, _DOMAIN_NO_OP_SEED, _DOMAIN_GENERATOR, _DOMAIN_STATELESS = 1, 2, 3, 4
_DEFAULT_GLOBAL_SEED = 87654321  # TensorFlow's DEFAULT_GRAPH_SEED, used when only an op seed is given


def _derive_key(a, b, domain):
    """A 64-bit Philox key from two seeds (any ints, taken modulo 2**64) and a domain number."""
    a, b = a % _TWO64, b % _TWO64
    words = [np.array([w], dtype=np.uint64) for w in (a & 0xFFFFFFFF, a >> 32, b & 0xFFFFFFFF, b >> 32)]
    out = philox4x32(words, (domain, 0x243F6A88))
    return int(out[0][0]) | int(out[1][0]) << 32


# --- the state: a key and a counter --------------------------------------------------------------------------------
class Generator:
    """A random stream: a Philox key and a counter, both Python ints (``tf.random.Generator``).

    Every draw takes the next counters, so two draws differ; two Generators made ``from_seed`` with the same seed
    give the same numbers, on either device. Draws land on the current device.

    This class is the one place random state lives: every draw takes its blocks through :meth:`reserve`, so keeping
    the counter on the device (for CUDA-graph capture) changes that method and the kernels' counter argument only.

    Example:

    >>> import cuflow as tf
    >>> g = tf.random.Generator.from_seed(1)
    >>> g.normal(shape=(2, 3)).shape
    TensorShape([2, 3])
    """

    def __init__(self, key, counter=0):
        self.key = int(key) % _TWO64
        self.counter = int(counter) % (1 << 128)
        self._lock = threading.Lock()

    @classmethod
    def from_seed(cls, seed, alg=None):
        """A generator whose numbers are fixed by ``seed`` (an int)."""
        return cls(_derive_key(_int_seed(seed, "Generator.from_seed"), 0, _DOMAIN_GENERATOR))

    @classmethod
    def from_non_deterministic_state(cls, alg=None):
        """A generator seeded from ``os.urandom``."""
        return cls(int.from_bytes(os.urandom(8), "little"))

    @property
    def state(self):
        """``(key, counter)`` as Python ints."""
        return self.key, self.counter

    def __repr__(self):
        return f"<cuflow.random.Generator key={self.key:#018x} counter={self.counter}>"

    def reserve(self, blocks):
        """Takes the next ``blocks`` Philox blocks: returns the counter of the first and moves the counter on."""
        with self._lock:
            counter = self.counter
            self.counter = (counter + blocks) % (1 << 128)
        return counter

    def words(self, xp, count):
        """The next ``count`` random 32-bit words as a uint64 array of module ``xp``; moves the counter on."""
        return _philox_words(xp, self.key, self.reserve(-(-count // 4)), count)

    def words64(self, xp, count):
        """The next ``count`` random 64-bit integers (two words each) as a uint64 array of module ``xp``."""
        words = self.words(xp, 2 * count)
        return (words[0::2] << _SHIFT32) | words[1::2]

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, name=None):
        """See :func:`cuflow.random.normal`."""
        shape, dtype = _shape(shape, "normal"), _float_dtype(dtype, "normal")
        xp = _current_xp()
        scale, shift, rest = _split_affine(stddev, mean)
        z = _standard_normal(xp, self, _count(shape), _compute_dtype(dtype), scale, shift)
        return _finish(xp, z, shape, dtype, *rest, "normal")

    def truncated_normal(self, shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, name=None):
        """See :func:`cuflow.random.truncated_normal`."""
        shape, dtype = _shape(shape, "truncated_normal"), _float_dtype(dtype, "truncated_normal")
        xp = _current_xp()
        scale, shift, rest = _split_affine(stddev, mean)
        z = _truncated_standard_normal(xp, self, _count(shape), _compute_dtype(dtype), scale, shift)
        return _finish(xp, z, shape, dtype, *rest, "truncated_normal")

    def uniform(self, shape, minval=0, maxval=None, dtype=dtypes.float32, name=None):
        """See :func:`cuflow.random.uniform`."""
        shape = _shape(shape, "uniform")
        dtype = dtypes.as_dtype(dtype)
        xp = _current_xp()
        if dtype.is_integer:
            return Tensor(_uniform_ints(xp, self, shape, minval, maxval, dtype))
        dtype = _float_dtype(dtype, "uniform")
        if maxval is None:
            maxval = 1.0
        if not isinstance(minval, Tensor) and not isinstance(maxval, Tensor):
            span = float(maxval) - float(minval)
        else:
            span = constant(maxval, dtype=dtype) - constant(minval, dtype=dtype)
        scale, shift, rest = _split_affine(span, minval)
        u = _unit_floats(xp, self, _count(shape), _compute_dtype(dtype), scale=scale, shift=shift)
        return _finish(xp, u, shape, dtype, *rest, "uniform")


# --- turning words into numbers ------------------------------------------------------------------------------------
def _kernels(xp):
    """cuflow.kernels.fused (philox.cu's launchers) when drawing on the GPU, else None."""
    if xp is np:
        return None
    from ..kernels import fused
    return fused


def _split_affine(scale, shift):
    """``(scale, shift, rest)``: Python-number parameters are applied where the values are made (in the kernel on the
    GPU), ``rest`` is what :func:`_finish` still applies (tensor parameters, which broadcast)."""
    if isinstance(scale, Tensor) or isinstance(shift, Tensor) or np.ndim(scale) or np.ndim(shift):
        return 1.0, 0.0, (scale, shift)
    return float(scale), float(shift), (1.0, 0.0)


def _affine(values, scale, shift):
    """``values * scale + shift`` in place, each step rounded on its own and skipped when it changes nothing."""
    ftype = values.dtype.type
    if scale != 1.0:
        values *= ftype(scale)
    if shift != 0.0:
        values += ftype(shift)
    return values


def _per_block(ftype):
    return 2 if ftype == np.float64 else 4


def _units(xp, words, ftype, offset):
    """The uniform floats ``(k + offset) * 2**-bits`` of Philox blocks (four word arrays): a ``(blocks, 4)`` float32
    array (k: 24 bits of each word) or ``(blocks, 2)`` float64 (k: 53 bits of two words).

    offset 0 gives [0, 1), 1 gives (0, 1] and 0.5 gives (0, 1) (one bit fewer, so that ``k + 0.5`` stays exact).
    Every value is exact, so both devices agree bitwise.
    """
    w = xp.stack(words, axis=-1)
    if ftype == np.float64:
        bits = 52 if offset == 0.5 else 53
        k = ((w[:, 0::2] << _SHIFT32) | w[:, 1::2]) >> np.uint64(64 - bits)
    else:
        bits = 23 if offset == 0.5 else 24
        k = w >> np.uint64(32 - bits)
    u = k.astype(ftype)
    if offset:
        u += ftype(offset)
    u *= ftype(2.0 ** -bits)
    return u


def _normals(xp, units):
    """Box–Muller on the ``(blocks, n)`` units in (0, 1]: pair ``(u_2p, u_2p+1)`` gives ``r cos(t)``, ``r sin(t)``."""
    ftype = units.dtype.type
    radius = xp.sqrt(ftype(-2.0) * xp.log(units[:, 0::2]))
    angle = ftype(2.0 * math.pi) * units[:, 1::2]
    return xp.stack([radius * xp.cos(angle), radius * xp.sin(angle)], axis=-1).reshape(units.shape)


def _unit_floats(xp, stream, count, ftype, offset=0.0, scale=1.0, shift=0.0):
    """``count`` uniform floats (see :func:`_units`), then ``* scale + shift``."""
    blocks = -(-count // _per_block(ftype))
    counter = stream.reserve(blocks)
    kernels = _kernels(xp)
    if kernels is not None:
        return kernels.philox_uniform(stream.key, counter, count, ftype, offset, scale, shift)
    words = _philox_blocks(xp, stream.key, counter, xp.arange(blocks, dtype=xp.uint64))
    return _affine(_units(xp, words, ftype, offset).reshape(-1)[:count], scale, shift)


def _standard_normal(xp, stream, count, ftype, scale=1.0, shift=0.0):
    """``count`` normals, Box–Muller on uniforms in (0, 1] (see :func:`_normals`), then ``* scale + shift``."""
    blocks = -(-count // _per_block(ftype))
    counter = stream.reserve(blocks)
    kernels = _kernels(xp)
    if kernels is not None:
        return kernels.philox_normal(stream.key, counter, count, ftype, scale, shift)
    words = _philox_blocks(xp, stream.key, counter, xp.arange(blocks, dtype=xp.uint64))
    return _affine(_normals(xp, _units(xp, words, ftype, 1.0)).reshape(-1)[:count], scale, shift)


def _truncated_standard_normal(xp, stream, count, ftype, scale=1.0, shift=0.0):
    """Normals with ``|z| <= 2``, then ``* scale + shift``: value i is the first such normal of block
    ``counter + i``, else of the same block in round 1, 2, ... (``2**96 * round`` added to the counter).

    The stream moves by exactly ``count`` blocks whatever was rejected, so no count is read back from the device;
    on the GPU each value runs its own rounds inside one launch. Here, each round redraws the values still missing.
    """
    counter = stream.reserve(count)
    kernels = _kernels(xp)
    if kernels is not None:
        return kernels.philox_truncated_normal(stream.key, counter, count, ftype, scale, shift)
    z = xp.empty(count, dtype=ftype)
    todo = xp.arange(count, dtype=xp.uint64)
    attempt = 0
    while todo.size:
        candidates = _normals(xp, _units(xp, _philox_blocks(xp, stream.key, counter, todo, attempt), ftype, 1.0))
        inside = xp.abs(candidates) <= 2
        found = inside.any(axis=1)
        first = inside.argmax(axis=1)
        z[todo[found]] = candidates[xp.flatnonzero(found), first[found]]
        todo = todo[~found]
        attempt += 1
    return _affine(z, scale, shift)


def _uniform_ints(xp, stream, shape, minval, maxval, dtype):
    """Integers in [minval, maxval): a 64-bit random value modulo the span.

    The modulo bias is at most ``span / 2**64`` (below 1e-9 for any span up to 2**32), far under what a test of
    the distribution could see; in exchange the result is one integer formula, bitwise equal on both devices.
    """
    if maxval is None:
        raise ValueError(f"uniform: maxval must be given for integer dtype {dtype.name} (the range is "
                         "[minval, maxval))")
    low, high = _int_bound(minval, "minval", dtype), _int_bound(maxval, "maxval", dtype)
    if low >= high:
        raise errors.InvalidArgumentError(f"uniform: need minval < maxval, got minval={low}, maxval={high}")
    if low < dtype.min or high - 1 > dtype.max:
        raise errors.InvalidArgumentError(f"uniform: [minval, maxval) = [{low}, {high}) does not fit dtype "
                                          f"{dtype.name} ({dtype.min}..{dtype.max})")
    value = stream.words64(xp, _count(shape))
    if high - low < _TWO64:
        value %= np.uint64(high - low)
    value += np.uint64(low % _TWO64)  # wraps modulo 2**64: two's complement for negative minval
    if not dtype.is_unsigned:
        value = value.view(xp.int64)  # reinterpret, so the narrowing cast below only sees values that fit
    return value.astype(dtype.numpy_dtype).reshape(shape)


def _finish(xp, values, shape, dtype, scale, shift, what):
    """``values * scale + shift`` in the compute dtype, shaped and cast to ``dtype``."""
    ftype = values.dtype.type
    values = values.reshape(shape)
    if isinstance(scale, Tensor) or isinstance(shift, Tensor) or np.ndim(scale) or np.ndim(shift):
        out = values * array_of(scale, like=values, dtype=ftype) + array_of(shift, like=values, dtype=ftype)
        if tuple(out.shape) != shape:
            raise errors.InvalidArgumentError(f"{what}: the parameters broadcast the result to shape "
                                              f"{tuple(out.shape)}, not the requested shape {shape}")
        values = out
    else:
        values = _affine(values, float(scale), float(shift))
    if values.dtype != dtype.numpy_dtype:
        values = values.astype(dtype.numpy_dtype)
    return Tensor(values)


# --- argument checking ---------------------------------------------------------------------------------------------
def _shape(shape, what):
    if isinstance(shape, Tensor):
        shape = np.asarray(shape).tolist()
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{what}: shape must be a list of ints, got {shape!r}") from None
    for d in dims:
        if d is None or not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError(f"{what}: shape must be a list of ints, got {shape!r}")
        if d < 0:
            raise ValueError(f"{what}: shape {list(dims)} has a negative dimension")
    return tuple(int(d) for d in dims)


def _count(shape):
    return int(np.prod(shape, dtype=np.int64))


def _float_dtype(dtype, what):
    dtype = dtypes.as_dtype(dtype)
    if not dtype.is_floating:
        raise TypeError(f"{what}: dtype must be a floating type (float16, bfloat16, float32, float64), "
                        f"got {dtype.name}")
    return dtype


def _compute_dtype(dtype):
    """float64 is generated in float64; float16 and bfloat16 are generated in float32 and cast."""
    return np.float64 if dtype == dtypes.float64 else np.float32


def _int_bound(value, name, dtype):
    if isinstance(value, Tensor):
        if value.ndim or not value.dtype.is_integer:
            raise TypeError(f"uniform: {name} must be a Python int or an integer scalar for dtype {dtype.name}, "
                            f"got a {value.dtype.name} tensor of shape {tuple(value.shape)}")
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"uniform: {name}={value!r} is not an integer, as dtype {dtype.name} needs")


def _int_seed(seed, what):
    if isinstance(seed, Tensor):
        seed = np.asarray(seed).item()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{what}: seed must be an int, got {seed!r}")
    return int(seed)


@contextlib.contextmanager
def _on_device_of(array):
    """Makes ``array``'s device current (ops run where their inputs are) and yields its array module."""
    with _device.device(_device.device_of(array)):
        yield _current_xp()


# --- the global seed -----------------------------------------------------------------------------------------------
class _Seeds:
    """The global seed and the streams it selects (one per op seed, one for calls without an op seed)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset(None)

    def reset(self, seed):
        with self.lock:
            self.global_seed = seed
            self.entropy = None
            self.streams = {}

    def stream(self, op_seed):
        name = None if op_seed is None else _int_seed(op_seed, "random")
        with self.lock:
            global_seed = self.global_seed
            if global_seed is None and name is not None:
                global_seed = _DEFAULT_GLOBAL_SEED
            elif global_seed is None:
                if self.entropy is None:
                    self.entropy = int.from_bytes(os.urandom(8), "little")
                global_seed = self.entropy
            found = self.streams.get((global_seed, name))
            if found is None:
                key = _derive_key(global_seed, 0, _DOMAIN_NO_OP_SEED) if name is None else \
                    _derive_key(global_seed, name, _DOMAIN_OP_SEED)
                found = self.streams[(global_seed, name)] = Generator(key)
        return found


_seeds = _Seeds()


def seed_stream(seed=None):
    """The Philox ``Generator`` that ``tf.random`` ops with op seed ``seed`` draw from (None: the stream of calls
    without an op seed), selected by the global seed as those ops select it. Seeded components outside this module
    (``Dataset.shuffle``) derive their keys from it, so ``set_seed`` governs them too."""
    return _seeds.stream(seed)


def set_seed(seed):
    """Sets the global random seed (``tf.random.set_seed``).

    After ``set_seed(s)`` the same program draws the same numbers again, on the CPU and on the GPU alike: the
    streams chosen by (global seed, op seed) start over. ``set_seed(None)`` goes back to unseeded numbers.

    Args:
        seed: an int, or None.

    Raises:
        TypeError: ``seed`` is not an int.

    Example:

    >>> import cuflow as tf
    >>> tf.random.set_seed(42)
    >>> a = tf.random.uniform([3])
    >>> tf.random.set_seed(42)
    >>> b = tf.random.uniform([3])
    >>> bool((a.numpy() == b.numpy()).all())
    True
    """
    _seeds.reset(None if seed is None else _int_seed(seed, "set_seed"))


# --- the public functions ------------------------------------------------------------------------------------------
def normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normally distributed random values on the current device (``tf.random.normal``).

    Args:
        shape: the output shape, a list of non-negative ints.
        mean: the mean, a number or a tensor that broadcasts to ``shape``.
        stddev: the standard deviation, a number or a tensor that broadcasts to ``shape``.
        dtype: a floating dtype (float16 and bfloat16 are drawn in float32 and rounded).
        seed: an int op seed; with the global seed (:func:`set_seed`) it fixes the numbers.

    Returns:
        A Tensor of ``shape`` and ``dtype``.

    Raises:
        ValueError: ``shape`` has a negative dimension.
        TypeError: ``dtype`` is not floating, or ``shape`` is not a list of ints.

    Example:

    >>> import cuflow as tf
    >>> tf.random.normal([2, 3], seed=1).shape
    TensorShape([2, 3])
    """
    return _seeds.stream(seed).normal(shape, mean, stddev, dtype)


def uniform(shape, minval=0, maxval=None, dtype=dtypes.float32, seed=None, name=None):
    """Uniformly distributed random values in ``[minval, maxval)`` on the current device (``tf.random.uniform``).

    Floats: ``maxval`` defaults to 1. Integers: ``maxval`` is required; values are a 64-bit random number modulo
    ``maxval - minval`` (bias below ``span / 2**64``) and are bitwise the same on the CPU and the GPU.

    Args:
        shape: the output shape, a list of non-negative ints.
        minval: the lower bound (inclusive).
        maxval: the upper bound (exclusive); required for integer dtypes.
        dtype: a floating or integer dtype.
        seed: an int op seed; with the global seed (:func:`set_seed`) it fixes the numbers.

    Returns:
        A Tensor of ``shape`` and ``dtype``.

    Raises:
        ValueError: ``shape`` has a negative dimension, or an integer dtype is given without ``maxval``.
        cuflow.errors.InvalidArgumentError: integer bounds with ``minval >= maxval`` or outside ``dtype``.
        TypeError: integer dtype with non-integer bounds, or a dtype that is neither floating nor integer.

    Example:

    >>> import cuflow as tf
    >>> x = tf.random.uniform([1000], minval=0, maxval=10, dtype=tf.int32, seed=3)
    >>> int(tf.reduce_min(x)) >= 0 and int(tf.reduce_max(x)) < 10
    True
    """
    return _seeds.stream(seed).uniform(shape, minval, maxval, dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normal values with those more than 2 standard deviations from the mean re-drawn (``tf.random.truncated_normal``).

    Args:
        shape: the output shape, a list of non-negative ints.
        mean: the mean of the (untruncated) normal distribution.
        stddev: its standard deviation.
        dtype: a floating dtype.
        seed: an int op seed; with the global seed (:func:`set_seed`) it fixes the numbers.

    Returns:
        A Tensor of ``shape`` and ``dtype`` with every value within ``mean ± 2 * stddev``.

    Raises:
        ValueError: ``shape`` has a negative dimension.
        TypeError: ``dtype`` is not floating.

    Example:

    >>> import cuflow as tf
    >>> x = tf.random.truncated_normal([1000], seed=2)
    >>> float(tf.reduce_max(tf.abs(x))) <= 2.0
    True
    """
    return _seeds.stream(seed).truncated_normal(shape, mean, stddev, dtype)


def shuffle(value, seed=None, name=None):
    """Randomly permutes ``value`` along its first axis, on its device (``tf.random.shuffle``).

    The permutation sorts random 64-bit keys, so the CPU and the GPU give the same one for the same seed.

    Args:
        value: a tensor (or anything :func:`cuflow.constant` accepts) of rank 1 or more.
        seed: an int op seed; with the global seed (:func:`set_seed`) it fixes the permutation.

    Returns:
        A Tensor with the rows of ``value`` in a random order.

    Raises:
        ValueError: ``value`` is a scalar.

    Example:

    >>> import cuflow as tf
    >>> sorted(tf.random.shuffle([1, 2, 3, 4], seed=5).numpy().tolist())
    [1, 2, 3, 4]
    """
    data = value._data if isinstance(value, Tensor) else constant(value)._data
    if data.ndim == 0:
        raise ValueError("shuffle: value must have at least one dimension, got a scalar")
    stream = _seeds.stream(seed)
    with _on_device_of(data) as xp:
        keys = stream.words64(xp, data.shape[0])
        order = xp.argsort(keys, kind="stable") if xp is np else xp.argsort(keys)  # CuPy's radix sort is stable
        return Tensor(data[order])


def categorical(logits, num_samples, dtype=dtypes.int64, seed=None, name=None):
    """Draws class indices from unnormalized log-probabilities, on their device (``tf.random.categorical``).

    Uses the Gumbel-max trick: ``argmax(logits - log(-log(u)))`` with ``u`` uniform in (0, 1) is a sample from
    ``softmax(logits)``. It builds a ``(batch, num_samples, num_classes)`` array on the way.

    Args:
        logits: a ``(batch, num_classes)`` floating tensor.
        num_samples: how many samples to draw per row.
        dtype: int32 or int64, the dtype of the result.
        seed: an int op seed; with the global seed (:func:`set_seed`) it fixes the samples.

    Returns:
        A ``(batch, num_samples)`` Tensor of class indices.

    Raises:
        ValueError: ``logits`` is not 2-D or has no classes, or ``num_samples`` is negative.
        TypeError: ``logits`` is not floating, or ``dtype`` is not int32/int64.

    Example:

    >>> import cuflow as tf
    >>> tf.random.categorical([[0.0, 100.0]], 3, seed=1).numpy().tolist()
    [[1, 1, 1]]
    """
    data = logits._data if isinstance(logits, Tensor) else constant(logits, dtype=dtypes.float32)._data
    dtype = dtypes.as_dtype(dtype)
    if dtype not in (dtypes.int32, dtypes.int64):
        raise TypeError(f"categorical: dtype must be int32 or int64, got {dtype.name}")
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"categorical: logits must have shape (batch, num_classes) with num_classes > 0, got "
                         f"shape {tuple(data.shape)}")
    if not dtypes.as_dtype(data.dtype).is_floating:
        raise TypeError(f"categorical: logits must be floating, got {dtypes.as_dtype(data.dtype).name}")
    num_samples = int(num_samples)
    if num_samples < 0:
        raise ValueError(f"categorical: num_samples must be non-negative, got {num_samples}")
    stream = _seeds.stream(seed)
    batch, classes = data.shape
    ftype = _compute_dtype(dtypes.as_dtype(data.dtype))
    with _on_device_of(data) as xp:
        u = _unit_floats(xp, stream, batch * num_samples * classes, ftype, offset=0.5)
        gumbel = -xp.log(-xp.log(u)).reshape(batch, num_samples, classes)
        scores = data.astype(ftype, copy=False)[:, None, :] + gumbel
        return Tensor(xp.argmax(scores, axis=-1).astype(dtype.numpy_dtype))


# --- stateless: pure functions of a seed pair -----------------------------------------------------------------------
def _stateless(seed, what):
    try:
        pair = [int(s) for s in (np.asarray(seed).tolist() if isinstance(seed, Tensor) else seed)]
    except (TypeError, ValueError):
        pair = None
    if pair is None or len(pair) != 2:
        raise ValueError(f"{what}: seed must be a pair of ints [a, b], got {seed!r}")
    return Generator(_derive_key(pair[0], pair[1], _DOMAIN_STATELESS))


def stateless_normal(shape, seed, mean=0.0, stddev=1.0, dtype=dtypes.float32, name=None):
    """Like :func:`normal`, but a pure function of ``seed``, a pair of ints ``[a, b]``
    (``tf.random.stateless_normal``): the same seed always gives the same numbers, whatever ran before."""
    return _stateless(seed, "stateless_normal").normal(shape, mean, stddev, dtype)


def stateless_uniform(shape, seed, minval=0, maxval=None, dtype=dtypes.float32, name=None):
    """Like :func:`uniform`, but a pure function of ``seed``, a pair of ints ``[a, b]``
    (``tf.random.stateless_uniform``)."""
    return _stateless(seed, "stateless_uniform").uniform(shape, minval, maxval, dtype)


def stateless_truncated_normal(shape, seed, mean=0.0, stddev=1.0, dtype=dtypes.float32, name=None):
    """Like :func:`truncated_normal`, but a pure function of ``seed``, a pair of ints ``[a, b]``
    (``tf.random.stateless_truncated_normal``)."""
    return _stateless(seed, "stateless_truncated_normal").truncated_normal(shape, mean, stddev, dtype)
