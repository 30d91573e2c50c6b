"""``keras.saving``: save and load models in Keras 3's ``.keras`` format, tf.keras 2's ``.h5`` format and
``.weights.h5`` weight files, interchangeable with Keras itself (docs/saving.md).

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from cuflow import keras
>>> model = keras.Sequential([keras.layers.Dense(3, activation="relu", input_shape=(4,)), keras.layers.Dense(1)])
>>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
>>> model.save(path)
>>> restored = keras.saving.load_model(path)
>>> x = np.ones((2, 4), dtype="float32")
>>> bool(np.array_equal(model.predict(x, verbose=0), restored.predict(x, verbose=0)))
True
"""
from .api import save_model, load_model, SavingMixin
from .object_registration import (register_keras_serializable, get_registered_name, get_registered_object,
                                  custom_object_scope, CustomObjectScope, get_custom_objects)
from .serialization import serialize_keras_object, deserialize_keras_object

__all__ = ["save_model", "load_model", "register_keras_serializable", "serialize_keras_object",
           "deserialize_keras_object", "get_registered_name", "get_registered_object", "custom_object_scope",
           "CustomObjectScope", "get_custom_objects", "SavingMixin"]
