"""Lead times value by value: a plain number is hours, a string with a unit a duration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probcast.data.check import CheckError, check
from probcast.validate import ValidationError, to_hours, validate_station_table


def _table(leads: list) -> pd.DataFrame:
    n = len(leads)
    return pd.DataFrame(
        {
            "station": ["A"] * n,
            "init_time": ["2021-01-21T00:00Z"] * n,
            "lead_time": leads,
            "fc_t2m": np.linspace(280.0, 282.0, n),
            "obs_t2m": np.linspace(281.0, 283.0, n),
        }
    )


def test_mixed_spellings_give_hours():
    # "12" among "6h"/"24h" was read by pd.to_timedelta as 12 ns (3.3e-12 h)
    assert to_hours(pd.Series(["6h", "12", "24h"]), "t").tolist() == [6.0, 12.0, 24.0]


@pytest.mark.parametrize(
    ("value", "hours"),
    [
        ("12", 12.0),
        (" 7.5 ", 7.5),
        (6, 6.0),
        (1.5, 1.5),
        ("6h", 6.0),
        ("90min", 1.5),
        ("1 day 06:00:00", 30.0),
        ("PT6H", 6.0),
        ("P1DT6H", 30.0),
        (pd.Timedelta("3h"), 3.0),
        (np.timedelta64(45, "m"), 0.75),
    ],
)
def test_each_spelling(value, hours):
    got = to_hours(pd.Series(["6h", value, None], dtype=object), "t")
    assert got.iloc[0] == 6.0 and got.iloc[1] == pytest.approx(hours) and np.isnan(got.iloc[2])


def test_timedelta_and_numeric_columns():
    tds = pd.Series(pd.to_timedelta(["6h", "90min", None]))
    assert to_hours(tds, "t").tolist()[:2] == [6.0, 1.5] and np.isnan(to_hours(tds, "t")[2])
    assert to_hours(pd.Series([6, 12]), "t").tolist() == [6.0, 12.0]
    assert to_hours(pd.Series(["6", "12"], dtype="string"), "t").tolist() == [6.0, 12.0]


def test_not_a_duration_refused():
    with pytest.raises(ValidationError) as err:
        to_hours(pd.Series(["6h", "soon", "soon", True], dtype=object), "f.csv")
    msg = str(err.value)
    assert msg.startswith("f.csv: column 'lead_time': 3 value(s) are neither hours nor")
    assert "e.g. 'soon', True;" in msg


def test_station_table_and_data_check(tmp_path):
    df = validate_station_table(_table(["6h", "12", "24h"]), source="t")
    assert df["lead_time"].tolist() == [6.0, 12.0, 24.0]
    assert (df["valid_time"] - df["init_time"]).dt.total_seconds().tolist() == [
        21600.0,
        43200.0,
        86400.0,
    ]
    path = tmp_path / "mixlead.csv"
    _table(["6h", "12", "24h"]).to_csv(path, index=False)
    assert "6..24 h (3 values)" in check(path)


@pytest.mark.parametrize("value", ["6,0", "12,5", "1 2", "6_0"])
def test_a_number_pandas_would_read_as_nanoseconds_is_refused(value, tmp_path):
    # pd.Timedelta("6,0") is 60 ns: a decimal comma gave lead times of 1.7e-11 h, exit 0
    with pytest.raises(ValidationError, match=f"e.g. '{value}'; expected float hours"):
        to_hours(pd.Series(["6h", value], dtype=object), "f.csv")
    path = tmp_path / "comma.csv"
    _table(["6,0", "12,0"]).to_csv(path, index=False)
    with pytest.raises(CheckError, match=r"comma\.csv: column 'lead_time'"):
        check(path)
