"""HDF5 files written so that a full disk gives an error, not a crash.

HDF5 keeps written chunks in its chunk cache and writes them out later: when the cache evicts them, when a
dataset handle is freed (where h5py can only print the error and go on) or when the file closes. On a full
disk that close fails, the library keeps the file half-closed, and the next attempt to close it (an explicit
one, or HDF5's own at interpreter exit) crashes the process: `error: ...` was printed, then a segmentation
fault (exit 139; h5py 3.16 with HDF5 2.0). So the files written here have no raw-data chunk cache: every
write reaches the disk inside the call that makes it and raises there (OSError, errno ENOSPC); and a file
being abandoned is closed once, after its bytes are released (truncated to zero), when closing it needs no
more than a few metadata blocks. Writers must then write whole HDF5 chunks (partial ones are read back).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import h5py


def open_for_writing(path: str | os.PathLike) -> h5py.File:
    """A new HDF5 file whose raw data go to disk as written (no chunk cache): errors come from the write."""
    return h5py.File(path, "w", rdcc_nbytes=0)


def finish(file: h5py.File) -> None:
    """Flush and close a complete file; on failure it is discarded (see `discard`) and the error raised."""
    try:
        file.flush()
    except RuntimeError as exc:  # h5py reports a failed flush as RuntimeError; the OS error is in its text
        discard(file)
        code = re.search(r"errno = (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code[1]), " ".join(str(exc).split())) from None
    except BaseException:
        discard(file)
        raise
    file.close()


def discard(file: h5py.File) -> None:
    """Close a file whose contents are being thrown away (its temporary is deleted next), without the crash.

    Truncating it first frees its disk blocks, so the metadata HDF5 still writes while closing fits even on
    a disk that the file itself filled. Errors of this close are not raised: the caller is already handling
    the one that made it give the file up.
    """
    if not file.id.valid:
        return
    with suppress(OSError, ValueError, RuntimeError):
        os.ftruncate(file.id.get_vfd_handle(), 0)
    with suppress(OSError, ValueError, RuntimeError):
        file.close()


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[h5py.File]:
    """`with writing(path) as f:` an HDF5 file opened by `open_for_writing`, finished or discarded at the end."""
    file = open_for_writing(path)
    try:
        yield file
    except BaseException:
        discard(file)
        raise
    finish(file)
