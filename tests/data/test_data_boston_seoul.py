"""boston-metar and seoul-ldaps converters: synthetic detector tests and real-data checks."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.data import registry
from probcast.data.datasets import boston_metar, seoul_ldaps
from probcast.data.prepare import Canonical, prepare
from probcast.schema import KEY_COLUMNS, VARIABLES

# ---------------------------------------------------------------- synthetic: boston checks


def _station_frame(seed: int = 0, n: int = 200, altitude: float = 675.0) -> pd.DataFrame:
    """A consistent model-vs-observation frame for one station (canonical units)."""
    rng = np.random.default_rng(seed)
    t = 295.0 + 5.0 * np.sin(np.arange(n) / 4.0) + rng.normal(0, 0.5, n)
    sp = 93500.0 + 500.0 * np.sin(np.arange(n) / 30.0)
    ws = 4.0 + 2.0 * np.cos(np.arange(n) / 5.0)
    msl = sp + boston_metar.expected_msl_minus_sp(93500.0, altitude)
    return pd.DataFrame(
        {
            "lead_time": np.arange(n, dtype="float64") % 48 + 1,
            "fc_t2m": t + rng.normal(0, 1.0, n),
            "fc_td2m": t - 10 + rng.normal(0, 1.0, n),
            "fc_u10": ws / np.sqrt(2),
            "fc_v10": ws / np.sqrt(2),
            "fc_sp": sp + rng.normal(0, 50, n),
            "fc_msl": msl,
            "fc_tcc": rng.uniform(0, 1, n),
            "fc_ws10": ws + rng.normal(0, 0.3, n),
            "obs_t2m": t,
            "obs_td2m": t - 10,
            "obs_ws10": ws,
            "obs_sp": sp,
            "obs_tcc": rng.uniform(0, 1, n),
        }
    )


def test_consistency_accepts_a_good_model() -> None:
    assert boston_metar.consistency_problems(_station_frame(), altitude=675.0) == []


def test_consistency_catches_gfs_like_corruption() -> None:
    df = _station_frame()
    bad = df.copy()
    bad["fc_msl"] = bad["fc_sp"]  # sea-level pressure equal to surface pressure at 675 m
    problems = boston_metar.consistency_problems(bad, altitude=675.0)
    assert any("msl - sp" in p for p in problems)
    shuffled = df.copy()
    shuffled["fc_t2m"] = np.random.default_rng(1).permutation(df["fc_t2m"].to_numpy())
    problems = boston_metar.consistency_problems(shuffled, altitude=675.0)
    assert any(p.startswith("t2m vs observations") for p in problems)


def test_consistency_catches_physical_range() -> None:
    df = _station_frame()
    df.loc[0, "fc_tcc"] = 5.0  # percent left unconverted
    assert any("tcc values outside" in p for p in boston_metar.consistency_problems(df, 675.0))


def test_swapped_pressure_labels_are_found() -> None:
    df = _station_frame()
    swapped = df.rename(columns={"fc_sp": "fc_msl", "fc_msl": "fc_sp"})
    assert boston_metar.swap_needed(swapped, "fc_sp", "fc_msl", "obs_sp", None)
    assert not boston_metar.swap_needed(df, "fc_sp", "fc_msl", "obs_sp", None)
    fixed, report = boston_metar.resolve_labels(swapped, "TEST")
    assert np.allclose(fixed["fc_sp"], df["fc_sp"])
    assert any("swapped" in line for line in report)


# ---------------------------------------------------------------- synthetic: seoul repairs


def test_decimal_loss_is_repaired_and_counted() -> None:
    df = pd.DataFrame(
        {
            "station": ["01", "01", "02", "02", "03"],
            "lon": [126991.0, 126991.0, 126.91, 126.91, 5.0],
            "DEM": [212335.0, 212335.0, 44.7624, 44.7624, 30.0],
        }
    )
    ranges = {"lon": (126.5, 127.5), "DEM": (0.0, 1000.0)}
    out, report = seoul_ldaps.repair_decimal_loss(df, ranges)
    assert out["lon"].tolist()[:4] == [126.991, 126.991, 126.91, 126.91]
    assert np.isnan(out["lon"].iloc[4])  # 5.0 is no lost decimal point: set missing
    assert out["DEM"].tolist() == [212.335, 212.335, 44.7624, 44.7624, 30.0]
    assert any(line.startswith("lon: 2 value(s)") and "stations 01" in line for line in report)
    assert any(line.startswith("lon: 1 value(s)") and "set to NaN" in line for line in report)
    assert any(line.startswith("DEM: 2 value(s)") for line in report)
    assert seoul_ldaps.check_static(out.dropna(), ("lon", "DEM")) == []


def test_check_static_reports_varying_station_values() -> None:
    df = pd.DataFrame({"station": ["01", "01"], "lat": [37.5, 37.6]})
    assert seoul_ldaps.check_static(df, ("lat",)) == ["lat: not constant within stations ['01']"]


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=126500, max_value=127500), st.floats(126.5, 127.5))
def test_decimal_loss_repair_inverts_the_damage(milli: int, intact: float) -> None:
    df = pd.DataFrame({"station": ["a", "b"], "lon": [float(milli), intact]})
    out, _ = seoul_ldaps.repair_decimal_loss(df, {"lon": (126.5, 127.5)})
    assert out["lon"].iloc[0] == pytest.approx(milli / 1000.0)
    assert out["lon"].iloc[1] == intact


# ---------------------------------------------------------------- real data


@cache
def _converted(name: str, mirror: Path) -> Canonical:
    files = registry.fetch(name)
    module = boston_metar if name == "boston-metar" else seoul_ldaps
    return module.convert(files)


def _check_table(c: Canonical, n_stations: int) -> pd.DataFrame:
    df = c.data
    assert isinstance(df, pd.DataFrame)
    assert not df.duplicated(list(KEY_COLUMNS)).any()
    assert df["station"].nunique() == n_stations
    assert (df["valid_time"] == df["init_time"] + pd.to_timedelta(df["lead_time"], "h")).all()
    for var in c.targets:
        info = VARIABLES[var]
        for col in (f"fc_{var}", f"obs_{var}"):
            vals = df[col].dropna()
            assert len(vals) > 0, col
            assert vals.between(info.valid_min, info.valid_max).all(), col
    return df


@pytest.mark.realdata
def test_boston_converter(mirror: Path) -> None:
    c = _converted("boston-metar", mirror)
    df = _check_table(c, n_stations=2)
    assert c.targets == ["t2m", "td2m", "ws10", "sp", "tcc"]
    assert df["lead_time"].min() == 1 and df["lead_time"].max() == 240
    assert df["latitude"].notna().all() and df["altitude"].notna().all()
    # GFS corruption is caught by the checks, reported and excluded.
    assert any(line.startswith("GFS: EXCLUDED") for line in c.report)
    assert any(line.startswith("GFS KBOS: median msl - sp") for line in c.report)
    assert not any(col.endswith("_gfs") for col in df.columns)
    # The swapped pressure labels are found; ECMWF sp then matches the observed pressure.
    assert any("ECMWF: columns labelled 'sp' and 'msl' are swapped" in x for x in c.report)
    assert (df["fc_sp"] - df["obs_sp"]).abs().median() < 300.0
    assert (df["fc_msl"] > df["fc_sp"]).mean() > 0.95
    # HRRR only up to 48 h; tcc is a fraction.
    assert df.loc[df["lead_time"] > 48, "fc_t2m_hrrr"].isna().all()
    assert df.loc[df["lead_time"] <= 48, "fc_t2m_hrrr"].notna().mean() > 0.9
    assert df["obs_tcc"].max() <= 1.0 and df["fc_tcc"].max() <= 1.0
    # The raw ECMWF forecast is skilful at short range.
    short = df[df["lead_time"] <= 24]
    assert (short["fc_t2m"] - short["obs_t2m"]).abs().mean() < 4.0


@pytest.mark.realdata
def test_seoul_converter(mirror: Path) -> None:
    c = _converted("seoul-ldaps", mirror)
    df = _check_table(c, n_stations=25)
    assert c.targets == ["tmax", "tmin"]
    assert (df["lead_time"] == 24.0).all()
    assert df["longitude"].between(126.8, 127.2).all()
    assert df["latitude"].between(37.4, 37.7).all()
    assert df["altitude"].between(10.0, 250.0).all()
    assert df["stat_slope"].between(0.0, 6.0).all()
    assert df.groupby("station")[["latitude", "longitude", "altitude"]].nunique().max().max() == 1
    lines = [x for x in c.report if "lost their decimal point" in x]
    assert {x.split(":")[0] for x in lines} == {"lat", "lon", "DEM", "Slope", "Solar_radiation"}
    assert any(x.startswith("lon: 6820 value(s)") for x in lines)
    assert any("162 incomplete row(s)" in x for x in c.report)
    assert len(df) == 7750 - 162
    assert (df["fc_tmax"] - df["obs_tmax"]).abs().mean() < 2.0


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "test_start"), [("boston-metar", "2021-06-21"), ("seoul-ldaps", "2017-01-01")]
)
def test_fixed_split_has_no_leakage(
    mirror: Path, tmp_path: Path, name: str, test_start: str
) -> None:
    p = prepare(name, out_dir=tmp_path)
    start = pd.Timestamp(test_start, tz="UTC")
    assert isinstance(p.train, pd.DataFrame) and isinstance(p.test, pd.DataFrame)
    assert len(p.train) > 0 and len(p.test) > 0
    assert (p.train["init_time"] < start).all() and (p.train["valid_time"] < start).all()
    assert (p.test["init_time"] >= start).all()
    assert p.paths["train"].exists() and p.paths["test"].exists()
