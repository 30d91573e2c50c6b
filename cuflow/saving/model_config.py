"""Layer and model config entries as Keras 3 writes them (``config.json``), tf.keras 2's legacy form (``.h5``), and
the compile config: the model-level half of :mod:`cuflow.saving.serialization`.

:func:`serialize_layer` and :func:`deserialize_layer` are the one path for a layer's or model's entry: ``model.save``
writes them, and ``Sequential`` and functional models build their own ``get_config`` from them (and read their
``from_config`` entries back with them), so a model config is in Keras 3's form whether it comes from
``get_config`` or a ``.keras`` file, and configs Keras wrote load through ``from_config`` too. A plain layer keeps its
own ``get_config``; its initializers, regularizers and functions are turned into Keras objects here. Layer dtypes
are written as plain names (``"float32"``), the form every Keras 3 release and tf.keras 2 read.
"""
from ..tensor import TensorShape
from . import serialization as ser

__all__ = ["serialize_layer", "deserialize_layer", "layer_from_config", "model_kwargs", "input_layer_entry",
           "batch_input_shape", "is_graph_model", "compile_config", "compile_from_config", "legacy_config"]

_KERAS_3_ONLY = ("module", "registered_name", "build_config", "compile_config", "class_name", "config")
_COMPILE_DEFAULTS = {"weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def is_graph_model(obj):
    """Whether ``obj`` (an instance or a class) is a Sequential or functional model, whose ``get_config`` and
    ``from_config`` already speak Keras 3's form."""
    from ..models.sequential import Sequential
    from ..models.functional import Functional
    return issubclass(obj, (Sequential, Functional)) if isinstance(obj, type) else isinstance(
        obj, (Sequential, Functional))


def _is_model(obj):
    from ..models.model import Model
    return issubclass(obj, Model) if isinstance(obj, type) else isinstance(obj, Model)


# --- cuflow -> Keras 3 ---------------------------------------------------------------------------------------------
def serialize_layer(layer):
    """A layer's (or model's) Keras 3 entry: module, class_name, config, registered_name, build_config and, for a
    compiled model, compile_config.

    The config is a Sequential or functional model's own ``get_config()`` (already in Keras 3's form), or a layer's
    ``get_config()`` with its objects serialized as Keras does.
    """
    config = layer.get_config() if is_graph_model(layer) else _layer_config(layer)
    entry = ser.class_entry(type(layer), config)
    shape = batch_input_shape(layer)
    if layer.built and shape is not None and type(layer).__name__ != "InputLayer":
        entry["build_config"] = {"input_shape": shape}
    compiled = compile_config(layer)
    if compiled is not None:
        entry["compile_config"] = compiled
    return entry


def batch_input_shape(layer):
    """The shape ``layer`` takes, batch dimension included, as a JSON list (a list of them for several inputs), or
    None when it is not known."""
    shape = layer._batch_input_shape if layer._batch_input_shape is not None else layer.input_shape
    if shape is None:
        return None
    if isinstance(shape, list):  # several inputs
        return [_dims(s) for s in shape]
    return _dims(shape)


def _dims(shape):
    return [None if d is None else int(d) for d in shape]


def input_layer_entry(batch_shape, dtype, name="input_layer"):
    """The ``InputLayer`` entry Keras 3 writes first in a Sequential model's ``layers``."""
    from ..layers.core import InputLayer
    return ser.class_entry(InputLayer, {"batch_shape": batch_shape, "dtype": dtype, "sparse": False, "name": name})


def _layer_config(layer):
    """``layer.get_config()`` in Keras's form: initializers, regularizers, nested layers and custom functions as
    Keras objects (taken from the layer's attributes, so custom classes keep their registered names)."""
    from .. import initializers, regularizers
    from ..layers.base import Layer
    out = {}
    for key, value in layer.get_config().items():
        attr = layer.__dict__.get(key)
        if key == "batch_input_shape":
            continue  # Keras 3 keeps the input shape in the model's InputLayer entry and build_config
        if isinstance(attr, (initializers.Initializer, regularizers.Regularizer)):
            out[key] = ser.serialize_keras_object(attr)
        elif isinstance(attr, Layer) and isinstance(value, dict) and "class_name" in value:  # an RNN's cell
            out[key] = serialize_layer(attr)
        elif isinstance(value, dict) and "class_name" in value and "module" not in value:
            out[key] = _with_module(key, value)
        else:
            out[key] = ser.serialize_keras_object(value)
    return out


def _with_module(key, value):
    kind = ser._kind_of_key(key)
    module = ser._HOMES[kind][2] if kind in ser._HOMES else None
    return {"module": module, "class_name": value["class_name"],
            "config": ser.serialize_keras_object(value.get("config", {})), "registered_name": None}


def compile_config(model):
    """``model.compile``'s arguments as Keras 3's ``compile_config`` (None when the model is not compiled)."""
    if not getattr(model, "_compiled", False):
        return None
    tracker = getattr(model, "_tracker", None)  # keeps compile's arguments as given
    metrics = getattr(tracker, "requests", None)
    return {"optimizer": ser.serialize_keras_object(model.optimizer),
            "loss": ser.serialize_keras_object(model.loss),
            "loss_weights": ser.serialize_keras_object(getattr(tracker, "loss_weights", None)),
            "metrics": ser.serialize_keras_object(metrics) if metrics else None, **_COMPILE_DEFAULTS}


def compile_from_config(model, config, custom_objects=None):
    """Compiles ``model`` as ``config`` (Keras 3's ``compile_config`` or tf.keras 2's ``training_config``) says."""
    optimizer = config.get("optimizer", config.get("optimizer_config"))
    optimizer = ser.deserialize_keras_object(optimizer, custom_objects, kind="optimizer")
    loss = ser.deserialize_keras_object(config.get("loss"), custom_objects, kind="loss")
    metrics = ser.deserialize_keras_object(config.get("metrics"), custom_objects, kind="metric")
    model.compile(optimizer=optimizer if optimizer is not None else "rmsprop", loss=loss, metrics=metrics,
                  loss_weights=config.get("loss_weights"))


# --- Keras 3 (or tf.keras 2) -> cuflow -----------------------------------------------------------------------------
def deserialize_layer(entry, custom_objects=None):
    """The layer (or model) a config entry describes: cuflow's ``get_config`` entries and those Keras 3 or tf.keras 2
    wrote (``{"class_name", "config"}``), classes found as :func:`~cuflow.saving.deserialize_keras_object` finds them
    (built-ins, ``custom_objects``, ``custom_object_scope`` blocks, registered classes).

    Raises:
        ValueError: an entry that is not a layer's, or an unknown class (the message names it and suggests
            ``custom_objects``).
    """
    from ..layers.base import Layer
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"A layer entry of a model config must be a dict with 'class_name' and 'config', got "
                         f"{entry!r}")
    layer = ser.deserialize_keras_object(entry, custom_objects, kind="layer")
    if not isinstance(layer, Layer):
        raise ValueError(f"The model config entry {entry['class_name']!r} describes a {type(layer).__name__}, not "
                         "a layer")
    return layer


def layer_from_config(cls, config, custom_objects=None, safe_mode=True):
    """Builds the layer (or model) a Keras entry describes: a Sequential or functional model by its own
    ``from_config``, any other layer with its config translated to ``cls``'s arguments; then built for its
    ``build_config`` and compiled for its ``compile_config``."""
    inner = config.get("config") or {}
    if is_graph_model(cls):
        layer = cls.from_config(inner, custom_objects=custom_objects)
    else:
        layer = cls.from_config(ser.layer_kwargs(cls, inner, custom_objects, safe_mode))
    shape = (config.get("build_config") or {}).get("input_shape")
    if shape is not None and not layer.built:
        shape = [TensorShape(s) for s in shape] if shape and isinstance(shape[0], list) else TensorShape(shape)
        if _is_model(layer):
            layer.build(shape)
        else:
            layer._build_for(shape)
    if config.get("compile_config") and _is_model(layer):
        compile_from_config(layer, config["compile_config"], custom_objects)
    return layer


def model_kwargs(config):
    """The ``name``, ``trainable`` and ``dtype`` arguments a model config holds (a Keras dtype policy as its
    name)."""
    kwargs = {key: config[key] for key in ("name", "trainable") if key in config}
    dtype = ser.deserialize_keras_object(config.get("dtype"))
    if isinstance(dtype, str):
        kwargs["dtype"] = dtype
    return kwargs


# --- Keras 3 -> tf.keras 2 (legacy .h5) ----------------------------------------------------------------------------
def legacy_config(entry):
    """tf.keras 2's form of a Keras 3 entry: ``{"class_name", "config"}`` (a registered class by its registered
    name), no module or build/compile configs, and ``batch_input_shape`` for InputLayer."""
    if isinstance(entry, list):
        return [legacy_config(v) for v in entry]
    if not isinstance(entry, dict):
        return entry
    if "class_name" not in entry:
        return {k: legacy_config(v) for k, v in entry.items()}
    inner = legacy_config(entry.get("config"))
    if entry["class_name"] == "InputLayer" and isinstance(inner, dict) and "batch_shape" in inner:
        inner = {"batch_input_shape" if k == "batch_shape" else k: v for k, v in inner.items()}
    if entry["class_name"] == "function":
        return entry.get("registered_name") or inner
    rest = {k: legacy_config(v) for k, v in entry.items() if k not in _KERAS_3_ONLY}  # a graph's name, inbound_nodes
    return {**rest, "class_name": entry.get("registered_name") or entry["class_name"], "config": inner}
