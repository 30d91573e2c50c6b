"""How ``fit``/``evaluate``/``predict`` read their data: one adapter per kind, each yielding ``(x, y,
sample_weight)`` per step.

- :class:`ArrayAdapter`: NumPy arrays, Tensors, nested Python lists, and lists/dicts of them (several inputs or
  outputs), cut into batches (shuffled each epoch when asked).
- :class:`IterableAdapter`: anything else that iterates batches (a ``cuflow.data.Dataset``, a generator, an
  iterator) or is indexed by batch (a ``keras.utils.PyDataset``-like object with ``__getitem__`` and ``__len__``).
  Each batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; its tensors pass through untouched (a
  prefetched batch already on the GPU is not copied through NumPy).

Structures (lists, dicts) pass through both, so a model with several inputs or outputs gets its own layout.
"""
import math
import numbers
import warnings

import numpy as np

from .. import devices as _devices
from .. import dtypes
from ..tensor import Tensor
from ..ops import random as _random

__all__ = ["ArrayAdapter", "IterableAdapter", "is_iterable_data", "map_data", "split_arrays",
           "unpack_x_y_sample_weight"]


def is_iterable_data(x):
    """Whether ``x`` is a source of batches rather than arrays: it iterates, or it is indexed by batch
    (``__getitem__`` + ``__len__``), and it is not an array, a Tensor, a list, a tuple or a dict."""
    if x is None or isinstance(x, (np.ndarray, Tensor, list, tuple, dict, str, bytes, numbers.Number)):
        return False
    if hasattr(x, "__array__") or getattr(x, "_is_keras_tensor", False):  # pandas, CuPy arrays: data, not batches
        return False
    return hasattr(x, "__iter__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


def _is_structure(value):
    """A dict, or a list/tuple of arrays, Tensors or dicts (several inputs/outputs) rather than nested numbers."""
    if isinstance(value, dict):
        return True
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, dict) or (hasattr(v, "__array__") and np.ndim(v) >= 1) for v in value)


def map_data(fn, value):
    """``fn`` applied to each leaf (array) of a data structure; None stays None."""
    if value is None:
        return None
    if not _is_structure(value):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_data(fn, v) for k, v in value.items()}
    return type(value)(map_data(fn, v) for v in value)


def _leaves(value):
    if value is None:
        return []
    if not _is_structure(value):
        return [value]
    return [leaf for v in (value.values() if isinstance(value, dict) else value) for leaf in _leaves(v)]


def _count(what, x, y, sample_weight):
    """The number of samples, checking every array has it."""
    xs = _leaves(x)
    if not xs:
        raise ValueError(f"{what}: x is required")
    if any(a.ndim == 0 for a in xs):
        raise ValueError(f"{what}: x must have a batch dimension, got a scalar")
    n = len(xs[0])
    for name, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for a in _leaves(value):
            if a.ndim == 0 or len(a) != n:
                pair = "all inputs" if name == "x" else f"x and {name}"
                raise ValueError(f"{what}: {pair} must have the same number of samples, got {n} and "
                                 f"{len(a) if a.ndim else 'a scalar'}")
    return n


def split_arrays(x, y, sample_weight, validation_split):
    """Keras's ``validation_split``: the last fraction of the samples (before shuffling) held out.

    Returns:
        ``(x, y, sample_weight)`` to train on and the same triple to validate on.
    """
    if not 0 < validation_split < 1:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
    x, y, sample_weight = (map_data(np.asarray, v) for v in (x, y, sample_weight))
    cut = int(_count("fit", x, y, sample_weight) * (1 - validation_split))
    head = tuple(map_data(lambda a: a[:cut], v) for v in (x, y, sample_weight))
    tail = tuple(map_data(lambda a: a[cut:], v) for v in (x, y, sample_weight))
    return head, tail


class ArrayAdapter:
    """Arrays cut into batches of ``batch_size`` (default 32).

    ``steps`` (default: one pass) wraps around the data; ``shuffle`` draws a new order each epoch from
    ``cuflow.random`` (so ``tf.random.set_seed`` fixes it).
    """

    def __init__(self, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False, what="fit"):
        self.x, self.y, self.sample_weight = (map_data(np.asarray, v) for v in (x, y, sample_weight))
        self.num_samples = _count(what, self.x, self.y, self.sample_weight)
        self.batch_size = batch_size or 32
        self.steps = steps or max(1, math.ceil(self.num_samples / self.batch_size))
        self.shuffle = shuffle

    def arrays(self):
        """All the data as one batch."""
        return self.x, self.y, self.sample_weight

    def epoch(self):
        """Yields one epoch's ``(x, y, sample_weight)`` batches."""
        n, size = self.num_samples, self.batch_size
        order = _shuffled(n) if self.shuffle else None
        for step in range(self.steps):
            start = (step * size) % n
            index = slice(start, start + size) if order is None else order[start:start + size]
            yield tuple(map_data(lambda a: a[index], v) for v in (self.x, self.y, self.sample_weight))


def _shuffled(n):
    with _devices.device("/CPU:0"):  # the order follows tf.random.set_seed
        seed = int(np.asarray(_random.uniform([], maxval=2 ** 31 - 1, dtype=dtypes.int64)))
    return np.random.default_rng(seed).permutation(n)


def unpack_x_y_sample_weight(data):
    """A batch as ``(x, y, sample_weight)``: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (Keras's rule:
    a list counts as a tuple)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) in (1, 2, 3):
        return tuple(data) + (None,) * (3 - len(data))
    raise ValueError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, found a "
                     f"tuple of {len(data)} elements")


def _known_length(data):
    """The number of batches if ``data`` says: ``len(data)``, else ``data.cardinality()`` (-1: infinite, as
    ``tf.data``), else None."""
    try:
        return int(len(data))
    except TypeError:
        pass
    cardinality = getattr(data, "cardinality", None)
    if callable(cardinality):
        n = int(cardinality())
        return n if n >= 0 or n == INFINITE else None
    return None


INFINITE = -1


def warn_ran_out():
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
                  "generate at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` function "
                  "when building your dataset.", stacklevel=3)


class IterableAdapter:
    """Batches from an iterable (re-iterated each epoch; a one-shot iterator or generator is consumed once) or from
    an object indexed by batch (``data[i]`` for ``i < len(data)``, then ``data.on_epoch_end()`` if it has one).

    ``steps`` is the number of batches per epoch: given, it reads them from one iterator kept across epochs (so an
    infinite ``repeat()``-ed dataset works, as in Keras), restarted when the data's known length is reached;
    otherwise ``len(data)`` or ``data.cardinality()`` when known (for the progress bar), and each epoch runs until
    the data is exhausted.
    """

    def __init__(self, data, steps=None, steps_name="steps_per_epoch"):
        self.data = data
        self.indexed = not hasattr(data, "__iter__")
        self.length = _known_length(data)
        if self.length == INFINITE:
            if steps is None:
                raise ValueError(f"When passing an infinitely repeating dataset, please specify a `{steps_name}` "
                                 "value so that each epoch ends")
            self.length = None
        self.keep_iterator = steps is not None
        self.steps = steps if steps is not None else self.length
        self._iterator, self._taken = None, 0

    def _batches(self):
        if not self.indexed:
            return iter(self.data)
        return (self.data[i] for i in range(len(self.data)))

    def _drop_iterator(self):
        close = getattr(self._iterator, "close", None)
        if callable(close):
            close()  # a Dataset iterator stops its background threads
        self._iterator = None

    def epoch(self):
        """Yields one epoch's ``(x, y, sample_weight)`` batches."""
        if not self.keep_iterator:
            for batch in self._batches():
                yield unpack_x_y_sample_weight(batch)
        else:
            if self._iterator is None:
                self._iterator, self._taken = self._batches(), 0
            for _ in range(self.steps):
                if self.length is not None and self._taken >= self.length:
                    warn_ran_out()
                    break
                try:
                    batch = next(self._iterator)
                except StopIteration:
                    warn_ran_out()
                    self._drop_iterator()
                    return
                self._taken += 1
                yield unpack_x_y_sample_weight(batch)
            if self.length is not None and self._taken >= self.length:
                self._drop_iterator()  # the data's end: the next epoch starts it again
        if self.indexed and callable(getattr(self.data, "on_epoch_end", None)):
            self.data.on_epoch_end()
