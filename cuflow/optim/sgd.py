"""Stochastic gradient descent, with optional (Nesterov) momentum."""
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
        lr = self._lr
        if not self.momentum:
            var -= lr * grad
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= lr * grad
        if self.nesterov:
            var += self.momentum * m - lr * grad
        else:
            var += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
