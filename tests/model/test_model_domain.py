"""The training domain (``domain.json``): its fixed format, saving, loading, integrity."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from probcast.model import integrity
from probcast.model.artefact import load
from probcast.model.domain import (
    DOMAIN_FILE,
    LEVELS,
    Domain,
    domain_from_frame,
    load_domain,
    save_domain,
)
from probcast.testing.stations import station_table

EXPECTED_LEVELS = [0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
EXPECTED_LEVELS += [0.95, 0.99, 0.999, 1]


def test_domain_has_the_fixed_format(tmp_path):
    table = station_table(n_stations=3, n_inits=5, seed=0)
    table["stat_empty"] = np.nan
    columns = ["fc_t2m", "fc_tp", "fc_ws10", "lead_time", "altitude", "stat_empty"]
    path = save_domain(tmp_path, domain_from_frame(table, columns))
    assert path == tmp_path / DOMAIN_FILE
    data = json.loads(path.read_text())
    keys = ["version", "rows", "lead_hours", "stations", "features", "valid_until"]
    assert list(data) == keys
    assert data["valid_until"] == f"{table.valid_time.max():%Y-%m-%dT%H:%M:%S}Z"
    older = Domain.from_dict({k: v for k, v in data.items() if k != "valid_until"})
    assert older.valid_until is None  # files written before it was recorded still load
    assert data["version"] == 1 and data["rows"] == len(table)
    assert data["lead_hours"] == {"min": 6.0, "max": 24.0}
    assert data["stations"] == ["ST000", "ST001", "ST002"]
    assert list(data["features"]) == ["fc_t2m", "fc_tp", "fc_ws10", "altitude"]
    for col, entry in data["features"].items():
        assert entry["levels"] == EXPECTED_LEVELS and list(entry) == ["levels", "values"]
        assert len(entry["values"]) == 17 and entry["values"] == sorted(entry["values"])
        expected = np.quantile(table[col], EXPECTED_LEVELS)
        np.testing.assert_allclose(entry["values"], expected)
    assert '"levels": [\n    0,' in path.read_text()  # the ends as written in the format
    assert load_domain(tmp_path) == Domain.from_dict(data)
    assert load_domain(tmp_path).quantile("fc_t2m", 0.5) == pytest.approx(table.fc_t2m.median())
    assert len(LEVELS) == 17


def test_older_models_have_no_domain(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="probcast.model.domain"):
        assert load_domain(tmp_path) is None
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "applicability checks skipped" in caplog.records[0].message


@pytest.mark.parametrize(
    "text, match",
    [
        ("{", "unreadable training domain"),
        ("[]", "expected a JSON object"),
        ('{"version": 2}', "domain version 2"),
        ('{"version": 1, "rows": 3}', "malformed training domain"),
    ],
)
def test_bad_domain_files_name_the_file(tmp_path, text, match):
    (tmp_path / DOMAIN_FILE).write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_domain(tmp_path)
    assert DOMAIN_FILE in str(info.value)


def test_domain_needs_rows_and_columns():
    table = station_table(n_stations=1, n_inits=2)
    with pytest.raises(ValueError, match="empty"):
        domain_from_frame(table.iloc[:0], ["fc_t2m"])
    with pytest.raises(ValueError, match=r"lacks input column\(s\) \['fc_x'\]"):
        domain_from_frame(table, ["fc_x"])


def test_domain_is_checksummed_in_the_marker(tmp_path):
    for name in ("config.json", "features.json", "meta.json"):
        (tmp_path / name).write_text("{}")
    save_domain(tmp_path, domain_from_frame(station_table(n_stations=1, n_inits=2), ["fc_t2m"]))
    integrity.write_marker(tmp_path)
    listed = json.loads((tmp_path / integrity.MARKER).read_text())["sha256"]
    assert DOMAIN_FILE in listed
    (tmp_path / DOMAIN_FILE).write_text((tmp_path / DOMAIN_FILE).read_text().replace("6.0", "7.0"))
    with pytest.raises(ValueError, match=r"domain\.json does not match its checksum"):
        integrity.verify(tmp_path)


@pytest.mark.slow
def test_training_writes_the_domain_and_load_reads_it(tmp_path):
    from probcast.cli import main

    table = station_table(n_stations=2, n_inits=8, seed=1)
    table.to_parquet(tmp_path / "train.parquet")
    args = ["train", "--config=tiny", f"--workdir={tmp_path / 'model'}"]
    args += [f"--config.data.path={tmp_path / 'train.parquet'}", "--config.train.epochs=1"]
    args += ["--config.train.refit=false", "--config.train.calibrate_spread=false"]
    assert main(args) == 0
    listed = json.loads((tmp_path / "model" / integrity.MARKER).read_text())["sha256"]
    assert DOMAIN_FILE in listed
    model = load(tmp_path / "model")
    assert model.domain is not None and model.domain.rows > 0
    inputs = [c for c in model.spec.columns if c != "lead_time"]
    assert sorted(model.domain.features) == sorted(inputs)
    assert model.domain.stations == tuple(model.spec.stations)


def test_domain_stations_are_those_with_rows_whatever_the_column_type():
    table = station_table(n_stations=3, n_inits=2, seed=0)
    want = ("ST000", "ST001", "ST002")
    for stations in (
        table["station"].astype(object),
        table["station"].astype("string[pyarrow]"),
        pd.Categorical(table["station"], categories=["ST009", *want]),  # one without rows
    ):
        assert domain_from_frame(table.assign(station=stations), ["fc_t2m"]).stations == want
