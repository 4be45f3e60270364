"""What each cycle ran on: the registry version it resolved and its input's NWP metadata.

Two tables next to the state store's own (:mod:`probcast.ops.state`; same database,
created on first use):

- ``ops_model_versions`` (``pipeline``, ``cycle``): the registered model, alias, version,
  folder and ``COMPLETE.json`` digest the cycle's predict step used, and when it resolved.
- ``ops_input_metadata`` (``pipeline``, ``cycle``): the input's NWP metadata signature
  (JSON ``{key: [values]}``), and, when it differs from the previous cycle's, the changes
  (JSON ``{key: [before, after]}``) with ``upgrade`` = 1: an NWP model upgrade.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from probcast.model.integrity import redact
from probcast.ops.pipeline import Pipeline
from probcast.ops.registry import Registry, RegistryError
from probcast.ops.registry_check import check_reachable, mlflow_bounds
from probcast.ops.state import FINISHED, StateStore, engine_with, utcnow

log = logging.getLogger(__name__)

metadata = sa.MetaData()

model_versions = sa.Table(
    "ops_model_versions",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("registry", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("workdir", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("resolved_at", sa.DateTime(), nullable=False),
)
input_metadata = sa.Table(
    "ops_input_metadata",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("upgrade", sa.Integer, nullable=False, default=0),
    sa.Column("changes", sa.Text),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
)


def _put(store: StateStore, table: sa.Table, cycle: str, values: Mapping[str, Any]) -> None:
    where = sa.and_(table.c.pipeline == store.pipeline, table.c.cycle == cycle)
    with engine_with(store, metadata).begin() as conn:
        if not conn.execute(table.update().where(where).values(**values)).rowcount:
            conn.execute(table.insert().values(pipeline=store.pipeline, cycle=cycle, **values))


def record_model(
    store: StateStore,
    cycle: str,
    *,
    registry: str,
    alias: str,
    version: str,
    workdir: str,
    digest: str,
) -> None:
    """Record the registry version a cycle's predict step runs (the latest attempt wins)."""
    values = {"registry": registry, "alias": alias, "version": version, "workdir": workdir}
    _put(store, model_versions, cycle, {**values, "digest": digest, "resolved_at": utcnow()})


def model_of(store: StateStore, cycle: str) -> dict[str, Any] | None:
    """The registry version recorded for ``cycle``, or ``None``."""
    query = sa.select(model_versions).where(
        model_versions.c.pipeline == store.pipeline, model_versions.c.cycle == cycle
    )
    with engine_with(store, metadata).connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def previous_signature(store: StateStore, cycle: str) -> tuple[str, dict[str, list[str]]] | None:
    """The latest cycle before ``cycle`` with a recorded input signature, and the signature."""
    query = (
        sa.select(input_metadata.c.cycle, input_metadata.c.signature)
        .where(input_metadata.c.pipeline == store.pipeline, input_metadata.c.cycle < cycle)
        .order_by(input_metadata.c.cycle.desc())
        .limit(1)
    )
    with engine_with(store, metadata).connect() as conn:
        row = conn.execute(query).first()
    return (str(row[0]), json.loads(row[1])) if row else None


def record_input(
    store: StateStore,
    cycle: str,
    signature: Mapping[str, list[str]],
    changes: Mapping[str, list[Any]] | None,
) -> None:
    """Record a cycle's input signature (and the changes of an NWP upgrade)."""
    values = {
        "signature": json.dumps(dict(signature), sort_keys=True),
        "upgrade": int(bool(changes)),
        "changes": json.dumps(dict(changes), sort_keys=True) if changes else None,
        "recorded_at": utcnow(),
    }
    _put(store, input_metadata, cycle, values)


def upgrades(store: StateStore) -> list[dict[str, Any]]:
    """The cycles whose input signature changed (NWP upgrades), oldest first."""
    query = (
        sa.select(input_metadata)
        .where(input_metadata.c.pipeline == store.pipeline, input_metadata.c.upgrade == 1)
        .order_by(input_metadata.c.cycle)
    )
    with engine_with(store, metadata).connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["signature"] = json.loads(row["signature"])
        row["changes"] = json.loads(row["changes"] or "{}")
    return rows


def resolve_for_cycle(pipe: Pipeline, cycle: str, store: StateStore) -> Pipeline:
    """The pipeline with ``model`` set to the version its alias points at now, recorded.

    A workdir pipeline is returned as is. When the cycle's predict step already finished
    (a resumed cycle), the version it used is kept. The resolved version is recorded in the
    state store (:func:`record_model`), so a rollback takes effect at
    the next cycle and every cycle says which version it ran.

    Raises:
        RegistryError: The registry cannot be reached (tried once, quickly: see
            :mod:`probcast.ops.registry_check`), the alias cannot be resolved or its folder
            fails its digest.
    """
    spec = pipe.registry
    if spec is None:
        return pipe
    step = store.step(cycle, "predict")
    recorded = model_of(store, cycle)
    if step is not None and step["status"] == FINISHED and recorded is not None:
        return dataclasses.replace(pipe, model=Path(recorded["workdir"]))
    mlflow_bounds()  # an unreachable registry fails the cycle in seconds, not minutes
    check_reachable(spec, f"{pipe.name}: model.uri", must_exist=True)
    try:
        found = Registry(spec).resolve()
    except RegistryError:
        raise
    except Exception as err:  # the registry's database unreachable, ...
        raise RegistryError(f"registry {redact(spec.uri)}: {type(err).__name__}: {err}") from err
    record_model(
        store,
        cycle,
        registry=spec.name,
        alias=spec.alias,
        version=found.version,
        workdir=str(found.workdir),
        digest=found.digest,
    )
    log.info("%s: model %s@%s is version %s", cycle, spec.name, spec.alias, found.version)
    return dataclasses.replace(pipe, model=found.workdir)
