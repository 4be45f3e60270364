"""Registry fetching and the station-table benchmark converters on the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probcast.data import prepare, registry
from probcast.data.datasets.sydney_rain import repair_times
from probcast.data.datasets.verif_norway import read_verif_reference
from probcast.schema import VARIABLES
from probcast.validate import validate_station_table

# --- registry ------------------------------------------------------------------------------


def test_tampered_mirror_file_gives_sha_mismatch(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pnw-t2m").mkdir()
    (tmp_path / "pnw-t2m" / "srft.rda").write_bytes(b"not the real file")
    monkeypatch.setenv(registry.MIRROR_ENV, str(tmp_path))
    with pytest.raises(registry.DatasetError, match=r"srft\.rda: sha256 mismatch"):
        registry.fetch("pnw-t2m")


def test_missing_mirror_file_gives_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(registry.MIRROR_ENV, str(tmp_path))
    with pytest.raises(registry.DatasetError) as info:
        registry.fetch("sydney-rain")
    message = str(info.value)
    assert "NWP.rain.rda" in message
    assert "missing from the mirror" in message
    assert registry.MIRROR_ENV in message


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(registry.DatasetError, match=r"unknown dataset 'nope'.*pnw-t2m"):
        registry.get_info("nope")


def test_station_converters_are_registered() -> None:
    assert {"verif-norway-precip", "pnw-t2m", "sydney-rain"} <= set(prepare.preparable())


def test_sydney_time_repair_reads_sydney_clock_as_utc() -> None:
    # 2018-03-20 01:00 Sydney daylight time (UTC+11) was stored for 01:00 UTC, and
    # 2018-07-01 07:00 Sydney standard time (UTC+10) for 07:00 UTC.
    stored = pd.Series(
        [
            pd.Timestamp("2018-03-20 01:00", tz="Australia/Sydney").timestamp(),
            pd.Timestamp("2018-07-01 07:00", tz="Australia/Sydney").timestamp(),
        ]
    )
    fixed = repair_times(stored)
    assert fixed.tolist() == [pd.Timestamp("2018-03-20 01:00Z"), pd.Timestamp("2018-07-01 07:00Z")]


# --- real data -----------------------------------------------------------------------------


def _convert(name: str) -> prepare.Canonical:
    return prepare.converter(name)(registry.fetch(name))


def _check_split(name: str, canonical: prepare.Canonical, test_start: str) -> tuple:
    train, test = prepare.split(name, canonical)
    start = pd.Timestamp(test_start, tz="UTC")
    assert train["init_time"].max() < start <= test["init_time"].min()
    assert train["valid_time"].max() < test["init_time"].min()
    assert len(train) + len(test) <= len(canonical.data)
    return train, test


def _check_table(canonical: prepare.Canonical, target: str) -> pd.DataFrame:
    table = canonical.data
    assert isinstance(table, pd.DataFrame)
    assert canonical.targets == [target]
    again = validate_station_table(table)  # the converter's output is canonical
    pd.testing.assert_frame_equal(again, table)
    var = VARIABLES[target]
    for col in (f"fc_{target}", f"obs_{target}"):
        finite = table[col].dropna()
        assert var.valid_min <= finite.min() and finite.max() <= var.valid_max
    return table


@pytest.mark.realdata
def test_fetch_from_mirror_verifies_files(mirror: Path) -> None:
    files = registry.fetch("verif-norway-precip")
    assert set(files) == {"raw.nc", "cal.nc"}
    assert files["raw.nc"] == mirror / "verif-norway-precip" / "raw.nc"


@pytest.mark.realdata
def test_verif_norway(mirror: Path) -> None:
    canonical = _convert("verif-norway-precip")
    table = _check_table(canonical, "tp")
    assert len(table) == 78498 - 8018  # the undeclared fill values are dropped
    assert table["station"].nunique() == 147
    assert sorted(table["lead_time"].unique()) == [6.0, 12.0, 18.0, 24.0, 30.0, 36.0]
    assert table["init_time"].min() == pd.Timestamp("2016-10-01T00:00Z")
    assert table["init_time"].max() == pd.Timestamp("2016-12-31T00:00Z")
    assert table[["fc_tp", "obs_tp"]].notna().all().all()
    assert any("9.96921e+36" in line or "9.96921e36" in line for line in canonical.report)
    train, test = _check_split("verif-norway-precip", canonical, "2016-12-01")
    assert len(train) == 47132 and len(test) == 23348


@pytest.mark.realdata
def test_verif_reference_fields(mirror: Path) -> None:
    files = registry.fetch("verif-norway-precip")
    ref = read_verif_reference(files["cal.nc"])
    assert dict(ref.sizes) == {
        "init_time": 89, "lead_time": 6, "station": 147, "threshold": 8, "quantile": 2
    }  # fmt: skip
    assert ref.attrs["units"] == "mm" and ref.attrs["source_units"] == "mmoC"
    cdf = ref["cdf"].values
    finite = cdf[np.isfinite(cdf)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    # a CDF does not decrease with the threshold
    assert (np.diff(ref["cdf"].values, axis=-1)[np.isfinite(np.diff(cdf, axis=-1))] >= -1e-6).all()
    assert float(ref["obs"].max()) < 1000.0  # the fill value is masked


@pytest.mark.realdata
def test_pnw_t2m(mirror: Path) -> None:
    canonical = _convert("pnw-t2m")
    table = _check_table(canonical, "t2m")
    assert len(table) == 36826
    assert table["station"].nunique() == 969
    assert (table["lead_time"] == 48.0).all()
    assert table["valid_time"].min() == pd.Timestamp("2004-01-01T00:00Z")
    assert table["init_time"].min() == pd.Timestamp("2003-12-30T00:00Z")
    members = [c for c in table.columns if c.startswith("fc_t2m_")]
    assert len(members) == 7 and "fc_t2m_gfs" not in members
    assert not table["station"].str.contains(" ").any()
    assert table["altitude"].min() >= 0.0  # -9999 codes removed
    assert table["obs_t2m"].isna().sum() == 2  # gross errors removed
    train, test = _check_split("pnw-t2m", canonical, "2004-02-01")
    assert len(train) == 21350 and len(test) == 14731


@pytest.mark.realdata
def test_sydney_rain(mirror: Path) -> None:
    canonical = _convert("sydney-rain")
    table = _check_table(canonical, "tp")
    assert len(table) == 818240 - 39658  # rows without a forecast excluded
    assert table["fc_tp"].notna().all()
    assert table["station"].nunique() == 158
    assert (table["lead_time"] == 1.0).all()
    assert set(table["init_time"].dt.hour.unique()) == {0, 6, 12, 18}
    assert any("4.85%" in line for line in canonical.report)
    assert any("excluded 39658" in line for line in canonical.report)
    train, test = _check_split("sydney-rain", canonical, "2020-10-01")
    assert len(train) == 552642 and len(test) == 225940
