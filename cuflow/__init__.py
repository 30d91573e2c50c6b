"""cuflow: a GPU-first deep-learning framework with TensorFlow's and Keras's names.

``import cuflow as tf`` gives tensors on NumPy (CPU) and CuPy (GPU), ops with gradients, ``GradientTape`` and
``Variable``. See README.md for a tour.
"""
from . import dtypes, errors
from .dtypes import (DType, as_dtype, float16, bfloat16, float32, float64, int8, int16, int32, int64, uint8,
                     uint16, uint32, uint64, bool, string)
from .devices import device
from .tensor import Tensor, Variable, TensorShape, constant, convert_to_tensor, is_tensor, from_dlpack
from .tape import GradientTape
from . import ops
from .ops import *  # noqa: F401,F403
from . import config, math, nn, random, testing
from . import losses, metrics, optim
from . import activations, initializers, regularizers, layers, models, keras
from . import data
from .data import TensorSpec

optimizers = optim

__version__ = "0.1.0"


def executing_eagerly():
    """True: cuflow runs ops eagerly (``cuflow.function`` tracing comes later)."""
    return True
