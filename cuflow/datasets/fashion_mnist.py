"""Fashion-MNIST (Zalando's 28x28 clothing images): ``cuflow.keras.datasets.fashion_mnist.load_data()``."""
from ._download import get_file
from ._formats import read_idx

__all__ = ["load_data"]

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_HASHES = {  # Keras's SHA-256 of each archive
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
}
CACHE_SUBDIR = "datasets/fashion-mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


def load_data():
    """Loads Fashion-MNIST: 60,000 28x28 grayscale training images of 10 kinds of clothing, 10,000 test images.

    A drop-in replacement for MNIST. The four IDX files (30 MB) are downloaded once from Keras's mirror, checked
    against their SHA-256 and cached in ``$CUFLOW_HOME/datasets/fashion-mnist``. Labels name ``CLASS_NAMES``:
    0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``; ``x_*`` uint8 of shape ``(n, 28, 28)``,
        ``y_*`` uint8 labels of shape ``(n,)``, n = 60000 and 10000.

    Raises:
        cuflow.datasets.DownloadError: (a ``ConnectionError``) a file is not cached and cannot be downloaded; the
            message names the URL and the path to place a copy at.
        ValueError: a file fails its checksum (it is deleted), or an IDX header does not describe 28x28 uint8
            images with one label each.

    Example:

    >>> from cuflow import keras
    >>> (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, y_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000,))
    """
    paths = {name: get_file(name, origin=BASE + name, file_hash=digest, cache_subdir=CACHE_SUBDIR)
             for name, digest in FILE_HASHES.items()}
    splits = []
    for prefix in ("train", "t10k"):
        labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"], (None,))
        images = read_idx(paths[f"{prefix}-images-idx3-ubyte.gz"], (len(labels), 28, 28))
        for what, array in (("images", images), ("labels", labels)):
            if array.dtype != "uint8":
                raise ValueError(f"{paths[f'{prefix}-{what}-idx{array.ndim}-ubyte.gz']}: expected uint8 {what}, "
                                 f"the IDX header says {array.dtype}")
        splits.append((images, labels))
    return tuple(splits)
