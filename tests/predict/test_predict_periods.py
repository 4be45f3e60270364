"""Statistic periods end to end: recorded by the data, kept by the model, checked at
prediction, stated in the products (probcast.periods)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast import periods
from probcast.cli import main
from probcast.ingest.gridded import write_dataset
from probcast.ingest.tables import write_table
from probcast.model.artefact import load
from probcast.testing.grids import forecast_grid
from probcast.testing.stations import station_table

SHAPE = (8, 10)


def _with(obj, text: str | None):
    obj = obj.copy()
    obj.attrs.pop(periods.ATTR, None)
    if text is not None:
        obj.attrs[periods.ATTR] = text
    return obj


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on a grid of 6-h precipitation, and test runs."""
    root = tmp_path_factory.mktemp("periods")
    ds = _with(forecast_grid(SHAPE, 8), '{"tp": 6.0}')
    write_dataset(ds.isel(forecast_reference_time=slice(0, 6)), root / "train.nc")
    test = ds.isel(forecast_reference_time=slice(6, 8)).drop_vars("obs_tp")
    write_dataset(test, root / "test6.nc")
    write_dataset(_with(test, '{"tp": 24.0}'), root / "test24.nc")
    write_dataset(_with(test, None), root / "unknown.nc")
    args = [f"--workdir={root / 'model'}", f"--config.data.path={root / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1"]) == 0
    return root


def test_the_model_keeps_the_period_of_its_training_data(grid: Path) -> None:
    domain = json.loads((grid / "model" / "domain.json").read_text())
    assert domain["periods"] == {"tp": 6.0}
    assert load(grid / "model").periods == {"tp": 6.0}


def test_grid_products_state_the_period(grid: Path) -> None:
    out = grid / "out" / "p.nc"
    rc = main(["predict", f"--model={grid / 'model'}", f"--input={grid / 'test6.nc'}",
               f"--output={out}", "--members=3", "--thresholds=tp:1"])  # fmt: skip
    assert rc == 0
    for name in ("members", "percentiles"):
        with xr.open_dataset(grid / "out" / f"p_{name}.nc") as ds:
            assert ds["tp"].attrs["statistic_period"] == "PT6H"
            assert ds["tp"].attrs["cell_methods"] == ("time: sum (over the 6 h ending at time)")
    with xr.open_dataset(grid / "out" / "p_probabilities_tp.nc") as ds:
        prob = ds["probability_of_precipitation_amount_above_threshold"]
        assert prob.attrs["statistic_period"] == "PT6H"
    with xr.open_dataset(grid / "out" / "p_parameters.nc") as ds:
        params = [v for n, v in ds.data_vars.items() if str(n).startswith("tp_")]
        assert params and all(v.attrs["statistic_period"] == "PT6H" for v in params)


def test_stated_periods_pass_the_cf_checker(grid: Path, tmp_path: Path) -> None:
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    one = xr.open_dataset(grid / "test6.nc").isel(forecast_reference_time=[0])
    path = write_dataset(one, tmp_path / "run.nc")
    out = tmp_path / "o" / "p.nc"
    assert main(["predict", f"--model={grid / 'model'}", f"--input={path}",
                 f"--output={out}", "--members=2"]) == 0  # fmt: skip
    CheckSuite.load_all_available_checkers()
    for product in sorted(out.parent.glob("*.nc")):
        report = tmp_path / f"{product.stem}.json"
        ComplianceChecker.run_checker(
            str(product), ["cf:1.8"], 0, "normal", output_filename=str(report),
            output_format="json",
        )  # fmt: skip
        result = json.loads(report.read_text())["cf:1.8"]
        failed = [
            f"{c['name']}: {c['msgs']}"
            for level in ("high_priorities", "medium_priorities")
            for c in result[level]
            if c["value"][0] < c["value"][1]
        ]
        assert failed == [], product.name


def test_a_grid_of_another_period_is_refused(grid: Path, capsys) -> None:
    # a 6-h model fed 24-h amounts gave 24-h-looking numbers with exit status 0
    out = grid / "wrong" / "p.nc"
    rc = main(["predict", f"--model={grid / 'model'}", f"--input={grid / 'test24.nc'}",
               f"--output={out}"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert "test24.nc: tp is over 24 h, but the model was trained on 6-h tp" in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_grid_without_a_period_is_taken_as_the_models(grid: Path) -> None:
    out = grid / "unknown" / "p.nc"
    rc = main(["predict", f"--model={grid / 'model'}", f"--input={grid / 'unknown.nc'}",
               f"--output={out}"])  # fmt: skip
    assert rc == 0
    with xr.open_dataset(grid / "unknown" / "p_percentiles.nc") as ds:
        assert ds["tp"].attrs["statistic_period"] == "PT6H"


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("station_periods")
    table = station_table(n_stations=4, n_inits=40, targets=("tp",))
    split = table["init_time"] < table["init_time"].min() + pd.Timedelta(days=30)
    write_table(periods.recorded(table[split].copy(), {"tp": 6.0}), root / "train.parquet")
    write_table(periods.recorded(table[~split].copy(), {"tp": 6.0}), root / "test.parquet")
    write_table(periods.recorded(table[~split].copy(), {"tp": 12.0}), root / "test12.parquet")
    args = [f"--workdir={root / 'model'}", f"--config.data.path={root / 'train.parquet'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1"]) == 0
    return root


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".nc"])
def test_station_predictions_record_the_period(stations: Path, suffix: str) -> None:
    from probcast.products.table_files import read_sidecar

    out = stations / f"pred{suffix}"
    rc = main(["predict", f"--model={stations / 'model'}",
               f"--input={stations / 'test.parquet'}", f"--output={out}"])  # fmt: skip
    assert rc == 0
    if suffix == ".csv":
        meta = read_sidecar(out)
    elif suffix == ".nc":
        with xr.open_dataset(out) as ds:
            meta = json.loads(ds.attrs["probcast"])
    else:
        import pyarrow.parquet as pq

        from probcast.products.table import META_KEY

        meta = json.loads(pq.read_schema(out).metadata[META_KEY.encode()])
    assert meta["periods"] == {"tp": 6.0}


def test_a_station_table_of_another_period_is_refused(stations: Path, capsys) -> None:
    out = stations / "wrong.parquet"
    rc = main(["predict", f"--model={stations / 'model'}",
               f"--input={stations / 'test12.parquet'}", f"--output={out}"])  # fmt: skip
    assert rc == 1
    assert "tp is over 12 h, but the model was trained on 6-h tp" in capsys.readouterr().err
    assert not out.exists()


def test_the_config_states_a_period_the_table_lacks(stations: Path, tmp_path: Path) -> None:
    table = pd.read_parquet(stations / "train.parquet")
    table.attrs = {}
    write_table(table, tmp_path / "bare.csv")
    args = [f"--workdir={tmp_path / 'm'}", f"--config.data.path={tmp_path / 'bare.csv'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1",
                 "--config.data.periods=tp:3"]) == 0  # fmt: skip
    assert load(tmp_path / "m").periods == {"tp": 3.0}


def test_the_config_must_agree_with_the_table(stations: Path, tmp_path: Path, capsys) -> None:
    args = [f"--workdir={tmp_path / 'm'}", f"--config.data.path={stations / 'train.parquet'}"]
    rc = main(["train", "--config=tiny", *args, "--config.data.periods=tp:24"])
    assert rc == 1
    assert "data.periods gives tp 24 h, but the data records 6 h" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("bad", ["tp:0", "tp:-6", "t2m:6", "tp", "tp:six"])
def test_a_bad_configured_period_is_a_config_error(tmp_path: Path, bad: str, capsys) -> None:
    args = [f"--workdir={tmp_path / 'm'}", "--config.data.path=x.parquet"]
    assert main(["train", "--config=tiny", *args, f"--config.data.periods={bad}"]) == 2
    assert "data.periods" in capsys.readouterr().err


def test_parse_and_iso() -> None:
    assert periods.parse("tp:6, tmax:24", "x") == {"tp": 6.0, "tmax": 24.0}
    assert periods.parse('{"tp": 1}', "x") == {"tp": 1.0}
    assert periods.parse("", "x") == {} and periods.parse(None, "x") == {}
    assert [periods.iso(h) for h in (6, 24, 1.5, 0.25)] == ["PT6H", "PT24H", "PT1H30M", "PT15M"]
    with pytest.raises(ValueError, match="x: period of tp is 'nan'"):
        periods.parse({"tp": "nan"}, "x")
    assert np.isclose(periods.combine({"tp": 6.0}, {"tmax": 24.0}, "x")["tmax"], 24.0)


def test_verify_refuses_a_forecast_of_another_period(stations: Path, capsys) -> None:
    pred = stations / "pred6.parquet"
    assert main(["predict", f"--model={stations / 'model'}",
                 f"--input={stations / 'test.parquet'}", f"--output={pred}"]) == 0  # fmt: skip
    ok = ["verify", f"--truth={stations / 'test.parquet'}", f"--forecast=model={pred}"]
    assert main([*ok, f"--out={stations / 'v_ok'}"]) == 0
    capsys.readouterr()
    bad = ["verify", f"--truth={stations / 'test12.parquet'}", f"--forecast=model={pred}"]
    assert main([*bad, f"--out={stations / 'v_bad'}"]) == 1
    err = capsys.readouterr().err
    assert "pred6.parquet: tp is over 6 h, but the truth" in err and "holds 12-h tp" in err
    assert not (stations / "v_bad").exists()


def test_gridded_verify_refuses_a_forecast_of_another_period(grid: Path, capsys) -> None:
    out = grid / "vp" / "p.nc"
    assert main(["predict", f"--model={grid / 'model'}", f"--input={grid / 'test6.nc'}",
                 f"--output={out}"]) == 0  # fmt: skip
    truth = xr.open_dataset(grid / "train.nc").isel(forecast_reference_time=slice(0, 2))
    truth = truth.drop_vars("fc_tp")
    write_dataset(_with(truth, '{"tp": 24.0}'), grid / "truth24.nc")
    files = f"--forecast=model={grid / 'vp' / 'p_percentiles.nc'}"
    rc = main(["verify", f"--truth={grid / 'truth24.nc'}", files, f"--out={grid / 'v24'}"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "tp is over 6 h, but the truth" in err and "holds 24-h tp" in err


def test_iso_durations_read_back() -> None:
    assert [periods.from_iso(periods.iso(h), "x") for h in (6, 24, 1.5)] == [6.0, 24.0, 1.5]
    assert periods.from_iso("P1D", "x") == 24.0
    for bad in ("6h", "P", "PT0H", ""):
        with pytest.raises(ValueError, match="expected a duration like PT6H"):
            periods.from_iso(bad, "x")


def test_streamed_training_keeps_the_period(stations: Path, tmp_path: Path, capsys) -> None:
    table = pd.read_parquet(stations / "train.parquet")
    folder = tmp_path / "parts"
    for part in ("a", "b"):
        (folder / f"init_date={part}").mkdir(parents=True)
    half = table["init_time"] < table["init_time"].min() + pd.Timedelta(days=15)
    write_table(
        periods.recorded(table[half].copy(), {"tp": 6.0}), folder / "init_date=a" / "t.parquet"
    )
    write_table(
        periods.recorded(table[~half].copy(), {"tp": 6.0}), folder / "init_date=b" / "t.parquet"
    )
    args = ["train", "--config=tiny", f"--config.data.path={folder}", "--config.train.epochs=1",
            "--config.train.stream=True"]  # fmt: skip
    assert main([*args, f"--workdir={tmp_path / 'm'}"]) == 0
    assert load(tmp_path / "m").periods == {"tp": 6.0}
    write_table(
        periods.recorded(table[~half].copy(), {"tp": 24.0}), folder / "init_date=b" / "t.parquet"
    )
    assert main([*args, f"--workdir={tmp_path / 'm2'}"]) == 1
    assert "one table holds one period" in capsys.readouterr().err
