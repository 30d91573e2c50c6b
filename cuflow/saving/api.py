"""``save_model`` / ``load_model`` and the ``Model`` methods ``save``, ``save_weights``, ``load_weights``: the
file suffix picks the format, as in Keras 3.

==================  =====================================================================================
``.keras``          Keras 3's zip (config, metadata, weights and optimizer state) — :mod:`.keras_file`
``.h5`` ``.hdf5``   tf.keras 2's legacy HDF5 model file — :mod:`.h5_legacy`
``.weights.h5``     weights only, Keras 3's layout (``save_weights`` / ``load_weights``) — :mod:`.weights`
==================  =====================================================================================
"""
import os
import warnings

from . import h5io
from .atomic import atomic_path
from .h5_legacy import save_h5, load_h5, load_h5_weights
from .keras_file import save_keras, load_keras, load_keras_weights
from .weights import save_weights_to_h5, load_weights_from_h5

__all__ = ["save_model", "load_model", "SavingMixin"]


def _path(filepath):
    return None if hasattr(filepath, "read") or hasattr(filepath, "write") else os.fspath(filepath)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Saves ``model`` to ``filepath``: ``.keras`` (Keras 3's format) or ``.h5`` (tf.keras 2's). The file is
    replaced atomically: a save that fails leaves the previous file as it was.

    Args:
        model: a built model.
        filepath: a path ending in ``.keras``, ``.h5`` or ``.hdf5``, or a binary file object (``.keras`` format).
        overwrite: if False, an existing file is a FileExistsError.
        zipped: Keras's option; only the zipped ``.keras`` file is supported.
        include_optimizer: (``.h5`` only) also save the training config and optimizer state (default True).

    Raises:
        ValueError: another suffix, or an unknown keyword argument.
        FileExistsError: ``overwrite=False`` and the file exists.
        ImportError: h5py is missing (``pip install cuflow[saving]``).

    Example:

    >>> import os, tempfile
    >>> from cuflow import keras
    >>> model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> model.save(path)
    >>> keras.models.load_model(path).layers[0].units
    2
    """
    include_optimizer = kwargs.pop("include_optimizer", True)
    kwargs.pop("save_format", None)  # deprecated in Keras 3: the suffix decides
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {sorted(kwargs)}")
    if zipped is False:
        raise ValueError("save: zipped=False (an unzipped model directory) is not supported; save to a .keras file")
    path = _path(filepath)
    if path is None:
        save_keras(model, filepath)
        return
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save: {path} exists and overwrite=False")
    if not model.built:
        warnings.warn("You are saving a model that has not yet been built. It might not contain any weights yet. "
                      "Consider building the model first by calling it on some data.", stacklevel=3)
    if path.endswith(".keras"):
        save_keras(model, path)
    elif path.endswith((".h5", ".hdf5")):
        save_h5(model, path, include_optimizer)
    else:
        raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` extension for the "
                         "native Keras format (recommended) or a `.h5` extension. Use `model.export(filepath)` for "
                         f"a serving directory. Received: filepath={path}")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a model saved with ``model.save`` — by cuflow, Keras 3 or tf.keras 2 — from a ``.keras`` or ``.h5``
    file. The model is built from its config, then its weights are checked and assigned; nothing from the file is
    executed (no pickle, no Python bytecode).

    Args:
        filepath: a path ending in ``.keras``, ``.h5`` or ``.hdf5``, or a binary file object (``.keras``).
        custom_objects: ``{name: class_or_function}`` for your own layers, losses, activations...
        compile: compile the model with the saved optimizer, loss and metrics (and restore the optimizer state).
        safe_mode: accepted for Keras compatibility; cuflow always refuses code from a file (lambdas).

    Returns:
        The model.

    Raises:
        ValueError: no such file, an unsupported suffix, a corrupted or foreign file, an unknown class (the
            message names it and suggests ``custom_objects``), or weights that do not fit the model.
    """
    path = _path(filepath)
    if path is None:
        return load_keras(filepath, custom_objects, compile, safe_mode)
    if not os.path.exists(path):
        raise ValueError(f"File not found: filepath={path}. Please ensure the file is an accessible `.keras` zip "
                         "file.")
    if path.endswith(".keras"):
        return load_keras(path, custom_objects, compile, safe_mode)
    if path.endswith((".h5", ".hdf5")):
        return load_h5(path, custom_objects, compile, safe_mode)
    raise ValueError(f"File format not supported: filepath={path}. cuflow (like Keras 3) loads `.keras` files and "
                     "legacy H5 files (`.h5` extension); a TensorFlow SavedModel directory is not supported.")


class SavingMixin:
    """``save``, ``save_weights`` and ``load_weights`` for :class:`cuflow.keras.Model`."""

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Saves the model to a ``.keras`` or ``.h5`` file; see :func:`cuflow.saving.save_model`."""
        save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Saves the weights (and the optimizer's state) to a ``.weights.h5`` file in Keras 3's layout, atomically.

        Raises:
            ValueError: a name not ending in ``.weights.h5`` (Keras 3's rule), or a model that is not built.
            FileExistsError: ``overwrite=False`` and the file exists.
        """
        path = os.fspath(filepath)
        if not path.endswith(".weights.h5"):
            raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={path}")
        if not self.built:
            raise ValueError("You are saving a model that has not yet been built. Try building the model first by "
                             "calling it on some data or by using `build()`.")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"save_weights: {path} exists and overwrite=False")
        with atomic_path(path) as tmp:
            with h5io.open_h5(tmp, "w", path) as f:
                save_weights_to_h5(self, f)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads weights from a ``.weights.h5`` or ``.keras`` file (Keras 3's layout) or a legacy ``.h5`` file.
        Every count and shape is checked before any weight changes.

        Args:
            skip_mismatch: skip (with a warning) layers whose weights do not fit, instead of raising.
            by_name: (legacy ``.h5`` only) match layers by name instead of by order.

        Raises:
            ValueError: an unsupported suffix, a model that is not built, or weights that do not fit (naming the
                layer, the expected and the found shape).
            FileNotFoundError: no such file.
        """
        by_name = kwargs.pop("by_name", False)
        if kwargs:
            raise ValueError(f"Invalid keyword arguments: {kwargs}")
        path = os.fspath(filepath)
        if not self.built:
            raise ValueError("You are loading weights into a model that has not yet been built. Try building the "
                             "model first by calling it on some data or by using `build()`.")
        if not os.path.exists(path):
            raise FileNotFoundError(f"load_weights: no file at {path}")
        if by_name and (not path.endswith((".h5", ".hdf5")) or path.endswith(".weights.h5")):
            raise ValueError(f"`by_name` only supports loading legacy '.h5' or '.hdf5' files. Received: {path}")
        if path.endswith(".keras"):
            load_keras_weights(self, path, skip_mismatch)
        elif path.endswith(".weights.h5"):
            with h5io.open_h5(path, "r", path) as f:
                legacy = "layer_names" in f.attrs  # tf.keras 2's save_weights under a Keras 3 name
                if not legacy:
                    load_weights_from_h5(self, f, path, skip_mismatch)
            if legacy:
                load_h5_weights(self, path, skip_mismatch)
        elif path.endswith((".h5", ".hdf5")):
            load_h5_weights(self, path, skip_mismatch, by_name)
        else:
            raise ValueError(f"File format not supported: filepath={path}. Keras 3 only supports V3 `.keras` files, "
                             "`.weights.h5` files, or legacy H5 format files (`.h5` extension).")
