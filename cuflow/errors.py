"""Exception types with TensorFlow's names.

Each subclasses the Python exception a user would naturally catch, so ``except ValueError`` and
``except cuflow.errors.InvalidArgumentError`` both work.
"""

__all__ = ["OpError", "InvalidArgumentError", "NotFoundError", "UnavailableError", "DeviceMismatchError"]


class OpError(Exception):
    """Base class of cuflow's operation errors (``tf.errors.OpError``)."""


class InvalidArgumentError(OpError, ValueError):
    """An operation got an argument of the wrong shape or value."""


class DeviceMismatchError(InvalidArgumentError):
    """An operation got tensors that live on different devices; move one with ``.cpu()`` or ``.gpu()``."""


class NotFoundError(OpError, LookupError):
    """Something asked for (a device, a file) does not exist."""


class UnavailableError(OpError, RuntimeError):
    """A device was asked for but is not available on this machine (e.g. a GPU without CUDA)."""
