"""Orbax checkpoints of one network: ``latest`` (to resume) and ``best`` (the artefact).

``<seed_dir>/latest/<epoch>/`` holds parameters, optimiser state and the loop's progress
(epoch, best validation loss, patience counter, history) after every epoch;
``<seed_dir>/best/<epoch>/`` holds the parameters of the epoch with the lowest validation
loss. Orbax writes each step to a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact.

Saves are asynchronous: ``save_*`` copies the arrays to host memory and returns while Orbax
writes them in a background thread, so training goes on during the write. A ``latest``
save first waits for the pending ``best`` save (``latest`` must never point past a best
epoch that is not on disk), and :meth:`SeedCheckpoints.close` waits for every pending save.

Orbax logs through ``absl.logging``, which calls ``logging.basicConfig()`` whenever the root
logger has no handler: importing Orbax or loading a model would give the root logger a
stderr handler, and a program's own later ``logging.basicConfig(level=..., format=...)``
would then do nothing. The import and every call into Orbax here run in
:func:`root_logging_kept`, which takes such a handler away again.

A save that fails in Orbax's background threads (a full disk, a file-size limit) surfaces
at the next call into the series as TensorStore's ``OUT_OF_RANGE: Error writing ... in
OCDBT database at local file ".../1.orbax-checkpoint-tmp/..." [os_error_code='27']``; it
is raised as a :class:`probcast.io.WriteError` naming the seed's checkpoint folder and the
reason in words, and the tracebacks Orbax logs from its threads through ``absl`` are left
out of the log (the message line stays; ``PROBCAST_DEBUG=1`` keeps them).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import resource
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import jax

from probcast.io import write_error

PyTree = Any
F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def root_logging_kept(since: list[logging.Handler] | None = None) -> Iterator[None]:
    """Undo what ``logging.basicConfig()`` does to the root logger inside the block.

    The handlers added in the block (or since the root had the handlers ``since``) that
    ``basicConfig()`` makes (a plain ``StreamHandler`` with the default format) are removed
    and the root level restored; handlers added otherwise (a program's own) stay.
    """
    root = logging.getLogger()
    before, level = list(root.handlers if since is None else since), root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            fmt = getattr(handler.formatter, "_fmt", None)
            if type(handler) is logging.StreamHandler and fmt == logging.BASIC_FORMAT:
                root.removeHandler(handler)
        if root.level != level:
            root.setLevel(level)


_OS_ERROR = re.compile(r"os_error_code='(\d+)'")
"""How TensorStore (Orbax's writer) states the errno of a failed write."""


@contextlib.contextmanager
def _write_errors(where: Path) -> Iterator[None]:
    """Raise a failed checkpoint write as a :class:`~probcast.io.WriteError` for ``where``."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as err:
        found = _OS_ERROR.search(str(err))
        if found is None:
            raise
        code = int(found.group(1))
        raise write_error(where, OSError(code, os.strerror(code))) from err


def _room_for(where: Path, *trees: PyTree) -> None:
    """Refuse a save that cannot fit, before Orbax starts its background writes.

    Orbax writes a checkpoint's arrays from several threads; when one write fails for a
    full disk or a file-size limit, the others' callbacks can find its event loop closed
    and print tracebacks of their own. The size of the arrays is known: a file-size limit
    below it (OCDBT puts them in one data file) or less free space than twice it is a
    :class:`~probcast.io.WriteError` here, in one line. (A disk that fills during the save
    still fails in Orbax, and is reported the same way by :func:`_write_errors`.)
    """
    size = sum(int(getattr(leaf, "nbytes", 0)) for tree in trees for leaf in jax.tree.leaves(tree))
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY and size + (1 << 16) > soft:
        raise write_error(where, OSError(errno.EFBIG, os.strerror(errno.EFBIG)))
    folder = next((p for p in (where, *where.parents) if p.exists()), where)
    try:
        stat = os.statvfs(folder)
    except OSError:
        return
    free = stat.f_bavail * stat.f_frsize
    if free < 2 * size:
        raise write_error(where, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))


class _NoThreadTracebacks(logging.Filter):
    """Leave the traceback out of Orbax's log records (their message line stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not os.environ.get("PROBCAST_DEBUG"):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("absl").addFilter(_NoThreadTracebacks())


def _kept(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: SeedCheckpoints, *args: Any, **kwargs: Any) -> Any:
        with root_logging_kept(), _write_errors(getattr(self, "dir", Path("."))):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


with root_logging_kept():  # its import logs (jax_array_handlers: ArrayHandler)
    import orbax.checkpoint as ocp


def _manager(path: Path) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True)
    return ocp.CheckpointManager(path.resolve(), options=options)


def abstract(tree: PyTree) -> PyTree:
    """Shape/dtype/sharding skeleton of ``tree`` (the restore target).

    Leaves without a sharding (shape-only models) restore onto the first local device, so a
    model trained data-parallel on several devices loads on a machine with one.
    """
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def skeleton(leaf: Any) -> jax.ShapeDtypeStruct:
        sharding = getattr(leaf, "sharding", None) or default
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)

    return jax.tree.map(skeleton, tree)


class SeedCheckpoints:
    """The two checkpoint series of one seed's network."""

    @_kept
    def __init__(self, seed_dir: Path) -> None:
        self._root_handlers = list(logging.getLogger().handlers)  # (asynchronous saves log)
        self.dir = Path(seed_dir)
        self.latest = _manager(self.dir / "latest")
        self.best = _manager(self.dir / "best")

    @_kept
    def save_latest(self, epoch: int, params: PyTree, opt_state: PyTree, meta: dict) -> None:
        """Save the full training state after ``epoch`` (asynchronously, after ``best``)."""
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(opt_state),
            meta=ocp.args.JsonSave(meta),
        )
        self.best.wait_until_finished()
        _room_for(self.dir, params, opt_state)
        self.latest.save(epoch, args=args, force=True)

    @_kept
    def save_best(self, epoch: int, params: PyTree, meta: dict) -> None:
        """Save the parameters of a new best epoch (asynchronously)."""
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)
        )
        _room_for(self.dir, params)
        self.best.save(epoch, args=args, force=True)

    @_kept
    def restore_latest(
        self, params_like: PyTree, opt_state_like: PyTree
    ) -> tuple[PyTree, PyTree, dict] | None:
        """Latest training state shaped like the given trees, or ``None`` if there is none."""
        step = self.latest.latest_step()
        if step is None:
            return None
        out = self.latest.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract(params_like)),
                opt_state=ocp.args.StandardRestore(abstract(opt_state_like)),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return out["params"], out["opt_state"], dict(out["meta"])

    @_kept
    def restore_best(self, params_like: PyTree) -> tuple[PyTree, dict]:
        """Best parameters and their metadata."""
        step = self.best.latest_step()
        if step is None:
            raise FileNotFoundError(
                f"{self.dir / 'best'}: no best checkpoint (training unfinished?)"
            )
        out = self.best.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract(params_like)),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return out["params"], dict(out["meta"])

    @_kept
    def wait(self) -> None:
        """Block until every pending save is on disk."""
        self.best.wait_until_finished()
        self.latest.wait_until_finished()

    def close(self) -> None:
        """Wait for the pending saves and release the managers' resources."""
        with root_logging_kept(since=self._root_handlers), _write_errors(self.dir):
            self.wait()  # (root_logging_kept: the background saves' handlers too)
            self.latest.close()
            self.best.close()
