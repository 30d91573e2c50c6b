"""Transformations of a dataset's elements: zip, batch, unbatch, shuffle, map, filter, repeat, take, skip, concatenate.

Each is a :class:`Dataset` holding its input(s) and a generator that pulls from them. Cardinalities follow
tf.data's rules (``INFINITE_CARDINALITY`` and ``UNKNOWN_CARDINALITY`` propagate).
"""
import collections
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import devices as _devices
from .. import dtypes, errors
from ..ops import random as _random
from ..tensor import Tensor
from . import structure
from .dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, iterate
from .structure import TensorSpec

_UNBOUNDED = (INFINITE_CARDINALITY, UNKNOWN_CARDINALITY)


class Zip(Dataset):
    """``Dataset.zip``: elements of several datasets side by side, as long as the shortest."""

    def __init__(self, datasets):
        leaves = structure.flatten(datasets)
        for leaf in leaves:
            if not isinstance(leaf, Dataset):
                raise TypeError(f"Dataset.zip: `datasets` must be Datasets (in a tuple or dict), got "
                                f"{type(leaf).__name__}: {leaf!r}")
        super().__init__(*leaves)
        self._datasets = datasets

    def _iterate(self):
        sources = [d._iterate() for d in self._inputs]
        try:
            for values in zip(*sources):
                yield structure.pack_as(self._datasets, values)
        finally:
            for source in sources:
                source.close()

    def _cardinality(self):
        counts = [d._cardinality() for d in self._inputs]
        if UNKNOWN_CARDINALITY in counts:
            return UNKNOWN_CARDINALITY
        finite = [n for n in counts if n != INFINITE_CARDINALITY]
        return min(finite) if finite else INFINITE_CARDINALITY

    def _compute_spec(self):
        return structure.map_structure(lambda d: d.element_spec, self._datasets)


class Concatenate(Dataset):
    """``Dataset.concatenate``: one dataset's elements, then the other's."""

    def __init__(self, first, second):
        if not isinstance(second, Dataset):
            raise TypeError(f"concatenate: `dataset` must be a Dataset, got {type(second).__name__}")
        a, b = first.element_spec, second.element_spec
        if not structure.same_structure(a, b) or any(
                x.dtype != y.dtype for x, y in zip(structure.flatten(a), structure.flatten(b))):
            raise TypeError(f"concatenate: the datasets' elements differ in structure or dtype: {a} and {b}")
        super().__init__(first, second)

    def _iterate(self):
        for dataset in self._inputs:
            with iterate(dataset) as elements:
                yield from elements

    def _cardinality(self):
        a, b = (d._cardinality() for d in self._inputs)
        if INFINITE_CARDINALITY in (a, b):
            return INFINITE_CARDINALITY
        return UNKNOWN_CARDINALITY if UNKNOWN_CARDINALITY in (a, b) else a + b

    def _compute_spec(self):
        return structure.map_structure(
            lambda x, y: TensorSpec(_common_shape(x.shape, y.shape), x.dtype), *(d.element_spec for d in self._inputs))


def _common_shape(a, b):
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b))


class Batch(Dataset):
    """``Dataset.batch``: ``batch_size`` consecutive elements stacked along a new first dimension."""

    def __init__(self, dataset, batch_size, drop_remainder):
        super().__init__(dataset)
        self._batch_size, self._drop_remainder = batch_size, drop_remainder

    def _iterate(self):
        source = self._inputs[0]
        if hasattr(source, "_batches"):  # slices of in-memory arrays: cut batches directly
            yield from source._batches(self._batch_size, self._drop_remainder)
            return
        with iterate(source) as elements:
            while True:
                chunk = list(itertools.islice(elements, self._batch_size))
                if not chunk or (self._drop_remainder and len(chunk) < self._batch_size):
                    return
                yield _stacked(chunk)

    def _cardinality(self):
        n = self._inputs[0]._cardinality()
        if n in _UNBOUNDED:
            return n
        return n // self._batch_size if self._drop_remainder else -(-n // self._batch_size)

    def _compute_spec(self):
        first = self._batch_size if self._drop_remainder else None
        return structure.map_structure(
            lambda s: TensorSpec(None if s.shape is None else (first, *s.shape), s.dtype), self._inputs[0].element_spec)


def _stacked(elements):
    leaves = [structure.flatten(e) for e in elements]
    stacked = []
    for i, column in enumerate(zip(*leaves)):
        shape = column[0].shape
        for j, array in enumerate(column):
            if array.shape != shape:
                raise errors.InvalidArgumentError(
                    f"Cannot batch tensors with different shapes in component {i}. First element had shape "
                    f"{list(shape)} and element {j} had shape {list(array.shape)}.")
        stacked.append(structure.stack(column))
    return structure.pack_as(elements[0], stacked)


class Unbatch(Dataset):
    """``Dataset.unbatch``: each element split along its first dimension."""

    def _iterate(self):
        with iterate(self._inputs[0]) as elements:
            for element in elements:
                leaves = structure.flatten(element)
                size = _leading_size(leaves)
                for i in range(size):
                    yield structure.map_structure(lambda a: a[i, ...], element)

    def _cardinality(self):
        n = self._inputs[0]._cardinality()
        if n in (0, INFINITE_CARDINALITY):
            return n
        shapes = [s.shape for s in structure.flatten(self._inputs[0].element_spec)]
        sizes = {None if s is None or not len(s) else s[0] for s in shapes}
        if n == UNKNOWN_CARDINALITY or len(sizes) != 1 or None in sizes:
            return UNKNOWN_CARDINALITY
        return n * sizes.pop()

    def _compute_spec(self):
        def unbatched(spec):
            if spec.shape is not None and len(spec.shape) == 0:
                raise ValueError("unbatch: every component needs a first dimension to split, got a scalar component "
                                 f"{spec}")
            return TensorSpec(None if spec.shape is None else spec.shape[1:], spec.dtype)
        return structure.map_structure(unbatched, self._inputs[0].element_spec)


def _leading_size(leaves):
    sizes = set()
    for leaf in leaves:
        if leaf.ndim == 0:
            raise errors.InvalidArgumentError("unbatch: every component needs a first dimension to split, got a "
                                              "scalar component")
        sizes.add(leaf.shape[0])
    if len(sizes) != 1:
        raise errors.InvalidArgumentError(f"unbatch: the components of an element must have the same first "
                                          f"dimension, got {sorted(sizes)}")
    return sizes.pop()


class Shuffle(Dataset):
    """``Dataset.shuffle``: tf.data's buffer algorithm with cuflow's Philox generator.

    The buffer holds up to ``buffer_size`` elements; each output is a uniformly random buffer slot, refilled with
    the next input (once the input is exhausted, the last slot moves into the hole). Iteration ``e`` draws from
    the Philox stream ``(key, counter = e * 2**64)``; the key comes from the seeds as ``tf.random`` ops' do, so a
    given (global seed, ``seed``) gives the same orders in every run and for every dataset built with them.
    """

    _CHUNK = 256  # random words drawn per call to the generator

    def __init__(self, dataset, buffer_size, seed, reshuffle_each_iteration):
        super().__init__(dataset)
        self._buffer_size = buffer_size
        if seed is None:  # the seedless stream: follows set_seed, random without it
            self._key = int(_random.seed_stream(None).words64(np, 1)[0])
        else:  # the (global seed, op seed) stream's key, without drawing from it: same seed, same orders
            self._key = _random.seed_stream(seed).key
        self._reshuffle = reshuffle_each_iteration
        self._iterations = itertools.count()

    def _iterate(self):
        epoch = next(self._iterations) if self._reshuffle else 0
        stream = _random.Generator(self._key, counter=epoch << 64)
        words = []
        buffer = []
        with iterate(self._inputs[0]) as elements:
            for element in elements:
                if len(buffer) < self._buffer_size:
                    buffer.append(element)
                    continue
                if not words:
                    words = stream.words64(np, self._CHUNK).tolist()
                slot = words.pop() % len(buffer)
                yield buffer[slot]
                buffer[slot] = element
        while buffer:
            if not words:
                words = stream.words64(np, self._CHUNK).tolist()
            slot = words.pop() % len(buffer)
            buffer[slot], buffer[-1] = buffer[-1], buffer[slot]
            yield buffer.pop()


class Map(Dataset):
    """``Dataset.map``: a function of each element, optionally on a thread pool (order kept)."""

    def __init__(self, dataset, fn, num_parallel_calls):
        super().__init__(dataset)
        self._fn = fn
        self._workers = (os.cpu_count() or 1) if num_parallel_calls == AUTOTUNE else num_parallel_calls

    def _apply(self, element):
        return structure.normalize(_call(self._fn, element), "map: `map_func` output", host=False)

    def _iterate(self):
        apply = self._apply
        with iterate(self._inputs[0]) as elements:
            if self._workers is None:
                for element in elements:
                    yield apply(element)
                return
            pool = ThreadPoolExecutor(self._workers, thread_name_prefix="cuflow.data.map")
            pending = collections.deque()
            try:
                for element in elements:
                    pending.append(pool.submit(apply, element))
                    if len(pending) > self._workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

    def _compute_spec(self):
        """Runs the function once on zeros shaped like the input's spec, as TensorFlow traces it once.

        Unknown input dims are given the size 7; output dims of that size are reported unknown. If the function
        fails on zeros (or the input's rank is unknown), the first real element is used instead.
        """
        source = self._inputs[0].element_spec
        specs = structure.flatten(source)
        unknown = any(s.shape is None or None in s.shape for s in specs)
        if all(s.shape is not None for s in specs):
            try:
                out = self._apply(structure.map_structure(_placeholder, source))
            except Exception:  # a function that needs real data: fall through to the first element
                out = None
            if out is not None:
                return structure.map_structure(lambda a: _spec_of(a, unknown), out)
        with iterate(self) as elements:
            first = next(elements, None)
        if first is None:
            return structure.map_structure(lambda s: TensorSpec(None, s.dtype), source)
        return structure.map_structure(lambda a: _spec_of(a, unknown), first)


_PLACEHOLDER_DIM = 7


def _placeholder(spec):
    shape = tuple(_PLACEHOLDER_DIM if d is None else d for d in spec.shape)
    if spec.dtype == dtypes.string:
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=spec.dtype.numpy_dtype)


def _spec_of(array, relax):
    shape = tuple(None if relax and d == _PLACEHOLDER_DIM else d for d in array.shape)
    return TensorSpec(shape, dtypes.as_dtype(array.dtype))


def _call(fn, element):
    """``fn`` on an element as tf.data calls it: a tuple's components as separate arguments, on the CPU."""
    args = structure.to_tensors(element)
    with _devices.device(_devices.CPU):  # tf.data functions run on the host; prefetch moves data to the GPU
        out = fn(*args) if type(args) is tuple else fn(args)
    return tuple(out) if isinstance(out, list) else out


class Filter(Dataset):
    """``Dataset.filter``: the elements for which the predicate is True."""

    def __init__(self, dataset, predicate):
        super().__init__(dataset)
        self._predicate = predicate

    def _iterate(self):
        with iterate(self._inputs[0]) as elements:
            for element in elements:
                if _truth(_call(self._predicate, element)):
                    yield element

    def _cardinality(self):
        n = self._inputs[0]._cardinality()
        return n if n in (0, INFINITE_CARDINALITY) else UNKNOWN_CARDINALITY


def _truth(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    array = value._data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype != np.bool_ or array.ndim != 0:
        raise ValueError(f"filter: `predicate` must return a scalar boolean tensor, got dtype {array.dtype} with shape "
                         f"{tuple(array.shape)}")
    return bool(array)


class _Counted(Dataset):
    """A transformation with a ``count`` argument."""

    def __init__(self, dataset, count):
        super().__init__(dataset)
        self._count = count


class Repeat(_Counted):
    """``Dataset.repeat``: the input again and again (re-iterated each time, so shuffles reshuffle)."""

    def _iterate(self):
        done = 0
        while self._count < 0 or done < self._count:
            produced = False
            with iterate(self._inputs[0]) as elements:
                for element in elements:
                    produced = True
                    yield element
            if not produced:  # repeating nothing forever would hang: tf.data stops too
                return
            done += 1

    def _cardinality(self):
        n, count = self._inputs[0]._cardinality(), self._count
        if count == 0 or n == 0:
            return 0
        if count < 0:
            return INFINITE_CARDINALITY  # tf.data's rule, even for an input of unknown length
        return n if n in _UNBOUNDED else n * count


class Take(_Counted):
    """``Dataset.take``: the first ``count`` elements."""

    def _iterate(self):
        with iterate(self._inputs[0]) as elements:
            yield from (elements if self._count < 0 else itertools.islice(elements, self._count))

    def _cardinality(self):
        n = self._inputs[0]._cardinality()
        if self._count < 0:
            return n
        if n == INFINITE_CARDINALITY:
            return self._count
        return UNKNOWN_CARDINALITY if n == UNKNOWN_CARDINALITY else min(n, self._count)


class Skip(_Counted):
    """``Dataset.skip``: all but the first ``count`` elements."""

    def _iterate(self):
        if self._count < 0:
            return
        with iterate(self._inputs[0]) as elements:
            yield from itertools.islice(elements, self._count, None)

    def _cardinality(self):
        n = self._inputs[0]._cardinality()
        if n in _UNBOUNDED:
            return n
        return 0 if self._count < 0 else max(0, n - self._count)
