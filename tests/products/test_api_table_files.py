"""The Python API of prediction-table files: units read back canonical, units recorded on
writing, the CSV and its sidecar written as one, NumPy numbers in the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probcast import io
from probcast.products.table import META_KEY
from probcast.products.table_files import read_predictions, read_sidecar, write_predictions
from probcast.products.units import read_units, table_to_units
from probcast.testing.verification import (
    members_table,
    normal_params_table,
    quantiles_table,
    truth_table,
)

SUFFIXES = [".csv", ".parquet", ".nc"]
KEYS = ["station", "init_time", "lead_time"]


def _forecast() -> pd.DataFrame:
    """A canonical forecast of t2m in every form (parameters, members, quantiles, p_gt)."""
    truth, mu, sigma = truth_table(n_stations=3, n_inits=4)
    fc = normal_params_table(truth, mu, sigma)
    fc = fc.merge(members_table(truth, mu, sigma, n_members=5))
    fc = fc.merge(quantiles_table(truth, mu, sigma, levels=(0.1, 0.5, 0.9)))
    fc["t2m_p_gt_273.15"] = 0.5
    return fc


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(KEYS, ignore_index=True)


def _same_values(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got, want = _sorted(got), _sorted(want)
    values = [c for c in want.columns if c not in (*KEYS, "valid_time")]
    assert sorted(values) == sorted(c for c in got.columns if c not in (*KEYS, "valid_time"))
    for col in values:
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, err_msg=col)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_read_predictions_gives_canonical_units_by_default(tmp_path: Path, suffix: str):
    fc = _forecast()
    user, meta = table_to_units(fc, {"t2m": "degC"}, {"t2m": "normal"})
    path = write_predictions(
        user, tmp_path / f"p{suffix}", families={"t2m": "normal"}, metadata=meta
    )
    table, families = read_predictions(path)
    assert families == {"t2m": "normal"}
    _same_values(table, fc)  # t2m_p_gt_273.15 named by its canonical threshold again
    raw, _ = read_predictions(path, canonical=False)  # the file's own units, when wanted
    _same_values(raw, user)
    assert "t2m_p_gt_0" in raw


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_write_predictions_records_units_as_predict_does(tmp_path: Path, suffix: str):
    fc = _forecast()
    # truncated_normal has no form in degC: its parameters stay canonical (param_units)
    for family in ("normal", "truncated_normal"):
        user, meta = table_to_units(fc, {"t2m": "degC"}, {"t2m": family})
        path = tmp_path / f"{family}{suffix}"
        write_predictions(user, path, families={"t2m": family}, units={"t2m": "degC"})
        assert read_units(path) == meta
        _same_values(read_predictions(path)[0], fc)


def test_write_predictions_refuses_inconsistent_units(tmp_path: Path):
    fc = _forecast()
    with pytest.raises(ValueError, match="'tp', but the table has no forecast"):
        write_predictions(fc, tmp_path / "a.parquet", units={"tp": "cm"})
    with pytest.raises(ValueError, match="disagree with the units of metadata"):
        write_predictions(
            fc, tmp_path / "b.parquet", units={"t2m": "degC"}, metadata={"units": {"t2m": "degF"}}
        )
    with pytest.raises(ValueError, match=r"^units: .*kg"):
        write_predictions(fc, tmp_path / "c.parquet", units={"t2m": "kg"})
    assert not list(tmp_path.iterdir())


def test_csv_is_not_written_when_its_sidecar_cannot_be(tmp_path: Path):
    fc = _forecast()
    path = tmp_path / "p.csv"
    (tmp_path / "p.csv.json").mkdir()  # the sidecar's place is taken
    with pytest.raises(io.WriteError, match=r"p\.csv\.json"):
        write_predictions(fc, path, families={"t2m": "normal"})
    assert not path.exists()  # no CSV without its families
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv.json"]  # no temporaries


def test_failed_sidecar_write_keeps_the_old_csv_pair(tmp_path: Path, monkeypatch):
    fc = _forecast()
    path = tmp_path / "p.csv"
    write_predictions(fc, path, families={"t2m": "normal"}, metadata={"run": 1})
    before = path.read_bytes(), (tmp_path / "p.csv.json").read_bytes()
    real = io.write_text

    def failing(target, text):
        if str(target).endswith(".json"):
            raise io.WriteError(28, "No space left on device", str(target))
        return real(target, text)

    monkeypatch.setattr(io, "write_text", failing)
    with pytest.raises(io.WriteError):
        write_predictions(fc.iloc[:3], path, families={"t2m": "normal"}, metadata={"run": 2})
    assert (path.read_bytes(), (tmp_path / "p.csv.json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.csv.json"]


def _metadata(path: Path) -> dict:
    if path.suffix == ".csv":
        return read_sidecar(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(path).metadata[META_KEY.encode()])
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return json.loads(ds.attrs[META_KEY])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_numpy_numbers_in_metadata_are_written_as_numbers(tmp_path: Path, suffix: str):
    fc = _forecast()
    extra = {"spread": np.float32(1.5), "n": np.int64(3), "levels": np.array([0.1, 0.9])}
    path = write_predictions(fc, tmp_path / f"p{suffix}", metadata=extra)
    meta = _metadata(path)
    assert meta["spread"] == 1.5 and meta["n"] == 3 and meta["levels"] == [0.1, 0.9]
