"""Pooling layers: MaxPooling2D, AveragePooling2D and their global forms (channels-last by default)."""
from ..ops.conv import max_pool2d, avg_pool2d
from ..ops.math import reduce_mean, reduce_max
from .base import Layer, InputSpec
from .conv import normalize_tuple, conv_output_length, data_format_of, check_padding

__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPool2D",
           "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]


class _Pooling2D(Layer):
    _pool = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", name)
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides", name)
        self.padding = check_padding(padding, name)
        self.data_format = data_format_of(data_format, name)
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        fmt = "NHWC" if self.data_format == "channels_last" else "NCHW"
        return type(self)._pool(inputs, list(self.pool_size), list(self.strides), self.padding.upper(),
                                data_format=fmt)

    def compute_output_shape(self, input_shape):
        last = self.data_format == "channels_last"
        spatial = input_shape[1:3] if last else input_shape[2:4]
        rows, cols = (conv_output_length(n, k, self.padding, s) for n, k, s in
                      zip(spatial, self.pool_size, self.strides))
        return (input_shape[0], rows, cols, input_shape[3]) if last else (input_shape[0], input_shape[1], rows, cols)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """The maximum over each ``pool_size`` window (stride ``strides``, default ``pool_size``).

    Input shape ``(batch, rows, cols, channels)``; output ``(batch, pooled_rows, pooled_cols, channels)``.
    """
    _pool = max_pool2d


class AveragePooling2D(_Pooling2D):
    """The mean over each ``pool_size`` window (stride ``strides``, default ``pool_size``); padded cells don't
    count."""
    _pool = avg_pool2d


class _GlobalPooling2D(Layer):
    _reduce = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format_of(data_format, type(self).__name__)
        self.keepdims = keepdims
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        axes = [1, 2] if self.data_format == "channels_last" else [2, 3]
        return type(self)._reduce(inputs, axis=axes, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        last = self.data_format == "channels_last"
        channels = input_shape[3] if last else input_shape[1]
        if not self.keepdims:
            return (input_shape[0], channels)
        return (input_shape[0], 1, 1, channels) if last else (input_shape[0], channels, 1, 1)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over the spatial dimensions: ``(batch, rows, cols, channels)`` → ``(batch, channels)``."""
    _reduce = reduce_mean


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over the spatial dimensions: ``(batch, rows, cols, channels)`` → ``(batch, channels)``."""
    _reduce = reduce_max


MaxPool2D, AvgPool2D = MaxPooling2D, AveragePooling2D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D
