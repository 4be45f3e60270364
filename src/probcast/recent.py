"""Recent forecast errors known at initialisation time, as predictors (``err_<var>``).

A station's forecast errors persist for days (a heat wave, a snow cover, an inversion the
model misses), and operational post-processing has long used them: decaying-average bias
correction, Kalman filters. ``err_<var>`` is, for each row, the mean of ``obs - fc`` of
that station over the ``hours`` before the most recent observation available at the row's
initialisation time: only observations valid at or before ``init_time`` and before the
row's own valid time enter (no leakage: a lead-0 row's observation at ``init_time`` is its
own target, so it and every other observation of that time are left out), each valid time
once (the error of its shortest lead), and a station whose last observation is more than
``hours`` old gets NaN.

Where the observations are not in the table (an operational cycle's input), the value is
missing: the feature spec imputes it with its missing-value indicator, and training
masks it on a fraction of the fit rows (:func:`mask`) so that the network has learned to
do without it. A table that brings its own ``err_<var>`` columns keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PREFIX = "err_"
MASK_FRACTION = 0.2
"""Fraction of fit rows whose recent errors are hidden in training (:func:`mask`)."""


def columns(targets: Sequence[str]) -> list[str]:
    """The recent-error column of every target."""
    return [PREFIX + v for v in targets]


def valid_times(table: pd.DataFrame) -> pd.Series:
    """The UTC valid time of every row: ``valid_time``, else ``init_time + lead_time`` hours.

    Times given as strings or naive timestamps are read as UTC.
    """
    if "valid_time" in table.columns:
        return pd.to_datetime(table["valid_time"], utc=True)
    init = pd.to_datetime(table["init_time"], utc=True)
    return init + pd.to_timedelta(table["lead_time"].astype("float64"), unit="h")


def recent_errors(table: pd.DataFrame, var: str, hours: float) -> np.ndarray:
    """``err_<var>`` of every row of ``table`` (NaN where no recent observation).

    Args:
        table: Canonical station table with ``station``, ``init_time``, ``lead_time``,
            ``fc_<var>``, (for values) ``obs_<var>`` and optionally ``valid_time``.
        var: Target variable.
        hours: Averaging window and the oldest usable observation, in hours.
    """
    return _Rows(table).errors(table, var, hours)


class _Rows:
    """What every target's recent errors share: station codes, times and one sort.

    Events (one per station and valid time, the shortest lead's) are found in the rows
    sorted by station, valid time and lead; the window means and the lookup at each row's
    initialisation time are then searches within each station's sorted events (NumPy, no
    per-row Python, one sort for all targets: a national table has tens of millions of rows).
    """

    def __init__(self, table: pd.DataFrame) -> None:
        station = table["station"]
        if not pd.api.types.is_string_dtype(station):  # ids as text: 7 and "7" are one
            station = station.astype(str)
        codes = pd.factorize(station.to_numpy(), use_na_sentinel=False)[0]
        valid = _nanoseconds(valid_times(table))
        init = _nanoseconds(pd.to_datetime(table["init_time"], utc=True))
        lead = table["lead_time"].to_numpy(dtype="float64")
        order = np.lexsort((lead, valid, codes))  # stable: ties keep row order
        self.order = order[valid[order] != _NAT]
        self.valid, self.codes = valid[self.order], codes[self.order]  # in that order
        by_station = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=codes.max(initial=-1) + 1))
        self.rows = np.split(by_station, bounds[:-1])  # each station's rows
        # the latest usable valid time of each row: its initialisation time, or just before
        # its own valid time where that is earlier (lead 0: the row's target itself)
        cutoff = np.where((valid != _NAT) & (valid <= init), valid - 1, init)
        cutoff[init == _NAT] = _NAT
        self.init = [cutoff[r] for r in self.rows]

    def errors(self, table: pd.DataFrame, var: str, hours: float) -> np.ndarray:
        """``err_<var>`` of every row (see :func:`recent_errors`)."""
        out = np.full(len(table), np.nan)
        fc, obs = f"fc_{var}", f"obs_{var}"
        if fc not in table.columns or obs not in table.columns or not len(table):
            return out
        err = (table[obs] - table[fc]).to_numpy(dtype="float64")[self.order]
        keep = np.isfinite(err)
        err, valid, code = err[keep], self.valid[keep], self.codes[keep]
        first = np.ones(len(err), dtype=bool)  # the shortest lead of each station, valid time
        first[1:] = (code[1:] != code[:-1]) | (valid[1:] != valid[:-1])
        err, code, valid = err[first], code[first], valid[first]
        window = round(hours * 3600e9)
        starts = np.searchsorted(code, np.arange(len(self.rows) + 1))
        for s, rows in enumerate(self.rows):
            a, b = starts[s], starts[s + 1]
            if a == b:
                continue
            v = valid[a:b]
            total = np.concatenate([[0.0], np.cumsum(err[a:b])])
            lo = np.searchsorted(v, v - window, side="right")  # window (t - hours, t]
            n = np.arange(1, b - a + 1)
            mean = (total[n] - total[lo]) / (n - lo)
            t = self.init[s]
            k = np.searchsorted(v, t, side="right") - 1  # last event valid by the cutoff
            hit = (k >= 0) & (t != _NAT)
            hit[hit] &= t[hit] - v[k[hit]] <= window
            out[rows[hit]] = mean[k[hit]]
        return out


_NAT = np.iinfo(np.int64).min


def _nanoseconds(times: pd.Series) -> np.ndarray:
    """UTC times as int64 nanoseconds since the epoch (NaT: the int64 minimum)."""
    return np.asarray(times.array.as_unit("ns").asi8)


def with_recent_errors(
    table: pd.DataFrame,
    targets: Sequence[str],
    hours: float,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``table`` with the ``err_<var>`` columns it lacks added (a copy when any is added).

    Args:
        table: Canonical station table.
        targets: Target variables.
        hours: Window (:func:`recent_errors`); 0 adds nothing.
        history: Past rows of the same stations with ``fc_<var>`` and ``obs_<var>`` (e.g.
            the table ``probcast data build`` keeps up to date): their errors count as well
            as the table's own, so an operational cycle's input, which has no observations,
            gets its recent errors from them.
    """
    if hours <= 0:
        return table
    todo = [v for v in targets if PREFIX + v not in table.columns]
    if not todo:
        return table
    both = table if history is None or not len(history) else _stacked(history, table, todo)
    first = len(both) - len(table)  # the table's rows come last
    rows = _Rows(both)
    new = {PREFIX + var: rows.errors(both, var, hours)[first:] for var in todo}
    out = pd.concat([table, pd.DataFrame(new, index=table.index)], axis=1)
    out.attrs = dict(table.attrs)  # concat keeps only attrs that every part has
    return out


def again(table: pd.DataFrame, targets: Sequence[str], hours: float) -> pd.DataFrame:
    """``table`` with its ``err_<var>`` computed again from its own observations alone.

    For the fit rows of a cross-validation fold (every row valid outside the held-out
    block's valid period, :func:`probcast.split.time_blocks`), whose recent errors came from
    the whole table: the rows just after the block averaged the block's own observations.
    Computed again, the block is an outage of the observations for them (NaN where the last
    one before it is older than the window), and nothing of it reaches the fold's network.
    """
    cols = [c for c in columns(targets) if c in table.columns]
    if hours <= 0 or not cols:
        return table
    return with_recent_errors(table.drop(columns=cols), targets, hours)


def _stacked(history: pd.DataFrame, table: pd.DataFrame, targets: Sequence[str]) -> pd.DataFrame:
    """History rows then the table's rows, in the columns the errors need (times in UTC)."""
    wanted = ["lead_time", *(p + v for v in targets for p in ("fc_", "obs_"))]
    parts = [
        frame[[c for c in wanted if c in frame.columns]].assign(
            station=frame["station"].astype(str),
            init_time=pd.to_datetime(frame["init_time"], utc=True),
            valid_time=valid_times(frame),
        )
        for frame in (history, table)
    ]
    return pd.concat(parts, ignore_index=True)


def mask(
    table: pd.DataFrame, targets: Sequence[str], fraction: float = MASK_FRACTION, seed: int = 0
) -> pd.DataFrame:
    """A copy of ``table`` with the recent errors hidden (NaN) on a random ``fraction`` of rows.

    The same rows for every target (an operational input lacks all of them at once).
    """
    cols = [c for c in columns(targets) if c in table.columns]
    if not cols or fraction <= 0:
        return table
    hide = np.random.default_rng(seed).random(len(table)) < fraction
    # only those columns are new: a copy of the whole table (which consolidates its
    # blocks) took 12 s per 8.8 M rows
    return table.assign(**{c: table[c].mask(hide) for c in cols})
