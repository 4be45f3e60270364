"""Applicability: is each prediction row inside the model's training domain?

A row is flagged (column ``applicability`` of the station prediction table, see
:mod:`probcast.products.table`) when

* ``lead``: its lead time lies outside the training lead-time range ``[min, max]``;
* ``station``: its station was not seen in training (it gets the unknown-station embedding);
* ``feature``: an input column lies outside ``[q0.001 - tol * w, q0.999 + tol * w]`` of its
  training values, ``w = q0.999 - q0.001`` (:class:`DomainPolicy` ``tolerance``).

Labels are ``ok`` or the reasons joined by ``+`` (``lead+feature``). Beyond the hard
tolerance (``limit``: the same margins with ``limit`` in place of ``tol``, for lead times
``limit * (max - min)`` past the range) the policy ``extrapolation="refuse"`` raises
:class:`ExtrapolationError` naming the column and its worst value. Lead times that are
hours only after dividing by 3600 (or 60) are always refused with a hint on the unit.

Under the default ``flag`` a row beyond the hard tolerance is predicted and flagged, not
refused (a few longer lead times can be a deliberate extrapolation); a whole input on
another scale (a column in other units, a dead feed, lead times x1000) is refused by
:mod:`probcast.model.scale` unless ``extrapolation="warn"``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from probcast.model.domain import Domain
from probcast.model.options import MODES, DomainPolicy
from probcast.products.table import APPLICABILITY_OK, applicability_labels

log = logging.getLogger(__name__)

_UNITS = (("seconds", 3600.0), ("minutes", 60.0))


class ExtrapolationError(ValueError):
    """Rows far outside the training domain that the policy refuses, or lead times not in hours.

    The message names the column and the worst value.
    """


@dataclasses.dataclass
class Applicability:
    """Per-row result of :func:`check_rows`.

    Attributes:
        lead: Rows with a lead time outside the training range.
        station: Rows at stations unseen in training.
        feature: Rows with an input outside the soft margin.
        columns: Input column -> rows outside its soft margin.
    """

    lead: np.ndarray
    station: np.ndarray
    feature: np.ndarray
    columns: dict[str, int]

    @property
    def labels(self) -> np.ndarray:
        """``ok`` or the reasons joined by ``+``, one per row."""
        return applicability_labels(self.lead, self.station, self.feature)

    @property
    def flagged(self) -> int:
        """Rows outside the training domain."""
        return int((self.lead | self.station | self.feature).sum())


def _bounds(lo: float, hi: float, margin: float) -> tuple[float, float]:
    width = hi - lo
    if width <= 0.0:
        width = 1e-6 * max(1.0, abs(hi))
    return lo - margin * width, hi + margin * width


def _worst(
    values: np.ndarray, lo: float, hi: float, table: pd.DataFrame
) -> tuple[float, str] | None:
    """The value farthest outside ``[lo, hi]`` and its row, or ``None``."""
    with np.errstate(invalid="ignore"):
        excess = np.where(values < lo, lo - values, np.where(values > hi, values - hi, 0.0))
    excess = np.where(np.isfinite(excess), excess, 0.0)
    if not (excess > 0).any():
        return None
    i = int(np.argmax(excess))
    keys = [f"{k}={table[k].iloc[i]}" for k in ("station", "init_time") if k in table.columns]
    return float(values[i]), f"row {i}" + (f" ({', '.join(keys)})" if keys else "")


def check_lead_unit(domain: Domain, lead: np.ndarray, policy: DomainPolicy) -> None:
    """Refuse lead times that are hours only after a unit conversion (seconds, minutes).

    The reading applies when every positive lead time lies beyond the hard tolerance and,
    divided by 3600 (or 60), all lie within the soft one (whole hours inside the training
    range preferred).

    Raises:
        ExtrapolationError: Naming the column, the worst value and the unit it looks like.
    """
    hard = _bounds(domain.lead_min, domain.lead_max, policy.limit)
    lo, hi = _bounds(domain.lead_min, domain.lead_max, policy.tolerance)
    lead = lead[np.isfinite(lead) & (lead > 0)]
    if not lead.size or lead.min() <= hard[1] or domain.lead_max <= 0:
        return
    fits = []
    for unit, factor in _UNITS:
        scaled = lead / factor
        if lo <= scaled.min() and scaled.max() <= hi:
            whole = bool(np.allclose(scaled, np.round(scaled), atol=1e-6))
            fits.append((not whole, unit, factor))
    if fits:
        _, unit, factor = min(fits, key=lambda f: f[0])
        worst = float(lead.max())
        raise ExtrapolationError(
            f"column 'lead_time': values up to {worst:g} lie far outside the training "
            f"lead times [{domain.lead_min:g}, {domain.lead_max:g}] h; they look like "
            f"{unit} ({worst:g} {unit} = {worst / factor:g} h): give lead_time in hours"
        )


def check_rows(
    domain: Domain,
    table: pd.DataFrame,
    policy: DomainPolicy,
    *,
    columns: Sequence[str] = (),
    stations: Sequence[str] | None = None,
) -> Applicability:
    """Compare each row of ``table`` with the training domain.

    Args:
        domain: The model's training domain.
        table: Canonical station table of the prediction rows.
        policy: Tolerances and what to do beyond the hard one.
        columns: Input columns to check (default: every column of the domain in ``table``).
        stations: Known stations (default the domain's; prediction passes the feature
            spec's vocabulary, whose unknown stations get the unknown-station embedding).

    Returns:
        The per-row flags (NaN inputs are not flagged: they are the fallbacks' business).

    Raises:
        ExtrapolationError: Lead times in another unit, or (``refuse``) a row beyond the
            hard tolerance (the message names the column and the worst value).
    """
    lead = table["lead_time"].to_numpy(dtype="float64")
    check_lead_unit(domain, lead, policy)
    refuse = policy.mode == "refuse"
    hard = _bounds(domain.lead_min, domain.lead_max, policy.limit)
    if refuse and (worst := _worst(lead, *hard, table)):
        _refuse("lead_time", worst, (domain.lead_min, domain.lead_max), policy)
    flags = {
        "lead": (lead < domain.lead_min) | (lead > domain.lead_max),
        "station": ~table["station"].astype(str).isin(set(stations or domain.stations)).to_numpy(),
        "feature": np.zeros(len(table), dtype=bool),
    }
    counts: dict[str, int] = {}
    for col in columns or [c for c in domain.features if c in table.columns]:
        if col not in domain.features or col not in table.columns:
            continue
        q_lo, q_hi = domain.quantile(col, 0.001), domain.quantile(col, 0.999)
        values = table[col].to_numpy(dtype="float64")
        if refuse and (worst := _worst(values, *_bounds(q_lo, q_hi, policy.limit), table)):
            _refuse(col, worst, (q_lo, q_hi), policy)
        lo, hi = _bounds(q_lo, q_hi, policy.tolerance)
        with np.errstate(invalid="ignore"):
            out = (values < lo) | (values > hi)
        if out.any():
            counts[col] = int(out.sum())
            flags["feature"] |= out
    return Applicability(flags["lead"], flags["station"], flags["feature"], counts)


def _refuse(
    column: str, worst: tuple[float, str], trained: tuple[float, float], policy: DomainPolicy
) -> None:
    what = "lead times" if column == "lead_time" else "q0.001-q0.999"
    raise ExtrapolationError(
        f"column {column!r}: value {worst[0]:g} at {worst[1]} lies beyond the hard tolerance "
        f"of the training domain (training {what} [{trained[0]:g}, {trained[1]:g}], limit "
        f"{policy.limit:g} x their width); extrapolation='refuse' (use 'flag' to predict "
        f"such rows with the applicability flag)"
    )


def report(result: Applicability, rows: int) -> str | None:
    """One warning line with the counts, or ``None`` when every row is in the domain."""
    if not result.flagged:
        return None
    cols = ", ".join(f"{c} {n}" for c, n in sorted(result.columns.items()))
    return (
        f"{result.flagged} of {rows} rows outside the training domain: lead time "
        f"{int(result.lead.sum())}, unseen station {int(result.station.sum())}, input "
        f"{int(result.feature.sum())}" + (f" ({cols})" if cols else "")
    )


__all__ = [
    "APPLICABILITY_OK",
    "MODES",
    "Applicability",
    "DomainPolicy",
    "ExtrapolationError",
    "check_lead_unit",
    "check_rows",
    "report",
]
