"""The training loop: artefact files, early stopping, resume, leakage, determinism."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from probcast.configs import tiny
from probcast.features import usable_rows
from probcast.model import artefact, checkpoint
from probcast.split import validation_split
from probcast.testing.stations import station_table
from probcast.train import loop
from probcast.train.data import fingerprint


def _config(path):
    config = tiny.get_config()
    config.data.path = str(path)
    config.data.val_fraction = 0.25
    return config


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "table.parquet"
    station_table(n_stations=3, n_inits=16).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, table_path):
    workdir = tmp_path_factory.mktemp("run")
    results = loop.train(_config(table_path), workdir)
    return workdir, results


def _best_params(workdir):
    mngr = checkpoint.SeedCheckpoints(workdir / "seed_0")
    step = mngr.best.latest_step()
    out = mngr.best.restore(step)
    mngr.close()
    return step, jax.tree.leaves(out["params"])


def test_artefact_files_and_history(trained, table_path):
    from probcast.ingest.tables import read_table

    workdir, results = trained
    for name in ("config.json", "features.json", "meta.json", "summary.json"):
        assert (workdir / name).exists()
    meta = json.loads((workdir / "meta.json").read_text())
    assert meta["data_fingerprint"] == fingerprint(read_table(table_path))
    assert meta["heads"] == {"t2m": "normal", "tp": "censored_logistic"}
    # Early stopping on validation rows in selection/, then the refit on all rows.
    history = json.loads((workdir / "selection" / "seed_0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert {"train_crps_t2m", "val_crps_tp", "lr", "samples_per_s"} <= set(history[0])
    (result,) = results
    assert result.best_epoch == 1 + int(np.argmin([h["val_loss"] for h in history]))
    assert set(result.val_crps) == {"t2m", "tp"} and all(v > 0 for v in result.val_crps.values())
    refit = json.loads((workdir / "seed_0" / "history.json").read_text())
    assert len(refit) == result.best_epoch
    # Same schedule in epochs (a few more steps per epoch: the validation rows are added).
    assert refit[0]["lr"] == pytest.approx(history[0]["lr"], rel=0.1)
    # The refit has no validation rows: no validation loss of its own (it used to record
    # its training loss as one), and the model's summary keeps the selection's figures.
    assert all(np.isnan(h["val_loss"]) for h in refit)
    final = json.loads((workdir / "summary.json").read_text())["seeds"][0]
    chosen = json.loads((workdir / "selection" / "summary.json").read_text())["seeds"][0]
    assert final["best_val_loss"] == chosen["best_val_loss"] == result.best_val_loss
    assert final["val_crps"] == chosen["val_crps"] and final["val_crps"]


def test_spread_factor_fitted_on_validation_and_applied(trained):
    from probcast.model.artefact import load
    from probcast.testing.stations import station_table

    workdir, _ = trained
    calib = json.loads((workdir / "calibration.json").read_text())
    assert calib == json.loads((workdir / "selection" / "calibration.json").read_text())
    factors = calib["spread_factor"]
    assert set(factors) == {"t2m", "tp"} and all(0.5 <= k <= 2.5 for k in factors.values())
    model = load(workdir)
    assert model.spread_factor == factors
    table = station_table(n_stations=3, n_inits=4)
    calibrated = model.params(table)
    model.spread_factor = {}
    raw = model.params(table)
    for var, k in factors.items():
        np.testing.assert_allclose(calibrated[var]["scale"], k * raw[var]["scale"], rtol=1e-5)
        np.testing.assert_array_equal(calibrated[var]["loc"], raw[var]["loc"])


def test_features_fitted_on_fit_rows_only(trained, table_path):
    import pandas as pd

    workdir, _ = trained
    table = usable_rows(pd.read_parquet(table_path), ["t2m", "tp"])
    fit, val = validation_split(table, 0.25)
    assert fit["valid_time"].max() < val["init_time"].min()  # no leakage into validation
    spec = json.loads((workdir / "features.json").read_text())
    j = spec["columns"].index("fc_t2m")
    assert spec["mean"][j] == pytest.approx(fit["fc_t2m"].mean())
    assert spec["mean"][j] != pytest.approx(table["fc_t2m"].mean())


class _Killed(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted(
    trained, table_path, tmp_path, monkeypatch
):
    workdir, _ = trained
    save = checkpoint.SeedCheckpoints.save_latest

    def save_then_die(self, epoch, *args):
        save(self, epoch, *args)
        if epoch == 2:
            raise _Killed

    monkeypatch.setattr(checkpoint.SeedCheckpoints, "save_latest", save_then_die)
    every_epoch = _config(table_path)
    every_epoch.train.checkpoint_every_s = 0.0  # a save after each epoch: killed after 2's
    with pytest.raises(_Killed):
        loop.train(every_epoch, tmp_path)
    assert not (tmp_path / "seed_0" / "DONE.json").exists()
    monkeypatch.undo()
    loop.train(_config(table_path), tmp_path)  # picks up after epoch 2
    history = json.loads((tmp_path / "seed_0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    step_a, a = _best_params(workdir)
    step_b, b = _best_params(tmp_path)
    assert step_a == step_b
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)  # deterministic: same config + data -> same params


def test_checkpoints_are_saved_at_the_interval_and_after_the_last_epoch(
    table_path, tmp_path, monkeypatch
):
    saves: dict[str, list[int]] = {"latest": [], "best": []}
    latest, best = checkpoint.SeedCheckpoints.save_latest, checkpoint.SeedCheckpoints.save_best

    def count_latest(self, epoch, *args):
        saves["latest"].append(epoch)
        latest(self, epoch, *args)

    def count_best(self, epoch, *args):
        saves["best"].append(epoch)
        best(self, epoch, *args)

    monkeypatch.setattr(checkpoint.SeedCheckpoints, "save_latest", count_latest)
    monkeypatch.setattr(checkpoint.SeedCheckpoints, "save_best", count_best)
    config = _config(table_path)
    config.train.checkpoint_every_s = 1e9  # never by time: only after the last epoch
    config.train.refit = False
    loop.train(config, tmp_path)
    history = json.loads((tmp_path / "seed_0" / "history.json").read_text())
    assert saves["latest"] == [len(history)]
    assert len(saves["best"]) == 1  # the best epoch's parameters, kept in memory until then
    step, _ = _best_params(tmp_path)
    assert step == min(history, key=lambda h: h["val_loss"])["epoch"]


def test_workdir_of_another_run_is_refused(trained, table_path):
    workdir, _ = trained
    config = _config(table_path)
    config.model.hidden = 7
    with pytest.raises(artefact.OtherRunError, match="different model"):
        loop.train(config, workdir)


def test_finished_run_is_not_retrained(trained, table_path):
    workdir, results = trained
    again = loop.train(_config(table_path), workdir)
    assert again == results
