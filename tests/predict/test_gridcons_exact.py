"""Grid products of mixture-pooled and recalibrated targets are the station path's exact values.

Audit (F3): such targets were turned into max(members, 51) random draws per point, so their
probabilities differed from the station values by up to 0.19-0.28 (p50/p90 by up to 6-8 mm
on gfsnam) while the docs promise 0.004. Their percentiles and probabilities are now
``TrainedModel.quantiles`` / ``exceedance`` of the pooled (or recalibrated) distribution at
the requested levels and thresholds, and their members the quantiles at ``i / (n + 1)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.align.points import grid_to_table, open_grid
from probcast.cli import main
from probcast.dists.recalibration import PitMap
from probcast.ingest.gridded import write_dataset
from probcast.model.artefact import load
from probcast.model.predictor import PredictOptions, TrainedModel
from probcast.predict import gridded, tiles
from probcast.predict.request import PredictRequest
from probcast.predict.station import predict_stations
from probcast.testing.grids import forecast_grid
from probcast.testing.products import assert_probabilities_as_table, flat

SHAPE = (12, 14)
TARGETS = ("t2m", "tp")
PCT = (10.0, 50.0, 90.0)
THRESHOLDS = {"tp": (0.0, 0.5, 1.0, 2.0), "t2m": (278.0, 281.0)}
MEMBERS = 4


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seed networks of t2m + tp on a small grid, and a run to predict."""
    root = tmp_path_factory.mktemp("gridexact")
    ds = forecast_grid(SHAPE, 9, variables=("t2m", "tp"))
    write_dataset(ds.isel(forecast_reference_time=slice(0, 7)), root / "train.nc")
    args = [f"--workdir={root / 'model'}", f"--config.data.path={root / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1",
                 "--config.train.n_seeds=2", "--config.train.refit=false"]) == 0  # fmt: skip
    run = ds.isel(forecast_reference_time=slice(7, 9)).drop_vars(["obs_t2m", "obs_tp"])
    write_dataset(run, root / "run.nc")
    return root


def _grid(case: Path, tmp: Path, combine: str = "vincentize") -> dict[str, Path]:
    request = PredictRequest(
        case / "model", case / "run.nc", tmp / "out" / "r.nc", percentiles=PCT,
        thresholds=THRESHOLDS, members=MEMBERS, combine=combine, inflevel=1.0, tile=8,
    )  # fmt: skip
    return gridded.predict_grid(request)


def _assert_station_values(model: TrainedModel, case: Path, paths: dict[str, Path]) -> None:
    grid = json.loads((case / "model" / "features.json").read_text())["grid"]
    table = grid_to_table(
        open_grid(case / "run.nc"), neighbourhood=grid["neighbourhood"], stats=grid["stats"]
    )
    ecc = [i / (MEMBERS + 1) for i in range(1, MEMBERS + 1)]
    levels = [p / 100 for p in PCT] + ecc
    station = predict_stations(model, table, quantiles=levels, thresholds=THRESHOLDS).table
    forms = {"percentiles": ("percentile", levels[: len(PCT)]), "members": ("realization", ecc)}
    for product, (lead, at) in forms.items():
        with xr.open_dataset(paths[product]) as ds:
            for var in TARGETS:
                got = flat(ds[var], lead)
                for j, level in enumerate(at):
                    want = station[f"{var}_q{level:g}"].to_numpy()
                    np.testing.assert_allclose(got[j], want, rtol=2e-6, atol=2e-5)
    assert_probabilities_as_table(paths, station, THRESHOLDS)


def test_a_mixture_is_computed_exactly(case: Path, tmp_path: Path) -> None:
    model = load(case / "model").with_options(PredictOptions(combine="mixture"))
    paths = _grid(case, tmp_path, combine="mixture")
    assert "parameters" not in paths
    _assert_station_values(model, case, paths)
    plan = gridded.make_plan(model, open_grid(case / "run.nc"), str(case / "model"), members=0,
                             seed=0, percentiles=PCT, thresholds=THRESHOLDS)  # fmt: skip
    assert plan.exact == TARGETS and plan.drawn == () and plan.parametric == ()
    assert plan.members == 0  # nothing is drawn


def test_a_recalibrated_target_is_computed_exactly(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recal = load(case / "model").with_options(PredictOptions())
    recal.recalibration = {"tp": PitMap([0.0, 0.35, 0.6, 0.8, 1.0], name="tp")}
    monkeypatch.setattr(tiles, "cached_model", lambda workdir: recal)
    monkeypatch.setattr(gridded, "cached_model", lambda workdir: recal)
    paths = _grid(case, tmp_path)
    with xr.open_dataset(paths["parameters"]) as par:
        assert "t2m_loc" in par and "tp_loc" not in par  # tp's parameters are not its forecast
    _assert_station_values(recal, case, paths)


def test_exact_members_obey_the_constraints_across_variables() -> None:
    members = xr.Dataset(
        {"t2m": ("realization", [280.0, 281.0]), "td2m": ("realization", [279.0, 282.0])}
    )
    merged = gridded._merged({"members": members[["t2m"]]}, {"members": members[["td2m"]]})
    np.testing.assert_array_equal(merged["members"]["td2m"].values, [279.0, 281.0])
