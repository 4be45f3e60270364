"""The fault-injection demonstration: a clean and a faulty replay of one benchmark set.

Thresholds are calibrated on the reference (training) period itself, never on the replayed
test period: the drift thresholds are ``margin`` x the largest PSI, KS and spread-ratio
departure of the training period's own rolling windows (weather moves the raw inputs a lot
from one day to the next, and that is not drift), the bias-shift threshold likewise from
its rolling raw errors; the skill floors and the PIT threshold are the configured values.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from probcast.baselines.emos import EmosModel
from probcast.monitor import replay as rp
from probcast.monitor.baseline import fit_references
from probcast.monitor.config import MonitorConfig, SkillConfig
from probcast.monitor.reference import reference_from_table
from probcast.monitor.skill import References


def model_forecaster(workdir: str | Path) -> rp.Forecaster:
    """Forecasts of a trained model (``probcast predict``'s station path, parameters only)."""
    from probcast.model.artefact import load
    from probcast.predict.station import predict_stations

    model = load(workdir)

    def forecast(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        pred = predict_stations(model, rows)
        return pred.table, pred.families

    return forecast


def calibrated_config(
    train: pd.DataFrame,
    variables: Sequence[str],
    *,
    window_days: float = 3.0,
    drift_window: int = 3,
    margin: float = 1.1,
    pit_max_dev: float = 0.1,
) -> tuple[MonitorConfig, dict[str, Any], References, dict[str, list[float]]]:
    """Thresholds from the training period, the reference and the EMOS / error references.

    Returns:
        ``(config, reference dict, EMOS references, raw error reference)``.
    """
    reference = reference_from_table(train)
    fitted = fit_references(train, variables)
    errors = fitted["errors"]
    skill = SkillConfig(
        window_days=window_days,
        nwp_window_days=window_days,
        pit_max_dev=pit_max_dev,
        bias_shift=rp.calibrate_bias(train, errors, window_days, margin),
    )
    cfg = MonitorConfig(skill=skill)
    cfg = dataclasses.replace(
        cfg, drift=rp.calibrate_drift(train, reference, cfg.drift, drift_window, margin)
    )
    refs = References(emos={v: EmosModel.from_dict(d) for v, d in fitted["emos"].items()})
    return cfg, reference, refs, errors


def run(
    train: pd.DataFrame,
    test: pd.DataFrame,
    forecaster: rp.Forecaster,
    fault: rp.Fault,
    *,
    window_days: float = 3.0,
    drift_window: int = 3,
    max_cycles: int | None = None,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """A clean and a faulty replay of ``test`` with calibrated thresholds.

    Returns:
        ``{"config", "fault", "rows"}``: ``rows`` has one entry per alert seen in either
        replay: first firing cycle after the fault (None: never), false alarms before the
        fault in the faulty replay and over the whole clean replay.
    """
    var = fault.column.removeprefix("fc_")
    cfg, reference, refs, errors = calibrated_config(
        train, [var], window_days=window_days, drift_window=drift_window
    )
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="probcast-replay-"))
    results = {}
    for label, flt in (("clean", None), ("fault", fault)):
        results[label] = rp.replay(
            test,
            rp.precomputed(test, forecaster, flt),
            reference,
            cfg,
            root / label,
            fault=flt,
            refs=refs,
            error_ref=errors,
            drift_window=drift_window,
            max_cycles=max_cycles,
        )
    kinds = sorted(set(results["clean"].kinds()) | set(results["fault"].kinds()))
    clean = {r["alert"]: r for r in results["clean"].summary(kinds)}
    rows = []
    for r in results["fault"].summary(kinds):
        rows.append({**r, "clean_replay_alarms": clean[r["alert"]]["false_alarms"]})
    return {
        "config": dataclasses.asdict(cfg),
        "fault": fault.label(),
        "cycles": len(results["fault"].cycles),
        "rows": rows,
        "results": results,
    }
