"""``cuflow.keras.utils``: Keras's data helpers (``to_categorical``, ``normalize``, ``pad_sequences``,
``split_dataset``, ``set_random_seed``, ``get_file``), ``plot_history`` for the curves ``fit`` returns, and the
serialization registry Keras also lists here (``register_keras_serializable``..., from :mod:`cuflow.saving`).

NumPy in, NumPy out, as in Keras; ``to_categorical`` and ``normalize`` given a cuflow Tensor return a Tensor on its
device.
"""
import random as _python_random

import numpy as np

from .datasets._download import get_file, validate_file
from .saving import (CustomObjectScope, custom_object_scope, deserialize_keras_object, get_custom_objects,
                     get_registered_name, get_registered_object, register_keras_serializable, serialize_keras_object)
from .tensor import Tensor

__all__ = ["to_categorical", "normalize", "pad_sequences", "split_dataset", "set_random_seed", "get_file",
           "validate_file", "plot_history",
           # Keras also offers the serialization registry from keras.utils; the home is cuflow.saving
           "register_keras_serializable", "custom_object_scope", "CustomObjectScope", "get_custom_objects",
           "get_registered_name", "get_registered_object", "serialize_keras_object", "deserialize_keras_object"]


def to_categorical(x, num_classes=None, dtype="float32"):
    """Converts a class vector (integers) to a one-hot class matrix, e.g. for ``categorical_crossentropy``.

    Args:
        x: array-like of class indices from 0 to ``num_classes - 1``; a trailing axis of size 1 (labels shaped
            ``(n, 1)``, like CIFAR-10's) is dropped, as in Keras.
        num_classes: the number of classes; None infers ``max(x) + 1``.
        dtype: the output dtype (tf.keras 2's argument; Keras 3 always returns floats).

    Returns:
        A NumPy array of shape ``x.shape + (num_classes,)`` (a cuflow Tensor, on its device, for a Tensor ``x``).

    Raises:
        ValueError: ``x`` holds non-integers, negative values or values ``>= num_classes``.

    Example:

    >>> from cuflow import keras
    >>> keras.utils.to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(x.numpy() if isinstance(x, Tensor) else x)
    if labels.size and labels.dtype.kind not in "iub":
        if labels.dtype.kind != "f" or not np.all(labels == np.round(labels)):
            raise ValueError(f"to_categorical: x must hold integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"to_categorical: class indices must be in [0, num_classes={num_classes}), got values from "
                         f"{labels.min()} to {labels.max()}")
    out = np.eye(num_classes, dtype=dtype)[labels]
    if isinstance(x, Tensor):
        from .devices import to_device
        return Tensor(to_device(out, x.device_object))
    return out


def normalize(x, axis=-1, order=2):
    """Divides ``x`` by its ``order``-norm along ``axis`` (zero vectors stay zero), as ``keras.utils.normalize``.

    Args:
        x: a NumPy array (or array-like) or a cuflow Tensor.
        axis: the axis along which to normalize.
        order: the norm's order (2 for L2, 1 for L1, ``np.inf``...), as in ``np.linalg.norm``.

    Returns:
        A normalized copy, of the same kind as ``x``.

    Example:

    >>> from cuflow import keras
    >>> keras.utils.normalize([[3.0, 4.0], [0.0, 0.0]])
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    if isinstance(x, Tensor):
        from . import ops
        size = ops.abs(x)
        if order == np.inf:
            norm = ops.reduce_max(size, axis=axis, keepdims=True)
        else:
            norm = ops.reduce_sum(size ** order, axis=axis, keepdims=True) ** (1.0 / order)
        return x / ops.where(norm == 0, ops.ones_like(norm), norm)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norm = np.linalg.norm(x, order, axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pads (or truncates) a list of sequences to one length: a ``(len(sequences), maxlen)`` NumPy array.

    Args:
        sequences: a list of sequences (lists or arrays; each item may itself be an array of a common shape).
        maxlen: the output length; None takes the longest sequence's.
        dtype: the output dtype (``object`` for strings).
        padding: ``'pre'`` or ``'post'``: pad at the start or at the end.
        truncating: ``'pre'`` or ``'post'``: drop values from the start or from the end of longer sequences.
        value: the padding value.

    Returns:
        A NumPy array of shape ``(len(sequences), maxlen) + item_shape``.

    Raises:
        ValueError: a bad ``padding``/``truncating``, a non-sequence item, mismatched item shapes, or a string
            ``value`` with a numeric ``dtype``.

    Example:

    >>> from cuflow import keras
    >>> keras.utils.pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2)
    array([[0, 1],
           [2, 3],
           [5, 6]], dtype=int32)
    """
    for name, given in (("padding", padding), ("truncating", truncating)):
        if given not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {name} must be 'pre' or 'post', got {given!r}")
    try:
        lengths = [len(s) for s in sequences]
    except TypeError as error:
        raise ValueError(f"pad_sequences: sequences must be a list of sequences ({error})") from None
    item_shape = next((np.asarray(s).shape[1:] for s in sequences if len(s)), ())
    if maxlen is None:
        maxlen = max(lengths, default=0)
    textual = dtype is object or np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and not textual:
        raise ValueError(f"pad_sequences: a string value {value!r} needs dtype=object, got dtype={dtype!r}")
    out = np.full((len(lengths), maxlen) + item_shape, value, dtype=dtype)
    for i, sequence in enumerate(sequences):
        if not len(sequence) or not maxlen:
            continue
        kept = np.asarray(sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen], dtype=dtype)
        if kept.shape[1:] != item_shape:
            raise ValueError(f"pad_sequences: sequence {i} has items of shape {kept.shape[1:]}, expected "
                             f"{item_shape} like the first non-empty sequence")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, maxlen - len(kept):] = kept
    return out


def _split_sizes(left_size, right_size, total):
    """Keras's rules: floats are fractions in (0, 1), ints are counts in (0, total); None is the complement."""
    if left_size is None and right_size is None:
        raise ValueError("split_dataset: give left_size or right_size (or both), got neither")
    sizes = {}
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, float)):
            raise TypeError(f"split_dataset: {name} must be an int, a float or None, got {type(size).__name__}")
        if isinstance(size, float) and not 0 < size < 1 or isinstance(size, int) and not 0 < size < total:
            raise ValueError(f"split_dataset: {name} must be a fraction in (0, 1) or a count in (0, {total}), "
                             f"got {size!r}")
        sizes[name] = round(size * total) if isinstance(size, float) else size
    left = sizes.get("left_size", total - sizes.get("right_size", 0))
    right = sizes.get("right_size", total - left)
    if left + right > total or not left or not right:
        raise ValueError(f"split_dataset: left_size={left_size!r} and right_size={right_size!r} give {left} and "
                         f"{right} of {total} samples; both must be non-empty and sum to at most {total}")
    return left, right


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Splits a dataset into a left and a right part (e.g. train and validation), as ``keras.utils.split_dataset``.

    Args:
        dataset: a NumPy array, a tuple, list or dict of arrays of the same length, or a ``cuflow.data.Dataset``
            of single (unbatched) elements.
        left_size: a fraction in (0, 1) or a number of samples for the left part; None: the complement of
            ``right_size``.
        right_size: likewise for the right part, taken from the end.
        shuffle: shuffle the samples before splitting.
        seed: the shuffle's seed.

    Returns:
        Two ``cuflow.data.Dataset`` objects: the left and the right part.

    Raises:
        ValueError: sizes out of range, arrays of different lengths, or an empty dataset.
        TypeError: sizes that are not ints or floats.

    Example:

    >>> import numpy as np
    >>> from cuflow import keras
    >>> left, right = keras.utils.split_dataset(np.arange(10.0), left_size=0.8)
    >>> int(left.cardinality()), int(right.cardinality())
    (8, 2)
    """
    from .data import Dataset
    from .data.structure import flatten, map_structure
    structure = _as_arrays(dataset, Dataset)
    lengths = [len(a) for a in flatten(structure)]
    if len(set(lengths)) != 1:
        raise ValueError(f"split_dataset: the arrays must have the same length, got lengths {lengths}")
    total = lengths[0]
    if not total:
        raise ValueError("split_dataset: the dataset is empty")
    left, right = _split_sizes(left_size, right_size, total)
    order = np.random.default_rng(seed).permutation(total) if shuffle else np.arange(total)
    parts = (order[:left], order[total - right:])
    return tuple(Dataset.from_tensor_slices(map_structure(lambda a, rows=rows: a[rows], structure)) for rows in parts)


def _as_arrays(dataset, Dataset):
    """``dataset`` as a structure (array, or tuple/dict of them) of NumPy arrays with the samples along axis 0."""
    from .data.structure import flatten, map_structure, pack_as
    if isinstance(dataset, Dataset):
        elements = list(dataset.as_numpy_iterator())
        if not elements:
            raise ValueError("split_dataset: the dataset is empty")
        columns = zip(*(flatten(element) for element in elements))
        return pack_as(elements[0], [np.stack(column) for column in columns])
    if isinstance(dataset, list):
        dataset = tuple(dataset)
    if isinstance(dataset, (tuple, dict, np.ndarray, Tensor)):
        return map_structure(np.asarray, dataset)
    raise TypeError(f"split_dataset: dataset must be an array, a tuple/list/dict of arrays or a cuflow.data.Dataset, "
                    f"got {type(dataset).__name__}")


def set_random_seed(seed):
    """Seeds Python's ``random``, NumPy's global generator and cuflow's (``cuflow.random.set_seed``) at once, so
    a program that draws from any of them repeats, as ``keras.utils.set_random_seed``.

    Raises:
        ValueError: ``seed`` is not an int (Keras's error).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"set_random_seed: expected seed to be an integer, got {seed!r} of type "
                         f"{type(seed).__name__}")
    from .random import set_seed
    _python_random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    set_seed(int(seed))


def plot_history(history, metrics=None, ax=None):
    """Plots the per-epoch curves of a ``History`` (what ``fit`` returns): one panel per metric, the training
    curve and, when ``fit`` had validation data, the ``val_`` curve beside it.

    Needs matplotlib (``pip install 'cuflow[plot]'``).

    Args:
        history: a ``keras.callbacks.History`` or its ``.history`` dict.
        metrics: the names to plot, e.g. ``['loss', 'accuracy']``; None plots every metric that has no ``val_``
            prefix.
        ax: a matplotlib ``Axes`` (one metric) or a list of them (one per metric) to draw into; None makes a new
            figure with one panel per metric.

    Returns:
        The list of ``Axes`` drawn into.

    Raises:
        ValueError: a metric the history does not hold, an empty history, or ``ax`` of another length than the
            metrics.
        ImportError: matplotlib is not installed.

    Example:

    >>> import numpy as np
    >>> from cuflow import keras
    >>> model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> history = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=3, validation_split=0.25, verbose=0)
    >>> axes = keras.utils.plot_history(history)  # doctest: +SKIP
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"plot_history: expected a History or a non-empty dict of per-epoch lists, got {history!r}")
    names = [k for k in logs if not k.startswith("val_")] if metrics is None else list(metrics)
    unknown = [m for m in names if m not in logs and f"val_{m}" not in logs]
    if unknown or not names:
        raise ValueError(f"plot_history: metrics {unknown or names} are not in the history, which holds "
                         f"{sorted(logs)}")
    try:
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("plot_history needs matplotlib: pip install 'cuflow[plot]'") from None
    if ax is None:
        _, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if len(axes) != len(names):
            raise ValueError(f"plot_history: got {len(axes)} Axes for {len(names)} metrics {names}")
    for panel, name in zip(axes, names):
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            if key in logs:
                values = [float(v) for v in logs[key]]
                panel.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=label)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        panel.set_xlabel("epoch")
        panel.set_ylabel(name)
        panel.set_title(name)
        panel.legend()
    return axes
