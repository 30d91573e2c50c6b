"""``cuflow.keras.datasets``: Keras's small datasets, downloaded once, checked and cached, plus an offline one.

``mnist``, ``fashion_mnist`` and ``cifar10`` return what Keras returns (same dtypes and shapes); their files are
downloaded on first use, verified against Keras's SHA-256 and cached in ``$CUFLOW_HOME/datasets`` (default
``~/.cuflow/datasets``). ``digits`` is scikit-learn's 8x8 digits and needs no network.
"""
from . import cifar10, digits, fashion_mnist, mnist
from ._download import DownloadError, cuflow_home

__all__ = ["mnist", "fashion_mnist", "cifar10", "digits", "DownloadError", "cuflow_home"]
