"""Cost of a deployment, from measured run times and sizes and the user's prices.

:func:`measure` reads what a pipeline really costs in resources from its state store: what
one cycle Job pays, the bytes of the products, and the training time of a model from its
work directory (``seed_*/DONE.json``). A deployment runs one cycle per process (a Kubernetes
Job), which pays the process start-up and the model's load and compilation before the cycle;
later cycles of a long-lived process (a backfill, a watcher) do not. So every finished run
that predicted is recorded in the table ``ops_cycle_runs`` (:func:`record_run`: its wall
time, whether its predict step was the first of its process, the process's age when the
cycles module was imported), and the first runs of a process price a cycle when there are
any. :func:`estimate` turns the figures into money per day and per month with a
:class:`Prices`. Nothing here is a price list: the defaults of :class:`Prices` are
placeholders of the right order of magnitude for a public cloud, to be replaced by the
user's own (``--prices``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from probcast.ops.state import StateStore, engine_with, utcnow

DAYS_PER_MONTH = 30.4375
GB = 1e9

metadata = sa.MetaData()
runs = sa.Table(
    "ops_cycle_runs",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.String(32), primary_key=True),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("first_predict", sa.Integer, nullable=False),
    sa.Column("startup_seconds", sa.Float),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
)
"""The last finished run of each cycle that predicted (see the module docstring)."""


@dataclasses.dataclass(frozen=True)
class Prices:
    """Unit prices and the shape of the deployment (one currency throughout).

    Attributes:
        cpu_node_hour: Price of one node-hour of the pool the cycle Jobs run on.
        gpu_node_hour: Price of one on-demand node-hour of the GPU training pool.
        spot_discount: Fraction taken off ``gpu_node_hour`` for spot/preemptible nodes.
        serve_node_hour: Price of one node-hour of a serve replica's share of a node.
        serve_replicas: Replicas of ``probcast serve`` kept running (HPA minimum).
        storage_gb_month: Object storage per GB-month.
        egress_gb: Egress per GB.
        egress_gb_per_cycle: GB downloaded by users per cycle.
        retention_days: Days products are kept (the bucket's lifecycle rule).
        node_start_seconds: Billed time of a node started from zero for a cycle.
        retrains_per_month: Scheduled retrainings per month.
    """

    cpu_node_hour: float = 0.20
    gpu_node_hour: float = 3.00
    spot_discount: float = 0.6
    serve_node_hour: float = 0.10
    serve_replicas: int = 1
    storage_gb_month: float = 0.02
    egress_gb: float = 0.12
    egress_gb_per_cycle: float = 0.0
    retention_days: float = 30.0
    node_start_seconds: float = 60.0
    retrains_per_month: float = 4.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            why = _check_price(field.name, value)
            if why:
                raise ValueError(f"price {field.name}: {why}, got {value!r}")

    @classmethod
    def load(cls, path: str | Path | None) -> Prices:
        """Prices from a YAML mapping of the attribute names (``None``: the placeholders)."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read the prices: {err}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, Mapping) or set(data) - known:
            extra = sorted(set(data) - known) if isinstance(data, Mapping) else data
            raise ValueError(f"{path}: unknown price keys {extra}; known: {sorted(known)}")
        for key, value in data.items():
            why = _check_price(key, value)
            if why:
                raise ValueError(f"{path}: {key}: {why}, got {value!r}")
        return cls(**data)


def _check_price(key: str, value: Any) -> str:
    """Why ``value`` is not a valid ``key`` of :class:`Prices`, or ``""``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "expected a number"
    if not math.isfinite(value) or value < 0:
        return "expected a finite number >= 0"
    if key == "spot_discount" and value >= 1:
        return "expected a fraction 0 <= spot_discount < 1 (0.6 takes 60 % off)"
    if key == "serve_replicas" and not isinstance(value, int):
        return "expected a whole number of replicas"
    return ""


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or ``None`` where unknown."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def record_run(store: StateStore, outcome: Any, startup: float | None) -> None:
    """Record a finished run that predicted (a :class:`probcast.ops.cycle.CycleOutcome`).

    Args:
        store: The state store (the table ``ops_cycle_runs`` is created next to its own).
        outcome: The run: ``cycle``, ``seconds``, ``first_predict``.
        startup: The process's age when the cycles module was imported (first runs only).
    """
    values = {
        "seconds": float(outcome.seconds or 0.0),
        "first_predict": int(bool(outcome.first_predict)),
        "startup_seconds": startup,
        "recorded_at": utcnow(),
    }
    where = sa.and_(runs.c.pipeline == store.pipeline, runs.c.cycle == outcome.cycle)
    with engine_with(store, metadata).begin() as conn:
        if not conn.execute(runs.update().where(where).values(**values)).rowcount:
            conn.execute(
                runs.insert().values(pipeline=store.pipeline, cycle=outcome.cycle, **values)
            )


@dataclasses.dataclass(frozen=True)
class Measured:
    """What the pipeline and the model use, as measured.

    Attributes:
        cycles: Finished cycles measured.
        cycle_seconds: What one cycle Job runs (priced): see ``basis``.
        product_bytes: Median bytes of a cycle's products.
        cycles_per_day: From the pipeline's ``every_hours``.
        training_seconds: Training time, when a model or a time was given.
        basis: ``first runs`` (median of the first runs of a process: start-up, model load
            and the cycle) or ``cycle rows`` (median of the cycles' own start-to-finish
            times: no start-up or model load, an underestimate of a one-cycle Job).
        first_runs: First runs of a process measured.
        later_seconds: Median of the later runs of a process (``None``: none recorded).
        training_basis: Where ``training_seconds`` comes from.
    """

    cycles: int
    cycle_seconds: float
    product_bytes: float
    cycles_per_day: float
    training_seconds: float | None = None
    basis: str = "cycle rows"
    first_runs: int = 0
    later_seconds: float | None = None
    training_basis: str = ""


def measure(
    store: StateStore,
    every_hours: float,
    model: str | Path | None = None,
    training: float | None = None,
) -> Measured:
    """What a cycle Job runs and the median product bytes of the finished cycles of ``store``.

    Args:
        store: The pipeline's state store.
        every_hours: The pipeline's cycle spacing.
        model: A trained model's workdir: its training's elapsed time (``summary.json``;
            older models: its seed loops, a lower bound).
        training: The training's elapsed seconds, measured elsewhere (wins over ``model``).

    Raises:
        ValueError: If no cycle has finished yet (nothing measured).
    """
    seconds, sizes = [], []
    finished = set()
    for row in store.list_cycles():
        if row.get("status") != "finished" or not row.get("started_at"):
            continue
        finished.add(row["cycle"])
        start, end = row["started_at"], row["finished_at"]
        if isinstance(start, datetime) and isinstance(end, datetime):
            seconds.append((end - start).total_seconds())
        predict = store.step(row["cycle"], "predict") or {}
        outputs = predict.get("outputs") or {}
        paths = outputs.values() if isinstance(outputs, Mapping) else outputs
        sizes.append(sum(_size(Path(str(p))) for p in paths))
    if not seconds:
        raise ValueError(
            f"no finished cycle of pipeline {store.pipeline!r} in the state store: run some "
            f"cycles first (probcast run), costs come from their measured times"
        )
    with engine_with(store, metadata).connect() as conn:
        rows = conn.execute(sa.select(runs).where(runs.c.pipeline == store.pipeline)).mappings()
        measured = [dict(r) for r in rows if r["cycle"] in finished]
    first = [r["seconds"] + (r["startup_seconds"] or 0.0) for r in measured if r["first_predict"]]
    later = [r["seconds"] for r in measured if not r["first_predict"]]
    basis = "given" if training is not None else ""
    if training is None and model:
        training, basis = training_seconds(model)
    return Measured(
        len(seconds),
        statistics.median(first or seconds),
        statistics.median(sizes),
        24 / every_hours,
        training,
        "first runs" if first else "cycle rows",
        len(first),
        statistics.median(later) if later else None,
        basis,
    )


def training_seconds(workdir: str | Path) -> tuple[float, str]:
    """Elapsed time of a training: ``elapsed_s`` of its ``summary.json``.

    Models trained before it was recorded: the sum of the seed loops' ``wall_s``
    (``DONE.json``, selection and refit), a lower bound (data loading, compilation and
    calibration are not in it).

    Returns:
        ``(seconds, where they come from)``.
    """
    workdir = Path(workdir)
    summary = workdir / "summary.json"
    if summary.exists():
        elapsed = json.loads(summary.read_text()).get("elapsed_s")
        if isinstance(elapsed, int | float) and elapsed > 0:
            return float(elapsed), "the training's elapsed time (summary.json)"
    done = list(workdir.glob("seed_*/DONE.json")) + list(workdir.glob("selection/seed_*/DONE.json"))
    if not done:
        raise ValueError(f"{workdir}: no seed_*/DONE.json: not a finished training")
    seconds = float(sum(json.loads(p.read_text()).get("wall_s", 0.0) for p in done))
    return seconds, "seed loops (DONE.json): a lower bound"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def estimate(m: Measured, prices: Prices) -> dict[str, dict[str, float]]:
    """Cost per day and per month of each item (and ``total``), from ``m`` and ``prices``."""
    per_day = {
        "cycles (CPU jobs)": m.cycles_per_day
        * (m.cycle_seconds + prices.node_start_seconds)
        / 3600
        * prices.cpu_node_hour,
        "serve": 24 * prices.serve_replicas * prices.serve_node_hour,
        "storage": m.product_bytes / GB * m.cycles_per_day * prices.retention_days
        * prices.storage_gb_month / DAYS_PER_MONTH,
        "egress": m.cycles_per_day * prices.egress_gb_per_cycle * prices.egress_gb,
    }  # fmt: skip
    if m.training_seconds is not None:
        gpu_hour = prices.gpu_node_hour * (1 - prices.spot_discount)
        per_month = prices.retrains_per_month * (m.training_seconds / 3600) * gpu_hour
        per_day["training (GPU spot)"] = per_month / DAYS_PER_MONTH
    per_day["total"] = sum(per_day.values())
    return {k: {"day": v, "month": v * DAYS_PER_MONTH} for k, v in per_day.items()}


def table(m: Measured, costs: Mapping[str, Mapping[str, float]], placeholder: bool) -> str:
    """The measured figures and the cost table, for a terminal."""
    if m.basis == "first runs":
        cycle = (
            f"a cycle Job: median {m.cycle_seconds:.1f} s over {m.first_runs} first runs of a "
            "process (start-up, model load and the cycle)"
        )
        if m.later_seconds is not None:
            cycle += f"; later cycles of a process: median {m.later_seconds:.1f} s"
    else:
        cycle = (
            f"a cycle Job: median {m.cycle_seconds:.1f} s of the cycles' own run times (no "
            "first run of a process recorded: start-up and model load not included, an "
            "underestimate; run a cycle per process to measure them)"
        )
    lines = [
        f"measured: {m.cycles} finished cycles, {m.product_bytes / 1e6:.1f} MB of products "
        f"each, {m.cycles_per_day:g} cycles a day",
        cycle,
    ]
    if m.training_seconds is not None:
        hours = m.training_seconds / 3600
        took = f"{hours:.2f} h" if hours >= 1 else f"{m.training_seconds:.0f} s"
        lines.append(f"training: {took} ({m.training_basis})")
    lines.append(f"{'item':<22} {'per day':>10} {'per month':>11}")
    for item, c in costs.items():
        lines.append(f"{item:<22} {c['day']:>10.2f} {c['month']:>11.2f}")
    if placeholder:
        lines.append("prices: placeholders (see docs/deployment.md); give yours with --prices FILE")
    return "\n".join(lines)
