"""What ``probcast data check`` reports, applied to the training rows: units, constant columns.

A table can pass validation (every value inside its variable's physical range) and still
train a useless model without a word: precipitation in metres (0.0004 is a possible amount)
gives products labelled mm whose every probability of 0.5 mm is 0; a target observed as one
value on every row trains to a validation CRPS near zero and forecasts that value with no
spread. :func:`check_training_rows` looks at the usable training rows
(:func:`probcast.features.usable_rows`) before anything is fitted:

* values of an unusual size for their variable (:func:`probcast.plausibility.unusual_magnitude`,
  worded as ``probcast data check`` words it) in a target's ``obs_``/``fc_`` column or
  another raw predictor ``fc_*``: a warning naming the file, the column and the hint;
* a raw forecast ``fc_*`` (a target's or another predictor's) with a single value on every
  row: a warning (the network learns nothing from it; a broken feed?);
* a target whose observations take a single value on every training row that has one: an
  error naming the file, the column, the value and the ways out (check the observations,
  or leave the target out with ``data.targets``).

Fewer than :data:`probcast.plausibility.MIN_VALUES` values (non-zero ones for a
precipitation median): no judgement. The warnings are also recorded under
``data_warnings`` in the run's ``summary.json`` (:func:`record_findings`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.io import write_json
from probcast.plausibility import constant_value, unusual_magnitude
from probcast.ranges import ranged_variable
from probcast.schema import FC_PREFIX, OBS_PREFIX
from probcast.train.check import DataError

log = logging.getLogger(__name__)

SUMMARY_KEY = "data_warnings"
"""Key of the findings in ``summary.json``."""


def _columns(table: pd.DataFrame, targets: Sequence[str]) -> list[str]:
    """Each target's ``obs_``/``fc_`` columns, then the other raw predictors ``fc_*``."""
    own = [c for v in targets for c in (OBS_PREFIX + v, FC_PREFIX + v) if c in table.columns]
    fc = [str(c) for c in table.columns if str(c).startswith(FC_PREFIX) and c not in own]
    return own + fc


def check_training_rows(table: pd.DataFrame, targets: Sequence[str], source: str) -> list[str]:
    """Warn of suspect units and constant raw forecasts; refuse a constant target.

    Args:
        table: The usable training rows (every fit and validation row).
        targets: The target variables.
        source: The data file (or dataset) for messages.

    Returns:
        The warning lines logged, each naming ``source`` and the column.

    Raises:
        DataError: A target's observations take a single value on every training row
            with an observation (at least :data:`~probcast.plausibility.MIN_VALUES`).
    """
    findings: list[str] = []
    constant: list[tuple[str, float, int]] = []
    for col in _columns(table, targets):
        values = table[col].to_numpy(dtype="float64")
        var = ranged_variable(col)
        hint = unusual_magnitude(values, var) if var else None
        if hint:
            findings.append(f"{source}: {col}: {hint}")
        value = constant_value(values)
        if value is None:
            continue
        n = int(np.isfinite(values).sum())
        if col.startswith(OBS_PREFIX):
            constant.append((col.removeprefix(OBS_PREFIX), value, n))
        else:
            findings.append(
                f"{source}: {col}: constant value {value:g} on all {n} training rows with a "
                "value: the network learns nothing from it (a broken or placeholder feed?)"
            )
    for line in findings:
        log.warning("%s", line)
    if constant:
        raise DataError(_constant_targets(constant, targets, source))
    return findings


def _constant_targets(
    constant: list[tuple[str, float, int]], targets: Sequence[str], source: str
) -> str:
    named = "; ".join(
        f"column {OBS_PREFIX + v!r} takes the single value {value:g} on all {n} training "
        "rows with an observation"
        for v, value, n in constant
    )
    others = [v for v in targets if v not in {c[0] for c in constant}]
    way = (
        f"or leave it out: --config.data.targets={','.join(others)}"
        if others
        else "or train on data where it varies"
    )
    return (
        f"{source}: {named}: a model cannot learn a forecast distribution from a constant "
        f"target (it would forecast that value with no spread); check the observations "
        f"(missing values written as {constant[0][1]:g}? the wrong column?), {way}"
    )


def record_findings(workdir: Path, findings: Sequence[str]) -> None:
    """Add the findings to the run's ``summary.json`` (``data_warnings``); none: unchanged."""
    if not findings:
        return
    path = Path(workdir) / "summary.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    write_json(path, {**data, SUMMARY_KEY: list(findings)})


__all__ = ["SUMMARY_KEY", "check_training_rows", "record_findings"]
