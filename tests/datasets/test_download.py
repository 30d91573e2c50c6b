"""The downloader behind keras.utils.get_file and the dataset loaders: cache, checksum, resume, retry, offline."""
import hashlib
import os
import tarfile

import pytest

from cuflow import keras
from cuflow.datasets import DownloadError, _download
from .conftest import tar_gz_bytes, zip_bytes

URL = "https://example.org/data/blob.bin"
BODY = bytes(range(256)) * 40  # 10 KiB


def test_downloads_once_then_reads_the_cache(server, home, capsys):
    digest = server.add(URL, BODY)
    path = keras.utils.get_file(origin=URL, file_hash=digest)
    assert path == str(home / "blob.bin") and open(path, "rb").read() == BODY
    assert keras.utils.get_file(origin=URL, file_hash=digest) == path
    assert len(server.requests) == 1
    assert not os.path.exists(path + ".part")
    assert "downloading blob.bin" in capsys.readouterr().err  # the progress bar


def test_concurrent_fetches_of_one_file_take_turns(server, home, monkeypatch):
    """Two fetches of the same file at once (threads here; processes alike: the lock is an flock under
    $CUFLOW_HOME/locks): one downloads, the other waits and reads the verified file. Without the lock both wrote the
    same .part."""
    import threading
    import time
    digest = server.add(URL, BODY)

    def slow(request, timeout=None):
        time.sleep(0.3)  # keeps the first transfer in flight while the second fetch starts
        return server(request, timeout)
    monkeypatch.setattr(_download, "_urlopen", slow)
    results, errors = [], []

    def fetch():
        try:
            results.append(keras.utils.get_file(origin=URL, file_hash=digest))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [str(home / "blob.bin")] * 2
    assert len(server.requests) == 1 and open(results[0], "rb").read() == BODY


def test_cache_root_follows_cuflow_home_and_cache_dir(server, tmp_path):
    server.add(URL, BODY)
    assert keras.utils.get_file("b.bin", URL, cache_subdir="sub", cache_dir=tmp_path / "c") == \
        str(tmp_path / "c" / "sub" / "b.bin")
    assert _download.cuflow_home() == tmp_path / "cuflow-home"


def test_offline_error_names_the_file_the_url_and_where_to_put_it(server, home):
    server.offline = True
    with pytest.raises(DownloadError) as info:
        keras.utils.get_file("blob.bin", URL, file_hash="0" * 64)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, OSError)
    message = str(info.value)
    assert "blob.bin" in message and URL in message and f"place it at {home / 'blob.bin'}" in message
    assert len(server.requests) == 1  # a name that does not resolve is not retried
    assert not (home / "blob.bin").exists()


def test_dropped_connection_is_resumed_with_a_range_request(server, home):
    digest = server.add(URL, BODY)
    server.cut_after = [1000, 3000]
    path = keras.utils.get_file(origin=URL, file_hash=digest)
    assert open(path, "rb").read() == BODY
    assert [r for _, r in server.requests] == [None, "bytes=1000-", "bytes=4000-"]


def test_interrupted_download_is_never_trusted_and_resumes_next_time(server, home):
    digest = server.add(URL, BODY)
    server.cut_after = [500, 0, 0, 0]  # every attempt of this call fails
    with pytest.raises(DownloadError, match=r"4 attempt\(s\).*500 bytes received so far are kept in .*blob.bin.part"):
        keras.utils.get_file(origin=URL, file_hash=digest)
    assert not (home / "blob.bin").exists()
    assert (home / "blob.bin.part").read_bytes() == BODY[:500]
    server.requests.clear()
    path = keras.utils.get_file(origin=URL, file_hash=digest)
    assert server.requests == [(URL, "bytes=500-")]
    assert open(path, "rb").read() == BODY and not (home / "blob.bin.part").exists()


def test_server_that_ignores_range_restarts_the_file(server, home):
    digest = server.add(URL, BODY)
    server.cut_after, server.ignore_range = [700], True
    assert open(keras.utils.get_file(origin=URL, file_hash=digest), "rb").read() == BODY


def test_checksum_mismatch_deletes_the_download_and_raises(server, home):
    server.add(URL, BODY)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ValueError, match=f"does not match its expected checksum.*expected {wrong}"):
        keras.utils.get_file(origin=URL, file_hash=wrong)
    assert os.listdir(home) == []


def test_a_corrupt_partial_file_fails_the_checksum_and_is_removed(server, home):
    digest = server.add(URL, BODY)
    home.mkdir(parents=True)
    (home / "blob.bin.part").write_bytes(b"x" * 100)  # not a prefix of the real file
    with pytest.raises(ValueError, match="checksum"):
        keras.utils.get_file(origin=URL, file_hash=digest)
    assert os.listdir(home) == []
    assert open(keras.utils.get_file(origin=URL, file_hash=digest), "rb").read() == BODY


def test_a_corrupt_cached_file_is_replaced(server, home):
    digest = server.add(URL, BODY)
    home.mkdir(parents=True)
    (home / "blob.bin").write_bytes(b"tampered")
    with pytest.warns(UserWarning, match="does not match its expected checksum"):
        path = keras.utils.get_file(origin=URL, file_hash=digest)
    assert open(path, "rb").read() == BODY


def test_range_past_the_end_starts_over(server, home):
    digest = server.add(URL, BODY)
    home.mkdir(parents=True)
    (home / "blob.bin.part").write_bytes(BODY + b"extra")
    assert open(keras.utils.get_file(origin=URL, file_hash=digest), "rb").read() == BODY
    assert [r for _, r in server.requests] == [f"bytes={len(BODY) + 5}-", None]


def test_server_errors_are_retried_but_not_found_is_not(server, home):
    digest = server.add(URL, BODY)
    server.http_errors = [503, 500]
    assert open(keras.utils.get_file(origin=URL, file_hash=digest), "rb").read() == BODY
    assert len(server.requests) == 3
    with pytest.raises(DownloadError, match="HTTP 404.*place it at"):
        keras.utils.get_file(origin="https://example.org/missing.bin")
    assert len(server.requests) == 4


def test_md5_hashes_and_validate_file(server, home):
    md5 = hashlib.md5(BODY).hexdigest()
    server.add(URL, BODY)
    path = keras.utils.get_file(origin=URL, file_hash=md5)
    assert keras.utils.validate_file(path, md5) and keras.utils.validate_file(path, hashlib.sha256(BODY).hexdigest())
    assert not keras.utils.validate_file(path, "0" * 64)
    assert keras.utils.get_file("again.bin", URL, md5_hash=md5) == str(home / "again.bin")  # Keras's older name
    with pytest.raises(ValueError, match="hash_algorithm must be"):
        keras.utils.get_file(origin=URL, file_hash=md5, hash_algorithm="sha1", force_download=True)


def test_bad_arguments(server):
    with pytest.raises(ValueError, match="origin must be a URL"):
        keras.utils.get_file("x.bin")
    with pytest.raises(ValueError, match="cannot name the file"):
        keras.utils.get_file(origin="https://example.org/")


def test_extract_tar_and_zip(server, home):
    server.add("https://example.org/a.tar.gz", tar_gz_bytes({"folder/one.txt": b"1", "two.txt": b"22"}))
    folder = keras.utils.get_file(origin="https://example.org/a.tar.gz", extract=True)
    assert folder == str(home / "a.tar.gz_extracted")
    assert open(os.path.join(folder, "folder", "one.txt"), "rb").read() == b"1"
    server.add("https://example.org/b.zip", zip_bytes({"z/three.txt": b"333"}))
    folder = keras.utils.get_file(origin="https://example.org/b.zip", extract=True)
    assert open(os.path.join(folder, "z", "three.txt"), "rb").read() == b"333"
    server.add("https://example.org/b.zip", zip_bytes({"z/four.txt": b"4"}))  # a new version replaces the folder
    folder = keras.utils.get_file(origin="https://example.org/b.zip", extract=True, force_download=True)
    assert os.listdir(os.path.join(folder, "z")) == ["four.txt"]


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="needs tarfile's data filter (Python 3.11.4+)")
def test_extract_refuses_members_outside_the_folder(server, home, tmp_path):
    server.add("https://example.org/evil.tar.gz", tar_gz_bytes({"../../escaped.txt": b"!"}))
    with pytest.raises(tarfile.OutsideDestinationError):
        keras.utils.get_file(origin="https://example.org/evil.tar.gz", extract=True)
    server.add("https://example.org/evil.zip", zip_bytes({"../../escaped.txt": b"!"}))
    with pytest.raises(ValueError, match="outside the target folder"):
        keras.utils.get_file(origin="https://example.org/evil.zip", extract=True)
    assert not list(tmp_path.rglob("escaped.txt")) and not list(home.glob("*_extract*"))
    with pytest.raises(ValueError, match="archive_format must be"):
        keras.utils.get_file(origin="https://example.org/evil.zip", extract=True, archive_format="rar")
