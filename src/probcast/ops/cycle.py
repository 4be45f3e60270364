"""One cycle through the pipeline: acquire -> predict -> publish -> record, each step recorded.

An input with one file per lead time is acquired by :mod:`probcast.ops.partial` (which leads,
their union; a finished partial cycle is run again, an update, when more leads arrive).

:func:`run_cycle` takes the cycle's lease in the state store (so two triggers run it once),
skips the steps already finished (so a killed run resumes where it stopped), and records
every step (started, finished or failed, times, the input's sha256, outputs, the model
fingerprint, each product's size and sha256). A finished cycle is not run again. Work
files live in the pipeline's own folder (``<work>/<name>/<YYYYMMDDHH>/``), and ``publish``
copies a product only if it is what ``predict`` wrote (:mod:`probcast.ops.work_products`).

Crash tests: ``PROBCAST_OPS_PAUSE_AT=<point>`` makes the process write
``PROBCAST_OPS_PAUSE_SIGNAL`` (a file path, if set) and sleep
``PROBCAST_OPS_PAUSE_SECONDS`` (default 60) at that point: ``<step>`` right after the step
is recorded as started, ``<step>:done`` after its work and before it is recorded finished,
``publish:mid`` after the first product is published.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import types
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from probcast import io
from probcast.logs import log_context
from probcast.ops import cost, metrics, metrics_export, partial, work_products
from probcast.ops.input_runs import InputRunsError, check_runs
from probcast.ops.lineage import resolve_for_cycle
from probcast.ops.pipeline import Pipeline, cycle_id
from probcast.ops.publish import publish
from probcast.ops.registry import RegistryError
from probcast.ops.state import FINISHED, StateStore, new_owner
from probcast.ops.upgrade import check_input
from probcast.ops.work_products import ProductChanged

log = logging.getLogger(__name__)
STEPS = ("acquire", "predict", "publish", "record")
_PROCESS = types.SimpleNamespace(predicts=0, startup=cost.process_age())
"""Predict steps started by this process, and its age when this module was imported (s)."""


class StepError(RuntimeError):
    """A step that cannot complete (missing or incomplete input, changed input, ...)."""


class InputChanged(StepError):
    """The input changed after it was acquired: the next attempt acquires it again."""


class LeaseLost(RuntimeError):
    """Another process took the cycle's lease while this one was running it."""


@dataclasses.dataclass
class CycleOutcome:
    """What :func:`run_cycle` did.

    Attributes:
        cycle: The cycle id (``2026-11-29T00Z``).
        status: ``finished`` (ran to the end now), ``done`` (already finished before: nothing
            run), ``busy`` (another live process holds the lease) or ``failed``.
        ran: Steps run by this call.
        error: The failure's message (``<step>: <ErrorType>: <message>``).
        seconds: Wall time of this call (``None`` until it returns).
        steps: Wall time of each step this call ran, the failed one included.
        first_predict: Its predict step was this process's first (the model was loaded).
    """

    cycle: str
    status: str
    ran: list[str] = dataclasses.field(default_factory=list)
    error: str = ""
    seconds: float | None = None
    steps: dict[str, float] = dataclasses.field(default_factory=dict)
    first_predict: bool = False


def pause(point: str) -> None:
    """The crash-test hook (see the module docstring); a no-op unless asked for."""
    if os.environ.get("PROBCAST_OPS_PAUSE_AT") != point:
        return
    signal = os.environ.get("PROBCAST_OPS_PAUSE_SIGNAL")
    if signal:
        io.write_text(signal, point)
    time.sleep(float(os.environ.get("PROBCAST_OPS_PAUSE_SECONDS", "60")))


def size_and_mtime(path: Path) -> tuple[int, int]:
    """Total size and newest mtime (ns) of a file or a folder's files: changes while written."""
    if path.is_dir():
        files = [p.stat() for p in path.rglob("*") if p.is_file()]
        return sum(s.st_size for s in files), max((s.st_mtime_ns for s in files), default=0)
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def input_complete(pipe: Pipeline, cycle: datetime, *, settle: bool = True) -> str:
    """Why the cycle's input is not complete yet, or ``""`` when it is.

    Rule ``marker``: the marker file exists. Rule ``stable``: the input's size and mtime do
    not change over ``settle_seconds`` (skipped with ``settle=False``, when a watcher saw it
    stable between two polls). Parquet files must also end with their footer magic.
    """
    path = pipe.input_path(cycle)
    if not path.exists():
        return f"input not found: {path}"
    if pipe.complete_rule == "marker" and not pipe.marker_path(cycle).exists():
        return f"input not complete: marker {pipe.marker_path(cycle)} not found"
    if pipe.complete_rule == "stable" and settle and pipe.settle_seconds > 0:
        before = size_and_mtime(path)
        time.sleep(pipe.settle_seconds)
        if size_and_mtime(path) != before:
            return f"input still growing: {path}"
    if path.suffix.lower() in (".parquet", ".pq") and path.is_file():
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4))
            if fh.read(4) != b"PAR1":
                return f"input not complete: {path} has no Parquet footer yet"
    return ""


@dataclasses.dataclass
class _Context:
    pipe: Pipeline
    cycle: datetime
    settle: bool
    done: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    store: StateStore | None = None
    leads: Collection[int] | None = None
    first_predict: bool = False


def _acquire(ctx: _Context) -> dict[str, Any]:
    path = ctx.pipe.input_path(ctx.cycle)
    if ctx.pipe.leads and ctx.store is not None:  # one file per lead (probcast.ops.partial)
        try:
            record = partial.acquire(
                ctx.pipe, ctx.cycle, ctx.store, settle=ctx.settle, leads=ctx.leads
            )
        except partial.LeadsMissing as err:
            raise StepError(str(err)) from None
    else:
        why = input_complete(ctx.pipe, ctx.cycle, settle=ctx.settle)
        if why:
            raise StepError(why)
        record = {"input_sha256": io.sha256_file(path), "outputs": [str(path)]}
    try:
        check_runs(path, ctx.cycle)  # its runs are the cycle's, and it opens
    except InputRunsError as err:
        raise StepError(str(err)) from None
    return record


def _predict(ctx: _Context) -> dict[str, Any]:
    from probcast.predict.grid_output import model_fingerprint
    from probcast.predict.request import PredictRequest
    from probcast.predict.runner import run

    ctx.first_predict = _PROCESS.predicts == 0
    _PROCESS.predicts += 1
    path = ctx.pipe.input_path(ctx.cycle)
    sha = io.sha256_file(path) if path.exists() else "(missing)"
    if sha != ctx.done["acquire"]["input_sha256"]:
        raise InputChanged(
            f"input changed since it was acquired: {path} (acquired again next attempt)"
        )
    fingerprint = model_fingerprint(ctx.pipe.model)
    output = ctx.pipe.output_path(ctx.cycle)
    output.parent.mkdir(parents=True, exist_ok=True)
    request = PredictRequest(
        model=ctx.pipe.model, input=str(path), output=str(output), **dict(ctx.pipe.request)
    )
    result = run(request)
    log.info("%s: %s", cycle_id(ctx.cycle), result.summary())
    metrics.record_prediction(
        ctx.pipe.name, result.table, result.paths, fingerprint, ctx.pipe.model
    )
    paths = {name: str(p) for name, p in result.paths.items()}
    if ctx.pipe.leads and ctx.store is not None:
        paths.update(partial.write_leads_file(ctx.pipe, ctx.cycle, ctx.store))
    work_products.record(_store(ctx), cycle_id(ctx.cycle), paths)  # publish checks them
    return {"input_sha256": sha, "model_fingerprint": fingerprint, "outputs": paths}


def _store(ctx: _Context) -> StateStore:
    if ctx.store is None:
        raise StepError("no state store: the products' checksums cannot be kept")
    return ctx.store


def _publish(ctx: _Context) -> dict[str, Any]:
    files = {name: Path(p) for name, p in ctx.done["predict"]["outputs"].items()}
    sums = work_products.verify(_store(ctx), cycle_id(ctx.cycle), files)  # what predict wrote
    names, done = list(files), list[str]()

    def _after(target: str) -> None:  # publish goes destination by destination, file by file
        index, dests = len(done), ctx.pipe.destinations
        name = names[index % len(names)]
        work_products.verify_copy(target, dests[index // len(names)], sums[name])
        done.append(target)
        if len(done) == 1:
            pause("publish:mid")

    targets = publish(files, ctx.pipe.destinations, ctx.cycle, ctx.pipe.layout, after_each=_after)
    return {"outputs": targets}


def _record(ctx: _Context) -> dict[str, Any]:
    manifest = {
        "pipeline": ctx.pipe.name,
        "cycle": cycle_id(ctx.cycle),
        "input": ctx.done["acquire"]["outputs"][0],
        "input_sha256": ctx.done["acquire"]["input_sha256"],
        "model": str(ctx.pipe.model),
        "model_fingerprint": ctx.done["predict"]["model_fingerprint"],
        "products": ctx.done["predict"]["outputs"],
        "product_checksums": {
            name: {"size": row["size"], "sha256": row["sha256"]}
            for name, row in work_products.recorded(_store(ctx), cycle_id(ctx.cycle)).items()
        },
        "published": ctx.done["publish"]["outputs"],
        "steps": {k: {"finished_at": v.get("finished_at")} for k, v in ctx.done.items()},
    }
    if ctx.pipe.leads and ctx.store is not None:
        manifest.update(partial.summary(ctx.store, cycle_id(ctx.cycle)))
    path = io.write_json(ctx.pipe.work_dir(ctx.cycle) / "manifest.json", manifest)
    return {"outputs": [str(path)]}


STEP_FUNCTIONS: dict[str, Callable[[_Context], dict[str, Any]]] = {
    "acquire": _acquire,
    "predict": _predict,
    "publish": _publish,
    "record": _record,
}


def open_store(pipe: Pipeline, url: str | None = None) -> StateStore:
    """The pipeline's state store (its ``state`` URL unless ``url`` is given)."""
    return StateStore(url or pipe.state, pipe.name)


def run_cycle(
    pipe: Pipeline,
    cycle: datetime,
    store: StateStore,
    *,
    owner: str | None = None,
    settle: bool = True,
    leads: Collection[int] | None = None,
) -> CycleOutcome:
    """Run one cycle through every step not yet finished (see the module docstring).

    Args:
        pipe: The pipeline.
        cycle: The cycle (aware UTC datetime).
        store: The state store.
        owner: Lease owner name (default: this process).
        settle: Check that a ``stable`` input does not grow (a watcher that saw it stable
            passes ``False``).
        leads: Input with one file per lead: the leads a watcher saw complete (default:
            those complete now; :mod:`probcast.ops.partial`).
    """
    with (
        log_context(pipeline=pipe.name, cycle=cycle_id(cycle)),
        metrics_export.track_cycle(pipe, cycle, store) as tracked,
    ):
        start = time.monotonic()
        outcome = _run_cycle(pipe, cycle, store, owner, settle, leads)
        outcome.seconds = time.monotonic() - start
        if outcome.status == "finished" and "predict" in outcome.ran:
            try:  # what a run costs (probcast cost): never fails the cycle
                startup = _PROCESS.startup if outcome.first_predict else None
                cost.record_run(store, outcome, startup)
            except Exception as err:
                log.warning("%s: could not record the run's cost figures: %s", outcome.cycle, err)
        tracked.outcome = outcome
        return outcome


def _run_cycle(
    pipe: Pipeline,
    cycle: datetime,
    store: StateStore,
    owner: str | None,
    settle: bool,
    leads: Collection[int] | None,
) -> CycleOutcome:
    cid = cycle_id(cycle)
    if store.cycle_status(cid) == FINISHED and not partial.update_due(pipe, cycle, store, leads):
        return CycleOutcome(cid, "done")
    partial.wait(pipe, cycle, store)  # partial.mode wait: every lead, or the deadline
    me = owner or new_owner()
    if not store.acquire(cid, me, pipe.lease_seconds):
        log.info("%s: another process is running it (%s)", cid, store.lease_owner(cid))
        return CycleOutcome(cid, "busy")
    outcome = CycleOutcome(cid, "finished")
    try:
        if store.cycle_status(cid) == FINISHED:  # finished while we waited for the lease
            if not partial.update_due(pipe, cycle, store, leads):
                return CycleOutcome(cid, "done")
            partial.reopen(store, cid)  # an update on more leads: every step again
        store.start_cycle(cid)
        try:  # a registered model: its alias now (a rollback counts from the next cycle)
            pipe = resolve_for_cycle(pipe, cid, store)
        except RegistryError as err:
            message = f"model: {type(err).__name__}: {err}"
            store.fail_cycle(cid, message)
            log.error("%s: %s", cid, message)
            return CycleOutcome(cid, "failed", [], message)
        ctx = _Context(pipe, cycle, settle, store=store, leads=leads)
        redo = work_products.redo_from(pipe, cycle, store)  # begun by an earlier version
        for name in STEPS:
            row = store.step(cid, name)
            again = bool(redo) and STEPS.index(name) >= STEPS.index(redo)
            if row is not None and row["status"] == FINISHED and not again:
                ctx.done[name] = row
                continue
            if not store.renew(cid, me, pipe.lease_seconds):
                raise LeaseLost(f"{cid}: lease taken over by {store.lease_owner(cid)}")
            started = time.monotonic()
            store.start_step(cid, name)
            pause(name)
            try:
                record = STEP_FUNCTIONS[name](ctx)
            except Exception as err:
                message = f"{name}: {type(err).__name__}: {err}"
                store.fail_step(cid, name, message)
                outcome.steps[name] = time.monotonic() - started
                if isinstance(err, InputChanged):  # the next attempt starts from acquire
                    store.fail_step(cid, "acquire", f"acquired again: {message}")
                if isinstance(err, ProductChanged):  # ... from predict
                    store.fail_step(cid, "predict", f"predicted again: {message}")
                store.fail_cycle(cid, message)
                log.error("%s: %s", cid, message)
                outcome.status, outcome.error = "failed", message
                outcome.first_predict = ctx.first_predict
                return outcome
            pause(f"{name}:done")
            store.finish_step(cid, name, **record)
            outcome.steps[name] = time.monotonic() - started
            if name == "acquire":
                check_input(pipe, cycle, store)  # NWP upgrade: input metadata changed
            ctx.done[name] = store.step(cid, name) or record
            outcome.ran.append(name)
        partial.finish_attempt(pipe, store, cid)
        store.finish_cycle(
            cid,
            input_sha256=ctx.done["acquire"]["input_sha256"],
            model_fingerprint=ctx.done["predict"]["model_fingerprint"],
        )
        log.info("%s: finished (ran %s)", cid, ", ".join(outcome.ran) or "nothing")
        outcome.first_predict = ctx.first_predict
        return outcome
    finally:
        store.release(cid, me)
