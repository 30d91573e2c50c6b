"""Adam: adaptive moment estimation, with the AMSGrad variant."""
import math

import numpy as np

from ..ops.base import xp
from .optimizer import Optimizer, _bias_correction

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam (Keras 3 formulas). With ``t`` the step (1 on the first)::

        alpha = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        m += (g - m) * (1 - beta_1)
        v += (g ** 2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                          # amsgrad only; then v_hat replaces v below
        var -= alpha * m / (sqrt(v) + epsilon)

    Args:
        learning_rate: float or schedule (default 0.001).
        beta_1, beta_2: decay rates of the first and second moment estimates (0.9, 0.999).
        epsilon: added to the denominator (1e-7, Keras's default).
        amsgrad: keep the running maximum of ``v`` (Reddi et al., 2018).
        **kwargs: the base :class:`Optimizer`'s arguments.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name="adam",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _alpha(self):
        return self._lr * math.sqrt(_bias_correction(self.beta_2, self._step)) / \
            _bias_correction(self.beta_1, self._step)

    def update(self, var, grad, slots):
        # the formulas of the class docstring, each temporary written into a work array (same rounding)
        m, v = slots["m"], slots["v"]
        module = xp(var)
        work, denominator = self._work_arrays(var, 2)
        module.subtract(grad, m, out=work)
        work *= 1 - self.beta_1
        m += work
        module.multiply(grad, grad, out=work)
        work -= v
        work *= 1 - self.beta_2
        v += work
        if self.amsgrad:
            v_hat = slots["v_hat"]
            module.maximum(v_hat, v, out=v_hat)
            v = v_hat
        module.sqrt(v, out=denominator)
        denominator += self.epsilon
        module.multiply(m, self._alpha(), out=work)
        work /= denominator
        var -= work

    def fused_update(self, dtype):
        t = dtype.type
        return "adam_update", (t(self._alpha()), t(1 - self.beta_1), t(1 - self.beta_2), t(self.epsilon),
                               np.int32(self.amsgrad))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}
