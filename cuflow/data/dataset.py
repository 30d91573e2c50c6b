"""``cuflow.data.Dataset``: ``tf.data``'s input pipelines, run by Python iterators and a few background threads.

A Dataset is an immutable description of a pipeline; each transformation returns a new one, and every iteration
runs the pipeline afresh (so a dataset can be iterated many times, e.g. once per epoch). A subclass implements:

- ``_iterate()``: a Python generator of elements (structures of raw arrays, see :mod:`cuflow.data.structure`);
- ``_cardinality()``: the number of elements, or ``INFINITE_CARDINALITY`` / ``UNKNOWN_CARDINALITY``;
- ``_compute_spec()``: the element's structure of :class:`TensorSpec`.

Sources live in :mod:`.sources`, per-element transformations in :mod:`.transforms`, ``cache`` in :mod:`.cache`
and ``prefetch`` (the background thread that stages batches onto the GPU) in :mod:`.prefetch`.
"""
import contextlib

import numpy as np

from .. import dtypes
from ..tensor import Tensor
from . import structure

__all__ = ["Dataset", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY"]

AUTOTUNE = -1  # tf.data.AUTOTUNE: let the pipeline pick the parallelism / buffer size
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


def check_int(value, name, what, minimum=None, allow=()):
    """``value`` as an int; TypeError when it is not one, ValueError when it is below ``minimum`` (and not in
    ``allow``), both naming the argument."""
    if isinstance(value, Tensor) and value.ndim == 0 and value.dtype.is_integer:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}: `{name}` must be an int, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum and value not in allow:
        allowed = f" (or {', '.join(map(str, allow))})" if allow else ""
        raise ValueError(f"{what}: `{name}` must be >= {minimum}{allowed}, got {value}")
    return value


def check_callable(fn, name, what):
    if not callable(fn):
        raise TypeError(f"{what}: `{name}` must be callable, got {fn!r} of type {type(fn).__name__}")
    return fn


def iterate(dataset):
    """``dataset``'s elements as a context-managed generator: leaving the ``with`` closes it (and any threads)."""
    return contextlib.closing(dataset._iterate())


class Dataset:
    """A sequence of elements run through a pipeline of transformations (``tf.data.Dataset``).

    Build one from data with :meth:`from_tensor_slices`, :meth:`from_tensors`, :meth:`from_generator`,
    :meth:`range` or :meth:`zip`, transform it (``shuffle``, ``map``, ``batch``, ``prefetch``, ...) and iterate
    it, or pass it to ``Model.fit``. Iteration yields :class:`cuflow.Tensor` elements with the structure (tuple,
    dict) the data was given in, on the CPU; after :meth:`prefetch` with a GPU as the current device, on the GPU.

    Example:

    >>> import numpy as np
    >>> import cuflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices((np.arange(6.0), np.arange(6) % 2)).batch(4)
    >>> [(x.shape, y.numpy().tolist()) for x, y in ds]
    [(TensorShape([4]), [0, 1, 0, 1]), (TensorShape([2]), [0, 1])]
    """

    def __init__(self, *inputs):
        self._inputs = inputs
        self._spec_cache = None

    # --- what a subclass provides ----------------------------------------------------------------------------
    def _iterate(self):
        raise NotImplementedError

    def _cardinality(self):
        return self._inputs[0]._cardinality()

    def _compute_spec(self):
        return self._inputs[0].element_spec

    # --- sources ---------------------------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """A dataset whose elements are the slices of ``tensors`` along their first dimension.

        Args:
            tensors: an array, Tensor, list, or a tuple/dict (nested) of them, all with the same first dimension.

        Raises:
            ValueError: a component is a scalar, or the components differ in their first dimension.
        """
        return _sources.TensorSlices(tensors)

    @staticmethod
    def from_tensors(tensors, name=None):
        """A dataset with one element: ``tensors`` (an array, Tensor, or a tuple/dict of them)."""
        return _sources.FromTensors(tensors)

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None, output_signature=None,
                       name=None):
        """A dataset whose elements are what ``generator()`` yields, checked against a signature.

        Args:
            generator: a callable returning an iterable (called afresh for each iteration).
            output_types: the dtypes of an element (structure like the element), if ``output_signature`` is not
                given.
            output_shapes: the shapes matching ``output_types`` (default: unknown).
            args: a tuple of arguments for ``generator``, passed as NumPy values.
            output_signature: the element's structure of :class:`cuflow.TensorSpec`.

        Raises:
            TypeError: ``generator`` is not callable, or neither or both of ``output_signature`` and
                ``output_types`` are given. While iterating: TypeError when an element does not match the
                signature's structure or dtype, :class:`cuflow.errors.InvalidArgumentError` when its shape differs.
        """
        return _sources.FromGenerator(generator, output_types, output_shapes, args, output_signature)

    @staticmethod
    def range(*args, dtype=dtypes.int64, name=None):
        """``range(stop)``, ``range(start, stop[, step])`` as a dataset of scalars (int64 unless ``dtype``)."""
        return _sources.Range(args, dtype)

    @staticmethod
    def zip(*args, datasets=None, name=None):
        """A dataset of tuples (or dicts) of the elements of ``datasets``, as long as the shortest.

        Takes the datasets as positional arguments (``zip(a, b)``) or as one (nested) tuple or dict
        (``zip((a, b))``, ``zip({'x': a, 'y': b})``).
        """
        if datasets is None:
            datasets = args[0] if len(args) == 1 and not isinstance(args[0], Dataset) else args
        elif args:
            raise TypeError("Dataset.zip: pass the datasets either positionally or as `datasets=`, not both")
        return _transforms.Zip(datasets)

    # --- transformations -------------------------------------------------------------------------------------
    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Stacks ``batch_size`` consecutive elements into one (a new first dimension).

        Args:
            batch_size: elements per batch, >= 1.
            drop_remainder: drop the last batch when it is smaller (its first dimension becomes static).

        Raises:
            ValueError: ``batch_size`` < 1. While iterating: :class:`cuflow.errors.InvalidArgumentError` when
                elements of one batch differ in shape.
        """
        return _transforms.Batch(self, check_int(batch_size, "batch_size", "batch", 1), bool(drop_remainder))

    def unbatch(self, name=None):
        """Splits each element along its first dimension into that many elements (the inverse of ``batch``)."""
        return _transforms.Unbatch(self)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """Randomly shuffles the elements through a buffer of ``buffer_size`` elements (tf.data's algorithm).

        The buffer is filled with the first ``buffer_size`` elements; each output is a random one of the buffer,
        replaced by the next input. A buffer as large as the dataset gives a uniform permutation.

        Args:
            buffer_size: elements in the buffer, >= 1.
            seed: an int op seed. With :func:`cuflow.random.set_seed` and/or ``seed``, the orders repeat from run
                to run; with neither they differ.
            reshuffle_each_iteration: a new order on each iteration (each epoch); else the same every time.

        Raises:
            ValueError: ``buffer_size`` < 1.
        """
        seed = None if seed is None else check_int(seed, "seed", "shuffle")
        return _transforms.Shuffle(self, check_int(buffer_size, "buffer_size", "shuffle", 1), seed,
                       True if reshuffle_each_iteration is None else bool(reshuffle_each_iteration))

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """Applies ``map_func`` to each element.

        ``map_func`` gets an element's components as separate arguments when the element is a tuple (a dict is
        one argument), as cuflow Tensors on the CPU, and may return tensors, arrays or numbers (nested in tuples
        or dicts; a list is taken as a tuple).

        Args:
            map_func: the function.
            num_parallel_calls: None (one element at a time), an int >= 1 or ``AUTOTUNE`` (one thread per CPU):
                that many elements are mapped at once on a thread pool. The output order is always the input
                order.
            deterministic: accepted for compatibility; the order is always deterministic.

        Raises:
            TypeError: ``map_func`` is not callable.
            ValueError: ``num_parallel_calls`` is not None, ``AUTOTUNE`` or >= 1.
        """
        check_callable(map_func, "map_func", "map")
        if num_parallel_calls is not None:
            num_parallel_calls = check_int(num_parallel_calls, "num_parallel_calls", "map", 1, allow=(AUTOTUNE,))
        return _transforms.Map(self, map_func, num_parallel_calls)

    def filter(self, predicate, name=None):
        """Keeps the elements for which ``predicate`` (called like ``map``'s function) returns a scalar True.

        Raises:
            TypeError: ``predicate`` is not callable. While iterating: ValueError when it returns anything but
                a boolean scalar.
        """
        return _transforms.Filter(self, check_callable(predicate, "predicate", "filter"))

    def repeat(self, count=None, name=None):
        """The dataset ``count`` times over (forever when ``count`` is None or -1)."""
        count = -1 if count is None else check_int(count, "count", "repeat", -1)
        return _transforms.Repeat(self, count)

    def take(self, count, name=None):
        """The first ``count`` elements (all of them when ``count`` is -1)."""
        return _transforms.Take(self, check_int(count, "count", "take", -1))

    def skip(self, count, name=None):
        """All but the first ``count`` elements (none when ``count`` is -1)."""
        return _transforms.Skip(self, check_int(count, "count", "skip", -1))

    def concatenate(self, dataset, name=None):
        """This dataset's elements followed by ``dataset``'s (same structure and dtypes)."""
        return _transforms.Concatenate(self, dataset)

    def enumerate(self, start=0, name=None):
        """Pairs ``(index, element)``, the index an int64 counting from ``start``."""
        start = check_int(start, "start", "enumerate")
        return Dataset.zip(_sources.Range((start, np.iinfo(np.int64).max), dtypes.int64), self)

    def cache(self, filename="", name=None):
        """Remembers the elements of the first complete iteration and replays them afterwards.

        Args:
            filename: ``''`` (the default) caches in memory. A path caches in that file (a NumPy ``.npz``
                archive, written to a temporary name and renamed when the iteration completes, so an interrupted
                iteration leaves no partial cache); an existing file is read instead of running the pipeline.
        """
        return _cache.Cache(self, filename)

    def prefetch(self, buffer_size, name=None):
        """Prepares up to ``buffer_size`` elements ahead on a background thread.

        When the current device is a GPU (the default on a GPU machine), the thread also copies each element to
        it, so iteration yields GPU tensors and the copies overlap the consumer's work. An error raised in the
        pipeline (e.g. in a ``map`` function) is raised again, with its traceback, by the consumer's ``next()``.
        Closing the iterator (or dropping it, e.g. ``break`` out of a ``for`` loop) stops the thread.

        Args:
            buffer_size: elements to hold ahead, >= 1, or ``AUTOTUNE``.

        Raises:
            ValueError: ``buffer_size`` is not ``AUTOTUNE`` or >= 1.
        """
        return _prefetch.Prefetch(self, check_int(buffer_size, "buffer_size", "prefetch", 1, allow=(AUTOTUNE,)))

    def apply(self, transformation_func):
        """``transformation_func(self)``, which must return a Dataset."""
        out = check_callable(transformation_func, "transformation_func", "apply")(self)
        if not isinstance(out, Dataset):
            raise TypeError(f"apply: `transformation_func` must return a Dataset, got {type(out).__name__}")
        return out

    # --- inspecting ------------------------------------------------------------------------------------------
    @property
    def element_spec(self):
        """The structure of :class:`cuflow.TensorSpec` of one element.

        After ``map`` it is read from the first mapped element (cuflow does not trace functions), with the first
        dimension left unknown when the input's was.
        """
        if self._spec_cache is None:
            self._spec_cache = self._compute_spec()
        return self._spec_cache

    def cardinality(self):
        """The number of elements as a scalar int64 Tensor, or ``INFINITE_CARDINALITY`` (-1) /
        ``UNKNOWN_CARDINALITY`` (-2) (e.g. after ``filter`` or for ``from_generator``)."""
        return Tensor(np.asarray(self._cardinality(), dtype=np.int64))

    def __len__(self):
        n = self._cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return n

    def __bool__(self):
        return True  # as tf.data: truthiness must not call __len__ (which raises for infinite datasets)

    def __iter__(self):
        return Iterator(self)

    def as_numpy_iterator(self):
        """Iterates the elements as NumPy arrays (NumPy scalars / bytes for 0-d components)."""
        with iterate(self) as elements:
            for element in elements:
                yield structure.to_numpy(element)

    def __repr__(self):
        return f"<{type(self).__name__}Dataset element_spec={self.element_spec}>"


class Iterator:
    """One pass over a dataset (what ``iter(dataset)`` returns): ``next(it)`` or ``it.get_next()``.

    Dropping the iterator or calling :meth:`close` stops the pipeline, background threads included.
    """

    def __init__(self, dataset):
        self._dataset = dataset
        self._elements = dataset._iterate()

    @property
    def element_spec(self):
        return self._dataset.element_spec

    def __iter__(self):
        return self

    def __next__(self):
        return structure.to_tensors(next(self._elements))

    def get_next(self):
        return next(self)

    def close(self):
        self._elements.close()


# the datasets subclass Dataset, so they are imported once it exists
from . import cache as _cache, prefetch as _prefetch, sources as _sources, transforms as _transforms  # noqa: E402,I001
