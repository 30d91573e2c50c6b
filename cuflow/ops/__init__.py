"""Every public op, declared once (forward + gradient). See :mod:`cuflow.ops.base` for how."""
from .base import Op, op
from .math import *  # noqa: F401,F403
from .math import __all__ as _math_all
from .array import *  # noqa: F401,F403
from .array import __all__ as _array_all
from . import math, array
from ..tensor import Tensor, constant, convert_to_tensor

__all__ = ["Op", "op", "constant", "convert_to_tensor"] + _math_all + _array_all


def _method(fn):
    call = fn.__call__  # the bound Op.__call__: one frame fewer than going through the Op object
    return lambda self, other: call(self, other)


def _reflected(fn):
    call = fn.__call__
    return lambda self, other: call(other, self)


def _unary(fn):
    call = fn.__call__
    return lambda self: call(self)


def _overload_operators():
    """Gives Tensor its Python operators (TensorFlow registers them the same way, from its math ops)."""
    binary = {"add": math.add, "sub": math.subtract, "mul": math.multiply, "truediv": math.divide,
              "floordiv": math.floordiv, "mod": math.floormod, "pow": math.pow, "matmul": math.matmul}
    for name, fn in binary.items():
        setattr(Tensor, f"__{name}__", _method(fn))
        setattr(Tensor, f"__r{name}__", _reflected(fn))
    for name, fn in {"lt": math.less, "le": math.less_equal, "gt": math.greater, "ge": math.greater_equal,
                     "and": math.logical_and, "or": math.logical_or, "xor": math.logical_xor}.items():
        setattr(Tensor, f"__{name}__", _method(fn))
    # TF2: elementwise ==, except that comparing with None is plain False/True
    Tensor.__eq__ = lambda self, other: False if other is None else math.equal(self, other)
    Tensor.__ne__ = lambda self, other: True if other is None else math.not_equal(self, other)
    Tensor.__rand__ = _reflected(math.logical_and)
    Tensor.__ror__ = _reflected(math.logical_or)
    Tensor.__rxor__ = _reflected(math.logical_xor)
    Tensor.__neg__ = _unary(math.negative)
    Tensor.__pos__ = lambda self: self
    Tensor.__abs__ = _unary(math.abs)
    Tensor.__invert__ = _unary(math.logical_not)
    Tensor.__getitem__ = _method(array.getitem)


_overload_operators()
