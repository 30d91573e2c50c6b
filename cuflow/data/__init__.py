"""``cuflow.data`` (``tf.data``): input pipelines.

``Dataset.from_tensor_slices((X, y)).shuffle(1000).batch(32).prefetch(tf.data.AUTOTUNE)`` builds a pipeline;
iterating it yields cuflow Tensors, and ``Model.fit`` takes it as ``x``. See docs/data.md.
"""
from . import experimental
from .dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, Iterator
from .structure import TensorSpec

__all__ = ["Dataset", "Iterator", "TensorSpec", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY",
           "experimental"]
