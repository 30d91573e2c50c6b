"""``Sequential``: a stack of layers, each feeding the next.

Example:

>>> from cuflow import keras
>>> model = keras.Sequential([keras.layers.Dense(4, activation="relu", input_shape=(3,)), keras.layers.Dense(1)])
>>> model.output_shape, model.count_params()
((None, 1), 21)
"""
from ..tensor import TensorShape
from ..layers.base import Layer, _batchless
from ..layers.core import InputLayer, KerasInput
from .model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: the layers, in order. A first entry ``keras.Input(shape=...)`` or ``InputLayer``, or
            ``input_shape=`` on the first layer, builds the model right away (so ``summary()`` works).
        name: the model's name.

    Raises:
        TypeError: an entry that is not a layer.
        ValueError: a layer that does not accept the previous one's output (naming the layer and the shapes).
    """

    def __init__(self, layers=None, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Appends ``layer``; builds it at once when the model's input shape is known."""
        if isinstance(layer, (KerasInput, InputLayer)):
            if self._sublayers:
                raise ValueError(f"Sequential '{self.name}': an input spec may only come first")
            self._batch_input_shape = tuple(layer.shape if isinstance(layer, KerasInput)
                                            else layer._batch_input_shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}'.add: expected a Layer, got {type(layer).__name__}")
        if not self._sublayers and self._batch_input_shape is None and layer._batch_input_shape is not None:
            self._batch_input_shape = layer._batch_input_shape
        self._sublayers.append(layer)
        if self._batch_input_shape is not None:
            self._build_layers(self._batch_input_shape)

    def pop(self):
        """Removes the last layer."""
        if not self._sublayers:
            raise TypeError(f"Sequential '{self.name}' has no layers to pop")
        return self._sublayers.pop()

    def _build_layers(self, batch_shape):
        shape = TensorShape(batch_shape)
        self.input_shape = _batchless(shape)
        for layer in self._sublayers:
            if not layer.built:
                layer._build_for(shape)
            elif layer.input_spec is not None:
                layer.input_spec.check(layer, shape)
            layer.input_shape = _batchless(shape)
            shape = TensorShape(layer.compute_output_shape(tuple(shape)))
            layer.output_shape = _batchless(shape)
        self.output_shape = _batchless(shape)
        self.built = True

    def build(self, input_shape=None):
        """Builds every layer for inputs of ``input_shape`` (batch dimension included)."""
        shape = input_shape if input_shape is not None else self._batch_input_shape
        if shape is None:
            raise ValueError(f"Sequential '{self.name}': build needs an input shape: call the model on data, pass "
                             "input_shape= to the first layer, or start with keras.Input(shape=...)")
        self._build_layers(tuple(shape))

    def call(self, inputs, training=None):
        for layer in self._sublayers:
            inputs = layer(inputs, training=training)
        return inputs

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._sublayers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def get_config(self):
        return {**super().get_config(),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._sublayers]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import layers as layers_mod
        config = dict(config)
        entries = config.pop("layers", [])
        known = {**{name: getattr(layers_mod, name) for name in layers_mod.__all__}, **(custom_objects or {})}
        built = []
        for entry in entries:
            if entry["class_name"] not in known:
                raise ValueError(f"Sequential.from_config: unknown layer class {entry['class_name']!r}; pass it in "
                                 "custom_objects")
            built.append(known[entry["class_name"]].from_config(entry["config"]))
        batch_input_shape = config.pop("batch_input_shape", None)
        model = cls(**config)
        if batch_input_shape is not None:
            model._batch_input_shape = tuple(batch_input_shape)
        for layer in built:
            model.add(layer)
        return model
