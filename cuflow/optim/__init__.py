"""Optimizers (``cuflow.optimizers`` / ``cuflow.keras.optimizers``): SGD, Adam, AdamW, RMSprop, Adagrad and
learning-rate schedules, with Keras 3's names, defaults and formulas.

Example:

>>> import cuflow as tf
>>> from cuflow import optim
>>> type(optim.get("adam")).__name__
'Adam'
"""
from . import schedules
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "schedules", "get", "serialize",
           "deserialize"]

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` for an optimizer."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """The optimizer described by :func:`serialize`'s dict (class names match case-insensitively)."""
    from .._known import deserialize_known
    known = {**_BY_NAME, **{k.lower(): v for k, v in (custom_objects or {}).items()}}
    return deserialize_known(config, known, "optimizer", "optimizers", fold_case=True)


def get(identifier):
    """Resolves an optimizer: an instance is returned as is, a name (``'adam'``, ``'SGD'``...) gives one with the
    default arguments, a dict is deserialized.

    Raises:
        ValueError: the identifier names no known optimizer.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. Known optimizers: "
                     f"{', '.join(sorted(_BY_NAME))}")
