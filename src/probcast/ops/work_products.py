"""The predict step's products, checked before and after they are published.

The predict step records each product's size and sha256 in table ``ops_products`` (next to
the state store's own, created on first use: ``pipeline``, ``cycle``, ``name``, ``path``,
``size``, ``sha256``, ``recorded_at``). The publish step checks each work file against it
before copying (:func:`verify`), and each copy in a local folder after (:func:`verify_copy`;
an fsspec destination: its size), so a work file that was replaced, truncated or rewritten
after the predict step (by another process, a disk fault, a hand) is never published under
the cycle: :class:`ProductChanged` fails the publish step and the next attempt runs the
predict step again.

A folder product (Zarr) is summed over its files (:func:`probcast.io.sha256_file`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import sqlalchemy as sa

from probcast import io
from probcast.ops.pipeline import Destination, Pipeline, cycle_id
from probcast.ops.state import FINISHED, StateStore, engine_with, utcnow

log = logging.getLogger(__name__)

metadata = sa.MetaData()
products = sa.Table(
    "ops_products",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime()),
)


class ProductChanged(RuntimeError):
    """A work product is not what the predict step wrote: the next attempt predicts again."""


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def digest(path: str | Path) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file or a folder's files."""
    return {"size": _size(Path(path)), "sha256": io.sha256_file(path)}


def _where(store: StateStore, cid: str) -> Any:
    return sa.and_(products.c.pipeline == store.pipeline, products.c.cycle == cid)


def record(store: StateStore, cid: str, paths: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Record the size and sha256 of each product (replacing the cycle's earlier ones)."""
    sums = {name: {"path": str(path), **digest(path)} for name, path in paths.items()}
    with engine_with(store, metadata).begin() as conn:
        conn.execute(products.delete().where(_where(store, cid)))
        for name, row in sums.items():
            conn.execute(
                products.insert().values(
                    pipeline=store.pipeline, cycle=cid, name=name, recorded_at=utcnow(), **row
                )
            )
    return sums


def recorded(store: StateStore, cid: str) -> dict[str, dict[str, Any]]:
    """The cycle's recorded products: name -> ``{"path", "size", "sha256"}``."""
    query = sa.select(products).where(_where(store, cid))
    with engine_with(store, metadata).connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {r["name"]: {"path": r["path"], "size": r["size"], "sha256": r["sha256"]} for r in rows}


def missing(store: StateStore, cid: str, outputs: Mapping[str, str]) -> list[str]:
    """The products of ``outputs`` (name -> path) without a recorded checksum for that path.

    (A predict step finished by an earlier version, which recorded none.)
    """
    sums = recorded(store, cid)
    return [name for name, path in outputs.items() if sums.get(name, {}).get("path") != str(path)]


_RERUN = "not published; the next run of the cycle runs the predict step again"


def _says(sums: Mapping[str, Any]) -> str:
    return f"{sums['size']} bytes, sha256 {sums['sha256']}"


def verify(store: StateStore, cid: str, files: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """Check each work file against what the predict step recorded; return the records.

    Raises:
        ProductChanged: A file without a record, missing, or with another size or sha256.
    """
    sums = recorded(store, cid)
    for name, path in files.items():
        expected = sums.get(name)
        if expected is None or expected["path"] != str(path):
            raise ProductChanged(
                f"work product {path}: no checksum recorded by its predict step; {_RERUN}"
            )
        if not path.exists():
            raise ProductChanged(
                f"work product {path} is missing since the predict step wrote it "
                f"(expected {_says(expected)}); {_RERUN}"
            )
        found = digest(path)
        if (found["size"], found["sha256"]) != (expected["size"], expected["sha256"]):
            raise ProductChanged(
                f"work product {path} changed since the predict step wrote it: expected "
                f"{_says(expected)}, found {_says(found)}; {_RERUN}"
            )
    return sums


def verify_copy(target: str, dest: Destination, expected: Mapping[str, Any]) -> None:
    """Check a published copy: a local one's size and sha256, a remote one's size.

    Raises:
        ProductChanged: The copy differs from what the predict step wrote.
    """
    if dest.remote:
        try:
            fs, path = fsspec.core.url_to_fs(target, **dict(dest.storage_options))
            size = int(fs.du(path, total=True))
        except Exception as err:  # a store that cannot list what it holds: not checked
            log.warning("published %s: its size could not be checked: %s", target, err)
            return
        if size == expected["size"]:
            return
        shown = f"{size} bytes"
    else:
        found = digest(target)
        if (found["size"], found["sha256"]) == (expected["size"], expected["sha256"]):
            return
        shown = _says(found)
    raise ProductChanged(
        f"published copy {target} differs from the work product {expected['path']}: expected "
        f"{_says(expected)}, found {shown} (its work file changed while it was copied?); "
        "the next run of the cycle runs the predict step again and publishes it again"
    )


def _finished(row: Mapping[str, Any] | None) -> bool:
    return row is not None and row["status"] == FINISHED


def redo_from(pipe: Pipeline, cycle: datetime, store: StateStore) -> str:
    """The first finished step a resumed cycle runs again (and every step after it), or ``""``.

    A cycle begun by an earlier version kept its work files in ``<work>/<YYYYMMDDHH>/`` (no
    pipeline name) and recorded no product checksums: a finished ``predict`` whose products
    are not published yet is run again (into this pipeline's own folder), and so is a
    lead-file ``acquire`` whose union of the leads lies in the old folder and is still needed.
    Once ``publish`` finished, the products are out: nothing is run again.
    """
    cid = cycle_id(cycle)
    acquire, predict, publish = (store.step(cid, n) for n in ("acquire", "predict", "publish"))
    if _finished(publish):
        return ""
    first = ""
    if predict is not None and _finished(predict) and missing(store, cid, predict["outputs"] or {}):
        first = "predict"
    if pipe.leads and acquire is not None and _finished(acquire):
        outputs = acquire["outputs"] or []
        needed = first or not _finished(predict)
        if needed and outputs and outputs[0] != str(pipe.input_path(cycle)):
            first = "acquire"
    if first:
        log.warning(
            "%s: begun by an earlier version (work files outside %s, no product checksums): "
            "the %s step and those after it run again",
            cid,
            pipe.work_dir(cycle),
            first,
        )
    return first
