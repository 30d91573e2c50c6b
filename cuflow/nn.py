"""``tf.nn``: activations, convolution, pooling and losses. The ops themselves live in :mod:`cuflow.ops.nn`."""
from .ops.nn import *  # noqa: F401,F403
from .ops.nn import __all__  # noqa: F401
