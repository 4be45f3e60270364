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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np

NEGATIVE_TOLERANCE = 0.05
"""kg m-2: packing noise allowed before a negative difference is called inconsistent."""

Window = tuple[float, float]


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
