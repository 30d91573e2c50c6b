"""mnist, fashion_mnist and cifar10 on small files in their real formats (served by the fake server), and digits."""
import os
import pickle

import numpy as np
import pytest

from cuflow import keras
from cuflow.datasets import cifar10, fashion_mnist, mnist, _formats
from .conftest import cifar_batch_bytes, idx_bytes, npz_bytes, tar_gz_bytes

rng = np.random.default_rng(0)


def images(n, *shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def labels(n):
    return rng.integers(0, 10, size=n, dtype=np.uint8)


# --- MNIST ---------------------------------------------------------------------------------------------------------
def serve_mnist(server, monkeypatch, **arrays):
    digest = server.add(mnist.ORIGIN, npz_bytes(**arrays))
    monkeypatch.setattr(mnist, "FILE_HASH", digest)


def test_mnist_returns_keras_arrays_and_caches(server, monkeypatch, home):
    arrays = {"x_train": images(6, 28, 28), "y_train": labels(6), "x_test": images(3, 28, 28), "y_test": labels(3)}
    serve_mnist(server, monkeypatch, **arrays)
    assert not mnist.is_cached()
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    for got, name in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"), (y_test, "y_test")):
        assert got.dtype == np.uint8 and got.shape == arrays[name].shape
        np.testing.assert_array_equal(got, arrays[name])
    assert (home / "mnist.npz").is_file() and mnist.is_cached()
    mnist.load_data()
    assert len(server.requests) == 1


def test_mnist_rejects_a_file_without_its_arrays(server, monkeypatch):
    serve_mnist(server, monkeypatch, x_train=images(2, 28, 28), y_train=labels(2))
    with pytest.raises(ValueError, match=r"missing \['x_test', 'y_test'\]"):
        mnist.load_data()


def test_mnist_rejects_wrong_shapes(server, monkeypatch):
    serve_mnist(server, monkeypatch, x_train=images(2, 32, 32), y_train=labels(2), x_test=images(1, 28, 28),
                y_test=labels(1))
    with pytest.raises(ValueError, match=r"x_train has shape \(2, 32, 32\), expected \(None, 28, 28\)"):
        mnist.load_data()


def test_mnist_offline_error_says_where_to_put_the_file(server, home):
    server.offline = True
    with pytest.raises(ConnectionError, match=f"{mnist.ORIGIN}.*place it at {home / 'mnist.npz'}"):
        mnist.load_data()
    assert not mnist.is_cached()


def test_mnist_checksum_is_keras_one(server, home):
    server.add(mnist.ORIGIN, npz_bytes(x_train=images(1, 28, 28)))  # not the real file: Keras's hash refuses it
    with pytest.raises(ValueError, match=mnist.FILE_HASH):
        mnist.load_data()
    assert not os.listdir(home)


# --- Fashion-MNIST (IDX) -------------------------------------------------------------------------------------------
def serve_fashion(server, monkeypatch, files):
    for name, body in files.items():
        monkeypatch.setitem(fashion_mnist.FILE_HASHES, name, server.add(fashion_mnist.BASE + name, body))


def fashion_files(n_train=5, n_test=2):
    return {"train-images-idx3-ubyte.gz": images(n_train, 28, 28), "train-labels-idx1-ubyte.gz": labels(n_train),
            "t10k-images-idx3-ubyte.gz": images(n_test, 28, 28), "t10k-labels-idx1-ubyte.gz": labels(n_test)}


def test_fashion_mnist_reads_idx_files(server, monkeypatch, home):
    arrays = fashion_files()
    serve_fashion(server, monkeypatch, {name: idx_bytes(a) for name, a in arrays.items()})
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert x_train.dtype == y_train.dtype == np.uint8 and x_test.shape == (2, 28, 28) and y_train.shape == (5,)
    assert sorted(os.listdir(home / "fashion-mnist")) == sorted(arrays)


@pytest.mark.parametrize("broken, message", [
    ({"magic": b"\x08\x03\x00\x00"}, "is not an IDX file: it starts with 08030000"),
    ({"ndim": 2}, "expected an IDX file with 3 dimensions, its header says 2"),
    ({"count": 4}, r"expected sizes \(5, 28, 28\), the IDX header says \(4, 28, 28\)"),
    ({"truncate": 10}, r"promises \(5, 28, 28\) values of 1 byte\(s\) \(3920 bytes\), the file holds 3910"),
    ({"type_code": 0x0C}, "expected uint8 images, the IDX header says int32"),
])
def test_fashion_mnist_rejects_bad_idx_headers(server, monkeypatch, broken, message):
    arrays = fashion_files()
    files = {name: idx_bytes(a) for name, a in arrays.items()}
    name = "train-images-idx3-ubyte.gz"
    good = arrays[name]
    if "magic" in broken:
        files[name] = idx_bytes(good, magic=broken["magic"])
    elif "ndim" in broken:
        files[name] = idx_bytes(good.reshape(5, 28 * 28))
    elif "count" in broken:
        files[name] = idx_bytes(good[:4])
    elif "truncate" in broken:
        import gzip
        files[name] = gzip.compress(gzip.decompress(files[name])[:-broken["truncate"]])
    else:
        files[name] = idx_bytes(good.astype(np.int32), type_code=broken["type_code"])
    serve_fashion(server, monkeypatch, files)
    with pytest.raises(ValueError, match=message):
        fashion_mnist.load_data()


def test_read_idx_big_endian_types_and_short_headers(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000
    (tmp_path / "a.idx.gz").write_bytes(idx_bytes(values, type_code=0x0C))
    out = _formats.read_idx(tmp_path / "a.idx.gz", (None, 4))
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)
    (tmp_path / "b.idx").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match=r"header is cut short \(6 bytes, 16 expected\)"):
        _formats.read_idx(tmp_path / "b.idx", (None, 28, 28))
    (tmp_path / "c.idx").write_bytes(b"")
    with pytest.raises(ValueError, match="starts with nothing"):
        _formats.read_idx(tmp_path / "c.idx", (None,))


# --- CIFAR-10 (pickled batches in a tar.gz) ------------------------------------------------------------------------
def cifar_archive(batches, folder="cifar-10-batches-py"):
    return tar_gz_bytes({f"{folder}/{name}": body for name, body in batches.items()})


def cifar_batches(n=3):
    return {name: (images(n, 3072), labels(n)) for name in [*cifar10.TRAIN_BATCHES, "test_batch"]}


def serve_cifar(server, monkeypatch, archive):
    """Serves ``archive`` as CIFAR-10 (with its hash) and forgets any copy cached by an earlier step."""
    from cuflow.datasets._download import cached_path
    cached_path("cifar-10-python.tar.gz").unlink(missing_ok=True)
    monkeypatch.setattr(cifar10, "FILE_HASH", server.add(cifar10.ORIGIN, archive))


def test_cifar10_reads_pickled_batches_channels_last(server, monkeypatch, home):
    batches = cifar_batches()
    # NumPy 1 wrote the real files: one batch names numpy.core.multiarray, the rest NumPy 2's numpy._core.
    serve_cifar(server, monkeypatch, cifar_archive(
        {name: cifar_batch_bytes(*b, numpy1_names=name == "data_batch_2") for name, b in batches.items()}))
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    assert x_train.shape == (15, 32, 32, 3) and y_train.shape == (15, 1) and x_test.shape == (3, 32, 32, 3)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    data, wanted = batches["data_batch_2"]
    # row layout: 1024 red values, then green, then blue, each row-major over 32x32
    assert x_train[3 + 1, 5, 7, 2] == data[1, 2 * 1024 + 5 * 32 + 7]
    np.testing.assert_array_equal(x_train[3:6], data.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y_train[3:6, 0], wanted)
    np.testing.assert_array_equal(y_test[:, 0], batches["test_batch"][1])
    assert (home / "cifar-10-python.tar.gz").is_file() and not (home / "cifar-10-batches-py").exists()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.remove, (self.path,)


def test_cifar10_never_runs_code_from_a_batch(server, monkeypatch, tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("still here")
    batches = {name: cifar_batch_bytes(*b) for name, b in cifar_batches().items()}
    batches["test_batch"] = pickle.dumps({b"data": _Evil(str(canary)), b"labels": []}, protocol=3)
    serve_cifar(server, monkeypatch, cifar_archive(batches))
    with pytest.raises(ValueError, match=r"test_batch is not a valid dataset pickle: refusing to load "
                                         r"(posix|nt|os)\.(remove|unlink)"):
        cifar10.load_data()
    assert canary.read_text() == "still here"


def test_cifar10_rejects_missing_or_malformed_batches(server, monkeypatch):
    batches = {name: cifar_batch_bytes(*b) for name, b in cifar_batches().items()}
    del batches["data_batch_4"]
    serve_cifar(server, monkeypatch, cifar_archive(batches))
    with pytest.raises(ValueError, match=r"lacks the CIFAR-10 batches \['cifar-10-batches-py/data_batch_4'\]"):
        cifar10.load_data()
    batches["data_batch_4"] = cifar_batch_bytes(images(3, 1024), labels(3))
    serve_cifar(server, monkeypatch, cifar_archive(batches))
    with pytest.raises(ValueError, match=r"data_batch_4: b'data' must be a uint8 array of shape \(n, 3072\), got "
                                         r"uint8 \(3, 1024\)"):
        cifar10.load_data()
    batches["data_batch_4"] = cifar_batch_bytes(images(3, 3072), [1, 2, 11])
    serve_cifar(server, monkeypatch, cifar_archive(batches))
    with pytest.raises(ValueError, match="b'labels' must be 3 ints from 0 to 9"):
        cifar10.load_data()
    batches["data_batch_4"] = pickle.dumps([1, 2, 3], protocol=3)
    serve_cifar(server, monkeypatch, cifar_archive(batches))
    with pytest.raises(ValueError, match="data_batch_4 is not a CIFAR batch: expected a dict with b'data' and "
                                         "b'labels', got list"):
        cifar10.load_data()


# --- digits (offline) ----------------------------------------------------------------------------------------------
def test_digits_is_a_fixed_split_of_scikit_learns_images():
    sklearn = pytest.importorskip("sklearn.datasets")
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8) and y_train.shape == (1438,)
    assert x_train.dtype == y_test.dtype == np.uint8 and x_train.max() == 16
    (again, _), _ = keras.datasets.digits.load_data()
    np.testing.assert_array_equal(again, x_train)
    reference = sklearn.load_digits()
    everything = np.concatenate([x_train, x_test]).reshape(len(reference.images), -1)
    key = lambda rows: np.lexsort(rows.T)  # noqa: E731 - same multiset of images, in any order
    np.testing.assert_array_equal(everything[key(everything)], reference.data.astype(np.uint8)[key(reference.data)])
    (x_small, _), (x_big, _) = keras.datasets.digits.load_data(test_split=0.5)
    assert len(x_small) + len(x_big) == 1797 and abs(len(x_small) - len(x_big)) <= 1
    with pytest.raises(ValueError, match="test_split must be in"):
        keras.datasets.digits.load_data(test_split=1.0)
