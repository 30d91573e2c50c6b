"""``Model``: a Layer with the training API. Subclass it and write ``call``, stack layers with ``Sequential``, or
build a graph with the functional API: ``keras.Model(inputs, outputs)`` returns a
:class:`~cuflow.models.functional.Functional` model.

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
from ..saving import SavingMixin

__all__ = ["Model"]


def _functional_arguments(args, kwargs):
    return bool(args) or "inputs" in kwargs or "outputs" in kwargs


class Model(Trainer, SavingMixin, Layer):
    """A layer that trains: ``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``.

    ``Model(inputs, outputs, name=None)`` builds a functional model from KerasTensors (see
    :class:`~cuflow.models.functional.Functional`); ``Model(name=...)`` in a subclass's ``__init__`` starts a
    subclassed model, whose ``call`` you write.

    Args:
        name: the model's name.
        trainable: whether its weights are trained.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and _functional_arguments(args, kwargs):
            from .functional import Functional
            return Functional.__new__(Functional)  # Python then runs Functional.__init__(inputs, outputs, ...)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        if _functional_arguments(args, kwargs):
            # a subclass calling super().__init__(inputs, outputs): Keras makes it a functional model too
            from .functional import Functional
            if not isinstance(self, Functional):
                self.__class__ = type(type(self).__name__, (type(self), Functional), {})
            Functional.__init__(self, *args, **kwargs)
            return
        Layer.__init__(self, **kwargs)

    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__} must implement call(inputs, training=None)")

    @property
    def layers(self):
        return list(self._sublayers)

    output_names = None  # known up front for functional and Sequential models; from the first batch otherwise

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

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds a model from ``get_config()``: a functional config (``layers``, ``input_layers``,
        ``output_layers``) gives a functional model, anything else goes to ``cls(**config)``."""
        if "layers" in config and "input_layers" in config and "output_layers" in config:
            from .functional import Functional
            return Functional.from_config(config, custom_objects=custom_objects)
        return cls(**config)

    # --- summary ------------------------------------------------------------------------------------------------
    def _summary_rows(self):
        """``(layer, output shape, [inbound 'layer[node][tensor]' ...] or None)`` per row of ``summary()``."""
        return [(layer, layer.output_shape, None) for layer in self.layers]

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs):
        """Prints a Keras-style table: each layer's name and type, output shape and parameter count (and, for a
        functional model that is not a plain chain, the layers each one is connected to), then the totals with
        their size in bytes.

        Args:
            line_length: the table's width (default 80, or 100 with the "Connected to" column).
            positions: where each column ends, as fractions of ``line_length`` (or absolute positions).
            print_fn: called with each line (default ``print``).
        """
        print_fn = print_fn or print
        rows = self._summary_rows()
        connected = any(links is not None for _, _, links in rows)
        line_length = line_length or (100 if connected else 80)
        positions = positions or ([0.3, 0.55, 0.67, 1.0] if connected else [0.42, 0.75, 1.0])
        ends = [int(line_length * p) if p <= 1 else int(p) for p in positions]  # Keras: where each column ends
        widths = [end - start for start, end in zip([0] + ends[:-1], ends)]
        headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected else [])

        def row(cells):
            return "".join(str(c)[:w - 1].ljust(w) if i != 2 else str(c).rjust(w - 1) + " "
                           for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        print_fn(row(headers))
        print_fn("=" * line_length)
        for i, (layer, shape, links) in enumerate(rows):
            shape = "?" if shape is None else tuple(shape) if isinstance(shape, (tuple, list)) and not (
                shape and isinstance(shape[0], (tuple, list))) else shape
            params = layer.count_params() if layer.built else 0
            links = links or ([] if not connected else ["-"])
            print_fn(row([f"{layer.name} ({type(layer).__name__})", shape, f"{params:,}"] + links[:1]))
            for link in links[1:]:
                print_fn(row(["", "", ""] + [link]))
            print_fn(("_" if i < len(rows) - 1 else "=") * line_length)
        if not rows:
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

