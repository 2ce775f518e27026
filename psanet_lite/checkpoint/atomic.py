"""Write a file so that it is either entirely the old one or entirely the new one.

A training run killed mid-save (pre-emption, out of memory, Ctrl-C) must not leave a
truncated checkpoint where the last good one was. atomic_save writes to a temporary
file in the same directory, flushes it to disk, then renames it over the target:
os.replace is atomic on POSIX and Windows when source and target share a filesystem.
The file gets the mode any other new file gets (0644 under the usual umask 022), not
the 0600 of a temporary file. A kill between the two steps leaves a `.tmp-*` file
beside the target; remove_temporaries clears those before the next run writes.
"""

import os
import tempfile
from pathlib import Path

import torch

TEMPORARY_PREFIX = ".tmp-"


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
    handle, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)
    return path


def remove_temporaries(directory) -> list:
    """Delete the temporary files that saves killed mid-write left in ``directory``.

    Returns the paths removed.

    Example:
        >>> remove_temporaries("runs/nothing-here")
        []
    """
    folder = Path(directory)
    stale = sorted(folder.glob(TEMPORARY_PREFIX + "*")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


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
