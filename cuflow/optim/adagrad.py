"""Adagrad: per-element learning rates scaled by the accumulated squared gradients."""
import numpy as np

from ..ops.base import xp
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Keras 3 formulas): ``accumulator += g ** 2``, ``var -= lr * g / sqrt(accumulator + epsilon)``.

    Args:
        learning_rate: float or schedule (default 0.001).
        initial_accumulator_value: the accumulator's starting value (0.1).
        epsilon: added inside the square root (1e-7).
        **kwargs: the base :class:`Optimizer`'s arguments.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="adagrad", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if initial_accumulator_value < 0:
            raise ValueError(f"Adagrad: initial_accumulator_value must be >= 0, got {initial_accumulator_value}")
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def slot_names(self):
        return ("accumulator",)

    def slot_initial_value(self, name, var_data):
        return xp(var_data).full_like(var_data, self.initial_accumulator_value)

    def update(self, var, grad, slots):
        # the formulas of the class docstring, each temporary written into a work array (same rounding)
        accumulator = slots["accumulator"]
        module = xp(var)
        work, denominator = self._work_arrays(var, 2)
        module.multiply(grad, grad, out=work)
        accumulator += work
        module.add(accumulator, self.epsilon, out=denominator)
        module.sqrt(denominator, out=denominator)
        module.multiply(grad, self._lr, out=work)
        work /= denominator
        var -= work

    def fused_update(self, dtype):
        t = dtype.type
        return "adagrad_update", (t(self._lr), t(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
