"""Public NWP archives read by byte range: ECMWF open data and NOAA GFS/HRRR/RAP/NAM.

URL layouts (``base_url`` can point at a mirror, an ``s3://`` bucket or a test server):

* ECMWF open data: ``{base}/{YYYYMMDD}/{HH}z/{model}/0p25/{stream}/``
  ``{YYYYMMDDHH}0000-{step}h-{stream}-fc.grib2`` with a JSON-lines ``.index`` in place of
  ``.grib2``; stream ``oper``, except the IFS 06/18 UTC runs before IFS cycle 50r1
  (:data:`IFS_50R1_DATE`, runs of 2026-05-12 on), which are under ``scda`` (the rule of
  the ``ecmwf-opendata`` package's ``Client.patch_stream``; AIFS Single is always ``oper``).
* GFS: ``{base}/gfs.{YYYYMMDD}/{HH}/atmos/gfs.t{HH}z.pgrb2.0p25.f{FFF}`` + ``.idx``;
  HRRR: ``{base}/hrrr.{YYYYMMDD}/conus/hrrr.t{HH}z.wrfsfcf{FF}.grib2`` + ``.idx``;
  RAP: ``{base}/rap.{YYYYMMDD}/rap.t{HH}z.awp130pgrbf{FF}.grib2``;
  NAM: ``{base}/nam.{YYYYMMDD}/nam.t{HH}z.awphys{FF}.tm00.grib2``.
"""

from __future__ import annotations

import datetime

import pandas as pd

from probcast.sources.errors import SourceError
from probcast.sources.index import IndexRecord
from probcast.sources.nwp import IndexedSource

# canonical -> (wgrib2 VAR names by preference: only the first one in the index is read,
# level text, kind). MSLET (GFS/NAM's other reduction) is not read: PRMSL is msl.
NOAA_FIELDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "t2m": (("TMP",), "2 m above ground", "instant"),
    "td2m": (("DPT",), "2 m above ground", "instant"),
    "rh": (("RH",), "2 m above ground", "instant"),
    "u10": (("UGRD",), "10 m above ground", "instant"),
    "v10": (("VGRD",), "10 m above ground", "instant"),
    "gust": (("GUST",), "surface", "instant"),
    "msl": (("PRMSL", "MSLMA"), "mean sea level", "instant"),
    "sp": (("PRES",), "surface", "instant"),
    "tcc": (("TCDC",), "entire atmosphere", "instant"),
    "tp": (("APCP",), "surface", "accum"),
    "orog": (("HGT",), "surface", "instant"),
}

# canonical -> ECMWF open-data params (surface, levtype sfc), by preference
ECMWF_PARAMS: dict[str, tuple[str, ...]] = {
    "t2m": ("2t",),
    "td2m": ("2d",),
    "u10": ("10u",),
    "v10": ("10v",),
    "gust": ("10fg", "i10fg", "fg10"),
    "msl": ("msl",),
    "sp": ("sp",),
    "tcc": ("tcc",),
    "tp": ("tp",),
    "orog": ("z",),
}


def noaa_wanted(record: IndexRecord, variable: str) -> bool:
    """Whether wgrib2 index ``record`` holds ``variable``: VAR, level and (instant/accum) kind."""
    spec = NOAA_FIELDS.get(variable)
    if spec is None:
        return False
    names, level, kind = spec
    if record.variable not in names or record.level != level or record.kind != kind:
        return False
    # An accumulation over [L, L] ("0-0 day acc", the analysis file) carries no amount.
    return kind != "accum" or record.end_step > record.start_step


class NoaaSource(IndexedSource):
    """NOAA model on the public buckets (wgrib2 ``.idx``)."""

    gives_orography = True

    def wanted(self, record: IndexRecord, variable: str) -> bool:
        """Match VAR, level and (instant/accum) kind (:func:`noaa_wanted`)."""
        return noaa_wanted(record, variable)

    def preferred(self, variable: str) -> tuple[str, ...]:
        """The VAR names of :data:`NOAA_FIELDS`, in order."""
        return NOAA_FIELDS[variable][0] if variable in NOAA_FIELDS else ()


class Gfs(NoaaSource):
    """NCEP GFS 0.25 deg."""

    name = "gfs"
    base_url = "https://noaa-gfs-bdp-pds.s3.amazonaws.com"
    template = "{base}/gfs.{date}/{hh}/atmos/gfs.t{hh}z.pgrb2.0p25.f{step:03d}"


class Hrrr(NoaaSource):
    """NOAA HRRR CONUS surface files."""

    name = "hrrr"
    base_url = "https://noaa-hrrr-bdp-pds.s3.amazonaws.com"
    template = "{base}/hrrr.{date}/conus/hrrr.t{hh}z.wrfsfcf{step:02d}.grib2"


class Rap(NoaaSource):
    """NOAA RAP 13 km (awp130)."""

    name = "rap"
    base_url = "https://noaa-rap-pds.s3.amazonaws.com"
    template = "{base}/rap.{date}/rap.t{hh}z.awp130pgrbf{step:02d}.grib2"


class Nam(NoaaSource):
    """NOAA NAM 12 km (awphys)."""

    name = "nam"
    base_url = "https://noaa-nam-pds.s3.amazonaws.com"
    template = "{base}/nam.{date}/nam.t{hh}z.awphys{step:02d}.tm00.grib2"


IFS_50R1_DATE = datetime.date(2026, 5, 12)
"""First day whose IFS 06/18 UTC open-data runs are under stream ``oper`` (IFS cycle 50r1;
``ecmwf-opendata``'s ``IFS_50R1_DATE``); earlier ones are under ``scda``."""
STREAMS = ("auto", "oper", "scda")


class EcmwfOpenData(IndexedSource):
    """ECMWF open data (IFS HRES or AIFS Single), GRIB2 with a JSON-lines ``.index``.

    Args:
        model: ``ifs`` or ``aifs-single``.
        stream: ``auto`` (by date, see :meth:`stream`), ``oper`` (every run) or ``scda``
            (06/18 UTC runs under ``scda`` whatever the date, e.g. a mirror of old data).
    """

    name = "ecmwf-opendata"
    base_url = "https://data.ecmwf.int/forecasts"
    template = "{base}/{date}/{hh}z/{model}/0p25/{stream}/{stamp}-{step}h-{stream}-fc.grib2"
    since_init = True
    gives_orography = True

    def __init__(
        self,
        base_url: str | None = None,
        storage_options: dict | None = None,
        model: str = "ifs",
        stream: str = "auto",
    ) -> None:
        super().__init__(base_url, storage_options)
        if stream not in STREAMS:
            raise SourceError(f"nwp.stream: {stream!r} unknown; expected one of {STREAMS}")
        self.model = model
        self.stream_choice = stream

    def stream(self, init: pd.Timestamp) -> str:
        """Stream of the run ``init``: ``scda`` for IFS 06/18 UTC before 50r1, else ``oper``.

        As ``ecmwf-opendata``: 00/12 UTC and AIFS Single are always ``oper``; IFS 06/18 UTC
        runs are ``scda`` before :data:`IFS_50R1_DATE` and ``oper`` from it (``stream:
        oper`` or ``scda`` in the spec forces one or the other for the 06/18 UTC runs).
        """
        if init.hour in (0, 12) or self.model == "aifs-single" or self.stream_choice == "oper":
            return "oper"
        if self.stream_choice == "scda":
            return "scda"
        return "oper" if init.date() >= IFS_50R1_DATE else "scda"

    def url_fields(self, init: pd.Timestamp) -> dict[str, str]:
        """Model and stream (:meth:`stream`)."""
        return {"model": self.model, "stream": self.stream(init)}

    def preferred(self, variable: str) -> tuple[str, ...]:
        """The params of :data:`ECMWF_PARAMS`, in order."""
        return ECMWF_PARAMS.get(variable, ())

    def index_url(self, url: str) -> str:
        """``.index`` in place of ``.grib2``."""
        return url.removesuffix(".grib2") + ".index"

    def wanted(self, record: IndexRecord, variable: str) -> bool:
        """Match ``param`` at ``levtype`` sfc."""
        return record.level == "sfc" and record.variable in ECMWF_PARAMS.get(variable, ())
