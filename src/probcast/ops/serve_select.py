"""Which rows a ``POST /forecast`` asks for, and whether its answer is within the limits.

:func:`rows_of` finds the input rows of the stations (or of the station or grid point
nearest each point) and lead times asked for (duplicate lead times count once);
:func:`check_size` refuses lead times the cycle lacks (``404``) and an answer over the row
limit or the value limit (rows x columns, ``413`` naming the limit and how to split).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fastapi import HTTPException

from probcast.ops.serve_limits import Limits, too_many_cells
from probcast.ops.serve_points import CycleInput, PointError

KEYS = ["station", "init_time", "lead_time", "valid_time"]


def rows_of(
    cycle: CycleInput, query: Any, limits: Limits, source: str, model: Any
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str], list[float]]:
    """The input rows, the points' ``(point, station, distance_km)``, the rows to answer.

    The last two are the stations (or grid points) and the lead times the answer has a row
    for, whether or not the input has one.
    """
    mapping = None
    ids: list[str] | None = None
    if query.points is not None:
        if cycle.index is None:
            raise HTTPException(422, cycle.extra["no_index"])
        lat = [p.latitude for p in query.points]
        lon = [p.longitude for p in query.points]
        reach = min(limits.max_distance_km, float(cycle.extra.get("reach_km", np.inf)))
        try:
            pos, dist = cycle.index.nearest(lat, lon, reach, source)
        except PointError as err:
            raise HTTPException(422, str(err)) from err
        ids = [str(s) for s in cycle.index.ids[pos]]
        mapping = pd.DataFrame(
            {"point": np.arange(len(pos)), "station": ids, "distance_km": np.round(dist, 3)}
        )
    elif query.stations is not None:
        ids = list(dict.fromkeys(query.stations))
        known = cycle.extra.get("stations") or _positions(cycle)
        unknown = [s for s in ids if s not in known]
        if unknown:
            raise HTTPException(404, f"unknown stations in {source}: {unknown[:20]}")
    if cycle.kind == "grid":
        if ids is None:
            raise HTTPException(422, f"{source} is a grid: give stations (y<j>x<i>) or points")
        where = _positions(cycle)
        table = _grid_rows(cycle, [where[s] for s in dict.fromkeys(ids)], model, source)
    else:
        assert cycle.table is not None
        table = cycle.table
        if ids is not None:
            table = table[table["station"].isin(set(ids))]
    asked = None if query.lead_times is None else list(dict.fromkeys(map(float, query.lead_times)))
    if asked is not None:
        table = table[table["lead_time"].isin(asked)]
    if ids is None:  # every station of a station-table cycle
        assert cycle.table is not None
        ids = list(dict.fromkeys(cycle.table["station"]))
    leads = asked if asked is not None else _cycle_leads(cycle)
    return table.reset_index(drop=True), mapping, list(dict.fromkeys(ids)), list(leads)


def _cycle_leads(cycle: CycleInput) -> list[float]:
    """The lead times (hours) of a cycle's input (found once per input)."""
    if "leads" not in cycle.extra:
        if cycle.table is not None:
            hours = pd.unique(cycle.table["lead_time"].dropna().to_numpy(dtype=float))
        else:
            fp = cycle.dataset["forecast_period"].values.ravel()
            hours = fp / np.timedelta64(1, "h") if np.issubdtype(fp.dtype, np.timedelta64) else fp
        cycle.extra["leads"] = sorted(float(h) for h in hours)
    leads: list[float] = cycle.extra["leads"]
    return leads


def _positions(cycle: CycleInput) -> dict[str, int]:
    """Station id -> position in the cycle's index (built once per input)."""
    if "positions" not in cycle.extra:
        assert cycle.index is not None
        cycle.extra["positions"] = {str(s): k for k, s in enumerate(cycle.index.ids)}
    positions: dict[str, int] = cycle.extra["positions"]
    return positions


def _grid_rows(cycle: CycleInput, nodes: list[int], model: Any, source: str) -> pd.DataFrame:
    from probcast.ops.serve_grid import model_rows
    from probcast.predict.grid_checks import GridPredictError

    try:
        return model_rows(cycle, nodes, model, source)
    except GridPredictError as err:  # the pipeline's model does not fit its grid
        raise HTTPException(503, str(err)) from err


def check_size(
    cycle: CycleInput,
    mapping: pd.DataFrame | None,
    ids: list[str],
    leads: list[float],
    limits: Limits,
    columns: int = 0,
) -> None:
    """Lead times the cycle has none of are a 404; an answer over the row or value limit a 413.

    ``columns``: of the answer (:func:`answer_columns`).
    """
    have = set(_cycle_leads(cycle))
    absent = [h for h in leads if float(h) not in have]
    if absent:
        raise HTTPException(
            404, f"lead time(s) {absent[:20]} h not in the cycle (it has {sorted(have)[:50]} h)"
        )
    n = (len(mapping) if mapping is not None else len(ids)) * len(leads)
    if n > limits.max_rows:
        raise HTTPException(413, f"{n} rows asked for; at most {limits.max_rows} a request")
    if n * columns > limits.max_cells:
        raise HTTPException(413, too_many_cells(n, columns, limits.max_cells))


def answer_columns(model: Any, query: Any) -> int:
    """The columns of the answer to ``query``.

    Keys, parameters, members, quantiles, probabilities, sources, applicability; ``point``
    and ``distance_km`` for points.
    """
    from probcast import defaults, dists

    levels = len({float(q) for q in query.quantiles})
    bare = not (query.members or levels)  # then targets without a family get members
    n = len(KEYS) + 1 + (2 if query.points is not None else 0)
    for var, head in model.heads.items():
        members = int(query.members)
        if bare and not model.pooled_params_are_predictive(var):
            members = defaults.MEMBERS
        n += members + levels + len(query.thresholds.get(var, ())) + 1
        if query.params and var in model.parametric:
            try:
                n += len(dists.get(head).param_names)
            except (KeyError, ValueError, AttributeError):
                n += 2
    return n
