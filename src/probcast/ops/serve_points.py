"""Where a lat/lon point of ``probcast serve`` is answered: the nearest station or grid point.

A :class:`NodeIndex` holds the positions of a cycle's stations (or grid points) on the unit
sphere in a k-d tree; :meth:`NodeIndex.nearest` returns, for every point, the nearest one and
its great-circle distance, and refuses (:class:`PointError`, a ``422``) points farther than
the limit, naming them. :class:`InputCache` reads a cycle's input once (a station table, or a
grid with :mod:`probcast.ops.serve_grid`) and keeps the few most recent ones with their
index, keyed by path, size and modification time, so a rewritten input is read again.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from probcast.geo import EARTH_RADIUS_KM, unit_vectors


class PointError(ValueError):
    """Points that cannot be answered (too far from every station or grid point)."""


@dataclasses.dataclass
class NodeIndex:
    """Positions of the stations (or grid points) of one cycle.

    Attributes:
        ids: Station id of every node.
        latitude: Latitude of every node (degrees).
        longitude: Longitude of every node (degrees).
        what: ``station`` or ``grid point`` (for messages).
    """

    ids: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    what: str = "station"
    tree: Any = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tree = cKDTree(unit_vectors(self.latitude, self.longitude)) if len(self.ids) else None

    @classmethod
    def of_table(cls, table: pd.DataFrame, source: str) -> NodeIndex:
        """The stations of a station table (their first listed position).

        Raises:
            PointError: The table has no ``latitude``/``longitude`` columns.
        """
        if "latitude" not in table.columns or "longitude" not in table.columns:
            raise PointError(
                f"the input of {source} has no latitude/longitude columns: ask by station id"
            )
        first = table.drop_duplicates("station")[["station", "latitude", "longitude"]]
        first = first.dropna(subset=["latitude", "longitude"])
        return cls(
            first["station"].astype(str).to_numpy(),
            first["latitude"].to_numpy("float64"),
            first["longitude"].to_numpy("float64"),
        )

    def nearest(
        self, lat: Sequence[float], lon: Sequence[float], max_km: float, source: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """The position (into :attr:`ids`) and distance (km) of the node nearest each point.

        Raises:
            PointError: Naming the points (index, lat, lon) farther than ``max_km`` from
                every node, with their distance and nearest node.
        """
        if self.tree is None:
            raise PointError(f"the input of {source} has no {self.what} with a position")
        chord, pos = self.tree.query(unit_vectors(np.asarray(lat), np.asarray(lon)))
        dist = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0))
        far = np.flatnonzero(dist > max_km)
        if far.size:
            shown = [
                f"point {i} (latitude {lat[i]}, longitude {lon[i]}) is {dist[i]:.1f} km from "
                f"the nearest {self.what} ({self.ids[pos[i]]})"
                for i in far[:10]
            ]
            more = f" and {far.size - 10} more" if far.size > 10 else ""
            raise PointError(
                f"{'; '.join(shown)}{more}: at most {max_km:g} km from a {self.what} of {source}"
            )
        return np.asarray(pos), dist


@dataclasses.dataclass
class CycleInput:
    """A cycle's input as read once: a station ``table`` or a grid ``dataset``."""

    kind: str
    index: NodeIndex | None
    table: pd.DataFrame | None = None
    dataset: Any = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def for_model(self, model: Any, where: str) -> CycleInput:
        """This input checked against ``model``'s periods (:meth:`check_periods`).

        A grid's amounts since the start are de-accumulated to the model's periods first
        (:func:`probcast.predict.input_periods.to_model_periods`), once per model's periods:
        the result is kept with the input.

        Raises:
            ValueError: Input of other periods than the model's.
        """
        if self.dataset is None:
            model.check_periods(self.table, where)
            return self
        from probcast.predict.input_periods import to_model_periods

        known = model.domain.periods if model.domain is not None else {}
        key = f"periods {sorted(known.items())}"
        if key not in self.extra:
            self.extra[key] = to_model_periods(model, self.dataset, where)
        model.check_periods(self.extra[key], where)
        return dataclasses.replace(self, dataset=self.extra[key])


T = TypeVar("T")


class InputCache(Generic[T]):
    """The files last asked for (a cycle's :class:`CycleInput`, a template table), as read.

    Args:
        reader: ``(path, cycle) -> T``.
        size: How many files to keep.
    """

    def __init__(self, reader: Callable[[Path, Any], T], size: int = 4) -> None:
        self.reader = reader
        self.size = size
        self._items: collections.OrderedDict[tuple[str, int, int], T] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, cycle: Any = None) -> T:
        """The input at ``path`` (read again when its size or modification time changed).

        ``cycle`` is handed to the reader (which may check the file against it).
        """
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            item = self.reader(path, cycle)
            self._items[key] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return item
