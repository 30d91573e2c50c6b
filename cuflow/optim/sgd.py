"""Stochastic gradient descent, with optional (Nesterov) momentum."""
import numpy as np

from ..ops.base import xp
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent with momentum (Keras 3 formulas).

    Without momentum: ``var -= lr * g``. With momentum: ``m = momentum * m - lr * g`` and ``var += m``, or with
    ``nesterov=True`` ``var += momentum * m - lr * g``.

    Args:
        learning_rate: float or schedule (default 0.01).
        momentum: float in ``[0, 1]`` (default 0).
        nesterov: use Nesterov momentum.
        **kwargs: the base :class:`Optimizer`'s arguments (``clipnorm``, ``weight_decay``, ...).

    Example:

    >>> import cuflow as tf
    >>> from cuflow.optim import SGD
    >>> v = tf.Variable([1.0])
    >>> _ = SGD(0.1).apply_gradients([(tf.constant([2.0]), v)])
    >>> v.numpy()
    array([0.8], dtype=float32)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.nesterov = nesterov

    def slot_names(self):
        return ("momentum",) if self.momentum else ()

    def update(self, var, grad, slots):
        # the formulas of the class docstring, each temporary written into a work array (same rounding)
        module = xp(var)
        work = self._work_arrays(var, 2 if self.nesterov and self.momentum else 1)
        step = work[0]
        module.multiply(grad, self._lr, out=step)  # lr * g
        if not self.momentum:
            var -= step
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= step
        if self.nesterov:
            look_ahead = work[1]
            module.multiply(m, self.momentum, out=look_ahead)
            look_ahead -= step
            var += look_ahead
        else:
            var += m

    def fused_update(self, dtype):
        t = dtype.type
        return "sgd_update", (t(self._lr), t(self.momentum), np.int32(bool(self.momentum)),
                              np.int32(bool(self.nesterov)))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
