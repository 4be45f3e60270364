"""Station observations in ``data build``: missing codes, QC order, units, calm, pairing, spec.

Each test holds a case of the build audit (GHCNh ``9-Missing``, rh after QC, unit keys by
variable, ISD calm vs missing, one report per wind, duplicate stations, spec values).
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import yaml

from probcast.sources import ghcnh, isd
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import load_spec, parse_spec
from probcast.sources.errors import SourceError
from probcast.sources.pair import pair
from probcast.testing import archives as synthetic

T0 = pd.Timestamp("2025-01-01T00", tz="UTC")
HEADER = (
    "Station_ID|Station_name|Year|Month|Day|Hour|Minute|Latitude|Longitude|Elevation|"
    "wind_speed|wind_speed_Measurement_Code|wind_speed_Quality_Code|"
    "wind_direction|wind_direction_Measurement_Code|wind_direction_Quality_Code|"
    "precipitation|precipitation_Measurement_Code|precipitation_Quality_Code|"
    "relative_humidity|relative_humidity_Measurement_Code|relative_humidity_Quality_Code"
)


# --- 5: GHCNh measurement code 9 (missing) -------------------------------------------------


def test_ghcnh_missing_precipitation_code_is_nan_on_the_real_files(mirror):
    folder = mirror / "isd-ghcnh-samples"
    butte = ghcnh.read_ghcnh(str(folder / "GHCNh_USW00024135_por.psv")).obs.set_index("time")
    okc = ghcnh.read_ghcnh(str(folder / "GHCNh_USW00013967_por.psv")).obs.set_index("time")
    # Both reports carry precipitation 0.0 with measurement code '9-Missing'.
    assert np.isnan(butte.loc[pd.Timestamp("2025-02-13T22:53", tz="UTC"), "obs_tp"])
    assert np.isnan(okc.loc[pd.Timestamp("2023-01-03T11:52", tz="UTC"), "obs_tp"])
    assert (butte["obs_tp"] == 0.0).sum() == 2  # the two '2-Trace' reports stay 0 mm
    assert butte["obs_tp"].max() == pytest.approx(0.2)  # '3-Measurable'


def test_ghcnh_code_9_applies_to_every_variable_and_derived_rh_is_not_read(tmp_path):
    p = tmp_path / "GHCNh_X_por.psv"
    p.write_text(
        HEADER + "\n"
        "X|X|2025|01|01|00|00|50|5|10|0.0|9-Missing|5|0|9-Missing|5|0.0|9-Missing|5|80|Derived|\n"
        "X|X|2025|01|01|01|00|50|5|10|3.0|N-Normal|5|200|N-Normal|5|1.5|3-Measurab|5|70|Derived|\n"
    )
    d = ghcnh.read_ghcnh(str(p))
    assert np.isnan(d.obs["obs_ws10"].iloc[0]) and d.obs["obs_ws10"].iloc[1] == 3.0
    assert np.isnan(d.obs["obs_wdir10"].iloc[0]) and d.obs["obs_wdir10"].iloc[1] == 200.0
    assert np.isnan(d.obs["obs_tp"].iloc[0]) and d.obs["obs_tp"].iloc[1] == 1.5
    assert "obs_rh" not in d.obs  # GHCNh's rh from t/td: the build derives it after QC
    assert d.removed.empty  # missing is not a quality removal


# --- 6: rh derived after quality control ----------------------------------------------------


def test_rh_is_derived_from_quality_controlled_t_and_td(tmp_path):
    synthetic.write_archive(tmp_path / "nwp", [T0], [2, 3, 4, 6])
    t = [280.0, 280.1, 280.2, 300.0, 280.4, 280.5, 280.0, 280.7]  # 03:00 spike
    td = [275.0, 275.1, 275.2, 275.3, 275.4, 275.5, 280.5, 275.7]  # 06:00 td > t
    rows = [
        f"S1,2025-01-01T{h:02d}:00:00Z,50,5,100,{a},{b}"
        for h, (a, b) in enumerate(zip(t, td, strict=True))
    ]
    obs = tmp_path / "obs.csv"
    obs.write_text("station,time,latitude,longitude,altitude,t2m,td2m\n" + "\n".join(rows))
    spec = {
        "nwp": {"source": "archive", "paths": str(tmp_path / "nwp" / "*.grib")},
        "truth": {"source": "table", "paths": [str(obs)]},
        "variables": ["t2m", "td2m", "rh"],
        "period": {"start": "2025-01-01", "end": "2025-01-01"},
        "lead_times": [2, 3, 4, 6],
    }
    build(parse_spec(spec), tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "table.parquet").set_index("lead_time")
    assert np.isnan(table.loc[3.0, "obs_t2m"]) and np.isnan(table.loc[3.0, "obs_rh"])
    assert np.isnan(table.loc[6.0, "obs_td2m"]) and np.isnan(table.loc[6.0, "obs_rh"])
    assert table.loc[2.0, "obs_rh"] == pytest.approx(0.7051, abs=1e-4)
    assert table["obs_rh"].dropna().between(0, 1).all()


# --- 7: table units keyed by the variable ---------------------------------------------------


def test_table_units_match_alias_columns_by_variable(tmp_path):
    p = tmp_path / "obs.csv"
    p.write_text("station,time,precip,tp_hours,wind_speed\nS1,2025-01-01T06:00,0.5,6,10\n")
    d = ghcnh.read_table(str(p), units={"tp": "in", "ws10": "knot"})
    assert d.obs["obs_tp"].iloc[0] == pytest.approx(12.7)
    assert d.obs["obs_ws10"].iloc[0] == pytest.approx(5.1444, abs=1e-4)
    d = ghcnh.read_table(str(p), units={"precip": "in", "obs_ws10": "knot"})  # by column
    assert d.obs["obs_tp"].iloc[0] == pytest.approx(12.7)
    assert d.obs["obs_ws10"].iloc[0] == pytest.approx(5.1444, abs=1e-4)


def test_table_unit_key_matching_no_column_is_an_error(tmp_path):
    p = tmp_path / "obs.csv"
    p.write_text("station,time,precip,wind_speed\nS1,2025-01-01T06:00,0.5,10\n")
    with pytest.raises(SourceError) as err:
        ghcnh.read_table(str(p), units={"t2m": "degC", "tp": "in"})
    msg = str(err.value)
    assert str(p) in msg and "['t2m']" in msg and "['precip', 'wind_speed']" in msg
    with pytest.raises(SourceError, match="column 'precip' is given two units"):
        ghcnh.read_table(str(p), units={"tp": "in", "precip": "mm"})


def test_table_units_of_rh_and_gust_and_two_columns_of_one_variable(tmp_path):
    p = tmp_path / "obs.csv"
    p.write_text("station,time,rh,gust\nS1,2025-01-01T06:00,80,20\n")
    d = ghcnh.read_table(str(p), units={"rh": "%", "gust": "knot"})
    assert d.obs["obs_rh"].iloc[0] == pytest.approx(0.8)
    assert d.obs["obs_gust"].iloc[0] == pytest.approx(10.2889, abs=1e-4)
    with pytest.raises(SourceError, match="unit 'hPa' not accepted for rh"):
        ghcnh.read_table(str(p), units={"rh": "hPa"})
    p.write_text("station,time,t2m,temperature\nS1,2025-01-01T06:00,280,7\n")
    with pytest.raises(SourceError, match="columns 't2m' and 'temperature' both hold t2m"):
        ghcnh.read_table(str(p))


# --- 8: ISD calm (0000) vs missing speed (9999) ---------------------------------------------


def _wind(wnd: str) -> tuple[dict[str, float], dict[str, int]]:
    bad: dict[str, int] = {}
    return isd.decode({"WND": wnd}, bad), bad


def test_isd_calm_needs_speed_0000():
    values, bad = _wind("999,9,C,0000,1")
    assert values["ws10"] == 0.0 and np.isnan(values["wdir10"]) and bad == {}
    values, bad = _wind("999,9,C,9999,9")  # type C, speed missing: missing, not calm
    assert np.isnan(values["ws10"]) and np.isnan(values["wdir10"]) and bad == {}
    values, bad = _wind("999,9,C,0050,1")  # "calm" at 5 m/s: contradictory, removed
    assert np.isnan(values["ws10"]) and bad == {"ws10": 1}
    values, _ = _wind("270,1,N,0050,1")
    assert values["ws10"] == 5.0 and values["wdir10"] == 270.0


def test_isd_real_files_calm_and_missing(mirror):
    norway = isd.read_isd(str(mirror / "isd-samples" / "014160-99999-2016.gz"))
    assert norway.obs["obs_ws10"].isna().all()  # every wind '999,9,C,9999,9' or type 9
    asos = isd.read_isd(str(mirror / "isd-asos-2025" / "720534-00161-2025.gz"))
    assert (asos.obs["obs_ws10"] == 0.0).sum() == 996  # the C,0000 calms


# --- 9: direction from the speed's report ---------------------------------------------------


def test_wind_direction_comes_from_the_speed_report():
    obs = pd.DataFrame(
        {
            "station": ["K", "K"],
            "time": pd.to_datetime(["2025-01-01T02:35", "2025-01-01T02:55"], utc=True),
            "obs_ws10": [3.0, 0.0],
            "obs_wdir10": [180.0, np.nan],  # 02:55 is a calm
        }
    )
    fc = pd.DataFrame({"station": ["K"], "valid_time": [pd.Timestamp("2025-01-01T03", tz="UTC")]})
    out = pair(fc, obs, ["ws10", "wdir10"], accumulation_hours=1, match_minutes=30)
    assert out["obs_ws10"].iloc[0] == 0.0 and np.isnan(out["obs_wdir10"].iloc[0])
    alone = pair(fc, obs.drop(columns="obs_ws10"), ["wdir10"], accumulation_hours=1,
                 match_minutes=30)  # fmt: skip
    assert alone["obs_wdir10"].iloc[0] == 180.0  # no speeds at all: direction on its own


# --- 10, 11: the spec ------------------------------------------------------------------------

BASE = {
    "nwp": {"source": "archive", "paths": "nwp/*.grib"},
    "truth": {"source": "isd", "paths": ["x.gz"]},
    "variables": ["ws10"],
    "period": {"start": "2016-09-25", "end": "2016-09-25"},
    "lead_times": [0, 120],
}


def _error(tmp_path, **changes: object) -> str:
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    with pytest.raises(SourceError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    return msg


def test_duplicate_stations_are_refused(tmp_path):
    stations = ["014160-99999", "014160-99999", {"station": "014160-99999", "latitude": 40.0}]
    msg = _error(tmp_path, stations=stations)
    assert "stations: 014160-99999 listed more than once" in msg
    assert "stations[1]" in _error(tmp_path, stations=["A", None])
    assert "stations[0]: the mapping needs 'station'" in _error(
        tmp_path, stations=[{"latitude": 1.0}]
    )
    assert "stations[0].latitude: expected a number in [-90, 90]" in _error(
        tmp_path, stations=[{"station": "A", "latitude": 95}]
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"cycles": 12}, "cycles: expected a list of cycle hours (whole numbers 0-23)"),
        ({"cycles": 0}, "cycles: expected a list of cycle hours"),
        ({"cycles": [24]}, "cycles: [24] not allowed"),
        ({"cycles": [6.5]}, "cycles: [6.5] not allowed"),
        ({"cycles": ["00"]}, "cycles: ['00'] not allowed"),
        ({"cycles": [0, 0]}, "cycles: [0] given more than once"),
        ({"lead_times": "12"}, "lead_times: expected a list of lead times in hours"),
        ({"lead_times": 12}, "lead_times: expected a list of lead times in hours"),
        ({"lead_times": [6, "x"]}, "lead_times: ['x'] not allowed"),
        ({"lead_times": [-6]}, "lead_times: [-6] not allowed"),
        ({"accumulation_hours": "six"}, "accumulation_hours: expected a number of hours > 0"),
        ({"accumulation_hours": 0}, "accumulation_hours: expected a number of hours > 0"),
        ({"match_minutes": -30}, "match_minutes: expected a number of minutes >= 0"),
        ({"match_minutes": True}, "match_minutes: expected a number of minutes >= 0"),
        ({"stations": "014160-99999"}, "stations: expected a list of station ids or mappings"),
    ],
)
def test_spec_values_name_file_key_and_expectation(tmp_path, changes, expected):
    assert expected in _error(tmp_path, **changes)


def test_spec_values_accepted():
    spec = parse_spec({**BASE, "cycles": [12, 0], "stations": [14160, "B"], "match_minutes": 0})
    assert spec.cycles == [0, 12] and spec.lead_times == [0.0, 120.0]
    assert [s["station"] for s in spec.stations] == ["14160", "B"] and spec.match_minutes == 0
    assert parse_spec(BASE).cycles == [] and parse_spec(BASE).accumulation_hours == 6.0


def test_truth_readers_name_the_file_for_compressed_or_wrong_files(mirror, tmp_path):
    fixed = mirror / "isd-samples" / "014160-99999-2016.gz"
    with pytest.raises(SourceError, match=rf"{fixed}: an ISD fixed-width file.*source 'isd'"):
        isd.read_global_hourly(str(fixed))
    csv = mirror / "isd-samples" / "00702699999.csv"
    with pytest.raises(SourceError, match=rf"{csv}: line 1 .*use truth source 'isd-csv'"):
        isd.read_isd(str(csv))
    zipped = tmp_path / "hourly.csv.gz"
    zipped.write_bytes(gzip.compress(csv.read_bytes()))
    assert len(isd.read_global_hourly(str(zipped)).obs) == 6843
    binary = tmp_path / "obs.csv"
    binary.write_bytes(b"station,time\n\xff\xfe\x00bad")
    with pytest.raises(SourceError, match=rf"{binary}: not a readable CSV or Parquet table"):
        ghcnh.read_table(str(binary))
    table = tmp_path / "obs.csv.gz"
    table.write_bytes(gzip.compress(b"station,time,t2m\nA,2025-01-01T00:00,271\n"))
    assert ghcnh.read_table(str(table)).obs["obs_t2m"].iloc[0] == 271.0


def test_cli_spec_error_is_one_line(tmp_path, capsys):
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump({**BASE, "cycles": 12}))
    assert main(["--config", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: cycles: expected a list" in err
    assert "unexpected error" not in err
