"""``keras.models``: ``Model`` (subclass it), ``Sequential``, and the training loop they share."""
from .model import Model
from .sequential import Sequential
from . import callbacks
from ..saving import load_model, save_model

__all__ = ["Model", "Sequential", "callbacks", "load_model", "save_model"]
