"""``keras.backend``: Keras 3's global settings — the default float type, the fuzz factor, the image layout — and
``clear_session``. The settings are plain module state with Keras's defaults and validation.
"""
import gc

from . import dtypes

__all__ = ["backend", "clear_session", "epsilon", "set_epsilon", "floatx", "set_floatx", "image_data_format",
           "set_image_data_format", "standardize_data_format"]

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_FLOAT_TYPES = ("bfloat16", "float16", "float32", "float64")
_DATA_FORMATS = ("channels_first", "channels_last")


def backend():
    """The name of the backend: ``'cuflow'`` (Keras 3 answers ``'tensorflow'``, ``'jax'``, ``'torch'``...)."""
    return "cuflow"


def floatx():
    """The default float type, as a string (``'float32'`` unless :func:`set_floatx` changed it).

    Example:

    >>> from cuflow import keras
    >>> keras.backend.floatx()
    'float32'
    """
    return _FLOATX


def set_floatx(value):
    """Sets the default float type returned by :func:`floatx`: ``'bfloat16'``, ``'float16'``, ``'float32'`` or
    ``'float64'``. For mixed precision use ``keras.mixed_precision.set_global_policy`` instead, as Keras recommends.

    Raises:
        ValueError: ``value`` is not one of the four float types.
    """
    global _FLOATX
    name = value.name if isinstance(value, dtypes.DType) else str(value)
    if name not in _FLOAT_TYPES:
        raise ValueError(f"Unknown `floatx` value: {value!r}. Expected one of {set(_FLOAT_TYPES)}")
    dtypes.as_dtype(name)  # bfloat16 needs ml_dtypes: fail here, not when the first layer is built
    _FLOATX = name


def epsilon():
    """The fuzz factor used in numeric expressions (``1e-7``), e.g. to keep probabilities off 0 and 1."""
    return _EPSILON


def set_epsilon(value):
    """Sets the fuzz factor returned by :func:`epsilon`.

    Raises:
        ValueError: ``value`` is not a positive number.
    """
    global _EPSILON
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not number > 0:
        raise ValueError(f"set_epsilon: epsilon must be a positive number, got {value!r}")
    _EPSILON = number


def image_data_format():
    """The image layout convention: ``'channels_last'`` (``(batch, height, width, channels)``), cuflow's default."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    """Sets the value returned by :func:`image_data_format`: ``'channels_last'`` or ``'channels_first'``.

    Raises:
        ValueError: any other value.
    """
    global _IMAGE_DATA_FORMAT
    _IMAGE_DATA_FORMAT = standardize_data_format(data_format)


def standardize_data_format(data_format):
    """``data_format``, lower-cased, or :func:`image_data_format` when it is None.

    Raises:
        ValueError: not ``'channels_last'`` or ``'channels_first'``.
    """
    if data_format is None:
        return _IMAGE_DATA_FORMAT
    name = str(data_format).lower()
    if name not in _DATA_FORMATS:
        raise ValueError(f"The `data_format` argument must be one of {set(_DATA_FORMATS)}. Received: "
                         f"data_format={data_format!r}")
    return name


def clear_session(free_memory=True):
    """Resets the state Keras keeps across models: auto-generated layer names start over (``dense``,
    ``dense_1``... again). With ``free_memory`` it also collects garbage and returns the GPU's cached memory
    blocks (CuPy's memory pool) to the device.

    Example:

    >>> from cuflow import keras
    >>> keras.backend.clear_session()
    >>> keras.layers.Dense(2).name
    'dense'
    """
    from .layers import base
    base._name_counts.clear()
    if free_memory:
        gc.collect()
        _free_gpu_memory()


def _free_gpu_memory():
    from . import kernels
    if kernels._gpu is None:  # the GPU backend was never used in this process: nothing is cached
        return
    pool = getattr(kernels._gpu.cupy, "get_default_memory_pool", None)
    if pool is not None:
        pool().free_all_blocks()
