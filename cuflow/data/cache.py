"""``Dataset.cache``: the elements of the first complete iteration, kept in memory or in a NumPy ``.npz`` file.

The file is a zip of ``.npy`` members, one per component of each element (``"<element>.<component>.npy"``), plus
``structure.json`` describing how components nest. It is written under a temporary name and renamed once the
iteration completes, so an interrupted iteration never leaves a partial cache behind; reading it back loads one
member at a time and never unpickles anything.
"""
import itertools
import json
import os
import tempfile
import threading
import zipfile

import numpy as np

from .. import devices as _devices
from . import structure
from .dataset import Dataset, iterate


class Cache(Dataset):
    """Replays the input's first complete iteration (``filename=''``: from memory; else from ``filename``)."""

    def __init__(self, dataset, filename):
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"cache: `filename` must be a str path ('' caches in memory), got {filename!r}")
        super().__init__(dataset)
        self._filename = os.fspath(filename)
        self._memory = None
        self._lock = threading.Lock()

    def _iterate(self):
        if self._filename:
            yield from (_read(self._filename) if os.path.exists(self._filename) else self._write_through())
            return
        if self._memory is not None:
            yield from self._memory
            return
        seen = []
        with iterate(self._inputs[0]) as elements:
            for element in elements:
                seen.append(element)
                yield element
        with self._lock:
            if self._memory is None:
                self._memory = seen

    def _write_through(self):
        folder, base = os.path.split(os.path.abspath(self._filename))
        handle, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
        os.close(handle)
        layout, components, count, done = None, 0, 0, False
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                with iterate(self._inputs[0]) as elements:
                    for element in elements:
                        if layout is None:
                            layout = _layout(element, itertools.count())
                            components = len(structure.flatten(element))
                        for part, array in enumerate(structure.flatten(element)):
                            with archive.open(f"{count}.{part}.npy", "w", force_zip64=True) as member:
                                np.lib.format.write_array(member, _storable(array), allow_pickle=False)
                        count += 1
                        yield element
                archive.writestr("structure.json", json.dumps({"layout": layout, "components": components,
                                                               "count": count}))
            os.replace(tmp, self._filename)
            done = True
        finally:
            if not done:
                os.remove(tmp)

    def _cardinality(self):
        return self._inputs[0]._cardinality()


def _layout(element, counter):
    """A JSON description of how an element nests; its leaves are component numbers (namedtuples become tuples)."""
    if isinstance(element, dict):
        return {"dict": [[k, _layout(v, counter)] for k, v in element.items()]}
    if isinstance(element, tuple):
        return {"tuple": [_layout(v, counter) for v in element]}
    return next(counter)


def _rebuild(layout, leaves):
    if isinstance(layout, dict) and "dict" in layout:
        return {k: _rebuild(v, leaves) for k, v in layout["dict"]}
    if isinstance(layout, dict):
        return tuple(_rebuild(v, leaves) for v in layout["tuple"])
    return leaves[layout]


def _storable(array):
    array = _devices.to_device(array, _devices.CPU)
    if array.dtype == object:  # string components: fixed-width bytes, read back as cuflow's object strings
        return array.astype(np.bytes_)
    return array


def _read(filename):
    with zipfile.ZipFile(filename) as archive:
        info = json.loads(archive.read("structure.json"))
        for index in range(info["count"]):
            leaves = []
            for part in range(info["components"]):
                with archive.open(f"{index}.{part}.npy") as member:
                    array = np.lib.format.read_array(member, allow_pickle=False)
                leaves.append(array.astype(object) if array.dtype.kind == "S" else array)
            yield _rebuild(info["layout"], leaves)
