"""CSV station ids are text: ``NA``, ``None``, ``nan`` are ids; an empty id names its line."""

from __future__ import annotations

import numpy as np
import pytest

from probcast.cli import main
from probcast.ingest.tables import read_table
from probcast.testing.stations import station_table

IDS = {"ST000": "NA", "ST001": "None", "ST002": "nan", "ST003": "007"}
STAMP = "%Y-%m-%dT%H:%M:%SZ"


@pytest.fixture
def table():
    t = station_table(n_stations=4, n_inits=3, targets=("t2m",))
    t["station"] = t["station"].map(IDS)
    return t


def test_na_like_ids_are_ids(tmp_path, table) -> None:
    path = tmp_path / "ids.csv"
    table.loc[2, "obs_t2m"] = np.nan  # written as an empty cell: still a missing value
    table.to_csv(path, index=False, date_format=STAMP)
    text = path.read_text().replace(",,", ",NA,", 1)  # and "NA" in a value column too
    path.write_text(text)
    df = read_table(path)
    assert sorted(df["station"].unique()) == sorted(IDS.values())
    assert df["obs_t2m"].isna().sum() == 1 and df["fc_t2m"].notna().all()
    assert main(["data", "check", str(path)]) == 0


def test_empty_id_is_an_error_naming_the_line(tmp_path, table, capsys) -> None:
    table.loc[4, "station"] = ""
    path = tmp_path / "empty.csv"
    table.to_csv(path, index=False, date_format=STAMP)
    with pytest.raises(ValueError, match=r"empty\.csv: line 6: empty station id"):
        read_table(path)
    assert main(["data", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "line 6: empty station id" in err and "Traceback" not in err


def test_quoted_csv_gets_the_same_line_numbers(tmp_path, table) -> None:
    table.loc[7, "station"] = ""
    table["note"] = "a, b"  # quoted fields: the csv module counts the lines
    path = tmp_path / "quoted.csv"
    table.to_csv(path, index=False, date_format=STAMP)
    with pytest.raises(ValueError, match="line 9: empty station id"):
        read_table(path, validate=False)
