"""CIFAR-10 (60,000 32x32 colour images in 10 classes): ``cuflow.keras.datasets.cifar10.load_data()``."""
import numpy as np

from ._download import get_file
from ._formats import load_pickle

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"  # Keras's SHA-256 of the archive
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_data():
    """Loads CIFAR-10: 50,000 32x32 colour training images and 10,000 test images, labelled over 10 classes.

    The archive (163 MB) is downloaded once from the dataset's home at the University of Toronto, checked against
    its SHA-256 and cached in ``$CUFLOW_HOME/datasets``; the batches are read straight out of it (never unpacked to
    disk). They are Python pickles, read with an unpickler that builds only NumPy arrays and plain containers, so a
    tampered file cannot run code. Classes (``CLASS_NAMES``): 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer,
    5 dog, 6 frog, 7 horse, 8 ship, 9 truck.

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``. ``x_train``: uint8, shape
        ``(50000, 32, 32, 3)`` (channels last), values 0 to 255; ``y_train``: uint8 labels 0 to 9, shape
        ``(50000, 1)``; ``x_test``: ``(10000, 32, 32, 3)``; ``y_test``: ``(10000, 1)``.

    Raises:
        cuflow.datasets.DownloadError: (a ``ConnectionError``) the archive is not cached and cannot be downloaded;
            the message names the URL and the path to place a copy at.
        ValueError: the archive fails its checksum (it is deleted), a batch is missing, or a batch holds anything
            but uint8 images with one label each (or names code to run).

    Example:

    >>> from cuflow import keras
    >>> (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()  # doctest: +SKIP
    >>> x_train.shape, y_train.shape  # doctest: +SKIP
    ((50000, 32, 32, 3), (50000, 1))
    """
    import tarfile
    path = get_file(origin=ORIGIN, file_hash=FILE_HASH)
    batches = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:  # one pass through the gzip stream
            name = member.name.removeprefix(FOLDER + "/")
            if member.isfile() and name in (*TRAIN_BATCHES, "test_batch"):
                batches[name] = _read_batch(archive.extractfile(member), f"{path}:{member.name}")
    missing = [name for name in (*TRAIN_BATCHES, "test_batch") if name not in batches]
    if missing:
        raise ValueError(f"{path} lacks the CIFAR-10 batches {[f'{FOLDER}/{name}' for name in missing]}")
    x_train = np.concatenate([batches[name][0] for name in TRAIN_BATCHES])
    y_train = np.concatenate([batches[name][1] for name in TRAIN_BATCHES])
    x_test, y_test = batches["test_batch"]
    return (x_train, y_train), (x_test, y_test)


def _read_batch(file, what):
    """One batch: ``{b'data': uint8 (n, 3072) rows of R, G, B planes, b'labels': n ints}`` -> NHWC images and
    ``(n, 1)`` uint8 labels."""
    batch = load_pickle(file, what)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{what} is not a CIFAR batch: expected a dict with b'data' and b'labels', got {keys}")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{what}: b'data' must be a uint8 array of shape (n, 3072), got {got}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or labels.size and not (
            0 <= labels.min() and labels.max() <= 9):
        raise ValueError(f"{what}: b'labels' must be {len(data)} ints from 0 to 9, got {labels.dtype} "
                         f"{labels.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.uint8).reshape(-1, 1)
