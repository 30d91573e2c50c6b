"""Convolution layers: Conv2D (channels-last images) and Conv1D (sequences), with Keras's shape rules."""
from .. import activations
from ..ops.conv import fused_conv1d, fused_conv2d
from .base import Layer, InputSpec
from .core import set_kernel_options, kernel_options_config

__all__ = ["Conv2D", "Convolution2D", "Conv1D", "Convolution1D", "normalize_tuple", "conv_output_length",
           "data_format_of"]


def normalize_tuple(value, n, name, layer):
    """``3`` → ``(3, 3)``; a sequence of n positive ints stays; anything else is a ValueError naming ``name``."""
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f"{layer}: {name} must be an int or a tuple of {n} positive ints, got {value!r}")
    return values


def conv_output_length(length, window, padding, stride, dilation=1):
    """Keras's rule: 'valid' keeps whole windows, 'same' gives ``ceil(length / stride)``."""
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    return (length - dilation * (window - 1) - 1) // stride + 1


def data_format_of(data_format, layer):
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


def check_padding(padding, layer):
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding not in ("valid", "same"):
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {padding!r}")
    return padding


def set_conv_options(layer, rank, filters, kernel_size, strides, dilation_rate, data_format):
    """Checks and stores the options Conv1D (rank 1) and Conv2D (rank 2) share; errors name the layer class."""
    name = type(layer).__name__
    if not isinstance(filters, int) or filters <= 0:
        raise ValueError(f"{name}: filters must be a positive int, got {filters!r}")
    layer.filters = filters
    layer.kernel_size = normalize_tuple(kernel_size, rank, "kernel_size", name)
    layer.strides = normalize_tuple(strides, rank, "strides", name)
    layer.dilation_rate = normalize_tuple(dilation_rate, rank, "dilation_rate", name)
    layer.data_format = data_format_of(data_format, name)


def conv_config(layer):
    """The ``get_config`` entries Conv1D and Conv2D share (Keras 3's keys)."""
    return {"filters": layer.filters, "kernel_size": layer.kernel_size, "strides": layer.strides,
            "padding": layer.padding, "data_format": layer.data_format, "dilation_rate": layer.dilation_rate,
            **kernel_options_config(layer)}


class Conv2D(Layer):
    """2-D convolution over images: ``activation(conv2d(inputs, kernel) + bias)``.

    Args:
        filters: the number of output channels.
        kernel_size: an int or a pair ``(height, width)``.
        strides: an int or a pair (default 1).
        padding: ``'valid'`` (no padding) or ``'same'`` (output size ``ceil(input / stride)``).
        data_format: ``'channels_last'`` (default, NHWC) or ``'channels_first'`` (NCHW).
        dilation_rate: an int or a pair (default 1).
        activation: a name or function; None is linear.
        use_bias: whether to add a bias per filter.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: as for Dense.

    Input shape:
        ``(batch, rows, cols, channels)`` (channels_last).

    Output shape:
        ``(batch, new_rows, new_cols, filters)``.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> keras.layers.Conv2D(8, 3)(np.zeros((2, 28, 28, 1))).shape
    TensorShape([2, 26, 26, 8])
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        set_conv_options(self, 2, filters, kernel_size, strides, dilation_rate, data_format)
        self.padding = check_padding(padding, "Conv2D")
        set_kernel_options(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer)
        self.input_spec = InputSpec(ndim=4)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape):
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(f"Conv2D '{self.name}': the channel dimension of the input must be known, got shape "
                             f"{tuple(input_shape)}")
        self.kernel = self.add_weight("kernel", self.kernel_size + (channels, self.filters), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis: channels})

    def call(self, inputs):
        fmt = "NHWC" if self.data_format == "channels_last" else "NCHW"
        fused = activations.fused_name(self.activation)  # the convolution's epilogue applies bias and these
        out = fused_conv2d(inputs, self.kernel, self.bias, strides=list(self.strides), padding=self.padding.upper(),
                           activation=fused or "linear", data_format=fmt, dilations=list(self.dilation_rate))
        return out if fused is not None else self.activation(out)

    def compute_output_shape(self, input_shape):
        spatial = input_shape[1:3] if self.data_format == "channels_last" else input_shape[2:4]
        rows, cols = (conv_output_length(n, k, self.padding, s, d) for n, k, s, d in
                      zip(spatial, self.kernel_size, self.strides, self.dilation_rate))
        if self.data_format == "channels_last":
            return (input_shape[0], rows, cols, self.filters)
        return (input_shape[0], self.filters, rows, cols)

    def _build_for(self, input_shape):
        super()._build_for(input_shape)
        out = self.compute_output_shape(tuple(input_shape))
        if any(d is not None and d <= 0 for d in out[1:]):
            raise ValueError(f"Conv2D '{self.name}': kernel_size {self.kernel_size} with padding '{self.padding}' "
                             f"does not fit the input of shape {tuple(input_shape)} (output would be {out})")

    def get_config(self):
        return {**super().get_config(), **conv_config(self)}


Convolution2D = Conv2D


class Conv1D(Layer):
    """1-D convolution over sequences: ``activation(conv1d(inputs, kernel) + bias)``.

    Args:
        filters: the number of output channels.
        kernel_size: an int (or a 1-tuple), the window length.
        strides: an int (default 1).
        padding: ``'valid'``, ``'same'`` or ``'causal'`` (zeros on the left only, so output ``t`` sees no input
            after ``t``; the output length is that of ``'same'``).
        data_format: ``'channels_last'`` (default, ``(batch, steps, channels)``) or ``'channels_first'``.
        dilation_rate: an int (default 1).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: as for
            Dense.

    Input shape:
        ``(batch, steps, channels)`` (channels_last).

    Output shape:
        ``(batch, new_steps, filters)``.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> keras.layers.Conv1D(8, 3)(np.zeros((2, 10, 4))).shape
    TensorShape([2, 8, 8])
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        set_conv_options(self, 1, filters, kernel_size, strides, dilation_rate, data_format)
        causal = isinstance(padding, str) and padding.lower() == "causal"
        self.padding = "causal" if causal else check_padding(padding, "Conv1D (or 'causal')")
        set_kernel_options(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self.input_spec = InputSpec(ndim=3)

    def build(self, input_shape):
        in_channels = input_shape[self._channel_axis]
        if in_channels is None:
            raise ValueError(f"Conv1D '{self.name}': the input's channel dimension must be known, got shape "
                             f"{tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=3, axes={self._channel_axis: in_channels})
        self.kernel = self.add_weight("kernel", self.kernel_size + (in_channels, self.filters),
                                      self.kernel_initializer, self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer)

    def call(self, inputs):
        fmt = "NWC" if self.data_format == "channels_last" else "NCW"
        padding = self.padding.upper()
        if self.padding == "causal":  # explicit [before, after] pairs per axis: only the steps axis gets zeros
            padding = [[0, 0], [0, 0], [0, 0]]
            padding[1 if fmt == "NWC" else 2] = [self.dilation_rate[0] * (self.kernel_size[0] - 1), 0]
        fused = activations.fused_name(self.activation)  # the convolution's epilogue applies bias and these
        out = fused_conv1d(inputs, self.kernel, self.bias, list(self.strides), padding, fused or "linear",
                           data_format=fmt, dilations=list(self.dilation_rate))
        return out if fused is not None else self.activation(out)

    def compute_output_shape(self, input_shape):
        last = self.data_format == "channels_last"
        padding = "same" if self.padding == "causal" else self.padding
        steps = conv_output_length(input_shape[1 if last else 2], self.kernel_size[0], padding, self.strides[0],
                                   self.dilation_rate[0])
        return (input_shape[0], steps, self.filters) if last else (input_shape[0], self.filters, steps)

    def _build_for(self, input_shape):
        super()._build_for(input_shape)
        steps = self.compute_output_shape(tuple(input_shape))[1 if self.data_format == "channels_last" else 2]
        if steps is not None and steps <= 0:
            raise ValueError(f"Conv1D '{self.name}': kernel_size {self.kernel_size} with padding '{self.padding}' "
                             f"and dilation_rate {self.dilation_rate} does not fit the input of shape "
                             f"{tuple(input_shape)}")

    def get_config(self):
        return {**super().get_config(), **conv_config(self)}


Convolution1D = Conv1D
