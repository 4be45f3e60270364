"""Atomic, idempotent file writing: the one helper every writer of probcast uses.

A file or folder is written under a unique temporary name in the destination folder
(``.<name>.tmp-<pid>-<random>``: two processes writing the same target never share a
temporary name), given ordinary permissions, and renamed onto the target only when
complete, so a reader never sees a half-written output and a crash leaves the previous
version intact. :func:`sweep` removes the temporaries a killed process left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"
FILE_MODE = 0o644
DIR_MODE = 0o755


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
    """Move ``src`` onto ``dst``; a folder target is swapped out first and then removed."""
    if dst.is_dir() and not dst.is_symlink():
        old = temp_name(dst)
        os.replace(dst, old)
        os.replace(src, dst)
        _remove(old)
    else:
        os.replace(src, dst)


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
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        if mode is not None and tmp.exists():
            os.chmod(tmp, DIR_MODE if tmp.is_dir() else mode)
        replace(tmp, final)
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


def sweep(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries (``.*.tmp-<pid>-*``) of dead processes in ``folder``.

    Temporaries of running processes (their pid is alive) are kept.

    Returns:
        The removed paths.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if not entry.name.startswith(".") or TMP_MARK not in entry.name:
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
