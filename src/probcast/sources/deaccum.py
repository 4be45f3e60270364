"""De-accumulation: precipitation over the period asked for, from any accumulation windows.

Models publish precipitation as accumulations over windows ``[start, end]`` (hours since
initialisation):

* ECMWF HRES/ENS ``tp``: since initialisation, ``[0, L]`` at every step L;
* GFS (before v16, and its ``acc`` buckets): windows that reset every 6 h,
  ``[0,3] [0,6] [6,9] [6,12] [12,15] ...``;
* HRRR/RAP: ``[0, L]`` and the last hour ``[L-1, L]`` in the same file.

Each window is an equation ``C(end) - C(start) = amount`` on the unknown running total
``C``. The amount over ``[a, b]`` is ``C(b) - C(a)``: it is found by walking from ``a`` to
``b`` through the windows (forwards adds, backwards subtracts), which covers all the cases
above with one rule. ``C(0)`` needs no window: a ``[0, 0]`` window is zero.

Rounding in GRIB packing makes differences slightly negative: values in
``[-NEGATIVE_TOLERANCE, 0)`` become 0; more negative ones are inconsistent windows and
become NaN.

:func:`grid_from_start` does the same for a grid whose amounts run from the start of the
forecast (prediction from an ECMWF or ARPEGE GRIB file).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)

NEGATIVE_TOLERANCE = 0.05
"""kg m-2: packing noise allowed before a negative difference is called inconsistent."""

Window = tuple[float, float]

FP = "forecast_period"
"""The lead-time dimension of a canonical grid."""


def amount(windows: Mapping[Window, np.ndarray], start: float, end: float) -> np.ndarray | None:
    """Accumulation over ``[start, end]`` from accumulation ``windows``.

    Args:
        windows: ``(start_h, end_h) -> values`` (one value per station, kg m-2).
        start: Start of the wanted period (hours since initialisation).
        end: End of the wanted period.

    Returns:
        The amounts (NaN where an input is NaN or the result is inconsistent), or None when
        the windows do not connect ``start`` to ``end``.
    """
    if (start, end) in windows:
        return _clean(np.asarray(windows[(start, end)], dtype="float64"))
    graph: dict[float, list[tuple[float, Window, float]]] = {}
    for (s, e), _ in windows.items():
        graph.setdefault(s, []).append((e, (s, e), 1.0))
        graph.setdefault(e, []).append((s, (s, e), -1.0))
    # Breadth-first search keeps the path short, so few windows' rounding errors add up.
    previous: dict[float, tuple[float, Window, float] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == end:
            break
        for nxt, window, sign in graph.get(node, []):
            if nxt not in previous:
                previous[nxt] = (node, window, sign)
                queue.append(nxt)
    if end not in previous:
        return None
    total: np.ndarray | float = 0.0
    node = end
    while previous[node] is not None:
        prev, window, sign = previous[node]  # type: ignore[misc]
        total = total + sign * np.asarray(windows[window], dtype="float64")
        node = prev
    return _clean(np.asarray(total, dtype="float64"))


def _clean(values: np.ndarray) -> np.ndarray:
    out = np.where((values < 0) & (values >= -NEGATIVE_TOLERANCE), 0.0, values)
    return np.where(out < -NEGATIVE_TOLERANCE, np.nan, out)


def grid_from_start(da: xr.DataArray, hours: float, where: str) -> xr.DataArray:
    """Amounts over the ``hours`` ending at each step, from amounts since the start.

    ``da`` holds, at every step ``s`` of its ``forecast_period``, the amount over
    ``[0, s]`` (a GRIB ``tp`` of ECMWF or ARPEGE). The amount over ``[s - hours, s]`` is
    ``da(s) - da(s - hours)``, and ``da(hours)`` itself at ``s = hours``; a step without the
    step ``hours`` before it in ``da`` (``s < hours``, or a gap) gets NaN, as a missing
    forecast (:func:`amount` gives None there), and a warning names those steps. Negative
    differences are cleaned as :func:`amount` cleans them. Lazy (Dask) arrays stay lazy.

    Raises:
        ValueError: No step of ``da`` has the step ``hours`` before it (naming ``where``,
            the steps held and the period asked for).
    """
    minutes = np.asarray(da[FP].values / np.timedelta64(1, "m")).round().astype("int64")
    period = round(hours * 60)
    index = {int(m): i for i, m in enumerate(minutes)}
    before = np.array([index.get(int(m) - period, -1) for m in minutes])
    first = minutes == period
    if not (first | (before >= 0)).any():
        steps = ", ".join(f"{m / 60:g}" for m in minutes[:8]) + (
            ", ..." if minutes.size > 8 else ""
        )
        raise ValueError(
            f"{where}: {da.name} is accumulated since the start of the forecast (steps "
            f"{steps} h): no step has the step {hours:g} h before it, so no {hours:g}-h "
            f"amount can be derived; expected steps {hours:g} h apart"
        )
    none = minutes[~(first | (before >= 0))] / 60
    if none.size:
        shown = ", ".join(f"{h:g}" for h in none[:10]) + (", ..." if none.size > 10 else "")
        log.warning(
            "%s: %s is accumulated since the start; de-accumulated to %g-h amounts, but steps "
            "%s h have no step %g h before them: missing there (fallbacks apply)",
            where, da.name, hours, shown, hours,
        )  # fmt: skip
    earlier = da.copy(data=da.isel({FP: np.where(before >= 0, before, 0)}).data)
    earlier = earlier.where(xr.DataArray(before >= 0, dims=FP), 0.0)
    out = (da - earlier).where(xr.DataArray(first | (before >= 0), dims=FP))
    out = out.where(~((out < 0) & (out >= -NEGATIVE_TOLERANCE)), 0.0)
    out = out.where(~(out < -NEGATIVE_TOLERANCE))
    return out.assign_attrs(da.attrs).rename(da.name)
