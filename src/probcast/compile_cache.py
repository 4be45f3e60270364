"""JAX's persistent compilation cache: compiled kernels reused across processes.

Every probcast process compiles its JAX functions with XLA the first time it calls them:
the training epoch and validation pass, the EMOS Newton kernels, the product kernels of a
grid. In operation each NWP cycle, retraining or prediction is a new process (a Kubernetes
Job, a cron run), so without a cache every one of them pays those compiles again (about a
fifth of ``probcast demo``'s wall time on a 2-core machine, see benchmarks/README.md).
JAX can keep compiled executables on disk, keyed by the lowered program, the JAX/jaxlib
version, the backend and its options (a stale entry cannot be picked up by another
version or device); :func:`enable` turns that on.

The ``probcast`` command enables it for every subcommand. The folder is
``PROBCAST_JAX_CACHE`` if set, else ``jax`` under ``PROBCAST_CACHE`` (or the OS cache);
``PROBCAST_JAX_CACHE=off`` disables it. A folder set for JAX itself
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left as it is. Entries are written
for every compile (:data:`MIN_COMPILE_S`). The folder is kept under :data:`MAX_BYTES` by
:func:`prune` when the cache is enabled, at most once an hour (:data:`PRUNE_EVERY_S`;
least recently used or written entries first), not by JAX's own eviction: that one lists
and stats every entry on every write, which on a machine's long-lived folder costs more
than the compiles it saves (on a 1,800-entry folder 60 new compiles took 7.9-14.8 s with
it, 2.5-3.8 s without). Several processes can share the folder: entries are only added or
pruned whole, and one read while another process writes or removes it fails to load (JAX's
entries are compressed) and is compiled again, as is any damaged or unreadable entry; an
entry that cannot be written (a full disk, a file-size limit) is skipped, silently: either
costs a compile, never a result (JAX's warnings about them are filtered, so that they do
not add lines to a command's own error message). A folder that cannot be written at all
disables the cache with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "PROBCAST_JAX_CACHE"
OFF = {"off", "0", "false", "no", "none"}
MIN_COMPILE_S = 0.0
"""Compiles shorter than this are not written. Zero: every compile is kept. A 5-fold
training compiles about 70 small functions of under 0.1 s each, 3-5 s together on a 2-core
machine (a fifth of a fresh process's training of 200k rows); their entries take about 3 MB."""
MAX_BYTES = 2 * 1024**3
"""Size limit of the cache folder (:func:`prune`)."""
KEEP_FRACTION = 0.8
"""A folder over :data:`MAX_BYTES` is pruned to this fraction of it (not to just under it,
so that the next processes do not prune again)."""
PRUNE_EVERY_S = 3600.0
"""Least time between two :func:`prune` scans of one folder (by any process): on a volume
shared by many Jobs, or a network file system, a scan per process start would cost more
than it keeps."""
STAMP = ".probcast-pruned"
"""File in the cache folder whose modification time is that of the last scan."""
_ENTRY, _ATIME = "-cache", "-atime"  # JAX's file suffixes (jax._src.lru_cache)


def default_dir() -> Path | None:
    """The folder :func:`enable` uses without an argument (``None``: disabled)."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() in OFF and env:
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("PROBCAST_CACHE")
    if base:
        return Path(base).expanduser() / "jax"
    import pooch

    return Path(pooch.os_cache("probcast")) / "jax"


SETTINGS = {
    "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_S,
    "jax_persistent_cache_min_entry_size_bytes": -1,  # any size
    "jax_compilation_cache_max_size": -1,  # no eviction scan per write: see prune()
}


_QUIET = r"Error (reading|writing) persistent compilation cache entry"
"""JAX's warnings about one cache entry (the compile is used or redone anyway)."""


def enable(path: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`default_dir`).

    Before ``jax`` is imported this only sets JAX's environment variables (so a command
    that never uses JAX does not pay for importing it); after, it updates ``jax.config``.
    Compiles from then on are cached. Idempotent.

    Args:
        path: Cache folder; created if missing.

    Returns:
        The folder in use, or ``None`` when disabled or not writable.
    """
    imported = "jax" in sys.modules
    current = _current_dir(imported)
    if current:  # the user's (or an earlier call's) choice stands
        return Path(current)
    folder = Path(path).expanduser() if path is not None else default_dir()
    if folder is None or not _writable(folder):
        return None
    warnings.filterwarnings("ignore", message=_QUIET)
    _prune_now_and_then(folder)
    if not imported:
        for name, value in SETTINGS.items():
            os.environ.setdefault(name.upper(), str(value))
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
        return folder
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    for name, value in SETTINGS.items():
        jax.config.update(name, value)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    compilation_cache.reset_cache()  # an earlier compile may have settled "no cache"
    log.debug("JAX compilation cache in %s", folder)
    return folder


def _current_dir(imported: bool) -> str | None:
    if not imported:
        return os.environ.get("JAX_COMPILATION_CACHE_DIR") or None
    import jax

    return getattr(jax.config, "jax_compilation_cache_dir", None) or None


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        log.warning(
            "JAX compilation cache disabled: cannot write to %s (%s); set %s to a writable "
            "folder or to 'off'",
            folder,
            err.strerror or err,
            ENV,
        )
        return False
    return True


def _prune_now_and_then(folder: Path) -> None:
    """:func:`prune` unless some process did within :data:`PRUNE_EVERY_S`."""
    stamp = folder / STAMP
    try:
        if time.time() - stamp.stat().st_mtime < PRUNE_EVERY_S:
            return
    except OSError:  # never pruned (or unreadable): prune
        pass
    with contextlib.suppress(OSError):
        stamp.touch()
    prune(folder, MAX_BYTES)


def prune(folder: Path, max_bytes: int = MAX_BYTES) -> int:
    """Remove the least recently used entries of a folder over ``max_bytes``.

    Recency is a file's last access or modification time, whichever is later (JAX never
    rewrites an entry; with ``relatime`` mounts the access time moves at most daily). The
    folder is brought to :data:`KEEP_FRACTION` of ``max_bytes``; files that are not cache
    entries are left alone, and one that another process removed first is skipped.

    Args:
        folder: The cache folder.
        max_bytes: Size limit of its entries.

    Returns:
        The number of entries removed.
    """
    try:
        entries = _entries(folder)
    except OSError:
        return 0
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0
    removed = 0
    for _, size, path in sorted(entries):
        if total <= KEEP_FRACTION * max_bytes:
            break
        for name in (path, path.removesuffix(_ENTRY) + _ATIME):
            with contextlib.suppress(OSError):
                os.unlink(name)
        total -= size
        removed += 1
    log.info(
        "JAX compilation cache %s: %d old entries removed (limit %d bytes)",
        folder,
        removed,
        max_bytes,
    )
    return removed


def _entries(folder: Path) -> list[tuple[float, int, str]]:
    """``(last used, size, path)`` of every cache entry in ``folder``."""
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.endswith(_ENTRY):
                with contextlib.suppress(OSError):  # removed meanwhile
                    st = entry.stat()
                    out.append((max(st.st_atime, st.st_mtime), st.st_size, entry.path))
    return out
