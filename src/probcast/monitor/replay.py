"""Replay a benchmark test period cycle by cycle, with a fault injected, through the monitor.

Each daily cycle: its input rows (the raw NWP, faulted from the fault's first cycle on) are
forecast and written as a prediction file; input drift is measured on the inputs of the
last ``drift_window`` cycles; observations whose valid time has passed (the cycle's issue
time) are joined to every forecast issued so far and the rolling skill is updated. The
outcome: per alert kind, the first cycle it fires at or after the fault and the number of
cycles it fired on before the fault (false alarms). Used by ``benchmarks/drift_replay.py``
and the test of the monitor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast.monitor import drift, rolling, skill
from probcast.monitor.config import DriftConfig, MonitorConfig
from probcast.monitor.state import MonitorState
from probcast.products.table_files import write_predictions

Forecaster = Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, str]]]
"""Input rows of one cycle -> (prediction table, families), as ``probcast predict`` writes."""


@dataclass(frozen=True)
class Fault:
    """A fault of the NWP input from cycle ``start`` (index into the cycles) on.

    Attributes:
        column: The input column, e.g. ``fc_t2m``.
        kind: ``bias`` (add ``amount``) or ``scale`` (multiply by ``amount``).
        amount: The bias (canonical units) or the factor.
        start: Index of the first faulty cycle.
    """

    column: str
    kind: str
    amount: float
    start: int

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the fault applied to every row."""
        if self.column not in frame.columns:
            raise ValueError(f"fault column {self.column!r} is not in the input")
        out = frame.copy()
        x = out[self.column].to_numpy(dtype="float64")
        out[self.column] = x + self.amount if self.kind == "bias" else x * self.amount
        return out

    def label(self) -> str:
        """Short description, e.g. ``fc_t2m +2`` or ``fc_tp x2``."""
        op = f"{self.amount:+g}" if self.kind == "bias" else f"x{self.amount:g}"
        return f"{self.column} {op} from cycle {self.start}"


@dataclass
class ReplayResult:
    """Alerts of every cycle of a replay.

    Attributes:
        cycles: Issue times, in order.
        alerts: Per cycle, the set of ``"kind:variable"`` alerts holding after it.
        fault: The fault (None: a clean replay).
        details: Per cycle, the drift and skill results (JSON-ready dicts).
    """

    cycles: list[pd.Timestamp]
    alerts: list[set[str]]
    fault: Fault | None
    details: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> list[str]:
        """Every alert seen, sorted."""
        return sorted(set().union(*self.alerts)) if self.alerts else []

    def summary(self, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """Per alert: its first firing after the fault and its false alarms.

        ``first_after_fault``: cycles from the fault's first cycle (0) to the first firing
        at or after it (None: never); ``false_alarms``: cycles it held on before the fault.
        """
        start = self.fault.start if self.fault else len(self.cycles)
        rows = []
        for kind in kinds or self.kinds():
            fired = [i for i, a in enumerate(self.alerts) if kind in a]
            after = [i - start for i in fired if i >= start]
            rows.append(
                {
                    "alert": kind,
                    "first_after_fault": after[0] if after else None,
                    "false_alarms": sum(1 for i in fired if i < start),
                    "clean_cycles": start,
                }
            )
        return rows


def calibrate_drift(
    train: pd.DataFrame, reference: Mapping[str, Any], cfg: DriftConfig, window: int, margin: float
) -> DriftConfig:
    """Drift thresholds from the reference period itself.

    ``margin`` x the largest PSI, KS and spread-ratio departure over the reference period's
    own rolling ``window``-cycle windows: day-to-day weather is not drift.
    """
    times = pd.to_datetime(train["init_time"], utc=True)
    cycles = np.sort(times.unique())
    worst = {"psi": 0.0, "ks": 0.0, "spread": 1.0}
    for i in range(window - 1, len(cycles)):
        rows = train[(times >= cycles[i - window + 1]) & (times <= cycles[i])]
        for f in drift.measure(rows, reference, cfg).pooled:
            worst["psi"] = max(worst["psi"], f.psi)
            worst["ks"] = max(worst["ks"], f.ks)
            if np.isfinite(f.spread_ratio) and f.spread_ratio > 0:
                worst["spread"] = max(worst["spread"], f.spread_ratio, 1.0 / f.spread_ratio)
    return dataclasses.replace(
        cfg,
        psi=worst["psi"] * margin,
        ks=min(1.0, worst["ks"] * margin),
        spread_ratio=worst["spread"] * margin,
    )


def calibrate_bias(
    train: pd.DataFrame, error_ref: Mapping[str, Any], days: float, margin: float
) -> float:
    """Bias-shift threshold from the reference period itself.

    ``margin`` x the largest shift of the mean raw error over the reference period's own
    rolling ``days``-day windows (in reference error standard deviations).
    """
    times = pd.to_datetime(train["init_time"], utc=True)
    worst = 0.0
    for var, (mean, sd) in error_ref.items():
        err = (train[f"fc_{var}"] - train[f"obs_{var}"]).to_numpy(dtype="float64")
        for end in np.sort(times.unique()):
            sel = ((times > end - pd.Timedelta(days=days)) & (times <= end)).to_numpy()
            e = err[sel & np.isfinite(err)]
            if e.size:
                worst = max(worst, abs(float(e.mean()) - mean) / sd)
    return worst * margin


def precomputed(
    table: pd.DataFrame, forecaster: Forecaster, fault: Fault | None = None
) -> Forecaster:
    """A forecaster answering from one forecast of the whole (faulted) ``table``.

    The model is run once (one compilation) instead of once per cycle; the replay passes
    each cycle's rows with their index in ``table``, and gets exactly those forecasts.
    """
    rows = table.copy()
    if fault is not None:
        cycles = sorted(pd.to_datetime(rows["init_time"], utc=True).unique())
        late = pd.to_datetime(rows["init_time"], utc=True) >= cycles[fault.start]
        rows.loc[late] = fault.apply(rows.loc[late])
    obs = [c for c in rows.columns if str(c).startswith("obs_")]
    pred, families = forecaster(rows.drop(columns=obs))

    def lookup(cycle_rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        return pred.loc[cycle_rows.index], families

    return lookup


def replay(
    test: pd.DataFrame,
    forecaster: Forecaster,
    reference: Mapping[str, Any],
    cfg: MonitorConfig,
    workdir: str | Path,
    *,
    fault: Fault | None = None,
    refs: skill.References | None = None,
    error_ref: Mapping[str, Any] | None = None,
    drift_window: int = 1,
    max_cycles: int | None = None,
) -> ReplayResult:
    """Replay ``test`` cycle by cycle through forecasting, drift and skill monitoring.

    Args:
        test: Canonical station table of the test period (with observations).
        forecaster: Forecasts one cycle's input rows.
        reference: The ``domain.json`` dict of the model.
        cfg: Monitor thresholds.
        workdir: Where prediction files and the state go (a fresh folder).
        fault: The injected fault (None: clean).
        refs: EMOS references (the raw input is taken from the replayed inputs).
        error_ref: Reference raw error statistics ``{var: [mean, sd]}``.
        drift_window: Cycles pooled by the drift check.
        max_cycles: Replay only the first cycles.
    """
    root = Path(workdir)
    (root / "forecasts").mkdir(parents=True, exist_ok=True)
    table = test.copy()
    table["init_time"] = pd.to_datetime(table["init_time"], utc=True)
    obs_cols = [c for c in table.columns if str(c).startswith("obs_")]
    observations = skill.observation_table(table)
    cycles = sorted(table["init_time"].unique())[:max_cycles]
    inputs: list[pd.DataFrame] = []
    result = ReplayResult([pd.Timestamp(c) for c in cycles], [], fault)
    with MonitorState(root / "monitor.sqlite") as state:
        for i, cycle in enumerate(result.cycles):
            rows = table[table["init_time"] == cycle].drop(columns=obs_cols)
            if fault is not None and i >= fault.start:
                rows = fault.apply(rows)
            inputs.append(rows)
            pred, families = forecaster(rows)
            name = root / "forecasts" / f"pred_{cycle:%Y%m%d%H}.parquet"
            write_predictions(pred, name, families=families)
            pooled = pd.concat(inputs[-drift_window:], ignore_index=True)
            drift_res = drift.measure(pooled, reference, cfg.drift)
            arrived = observations[observations["valid_time"] <= cycle]
            run_refs = dataclasses.replace(
                refs or skill.References(),
                inputs=skill.with_valid_time(pd.concat(inputs, ignore_index=True)),
            )
            files = skill.forecast_files([root / "forecasts"])
            skill.update(state, files, arrived, run_refs, cfg.skill)
            skill_res = rolling.rolling_skill(state.cases(), cfg.skill, error_ref)
            fired = {f"{k}:{v}" for k, v in drift_res.alerts}
            fired |= {f"{a['kind']}:{a['variable']}" for a in skill_res.alerts}
            result.alerts.append(fired)
            result.details.append({"drift": drift_res.to_dict(), "skill": skill_res.to_dict()})
    return result
