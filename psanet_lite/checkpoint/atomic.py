"""Write a file so that it is either entirely the old one or entirely the new one.

A training run killed mid-save (pre-emption, out of memory, Ctrl-C) must not leave a
truncated checkpoint where the last good one was. atomic_save writes to a temporary
file in the same directory, flushes it to disk, then renames it over the target:
os.replace is atomic on POSIX and Windows when source and target share a filesystem.
"""

import os
import tempfile

import torch


def atomic_save(obj, path):
    """torch.save(obj, path), atomically: readers see the old file or the complete new one.

    Creates the parent directory if needed. Returns the path written.

    Example:
        >>> atomic_save({"step": 3}, "runs/demo/last.pt")
        'runs/demo/last.pt'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory):
    """Make the rename itself durable (a no-op where directories cannot be opened, e.g. Windows)."""
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
