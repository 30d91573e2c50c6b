"""``tf.data.experimental``: the cardinality constants and helpers that TensorFlow keeps under this name."""
from .. import devices as _devices
from .dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, check_int

__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "cardinality", "prefetch_to_device"]


def cardinality(dataset):
    """``dataset.cardinality()``: its number of elements (a scalar int64 Tensor), or -1 (infinite) / -2 (unknown)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"cardinality: `dataset` must be a Dataset, got {type(dataset).__name__}")
    return dataset.cardinality()


def prefetch_to_device(device, buffer_size=None):
    """A transformation for ``dataset.apply`` that prefetches onto ``device`` (e.g. ``'/GPU:0'``), whatever the
    current device is when iterating.

    Raises:
        ValueError: ``device`` names no device.
        cuflow.errors.UnavailableError: it names a GPU and none is present.
    """
    from .prefetch import Prefetch
    target = _devices.parse(device)
    size = AUTOTUNE if buffer_size is None else check_int(buffer_size, "buffer_size", "prefetch_to_device", 1,
                                                          allow=(AUTOTUNE,))
    return lambda dataset: Prefetch(dataset, size, device=target)
