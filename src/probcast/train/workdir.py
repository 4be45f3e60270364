"""The training's hold on its work directory: a lock, a sweep of dead temporaries, the marker.

:func:`claim` takes an exclusive ``fcntl.flock`` on ``<workdir>/.lock`` (a second training
into the same directory gets a clear error instead of corrupting the first one's
checkpoints; the kernel releases the lock when the process exits, however it exits) and
removes the temporaries that killed processes left behind (:func:`probcast.io.sweep`).

It leaves the completion marker of a model already in the directory alone: the marker is
removed by :func:`probcast.model.artefact.write_run_files`, once the data has been read and
checked and the run found to be the directory's own (same config and data), just before
the artefact's first file is rewritten; until :func:`finish` writes it again at the very
end, the directory is not a usable model. So a training refused or failed before that (a
typo in ``data.path``, a config error, another run's workdir) leaves a served model
loadable.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from probcast import io
from probcast.model import integrity

log = logging.getLogger(__name__)

LOCK = ".lock"


class WorkdirBusyError(ValueError):
    """Another process trains into the same work directory."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


@contextlib.contextmanager
def claim(workdir: Path) -> Iterator[Path]:
    """Hold ``workdir`` for one training (see the module docstring; the marker is kept).

    The lock file is the one file not written through :mod:`probcast.io`: a lock lives
    on its inode, which an atomic rename would replace.

    Yields:
        The work directory (created if needed).

    Raises:
        WorkdirBusyError: If another process holds the lock.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir / LOCK, os.O_RDWR | os.O_CREAT, io.FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusyError(
                f"{workdir} is in use by another training{_holder(fd)}; wait for it to "
                f"finish or train into another workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        swept = sweep(workdir)
        if swept:
            log.info("removed %d temporaries of interrupted runs in %s", len(swept), workdir)
        yield workdir  # the marker stays until the run files are rewritten (module docstring)
    finally:
        os.close(fd)  # releases the lock


def sweep(workdir: Path) -> list[Path]:
    """Remove dead processes' temporaries in the workdir and its run folders."""
    folders = [workdir, workdir / "selection"]
    folders += [d for f in list(folders) for d in sorted(f.glob("seed_*")) if d.is_dir()]
    return [p for f in folders for p in io.sweep(f)]


def finish(workdir: Path) -> None:
    """Write the completion marker (checksums of the artefact), the training's last write."""
    marker = integrity.write_marker(Path(workdir))
    log.info("model complete: %s", marker)
