"""``probcast predict`` then ``probcast verify`` with default flags: every format, every family.

The prediction table records the family of its parameters (Parquet metadata, NetCDF
attribute, CSV sidecar), so verification scores the distribution itself, in closed form,
with no ``--family`` flag; a generative head is scored from its members. Also: the same
predictions driven from Python through the request/runner, without the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probcast.cli import main
from probcast.dists import DISTRIBUTIONS, GENERATIVE
from probcast.predict.request import PredictRequest
from probcast.predict.runner import run
from probcast.products.table_files import read_predictions
from probcast.testing.stations import station_table

FAMILIES = sorted(DISTRIBUTIONS)
# Two targets per training: every family (and the generative head) is one target's head, the
# family bounded to [0, 1] (cloud cover's) on tp, where its values are still physical (a t2m
# of 1 K is refused by verification's range check).
_REST = [f for f in FAMILIES if f != "censored_normal_01"]
PAIRS = [(_REST[i], _REST[i + 1]) for i in range(0, len(_REST) - 1, 2)]
PAIRS += [(GENERATIVE, "censored_normal_01")] + ([(_REST[-1], "normal")] if len(_REST) % 2 else [])
assert {f for pair in PAIRS for f in pair} == {*FAMILIES, GENERATIVE}
FORMATS = (".parquet", ".csv", ".nc")


def _heads_override(t2m: str, tp: str) -> list[str]:
    gen = [v for v, h in (("t2m", t2m), ("tp", tp)) if h == GENERATIVE]
    dist = ",".join(f"{v}:{h}" for v, h in (("t2m", t2m), ("tp", tp)) if h != GENERATIVE)
    out = [f"--config.model.distributions={dist}"] if dist else []
    return out + ([f"--config.model.generative={','.join(gen)}"] if gen else [])


@pytest.fixture(scope="module", params=PAIRS, ids=["+".join(p) for p in PAIRS])
def trained(request, tmp_path_factory):
    t2m, tp = request.param
    root = tmp_path_factory.mktemp("roundtrip")
    table = station_table(n_stations=2, n_inits=12, seed=1)
    train, test = table[table.init_time < "2021-01-09"], table[table.init_time >= "2021-01-10"]
    train.to_parquet(root / "train.parquet")
    test.to_parquet(root / "test.parquet")
    args = ["train", "--config=tiny", f"--workdir={root / 'model'}"]
    args += [f"--config.data.path={root / 'train.parquet'}", "--config.train.epochs=1"]
    args += ["--config.train.refit=false", "--config.train.calibrate_spread=false"]
    assert main(args + _heads_override(t2m, tp)) == 0
    return root, {"t2m": t2m, "tp": tp}


@pytest.mark.parametrize("suffix", FORMATS)
def test_predict_then_verify_with_default_flags(trained, suffix, capsys):
    root, heads = trained
    out = root / f"pred{suffix}"
    args = [f"--model={root / 'model'}", f"--input={root / 'test.parquet'}", f"--output={out}"]
    assert main(["predict", *args]) == 0
    table, families = read_predictions(out)
    assert len(table) == len(pd.read_parquet(root / "test.parquet"))
    assert families == {v: h for v, h in heads.items() if h != GENERATIVE}
    verdir = root / f"verify{suffix}"
    args = [f"--truth={root / 'test.parquet'}", f"--forecast=model={out}", f"--out={verdir}"]
    assert main(["verify", *args]) == 0
    printed = capsys.readouterr().out
    forms = json.loads((verdir / "scores.json").read_text())["meta"]["forms"]["model"]
    for var, head in heads.items():
        expected = "members" if head == GENERATIVE else "params"
        assert forms[var]["kind"] == expected, (var, head)
        assert f"model {var}: " in printed
    assert "closed-form CRPS" in printed


def test_station_prediction_from_python(trained, tmp_path):
    """The runner, without the CLI: a DataFrame in, a table and Predictive objects out."""
    root, heads = trained
    test = pd.read_parquet(root / "test.parquet")
    result = run(PredictRequest(model=root / "model", input=test, members=4, quantiles=(0.5,)))
    assert result.kind == "stations" and result.table is not None
    assert len(result.table) == len(test) and "t2m_m003" in result.table
    for var, head in heads.items():
        fc = result.forecasts[var]
        assert fc.kind == ("members" if head == GENERATIVE else "params")
        assert np.isfinite(fc.crps(test[f"obs_{var}"].to_numpy())).all()
    written = run(PredictRequest(model=root / "model", input=test, output=tmp_path / "p.csv"))
    assert written.paths["table"] == Path(tmp_path / "p.csv")
    assert (tmp_path / "p.csv.json").exists()
