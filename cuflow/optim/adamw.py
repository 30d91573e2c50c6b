"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""
from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    """Adam whose variables also shrink by ``var * weight_decay * lr`` before each update (decoupled from the
    gradient, as in Keras 3).

    Args:
        learning_rate: float or schedule (default 0.001).
        weight_decay: the decay rate (default 0.004, Keras's).
        beta_1, beta_2, epsilon, amsgrad: as for :class:`Adam`.
        **kwargs: the base :class:`Optimizer`'s arguments.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float, got None; use Adam for no weight decay")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, weight_decay=weight_decay, **kwargs)
