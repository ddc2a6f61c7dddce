"""What to tell the user when the data folder cannot be written: one line naming the path and what to do.

Disk full, a read-only data folder, ``VHPC_DATA`` pointing at a file, a ``.lock``
that is a folder: each surfaces as an ``OSError`` somewhere below the store.
``explain`` turns the ones about the file system into a ``DataFolderError``
(exit 2); anything else stays an internal error.
"""

from __future__ import annotations

import errno

from .exceptions import DataFolderError

_ADVICE = {
    errno.ENOSPC: "no space left on the device: free some space or set VHPC_DATA to a folder with room "
                  "(nothing half-written was kept)",
    errno.EDQUOT: "disk quota exceeded: free some space or set VHPC_DATA to a folder with room",
    errno.EROFS: "the file system is read-only: set VHPC_DATA to a writable folder",
    errno.EACCES: "permission denied: make the folder writable for this user or set VHPC_DATA elsewhere",
    errno.EPERM: "operation not permitted: make the folder writable for this user or set VHPC_DATA elsewhere",
    errno.ENOTDIR: "a file stands where a folder belongs (is VHPC_DATA a file?): remove it or set VHPC_DATA "
                   "to a folder",
    errno.EEXIST: "a file stands where a folder belongs (is VHPC_DATA a file?): remove it or set VHPC_DATA "
                  "to a folder",
    errno.EISDIR: "a folder stands where a file belongs (e.g. a campaign's .lock): remove that folder",
    errno.ELOOP: "too many symlinks: replace the link with a real folder",
    errno.ENAMETOOLONG: "the path is too long: set VHPC_DATA to a shorter folder",
    errno.EMLINK: "too many entries in the folder: use another campaign",
}

#: Failures a ``write()`` reports without naming its file.
_NO_NAME = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def explain(exc: OSError) -> DataFolderError | None:
    """A ``DataFolderError`` naming the path of a file-system failure; None for other ``OSError``s."""
    advice = _ADVICE.get(exc.errno or 0)
    if advice is None:
        return None
    if exc.filename is None:
        if exc.errno not in _NO_NAME:
            return None
        from . import paths

        path = str(paths.DATA)  # a write() that failed names no file: the data folder is what filled up
    else:
        path = exc.filename.decode(errors="replace") if isinstance(exc.filename, bytes) else str(exc.filename)
    return DataFolderError(advice, file=path)
