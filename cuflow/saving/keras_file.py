"""The ``.keras`` format: a zip holding ``metadata.json``, ``config.json`` and ``model.weights.h5``, as Keras 3
writes it (members stored uncompressed, in that order).

``config.json`` is the model's Keras 3 config (:mod:`cuflow.saving.serialization`), ``model.weights.h5`` its
weights and optimizer state in Keras 3's layout (:mod:`cuflow.saving.weights`).
"""
import datetime
import io
import json
import os
import zipfile

from . import h5io
from .atomic import atomic_path
from .serialization import serialize_keras_object, deserialize_keras_object
from .weights import save_weights_to_h5, load_weights_from_h5

__all__ = ["save_keras", "load_keras", "load_keras_weights", "KERAS_VERSION"]

KERAS_VERSION = "3.15.1"  # the Keras release whose files cuflow's match (tests/saving/test_keras_interop.py)
CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
_ZIP_BOMB_FLOOR = 1 << 32
_ZIP_MAX_EXPANSION = 100


def save_keras(model, filepath):
    """Writes ``model`` to ``filepath`` (a path, written atomically, or a binary file object)."""
    config = json.dumps(serialize_keras_object(model))
    metadata = json.dumps({"keras_version": KERAS_VERSION,
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})
    weights = io.BytesIO()
    with h5io.open_h5(weights, "w", "model.weights.h5") as f:
        save_weights_to_h5(model, f)
    if hasattr(filepath, "write"):
        _write_zip(filepath, metadata, config, weights.getvalue())
        return
    with atomic_path(filepath) as tmp:
        _write_zip(tmp, metadata, config, weights.getvalue())


def _write_zip(target, metadata, config, weights):
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(METADATA, metadata)
        archive.writestr(CONFIG, config)
        archive.writestr(WEIGHTS, weights)


def _open_zip(filepath):
    source = str(getattr(filepath, "name", "<file object>")) if hasattr(filepath, "read") else os.fspath(filepath)
    try:
        return zipfile.ZipFile(filepath, "r"), source
    except zipfile.BadZipFile:
        raise ValueError(f"{source} is not a valid .keras file: it is not a zip archive") from None


def _member(archive, member, source):
    if member not in archive.namelist():
        raise ValueError(f"{source} is not a valid .keras file: it has no {member} (members: "
                         f"{archive.namelist()})")
    info = archive.getinfo(member)
    if info.file_size > _ZIP_BOMB_FLOOR and info.file_size > _ZIP_MAX_EXPANSION * info.compress_size:
        raise ValueError(f"Not allowed: {source} member {member} declares {info.file_size} bytes but stores "
                         f"{info.compress_size} (a decompression bomb)")
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{source} is not a valid .keras file: {member} cannot be read ({e})") from None


def load_keras(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in the ``.keras`` file ``filepath``, built and with its weights (compiled when the file has a
    compile config and ``compile`` is true)."""
    from ..layers.base import Layer
    archive, source = _open_zip(filepath)
    with archive:
        try:
            config = json.loads(_member(archive, CONFIG, source))
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not a valid .keras file: config.json is not valid JSON ({e})") from None
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError(f"{source} is not a valid .keras file: config.json holds no object config")
        if not compile:
            config["compile_config"] = None
        model = deserialize_keras_object(config, custom_objects, safe_mode, kind="layer")
        if not isinstance(model, Layer):
            raise ValueError(f"{source}: config.json describes a {config['class_name']}, not a model")
        _load_weights(model, archive, source)
    return model


def load_keras_weights(model, filepath, skip_mismatch=False):
    """Loads the weights of the ``.keras`` file ``filepath`` into ``model``."""
    archive, source = _open_zip(filepath)
    with archive:
        _load_weights(model, archive, source, skip_mismatch)


def _load_weights(model, archive, source, skip_mismatch=False):
    if WEIGHTS not in archive.namelist() and "model.weights.npz" in archive.namelist():
        raise ValueError(f"{source} stores its weights as model.weights.npz (Keras's weights_format='npz'), which "
                         "cuflow does not read; save it with the default h5 weights")
    weights = _member(archive, WEIGHTS, source)
    with h5io.open_h5(weights, "r", f"{source}/{WEIGHTS}") as f:
        load_weights_from_h5(model, f, f"{source}/{WEIGHTS}", skip_mismatch)
