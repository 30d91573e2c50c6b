"""``keras.layers``: the layers, one file per family."""
from .base import Layer, InputSpec
from .core import Dense, Activation, Dropout, Flatten, Reshape, InputLayer, Input
from .conv import Conv2D, Convolution2D, Conv1D, Convolution1D
from .pooling import (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPool2D,
                      AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D)
from .normalization import BatchNormalization, LayerNormalization
from .embedding import Embedding
from .merge import (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, add, subtract, multiply, average,
                    maximum, minimum, concatenate)
from .recurrent import RNN, SimpleRNN, LSTM, GRU, SimpleRNNCell, LSTMCell, GRUCell

__all__ = ["Layer", "InputSpec", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "InputLayer", "Input",
           "Conv2D", "Convolution2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D",
           "Conv1D", "Convolution1D", "BatchNormalization", "LayerNormalization", "Embedding", "Add", "Subtract",
           "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "add", "subtract", "multiply", "average",
           "maximum", "minimum", "concatenate", "RNN", "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell",
           "GRUCell"]
