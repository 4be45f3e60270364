"""ARCO-ERA5 truth: a small local Zarr store in the ARCO layout with *synthetic* values.

The store (``probcast.testing.arco``) has the real store's layout and attributes (Zarr v2,
consolidated, hours since 1900, latitude 90..-90, longitude 0..360, long names, ECMWF units,
one chunk per hour) on a 5-degree grid; its values are a formula, checked by hand here. It is
also served from a moto S3 server on 127.0.0.1 for the remote path.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from probcast.sources import arco, regular
from probcast.sources.build import build
from probcast.sources.config import parse_spec
from probcast.sources.errors import SourceError
from probcast.testing.arco import write_arco_store

STATIONS = pd.DataFrame(
    {
        "station": ["A", "B"],
        "name": ["", ""],
        "latitude": [50.0, 21.0],
        "longitude": [-10.0, 12.0],  # -10 is column 350 of the 0..360 grid
        "altitude": [0.0, 0.0],
    }
)
T0 = pd.Timestamp("2016-09-25", tz="UTC")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("arco") / "full_37-1h-0p25deg-chunk-1.zarr-v3"
    write_arco_store(path, "2016-09-25", 48)
    return path


def test_stations_by_hand(store):
    d = arco.read_arco(
        [str(store)], STATIONS, start=T0 + pd.Timedelta("2h"), end=T0 + pd.Timedelta("4h"),
        variables=["t2m", "ws10", "tp", "msl"],
    )  # fmt: skip
    assert len(d.obs) == 6 and d.obs["tp_hours"].eq(1.0).all()
    a = d.obs[(d.obs["station"] == "A") & (d.obs["time"] == T0 + pd.Timedelta("3h"))].iloc[0]
    assert a["obs_t2m"] == pytest.approx(280 + 5 + 3.5 + 0.3, abs=1e-4)  # float32 store
    assert a["obs_msl"] == pytest.approx(100000 + 500 + 350 + 3)
    assert a["obs_ws10"] == pytest.approx(np.hypot(5.0, 2.0), abs=1e-6)
    assert a["obs_tp"] == pytest.approx(1.0)  # 0.001 m -> 1 kg m-2
    b = d.obs[d.obs["station"] == "B"].iloc[0]  # 21N 12E: nearest node 20N 10E
    assert b["obs_t2m"] == pytest.approx(280 + 2 + 0.1 + 0.2, abs=1e-4)


def test_reads_only_the_period(store, tmp_path):
    """Chunks of other hours are deleted: reading the period must not need them."""
    copy = tmp_path / "arco.zarr"
    shutil.copytree(store, copy)
    for var in ("2m_temperature", "mean_sea_level_pressure"):
        for chunk in (copy / var).glob("*.0.0"):
            if int(chunk.name.split(".")[0]) not in (10, 11):
                chunk.unlink()
    d = arco.read_arco(
        [str(copy)], STATIONS, start=T0 + pd.Timedelta("10h"), end=T0 + pd.Timedelta("11h"),
        variables=["t2m", "msl"],
    )  # fmt: skip
    assert d.obs["obs_t2m"].notna().all() and len(d.obs) == 4


def test_errors(store, tmp_path, monkeypatch):
    with pytest.raises(SourceError, match="no time in 2030"):
        later = T0.replace(year=2030)
        arco.read_arco([str(store)], STATIONS, start=later, end=later)
    with pytest.raises(SourceError, match="a period"):
        arco.read_arco([str(store)], STATIONS)
    with pytest.raises(SourceError, match="none of the ARCO-ERA5 fields"):
        arco.open_arco(str(store), variables=["tcc"])
    with pytest.raises(SourceError, match="cannot open as an ARCO-ERA5 Zarr store"):
        arco.open_arco(str(tmp_path / "absent.zarr"))
    # A mock of a machine without gcsfs (find_spec says it is not installed).
    real = arco.importlib.util.find_spec
    monkeypatch.setattr(
        arco.importlib.util, "find_spec", lambda n, *a: None if n == "gcsfs" else real(n, *a)
    )
    with pytest.raises(SourceError, match=r"needs the 'gcsfs' package.*pip install gcsfs"):
        arco.open_arco(arco.ARCO_ERA5)


def test_regular_bilinear_by_hand():
    lat = np.array([10.0, 0.0])  # descending
    import xarray as xr

    ds = xr.Dataset(
        {"a": (("latitude", "longitude"), [[1.0, 2.0], [3.0, 4.0]])},
        coords={"latitude": lat, "longitude": np.array([0.0, 10.0])},
    )
    out = regular.sample(ds, np.array([5.0, 10.0, 5.0]), np.array([5.0, 10.0, 11.0]))
    assert out["a"].values[:2].tolist() == [2.5, 2.0]
    assert np.isnan(out["a"].values[2])  # outside a regional grid: NaN, not extrapolated
    near = regular.sample(ds, np.array([7.0]), np.array([-358.0]), "nearest")  # lon 2
    assert near["a"].values.tolist() == [1.0]


def test_served_from_s3(store, s3_server):
    s3fs = pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    kw = s3_server["client_kwargs"]
    boto3.client(
        "s3", endpoint_url=kw["endpoint_url"], region_name="us-east-1",
        aws_access_key_id=s3_server["key"], aws_secret_access_key=s3_server["secret"],
    ).create_bucket(Bucket="arco")  # fmt: skip
    fsys = s3fs.S3FileSystem(**s3_server)
    fsys.put(str(store), "arco/era5.zarr", recursive=True)
    d = arco.read_arco(
        ["s3://arco/era5.zarr"], STATIONS, s3_server,
        start=T0 + pd.Timedelta("3h"), end=T0 + pd.Timedelta("3h"), variables=["t2m"],
    )  # fmt: skip
    assert d.obs["obs_t2m"].iloc[0] == pytest.approx(288.8, abs=1e-4)


def test_station_build_with_arco_truth(store, mirror, tmp_path):
    """Real ECMWF GRIB1 forecasts (2016-09-25 00 UTC, +0 and +120 h) with ARCO truth."""
    g = mirror / "ecmwf-hres-grib1"
    spec = parse_spec(
        {
            "nwp": {"source": "archive", "paths": [str(g / "oper_msl_sfc.grib")]},
            "truth": {"source": "arco-era5", "paths": str(store)},
            "stations": [{"station": "X", "latitude": 50.0, "longitude": -10.0}],
            "variables": ["msl"],
            "period": {"start": "2016-09-25", "end": "2016-09-25"},
            "lead_times": [0, 120],
        }
    )
    result = build(spec, tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "table.parquet")
    assert result.written == ["2016-09-25T00:00Z"] and len(table) == 2
    row0 = table[table["lead_time"] == 0].iloc[0]
    assert row0["obs_msl"] == pytest.approx(100000 + 500 + 350)  # hour 0 of the store
    assert 95000 < row0["fc_msl"] < 105000
    assert np.isnan(table.loc[table["lead_time"] == 120, "obs_msl"]).all()  # store: 48 h
