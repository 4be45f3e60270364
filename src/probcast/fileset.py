"""Write several files that belong together (a set) so that no interruption mixes two runs.

:func:`write_set` is for outputs that are only right together: ``train.parquet`` beside
``test.parquet`` (``probcast data split``/``prepare``), ``scores.csv`` beside
``scores.json`` and ``report.html`` (``probcast verify``). Each file alone is written
atomically by :mod:`probcast.io`; renaming several files one after the other is not atomic,
and a process killed between two renames would leave a new file beside one of the previous
run (a new ``train.parquet`` beside an old, overlapping ``test.parquet``). So:

1. Every file of the new set is written into a staging folder (a temporary of
   :mod:`probcast.io`, ``.probcast-set.tmp-<pid>-<random>``) in the destination folder.
   A failure here (full disk, file-size limit, an error of the writer) removes the staging
   folder and leaves the previous set as it was.
2. Then, holding a lock on the destination folder (``flock``: two runs into one folder swap
   one after the other), every file of the previous set is removed (the last file of the
   set, its marker, first) and the new files are renamed into place, the marker last.

A process killed in step 1 leaves the previous set (and a staging folder that the next
write into the folder removes: :func:`probcast.io.sweep`); one killed in step 2 leaves part
of the new set, its marker missing, and no file of the previous run. Readers never find a
file of one run beside a file of another; they may find a file of the set missing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from probcast import io

STAGE = "probcast-set"
"""Stem of the staging folder's name (``.probcast-set.tmp-<pid>-<random>``)."""


def _at(final: Path, err: OSError) -> io.WriteError:
    """``err`` as a :class:`probcast.io.WriteError` naming ``final`` (not the staged path)."""
    if isinstance(err, io.WriteError):
        return io.WriteError(err.errno or errno.EIO, err.strerror or str(err), str(final))
    return io.write_error(final, OSError(err.errno, err.strerror or str(err)))  # no staged path


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` itself (no lock file is left behind).

    On a file system without ``flock`` (some network mounts) the swap goes unlocked: an
    interrupted run still never leaves a mixed set, but two concurrent runs into one
    folder may.
    """
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_set(
    folder: str | os.PathLike[str],
    writers: Mapping[str, Callable[[Path], Any]],
    *,
    stale: Iterable[str] = (),
) -> dict[str, Path]:
    """Write the files ``writers`` names into ``folder`` as one set (see the module).

    Args:
        folder: Destination folder (created when missing).
        writers: ``{file name: writer}`` in the order the files go into place; the last is
            the set's marker (renamed last, removed first). ``writer(path)`` writes the file
            ``path``, a path with that name in the staging folder; it may write atomically
            itself.
        stale: Further names of the previous run's files, removed with its set and not
            rewritten (``train.nc`` of an earlier grid set beside a new ``train.parquet``).

    Returns:
        ``{file name: final path}``.

    Raises:
        probcast.io.WriteError: A file could not be written or moved, or its name is taken by
            a folder; the message names its final path. The previous set is unchanged unless
            the failure is in the final moves (then part of the new set is in place).
    """
    root = Path(folder)
    finals = {name: root / name for name in writers}
    first = next(iter(finals.values()), root / STAGE)
    io.make_parent(first)
    io.sweep(root)  # staging folders of killed runs
    stage = io.temp_name(root / STAGE)
    try:
        try:
            stage.mkdir()
        except OSError as err:
            raise _at(first, err) from None
        for name, write in writers.items():
            try:
                write(stage / name)
            except OSError as err:
                raise _at(finals[name], err) from None
        _swap(root, stage, list(finals), list(stale))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return finals


def _swap(root: Path, stage: Path, names: list[str], stale: list[str]) -> None:
    """Remove the previous set (marker first), then move the staged files in (marker last)."""
    with folder_lock(root):
        for name in names:
            if (root / name).is_dir() and not (root / name).is_symlink():
                raise io.WriteError(
                    errno.EISDIR, "is a folder; expected a file path", str(root / name)
                )
        for name in [*reversed(names), *stale]:
            if (root / name).is_dir() and not (root / name).is_symlink():
                continue  # a stale name taken by a folder is not the previous run's file
            try:
                (root / name).unlink(missing_ok=True)
            except OSError as err:
                raise _at(root / name, err) from None
        for name in names:
            try:
                os.replace(stage / name, root / name)
            except OSError as err:
                raise _at(root / name, err) from None
