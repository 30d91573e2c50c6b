"""Atomic file writes: a save either replaces the target whole or leaves it as it was.

The new content goes to a temporary file in the target's directory (so the final rename stays on one file system),
is flushed to disk with ``fsync``, then ``os.replace`` swaps it in; on any error the temporary file is removed and
the target is untouched. A crash mid-save can leave at most a hidden ``.NAME.*.tmp`` file, never a half-written
model at the target.
"""
import contextlib
import os
import tempfile

__all__ = ["atomic_path"]

_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask once: mkstemp's files are 0600, saved models get the usual mode


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to ``path``; when the block ends without an error, the file written there
    replaces ``path`` (created with the directory if needed), else it is deleted.

    Example:

    >>> import os, tempfile
    >>> from cuflow.saving.atomic import atomic_path
    >>> target = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("done")
    >>> open(target).read()
    'done'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Makes the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
