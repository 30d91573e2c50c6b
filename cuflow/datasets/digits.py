"""scikit-learn's 8x8 handwritten digits, split like a Keras dataset: ``cuflow.keras.datasets.digits``.

The offline dataset: it ships inside scikit-learn (``pip install 'cuflow[demo]'``), so demos, notebooks and tests
train on real images without a network. 1,797 images of 8x8 pixels, 16 grey levels.
"""
import numpy as np

__all__ = ["load_data"]


def load_data(test_split=0.2, seed=113):
    """Loads the 1,797 8x8 digits of scikit-learn (``sklearn.datasets.load_digits``), shuffled and split.

    Args:
        test_split: the fraction of the images held out for the test set, in (0, 1).
        seed: the seed of the shuffle before the split (Keras's dataset default, 113), so the split is fixed.

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``. ``x_*``: uint8 images of shape ``(n, 8, 8)``
        with values 0 to 16 (the scan's grey levels; divide by 16 for [0, 1]); ``y_*``: uint8 labels 0 to 9 of
        shape ``(n,)``. With the defaults n = 1438 and 359.

    Raises:
        ImportError: scikit-learn is not installed.
        ValueError: ``test_split`` is not in (0, 1).

    Example:

    >>> from cuflow import keras
    >>> (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    >>> x_train.shape, x_test.shape, y_train.dtype
    ((1438, 8, 8), (359, 8, 8), dtype('uint8'))
    """
    if not 0 < test_split < 1:
        raise ValueError(f"digits.load_data: test_split must be in (0, 1), got {test_split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits dataset ships with scikit-learn: pip install 'cuflow[demo]' "
                          "(or pip install scikit-learn)") from None
    data = load_digits()
    x, y = data.images.astype(np.uint8), data.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = len(x) - int(round(test_split * len(x)))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
