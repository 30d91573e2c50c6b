"""Object configs in Keras 3's serialized form, both ways.

``serialize_keras_object`` turns a cuflow object into the dict Keras 3 writes to ``config.json``::

    {"module": "keras.layers", "class_name": "Dense", "config": {...}, "registered_name": null,
     "build_config": {"input_shape": [null, 4]}}

and ``deserialize_keras_object`` turns such a dict (or tf.keras 2's ``{"class_name", "config"}`` form from a
legacy ``.h5`` file, or a plain name like ``"glorot_uniform"``) back into a cuflow object. The translation between
cuflow's own ``get_config`` and Keras's lives here, so layers keep their plain configs.

Loading is safe: a name in a file is looked up among cuflow's built-ins, ``custom_objects``, the active
``custom_object_scope`` blocks and the registry of ``register_keras_serializable``; nothing named in a file is
imported, and Python lambdas (bytecode) are refused.

Example:

>>> from cuflow import keras
>>> config = keras.saving.serialize_keras_object(keras.initializers.GlorotUniform())
>>> config["module"], config["class_name"], config["config"]
('keras.initializers', 'GlorotUniform', {'seed': None})
>>> type(keras.saving.deserialize_keras_object(config)).__name__
'GlorotUniform'
"""
import importlib
import inspect
import types

import numpy as np

from . import object_registration as registration

__all__ = ["serialize_keras_object", "deserialize_keras_object", "resolve_class", "class_entry", "fit_kwargs",
           "config_values", "layer_kwargs"]

# kind -> (cuflow module, the base class its serializable classes derive from, Keras's module name)
_HOMES = {
    "layer": ("cuflow.layers", "cuflow.layers.base:Layer", "keras.layers"),
    "initializer": ("cuflow.initializers", "cuflow.initializers:Initializer", "keras.initializers"),
    "regularizer": ("cuflow.regularizers", "cuflow.regularizers:Regularizer", "keras.regularizers"),
    "activation": ("cuflow.activations", None, "keras.activations"),
    "optimizer": ("cuflow.optim", "cuflow.optim.optimizer:Optimizer", "keras.optimizers"),
    "schedule": ("cuflow.optim.schedules", "cuflow.optim.schedules:LearningRateSchedule",
                 "keras.optimizers.schedules"),
    "loss": ("cuflow.losses", "cuflow.losses:Loss", "keras.losses"),
    "metric": ("cuflow.metrics", "cuflow.metrics:Metric", "keras.metrics"),
}
# the parts of a Keras module path that tell the kind ('keras.src.backend.torch.optimizers.torch_adam' -> optimizer)
_KIND_BY_PART = {"layers": "layer", "initializers": "initializer", "regularizers": "regularizer",
                 "constraints": "constraint", "activations": "activation", "optimizers": "optimizer",
                 "schedules": "schedule", "losses": "loss", "metrics": "metric", "models": "layer"}
# config keys whose values are objects of a known kind (Keras's naming convention)
_KIND_BY_SUFFIX = (("_initializer", "initializer"), ("_regularizer", "regularizer"),
                   ("_constraint", "constraint"), ("activation", "activation"))
_MODEL_MODULES = {"Sequential": "keras", "Model": "keras", "Functional": "keras.src.models.functional"}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy", "Policy")
# Keras options cuflow lacks, at values that mean "off": a saved config may carry them and still load
_NEUTRAL = {"groups": 1, "data_format": "channels_last", "autocast": True, "sparse": False, "ragged": False,
            "optional": False, "use_cudnn": "auto"}

UNKNOWN_HINT = ("If it is your own class or function, pass it to the loading function in custom_objects "
                "(custom_objects={{'{name}': {name}}}) or decorate it with "
                "@keras.saving.register_keras_serializable().")


def _import(path):
    module, _, attr = path.partition(":")
    module = importlib.import_module(module)
    return getattr(module, attr) if attr else module


def _builtin(kind, name):
    """The cuflow built-in of ``kind`` called ``name`` (a class or, for activations/losses/metrics, a function)."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        return None
    if kind == "layer" and name in _MODEL_MODULES:
        from ..models import Model, Sequential
        from ..models.functional import Functional
        return {"Model": Model, "Sequential": Sequential, "Functional": Functional}[name]
    if kind not in _HOMES:
        return None
    module_path, base_path, _ = _HOMES[kind]
    module = _import(module_path)
    if name not in getattr(module, "__all__", ()):
        return None
    obj = getattr(module, name)
    if inspect.isclass(obj):
        return obj if base_path and issubclass(obj, _import(base_path)) else None
    return obj if kind in ("activation", "loss", "metric") and isinstance(obj, types.FunctionType) else None


def _kind_of(obj):
    """The kind of a cuflow object or class, or None."""
    cls = obj if inspect.isclass(obj) else type(obj)
    for kind, (_, base_path, _) in _HOMES.items():
        if base_path and issubclass(cls, _import(base_path)):
            return kind
    return None


def _kind_of_module(module):
    if not isinstance(module, str) or module.split(".")[0] != "keras":
        return None
    for part in reversed(module.split(".")):
        if part in _KIND_BY_PART:
            return _KIND_BY_PART[part]
    return "layer" if module in ("keras", "keras.models") else None


def _kind_of_key(key):
    for suffix, kind in _KIND_BY_SUFFIX:
        if key.endswith(suffix):
            return kind
    return None


# --- serialize ---------------------------------------------------------------------------------------------------
def serialize_keras_object(obj):
    """The Keras 3 config of ``obj`` (a layer, model, initializer, regularizer, optimizer, schedule, loss, metric,
    function or plain value): a JSON-ready dict as ``model.save`` writes it to ``config.json``.

    Raises:
        ValueError: a lambda (Keras would store its bytecode; cuflow never loads code, so it does not save it).
        TypeError: an object that has no ``get_config``.
    """
    from ..layers.base import Layer
    from ..tensor import Tensor, TensorShape
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, TensorShape):
        return None if obj.rank is None else list(obj.as_list())
    if isinstance(obj, (np.ndarray, Tensor)):
        array = np.asarray(obj)
        return {"class_name": "__numpy__", "config": {"value": array.tolist(), "dtype": str(array.dtype)}}
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, types.FunctionType):
        return _serialize_function(obj)
    if isinstance(obj, Layer):
        from .model_config import serialize_layer
        return serialize_layer(obj)
    if not hasattr(obj, "get_config"):
        raise TypeError(f"Cannot serialize {obj!r} of type {type(obj).__name__}: to be saved, a class must "
                        "implement get_config()")
    return class_entry(type(obj), serialize_keras_object(obj.get_config()))


def class_entry(cls, config):
    """``{"module", "class_name", "config", "registered_name"}`` for an instance of ``cls`` whose config is
    ``config``: a Keras module and no registered name for cuflow built-ins, else the class's own module and its
    registered name (its class name when it is not registered, as Keras writes it)."""
    kind = _kind_of(cls)
    if kind is not None and _builtin(kind, cls.__name__) is cls:
        module = _MODEL_MODULES.get(cls.__name__, _HOMES[kind][2])
        return {"module": module, "class_name": cls.__name__, "config": config, "registered_name": None}
    return {"module": cls.__module__, "class_name": cls.__name__, "config": config,
            "registered_name": registration.get_registered_name(cls)}


def _serialize_function(fn):
    if fn.__name__ == "<lambda>":
        raise ValueError("Cannot save a lambda: Keras stores its bytecode, and loading bytecode would run code from "
                         "the file, which cuflow never does. Use a named function decorated with "
                         "@keras.saving.register_keras_serializable()")
    for kind in ("activation", "loss", "metric"):
        if _builtin(kind, fn.__name__) is fn:
            return {"module": _HOMES[kind][2], "class_name": "function", "config": fn.__name__,
                    "registered_name": fn.__name__}
    name = registration.get_registered_name(fn)
    return {"module": fn.__module__, "class_name": "function", "config": name, "registered_name": name}


# --- deserialize -------------------------------------------------------------------------------------------------
def deserialize_keras_object(config, custom_objects=None, safe_mode=True, kind=None):
    """The cuflow object a Keras config describes (the reverse of :func:`serialize_keras_object`).

    Args:
        config: a Keras 3 dict (``module``/``class_name``/``config``/``registered_name``), tf.keras 2's
            ``{"class_name", "config"}``, a name, or a list or plain value.
        custom_objects: ``{name: class_or_function}`` for your own classes and functions.
        safe_mode: accepted for Keras compatibility; cuflow always loads safely (lambdas are refused either way).
        kind: what the config should be when the dict does not say (``'layer'``, ``'initializer'``,
            ``'optimizer'``, ...); names are then left for the consumer to resolve.

    Raises:
        ValueError: an unknown class or function (the message names it and suggests ``custom_objects``), a Python
            lambda or Lambda layer, or a saved option cuflow's class does not support.
    """
    if isinstance(config, str):
        found = registration.lookup([config], custom_objects)
        return config if found is None else found
    if isinstance(config, list):
        return [deserialize_keras_object(v, custom_objects, safe_mode, kind) for v in config]
    if not isinstance(config, dict):
        return config
    if "class_name" not in config:
        return {k: deserialize_keras_object(v, custom_objects, safe_mode) for k, v in config.items()}
    class_name, inner = config["class_name"], config.get("config")
    special = _special(class_name, inner)
    if special is not _NOT_SPECIAL:
        return special
    if class_name in _DTYPE_POLICIES:
        return inner["name"] if isinstance(inner, dict) else inner
    if class_name == "function":
        kind = _kind_of_module(config.get("module")) or kind
        return _function(inner, config.get("registered_name"), config.get("module"), kind, custom_objects)
    cls = resolve_class(config, custom_objects, kind)
    if not inspect.isclass(cls):
        return cls
    from ..layers.base import Layer
    if issubclass(cls, Layer):
        from .model_config import layer_from_config
        return layer_from_config(cls, config, custom_objects, safe_mode)
    inner = config_values(inner or {}, custom_objects, safe_mode)
    return cls.from_config(fit_kwargs(cls, inner, f"{class_name} (saved config)"))


def resolve_class(config, custom_objects=None, kind=None):
    """The class a config entry names: by registered name or class name in ``custom_objects``, the active scopes
    and the registry, else among cuflow's built-ins of its kind (from its module, else ``kind``).

    Raises:
        ValueError: no such class (the message names it and suggests ``custom_objects``).
    """
    class_name, module = config["class_name"], config.get("module")
    kind = _kind_of_module(module) or kind
    cls = registration.lookup([config.get("registered_name"), class_name], custom_objects)
    if cls is None:
        kinds = [kind] if kind else [k for k in _HOMES if k != "activation"]
        cls = next((c for c in (_builtin(k, class_name) for k in kinds) if c is not None), None)
    if cls is None:
        raise ValueError(_unknown_message(class_name, kind, module))
    return cls


def _unknown_message(class_name, kind, module):
    if class_name == "Lambda":
        return ("Cannot load a Lambda layer: it holds Python bytecode, and cuflow never runs code from a file (Keras's "
                "safe_mode). Rewrite it as a layer class and pass it in custom_objects.")
    what = f"{kind} class" if kind else "class"
    where = f" (module {module!r})" if module else ""
    return f"Unknown {what} {class_name!r}{where} in the saved config. " + UNKNOWN_HINT.format(name=class_name)


_NOT_SPECIAL = object()


def _special(class_name, inner):
    if class_name == "__lambda__":
        raise ValueError("Requested the deserialization of a Python lambda: it carries code from the file, which "
                         "cuflow never runs (Keras's safe_mode). Define the function in your code, decorate it with "
                         "@keras.saving.register_keras_serializable() and save the model again.")
    if class_name in ("__numpy__", "__tensor__"):
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(inner["start"], inner["stop"], inner["step"])
    return _NOT_SPECIAL


def _function(name, registered, module, kind, custom_objects):
    found = registration.lookup([registered, name], custom_objects)
    if found is None:
        kinds = [kind] if kind in ("activation", "loss", "metric") else ["activation", "loss", "metric"]
        found = next((f for f in (_builtin(k, name) for k in kinds) if f is not None), None)
    if found is None:
        raise ValueError(f"Unknown function {name!r} (module {module!r}) in the saved config. "
                         + UNKNOWN_HINT.format(name=name))
    return found


def _config_value(key, value, custom_objects, safe_mode):
    """One entry of a class's saved config, with nested objects deserialized; a nested layer (an RNN's cell) becomes
    its ``{"class_name", "config"}`` in cuflow's form, which the outer class's ``from_config`` reads, as in Keras."""
    if key == "dtype" and isinstance(value, dict):
        return deserialize_keras_object(value)
    if isinstance(value, dict) and "class_name" in value:
        layer_class = _nested_layer_class(value, custom_objects, _kind_of_key(key))
        if layer_class is not None:
            return {"class_name": value["class_name"],
                    "config": layer_kwargs(layer_class, value.get("config") or {}, custom_objects, safe_mode)}
        return deserialize_keras_object(value, custom_objects, safe_mode, kind=_kind_of_key(key))
    if isinstance(value, str) and _kind_of_key(key):
        return deserialize_keras_object(value, custom_objects)  # a registered name becomes its object
    return value


def _nested_layer_class(entry, custom_objects, kind):
    """The layer class a nested entry names, or None (not a layer, or unknown: deserializing it says so)."""
    from ..layers.base import Layer
    name = entry["class_name"]
    if name in ("function", *_DTYPE_POLICIES) or name.startswith("__") or kind not in (None, "layer"):
        return None
    try:
        cls = resolve_class(entry, custom_objects, kind)
    except ValueError:
        return None
    return cls if inspect.isclass(cls) and issubclass(cls, Layer) else None


def config_values(config, custom_objects, safe_mode):
    return {k: _config_value(k, v, custom_objects, safe_mode) for k, v in config.items()}


def layer_kwargs(cls, config, custom_objects=None, safe_mode=True):
    """A saved layer config as the arguments of ``cls.from_config``: nested objects deserialized, Keras options
    ``cls`` lacks dropped when off (see :func:`fit_kwargs`)."""
    config = config_values(config, custom_objects, safe_mode)
    return fit_kwargs(cls, config, f"Layer {config.get('name', cls.__name__)!r}")


def _init_params(cls):
    """The keyword names ``cls(...)`` accepts, and whether it accepts any (``**kwargs`` all the way down)."""
    from ..layers.base import Layer
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        # Layer's own **kwargs only raises on unknown names, so the chain closes there
        if klass is Layer or not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


def _config_reader(cls):
    """The class whose ``from_config`` ``cls`` uses, when that is not its kind's base class's (``Layer``,
    ``Initializer``, ...); else None."""
    kind = _kind_of(cls)
    base = _import(_HOMES[kind][1]) if kind is not None else None
    owner = next((klass for klass in cls.__mro__ if "from_config" in klass.__dict__), None)
    return None if owner is None or owner is base else owner


def fit_kwargs(cls, config, what):
    """``config`` without the Keras options ``cls`` does not take, when they hold a value that means "off"
    (None, False, ``groups=1``, ...); any other unsupported option is a ValueError naming it, or is left for the
    class to judge when it reads its config itself (cuflow's RNN layers). Your own ``from_config`` gets the whole
    config, as in Keras."""
    reader = _config_reader(cls)
    if reader is not None and not reader.__module__.startswith("cuflow."):
        return config
    names, takes_any = _init_params(cls)
    takes_any = takes_any or reader is not None
    out = {}
    for key, value in config.items():
        neutral = value is None or value is False or _NEUTRAL.get(key, _NOT_SPECIAL) == value
        if key in names or (takes_any and not neutral):  # open **kwargs: the class judges the rest
            out[key] = value
        elif not neutral:
            raise ValueError(f"{what}: the option {key}={value!r} is not supported by cuflow's {cls.__name__}")
    return out
