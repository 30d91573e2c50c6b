"""Custom objects by name: ``@register_keras_serializable`` and ``custom_object_scope``, as in Keras 3.

A file names its classes and functions; loading maps each name back to an object that is already imported: a
cuflow built-in, an entry of ``custom_objects``, or one registered here. Nothing named in a file is ever imported
or executed.

Example:

>>> from cuflow import keras
>>> @keras.saving.register_keras_serializable(package="demo")
... def scaled_relu(x):
...     return keras.activations.relu(x) * 2.0
>>> keras.saving.get_registered_name(scaled_relu)
'demo>scaled_relu'
"""
import inspect

__all__ = ["register_keras_serializable", "get_registered_name", "get_registered_object", "custom_object_scope",
           "CustomObjectScope", "get_custom_objects"]

_GLOBAL_CUSTOM_OBJECTS = {}   # registered name ("package>name") -> class or function
_GLOBAL_CUSTOM_NAMES = {}     # class or function -> registered name
_SCOPES = []                  # the dicts of the active custom_object_scope blocks, innermost last


def register_keras_serializable(package="Custom", name=None):
    """Registers a class or function under ``"package>name"`` so that loading finds it without
    ``custom_objects``.

    Args:
        package: the namespace of the name (default ``"Custom"``).
        name: the name within the package (default: the object's ``__name__``).

    Returns:
        A decorator returning the object unchanged.

    Raises:
        ValueError: a class without ``get_config`` (it could not be saved), or a name registered twice.
    """
    def decorator(obj):
        key = f"{package}>{name if name is not None else obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(f"register_keras_serializable: {obj.__name__} has no get_config() method, so it "
                             "cannot be saved; give it get_config() (and from_config() if needed)")
        if key in _GLOBAL_CUSTOM_OBJECTS and _GLOBAL_CUSTOM_OBJECTS[key] is not obj:
            raise ValueError(f"register_keras_serializable: {key!r} is already registered to "
                             f"{_GLOBAL_CUSTOM_OBJECTS[key]!r}")
        _GLOBAL_CUSTOM_OBJECTS[key] = obj
        _GLOBAL_CUSTOM_NAMES[obj] = key
        return obj
    return decorator


def get_registered_name(obj):
    """The name ``obj`` was registered under, else its ``__name__``."""
    return _GLOBAL_CUSTOM_NAMES.get(obj, getattr(obj, "__name__", None))


def get_registered_object(name, custom_objects=None):
    """The object for ``name`` from ``custom_objects``, the active scopes or the registry, else None."""
    for table in (custom_objects or {}, *reversed(_SCOPES), _GLOBAL_CUSTOM_OBJECTS):
        if name in table:
            return table[name]
    return None


def get_custom_objects():
    """The global registry (a live dict: adding to it registers)."""
    return _GLOBAL_CUSTOM_OBJECTS


def lookup(names, custom_objects=None):
    """The first object any of ``names`` resolves to (custom objects, scopes, registry), or None."""
    for name in names:
        if name:
            found = get_registered_object(name, custom_objects)
            if found is not None:
                return found
    return None


class CustomObjectScope:
    """``with custom_object_scope({'MyLayer': MyLayer}):`` makes the names known to every load inside the block."""

    def __init__(self, custom_objects):
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self):
        _SCOPES.append(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _SCOPES.pop()


custom_object_scope = CustomObjectScope
