"""Download a file once, verify its checksum, cache it: ``keras.utils.get_file`` and the dataset loaders use this.

A download is written to ``<file>.part`` and renamed to ``<file>`` only after its checksum passes, so an
interrupted or corrupted transfer is never read as data. A ``.part`` left behind by an interrupted run is resumed
with an HTTP ``Range`` request; each transfer is retried a few times. With no network the error names the file, its
URL and the exact path to place a copy at.
"""
import contextlib
import hashlib
import os
import shutil
import socket
import sys
import time
import urllib.parse
import warnings
from pathlib import Path

__all__ = ["DownloadError", "get_file", "cuflow_home", "cached_path", "validate_file"]

# Module attributes, looked up at call time, so tests can stand in a fake server and skip the waits. (urllib.request
# and http.client are imported on the first download: importing cuflow does not pay for them.)
_urlopen = None  # None: urllib.request.urlopen
RETRY_DELAYS_S = (1.0, 2.0, 4.0)  # one more attempt after each; four in all
TIMEOUT_S = 60
_CHUNK = 1 << 20


class DownloadError(ConnectionError):
    """A file could not be downloaded; the message says which, from where, and where to place a copy by hand."""

    __module__ = "cuflow.datasets"


def cuflow_home():
    """``$CUFLOW_HOME``, or ``~/.cuflow``: the root of cuflow's caches (datasets live in its ``datasets/``)."""
    return Path(os.environ.get("CUFLOW_HOME") or Path.home() / ".cuflow")


def cached_path(fname, cache_subdir="datasets", cache_dir=None):
    """Where :func:`get_file` keeps ``fname``: ``<cache_dir or cuflow_home()>/<cache_subdir>/<fname>`` (an absolute
    ``fname`` as is)."""
    if os.path.isabs(fname):
        return Path(fname)
    return (Path(cache_dir).expanduser() if cache_dir else cuflow_home()) / cache_subdir / fname


def _hasher(file_hash, hash_algorithm):
    algorithm = hash_algorithm.lower()
    if algorithm == "auto":
        algorithm = "sha256" if len(file_hash) == 64 else "md5"  # Keras's rule
    if algorithm not in ("sha256", "md5"):
        raise ValueError(f"get_file: hash_algorithm must be 'auto', 'sha256' or 'md5', got {hash_algorithm!r}")
    return hashlib.new(algorithm)


def _file_hash(path, file_hash, hash_algorithm):
    digest = _hasher(file_hash, hash_algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto"):
    """True when the file's SHA-256 (or MD5, for a 32-digit hash) is ``file_hash`` (``keras.utils.validate_file``)."""
    return _file_hash(fpath, file_hash, algorithm) == str(file_hash).lower()


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Downloads a file from a URL if it is not already in the cache, and returns its path.

    The file lands in ``<cache_dir>/<cache_subdir>/<fname>``, with ``cache_dir`` defaulting to ``$CUFLOW_HOME`` or
    ``~/.cuflow`` (Keras uses ``~/.keras``). When ``file_hash`` is given, a cached file is checked on every call
    and a fresh download before it is used.

    Args:
        fname: the file's name in the cache (an absolute path is used as is). Defaults to the last part of
            ``origin``'s path.
        origin: the URL to download from.
        untar: Keras's older spelling of ``extract=True`` for tar files.
        md5_hash: Keras's older spelling of ``file_hash`` with an MD5.
        file_hash: the expected SHA-256 (64 hex digits) or MD5 (32) of the file, or None to skip the check.
        cache_subdir: the folder under ``cache_dir``.
        hash_algorithm: ``'auto'`` (by the hash's length), ``'sha256'`` or ``'md5'``.
        extract: also unpack the file (tar, tar.gz, tar.bz2 or zip) into ``<file>_extracted`` and return that
            folder. Members that would land outside it (absolute paths, ``..``, links out) are refused.
        archive_format: ``'auto'``, ``'tar'``, ``'zip'``, or a list of those, for ``extract``.
        cache_dir: the cache root.
        force_download: download again even when a valid file is cached.

    Returns:
        The path of the file (or of the extracted folder), as a string.

    Raises:
        DownloadError: (a ``ConnectionError``) the file is not cached and could not be downloaded; the message names
            the URL and the path to place a copy at.
        ValueError: the downloaded file does not match ``file_hash`` (it is deleted), or bad arguments.

    Example:

    >>> from cuflow import keras
    >>> path = keras.utils.get_file(  # doctest: +SKIP
    ...     origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    ...     file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")
    """
    if not origin:
        raise ValueError(f"get_file: origin must be a URL, got {origin!r}")
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"get_file: cannot name the file from origin {origin!r}; pass fname")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    path = cached_path(fname, cache_subdir, cache_dir)
    if force_download:  # a stale partial download of an older version must not be continued
        path.with_name(path.name + ".part").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):  # another process fetching the same file: wait for it, then find the file there
        if path.exists() and not force_download and file_hash and not validate_file(path, file_hash,
                                                                                   hash_algorithm):
            warnings.warn(f"{path} does not match its expected checksum {file_hash}; it is removed and downloaded "
                          f"again", stacklevel=2)
            path.unlink()
        fresh = force_download or not path.exists()
        if fresh:
            download(origin, path, file_hash, hash_algorithm)
        if extract or untar:
            return str(_extract(path, archive_format, replace=fresh))
    return str(path)


@contextlib.contextmanager
def _locked(path):
    """Holds an exclusive lock (POSIX ``flock``) on ``$CUFLOW_HOME/locks/<hash of path>.lock`` while the block runs,
    so processes (or threads) fetching the same file take turns: the second waits, then finds the file downloaded
    and verified, instead of writing the same ``.part`` at the same time. Lock files stay (removing one would race
    with a waiter) and live outside the cache folders. Where ``fcntl`` is missing (Windows) there is no lock; the
    checksum still rejects an interleaved file."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    locks = cuflow_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()
    with open(locks / f"{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download(url, path, file_hash=None, hash_algorithm="auto"):
    """Downloads ``url`` to ``path`` through ``path.part`` (resumed when present), verifies, then renames."""
    path = Path(path)
    part = path.with_name(path.name + ".part")
    failures = []
    for delay in (*RETRY_DELAYS_S, None):
        try:
            _transfer(url, part, path.name)
            break
        except _Retryable as error:
            failures.append(error.reason)
            if delay is None or isinstance(error, _Offline):
                raise DownloadError(
                    f"could not download {path.name} from {url} ({len(failures)} attempt(s); last error: "
                    f"{failures[-1]}). Without network access, download it on another machine and place it at "
                    f"{path}" + (f" (the {part.stat().st_size} bytes received so far are kept in {part} and "
                                 f"resumed next time)" if part.exists() else "")) from error.__cause__
            time.sleep(delay)
    if file_hash:
        actual = _file_hash(part, file_hash, hash_algorithm)
        if actual != str(file_hash).lower():
            part.unlink()
            raise ValueError(f"the file downloaded from {url} does not match its expected checksum: "
                             f"{_hasher(file_hash, hash_algorithm).name} {actual}, expected {file_hash}. It was "
                             f"deleted; try again, or place a good copy at {path}")
    os.replace(part, path)
    return path


class _Retryable(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class _Offline(_Retryable):
    """A failure no retry can fix (the host name does not resolve)."""


def _transfer(url, part, name):
    """One attempt: fetches the rest of ``url`` into ``part``; raises _Retryable on a network failure."""
    import http.client
    import urllib.error
    import urllib.request
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "cuflow"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with (_urlopen or urllib.request.urlopen)(request, timeout=TIMEOUT_S) as response:
            resumed = bool(have) and response.status == 206
            if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                part.unlink()
                raise _Retryable(f"the server resumed at another byte than {have}: "
                                 f"{response.headers.get('Content-Range')!r}")
            if not resumed:
                have = 0  # the server sent the whole file (it ignored or lacked the Range): start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as out, _progress(name, total, have) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
                received = out.tell()
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the .part is not a prefix the server can continue: start over
            part.unlink()
            raise _Retryable(f"HTTP 416 resuming at byte {have}") from error
        if error.code >= 500 or error.code in (408, 429):
            raise _Retryable(f"HTTP {error.code} {error.reason}") from error
        raise DownloadError(f"could not download {name} from {url}: HTTP {error.code} {error.reason}. Download it "
                            f"by hand and place it at {part.with_name(name)}") from error
    except (urllib.error.URLError, http.client.HTTPException, OSError, EOFError) as error:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, socket.gaierror):  # no name resolution: offline, and waiting will not help
            raise _Offline(f"{type(error).__name__}: {reason}") from error
        raise _Retryable(f"{type(error).__name__}: {reason}") from error
    if total is not None and received < total:
        raise _Retryable(f"connection closed after {received} of {total} bytes")


class _progress:
    """A tqdm byte counter on stderr (a plain line when tqdm is not installed)."""

    def __init__(self, name, total, initial):
        self.name, self.total, self.initial = name, total, initial

    def __enter__(self):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            print(f"downloading {self.name} ...", file=sys.stderr)
            self.bar = None
            return self
        self.bar = tqdm(total=self.total, initial=self.initial, desc=f"downloading {self.name}", unit="B",
                        unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)
        return self

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def _archive_kind(path, archive_format):
    import tarfile
    import zipfile
    formats = ["tar", "zip"] if archive_format in ("auto", None) else archive_format
    formats = [formats] if isinstance(formats, str) else list(formats)
    for kind in formats:
        if kind not in ("tar", "zip"):
            raise ValueError(f"get_file: archive_format must be 'auto', 'tar', 'zip' or a list of them, "
                             f"got {archive_format!r}")
        if (kind == "tar" and tarfile.is_tarfile(path)) or (kind == "zip" and zipfile.is_zipfile(path)):
            return kind
    raise ValueError(f"get_file: cannot extract {path}: it is not a {' or '.join(formats)} archive")


def _extract(path, archive_format, replace):
    """Unpacks ``path`` into ``<path>_extracted`` (built beside it and renamed, so a half-unpacked folder is never
    taken for a finished one); an existing folder is kept unless the archive is new (``replace``)."""
    target = path.with_name(path.name + "_extracted")
    if target.is_dir() and not replace:
        return target
    kind = _archive_kind(path, archive_format)
    staging = path.with_name(path.name + "_extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _unpack(path, kind, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _unpack(path, kind, staging):
    import tarfile
    import zipfile
    if kind == "tar":
        if not hasattr(tarfile, "data_filter"):
            raise RuntimeError("get_file(extract=True) unpacks tar archives safely with tarfile's 'data' filter, "
                               f"which needs Python 3.10.12+ or 3.11.4+; this is {sys.version.split()[0]}")
        with tarfile.open(path) as archive:
            archive.extractall(staging, filter="data")  # refuses absolute paths, '..', links out, device files
        return
    with zipfile.ZipFile(path) as archive:
        root = staging.resolve()
        for member in archive.namelist():
            if not (staging / member).resolve().is_relative_to(root):
                raise ValueError(f"get_file: refusing to extract {member!r} from {path}: it points outside the "
                                 f"target folder")
        archive.extractall(staging)
