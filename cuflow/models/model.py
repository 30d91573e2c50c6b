"""``Model``: a Layer with the training API; subclass it and write ``call``, or use ``Sequential``.

Example:

>>> from cuflow import keras
>>> class TwoLayers(keras.Model):
...     def __init__(self):
...         super().__init__()
...         self.hidden = keras.layers.Dense(8, activation="relu")
...         self.out = keras.layers.Dense(1)
...     def call(self, inputs, training=None):
...         return self.out(self.hidden(inputs))
>>> model = TwoLayers()
>>> model([[1.0, 2.0]]).shape, len(model.trainable_variables)
(TensorShape([1, 1]), 4)
"""
import numpy as np

from ..layers.base import Layer
from .training import Trainer

__all__ = ["Model"]


class Model(Trainer, Layer):
    """A layer that trains: ``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``.

    Args:
        name: the model's name.
        trainable: whether its weights are trained.

    Raises:
        NotImplementedError: ``Model(inputs, outputs)`` (the functional API is still to come).
    """

    def __init__(self, *args, **kwargs):
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise NotImplementedError("Model(inputs, outputs): the functional API is not implemented yet; use "
                                      "Sequential or subclass Model and write call()")
        Layer.__init__(self, **kwargs)

    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__} must implement call(inputs, training=None)")

    @property
    def layers(self):
        return list(self._sublayers)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"Model '{self.name}' has no layer named {name!r}; its layers are "
                         f"{[layer.name for layer in self.layers]}")

    def build(self, input_shape):
        """Builds a subclassed model for ``input_shape`` by calling it once on zeros."""
        if not self.built and type(self).call is not Model.call:
            self.built = True
            self(np.zeros(tuple(1 if d is None else d for d in input_shape), dtype=np.float32))
        self.built = True

    def summary(self, line_length=80, print_fn=None):
        """Prints a Keras-style table: each layer's name and type, output shape and parameter count, and the
        totals (with their size in bytes)."""
        print_fn = print_fn or print
        widths = [int(line_length * 0.42), int(line_length * 0.33)]
        widths.append(line_length - sum(widths))

        def row(cells):
            return "".join(str(c)[:w - 1].ljust(w) if i < 2 else str(c).rjust(w)
                           for i, (c, w) in enumerate(zip(cells, widths)))

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        print_fn(row(["Layer (type)", "Output Shape", "Param #"]))
        print_fn("=" * line_length)
        for i, layer in enumerate(self.layers):
            shape = layer.output_shape
            shape = "?" if shape is None else tuple(shape) if not isinstance(shape, list) else shape
            params = layer.count_params() if layer.built else 0
            print_fn(row([f"{layer.name} ({type(layer).__name__})", shape, f"{params:,}"]))
            print_fn(("_" if i < len(self.layers) - 1 else "=") * line_length)
        if not self.layers:
            print_fn("=" * line_length)
        trainable = _sizes(self.trainable_weights)
        frozen = _sizes(self.non_trainable_weights)
        total = (trainable[0] + frozen[0], trainable[1] + frozen[1])
        for label, (count, nbytes) in (("Total", total), ("Trainable", trainable), ("Non-trainable", frozen)):
            print_fn(f"{label} params: {count:,} ({_bytes(nbytes)})")
        print_fn("_" * line_length)


def _sizes(weights):
    count = sum(int(np.prod(w.shape)) for w in weights)
    return count, sum(int(np.prod(w.shape)) * np.dtype(w.dtype.numpy_dtype).itemsize for w in weights)


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
