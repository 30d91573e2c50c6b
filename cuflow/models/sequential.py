"""``Sequential``: a stack of layers, each feeding the next.

Example:

>>> from cuflow import keras
>>> model = keras.Sequential([keras.layers.Dense(4, activation="relu", input_shape=(3,)), keras.layers.Dense(1)])
>>> model.output_shape, model.count_params()
((None, 1), 21)
"""
from ..tensor import TensorShape
from ..layers.base import Layer, _batchless
from ..layers.core import InputLayer, KerasTensor
from ..saving.model_config import (batch_input_shape, deserialize_layer, input_layer_entry, model_kwargs,
                                   serialize_layer)
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
        if isinstance(layer, (KerasTensor, InputLayer)):
            if self._sublayers:
                raise ValueError(f"Sequential '{self.name}': an input spec may only come first")
            self._batch_input_shape = tuple(layer.shape if isinstance(layer, KerasTensor)
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

    @property
    def output_names(self):
        return [self._sublayers[-1].name] if self._sublayers else None

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._sublayers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def get_config(self):
        """The model in Keras 3's form: ``name``, ``trainable``, ``dtype``, ``layers`` (an ``InputLayer`` entry first
        when the input shape is known, then each layer's entry as :func:`cuflow.saving.serialize_keras_object` writes
        it) and ``build_input_shape``."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype, "layers": []}
        shape = batch_input_shape(self)
        if shape is not None:
            dtype = self._sublayers[0].dtype if self._sublayers else self.dtype
            config["layers"].append(input_layer_entry(shape, dtype))
        config["layers"] += [serialize_layer(layer) for layer in self._sublayers]
        if shape is not None:
            config["build_input_shape"] = shape
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds a model from ``get_config()`` or from a Sequential config Keras wrote: Keras 3's, tf.keras 2's
        (layer entries without ``module``, the input shape on an ``InputLayer`` entry), or a plain list of layer
        entries.

        Raises:
            ValueError: an unknown layer class (pass it in ``custom_objects``) or an entry that is not a layer's.
        """
        if isinstance(config, list):  # the oldest Keras form: the layers alone
            config = {"layers": config}
        layers = [deserialize_layer(entry, custom_objects) for entry in config.get("layers", [])]
        model = cls(**model_kwargs(config))
        for layer in layers:
            model.add(layer)
        shape = config.get("build_input_shape")
        if not model.built and isinstance(shape, (list, tuple)) and model.layers:
            model.build(tuple(shape))
        return model
