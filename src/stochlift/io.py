"""Safe file writing: a file either appears complete or not at all, never over an input, never twice at once.

- `atomic_path` / `atomic_dir` write beside the output and rename at the end. Their temporaries are named
  `.NAME.<pid>.XXXXXXXX.tmp`, so the next write of the same output removes the ones whose process is gone
  (killed by SIGKILL or for memory, a power cut): `remove_stale_temporaries`.
- `refuse_overwriting_inputs`: an output that is an input, or a folder holding one, is a user mistake.
- `exclusive`: one process at a time makes a product (a lock file beside it, re-entrant in a thread).
- `require_memory` / `require_disk`: refuse absurd sizes before allocating or writing anything.
"""

from __future__ import annotations

import fcntl
import errno
import glob
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stochlift.errors import StochliftError

# what follows ".NAME." in a temporary's name: the owning process id, mkstemp's 8 random characters, the kind
_TEMPORARY = re.compile(r"(?P<pid>\d+)\.[a-z0-9_]{8}(\.[a-z]+)?\.(tmp|old)")


def temporary_prefix(path: str | os.PathLike) -> str:
    """The name prefix of this process's temporaries for `path`: `.NAME.<pid>.`."""
    return f".{Path(path).name}.{os.getpid()}."


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, maybe in use
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` (files or folders) whose owning process no longer runs.

    They are what a process killed with SIGKILL (or for memory) leaves; live writers of the same output are
    left alone. Returns what was removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    for sibling in path.parent.glob(glob.escape(prefix) + "*"):
        match = _TEMPORARY.fullmatch(sibling.name[len(prefix):])
        if match is None or not _process_gone(int(match["pid"])):
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        removed.append(sibling)
    return removed


def temporary_file(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty temporary file beside `path`, named so that `remove_stale_temporaries` knows its owner."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same directory so the final rename is atomic on POSIX. On any
    exception (or KeyboardInterrupt) the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    tmp = temporary_file(path)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; outputs are meant to be shared
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; rename it onto `path` only if the block succeeds.

    A directory tree either appears complete or not at all. `path` must not exist or be an empty
    directory, unless `replace`: then an existing `path` is swapped out (renamed aside, the new tree renamed
    in, the old one deleted). On any exception the temporary tree is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes owner-only directories; outputs are meant to be shared
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if path.exists() and replace:
            old = Path(tempfile.mkdtemp(prefix=temporary_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)  # fails (nothing changed) if path appeared meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike | None],
                              inputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise StochliftError when an output is one of the inputs, or a folder that holds one.

    Paths are compared as resolved real paths (symbolic links followed) and, where both exist, as files
    (a hard link is the same file). Call it before writing anything: writing such an output would destroy
    the input it reads.
    """
    sources = [(Path(p), os.path.realpath(p)) for p in inputs if p is not None]
    for out in (Path(p) for p in outputs if p is not None):
        real = os.path.realpath(out)
        for source, source_real in sources:
            same = real == source_real or (out.exists() and source.exists() and os.path.samefile(out, source))
            if same or source_real.startswith(real.rstrip(os.sep) + os.sep):
                relation = "is" if same else "holds"
                raise StochliftError(f"refusing to write {out}: it {relation} the input {source}; "
                                     "choose another output path")


_held = threading.local()  # lock files this thread holds, with how often (exclusive is re-entrant)


@contextmanager
def exclusive(product: str | os.PathLike, *, wait: bool = True) -> Iterator[None]:
    """Hold .<product>.lock while making a product.

    Another process making the same one waits here (`wait`), or fails at once with a StochliftError that
    names the process holding it (`wait=False`: for a command a user runs). Re-entrant within a thread.
    """
    product = Path(product)
    absolute = Path(os.path.abspath(product))  # `.` has no name of its own
    lock = absolute.with_name(f".{absolute.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(lock)
    held = _held.__dict__.setdefault("locks", {})
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise StochliftError(f"{product} is in use by {holder}; wait for it to end, or choose another "
                                 "output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} (since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0)
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


# ------------------------------------------------------------------------------- sizes, before allocating


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def available_memory() -> int:
    """Bytes of memory this process can still take: MemAvailable, or less under a cgroup limit."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return available


def require_memory(nbytes: float, what: str) -> None:
    """Raise StochliftError when `what` would need more memory than is available (checked before allocating)."""
    available = available_memory()
    if nbytes > available:
        raise StochliftError(f"{what} needs about {human_bytes(nbytes)} of memory; {human_bytes(available)} is "
                             "available")


def require_disk(path: str | os.PathLike, nbytes: float, what: str) -> None:
    """Raise StochliftError when `what` would need more disk than is free where `path` goes."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise StochliftError(f"{what} needs about {human_bytes(nbytes)} of disk; {human_bytes(free)} is free "
                             f"in {folder}")


def write_safetensors(path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically; a failed write (a full disk) is an OSError, as for any other file
    (safetensors reports it as its own SafetensorError)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            code = re.search(r"code: (\d+)", str(exc))  # the OS error inside, e.g. 28: no space left
            raise OSError(int(code[1]) if code else errno.EIO, f"cannot write {path}: {exc}") from None
