"""fsspec access for every source: local paths, ``s3://``, ``gs://``, ``http(s)://``.

All reads of :mod:`probcast.sources` go through these helpers so that one set of
``storage_options`` (e.g. an S3 endpoint) applies everywhere and errors read the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import fsspec

from probcast.sources.errors import SourceError

StorageOptions = Mapping[str, Any] | None


def filesystem(url: str, storage_options: StorageOptions = None) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` for ``url`` with ``storage_options``."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except (ImportError, ValueError) as err:
        raise SourceError(f"{url}: cannot open this location ({err})") from None
    return fs, path


def _missing(url: str, err: Exception) -> SourceError:
    return SourceError(f"{url}: not found or not readable ({type(err).__name__}: {err})")


def read_bytes(url: str, storage_options: StorageOptions = None) -> bytes:
    """Read a whole file."""
    fs, path = filesystem(url, storage_options)
    try:
        return bytes(fs.cat_file(path))
    except (FileNotFoundError, OSError, PermissionError) as err:
        raise _missing(url, err) from None


def read_ranges(
    url: str, ranges: Sequence[tuple[int, int | None]], storage_options: StorageOptions = None
) -> list[bytes]:
    """Read byte ranges ``[start, end)`` of one file (``end`` None: to the end of the file).

    Remote filesystems send one HTTP ``Range`` request per range; this is how only the
    GRIB messages named by an index are transferred.
    """
    fs, path = filesystem(url, storage_options)
    out = []
    try:
        for start, end in ranges:
            out.append(bytes(fs.cat_file(path, start=start, end=end)))
    except (FileNotFoundError, OSError, PermissionError) as err:
        raise _missing(url, err) from None
    for (start, end), blob in zip(ranges, out, strict=True):
        if end is not None and len(blob) != end - start:
            raise SourceError(
                f"{url}: asked for bytes {start}-{end - 1}, got {len(blob)} bytes; the server "
                "ignores Range requests or the index does not match the file"
            )
    return out


def exists(url: str, storage_options: StorageOptions = None) -> bool:
    """Whether ``url`` exists (False on any access error)."""
    try:
        fs, path = filesystem(url, storage_options)
        return bool(fs.exists(path))
    except (SourceError, OSError):
        return False


def expand(paths: str | Sequence[str], storage_options: StorageOptions = None) -> list[str]:
    """Expand globs in ``paths`` (a string or a list) into a sorted list of URLs.

    Raises:
        SourceError: If a pattern matches nothing.
    """
    items = [paths] if isinstance(paths, str) else list(paths)
    urls: list[str] = []
    for item in items:
        if not any(ch in item for ch in "*?["):
            urls.append(item)
            continue
        fs, path = filesystem(item, storage_options)
        found = sorted(fs.glob(path))
        if not found:
            raise SourceError(f"{item}: the pattern matches no file")
        proto = item.split("://", 1)[0] + "://" if "://" in item else ""
        urls += [p if "://" in p or not proto else proto + p.lstrip("/") for p in found]
    return urls
