"""Publishing: copy products to each destination so a reader sees each whole or not at all.

- A local folder: the copy is written under a temporary name in the target folder
  (:func:`probcast.io.atomic_path`) and renamed; temporaries of killed processes are swept.
- An fsspec URL (``s3://``, ``gs://``, ``memory://``, ...): the product is put under a
  temporary key next to the target and moved onto the target key; on object stores that
  is a server-side copy, so the final key is written once, whole. Leftover temporary keys
  of the same product are removed first.

The target key is a pure function of the cycle and the product name (``layout``), so a
republish after a crash overwrites the same keys: each product is published exactly once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import fsspec

from probcast import io
from probcast.ops.pipeline import Destination


def target_key(layout: str, cycle: datetime, name: str) -> str:
    """The key (relative path) of product file ``name`` of ``cycle``."""
    return layout.format(cycle=cycle, name=name)


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


def publish_local(src: Path, folder: Path, key: str) -> str:
    """Copy ``src`` (file or folder) to ``folder/key`` atomically; return the target path."""
    target = folder / key
    io.sweep(target.parent)
    io.write_with(target, lambda tmp: _copy(src, tmp))
    return str(target)


def publish_fsspec(src: Path, dest: Destination, key: str) -> str:
    """Put ``src`` under a temporary key next to ``dest.url/key``, then move it there."""
    fs, root = fsspec.core.url_to_fs(dest.url, **dict(dest.storage_options))
    target = f"{root.rstrip('/')}/{key}"
    parent, _, name = target.rpartition("/")
    for stale in fs.glob(f"{parent}/.{name}{io.TMP_MARK}*"):
        fs.rm(stale, recursive=True)
    tmp = f"{parent}/{io.temp_name(name).name}"
    recursive = src.is_dir()
    if recursive and fs.exists(target):
        fs.rm(target, recursive=True)
    fs.put(str(src), tmp, recursive=recursive)
    fs.mv(tmp, target, recursive=recursive)
    return fs.unstrip_protocol(target)


def publish(
    files: Mapping[str, Path],
    destinations: tuple[Destination, ...],
    cycle: datetime,
    layout: str,
    *,
    after_each: Callable[[str], None] | None = None,
) -> list[str]:
    """Publish every product file to every destination.

    Args:
        files: Product name -> local path (file or folder).
        destinations: Folders or fsspec URLs.
        cycle: The cycle (fills ``layout``).
        layout: Key template with ``{cycle:...}`` and ``{name}`` (the file name).
        after_each: Called with each published target (the crash tests pause here).

    Returns:
        The published targets (paths or URLs), in order.
    """
    out: list[str] = []
    for dest in destinations:
        for path in files.values():
            src = Path(path)
            if not src.exists():
                raise FileNotFoundError(f"product to publish is missing: {src}")
            key = target_key(layout, cycle, src.name)
            if dest.remote:
                target = publish_fsspec(src, dest, key)
            else:
                target = publish_local(src, Path(dest.url.removeprefix("file://")), key)
            out.append(target)
            if after_each is not None:
                after_each(target)
    return out
