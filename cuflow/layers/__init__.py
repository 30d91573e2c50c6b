"""``keras.layers``: the layers, one file per family."""
from .base import Layer, InputSpec
from .core import Dense, Activation, Dropout, Flatten, Reshape, InputLayer, Input
from .conv import Conv2D, Convolution2D
from .pooling import (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPool2D,
                      AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D)

__all__ = ["Layer", "InputSpec", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "InputLayer", "Input",
           "Conv2D", "Convolution2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]
