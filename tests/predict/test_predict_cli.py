"""``probcast train`` + ``probcast predict`` end to end on a tiny synthetic table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.cli import main
from probcast.ingest.tables import read_table
from probcast.model.artefact import load
from probcast.predict.request import PredictRequest
from probcast.predict.runner import run as run_request
from probcast.testing.stations import station_table

PREDICT = ["--members=6", "--quantiles=0.1,0.5,0.9", "--thresholds=tp:0.1,1", "--seed=3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    table = station_table(n_stations=3, n_inits=14)
    train, test = table[table.init_time < "2021-01-11"], table[table.init_time >= "2021-01-12"]
    train.to_csv(root / "train.csv", index=False)
    test.to_parquet(root / "test.parquet")
    rc = main(
        [
            "train",
            "--config=tiny",
            f"--workdir={root / 'model'}",
            f"--config.data.path={root / 'train.csv'}",
            "--config.data.val_fraction=0.3",
            "--config.train.epochs=2",
            "--config.train.n_seeds=2",
            "--config.model.generative=tp",
        ]
    )
    assert rc == 0
    rc = main(
        [
            "predict",
            f"--model={root / 'model'}",
            f"--input={root / 'test.parquet'}",
            f"--output={root / 'pred.parquet'}",
            *PREDICT,
        ]
    )
    assert rc == 0
    return root, test.reset_index(drop=True)


def test_prediction_table(run):
    root, test = run
    pred = pd.read_parquet(root / "pred.parquet")
    assert len(pred) == len(test)
    assert (pred["station"] == test["station"]).all()
    members = pred[[f"tp_m{j:03d}" for j in range(6)]].to_numpy()
    assert np.isfinite(members).all() and (members >= 0).all()
    t2m = pred[[f"t2m_m{j:03d}" for j in range(6)]].to_numpy()
    assert np.isfinite(t2m).all() and t2m.std(axis=1).min() > 0
    for var in ("t2m", "tp"):
        q = pred[[f"{var}_q0.1", f"{var}_q0.5", f"{var}_q0.9"]].to_numpy()
        assert (np.diff(q, axis=1) >= 0).all()
    p = pred[["tp_p_gt_0.1", "tp_p_gt_1"]].to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and (p[:, 0] >= p[:, 1]).all()
    assert (pred["t2m_scale"] > 0).all() and "tp_loc" not in pred  # tp is generative
    np.testing.assert_array_equal(pred["obs_t2m"], test["obs_t2m"])


def test_percentiles_of_a_station_table_are_its_quantile_columns(run):
    root, _ = run
    out = root / "pct.parquet"
    args = [f"--model={root / 'model'}", f"--input={root / 'test.parquet'}", f"--output={out}"]
    assert main(["predict", *args, "--percentiles=10,90", "--quantiles=0.5", "--seed=3"]) == 0
    pct, ref = pd.read_parquet(out), pd.read_parquet(root / "pred.parquet")
    for col in ("t2m_q0.1", "t2m_q0.5", "t2m_q0.9"):
        np.testing.assert_allclose(pct[col], ref[col], rtol=1e-6)


@pytest.mark.slow
def test_fresh_process_gives_identical_predictions(run):
    root, test = run
    out = root / "again.parquet"
    code = (
        "import sys; from probcast.cli import main; "
        f"sys.exit(main(['predict', '--model={root / 'model'}', "
        f"'--input={root / 'test.parquet'}', '--output={out}', "
        + ", ".join(repr(a) for a in PREDICT)
        + "]))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(root / "pred.parquet"))
    # ... and the in-process API gives the same numbers.
    request = PredictRequest(
        model=root / "model",
        input=test,
        members=6,
        quantiles=(0.1, 0.5, 0.9),
        thresholds={"tp": (0.1, 1.0)},
        seed=3,
    )
    frame = run_request(request, load(root / "model")).table
    np.testing.assert_allclose(frame["t2m_m003"], pd.read_parquet(out)["t2m_m003"], rtol=1e-6)


def test_netcdf_and_csv_outputs(run, tmp_path):
    root, test = run
    nc, csv = tmp_path / "p.nc", tmp_path / "p.csv"
    for path in (nc, csv):
        assert (
            main(
                [
                    "predict",
                    f"--model={root / 'model'}",
                    f"--input={root / 'test.parquet'}",
                    f"--output={path}",
                    "--quantiles=0.5",
                ]
            )
            == 0
        )
    ds = xr.open_dataset(nc)
    assert dict(ds.sizes) == {"station": 3, "init_time": 3, "lead_time": 3}
    assert {"t2m_q0.5", "t2m_loc", "tp_q0.5"} <= set(ds.data_vars)
    units = {v: ds[v].attrs.get("units") for v in ("t2m_q0.5", "t2m_loc", "tp_q0.5", "obs_t2m")}
    assert units == {"t2m_q0.5": "K", "t2m_loc": "K", "tp_q0.5": "kg m-2", "obs_t2m": "K"}
    assert len(pd.read_csv(csv)) == len(test)
    ds.close()
    args = [f"--model={root / 'model'}", f"--input={root / 'test.parquet'}", f"--output={nc}"]
    assert main(["predict", *args, "--thresholds=tp:1", "--units=t2m=degC,tp=mm"]) == 0
    with xr.open_dataset(nc) as ds:  # CF units of the user's choice, probabilities 1
        assert ds["t2m_m000" if "t2m_m000" in ds else "t2m_loc"].attrs["units"] == "degC"
        assert ds["tp_p_gt_1"].attrs["units"] == "1" and ds["obs_tp"].attrs["units"] == "mm"
        assert ds["t2m_scale"].attrs["units"] == "K"  # a difference: not degC


def test_errors_are_reported(run, tmp_path, capsys):
    root, test = run
    bad = test.copy()
    bad.loc[4, "fc_t2m"] = np.nan
    bad.to_parquet(tmp_path / "bad.parquet")
    args = [f"--model={root / 'model'}", f"--output={tmp_path / 'x.csv'}"]
    # A row without fc_t2m is kept and flagged, not a refused table (issue 10).
    assert main(["predict", f"--input={tmp_path / 'bad.parquet'}", *args]) == 0
    flagged = pd.read_csv(tmp_path / "x.csv", dtype={"station": str})
    row = int(np.flatnonzero(bad["fc_t2m"].isna())[0])
    assert len(flagged) == len(bad) and flagged["t2m_source"][row] == "missing"
    assert main(["predict", f"--input={root / 'test.parquet'}", *args, "--quantiles=1.5"]) == 2
    assert main(["predict", "--model=/nonexistent", "--input=x", "--output=y"]) == 1
    assert main(["predict", "--bogus"]) == 2
    assert main(["train", "--config=nope", "--workdir=x"]) == 2
    capsys.readouterr()
    no_suffix = [f"--model={root / 'model'}", f"--input={root / 'test.parquet'}"]
    assert main(["predict", *no_suffix, f"--output={tmp_path / 'pred'}"]) == 1
    assert "unknown table format ''" in capsys.readouterr().err  # refused before predicting


def test_coherent_members_keep_the_marginals(run, tmp_path):
    """A template (past observations) reorders members (Schaake shuffle); the only other
    thing it changes is the recent errors of the input's rows (its past forecast errors
    reach back before the input: probcast.recent), so with those given, nothing else."""
    root, test = run
    train = pd.read_csv(root / "train.csv", dtype={"station": str})
    model = load(root / "model")
    past = read_table(root / "train.csv")  # parsed, as the runner reads a template
    with_errors = model.spec.derive(test, history=past)  # err_<var> from train + test
    base = PredictRequest(model=root / "model", input=with_errors, members=12, seed=5)
    plain = run_request(base).table
    coherent = run_request(base.replace(template=train)).table
    for var in ("t2m", "tp"):
        cols = [f"{var}_m{j:03d}" for j in range(12)]
        a, b = plain[cols].to_numpy(), coherent[cols].to_numpy()
        np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(b, axis=1))
        assert not np.array_equal(a, b)
    # Without them, the template's history changes the recent errors of the input's
    # first rows only (later rows have the input's own observations to go on).
    own = model.spec.derive(test)
    changed = ~np.isclose(own["err_t2m"], with_errors["err_t2m"], equal_nan=True)
    assert changed.any() and not changed.all()
    raw = PredictRequest(model=root / "model", input=test, members=12, seed=5)
    coherent = run_request(raw.replace(template=train)).table
    out = tmp_path / "coherent.parquet"
    args = [f"--model={root / 'model'}", f"--input={root / 'test.parquet'}", f"--output={out}"]
    assert (
        main(["predict", *args, "--members=12", "--seed=5", f"--template={root / 'train.csv'}"])
        == 0
    )
    written = pd.read_parquet(out)[[f"t2m_m{j:03d}" for j in range(12)]].to_numpy()
    np.testing.assert_allclose(written, coherent[[f"t2m_m{j:03d}" for j in range(12)]], rtol=1e-6)


def test_a_run_predicts_the_template_only_on_the_dates_its_shuffle_uses(run, monkeypatch):
    from probcast.predict import station

    root, test = run
    train = pd.read_csv(root / "train.csv", dtype={"station": str})
    one = test[test["init_time"] == test["init_time"].min()]  # one run (cycle)
    # its recent errors from the template's history given, the template only reorders
    one = load(root / "model").spec.derive(one, history=read_table(root / "train.csv"))
    seen: list[pd.DataFrame] = []
    original = station.with_template_pit

    def recording(template, *args, **kwargs):
        seen.append(template)
        return original(template, *args, **kwargs)

    monkeypatch.setattr(station, "with_template_pit", recording)
    base = PredictRequest(model=root / "model", input=one, members=3, seed=5)
    coherent = run_request(base.replace(template=train)).table
    assert len(seen) == 1 and seen[0]["init_time"].nunique() <= 3 < train["init_time"].nunique()
    plain = run_request(base).table
    cols = [f"t2m_m{j:03d}" for j in range(3)]
    a, b = plain[cols].to_numpy(), coherent[cols].to_numpy()
    np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(b, axis=1))
