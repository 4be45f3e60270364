"""The dataset registry: what probcast knows about public benchmark data, and fetching it.

Files are downloaded by URL and verified by sha256 (pooch). Offline, the same code reads a
local mirror named by the ``PROBCAST_DATA_MIRROR`` environment variable: a folder laid out
as ``<dataset-id>/<file>``. A mirror file is used only after its sha256 matches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from probcast import io, progress

MIRROR_ENV = "PROBCAST_DATA_MIRROR"
CACHE_ENV = "PROBCAST_CACHE"


class DatasetError(RuntimeError):
    """A dataset cannot be found, fetched or verified."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: relative path, upstream URL, sha256 and size."""

    path: str
    url: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry of a dataset."""

    id: str
    kind: str
    repository: str
    commit: str
    licence: str
    description: str
    files: tuple[RemoteFile, ...]
    split: dict[str, object] | None = None
    periods: dict[str, float] | None = None
    """Hours that ``tp``/``tmax``/``tmin`` cover (:mod:`probcast.periods`); None: unknown."""


@cache
def registry() -> dict[str, DatasetInfo]:
    """Return all known datasets keyed by id."""
    text = resources.files("probcast.data").joinpath("registry.json").read_text()
    out: dict[str, DatasetInfo] = {}
    for d in json.loads(text)["datasets"]:
        files = tuple(RemoteFile(**f) for f in d["files"])
        out[d["id"]] = DatasetInfo(
            id=d["id"],
            kind=d["kind"],
            repository=d["repository"],
            commit=d["commit"],
            licence=d["licence"],
            description=d["description"],
            files=files,
            split=d.get("split"),
            periods=d.get("periods"),
        )
    return out


def get_info(name: str) -> DatasetInfo:
    """Return the registry entry of ``name`` or raise a helpful error."""
    reg = registry()
    if name not in reg:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(reg))}")
    return reg[name]


def cache_dir() -> Path:
    """Folder for downloaded and prepared data (``PROBCAST_CACHE`` or the OS cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("probcast"))


def _from_mirror(info: DatasetInfo, rf: RemoteFile) -> Path | None:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    path = Path(mirror).expanduser() / info.id / rf.path
    if not path.exists():
        raise DatasetError(
            f"{path}: file of dataset {info.id!r} missing from the mirror named by "
            f"{MIRROR_ENV}={mirror}; unset {MIRROR_ENV} to download from {rf.url}"
        )
    digest = io.sha256_file(path)
    if digest != rf.sha256:
        raise DatasetError(
            f"{path}: sha256 mismatch for dataset {info.id!r}: expected {rf.sha256}, "
            f"got {digest}; the mirror copy is corrupted or a different version"
        )
    return path


def _download(info: DatasetInfo, rf: RemoteFile) -> Path:
    import pooch

    folder = cache_dir() / "downloads" / info.id
    try:
        # pooch downloads to a temporary file, checks the hash, then renames: a failed
        # or corrupted download never leaves a file in the cache.
        fname = pooch.retrieve(
            rf.url,
            known_hash=f"sha256:{rf.sha256}",
            fname=rf.path,
            path=folder,
            progressbar=False,
        )
    except ValueError as err:  # pooch raises ValueError on hash mismatch
        raise DatasetError(f"{rf.url}: checksum verification failed: {err}") from err
    except Exception as err:
        raise DatasetError(
            f"{rf.url}: download of dataset {info.id!r} failed ({type(err).__name__}: {err}). "
            f"Offline? Point {MIRROR_ENV} at a local mirror folder."
        ) from err
    return Path(fname)


def fetch(name: str) -> dict[str, Path]:
    """Make every file of dataset ``name`` available locally, verified by sha256.

    Args:
        name: Dataset id from the registry.

    Returns:
        Mapping from the file's relative path (e.g. ``raw.nc``) to a local path.

    Raises:
        DatasetError: Unknown dataset, missing mirror file, checksum mismatch or failed
            download.
    """
    info = get_info(name)
    out: dict[str, Path] = {}
    total = sum(rf.bytes for rf in info.files)
    with progress.bar(f"fetch {name}", total, unit="bytes") as shown:
        for rf in info.files:
            path = _from_mirror(info, rf)
            out[rf.path] = path if path is not None else _download(info, rf)
            shown.advance(rf.bytes, f"fetch {name}: {rf.path}")
    return out
