"""MNIST handwritten digits: ``cuflow.keras.datasets.mnist.load_data()``, as in Keras."""
import numpy as np

from ._download import cached_path, get_file, validate_file

__all__ = ["load_data", "is_cached"]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # Keras's SHA-256 of mnist.npz
_SHAPES = {"x_train": (None, 28, 28), "y_train": (None,), "x_test": (None, 28, 28), "y_test": (None,)}


def load_data(path="mnist.npz"):
    """Loads the MNIST dataset: 60,000 28x28 grayscale training images of the 10 digits and 10,000 test images.

    Downloaded once from Keras's mirror (11 MB), checked against its SHA-256 and cached in
    ``$CUFLOW_HOME/datasets`` (default ``~/.cuflow/datasets``).

    Args:
        path: the file's name in the cache (relative to ``~/.cuflow/datasets``), or an absolute path.

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``. ``x_train``: uint8, shape
        ``(60000, 28, 28)``, values 0 to 255; ``y_train``: uint8 digit labels 0 to 9, shape ``(60000,)``;
        ``x_test``: uint8, ``(10000, 28, 28)``; ``y_test``: uint8, ``(10000,)``.

    Raises:
        cuflow.datasets.DownloadError: (a ``ConnectionError``) the file is not cached and cannot be downloaded;
            the message names the URL and the path to place a copy at.
        ValueError: the file fails its checksum (it is deleted) or does not hold MNIST's four arrays.

    Example:

    >>> from cuflow import keras
    >>> (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, y_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    path = get_file(path, origin=ORIGIN, file_hash=FILE_HASH)
    with np.load(path, allow_pickle=False) as f:  # plain arrays: nothing in the file is unpickled
        missing = sorted(set(_SHAPES) - set(f.files))
        if missing:
            raise ValueError(f"{path} holds {sorted(f.files)}, not MNIST's arrays (missing {missing})")
        arrays = {name: f[name] for name in _SHAPES}
    for name, shape in _SHAPES.items():
        got = arrays[name].shape
        if len(got) != len(shape) or any(want not in (None, n) for want, n in zip(shape, got)):
            raise ValueError(f"{path}: {name} has shape {got}, expected {shape}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def is_cached(path="mnist.npz"):
    """Whether MNIST is in the cache with the right checksum, so ``load_data(path)`` needs no network."""
    file = cached_path(path)
    return file.is_file() and validate_file(file, FILE_HASH)
