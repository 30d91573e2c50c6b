"""``cuflow.random``: TensorFlow's ``tf.random`` namespace.

The generator (Philox4x32-10, the same numbers on the CPU and the GPU) and the seed rules live in
:mod:`cuflow.ops.random`; this module only gives them their public names.
"""
from .ops.random import (Generator, categorical, normal, set_seed, shuffle, stateless_normal,
                         stateless_truncated_normal, stateless_uniform, truncated_normal, uniform)

__all__ = [
    "Generator", "categorical", "normal", "set_seed", "shuffle", "stateless_normal", "stateless_truncated_normal",
    "stateless_uniform", "truncated_normal", "uniform",
]
