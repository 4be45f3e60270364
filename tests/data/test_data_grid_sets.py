"""Gridded benchmark converters: gfsnam-precip-grid and icp-wrf-precip-grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from probcast.data import registry
from probcast.data.datasets import gfsnam_grid, icp_wrf_grid
from probcast.data.prepare import converter, prepare
from probcast.ingest.gridded import open_gridded

FRT, FP = "forecast_reference_time", "forecast_period"


def test_dry_offset_repair_synthetic():
    rng = np.random.default_rng(0)
    clean = np.where(rng.random((4, 50)) < 0.7, 0.0, np.round(rng.gamma(1, 2, (4, 50)), 1))
    shifted = clean.copy()
    shifted[1] += 0.0412
    shifted[2] -= 0.0377
    shifted[3, 5] = np.nan
    np.testing.assert_allclose(gfsnam_grid.dry_offsets(shifted)[:3], [0, 0.0412, -0.0377])
    report: list[str] = []
    loc = np.column_stack([np.linspace(-120, -70, 50), np.linspace(25, 49, 50)])
    ds = gfsnam_grid.build(clean, shifted, loc, report)
    np.testing.assert_allclose(
        ds["obs_tp"].values[:, 0], np.where(np.isnan(shifted), np.nan, clean), atol=1e-12
    )
    assert "2 of 4 analysis fields carry a constant offset" in report[0]
    assert ds["fc_tp"].dims == (FRT, FP, "point") and ds["latitude"].dims == ("point",)


def test_hrap_projection_spacing():
    x, y = icp_wrf_grid.hrap_xy(np.array([-105.0, -105.0]), np.array([60.0, 90.0]))
    np.testing.assert_allclose(x, 0.0, atol=1e-6)
    assert y[1] == pytest.approx(0.0, abs=1e-6)
    assert y[0] == pytest.approx(-6371200.0 * 0.5)  # true scale at 60N: rho = R cos(60)


@pytest.mark.realdata
def test_gfsnam_shapes_split_and_raw_mae(mirror: Path, tmp_path: Path):
    prepared = prepare("gfsnam-precip-grid", out_dir=tmp_path)
    train, test = prepared.train, prepared.test
    assert dict(train.sizes) == {FRT: 240, FP: 1, "point": 2352}
    assert dict(test.sizes) == {FRT: 121, FP: 1, "point": 2352}
    assert prepared.targets == ["tp"]
    assert train[FRT].values[-1] < test[FRT].values[0]
    # the last training run's 24 h truth is valid at the first test run: masked (leakage guard)
    assert bool(train["obs_tp"].isel({FRT: -1}).isnull().all())
    train_kept = train.isel({FRT: slice(0, -1)})
    for ds in (train_kept, test):
        assert float(ds["obs_tp"].min()) >= 0.0 and float(ds["fc_tp"].min()) >= 0.0
        assert int(ds["obs_tp"].isnull().sum()) < 1000
    mae_train = float(np.abs(train["fc_tp"] - train["obs_tp"]).mean())
    mae_test = float(np.abs(test["fc_tp"] - test["obs_tp"]).mean())
    assert 0.3 < mae_train < 0.45 and 0.25 < mae_test < 0.4
    assert any("118 of 361" in line for line in prepared.report)
    back = open_gridded(prepared.paths["test"])
    np.testing.assert_allclose(back["fc_tp"].values, test["fc_tp"].values)


@pytest.mark.realdata
def test_icp_cases_grid_and_configs(mirror: Path):
    files = registry.fetch("icp-wrf-precip-grid")
    canon = converter("icp-wrf-precip-grid")(files)
    ds = canon.data
    assert dict(ds.sizes) == {FRT: 9, FP: 1, "y": 501, "x": 601}
    assert set(ds.data_vars) == {"fc_tp", "fc_tp_wrf2caps", "fc_tp_wrf4ncep", "obs_tp"}
    assert ds[FP].values[0] == np.timedelta64(24, "h")
    assert str(ds[FRT].values[0])[:10] == "2005-04-25"
    # orientation: north increases with y, east with x
    assert (ds["latitude"].diff("y") > 0).all() and (ds["longitude"].diff("x") > 0).mean() > 0.99
    assert ds["polar_stereographic"].attrs["grid_mapping_name"] == "polar_stereographic"
    fit = next(line for line in canon.report if "HRAP" in line)
    assert int(fit.split("error ")[1].split(" m")[0]) < 50
    for name in ds.data_vars:
        assert float(ds[name].min()) >= 0 and not ds[name].isnull().any()
    mae = float(np.abs(ds["fc_tp"] - ds["obs_tp"]).mean())
    assert 0.1 < mae < 1.0


@pytest.mark.realdata
def test_icp_missing_case_file_is_nan_and_reported(mirror: Path):
    files = dict(registry.fetch("icp-wrf-precip-grid"))
    files.pop("wrf2caps0513.rda")
    files.pop("obs0604.rda")
    canon = icp_wrf_grid.convert(files)
    ds = canon.data
    assert ds["fc_tp_wrf2caps"].sel({FRT: "2005-05-13"}).isnull().all()
    assert ds["obs_tp"].isel({FRT: -1}).isnull().all()
    assert ds["fc_tp"].notnull().all()
    assert any("wrf2caps0513.rda" in line for line in canon.report)
    assert any("obs0604.rda" in line for line in canon.report)
