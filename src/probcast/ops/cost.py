"""Cost of a deployment, from measured run times and sizes and the user's prices.

:func:`measure` reads what a pipeline really costs in resources from its state store: the
wall time of its finished cycles and the bytes of their products, and the training time
of a model from its work directory (``seed_*/DONE.json`` and ``selection/``). :func:`estimate`
turns those figures into money per day and per month with a :class:`Prices` (node-hours of
the CPU pool the cycles run on, of the GPU pool training runs on with its spot discount,
the always-on serve replicas, object storage per GB-month over the retention, egress).
Nothing here is a price list: the defaults of :class:`Prices` are placeholders of the right
order of magnitude for a public cloud, to be replaced by the user's own (``--prices``).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

DAYS_PER_MONTH = 30.4375
GB = 1e9


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
        bad = [k for k, v in data.items() if not isinstance(v, (int, float)) or v < 0]
        if bad:
            raise ValueError(f"{path}: prices must be numbers >= 0: {sorted(bad)}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Measured:
    """What the pipeline and the model use, as measured."""

    cycles: int
    cycle_seconds: float
    product_bytes: float
    cycles_per_day: float
    training_seconds: float | None = None


def measure(store: Any, every_hours: float, model: str | Path | None = None) -> Measured:
    """Median wall time and product bytes of the finished cycles of ``store``.

    Raises:
        ValueError: If no cycle has finished yet (nothing measured).
    """
    seconds, sizes = [], []
    for row in store.list_cycles():
        if row.get("status") != "finished" or not row.get("started_at"):
            continue
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
    training = training_seconds(model) if model else None
    return Measured(
        len(seconds),
        statistics.median(seconds),
        statistics.median(sizes),
        24 / every_hours,
        training,
    )


def training_seconds(workdir: str | Path) -> float:
    """Wall time of a training: its seed networks (selection and refit) from ``DONE.json``."""
    workdir = Path(workdir)
    done = list(workdir.glob("seed_*/DONE.json")) + list(workdir.glob("selection/seed_*/DONE.json"))
    if not done:
        raise ValueError(f"{workdir}: no seed_*/DONE.json: not a finished training")
    return float(sum(json.loads(p.read_text()).get("wall_s", 0.0) for p in done))


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
    lines = [
        f"measured: {m.cycles} finished cycles, median {m.cycle_seconds:.1f} s and "
        f"{m.product_bytes / 1e6:.1f} MB of products each, {m.cycles_per_day:g} cycles a day"
        + (f"; training {m.training_seconds / 3600:.2f} h" if m.training_seconds else ""),
        f"{'item':<22} {'per day':>10} {'per month':>11}",
    ]
    for item, c in costs.items():
        lines.append(f"{item:<22} {c['day']:>10.2f} {c['month']:>11.2f}")
    if placeholder:
        lines.append("prices: placeholders (see docs/deployment.md); give yours with --prices FILE")
    return "\n".join(lines)
