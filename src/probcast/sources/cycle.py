"""One forecast cycle at the stations: collect decoded fields, de-accumulate, derive.

:class:`CycleFields` is what every NWP source returns for one initialisation; its
:meth:`CycleFields.table` turns it into the forecast half of the canonical station table
(``fc_<var>`` per station and lead time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probcast.sources import deaccum
from probcast.sources.errors import SourceError, WrongRunError
from probcast.sources.grib import Field
from probcast.sources.variables import derive, grib_variable, to_canonical

ACCUMULATED = ("tp",)


@dataclass
class CycleFields:
    """Station values of one cycle.

    Attributes:
        init_time: Initialisation (UTC).
        instant: variable -> step (h) -> values (canonical units), for instantaneous fields
            and for fields over a period ending at the step (gusts, max/min).
        windows: accumulated variable -> ``(start_h, end_h)`` -> values (kg m-2).
        orog: Model surface height at the stations (m), when the model gives it.
        missing: Human-readable notes of files/messages that were not found.
        unavailable: The notes of ``missing`` about files that could not be read (not
            published yet, an HTTP error or timeout, a file of another run): a later
            build may find them, so ``data build`` rebuilds such a cycle on a rerun.
    """

    init_time: pd.Timestamp
    instant: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)
    windows: dict[str, dict[tuple[float, float], np.ndarray]] = field(default_factory=dict)
    orog: np.ndarray | None = None
    missing: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)

    def unavailable_file(self, note: str) -> None:
        """Note a file that could not be read (see ``unavailable``)."""
        self.missing.append(note)
        self.unavailable.append(note)

    def check_run(self, f: Field, *, source: str) -> None:
        """Refuse a field of another run than :attr:`init_time` (GRIB dataDate/dataTime).

        Raises:
            WrongRunError: Naming the file, the field's run and the run asked for.
        """
        run = f.init_time
        if run is None or pd.isna(run):
            return
        run = pd.Timestamp(run)
        run = run.tz_localize("UTC") if run.tzinfo is None else run.tz_convert("UTC")
        asked = pd.Timestamp(self.init_time)
        asked = asked.tz_localize("UTC") if asked.tzinfo is None else asked.tz_convert("UTC")
        if run != asked:
            raise WrongRunError(
                f"{source}: a file of the run {run:%Y-%m-%d %H:%M} UTC ({f.short_name} "
                f"dataDate/dataTime), not of the run asked for, {asked:%Y-%m-%d %H:%M} UTC: "
                "refused for this cycle"
            )

    def add(self, f: Field, *, source: str) -> None:
        """Add a decoded field (ignored when it is not a variable we use).

        Raises:
            WrongRunError: If the field is of another run (:meth:`check_run`).
        """
        self.check_run(f, source=source)
        var = grib_variable(f.short_name, f.level_type)
        if var is None:
            return
        values = to_canonical(f.values, f.units, var, source=f"{source}: {f.short_name}")
        if var == "orog":
            self.orog = values
        elif var in ACCUMULATED:
            # ECMWF writes tp as an instantaneous-looking field at one step: it is the
            # accumulation since initialisation, i.e. the window [0, step].
            start = 0.0 if f.start_step == f.end_step else f.start_step
            _put(self.windows.setdefault(var, {}), (start, f.end_step), values, var, source)
        else:
            _put(self.instant.setdefault(var, {}), f.end_step, values, var, source)

    def extend(self, fields: Iterable[Field], *, source: str) -> None:
        """Add several fields; none when one is of another run (all are checked first).

        Raises:
            WrongRunError: If a field is of another run (:meth:`check_run`).
        """
        fields = list(fields)
        for f in fields:
            self.check_run(f, source=source)
        for f in fields:
            self.add(f, source=source)

    def table(
        self,
        stations: Sequence[str],
        leads: Sequence[float],
        variables: Sequence[str],
        *,
        accumulation_hours: float,
    ) -> tuple[pd.DataFrame, list[str]]:
        """Forecast rows: one per station and lead, ``fc_<var>`` columns.

        Args:
            stations: Station ids, in the order of the value arrays.
            leads: Lead times (hours).
            variables: Variables asked for (derived ones are computed here).
            accumulation_hours: Period of accumulated variables: ``fc_tp`` at lead L is the
                amount over ``[L - accumulation_hours, L]``.

        Returns:
            ``(table, missing)``: the rows and notes of (variable, lead) pairs not available.
        """
        n = len(stations)
        frames, missing = [], list(self.missing)
        for lead in leads:
            values: dict[str, np.ndarray] = {
                var: steps[lead] for var, steps in self.instant.items() if lead in steps
            }
            for var, windows in self.windows.items():
                amount = deaccum.amount(windows, lead - accumulation_hours, lead)
                if amount is not None:
                    values[var] = amount
            values = derive(values, list(variables))
            cols: dict[str, object] = {
                "station": list(stations),
                "init_time": self.init_time,
                "lead_time": float(lead),
            }
            for var in variables:
                if var in values:
                    cols[f"fc_{var}"] = np.asarray(values[var], dtype="float64")
                else:
                    cols[f"fc_{var}"] = np.full(n, np.nan)
                    missing.append(f"{var} at +{lead:g} h")
            frames.append(pd.DataFrame(cols))
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if not table.empty:
            table["init_time"] = pd.to_datetime(table["init_time"], utc=True)
            table["valid_time"] = table["init_time"] + pd.to_timedelta(table["lead_time"], "h")
        return table, missing


def _put(into: dict, key: object, values: np.ndarray, var: str, source: str) -> None:
    """Store one field; a second, different field for the same variable and step is an error.

    An ensemble GRIB file holds one message per member (``number``) for every step: taking
    the last one silently made one member the forecast.
    """
    old = into.get(key)
    if old is not None and not np.array_equal(old, values, equal_nan=True):
        raise SourceError(
            f"{source}: several different {var} fields for the step {key} h of one run "
            "(ensemble members, other levels or a duplicate): give one deterministic field "
            "per step (e.g. select the control member with grib_copy -w number=0)"
        )
    into[key] = values
