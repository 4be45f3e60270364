from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from probcast.sources import era5, ghcnh, isd
from probcast.sources.errors import SourceError

# First record of 014160-99999-2016: TMP +0073 (7.3 degC), DEW +0029, AA1 06 h 0.0 mm,
# wind type C with the speed written as 9999: missing (its SYNOP remark's wind group is
# /////), not a calm (audit: it became 0 m/s).
LINE = (
    "0059014160999992016010100004+58950+005733FM-12+007299999V0209999C999999999999N999999999"
    "+00731+00291999999ADDAA106000091REMSYN03601416 16/// ///// 10073 20029 60001="
)


def test_fixed_width_record_by_hand():
    rec = isd.parse_fixed_line(LINE)
    assert rec["station"] == "014160-99999" and rec["latitude"] == 58.95
    assert rec["longitude"] == 5.733 and rec["altitude"] == 72.0
    values = isd.decode(rec, bad := {})
    assert values["t2m"] == pytest.approx(280.45)
    assert values["td2m"] == pytest.approx(276.05)
    assert np.isnan(values["ws10"]) and np.isnan(values["wdir10"])  # type C, speed 9999: missing
    assert values["tp"] == 0.0 and values["tp_hours"] == 6.0
    assert np.isnan(values["msl"]) and bad == {}


def test_quality_code_removes_value():
    line = LINE.replace("+00731+00291", "+00733+00291")  # TMP quality 3: erroneous
    bad: dict[str, int] = {}
    values = isd.decode(isd.parse_fixed_line(line), bad)
    assert np.isnan(values["t2m"]) and bad == {"t2m": 1}


def test_isd_samples(mirror):
    d = isd.read_isd(str(mirror / "isd-samples" / "014160-99999-2016.gz"))
    assert len(d.obs) == 7174
    assert d.obs["obs_t2m"].notna().sum() == 3609  # about half are +9999
    assert d.obs["time"].min() == pd.Timestamp("2016-01-01", tz="UTC")
    d = isd.read_isd(str(mirror / "isd-samples" / "104270-99999-1928.gz"))
    assert len(d.obs) == 376 and set(d.obs["time"].dt.hour) <= {6, 12}
    removed = d.removed.set_index("variable")["removed"].to_dict()
    assert removed == {"t2m": 1, "td2m": 5}


def test_jan_mayen_every_section_parsed(mirror):
    d = isd.read_isd(str(mirror / "isd-ghcnh-samples" / "DS3505.txt"))
    assert len(d.obs) == 2907 and d.notes == []  # every additional section has a known length
    assert d.obs["obs_msl"].between(96000, 104000).sum() == 2889
    assert set(d.obs["tp_hours"].dropna()) == {6.0}
    assert d.stations.iloc[0].to_dict()["latitude"] == 70.933


def test_asos_daily_summaries_dropped(mirror):
    d = isd.read_isd(str(mirror / "isd-asos-2025" / "720534-00161-2025.gz"))
    assert len(d.obs) == 2542  # 2559 records - 17 SOD
    sod = d.removed[d.removed["check"] == "daily_summary"]
    assert sod["removed"].sum() == 17
    assert d.obs["obs_sp"].between(82000, 86000).all() or d.obs["obs_sp"].isna().any()
    assert d.obs["obs_gust"].notna().sum() == 123


def test_mobile_station_bogus_metadata(mirror):
    d = isd.read_global_hourly(str(mirror / "isd-samples" / "00702699999.csv"))
    assert len(d.obs) == 6843
    st = d.stations.iloc[0]
    assert np.isnan(st["latitude"]) and np.isnan(st["altitude"])
    assert any("0/0 is not a real position" in n for n in d.notes)
    assert any("7026 m is not plausible" in n for n in d.notes)
    assert d.obs["obs_msl"].isna().all()  # SLP always 99999


def test_truncated_gzip_is_one_line_error(mirror, tmp_path):
    raw = (mirror / "isd-samples" / "024130-99999-2016.gz").read_bytes()
    bad = tmp_path / "cut.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SourceError, match="truncated or corrupted gzip"):
        isd.read_isd(str(bad))
    txt = tmp_path / "x.txt"
    txt.write_bytes(gzip.decompress(raw)[:500].replace(b"\n", b"\nshort\n", 1))
    with pytest.raises(SourceError, match="line 2 is not an ISD record"):
        isd.read_isd(str(txt))


def test_ghcnh_quirks(mirror):
    okc = ghcnh.read_ghcnh(str(mirror / "isd-ghcnh-samples" / "GHCNh_USW00013967_por.psv"))
    assert okc.obs["time"].is_monotonic_increasing  # unordered in the file
    assert ("truncated_row", "*", 1) in {
        (r["check"], r["variable"], r["removed"]) for r in okc.removed.to_dict("records")
    }
    row = okc.obs.iloc[0]
    assert row["obs_t2m"] == pytest.approx(280.95) and row["obs_sp"] == pytest.approx(95890.0)
    vrb = ghcnh.read_ghcnh(str(mirror / "isd-ghcnh-samples" / "GHCNh_USW00026442_por.psv"))
    assert np.isnan(vrb.obs["obs_wdir10"].iloc[0]) and vrb.obs["obs_ws10"].iloc[0] == 1.0


def test_ghcnh_rejects_other_files(mirror):
    with pytest.raises(SourceError, match=r"not a GHCNh \.psv"):
        ghcnh.read_ghcnh(str(mirror / "isd-samples" / "00702699999.csv"))


def test_user_table_units(tmp_path):
    p = tmp_path / "obs.csv"
    p.write_text("station,time,temperature,msl\nA,2025-01-01T00:00,10.0,1013.2\n")
    d = ghcnh.read_table(str(p), units={"temperature": "degC", "msl": "hPa"})
    assert d.obs["obs_t2m"].iloc[0] == pytest.approx(283.15)
    assert d.obs["obs_msl"].iloc[0] == pytest.approx(101320.0)
    (tmp_path / "bad.csv").write_text("id,time\n")
    with pytest.raises(SourceError, match=r"lacks column\(s\) \['station'\]"):
        ghcnh.read_table(str(tmp_path / "bad.csv"))


STATION = pd.DataFrame(
    {"station": ["IDR"], "name": [""], "latitude": [22.6], "longitude": [75.8], "altitude": [0.0]}
)


def test_era5_new_layout(mirror):
    urls = sorted(str(p) for p in (mirror / "era5-cds-netcdf").glob("*.nc"))
    d = era5.read_era5(urls, STATION)
    assert len(d.obs) == 132 and d.obs["tp_hours"].eq(1.0).all()
    assert any("ERA5T" in n for n in d.notes)
    assert d.obs["obs_t2m"].between(280, 320).all()


def test_era5_legacy_packed(mirror):
    st = STATION.assign(latitude=[40.0], longitude=[-100.0])
    d = era5.read_era5([str(mirror / "era5-legacy-netcdf" / "test_data_20180101.nc")], st)
    assert len(d.obs) == 25
    assert d.obs["time"].iloc[0] == pd.Timestamp("2018-01-02T06", tz="UTC")
    assert d.obs["obs_ws10"].between(0, 40).all() and d.obs["obs_td2m"].between(220, 300).all()


def test_expver_dimension_merge():
    import xarray as xr

    data = np.array([[1.0, np.nan], [np.nan, 5.0]])  # expver x time
    ds = xr.Dataset(
        {"t2m": (("expver", "time"), data)}, coords={"expver": ["0001", "0005"], "time": [0, 1]}
    )
    merged, notes = era5.merge_expver(ds)
    assert merged["t2m"].values.tolist() == [1.0, 5.0] and "merged" in notes[0]


def test_cds_without_key(monkeypatch, tmp_path):
    monkeypatch.delenv("CDSAPI_KEY", raising=False)
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "none"))
    with pytest.raises(SourceError, match="no key configured") as err:
        era5.fetch_era5({"variable": ["2m_temperature"]}, tmp_path / "x.nc")
    assert "\n" not in str(err.value)
    (tmp_path / "rc").write_text("url: https://example.invalid/api\nkey: abc\n")
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "rc"))
    assert era5.cds_credentials() == ("https://example.invalid/api", "abc")
