"""Rolling skill of the scored cases, and the alerts it raises.

Over the cases issued in the last ``window_days`` (ending at the latest issue time scored):
CRPS, CRPSS against the raw forecast and EMOS (:func:`probcast.verify.skill.skill_score`
on the cases both have) and the PIT histogram with its largest bin deviation
(:mod:`probcast.verify.calibration`), per variable, per lead group and per station group.
Alerts (per variable, on the whole window, only with ``min_cases`` cases or more):

- ``crpss_raw`` / ``crpss_emos``: rolling CRPSS below its floor (``crpss_floor``), with
  ``min_cases`` cases that have both the forecast's and the reference's CRPS;
- ``pit``: the PIT histogram's largest bin deviation above ``pit_max_dev``;
- ``nwp_bias``: the mean raw error ``fc - obs`` of the last ``nwp_window_days`` moved more
  than ``bias_shift`` reference error standard deviations from the reference mean: a
  *possible NWP model change* (the reference: the training table's errors, else the first
  ``window_days`` of the state's own cases).

A check that cannot be made (too few cases, no raw forecast ``fc_<var>``, no EMOS
reference, no floor) is listed in :attr:`SkillResult.not_evaluated` with the reason; only
the checks in :attr:`SkillResult.checked` may say "clear".
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from probcast.monitor.config import REFERENCES, SkillConfig
from probcast.verify.calibration import flatness, histogram
from probcast.verify.skill import skill_score


def lead_group(lead: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Label of each lead time: ``0-24h``, ``24-48h``, ..., ``>240h`` (upper edges included)."""
    bounds = (0.0, *edges)
    labels = [f"{lo:g}-{hi:g}h" for lo, hi in itertools.pairwise(bounds)]
    labels.append(f">{bounds[-1]:g}h")
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), np.asarray(lead), side="left")
    return np.asarray(labels, dtype=object)[idx]


@dataclass
class GroupSkill:
    """Rolling skill of one group of cases.

    Attributes:
        variable: Variable.
        lead_group: Lead-time group label (``all``: every lead).
        station_group: Station group (``all``: every station).
        n: Cases.
        crps: Mean CRPS of the forecasts.
        crps_raw: Mean CRPS of the raw forecast (NaN: no raw reference).
        crps_emos: Mean CRPS of EMOS (NaN: no EMOS reference).
        crpss_raw: CRPSS against the raw forecast (paired cases).
        crpss_emos: CRPSS against EMOS.
        n_raw: Cases with both the forecast's and the raw forecast's CRPS.
        n_emos: Cases with both the forecast's and EMOS's CRPS.
        pit_counts: PIT histogram counts.
        pit_max_dev: Largest deviation of a PIT bin's frequency from uniform.
    """

    variable: str
    lead_group: str
    station_group: str
    n: int
    crps: float
    crps_raw: float
    crps_emos: float
    crpss_raw: float
    crpss_emos: float
    pit_counts: list[int]
    pit_max_dev: float
    n_raw: int = 0
    n_emos: int = 0


def _mean(x: pd.Series) -> float:
    v = x.to_numpy(dtype="float64")
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def group_skill(cases: pd.DataFrame, var: str, lead: str, group: str, bins: int) -> GroupSkill:
    """The :class:`GroupSkill` of ``cases``."""
    counts = histogram(cases["pit"].to_numpy(dtype="float64"), bins)
    crps = cases["crps"].to_numpy(dtype="float64")
    return GroupSkill(
        variable=var,
        lead_group=lead,
        station_group=group,
        n=int(np.isfinite(crps).sum()),
        crps=_mean(cases["crps"]),
        crps_raw=_mean(cases["crps_raw"]),
        crps_emos=_mean(cases["crps_emos"]),
        crpss_raw=skill_score(crps, cases["crps_raw"].to_numpy(dtype="float64")),
        crpss_emos=skill_score(crps, cases["crps_emos"].to_numpy(dtype="float64")),
        pit_counts=[int(c) for c in counts],
        pit_max_dev=flatness(counts).max_dev,
        n_raw=_paired(crps, cases["crps_raw"]),
        n_emos=_paired(crps, cases["crps_emos"]),
    )


def _paired(crps: np.ndarray, reference: pd.Series) -> int:
    return int((np.isfinite(crps) & np.isfinite(reference.to_numpy(dtype="float64"))).sum())


@dataclass
class BiasCheck:
    """The NWP bias-shift check of one variable.

    Attributes:
        variable: Variable.
        n: Cases in the check window.
        mean_error: Mean raw error ``fc - obs`` over the window.
        reference_mean: Reference mean error.
        reference_sd: Reference error standard deviation.
        shift: ``(mean_error - reference_mean) / reference_sd``.
        reference: Where the reference came from.
    """

    variable: str
    n: int
    mean_error: float
    reference_mean: float
    reference_sd: float
    shift: float
    reference: str


@dataclass
class SkillResult:
    """Rolling skill, the bias checks and the alerts raised.

    Attributes:
        window_start: Issue times after this are in the window (ISO text).
        window_end: Latest issue time scored (ISO text).
        groups: :class:`GroupSkill` rows (``all`` rows first for each variable).
        bias: :class:`BiasCheck` per variable.
        alerts: ``{"kind", "variable", "value", "threshold"}`` per alert.
        checked: ``{"kind", "variable"}`` of every check made (alerting or clear).
        not_evaluated: ``{"kind", "variable", "reason"}`` of every check not made.
        min_cases: The smallest sample a value is judged on (``SkillConfig.min_cases``).
    """

    window_start: str
    window_end: str
    groups: list[GroupSkill]
    bias: list[BiasCheck]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    checked: list[dict[str, str]] = field(default_factory=list)
    not_evaluated: list[dict[str, str]] = field(default_factory=list)
    min_cases: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "groups": [asdict(g) for g in self.groups],
            "nwp_bias": [asdict(b) for b in self.bias],
            "alerts": self.alerts,
            "checked": self.checked,
            "not_evaluated": self.not_evaluated,
        }

    def overall(self, variable: str) -> GroupSkill | None:
        """The all-leads, all-stations row of ``variable``."""
        for g in self.groups:
            if g.variable == variable and g.lead_group == "all" and g.station_group == "all":
                return g
        return None


def error_reference(frame: pd.DataFrame, variables: list[str]) -> dict[str, list[float]]:
    """``{var: [mean, sd]}`` of ``fc_<var> - obs_<var>`` in a (training) table."""
    out: dict[str, list[float]] = {}
    for var in variables:
        fc, ob = f"fc_{var}", f"obs_{var}"
        if fc in frame.columns and ob in frame.columns:
            e = (frame[fc] - frame[ob]).to_numpy(dtype="float64")
            e = e[np.isfinite(e)]
            if e.size > 1 and e.std() > 0:
                out[var] = [float(e.mean()), float(e.std())]
    return out


def _bias(
    cases: pd.DataFrame, var: str, end: pd.Timestamp, cfg: SkillConfig, ref: Mapping[str, Any]
) -> BiasCheck | None:
    own = cases[cases["variable"] == var]
    if var in ref:
        mean, sd = ref[var]
        source = "reference table"
    else:  # the state's first window: the monitor's own early cases
        first = own["init_time"].min()
        e = own.loc[own["init_time"] <= first + pd.Timedelta(days=cfg.window_days), "err_raw"]
        e = e.to_numpy(dtype="float64")
        e = e[np.isfinite(e)]
        if e.size < 2 or not e.std() > 0:
            return None
        mean, sd = float(e.mean()), float(e.std())
        source = f"first {cfg.window_days:g} days of scored cases"
    recent = own.loc[own["init_time"] > end - pd.Timedelta(days=cfg.nwp_window_days), "err_raw"]
    e = recent.to_numpy(dtype="float64")
    e = e[np.isfinite(e)]
    m = float(e.mean()) if e.size else float("nan")
    return BiasCheck(var, int(e.size), m, float(mean), float(sd), (m - mean) / sd, source)


def rolling_skill(
    cases: pd.DataFrame, cfg: SkillConfig, error_ref: Mapping[str, Any] | None = None
) -> SkillResult:
    """Rolling skill over the last ``cfg.window_days`` of ``cases`` and its alerts."""
    if cases.empty:
        return SkillResult("", "", [], [], min_cases=cfg.min_cases)
    end = cases["init_time"].max()
    start = end - pd.Timedelta(days=cfg.window_days)
    win = cases[cases["init_time"] > start].copy()
    win["lead_group"] = lead_group(win["lead_time"].to_numpy(), cfg.lead_groups)
    groups: list[GroupSkill] = []
    bias: list[BiasCheck] = []
    verdicts = Verdicts()
    for var, part in win.groupby("variable", sort=True):
        v = str(var)
        top = group_skill(part, v, "all", "all", cfg.pit_bins)
        groups.append(top)
        for lead, sub in part.groupby("lead_group", sort=True):
            groups.append(group_skill(sub, v, str(lead), "all", cfg.pit_bins))
        if part["station_group"].nunique() > 1:
            for sg, sub in part.groupby("station_group", sort=True):
                groups.append(group_skill(sub, v, "all", str(sg), cfg.pit_bins))
        check = _bias(cases, v, end, cfg, error_ref or {})
        if check is not None:
            bias.append(check)
        _judge(verdicts, top, check, cfg)
    fmt = "%Y-%m-%dT%H:%MZ"
    return SkillResult(
        start.strftime(fmt),
        end.strftime(fmt),
        groups,
        bias,
        verdicts.alerts,
        verdicts.checked,
        verdicts.not_evaluated,
        cfg.min_cases,
    )


@dataclass
class Verdicts:
    """What the checks of a run decided: alerts, checks made, checks not made and why."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    checked: list[dict[str, str]] = field(default_factory=list)
    not_evaluated: list[dict[str, str]] = field(default_factory=list)

    def judge(self, kind: str, var: str, value: float, threshold: float, fires: bool) -> None:
        """Record a check made (and its alert when ``fires``)."""
        self.checked.append({"kind": kind, "variable": var})
        if fires:
            self.alerts.append(
                {"kind": kind, "variable": var, "value": value, "threshold": threshold}
            )

    def skip(self, kind: str, var: str, reason: str) -> None:
        """Record a check that could not be made."""
        self.not_evaluated.append({"kind": kind, "variable": var, "reason": reason})


NO_REFERENCE = {
    "raw": "no raw forecast fc_{var} (in the forecast files or --inputs)",
    "emos": "no EMOS reference (--reference-table or --emos-forecasts)",
}


def _judge(out: Verdicts, top: GroupSkill, check: BiasCheck | None, cfg: SkillConfig) -> None:
    var, need = top.variable, cfg.min_cases
    for ref in REFERENCES:
        kind, floor = f"crpss_{ref}", cfg.crpss_floor.get(ref)
        n, value = getattr(top, f"n_{ref}"), getattr(top, kind)
        if n == 0:
            out.skip(kind, var, NO_REFERENCE[ref].format(var=var))
        elif floor is None:
            out.skip(kind, var, f"no crpss_floor.{ref} configured")
        elif n < need or not np.isfinite(value):
            out.skip(kind, var, f"{n} paired case(s) in the window, fewer than min_cases {need}")
        else:
            out.judge(kind, var, value, floor, value < floor)
    if top.n < need or not np.isfinite(top.pit_max_dev):
        out.skip("pit", var, f"{top.n} case(s) in the window, fewer than min_cases {need}")
    else:
        out.judge("pit", var, top.pit_max_dev, cfg.pit_max_dev, top.pit_max_dev > cfg.pit_max_dev)
    if top.n_raw == 0 and (check is None or check.n == 0):
        out.skip("nwp_bias", var, NO_REFERENCE["raw"].format(var=var))
    elif check is None:
        out.skip("nwp_bias", var, "no raw error reference (--reference-table, or 2+ errors)")
    elif check.n < need or not np.isfinite(check.shift):
        out.skip(
            "nwp_bias",
            var,
            f"{check.n} raw error(s) in the last {cfg.nwp_window_days:g} days, fewer than "
            f"min_cases {need}",
        )
    else:
        out.judge("nwp_bias", var, check.shift, cfg.bias_shift, abs(check.shift) > cfg.bias_shift)
