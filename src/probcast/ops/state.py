"""The state store: every cycle and step of every pipeline, and the lease that runs a cycle once.

Three tables (SQLAlchemy Core; a SQLite file by default, PostgreSQL by URL):

- ``ops_cycles``: one row per (pipeline, cycle): status ``started|finished|failed``, times,
  attempts, the input's sha256, the model fingerprint, the last error.
- ``ops_steps``: one row per (pipeline, cycle, step): status, times, attempts, input sha256,
  outputs (JSON list or mapping), model fingerprint, error.
- ``ops_leases``: one row per (pipeline, cycle) being run: ``owner`` (``host:pid:random``) and
  ``expires_at`` (epoch seconds). Taken by an insert (the primary key makes it fail if
  the row exists) or by a conditional update (``WHERE expires_at < now OR owner = me``, or
  ``WHERE owner = <the dead local process>``); both are atomic in SQLite and PostgreSQL, so
  of two triggers for one cycle exactly one gets it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

metadata = sa.MetaData()

cycles = sa.Table(
    "ops_cycles",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime()),
    sa.Column("finished_at", sa.DateTime()),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("input_sha256", sa.String(64)),
    sa.Column("model_fingerprint", sa.String(80)),
    sa.Column("error", sa.Text),
)
steps = sa.Table(
    "ops_steps",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime()),
    sa.Column("finished_at", sa.DateTime()),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("input_sha256", sa.String(64)),
    sa.Column("outputs", sa.Text),
    sa.Column("model_fingerprint", sa.String(80)),
    sa.Column("error", sa.Text),
)
leases = sa.Table(
    "ops_leases",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

STARTED, FINISHED, FAILED = "started", "finished", "failed"


def new_owner() -> str:
    """A lease owner name for this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str) -> bool:
    """Whether ``owner`` names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def create_tables(engine: Engine, meta: sa.MetaData) -> None:
    """Create the tables of ``meta`` that do not exist yet.

    Two processes creating them at once: one may fail, and the tables then exist, so a
    failure is retried (the last one is raised).
    """
    for attempt in range(5):
        try:
            meta.create_all(engine)
            return
        except DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def utcnow() -> datetime:
    """Now in UTC, naive (as every time of the state store is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


_CREATED: weakref.WeakKeyDictionary[Engine, set[int]] = weakref.WeakKeyDictionary()


def engine_with(store: StateStore, meta: sa.MetaData) -> Engine:
    """The store's engine, with the tables of ``meta`` created (once per engine and tables).

    Modules that keep their own tables next to the store's (model lineage, lead attempts)
    reach the database through this.
    """
    done = _CREATED.setdefault(store.engine, set())
    if id(meta) not in done:
        create_tables(store.engine, meta)
        done.add(id(meta))
    return store.engine


def create_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode and a long busy timeout."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    args = {}
    if url.startswith("postgresql") and "connect_timeout" not in url:
        args["connect_timeout"] = CONNECT_TIMEOUT_S  # libpq waits without end by default
    return sa.create_engine(url, pool_pre_ping=True, connect_args=args)


CONNECT_TIMEOUT_S = 10
"""Seconds a PostgreSQL connection may take (``connect_timeout`` in the URL overrides it)."""


def _open_error(url: str, err: DBAPIError) -> Exception:
    """A state database that cannot be opened: an error naming it (never its password)."""
    if url.endswith(":memory:"):
        return err
    if not url.startswith("sqlite:///"):
        from probcast.model.integrity import redact

        # the user's password and any secret in the query (?password=, ?sslpassword=)
        shown = redact(sa.engine.make_url(url).render_as_string(hide_password=True))
        reason = redact(" ".join(str(err.orig).split()))
        return ConnectionError(
            f"state store {shown}: cannot connect ({reason}); is the database running and "
            "reachable from here?"
        )
    path = url.removeprefix("sqlite:///")
    reason = f"cannot open the state database ({err.orig}); a missing or read-only folder?"
    return OSError(errno.EIO, reason, path)


class StateStore:
    """Cycles, steps and leases of one pipeline in a database.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.sqlite``, ``postgresql+psycopg://...``).
        pipeline: Name of the pipeline (rows of several pipelines can share a database).
    """

    def __init__(self, url: str, pipeline: str) -> None:
        self.url = url
        self.pipeline = pipeline
        self.engine = create_engine(url)
        self._create()

    def _create(self) -> None:
        try:
            create_tables(self.engine, metadata)
        except DBAPIError as err:
            raise _open_error(self.url, err) from None

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _where(self, table: sa.Table, cycle: str, extra: Mapping[str, Any] | None = None) -> Any:
        """The row(s) of ``cycle`` of this pipeline in ``table`` (and ``extra`` column values)."""
        conds = [table.c.pipeline == self.pipeline, table.c.cycle == cycle]
        conds += [table.c[k] == v for k, v in (extra or {}).items()]
        return sa.and_(*conds)

    def _row(self, table: sa.Table, cycle: str, extra: Mapping[str, Any] | None = None) -> Any:
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(table).where(self._where(table, cycle, extra)))
                .mappings()
                .first()
            )

    # -- leases -----------------------------------------------------------------------------

    def acquire(self, cycle: str, owner: str, seconds: float) -> bool:
        """Take the lease of ``cycle`` for ``seconds``; ``False`` if another live owner holds it."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    leases.insert().values(
                        pipeline=self.pipeline, cycle=cycle, owner=owner, expires_at=now + seconds
                    )
                )
            return True
        except IntegrityError:
            pass
        free = sa.or_(leases.c.expires_at < now, leases.c.owner == owner)
        if self._take(cycle, owner, seconds, free):
            return True
        holder = self.lease_owner(cycle)
        if holder is not None and _owner_dead(holder):
            return self._take(cycle, owner, seconds, leases.c.owner == holder)
        return False

    def _take(self, cycle: str, owner: str, seconds: float, condition: Any) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                leases.update()
                .where(self._where(leases, cycle), condition)
                .values(owner=owner, expires_at=time.time() + seconds)
            )
        return result.rowcount == 1

    def renew(self, cycle: str, owner: str, seconds: float) -> bool:
        """Extend a held lease; ``False`` when ``owner`` no longer holds it."""
        return self._take(cycle, owner, seconds, leases.c.owner == owner)

    def release(self, cycle: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` holds it)."""
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(self._where(leases, cycle), leases.c.owner == owner))

    def lease_owner(self, cycle: str) -> str | None:
        """Who holds the lease of ``cycle`` (expired or not), or ``None``."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(leases.c.owner).where(self._where(leases, cycle))
            ).scalar_one_or_none()

    # -- cycles -----------------------------------------------------------------------------

    def cycle(self, cycle: str) -> dict[str, Any] | None:
        """The cycle's row as a dict, or ``None``."""
        row = self._row(cycles, cycle)
        return dict(row) if row else None

    def cycle_status(self, cycle: str) -> str | None:
        """``started``, ``finished``, ``failed`` or ``None`` (never run)."""
        row = self.cycle(cycle)
        return row["status"] if row else None

    def start_cycle(self, cycle: str) -> None:
        """Mark the cycle started (one more attempt)."""
        self._upsert(cycles, cycle, {}, status=STARTED, started_at=utcnow(), error=None)

    def finish_cycle(self, cycle: str, **fields: Any) -> None:
        """Mark the cycle finished (with e.g. ``input_sha256``, ``model_fingerprint``)."""
        self._update(cycles, cycle, {}, status=FINISHED, finished_at=utcnow(), **fields)

    def fail_cycle(self, cycle: str, error: str) -> None:
        """Mark the cycle failed with ``error``."""
        self._update(cycles, cycle, {}, status=FAILED, finished_at=utcnow(), error=error)

    def list_cycles(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The pipeline's cycles, newest first."""
        query = (
            sa.select(cycles)
            .where(cycles.c.pipeline == self.pipeline)
            .order_by(cycles.c.cycle.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- steps ------------------------------------------------------------------------------

    def step(self, cycle: str, name: str) -> dict[str, Any] | None:
        """The step's row (``outputs`` decoded from JSON), or ``None``."""
        row = self._row(steps, cycle, {"step": name})
        return _decode(row) if row else None

    def steps_of(self, cycle: str) -> list[dict[str, Any]]:
        """Every step row of ``cycle``, in the order they started."""
        query = sa.select(steps).where(self._where(steps, cycle)).order_by(steps.c.started_at)
        with self.engine.connect() as conn:
            return [_decode(dict(r)) for r in conn.execute(query).mappings()]

    def start_step(self, cycle: str, name: str) -> None:
        """Mark a step started (one more attempt)."""
        self._upsert(
            steps,
            cycle,
            {"step": name},
            status=STARTED,
            started_at=utcnow(),
            finished_at=None,
            error=None,
        )

    def finish_step(self, cycle: str, name: str, **fields: Any) -> None:
        """Mark a step finished with its record (``outputs`` is stored as JSON)."""
        if "outputs" in fields:
            fields["outputs"] = json.dumps(fields["outputs"], default=str)
        self._update(steps, cycle, {"step": name}, status=FINISHED, finished_at=utcnow(), **fields)

    def fail_step(self, cycle: str, name: str, error: str) -> None:
        """Mark a step failed with ``error``."""
        self._update(steps, cycle, {"step": name}, status=FAILED, finished_at=utcnow(), error=error)

    # -- helpers ----------------------------------------------------------------------------

    def _update(self, table: sa.Table, cycle: str, extra: Mapping[str, Any], **values: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                table.update().where(self._where(table, cycle, extra)).values(**values)
            ).rowcount

    def _upsert(self, table: sa.Table, cycle: str, extra: Mapping[str, Any], **values: Any) -> None:
        # Called by the lease holder only: no other writer of this row, update-then-insert is safe.
        with self.engine.begin() as conn:
            done = conn.execute(
                table.update()
                .where(self._where(table, cycle, extra))
                .values(attempts=table.c.attempts + 1, **values)
            ).rowcount
            if not done:
                conn.execute(
                    table.insert().values(
                        pipeline=self.pipeline, cycle=cycle, attempts=1, **extra, **values
                    )
                )


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if out.get("outputs"):
        out["outputs"] = json.loads(out["outputs"])
    return out
