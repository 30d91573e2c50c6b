"""Normalization layers: BatchNormalization (batch statistics in training, moving ones at inference) and
LayerNormalization (statistics of each sample)."""
from .. import initializers, regularizers
from ..ops.array import reshape, stop_gradient
from ..ops.math import reduce_mean, square, rsqrt
from ..ops.nn import moments, batch_normalization
from .base import Layer, InputSpec

__all__ = ["BatchNormalization", "LayerNormalization"]


def _normalized_axes(axis, ndim, layer):
    """``axis`` (an int or a list of ints, negatives allowed) as sorted non-negative axes of a rank-``ndim`` input;
    a ValueError naming the layer when one is out of range or is the batch axis."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    valid = all(isinstance(a, int) and -ndim <= a < ndim for a in axes)
    resolved = sorted(a % ndim for a in axes) if valid else []
    if not valid or 0 in resolved or len(set(resolved)) != len(resolved):
        raise ValueError(f"{layer}: axis {axis!r} is not valid for inputs of rank {ndim} (the batch axis 0 cannot "
                         "be normalized over, and each axis may appear once)")
    return resolved


class _Normalization(Layer):
    """What both layers share: ``gamma``/``beta`` options and weights over the axes in ``self._axes``."""

    def _set_options(self, axis, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                     gamma_regularizer):
        name = type(self).__name__
        if not isinstance(axis, int) and not (isinstance(axis, (list, tuple)) and axis):
            raise ValueError(f"{name}: axis must be an int or a non-empty list of ints, got {axis!r}")
        if not epsilon > 0:
            raise ValueError(f"{name}: epsilon must be positive, got {epsilon!r}")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.input_spec = InputSpec(min_ndim=2)

    def _build_axes(self, input_shape):
        """Resolves the axes, fixes their sizes in the input spec, and returns the parameters' shape."""
        ndim = len(input_shape)
        self._axes = _normalized_axes(self.axis, ndim, f"{type(self).__name__} '{self.name}'")
        sizes = [input_shape[a] for a in self._axes]
        if None in sizes:
            raise ValueError(f"{type(self).__name__} '{self.name}': the size of axis {self.axis} must be known, got "
                             f"input shape {tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=ndim, axes=dict(zip(self._axes, sizes)))
        # parameters of shape `sizes` broadcast against the input once the other axes are 1
        self._broadcast = None if self._axes == list(range(ndim - len(sizes), ndim)) else \
            [input_shape[a] if a in self._axes else 1 for a in range(ndim)]
        return tuple(sizes)

    def _add_gamma_beta(self, shape, gamma=True, beta=True):
        self.gamma = self.add_weight("gamma", shape, self.gamma_initializer, self.gamma_regularizer) \
            if gamma else None
        self.beta = self.add_weight("beta", shape, self.beta_initializer, self.beta_regularizer) if beta else None

    def _fit(self, param):
        """A parameter (or statistic) of the axes' shape, reshaped to broadcast against the input."""
        if param is None or self._broadcast is None:
            return param
        return reshape(param, self._broadcast)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class BatchNormalization(_Normalization):
    """Normalizes each feature with the statistics of the batch while training and with moving averages of them
    at inference: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    With ``training=True`` (as ``fit`` passes) the batch's mean and variance are used, and the moving statistics
    are updated as ``moving = moving * momentum + batch * (1 - momentum)``; otherwise (``evaluate``, ``predict``,
    a plain call) the moving statistics are used and nothing changes. A layer with ``trainable = False`` always runs
    in inference mode, as in Keras 3 (the usual setting for fine-tuning).

    Args:
        axis: the feature axis (default -1, channels-last); an int or a list of ints.
        momentum: the moving averages' momentum.
        epsilon: added to the variance before the square root.
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer: initializers.
        beta_regularizer, gamma_regularizer: regularizers for ``beta`` and ``gamma``.

    Input shape:
        any rank >= 2, e.g. ``(batch, features)`` or ``(batch, rows, cols, channels)``.

    Output shape:
        the input's.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> layer = keras.layers.BatchNormalization()
    >>> out = layer(np.array([[0.0, 2.0], [2.0, 6.0]]), training=True)
    >>> np.round(out.numpy(), 2)
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> np.round(layer.moving_mean.numpy(), 3)
    array([0.01, 0.04], dtype=float32)
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self._set_options(axis, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        shape = self._build_axes(input_shape)
        self._add_gamma_beta(shape, gamma=self.scale, beta=self.center)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, self.moving_variance_initializer,
                                               trainable=False)
        self._reduce_axes = [a for a in range(len(input_shape)) if a not in self._axes]

    def call(self, inputs, training=None):
        if training and self.trainable:
            mean, variance = moments(inputs, self._reduce_axes)
            self._update_moving(mean, variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return batch_normalization(inputs, self._fit(mean), self._fit(variance), self._fit(self.beta),
                                   self._fit(self.gamma), self.epsilon)

    def _update_moving(self, mean, variance):
        keep = self.momentum
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * keep + stop_gradient(batch) * (1 - keep))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum,
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer)}


class LayerNormalization(_Normalization):
    """Normalizes each sample over ``axis`` (its features by default), then scales by ``gamma`` and shifts by
    ``beta`` (learned per feature): the same computation in training and at inference.

    Args:
        axis: the axis or axes to normalize over (default -1).
        epsilon: added to the variance before the square root.
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.
        rms_scaling: divide by the root mean square instead (no mean subtracted, no ``beta``):
            ``x * rsqrt(mean(x ** 2) + epsilon) * gamma``, as RMSNorm.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer: for the two weights.

    Input shape:
        any rank >= 2.

    Output shape:
        the input's.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> np.round(keras.layers.LayerNormalization()(np.array([[1.0, 3.0, 5.0]])).numpy(), 2)
    array([[-1.22,  0.  ,  1.22]], dtype=float32)
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self._set_options(axis, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer)
        self.rms_scaling = bool(rms_scaling)

    def build(self, input_shape):
        shape = self._build_axes(input_shape)
        self._add_gamma_beta(shape, gamma=self.scale or self.rms_scaling, beta=self.center and not self.rms_scaling)

    def call(self, inputs):
        if self.rms_scaling:
            out = inputs * rsqrt(reduce_mean(square(inputs), axis=self._axes, keepdims=True) + self.epsilon)
            return out * self._fit(self.gamma)
        mean, variance = moments(inputs, self._axes, keepdims=True)
        return batch_normalization(inputs, mean, variance, self._fit(self.beta), self._fit(self.gamma),
                                   self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rms_scaling": self.rms_scaling}
