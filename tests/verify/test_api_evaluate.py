"""``probcast.evaluate`` from Python: forecasts in the user's units scored as ``probcast
verify`` scores them, friendly argument forms, and errors that name the argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import probcast
from probcast.products.table_files import read_predictions, write_predictions
from probcast.products.units import table_to_units
from probcast.testing import verification as syn
from probcast.verify import cli
from probcast.verify.evaluate import verify

FAMILIES = {"t2m": "normal"}
FAST: dict[str, Any] = {"n_boot": 0, "multivariate": False}


@pytest.fixture(scope="module")
def cases() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Truth, a canonical forecast (parameters, members, p_gt) and the same in degC."""
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=8)
    fc = syn.normal_params_table(truth, mu, sigma)
    fc = fc.merge(syn.members_table(truth, mu, sigma, n_members=6))
    fc["t2m_p_gt_280"] = 0.5
    user, _ = table_to_units(fc, {"t2m": "degC"}, FAMILIES)
    return truth, fc, user


def _crps(ver, name: str = "m", by: str = "all") -> float:
    return ver.value(name, "t2m", "crps", by=by)


@pytest.fixture(scope="module")
def canonical_crps(cases) -> float:
    truth, fc, _ = cases
    return _crps(verify(truth, {"m": fc}, families={"m": FAMILIES}, **FAST))


def _cli_crps(truth_path: Path, forecast: Path, out: Path) -> float:
    argv = [f"--truth={truth_path}", "--forecast", f"m={forecast}", f"--out={out}"]
    assert cli.main([*argv, "--n-boot=0"]) == 0
    scores = pd.read_csv(out / "scores.csv")
    hit = scores[(scores.metric == "crps") & (scores.by == "all") & (scores.method == "m")]
    return float(hit["value"].iloc[0])


def test_read_predictions_then_evaluate_scores_like_verify(
    cases, canonical_crps, tmp_path: Path, capsys
):
    truth, fc, _ = cases
    user, meta = table_to_units(fc, {"t2m": "degC"}, FAMILIES)
    path = write_predictions(user, tmp_path / "p.parquet", families=FAMILIES, metadata=meta)
    table, families = probcast.read_predictions(path)  # as the package docstring shows
    ver = probcast.evaluate(truth, {"m": table}, families={"m": families}, **FAST)
    assert _crps(ver) == pytest.approx(canonical_crps, rel=1e-9)
    truth.to_parquet(tmp_path / "truth.parquet")
    cli_crps = _cli_crps(tmp_path / "truth.parquet", path, tmp_path / "out")
    assert cli_crps == pytest.approx(canonical_crps, rel=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".nc"])
def test_write_predictions_units_then_verify(cases, canonical_crps, tmp_path: Path, suffix, capsys):
    truth, _, user = cases
    path = tmp_path / f"p{suffix}"
    write_predictions(user, path, families=FAMILIES, units={"t2m": "degC"})
    truth.to_parquet(tmp_path / "truth.parquet")
    assert _cli_crps(tmp_path / "truth.parquet", path, tmp_path / "out") == pytest.approx(
        canonical_crps, rel=1e-6
    )


def test_evaluate_converts_forecasts_from_their_units(cases, canonical_crps):
    truth, _, user = cases
    per_name = verify(
        truth, {"m": user}, families={"m": FAMILIES}, units={"m": {"t2m": "degC"}}, **FAST
    )
    assert _crps(per_name) == pytest.approx(canonical_crps, rel=1e-9)
    assert per_name.meta["units"] == {"m": {"t2m": "degC"}}
    assert per_name.meta["thresholds"]["t2m"][-1] == pytest.approx(280.0)  # p_gt in K
    flat = verify(truth, {"m": user}, families=FAMILIES, units={"t2m": "degC"}, **FAST)
    assert _crps(flat) == pytest.approx(canonical_crps, rel=1e-9)


def test_evaluate_refuses_inconsistent_units(cases, tmp_path: Path):
    truth, fc, user = cases
    with pytest.raises(ValueError, match="units given for 'x', which is not one of"):
        verify(truth, {"m": user}, families={"m": FAMILIES}, units={"x": {"t2m": "degC"}})
    with pytest.raises(ValueError, match="'tp', but the table has no forecast"):
        verify(truth, {"m": user}, families={"m": FAMILIES}, units={"m": {"tp": "cm"}})
    with pytest.raises(ValueError, match=r"units\['m'\].*kg"):
        verify(truth, {"m": user}, families={"m": FAMILIES}, units={"m": {"t2m": "kg"}})
    with pytest.raises(TypeError, match="ambiguous with 2 forecasts"):
        verify(truth, {"m": user, "c": fc}, families={"m": FAMILIES}, units={"t2m": "degC"})
    path = write_predictions(user, tmp_path / "p.parquet", families=FAMILIES, units={"t2m": "degC"})
    with pytest.raises(ValueError, match="records its units as"):
        verify(truth, {"m": path}, units={"m": {"t2m": "degF"}})


def test_evaluate_takes_the_friendly_forms(cases, canonical_crps, tmp_path: Path):
    truth, fc, _ = cases
    truth_path = tmp_path / "truth.parquet"
    truth.to_parquet(truth_path)
    fc_path = write_predictions(fc, tmp_path / "fc.parquet", families=FAMILIES)
    _, flat = read_predictions(fc_path)
    ver = verify(truth, {"m": fc}, families=flat, by="station", variables="t2m", **FAST)
    assert _crps(ver) == pytest.approx(canonical_crps, rel=1e-9)
    assert ver.meta["by"] == ["all", "station"] and ver.meta["variables"] == ["t2m"]
    assert ver.value("m", "t2m", "crps", by="station", key="ST000") > 0
    ver = verify(truth_path, {"m": fc_path}, thresholds={"t2m": 281.0}, **FAST)
    assert _crps(ver) == pytest.approx(canonical_crps, rel=1e-9)  # families from the file
    assert 281.0 in ver.meta["thresholds"]["t2m"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"forecasts": "TABLE"}, TypeError, "forecasts: expected a mapping .*got a DataFrame"),
        ({"forecasts": {"m": 42}}, TypeError, r"forecasts\['m'\]: expected a prediction table"),
        ({"truth": 42}, TypeError, "truth: expected a station table"),
        ({"families": {"m": "normal"}}, TypeError, r"families\['m'\]: expected a mapping"),
        ({"families": "normal"}, TypeError, "families: expected a mapping"),
        ({"families": {"x": FAMILIES}}, ValueError, "families given for 'x', which is not"),
        ({"by": 3}, TypeError, "by: expected a string or a sequence"),
        ({"variables": ["t2m", 3]}, TypeError, "variables: expected"),
        ({"thresholds": {"t2m": "high"}}, TypeError, r"thresholds\['t2m'\]: expected a number"),
        ({"thresholds": [280.0]}, TypeError, "thresholds: expected a mapping"),
        ({"reference": 3}, TypeError, "reference: expected a forecast name"),
        ({"units": "degC"}, TypeError, "units: expected a mapping"),
    ],
)
def test_evaluate_names_the_argument_of_the_wrong_type(cases, kwargs, error, match):
    truth, fc, _ = cases
    args = {"truth": truth, "forecasts": {"m": fc}, "families": {"m": FAMILIES}, **kwargs}
    if args["forecasts"] == "TABLE":
        args["forecasts"] = fc
    with pytest.raises(error, match=match):
        verify(args.pop("truth"), args.pop("forecasts"), **args, **FAST)


def test_a_table_in_other_units_records_them_itself(cases, canonical_crps, tmp_path: Path):
    # a PredictResult.table of a request with units: scored and written without being told
    truth, _, user = cases  # (table_to_units, as the runner makes it)
    ver = probcast.evaluate(truth, {"m": user}, families={"m": FAMILIES}, **FAST)
    assert _crps(ver) == pytest.approx(canonical_crps, rel=1e-9)
    path = write_predictions(user, tmp_path / "p.csv", families=FAMILIES)
    truth.to_parquet(tmp_path / "truth.parquet")
    cli_crps = _cli_crps(tmp_path / "truth.parquet", path, tmp_path / "v")
    assert cli_crps == pytest.approx(canonical_crps, rel=1e-6)
    table, _ = read_predictions(path)  # canonical, and says nothing of other units
    ver = probcast.evaluate(truth, {"m": table}, families={"m": FAMILIES}, **FAST)
    assert _crps(ver) == pytest.approx(canonical_crps, rel=1e-6)
    with pytest.raises(ValueError, match="but the table records"):
        probcast.evaluate(truth, {"m": user}, units={"m": {"t2m": "degF"}}, **FAST)
