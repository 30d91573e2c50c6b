"""RMSprop: divide the gradient by a running root mean square of recent gradients."""
import numpy as np

from ..ops.base import xp
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Keras 3 formulas)::

        velocity = rho * velocity + (1 - rho) * g ** 2
        average_grad = rho * average_grad + (1 - rho) * g                  # centered only
        denominator = velocity (- average_grad ** 2 if centered) + epsilon
        increment = lr * g / sqrt(denominator)
        momentum_slot = momentum * momentum_slot + increment; var -= momentum_slot    # momentum > 0
        var -= increment                                                            # otherwise

    Args:
        learning_rate: float or schedule (default 0.001).
        rho: decay of the mean square (0.9).
        momentum: momentum (0.0).
        epsilon: added inside the square root (1e-7).
        centered: normalize by an estimate of the gradient's variance instead of its second moment.
        **kwargs: the base :class:`Optimizer`'s arguments.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name="rmsprop",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def slot_names(self):
        return ("velocity",) + (("average_grad",) if self.centered else ()) + \
            (("momentum",) if self.momentum > 0 else ())

    def update(self, var, grad, slots):
        # the formulas of the class docstring, each temporary written into a work array (same rounding)
        rho = self.rho
        module = xp(var)
        work, denominator = self._work_arrays(var, 2)
        velocity = slots["velocity"]
        velocity *= rho
        module.multiply(grad, 1 - rho, out=work)
        work *= grad
        velocity += work
        if self.centered:
            average = slots["average_grad"]
            average *= rho
            module.multiply(grad, 1 - rho, out=work)
            average += work
            module.multiply(average, average, out=denominator)
            module.subtract(velocity, denominator, out=denominator)
            denominator += self.epsilon
        else:
            module.add(velocity, self.epsilon, out=denominator)
        increment = work
        module.multiply(grad, self._lr, out=increment)
        increment /= module.sqrt(denominator, out=denominator)
        if self.momentum > 0:
            momentum = slots["momentum"]
            momentum *= self.momentum
            momentum += increment
            var -= momentum
        else:
            var -= increment

    def fused_update(self, dtype):
        t = dtype.type
        return "rmsprop_update", (t(self._lr), t(self.rho), t(1 - self.rho), t(self.epsilon), t(self.momentum),
                                  np.int32(bool(self.centered)), np.int32(self.momentum > 0))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
