"""run(request, model=...) on station tables from Python: the model object must be the
request's model and the one recorded (audit: predicted with one model, recorded another); a
``mixture`` of networks gives a scoreable forecast by default (audit: no forecast at all);
a caller's DataFrame is validated as the same data in a file (audit: fc_tp=-5, inf or
latitude 95 predicted as missing values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probcast
from probcast import defaults
from probcast.cli import main
from probcast.model.artefact import load
from probcast.predict.request import PredictRequest, RequestError
from probcast.predict.runner import StationRunner
from probcast.products.table_files import read_sidecar
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table
from probcast.validate import ValidationError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny two-network models of t2m and tp (other training seeds), and a test table."""
    root = tmp_path_factory.mktemp("api")
    table = station_table(n_stations=2, n_inits=12, seed=1)
    table[table.init_time < "2021-01-09"].to_parquet(root / "train.parquet")
    table[table.init_time >= "2021-01-10"].to_parquet(root / "test.parquet")
    for name, seed in (("a", 0), ("b", 5)):
        args = ["train", "--config=tiny", f"--workdir={root / name}", "--config.train.epochs=1"]
        args += [f"--config.data.path={root / 'train.parquet'}", f"--config.train.seed={seed}"]
        args += ["--config.train.n_seeds=2", "--config.train.refit=false"]
        assert main(args) == 0
    return root


def test_a_model_object_of_another_workdir_is_refused_naming_both(trained: Path) -> None:
    other = load(trained / "b")
    request = PredictRequest(model=trained / "a", input=trained / "test.parquet")
    with pytest.raises(RequestError, match=r"model object given to run\(\).* not the model of "
                       rf"request.model '{trained / 'a'}': their config.json differ in "
                       r"train.seed"):  # fmt: skip
        probcast.run(request, model=other)


def test_the_model_that_predicted_is_recorded(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    request = PredictRequest(model=trained / "a", input=trained / "test.parquet", output=out)
    result = probcast.run(request, model=load(trained / "a"))
    assert result.model == str(trained / "a") == read_sidecar(out)["model"]
    # a model built in memory, with a request.model that is no workdir: not recorded as it
    rows = station_table(n_stations=2, n_inits=2, start="2021-03-01", targets=("t2m",))
    memory = untrained_model(station_table(n_stations=2, n_inits=8, targets=("t2m",)),
                             {"t2m": "normal"})  # fmt: skip
    result = probcast.run(PredictRequest(model="m", input=rows, output=out), model=memory)
    assert result.model == "<in-memory TrainedModel>" == read_sidecar(out)["model"]


def test_a_mixture_gets_members_by_default_and_is_scoreable(trained: Path, tmp_path: Path):
    test = pd.read_parquet(trained / "test.parquet")
    out = tmp_path / "mix.parquet"
    request = PredictRequest(model=trained / "a", input=test, output=out, combine="mixture")
    result = probcast.run(request)
    assert result.families == {}  # the parameters are the networks' mean, not the forecast
    for var in ("t2m", "tp"):
        fc = result.forecasts[var]  # README: result.forecasts["tp"].crps(obs)
        assert fc.kind == "members" and fc.values.shape == (len(test), defaults.MEMBERS)
        assert np.isfinite(fc.crps(test[f"obs_{var}"].to_numpy())).all()
    args = [f"--truth={trained / 'test.parquet'}", f"--forecast=model={out}"]
    assert main(["verify", *args, f"--out={tmp_path / 'v'}", "--n-boot=5"]) == 0
    # quantiles asked for: those, and no members
    quantiles = probcast.run(request.replace(output=None, quantiles=(0.1, 0.5, 0.9)))
    assert quantiles.forecasts["tp"].kind == "quantiles"
    assert not quantiles.table.filter(regex=r"^tp_m\d+$").shape[1]


@pytest.fixture(scope="module")
def model():
    return untrained_model(station_table(n_stations=3, n_inits=20, seed=1), {"tp": "normal"})


@pytest.fixture
def rows() -> pd.DataFrame:
    return station_table(n_stations=3, n_inits=3, seed=2, start="2021-02-01")


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("fc_tp", -5.0, r"column 'fc_tp': 2 value\(s\) outside the physical range"),
        ("fc_tp", np.inf, r"column 'fc_tp' has 2 infinite value\(s\)"),
        ("latitude", 95.0, r"column 'latitude': failed in_range"),
        ("fc_ws10", np.nan, r"column 'fc_ws10' is entirely missing"),
    ],
)
def test_a_dataframe_is_validated_as_the_same_file(model, rows, tmp_path, column, value, match):
    bad = rows.copy()
    if column == "fc_ws10":
        bad[column] = value
    else:
        bad.loc[[0, 4], column] = value
    bad.to_parquet(tmp_path / "bad.parquet")
    for source, name in ((bad, "input table"), (tmp_path / "bad.parquet", "bad.parquet")):
        with pytest.raises(ValidationError, match=rf"{name}: .*{match}"):
            probcast.run(PredictRequest(model="m", input=source), model=model)


def test_a_template_dataframe_is_validated_too(model, rows):
    template = station_table(n_stations=3, n_inits=10, seed=3)
    template.loc[0, "obs_tp"] = -1.0
    request = PredictRequest(model="m", input=rows, members=3, template=template)
    with pytest.raises(ValidationError, match=r"template table: column 'obs_tp'"):
        probcast.run(request, model=model)


def test_tables_validated_before_skip_the_value_checks(model, rows):
    """Internal: a service's rows of a table read (and validated) once per cycle."""
    some = rows.assign(obs_tp=np.nan)  # the rows asked for: no observation yet
    request = PredictRequest(model="m", input=some)
    with pytest.raises(ValidationError, match="entirely missing"):
        StationRunner(request, model).execute()
    result = StationRunner(request, model, validated=True).execute()
    assert len(result.table) == len(rows)
