"""Gridded prediction from Python: a workdir retrained in the same process is predicted with
its new model (audit: the old networks, stamped with the new fingerprint), and
run(request, model=...) predicts with the model given (audit: ignored on grids)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import probcast
from probcast.cli import main
from probcast.ingest.gridded import write_dataset
from probcast.model.artefact import load
from probcast.model.predictor import TrainedModel
from probcast.predict.grid_output import model_fingerprint
from probcast.predict.request import PredictRequest, RequestError
from probcast.testing.grids import forecast_grid


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny grid models of tp (other training seeds) and a test run."""
    root = tmp_path_factory.mktemp("api_grid")
    ds = forecast_grid((8, 10), 8, variables=("tp",))
    write_dataset(ds.isel(forecast_reference_time=slice(0, 6)), root / "train.nc")
    write_dataset(ds.isel(forecast_reference_time=slice(6, 8)).drop_vars("obs_tp"), root / "run.nc")
    for name, seed in (("a", 0), ("b", 1)):
        args = ["train", "--config=tiny", f"--workdir={root / name}", "--config.train.epochs=1"]
        args += [f"--config.data.path={root / 'train.nc'}", f"--config.train.seed={seed}"]
        assert main([*args, "--config.model.embed_dim=0"]) == 0
    return root


def _params(root: Path, workdir: Path, out: Path, **kw) -> xr.Dataset:
    request = PredictRequest(model=workdir, input=root / "run.nc", output=out / "x.nc",
                             percentiles=(50.0,))  # fmt: skip
    result = probcast.run(request, **kw)
    with xr.open_dataset(result.paths["parameters"]) as ds:
        return ds.load()


def test_a_workdir_retrained_in_the_same_process_is_predicted_with_its_new_model(
    root: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "model"
    shutil.copytree(root / "a", workdir)
    first = _params(root, workdir, tmp_path / "first")
    shutil.rmtree(workdir)  # retrained into the same folder
    shutil.copytree(root / "b", workdir)
    second = _params(root, workdir, tmp_path / "second")
    fresh = _params(root, root / "b", tmp_path / "fresh")
    assert not np.allclose(first["tp_loc"], second["tp_loc"])
    np.testing.assert_array_equal(second["tp_loc"], fresh["tp_loc"])
    assert second.attrs["model_fingerprint"] == model_fingerprint(root / "b")


def test_the_model_given_predicts_every_tile(root: Path, tmp_path: Path, monkeypatch) -> None:
    workdir = tmp_path / "a"  # a path no model of this process was loaded from
    shutil.copytree(root / "a", workdir)
    given = load(workdir)
    factor = given.spread_factor.get("tp", 1.0)
    given.spread_factor = {"tp": 2.0 * factor}  # changed in memory: not the model on disk
    built: list[int] = []
    real = TrainedModel.__init__

    def counted(self, *args, **kwargs):
        built.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(TrainedModel, "__init__", counted)
    with_object = _params(root, workdir, tmp_path / "given", model=given)
    assert built == []  # neither the plan nor a tile loaded the workdir
    plain = _params(root, workdir, tmp_path / "plain")
    assert built == [1]
    np.testing.assert_allclose(with_object["tp_scale"], 2.0 * plain["tp_scale"], rtol=1e-5)


def test_a_model_object_of_another_workdir_is_refused_on_grids(root: Path, tmp_path: Path):
    with pytest.raises(RequestError, match=rf"not the model of request.model '{root / 'a'}'"):
        _params(root, root / "a", tmp_path / "x", model=load(root / "b"))
    with pytest.raises(RequestError, match=r"needs request.model to be the workdir of the model"):
        _params(root, tmp_path / "nowhere", tmp_path / "x", model=load(root / "a"))
    assert not (tmp_path / "x").exists()
