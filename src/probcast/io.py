"""Atomic, idempotent file writing: the one helper every writer of probcast uses.

A file or folder is written under a unique temporary name in the destination folder
(``.<name>.tmp-<pid>-<random>``: two processes writing the same target never share a
temporary name), given ordinary permissions, and renamed onto the target only when
complete, so a reader never sees a half-written output and a crash leaves the previous
version intact. :func:`sweep` removes the temporaries a killed process left behind in a
folder, and every write first removes those of its own target (a ``predict`` killed with
SIGKILL left ``.p.csv.tmp-<pid>-...`` that later runs never cleared).

A write that fails for a reason of the file system (read-only folder, full disk, file-size
limit, a parent that is a file, a target that is a folder) raises :class:`WriteError`, an
``OSError`` whose message names the target path and the reason; nothing is left behind and
an existing target is unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import hashlib
import json
import os
import resource
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"
FILE_MODE = 0o644
DIR_MODE = 0o755

_HINTS = {
    errno.EFBIG: "file too large (the file-size limit, ulimit -f, was reached)",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (read-only or protected folder?)",
}
_LIBRARY_IO_ERRORS = ("NetCDF:", "HDF")
"""Messages of the ``RuntimeError`` that netCDF4/HDF5 raise when a write fails."""


class WriteError(OSError):
    """A file or folder could not be written; ``str()`` names the path and the reason."""

    def __str__(self) -> str:
        return f"{self.filename}: cannot write: {self.strerror}"


def write_error(path: str | os.PathLike[str], err: BaseException) -> WriteError:
    """The :class:`WriteError` for ``path`` that explains ``err`` (an OS or library error)."""
    if isinstance(err, WriteError):
        return err  # already names its path (a nested write)
    code = err.errno if isinstance(err, OSError) and err.errno else errno.EIO
    reason = os_reason(err)
    where = getattr(err, "filename", None)
    if where and Path(where).name.startswith(".") and TMP_MARK in str(where):
        where = None  # the temporary name means nothing to the user
    if where and str(where) != str(path):
        reason = f"{where}: {reason}"
    return WriteError(code, " ".join(reason.split()), str(path))


def os_reason(err: BaseException) -> str:
    """The reason of an OS (or I/O library) error in words, without the path or errno."""
    code = err.errno if isinstance(err, OSError) else None
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return _HINTS.get(code or 0) or text


def describe(err: BaseException) -> str:
    """One line for an error: ``<path>: <reason>`` for a plain ``OSError`` with a path."""
    if isinstance(err, OSError) and err.filename and type(err).__str__ is OSError.__str__:
        where = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
        return f"{where}: {os_reason(err)}"
    return str(err)


def _diagnose(tmp: Path) -> int | None:
    """The likely errno of a library's failed write of ``tmp`` (full disk, size limit)."""
    try:
        if os.statvfs(tmp.parent).f_bavail == 0:
            return errno.ENOSPC
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        size = tmp.stat().st_size if tmp.is_file() else 0
        if soft != resource.RLIM_INFINITY and size + (1 << 16) >= soft:
            return errno.EFBIG
    except OSError:
        return None
    return None


def make_parent(path: str | os.PathLike[str]) -> None:
    """Create the folder of ``path``; a parent that is a file is a :class:`WriteError`."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next(
            (p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None
        )
        if blocker is not None:
            raise WriteError(
                errno.ENOTDIR, f"{blocker} is a file, not a folder", str(path)
            ) from None
        raise write_error(path, err) from None


def temp_name(path: str | os.PathLike[str]) -> Path:
    """A unique temporary name next to ``path`` (same folder, so the rename is atomic)."""
    p = Path(path)
    return p.with_name(f".{p.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:12]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; a folder target is exchanged with ``src``, then removed.

    A folder (a Zarr store) cannot be renamed over another. Where the kernel and file
    system can (Linux ``renameat2(RENAME_EXCHANGE)``) the two are exchanged in one step, so
    ``dst`` is always the old or the new folder; elsewhere the old one is first moved
    aside, and a kill between the two renames leaves neither at ``dst``.
    """
    if dst.is_dir() and not dst.is_symlink():
        if _exchange(src, dst):
            _remove(src)  # (the old folder, now under the temporary name)
            return
        old = temp_name(dst)
        os.replace(dst, old)
        os.replace(src, dst)
        _remove(old)
    else:
        os.replace(src, dst)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; ``False`` where the system cannot (nothing moved)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux / glibc before 2.28
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # (a file system without the exchange: the two renames)
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int | None = FILE_MODE) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, else it is removed.

    Args:
        path: Final path (file or folder, e.g. a Zarr store).
        mode: Permissions given to a written file before the rename (folders get 0755).

    Yields:
        The temporary path (nothing exists there yet).
    """
    final = Path(path)
    make_parent(final)
    sweep(final.parent, final.name)  # a killed writer's temporaries of this target
    tmp = temp_name(final)
    try:
        try:
            yield tmp
        except OSError as err:
            raise write_error(final, err) from None
        except RuntimeError as err:  # netCDF4/HDF5 report a failed write this way
            if not str(err).startswith(_LIBRARY_IO_ERRORS):
                raise
            code = _diagnose(tmp)
            cause = OSError(code, str(err)) if code else err
            raise write_error(final, cause) from None
        if final.is_dir() and not final.is_symlink() and not tmp.is_dir():
            raise WriteError(errno.EISDIR, "is a folder; expected a file path", str(final))
        try:
            if mode is not None and tmp.exists():
                os.chmod(tmp, DIR_MODE if tmp.is_dir() else mode)
            replace(tmp, final)
        except OSError as err:
            raise write_error(final, err) from None
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp)`` to write a temporary file, then move it onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes atomically."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write JSON atomically (indented, non-JSON values as strings)."""
    return write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    root = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        if root.is_dir():
            digest.update(str(file.relative_to(root)).encode())
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def sweep(folder: str | os.PathLike[str], target: str | None = None) -> list[Path]:
    """Remove the temporaries (``.*.tmp-<pid>-*``) of dead processes in ``folder``.

    Temporaries of running processes (their pid is alive) are kept.

    Args:
        folder: The folder to sweep.
        target: Only the temporaries of this file or folder name (``.<target>.tmp-*``).

    Returns:
        The removed paths.
    """
    root = Path(folder)
    prefix = f".{target}{TMP_MARK}" if target is not None else "."
    try:
        entries = list(root.glob(f"{glob.escape(prefix)}*")) if root.is_dir() else []
    except OSError:
        return []
    removed: list[Path] = []
    for entry in entries:
        if TMP_MARK not in entry.name:
            continue
        pid_text = entry.name.rsplit(TMP_MARK, 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
