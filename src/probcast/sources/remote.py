"""Public NWP archives read by byte range: ECMWF open data and NOAA GFS/HRRR/RAP/NAM.

URL layouts (``base_url`` can point at a mirror, an ``s3://`` bucket or a test server):

* ECMWF open data: ``{base}/{YYYYMMDD}/{HH}z/{model}/0p25/{stream}/``
  ``{YYYYMMDDHH}0000-{step}h-{stream}-fc.grib2`` with a JSON-lines ``.index`` in place of
  ``.grib2``; stream ``oper`` at 00/12 UTC and ``scda`` at 06/18 UTC (IFS HRES).
* GFS: ``{base}/gfs.{YYYYMMDD}/{HH}/atmos/gfs.t{HH}z.pgrb2.0p25.f{FFF}`` + ``.idx``;
  HRRR: ``{base}/hrrr.{YYYYMMDD}/conus/hrrr.t{HH}z.wrfsfcf{FF}.grib2`` + ``.idx``;
  RAP: ``{base}/rap.{YYYYMMDD}/rap.t{HH}z.awp130pgrbf{FF}.grib2``;
  NAM: ``{base}/nam.{YYYYMMDD}/nam.t{HH}z.awphys{FF}.tm00.grib2``.
"""

from __future__ import annotations

import pandas as pd

from probcast.sources.index import IndexRecord
from probcast.sources.nwp import IndexedSource

# canonical -> (wgrib2 VAR names, level text, kind)
NOAA_FIELDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "t2m": (("TMP",), "2 m above ground", "instant"),
    "td2m": (("DPT",), "2 m above ground", "instant"),
    "rh": (("RH",), "2 m above ground", "instant"),
    "u10": (("UGRD",), "10 m above ground", "instant"),
    "v10": (("VGRD",), "10 m above ground", "instant"),
    "gust": (("GUST",), "surface", "instant"),
    "msl": (("PRMSL", "MSLMA", "MSLET"), "mean sea level", "instant"),
    "sp": (("PRES",), "surface", "instant"),
    "tcc": (("TCDC",), "entire atmosphere", "instant"),
    "tp": (("APCP",), "surface", "accum"),
    "orog": (("HGT",), "surface", "instant"),
}

# canonical -> ECMWF open-data params (surface, levtype sfc)
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


class EcmwfOpenData(IndexedSource):
    """ECMWF open data (IFS HRES or AIFS Single), GRIB2 with a JSON-lines ``.index``.

    Args:
        model: ``ifs`` or ``aifs-single``.
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
    ) -> None:
        super().__init__(base_url, storage_options)
        self.model = model

    def url_fields(self, init: pd.Timestamp) -> dict[str, str]:
        """Model and stream (``scda`` for the 06/18 UTC short cut-off runs)."""
        return {"model": self.model, "stream": "oper" if init.hour in (0, 12) else "scda"}

    def index_url(self, url: str) -> str:
        """``.index`` in place of ``.grib2``."""
        return url.removesuffix(".grib2") + ".index"

    def wanted(self, record: IndexRecord, variable: str) -> bool:
        """Match ``param`` at ``levtype`` sfc."""
        return record.level == "sfc" and record.variable in ECMWF_PARAMS.get(variable, ())
