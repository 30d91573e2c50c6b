"""``cuflow.keras``: the Keras namespace (``from cuflow import keras``; ``tf.keras`` once cuflow imports it).

Each name here is the same object as in its home module: ``keras.layers`` is :mod:`cuflow.layers`,
``keras.optimizers`` is :mod:`cuflow.optim`, and so on.
"""
from .. import layers, activations, initializers, regularizers, losses, metrics
from .. import optim as optimizers
from .. import models
from ..models import Model, Sequential, callbacks
from ..layers import Input, InputLayer
from .. import datasets, utils
from .. import backend
from .. import saving

__all__ = ["layers", "models", "optimizers", "losses", "metrics", "callbacks", "activations", "initializers",
           "regularizers", "Model", "Sequential", "Input", "InputLayer",
           "datasets", "utils", "backend", "saving"]
