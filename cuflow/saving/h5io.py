"""HDF5 access for the saving formats: h5py on demand (``pip install cuflow[saving]``) and guarded reads.

Reads refuse what could make a file reach outside itself or blow up memory, as Keras 3 does: soft and external
links, external and virtual datasets, and datasets declaring far more data than the file stores.
"""
import io
import math

import numpy as np

__all__ = ["require_h5py", "open_h5", "group", "dataset", "read", "write", "string_list", "set_string_list"]

_BOMB_FLOOR_BYTES = 1 << 32
_MAX_EXPANSION = 1000


def require_h5py():
    """The h5py module, or an ImportError saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise ImportError("Saving and loading .keras, .h5 and .weights.h5 files needs h5py: "
                          "pip install cuflow[saving]  (or pip install h5py)") from None
    return h5py


def open_h5(source, mode, what):
    """An ``h5py.File`` on a path or bytes; a file that is not HDF5 is a ValueError naming ``what``."""
    h5py = require_h5py()
    try:
        return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, mode)
    except OSError as e:
        if mode != "r":
            raise
        raise ValueError(f"{what} is not a readable HDF5 file ({e})") from None


def _link_check(parent, name):
    h5py = require_h5py()
    link = parent.get(name, getclass=True, getlink=True)
    if link in (h5py.SoftLink, h5py.ExternalLink):
        raise ValueError(f"Not allowed: an HDF5 {link.__name__} at {parent.name}/{name}")


def _child(parent, name, path, want_group):
    """``parent[name]``, a group or a dataset as asked (KeyError naming ``path`` if missing; links refused)."""
    h5py = require_h5py()
    if name not in parent:
        raise KeyError(path)
    _link_check(parent, name)
    child = parent[name]
    if not isinstance(child, h5py.Group if want_group else h5py.Dataset):
        expected, found = ("group", "dataset") if want_group else ("dataset", "group")
        raise ValueError(f"Invalid HDF5 file: expected a {expected} at {child.name}, found a {found}")
    return child


def group(parent, path):
    """The group at ``path`` under ``parent`` (KeyError if missing; links refused)."""
    for part in path.split("/"):
        parent = _child(parent, part, path, want_group=True)
    return parent


def dataset(parent, path):
    """The dataset at ``path`` under ``parent``, checked (links, external or virtual storage, size bombs)."""
    head, _, name = path.rpartition("/")
    data = _child(group(parent, head) if head else parent, name, path, want_group=False)
    if data.external or data.is_virtual:
        raise ValueError(f"Not allowed: HDF5 dataset {data.name} stores its data outside the file")
    declared = math.prod(data.shape or ()) * data.dtype.itemsize
    if declared > _BOMB_FLOOR_BYTES and declared > _MAX_EXPANSION * data.id.get_storage_size():
        raise ValueError(f"Not allowed: HDF5 dataset {data.name} declares {declared} bytes but stores almost "
                         "nothing (a decompression bomb)")
    return data


def read(parent, path):
    """A dataset's value as a NumPy array (bfloat16 restored from Keras's ``dtype`` attribute)."""
    data = dataset(parent, path)
    if data.attrs.get("dtype") == "bfloat16":
        import ml_dtypes
        return np.array(data, dtype=ml_dtypes.bfloat16)
    return np.array(data)


def write(parent, name, value):
    """Writes ``value`` as dataset ``name`` (bfloat16 tagged as Keras does)."""
    value = np.asarray(value)
    if value.dtype.name == "bfloat16":
        parent.create_dataset(name, data=value).attrs["dtype"] = "bfloat16"
    else:
        parent.create_dataset(name, data=value)


def string_list(node, name):
    """A list-of-strings attribute, also when split in chunks ``name0``, ``name1``, ... (tf.keras's trick for
    attributes over HDF5's 64 KB header limit)."""
    if name in node.attrs:
        values = list(node.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in node.attrs:
            values += list(node.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


_HEADER_LIMIT = 64512


def set_string_list(node, name, values):
    """Writes a list-of-strings attribute as tf.keras does (bytes; chunked when over the header limit; an empty
    list as an empty float array)."""
    data = np.asarray([v.encode("utf8") for v in values]) if values else np.asarray([])
    chunks = 1
    while data.nbytes / chunks > _HEADER_LIMIT and chunks < len(data):
        chunks += 1
    if chunks == 1:
        node.attrs[name] = data
    else:
        for i, part in enumerate(np.array_split(data, chunks)):
            node.attrs[f"{name}{i}"] = part
