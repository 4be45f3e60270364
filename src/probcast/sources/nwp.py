"""NWP sources: the common interface and the index-subsetting reader.

A source turns ``(initialisation, lead times, variables, station positions)`` into a
:class:`~probcast.sources.cycle.CycleFields`. Sources whose files come with a GRIB index
(:class:`IndexedSource`: ECMWF open data, GFS, HRRR, RAP, NAM) read the index, pick the
wanted messages and fetch only their byte ranges.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from probcast.sources import fs
from probcast.sources.cycle import ACCUMULATED, CycleFields
from probcast.sources.errors import SourceError, WrongRunError
from probcast.sources.grib import iter_fields
from probcast.sources.index import IndexRecord, merge_ranges, parse_index, run_time


class NwpSource(abc.ABC):
    """An NWP source of one model.

    Args:
        storage_options: fsspec options of every file it reads (e.g. an S3 endpoint).
    """

    name = "nwp"
    gives_orography = False

    def __init__(self, storage_options: dict[str, Any] | None = None) -> None:
        self.storage_options = storage_options or {}

    @abc.abstractmethod
    def cycle(
        self,
        init: pd.Timestamp,
        leads: Sequence[float],
        variables: Sequence[str],
        lat: np.ndarray,
        lon: np.ndarray,
        *,
        accumulation_hours: float,
    ) -> CycleFields:
        """Station values of one cycle (missing files are noted in ``missing``)."""

    def cycles(self, start: pd.Timestamp, end: pd.Timestamp, hours: Sequence[int]) -> list[Any]:
        """Initialisations in ``[start, end]`` at the given cycle hours."""
        days = pd.date_range(start.normalize(), end.normalize(), freq="D")
        inits = [d + pd.Timedelta(hours=int(h)) for d in days for h in sorted(hours)]
        return [t for t in inits if start <= t <= end]


class IndexedSource(NwpSource):
    """A source of one GRIB file per (cycle, step), each with an index next to it.

    Subclasses set :attr:`template` (formatted with ``base``, ``date`` ``YYYYMMDD``,
    ``hh``, ``step``, ``stamp`` ``YYYYMMDDHH0000`` and extra attributes), :attr:`base_url`
    and :meth:`wanted`.
    """

    template = ""
    base_url = ""
    since_init = False
    """True when accumulations are since initialisation only (ECMWF), so the file at
    ``L - period`` is needed too; NOAA files carry ``[0, L]`` and a bucket in one file."""

    def __init__(
        self, base_url: str | None = None, storage_options: dict[str, Any] | None = None
    ) -> None:
        super().__init__(storage_options)
        if base_url:
            self.base_url = base_url.rstrip("/")

    def url(self, init: pd.Timestamp, step: float) -> str:
        """URL of the GRIB file of ``init`` at ``step`` hours."""
        return self.template.format(
            base=self.base_url,
            date=init.strftime("%Y%m%d"),
            hh=init.strftime("%H"),
            stamp=init.strftime("%Y%m%d%H0000"),
            step=int(step),
            **self.url_fields(init),
        )

    def url_fields(self, init: pd.Timestamp) -> dict[str, str]:
        """Extra template fields (e.g. the ECMWF stream, which depends on the hour)."""
        return {}

    def index_url(self, url: str) -> str:
        """URL of the index of GRIB file ``url``."""
        return url + ".idx"

    @abc.abstractmethod
    def wanted(self, record: IndexRecord, variable: str) -> bool:
        """Whether index ``record`` holds ``variable`` (a canonical name)."""

    def steps(self, leads: Iterable[float], variables: Sequence[str], period: float) -> list[float]:
        """The file steps needed for ``leads``."""
        out = {float(s) for s in leads}
        if self.since_init and any(v in ACCUMULATED for v in variables):
            out |= {float(s) - period for s in leads if float(s) - period > 0}
        return sorted(out)

    def preferred(self, variable: str) -> tuple[str, ...]:
        """Index names of ``variable`` by preference: only the first one listed is read."""
        return ()

    def records(
        self, url: str, variables: Sequence[str], init: pd.Timestamp | None = None
    ) -> list[IndexRecord]:
        """Index records of ``url`` holding any of ``variables``.

        Of a variable with several names (GFS ``PRMSL`` and ``MSLET``...), only the records
        of the first name of :meth:`preferred` found in the index are kept.

        Raises:
            WrongRunError: If ``init`` is given and a wanted record is of another run
                (wgrib2 ``d=YYYYMMDDHH``, ECMWF ``date``/``time``).
            SourceError: If the index cannot be read or parsed.
        """
        index = self.index_url(url)
        text = fs.read_bytes(index, self.storage_options).decode("utf-8", "replace")
        recs = parse_index(text, source=index)
        keep: set[int] = set()
        for var in variables:
            match = [i for i, r in enumerate(recs) if self.wanted(r, var)]
            names = [n for n in self.preferred(var) if any(recs[i].variable == n for i in match)]
            keep |= {i for i in match if not names or recs[i].variable == names[0]}
        out = [r for i, r in enumerate(recs) if i in keep]
        if init is not None:
            check_index_run(out, init, url, index)
        return out

    def cycle(
        self,
        init: pd.Timestamp,
        leads: Sequence[float],
        variables: Sequence[str],
        lat: np.ndarray,
        lon: np.ndarray,
        *,
        accumulation_hours: float,
    ) -> CycleFields:
        """Fetch the wanted messages of every needed step by byte range and decode them."""
        out = CycleFields(init_time=init)
        wanted = [*variables, "orog"] if self.gives_orography else list(variables)
        for step in self.steps(leads, variables, accumulation_hours):
            url = self.url(init, step)
            try:
                recs = self.records(url, wanted, init)
                if not recs:
                    out.missing.append(f"{url}: index lists none of {list(wanted)}")
                    continue
                blobs = fs.read_ranges(url, merge_ranges(recs), self.storage_options)
            except SourceError as err:  # not there (yet), unreadable or of another run
                out.unavailable_file(str(err))
                continue
            try:  # every field is checked before any is kept
                out.extend(list(iter_fields(blobs, lat, lon, source=url)), source=url)
            except WrongRunError as err:
                out.unavailable_file(str(err))
        return out


def check_index_run(
    records: Sequence[IndexRecord], init: pd.Timestamp, url: str, index: str
) -> None:
    """Refuse index ``records`` of another run than ``init`` (records without one pass).

    Raises:
        WrongRunError: Naming the file, the run its index gives and the run asked for.
    """
    asked = f"{init.tz_convert('UTC'):%Y%m%d%H}" if init.tzinfo else f"{init:%Y%m%d%H}"
    other = sorted({r.init for r in records if r.init and r.init != asked})
    if other:
        raise WrongRunError(
            f"{url}: a file of the run {run_time(other[0])} (index {index}), not of the run "
            f"asked for, {run_time(asked)}: refused for this cycle"
        )
