"""Kerchunk references for local NetCDF4 and GRIB files, opened with open_gridded."""

from __future__ import annotations

import json
from pathlib import Path

import eccodes
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.ingest.gridded import GriddedReadError, open_gridded
from probcast.ingest.references import build_references


def nc4(path: Path, start: str) -> Path:
    times = pd.date_range(start, periods=3, freq="1h")
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), rng.normal(280, 5, (3, 4, 5)), {"units": "K"})},
        coords={"time": times, "latitude": np.arange(4.0), "longitude": np.arange(5.0)},
    )
    ds["time"].attrs["reference_time"] = 0.0 + pd.Timestamp("2024-01-01").timestamp()
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_single_netcdf4_reference_matches_direct(tmp_path: Path):
    path = nc4(tmp_path / "a.nc", "2024-01-01T01")
    refs = build_references([path], tmp_path / "refs.json")
    assert json.loads(refs.read_text())["refs"]
    direct, via = open_gridded(path), open_gridded(refs)
    xr.testing.assert_allclose(direct["fc_t2m"], via["fc_t2m"])
    xr.testing.assert_allclose(via["fc_t2m"], open_gridded(f"reference://{refs}")["fc_t2m"])


def test_several_files_concatenate_along_time(tmp_path: Path):
    paths = [nc4(tmp_path / "a.nc", "2024-01-01T01"), nc4(tmp_path / "b.nc", "2024-01-01T04")]
    ds = open_gridded(build_references(paths, tmp_path / "ab.json", concat_dim="time"))
    assert ds.sizes["forecast_period"] == 6
    assert ds["forecast_period"].values[-1] == np.timedelta64(6, "h")


def test_unsupported_format_and_missing_file(tmp_path: Path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(GriddedReadError, match=r"x.json: cannot build references"):
        build_references([tmp_path / "x.json"], tmp_path / "r.json")
    with pytest.raises(GriddedReadError, match=r"missing.nc: file not found"):
        build_references([tmp_path / "missing.nc"], tmp_path / "r.json")
    with pytest.raises(ValueError, match=r"at least one"):
        build_references([], tmp_path / "r.json")


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("rel", "n"),
    [("grib-samples/step_60m.grib", 4), ("arpege-grib/arpege_2m_NW_20180501000000.grib", 6)],
)
def test_grib_reference_matches_cfgrib(mirror: Path, tmp_path: Path, rel: str, n: int):
    """GRIB2 and GRIB1 (kerchunk's own splitter handles neither edition's edge cases)."""
    part = tmp_path / "part.grib"
    with open(mirror / rel, "rb") as f, open(part, "wb") as g:
        for _ in range(n):
            handle = eccodes.codes_grib_new_from_file(f)
            g.write(eccodes.codes_get_message(handle))
            eccodes.codes_release(handle)
    with open(part, "ab") as g:
        g.write(b"7777" * 3)  # trailing bytes after the last message must not hang the scan
    refs = build_references([part], tmp_path / "g.json")
    direct, via = open_gridded(part), open_gridded(refs)
    for name in direct.data_vars:
        np.testing.assert_allclose(via[name].values, direct[name].values, rtol=1e-6)
    np.testing.assert_array_equal(via["forecast_period"], direct["forecast_period"])
