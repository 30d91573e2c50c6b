"""``keras.models``: ``Model`` (subclass it), ``Sequential``, and the training loop they share."""
from .model import Model
from .sequential import Sequential
from . import callbacks

__all__ = ["Model", "Sequential", "callbacks"]
