"""NWP arriving lead by lead: run what is there, complete it later, or wait with a deadline.

An input with one file per lead time (``input: inputs/{cycle:%Y%m%d%H}/f{lead:03d}.parquet``
and ``leads: [0, 6, 12]`` or ``leads: {start: 0, stop: 48, step: 6}``; reading:
:mod:`probcast.ops.leadfiles`) is run by the pipeline's ``partial:`` policy::

    partial:
      mode: available        # all (default) | available | wait
      deadline_minutes: 90   # wait: run with what is there this long after ...
      deadline_from: seen    # ... the first look at the cycle (seen) or its nominal time (cycle)
      poll_seconds: 10       # wait: how often `probcast run` looks again while it waits
      update: true           # rerun a partial cycle when more leads are complete

- ``all``: the cycle runs once every lead is complete (as a one-file input does).
- ``available``: the cycle runs on the leads complete now; when more are complete, a later
  ``run``/``watch``/``consume``/``schedule`` reruns it (an **update**: every step again, the
  published products replaced atomically). The same set again is a no-op.
- ``wait``: the cycle runs once every lead is complete, or at the deadline with the leads
  complete then (a **partial** cycle); it is updated once every lead is complete.

Each run of a cycle's steps on a set of leads is an **attempt**, recorded in table
``ops_cycle_leads`` (next to the state store's own, created on first use): the leads, the
missing leads, their files' sha256, ``partial``, times. ``ops_lead_clock`` keeps when a
cycle was first looked at (the ``wait`` deadline survives restarts).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from probcast import io
from probcast.ops import metrics
from probcast.ops.leadfiles import combine, complete_leads, ready_leads
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id
from probcast.ops.state import FINISHED, STARTED, StateStore, cycles, engine_with, steps, utcnow

log = logging.getLogger(__name__)

MODES = ("all", "available", "wait")
_KEYS = frozenset({"mode", "deadline_minutes", "deadline_from", "poll_seconds", "update"})

metadata = sa.MetaData()
attempts = sa.Table(
    "ops_cycle_leads",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("leads", sa.Text, nullable=False),
    sa.Column("missing", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("partial", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime()),
    sa.Column("finished_at", sa.DateTime()),
)
clock = sa.Table(
    "ops_lead_clock",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("first_seen", sa.Float, nullable=False),
)


class LeadsMissing(RuntimeError):
    """No lead is complete, or (mode ``all``) some are not (the message says which)."""


@dataclasses.dataclass(frozen=True)
class Policy:
    """The parsed ``partial:`` block."""

    mode: str = "all"
    deadline_minutes: float = 60.0
    deadline_from: str = "seen"
    poll_seconds: float = 10.0
    update: bool = True


def parse_policy(block: Mapping[str, Any], name: str = "pipeline") -> Policy:
    """Check a ``partial:`` block (unknown keys and bad values name the key)."""
    where = f"{name}: partial"
    unknown = set(block) - _KEYS
    if unknown:
        raise PipelineError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    policy = Policy()
    mode = str(block.get("mode", policy.mode))
    origin = str(block.get("deadline_from", policy.deadline_from))
    if mode not in MODES:
        raise PipelineError(f"{where}.mode must be one of {', '.join(MODES)}, got {mode!r}")
    if origin not in ("seen", "cycle"):
        raise PipelineError(f"{where}.deadline_from must be 'seen' or 'cycle', got {origin!r}")
    try:
        deadline = float(block.get("deadline_minutes", policy.deadline_minutes))
        poll = float(block.get("poll_seconds", policy.poll_seconds))
    except (TypeError, ValueError):
        raise PipelineError(f"{where}: deadline_minutes and poll_seconds are numbers") from None
    if deadline < 0 or poll <= 0:
        raise PipelineError(f"{where}: deadline_minutes >= 0 and poll_seconds > 0 expected")
    update = block.get("update", policy.update)
    if not isinstance(update, bool):
        raise PipelineError(f"{where}.update must be true or false, got {update!r}")
    return Policy(mode, deadline, origin, poll, update)


def policy_of(pipe: Pipeline) -> Policy:
    """The pipeline's policy (``all`` unless its ``partial:`` block says otherwise)."""
    return parse_policy(pipe.partial, pipe.name)


# -- the state: attempts and the first look ----------------------------------------------


def _where(table: sa.Table, store: StateStore, cid: str) -> Any:
    return sa.and_(table.c.pipeline == store.pipeline, table.c.cycle == cid)


def history(store: StateStore, cid: str) -> list[dict[str, Any]]:
    """The cycle's attempts, oldest first (``leads``, ``missing``, ``sha256`` decoded)."""
    query = sa.select(attempts).where(_where(attempts, store, cid)).order_by(attempts.c.attempt)
    with engine_with(store, metadata).connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        for key in ("leads", "missing", "sha256"):
            row[key] = json.loads(row[key])
        row["partial"] = bool(row["partial"])
        del row["pipeline"], row["cycle"]
    return rows


def used_leads(store: StateStore, cid: str) -> list[int] | None:
    """The leads of the cycle's latest finished attempt (``None``: none finished)."""
    done = [row for row in history(store, cid) if row["status"] == FINISHED]
    return done[-1]["leads"] if done else None


def _begin_attempt(store: StateStore, cid: str, values: dict[str, Any]) -> None:
    """A new attempt after a finished one; else the unfinished one is retried (same number)."""
    rows = history(store, cid)
    with engine_with(store, metadata).begin() as conn:
        if rows and rows[-1]["status"] != FINISHED:
            where = _where(attempts, store, cid)
            conn.execute(
                attempts.update().where(where, attempts.c.attempt == rows[-1]["attempt"])
                .values(**values)
            )  # fmt: skip
        else:
            number = rows[-1]["attempt"] + 1 if rows else 1
            conn.execute(
                attempts.insert().values(
                    pipeline=store.pipeline, cycle=cid, attempt=number, **values
                )
            )


def finish_attempt(pipe: Pipeline, store: StateStore, cid: str) -> None:
    """Mark the running attempt finished (before the cycle is); counts partial cycles."""
    if not pipe.leads:
        return
    rows = history(store, cid)
    if not rows or rows[-1]["status"] == FINISHED:
        return
    last = rows[-1]
    where = sa.and_(_where(attempts, store, cid), attempts.c.attempt == last["attempt"])
    with engine_with(store, metadata).begin() as conn:
        conn.execute(attempts.update().where(where).values(status=FINISHED, finished_at=utcnow()))
    metrics.record_partial(pipe.name, partial=last["partial"], update=last["attempt"] > 1)


def first_seen(store: StateStore, cid: str) -> float:
    """When (epoch s) a process first looked at the cycle (recorded on the first call)."""
    with engine_with(store, metadata).connect() as conn:
        seen = conn.execute(sa.select(clock.c.first_seen).where(_where(clock, store, cid)))
        value = seen.scalar_one_or_none()
    if value is not None:
        return float(value)
    try:
        with engine_with(store, metadata).begin() as conn:
            conn.execute(
                clock.insert().values(pipeline=store.pipeline, cycle=cid, first_seen=time.time())
            )
    except IntegrityError:
        pass  # another process recorded it first
    return first_seen(store, cid)


def deadline(pipe: Pipeline, cycle: datetime, store: StateStore) -> float:
    """When (epoch s) a ``wait`` cycle runs with the leads it has."""
    policy = policy_of(pipe)
    base = cycle.timestamp() if policy.deadline_from == "cycle" else None
    start = first_seen(store, cycle_id(cycle)) if base is None else base
    return start + policy.deadline_minutes * 60.0


def reopen(store: StateStore, cid: str) -> None:
    """Start an update: every finished step of the finished cycle is run again."""
    with store.engine.begin() as conn:
        conn.execute(
            steps.update()
            .where(_where(steps, store, cid), steps.c.status == FINISHED)
            .values(status="superseded")
        )
        conn.execute(cycles.update().where(_where(cycles, store, cid)).values(status=STARTED))


# -- the decisions --------------------------------------------------------------------------


def update_due(
    pipe: Pipeline, cycle: datetime, store: StateStore, ready: Collection[int] | None = None
) -> bool:
    """Whether a finished cycle is to be run again on more leads (``ready``: complete now)."""
    if not pipe.leads:
        return False
    policy = policy_of(pipe)
    if policy.mode == "all" or not policy.update:
        return False
    used = used_leads(store, cycle_id(cycle))
    if used is None or len(used) == len(pipe.leads):
        return False
    have = set(complete_leads(pipe, cycle, settle=False) if ready is None else ready)
    if policy.mode == "wait":
        return len(have) == len(pipe.leads)
    return bool(have - set(used))


def due(
    pipe: Pipeline, cycle: datetime, store: StateStore, seen: dict[str, tuple[int, int]]
) -> list[int] | None:
    """For a watcher: the leads to run the cycle on now, or ``None`` (not yet / nothing new)."""
    ready = ready_leads(pipe, cycle, seen)
    if store.cycle_status(cycle_id(cycle)) == FINISHED:
        return ready if update_due(pipe, cycle, store, ready) else None
    policy = policy_of(pipe)
    late = policy.mode == "wait" and time.time() >= deadline(pipe, cycle, store)
    if ready and (len(ready) == len(pipe.leads) or policy.mode == "available" or late):
        return ready
    return None


def wait(pipe: Pipeline, cycle: datetime, store: StateStore) -> None:
    """Mode ``wait``: block until every lead is complete or the deadline passed."""
    if not pipe.leads or store.cycle_status(cycle_id(cycle)) == FINISHED:
        return
    policy = policy_of(pipe)
    if policy.mode != "wait":
        return
    until = deadline(pipe, cycle, store)
    said = False
    while len(complete_leads(pipe, cycle, settle=False)) < len(pipe.leads):
        left = until - time.time()
        if left <= 0:
            return
        if not said:
            log.info("%s: waiting for every lead until %s", cycle_id(cycle), time.ctime(until))
            said = True
        time.sleep(min(policy.poll_seconds, left))


def acquire(
    pipe: Pipeline,
    cycle: datetime,
    store: StateStore,
    *,
    settle: bool,
    leads: Collection[int] | None = None,
) -> dict[str, Any]:
    """The ``acquire`` step of a lead-file input: choose the leads, write their union.

    Args:
        pipe: The pipeline.
        cycle: The cycle.
        store: The state store (the attempt is recorded).
        settle: Check that the lead files do not grow (see :func:`complete_leads`).
        leads: The leads a watcher saw complete (default: every complete one now).

    Raises:
        LeadsMissing: No lead complete, or mode ``all`` and some missing.
    """
    have = sorted(complete_leads(pipe, cycle, settle=settle) if leads is None else leads)
    missing = [lead for lead in pipe.leads if lead not in have]
    template = pipe.root / pipe.input
    if not have:
        raise LeadsMissing(f"input not found: no lead file of {template} (leads {pipe.leads})")
    if missing and policy_of(pipe).mode == "all":
        raise LeadsMissing(f"input not complete: leads {missing} of {template} missing")
    files = {lead: pipe.lead_path(cycle, lead) for lead in have}
    sums = {str(lead): io.sha256_file(path) for lead, path in files.items()}
    target = combine(files, pipe.input_path(cycle))
    record = {"leads": json.dumps(have), "missing": json.dumps(missing), "sha256": json.dumps(sums)}
    _begin_attempt(
        store,
        cycle_id(cycle),
        {**record, "status": STARTED, "partial": int(bool(missing)), "started_at": utcnow()},
    )
    if missing:
        log.warning("%s: partial input: leads %s missing", cycle_id(cycle), missing)
    outputs = [str(target), *(str(p) for p in files.values())]
    return {"input_sha256": io.sha256_file(target), "outputs": outputs}


def summary(store: StateStore, cid: str) -> dict[str, Any]:
    """The latest attempt for manifests and ``run --status``: leads, missing, partial."""
    rows = history(store, cid)
    if not rows:
        return {}
    last = rows[-1]
    return {
        "leads": last["leads"],
        "missing_leads": last["missing"],
        "partial": last["partial"],
        "attempt": last["attempt"],
        "lead_sha256": last["sha256"],
    }


def status(store: StateStore, cid: str) -> dict[str, Any]:
    """``run --status`` of a lead-file cycle: the latest attempt and every attempt."""
    keys = ("attempt", "status", "leads", "missing", "partial", "started_at", "finished_at")
    rows = [{k: row[k] for k in keys} for row in history(store, cid)]
    latest = summary(store, cid)
    latest.pop("lead_sha256", None)
    return {**latest, "attempts": rows}


def write_leads_file(pipe: Pipeline, cycle: datetime, store: StateStore) -> dict[str, str]:
    """The ``<output stem>.leads.json`` product: the leads the prediction includes."""
    output = pipe.output_path(cycle)
    info = {"pipeline": pipe.name, "cycle": cycle_id(cycle), **summary(store, cycle_id(cycle))}
    return {"leads": str(io.write_json(output.with_name(output.stem + ".leads.json"), info))}
