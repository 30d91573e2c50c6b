"""A fake download server and small files in the datasets' real formats, so no test touches the network.

``server`` stands in for ``urllib.request.urlopen`` inside cuflow's downloader: it serves ``server.files[url]``,
honours ``Range`` requests like a real HTTP server (206 + Content-Range), logs every request, and can be told to
be offline, to drop the connection after some bytes, to ignore ``Range``, or to answer with an HTTP error.
"""
import gzip
import hashlib
import io
import pickle
import socket
import tarfile
import urllib.error
import zipfile

import numpy as np
import pytest

from cuflow.datasets import _download


class FakeResponse:
    def __init__(self, body, status, headers, cut_after=None):
        self.status, self.headers = status, headers
        self._stream, self._cut_after, self._sent = io.BytesIO(body), cut_after, 0

    def read(self, n=-1):
        if self._cut_after is not None and self._sent >= self._cut_after:
            raise ConnectionResetError("connection reset by peer (fake)")
        if self._cut_after is not None:
            n = min(n if n >= 0 else self._cut_after, self._cut_after - self._sent)
        block = self._stream.read(n)
        self._sent += len(block)
        return block

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeServer:
    def __init__(self):
        self.files, self.requests = {}, []
        self.offline = False
        self.cut_after = []        # per attempt: bytes to send before dropping the connection (None: all)
        self.http_errors = []      # per attempt: an HTTP status to answer with (None: serve normally)
        self.ignore_range = False

    def add(self, url, body):
        self.files[url] = body
        return hashlib.sha256(body).hexdigest()

    def __call__(self, request, timeout=None):
        url, byte_range = request.full_url, request.get_header("Range")
        self.requests.append((url, byte_range))
        if self.offline:
            raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
        if self.http_errors:
            code = self.http_errors.pop(0)
            if code is not None:
                raise urllib.error.HTTPError(url, code, f"fake {code}", {}, None)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        body = self.files[url]
        cut = self.cut_after.pop(0) if self.cut_after else None
        if byte_range and not self.ignore_range:
            start = int(byte_range.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                raise urllib.error.HTTPError(url, 416, "Range Not Satisfiable", {}, None)
            headers = {"Content-Length": str(len(body) - start),
                       "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            return FakeResponse(body[start:], 206, headers, cut)
        return FakeResponse(body, 200, {"Content-Length": str(len(body))}, cut)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty ``$CUFLOW_HOME``; returns its ``datasets`` folder."""
    monkeypatch.setenv("CUFLOW_HOME", str(tmp_path / "cuflow-home"))
    return tmp_path / "cuflow-home" / "datasets"


@pytest.fixture
def server(home, monkeypatch):
    fake = FakeServer()
    monkeypatch.setattr(_download, "_urlopen", fake)
    monkeypatch.setattr(_download, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    return fake


def idx_bytes(array, type_code=0x08, magic=None):
    """An IDX file (gzipped): big-endian header, then the values in ``array``'s big-endian form."""
    head = magic if magic is not None else bytes([0, 0, type_code, array.ndim])
    sizes = np.asarray(array.shape, dtype=">u4").tobytes()
    return gzip.compress(head + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes())


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def cifar_batch_bytes(data, labels, numpy1_names=False):
    """A CIFAR batch as its authors pickled it: a dict with bytes keys, uint8 ``data`` rows, a list of labels."""
    batch = {b"batch_label": b"fake batch", b"labels": [int(v) for v in labels], b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(data))]}
    raw = pickle.dumps(batch, protocol=3)  # GLOBAL opcodes name modules as text, so they can be renamed
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if numpy1_names else raw


def tar_gz_bytes(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()
