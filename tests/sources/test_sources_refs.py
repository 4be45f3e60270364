"""Kerchunk references over GRIB archives (probcast.sources.refs, `probcast data refs`)."""

from __future__ import annotations

import json

import eccodes
import numpy as np
import pandas as pd
import pytest

from probcast.cli import main as cli_main
from probcast.sources.build import build
from probcast.sources.config import parse_spec
from probcast.sources.errors import SourceError
from probcast.sources.refs import build_refs, open_refs, scan_archive
from probcast.testing import archives as synthetic


def _eccodes_fields(path):
    """(shortName, step) -> 2-D values of every message, decoded by ecCodes."""
    out = {}
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                shape = (eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni"))
                key = (eccodes.codes_get(h, "shortName"), eccodes.codes_get(h, "endStep"))
                out[key] = eccodes.codes_get_double_array(h, "values").reshape(shape)
            finally:
                eccodes.codes_release(h)
    return out


def test_grib1_files_open_as_one_dataset(mirror, tmp_path):
    """Four HRES GRIB1 files (two steps each) -> one dataset, values as ecCodes decodes them."""
    names = ["oper_10u_sfc", "oper_10v_sfc", "oper_msl_sfc", "tp_sfc"]
    files = [mirror / "ecmwf-hres-grib1" / f"{n}.grib" for n in names]
    refs = build_refs([str(f) for f in files], tmp_path / "refs.json")
    assert refs.messages == 8 and not refs.skipped
    ds = open_refs(tmp_path / "refs.json")
    assert sorted(ds.data_vars) == ["msl", "tp", "u10", "v10"]
    assert ds.sizes["step"] == 2 and ds.sizes["time"] == 1
    cf_names = {"10u": "u10", "10v": "v10", "msl": "msl", "tp": "tp"}
    for path in files:
        for (short, step), values in _eccodes_fields(path).items():
            got = ds[cf_names[short]].sel(step=np.timedelta64(step, "h")).values[0]
            np.testing.assert_array_equal(got, values)


def test_grib2_open_data_and_lambert(mirror):
    """ECMWF open data (GRIB2, CCSDS, 0.25 deg) and HRRR Lambert (2-D lat/lon)."""
    path = mirror / "ecmwf-opendata-samples" / "ecmwf-ifs-oper-surface.grib2"
    ds = open_refs(scan_archive(str(path)).refs)
    expected = _eccodes_fields(path)
    assert ds.sizes["latitude"] == 721 and ds.sizes["longitude"] == 1440
    np.testing.assert_array_equal(ds["tcc"].values[0, 0], expected[("tcc", 0)])
    hrrr = mirror / "gfs-hrrr-idx-samples" / "hrrr.t06z.wrfsfcf01-UGRD.grib2"
    ds = open_refs(scan_archive(str(hrrr)).refs)
    assert ds["latitude"].ndim == 2 and ds["u10"].shape == (1059, 1799)
    np.testing.assert_array_equal(ds["u10"].values, _eccodes_fields(hrrr)[("10u", 1)])


def test_refused_and_skipped_messages(mirror, tmp_path):
    d = mirror / "ecmwf-hres-grib1"
    with pytest.raises(SourceError, match="different grid"):
        scan_archive([str(d / "an_msl_sfc.grib"), str(d / "joachim_wind_gust.grib")])
    with pytest.raises(SourceError, match=r"u10 at 2016-09-25 00 UTC \+0 h is also at"):
        scan_archive([str(d / "an_10u_sfc.grib"), str(d / "oper_10u_sfc.grib")])
    refs = scan_archive([str(d / "t2m_grib.grib"), str(d / "t2_for_UC-04.grib")])
    assert refs.messages == 1 and "reduced_gg" in refs.skipped[0]
    bad = tmp_path / "bad.grib"
    bad.write_bytes(b"not a grib file at all")
    with pytest.raises(SourceError, match="no GRIB message"):
        scan_archive(str(bad))
    not_json = tmp_path / "refs.json"
    not_json.write_text("{oops")
    with pytest.raises(SourceError, match="not a kerchunk reference file"):
        open_refs(not_json)


def test_cli_refs(mirror, tmp_path, capsys):
    out = tmp_path / "refs.json"
    d = mirror / "ecmwf-hres-grib1"
    assert cli_main(["data", "refs", "--archive", str(d / "oper_*.grib"), "--out", str(out)]) == 0
    assert "6 messages" in capsys.readouterr().out
    assert json.loads(out.read_text())["version"] == 1
    assert cli_main(["data", "refs", "--archive", str(d / "*.grib"), "--out", str(out)]) == 1
    assert "different grid" in capsys.readouterr().err


def _spec(root, paths, method="nearest"):
    return parse_spec(
        {
            "nwp": {"source": "archive", "paths": paths, "method": method},
            "truth": {"source": "table", "paths": [str(root / "obs.csv")]},
            "variables": ["t2m", "ws10", "msl", "tp"],
            "period": {"start": "2025-01-01", "end": "2025-01-02"},
            "lead_times": [0, 6, 12],
        }
    )


@pytest.fixture
def archive(tmp_path):
    """Two synthetic GRIB1 cycles with noise, three stations, their references."""
    inits = [pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(hours=12 * i) for i in range(2)]
    synthetic.write_archive(tmp_path / "nwp", inits, [0, 6, 12], noise=1.0)
    times = pd.date_range("2025-01-01", "2025-01-02T12", freq="h")
    rows = [
        (f"S{i}", t.isoformat(), 40.0 + i, 5.0 + 0.3 * i, 100.0, 271.0 + 0.1 * (k % 7))
        for i in range(3)
        for k, t in enumerate(times)
    ]
    cols = ["station", "time", "latitude", "longitude", "altitude", "t2m"]
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "obs.csv", index=False)
    build_refs(str(tmp_path / "nwp" / "*.grib"), tmp_path / "refs.json")
    return tmp_path


def test_build_from_refs_equals_build_from_grib(archive):
    grib = build(_spec(archive, str(archive / "nwp" / "*.grib")), archive / "a")
    refs = build(_spec(archive, str(archive / "refs.json")), archive / "b")
    assert grib.written == refs.written and len(grib.written) == 2
    a = pd.read_parquet(archive / "a" / "table.parquet")
    b = pd.read_parquet(archive / "b" / "table.parquet")
    assert list(a.columns) == list(b.columns)
    for col in ["fc_t2m", "fc_ws10", "fc_msl", "fc_tp", "stat_dz", "obs_t2m"]:
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
