"""The build spec refuses unknown keys; observations that the range check would empty fail."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from probcast.sources import config
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import load_spec, parse_spec
from probcast.sources.errors import SourceError
from probcast.sources.obs import check_some_in_range
from probcast.sources.qc import RANGES
from probcast.testing import archives as synthetic

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sources.md"
BASE = {
    "nwp": {"source": "archive", "paths": "nwp/*.grib"},
    "truth": {"source": "table", "paths": ["obs.csv"]},
    "variables": ["t2m"],
    "period": {"start": "2025-01-01", "end": "2025-01-10"},
    "cycles": [0, 12],
    "lead_times": [6],
}


def _with(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


def test_top_level_typo_names_file_key_and_suggestion(tmp_path):
    spec = {k: v for k, v in BASE.items() if k != "cycles"} | {"cycle": [12]}
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SourceError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: unknown key(s) cycle (did you mean 'cycles'?)")
    assert "allowed at the top level: nwp, truth, stations" in msg and "lead_times" in msg


def test_cli_refuses_the_typo_with_exit_1(tmp_path, capsys):
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump({**BASE, "lead_time": [6]}))
    assert main(["--config", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lead_time (did you mean 'lead_times'?)" in err


def test_truth_units_points_to_options_units():
    truth = {"source": "table", "paths": ["obs.csv"], "units": {"t2m": "degC"}}
    with pytest.raises(
        SourceError, match=re.escape("truth.units (did you mean 'truth.options.units'?)")
    ) as err:
        parse_spec(_with(truth=truth), source="b.yaml")
    assert "allowed in truth (source table): source, paths, storage_options, options" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"nwp": {"source": "archive", "path": "x"}}, "nwp.path (did you mean 'nwp.paths'?)"),
        (
            {"nwp": {"source": "gfs", "paths": "x"}},
            "nwp.paths (only for source archive); allowed in nwp (source gfs)",
        ),
        ({"period": {"start": "2025-01-01", "end": "2025-01-02", "ends": 1}}, "period.ends"),
        (
            {"stations": ["A", {"station": "B", "lat": 50}]},
            "stations[1].lat; allowed in stations[1]: station,",
        ),
        ({"output": {"kind": "table", "methods": "x"}}, "output.methods (did you mean"),
        (
            {"truth": {"source": "table", "paths": ["o"], "options": {"unit": {"t2m": "K"}}}},
            "truth.options.unit (did you mean 'truth.options.units'?)",
        ),
        (
            {"truth": {"source": "isd", "paths": ["o"], "options": {}}},
            "truth.options (did you mean 'truth.storage_options'?) (only for source table)",
        ),
        ({"truth": {"source": "table", "paths": ["o"], "options": {"units": "degC"}}}, "column"),
    ],
)
def test_unknown_keys_at_every_level(changes, expected):
    with pytest.raises(SourceError, match=re.escape(expected)):
        parse_spec(_with(**changes), source="b.yaml")


def test_valid_specs_still_load():
    truth = {"source": "table", "paths": ["o.csv"], "options": {"units": {"t2m": "degC"}}}
    assert parse_spec(_with(truth=truth)).truth["options"] == {"units": {"t2m": "degC"}}
    nwp = {"source": "ecmwf-opendata", "base_url": "http://x", "model": "aifs-single"}
    stations = [{"station": "A", "name": "a", "latitude": 1, "longitude": 2, "altitude": 3}]
    assert parse_spec(_with(nwp=nwp, stations=stations, match_minutes=20)).match_minutes == 20
    example = yaml.safe_load((config.__doc__ or "").split("::", 1)[1].split("\n\n")[1])
    assert set(example) == set(config.TOP_KEYS)
    del example["output"]  # zarr-grid needs gridded truth, the example's is isd
    assert parse_spec(example).area is not None


def _doc_specs() -> list[dict[str, object]]:
    blocks = re.findall(r"```(?:yaml|sh)\n(.*?)```", DOCS.read_text(), re.S)
    texts = [
        b.split("<<'YAML'\n", 1)[1].split("YAML\n")[0] if "<<'YAML'" in b else b for b in blocks
    ]
    return [d for d in map(yaml.safe_load, (t for t in texts if t.startswith(("nwp", "truth"))))]


def test_specs_in_docs_load():
    docs = _doc_specs()
    assert len(docs) >= 4
    for data in docs:
        if "nwp" in data:
            parse_spec(data, source=str(DOCS))
        else:  # a truth section alone
            parse_spec(_with(**data), source=str(DOCS))


def test_all_out_of_range_names_variable_file_and_units():
    obs = pd.DataFrame({"station": "A", "obs_t2m": [-2.0, 1.5, np.nan], "obs_ws10": [3.0, 4, 5]})
    with pytest.raises(SourceError) as err:
        check_some_in_range(obs, ["demo/obs_degC.csv"], RANGES)
    msg = str(err.value)
    assert msg.startswith("demo/obs_degC.csv: obs_t2m: the range check would remove every")
    assert "2 value(s) outside" in msg and "would fit as 'degC'" in msg and "not 'K'" in msg


def test_some_in_range_or_unchecked_passes():
    obs = pd.DataFrame({"obs_t2m": [-2.0, 280.0], "obs_wdir10": [400.0, 500.0]})
    check_some_in_range(obs, "obs.csv", RANGES, variables=["t2m"])
    with pytest.raises(SourceError, match=r"obs_wdir10: .* wrong units or corrupted values"):
        check_some_in_range(obs, "obs.csv", RANGES)


def test_all_out_of_range_uses_the_given_units():
    hpa = pd.DataFrame({"obs_msl": [1013.0, 1001.0]})  # hPa values declared as Pa
    with pytest.raises(SourceError, match="would fit as 'hPa'"):
        check_some_in_range(hpa, "obs.csv", RANGES, units={"obs_msl": "Pa"})


def test_build_fails_when_range_check_removes_everything(tmp_path):
    inits = [pd.Timestamp("2025-01-01T00", tz="UTC")]
    synthetic.write_archive(tmp_path / "nwp", inits, [0, 6])
    obs = tmp_path / "obs_degC.csv"
    obs.write_text(
        "station,time,latitude,longitude,t2m\n"
        "A,2025-01-01T00:00,50.0,5.0,-2.0\n"
        "A,2025-01-01T06:00,50.0,5.0,1.5\n"
    )
    spec = _with(
        nwp={"source": "archive", "paths": str(tmp_path / "nwp" / "*.grib")},
        truth={"source": "table", "paths": [str(obs)]},
        period={"start": "2025-01-01", "end": "2025-01-01"},
        cycles=[0],
        lead_times=[0, 6],
    )
    with pytest.raises(SourceError, match=r"obs_degC\.csv.*obs_t2m.*would fit as 'degC'"):
        build(parse_spec(spec), tmp_path / "out")
