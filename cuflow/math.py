"""``tf.math``: the math ops under TensorFlow's namespace (the same objects as at ``cuflow.*``)."""
from .ops.math import *  # noqa: F401,F403
from .ops.math import __all__ as _math_all
from .ops.math import cumprod, truediv
from .ops.nn import erf, softplus, softsign, sigmoid, tanh, l2_normalize
from .ops.array import cast

__all__ = list(_math_all) + ["cumprod", "truediv", "erf", "softplus", "softsign", "l2_normalize", "cast"]
