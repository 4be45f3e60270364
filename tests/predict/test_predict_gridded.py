"""Gridded training and prediction end to end on a small synthetic grid (tiny config)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.align.points import grid_to_table, open_grid
from probcast.cli import main
from probcast.ingest.gridded import write_dataset
from probcast.model.artefact import load
from probcast.model.predictor import PredictOptions
from probcast.predict import grid_output, gridded
from probcast.predict.grid_checks import GridPredictError, needed_inputs
from probcast.predict.request import PredictRequest
from probcast.predict.runner import run
from probcast.testing.grids import forecast_grid

SHAPE = (14, 18)
PRODUCTS = ("members", "percentiles", "probabilities_tp", "parameters")
PREDICT = ["--members=3", "--percentiles=10,50,90", "--thresholds=tp:0.1,1", "--tile=8"]
PROB = "probability_of_precipitation_amount_above_threshold"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a tiny model on a synthetic grid; a test grid with a NaN (masked) area."""
    root = tmp_path_factory.mktemp("grid")
    ds = forecast_grid(SHAPE, 9)
    write_dataset(ds.isel(forecast_reference_time=slice(0, 7)), root / "train.nc")
    test = ds.isel(forecast_reference_time=slice(7, 9)).drop_vars("obs_tp")
    test["fc_tp"][:, :, :4, :5] = np.nan
    write_dataset(test, root / "test.nc")
    args = [f"--workdir={root / 'model'}", f"--config.data.path={root / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1"]) == 0
    assert main(["predict", f"--model={root / 'model'}", f"--input={root / 'test.nc'}",
                 f"--output={root / 'out' / 'pred.nc'}", *PREDICT]) == 0  # fmt: skip
    return root


def _out(root: Path, name: str, folder: str = "out") -> Path:
    return root / folder / f"pred_{name}.nc"


def test_model_records_grid_and_neighbourhood(case: Path) -> None:
    spec = json.loads((case / "model" / "features.json").read_text())
    assert spec["grid"]["neighbourhood"] == [3, 7]
    assert "fc_tp_nbr7_max" in spec["columns"]


def test_products_written_with_masked_area(case: Path) -> None:
    assert sorted(p.name for p in (case / "out").iterdir()) == sorted(
        f"pred_{n}.nc" for n in PRODUCTS
    )
    with xr.open_dataset(_out(case, "probabilities_tp")) as ds:
        p = ds[PROB]
        assert p.dims == ("threshold", "forecast_reference_time", "forecast_period", "y", "x")
        assert p[..., :4, :5].isnull().all() and p[..., 5:, 6:].notnull().all()
        assert (p.fillna(0).diff("threshold") <= 0).all()
    with xr.open_dataset(_out(case, "percentiles")) as ds:
        assert ds["tp"].sizes["percentile"] == 3 and ds["tp"][..., :4, :5].isnull().all()
    with xr.open_dataset(_out(case, "members")) as ds:
        assert ds["tp"].sizes["realization"] == 3


def test_tiles_equal_the_station_model_on_the_whole_grid(case: Path) -> None:
    model = load(case / "model")
    ds = open_grid(case / "test.nc")
    plan = gridded.make_plan(model, ds, str(case / "model"), members=0, seed=0)
    fields = gridded.predictive_fields(model, ds, plan, tile=5).compute()
    table = grid_to_table(ds, neighbourhood="3,7")
    expected = model.params(table)["tp"]
    for name in ("loc", "scale"):
        got = fields[f"tp_{name}"].values.ravel()
        got = got[np.isfinite(got)]
        np.testing.assert_allclose(got, expected[name], rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["regular", "point"])
def test_other_layouts_equal_the_station_model(case: Path, layout: str) -> None:
    model = load(case / "model")
    ds = forecast_grid((12, 15), 2, layout=layout).drop_vars("obs_tp")
    plan = gridded.make_plan(model, ds, str(case / "model"), members=0, seed=0)
    assert not plan.same_grid
    fields = gridded.predictive_fields(model, ds, plan, tile=6).compute()
    scale = needed_inputs(model, ds, "grid").scale
    table = grid_to_table(ds, neighbourhood="3,7", scale=scale)
    table["station"] = ""  # another grid: unknown-station embedding
    expected = model.params(table)["tp"]["loc"]
    np.testing.assert_allclose(fields["tp_loc"].values.ravel(), expected, rtol=2e-5, atol=1e-6)


def _failures(path: Path, tmp_path: Path) -> list[str]:
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / f"{path.stem}.json"
    ComplianceChecker.run_checker(
        str(path), ["cf:1.8"], 0, "normal", output_filename=str(report), output_format="json"
    )
    result = json.loads(report.read_text())["cf:1.8"]
    return [
        f"{c['name']}: {c['msgs']}"
        for level in ("high_priorities", "medium_priorities")
        for c in result[level]
        if c["value"][0] < c["value"][1]
    ]


def test_single_run_products_pass_cf_checks(case: Path, tmp_path: Path) -> None:
    one = open_grid(case / "test.nc").isel(forecast_reference_time=[1])
    path = write_dataset(one, tmp_path / "run.nc")
    request = PredictRequest(
        model=case / "model",
        input=path,
        output=tmp_path / "run_out.nc",
        members=2,
        thresholds={"tp": [0.5]},
    )
    paths = run(request).paths
    assert sorted(paths) == sorted(PRODUCTS)
    for name, product in paths.items():
        with xr.open_dataset(product) as ds:
            assert ds["forecast_reference_time"].ndim == 0  # one run: a scalar coordinate
        assert _failures(product, tmp_path) == [], name


def test_missing_variable_is_a_clear_error(case: Path, capsys: pytest.CaptureFixture) -> None:
    ds = forecast_grid(SHAPE, 1, variables=("t2m",)).drop_vars("obs_t2m")
    path = write_dataset(ds, case / "t2m_only.nc")
    out = case / "missing" / "x.nc"
    rc = main(["predict", f"--model={case / 'model'}", f"--input={path}", f"--output={out}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{path}: model predicts tp from fc_tp" in err and "has fc_t2m" in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_grid_too_small_for_the_neighbourhood(case: Path) -> None:
    small = forecast_grid((5, 6), 1).drop_vars("obs_tp")
    with pytest.raises(GridPredictError, match="too small for the model's neighbourhood"):
        gridded.predict_grid(
            PredictRequest(case / "model", write_dataset(small, case / "s.nc"), case / "s/o.nc")
        )


def test_failure_leaves_no_partial_output(
    case: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = tmp_path / "pred_parameters.nc"
    old.write_text("previous run")
    calls = []

    def failing(ds: xr.Dataset, path: Path, **kw: object) -> dict[str, int]:
        calls.append(path)
        Path(path).write_text("half")
        if len(calls) == 2:
            raise OSError("disk full")
        return {}

    monkeypatch.setattr(grid_output, "write_products", failing)
    with pytest.raises(OSError, match="disk full"):
        run(PredictRequest(case / "model", case / "test.nc", tmp_path / "pred.nc", tile=8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred_parameters.nc"]
    assert old.read_text() == "previous run"
    killed = tmp_path / ".pred.nc.tmp-999999999-0123456789ab"  # a killed run's staging
    (killed / "fields.zarr").mkdir(parents=True)
    monkeypatch.undo()
    run(PredictRequest(case / "model", case / "test.nc", tmp_path / "pred.nc", tile=8))
    assert not killed.exists()  # the next run into the folder removes it


def test_dask_distributed_scheduler(case: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        rc = main(["predict", f"--model={case / 'model'}", f"--input={case / 'test.nc'}",
                   f"--output={case / 'dist' / 'pred.nc'}", *PREDICT,
                   f"--scheduler={cluster.scheduler_address}"])  # fmt: skip
    assert rc == 0
    for name in PRODUCTS:
        with xr.open_dataset(_out(case, name)) as a, xr.open_dataset(_out(case, name, "dist")) as b:
            xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_output_name_must_be_netcdf_or_zarr(case: Path) -> None:
    with pytest.raises(ValueError, match=r"\.nc"):
        gridded.predict_grid(
            PredictRequest(case / "model", case / "test.nc", case / "pred.parquet")
        )
    (case / "afile").write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write: .*afile is a file, not a folder"):
        gridded.predict_grid(
            PredictRequest(case / "model", case / "test.nc", case / "afile" / "r.nc")
        )


def test_grid_path_honours_combine(case: Path, tmp_path: Path) -> None:
    """Two seed networks pooled as a mixture: members drawn from the pool, no parameters."""
    workdir = tmp_path / "two"
    args = [f"--workdir={workdir}", f"--config.data.path={case / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1",
                 "--config.train.n_seeds=2", "--config.train.refit=false"]) == 0  # fmt: skip
    ds = open_grid(case / "test.nc")
    model = load(workdir)
    for combine, exact in (("vincentize", True), ("mixture", False)):
        pooled = model.with_options(PredictOptions(combine=combine))
        plan = gridded.make_plan(pooled, ds, str(workdir), members=0, seed=0)
        assert (plan.parametric != ()) is exact and (plan.generative == ("tp",)) is not exact
        assert plan.options.combine == combine
    out = tmp_path / "mix" / "pred.nc"
    request = PredictRequest(workdir, case / "test.nc", out, combine="mixture", tile=8)
    paths = run(request).paths
    assert "parameters" not in paths and "percentiles" in paths
    with xr.open_dataset(paths["percentiles"]) as pct:
        assert (pct["tp"].fillna(0).diff("percentile") >= 0).all()


def test_a_run_outside_the_training_domain_is_named_or_refused(
    case: Path, caplog: pytest.LogCaptureFixture
) -> None:
    late = forecast_grid(SHAPE, 1, lead_hours=(48.0,)).drop_vars("obs_tp")  # trained at 24 h
    path = write_dataset(late, case / "late.nc")
    with caplog.at_level("WARNING", logger="probcast.predict.grid_domain"):
        gridded.predict_grid(PredictRequest(case / "model", path, case / "late" / "o.nc"))
    assert "late.nc: outside the model's training domain" in caplog.text
    assert "lead time(s) 48 h outside the training lead times [24, 24] h" in caplog.text
    refuse = PredictRequest(case / "model", path, case / "late2" / "o.nc", extrapolation="refuse")
    with pytest.raises(GridPredictError, match=r"late.nc: column 'lead_time': value 48"):
        gridded.predict_grid(refuse)
    assert not (case / "late2").exists()  # refused before any work
    caplog.clear()
    with caplog.at_level("WARNING", logger="probcast.predict.grid_domain"):
        gridded.predict_grid(PredictRequest(case / "model", case / "test.nc", case / "in" / "o.nc"))
    assert "training domain" not in caplog.text  # the test grid is inside it


def test_inflevel_from_the_command_line(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.nc"
    run(PredictRequest(case / "model", case / "test.nc", out, tile=8))
    with xr.open_dataset(tmp_path / "pred_percentiles.nc") as ds:
        assert any("bitround_keepbits" in ds[v].attrs for v in ds.data_vars)  # rounded
    args = [f"--model={case / 'model'}", f"--input={case / 'test.nc'}", f"--output={out}"]
    assert main(["predict", *args, "--tile=8", "--inflevel=1"]) == 0  # every bit kept
    with xr.open_dataset(tmp_path / "pred_percentiles.nc") as ds:
        kept = [ds[v].attrs.get("bitround_keepbits") for v in ds.data_vars]
    assert all(k is None for k in kept)  # inflevel 1: no rounding
