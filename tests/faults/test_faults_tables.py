"""Truncated CSV and corrupted Parquet station tables are errors, never other values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.ingest.tables import check_csv, read_table, write_table
from probcast.testing.stations import station_table


@pytest.fixture(scope="module")
def table():
    return station_table(n_stations=4, n_inits=20)


@pytest.fixture
def csv_path(tmp_path, table):
    return write_table(table, tmp_path / "t.csv")


def test_intact_tables_read_back(tmp_path, table, csv_path):
    assert len(read_table(csv_path)) == len(table)
    pq_path = write_table(table, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(pq_path), read_table(csv_path), check_dtype=False)


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_truncated_csv_is_an_error(csv_path, cut):
    data = csv_path.read_bytes()
    n_lines = data.count(b"\n")
    csv_path.write_bytes(data[:-cut])
    with pytest.raises(
        ValueError, match=rf"{csv_path}: line {n_lines} does not end with a newline"
    ):
        read_table(csv_path)


def test_csv_row_with_missing_fields_is_an_error(csv_path):
    lines = csv_path.read_text().splitlines(keepends=True)
    short = lines[5].rsplit(",", 2)[0] + "\n"
    csv_path.write_text("".join([*lines[:5], short, *lines[6:]]))
    with pytest.raises(ValueError, match=rf"{csv_path}: line 6 has \d+ fields, the header"):
        read_table(csv_path)


def test_quoted_csv_fields_are_counted_correctly(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,b,c\n"x,y",1,2\n\n"z",3,4\r\n')
    check_csv(path)
    path.write_text('a,b,c\n"x,y",1,2\n"z",3\n')
    with pytest.raises(ValueError, match="line 3 has 2 fields"):
        check_csv(path)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.integers(1, 5), min_size=1, max_size=12), blank=st.booleans())
def test_field_count_check_matches_the_csv_module(tmp_path_factory, rows, blank):
    path = tmp_path_factory.mktemp("csv") / "h.csv"
    lines = [",".join("h" * 3)] + [",".join("1" * n) for n in rows]
    if blank:
        lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n")
    if all(n == 3 for n in rows):
        check_csv(path)
    else:
        with pytest.raises(ValueError, match="fields, the header 3"):
            check_csv(path)


def test_a_semicolon_csv_with_decimal_commas_gets_a_hint(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("station;init_time;lead_time;fc_t2m\nA;2020-01-01;6;280,5\n")
    with pytest.raises(ValueError, match=r"header 1 \(not comma-separated\?.*sep=';'"):
        check_csv(path)


def test_parquet_with_zeroed_bytes_is_an_error_or_unchanged(tmp_path, table):
    path = write_table(table, tmp_path / "t.parquet")
    good = path.read_bytes()
    expected = read_table(path)
    # 64 zero bytes at many places of the data region (the footer is always checked).
    offsets = np.linspace(4, len(good) - 64 - 8 - 2000, 25).astype(int)
    errors = 0
    for off in [len(good) // 2, *offsets]:
        bad = bytearray(good)
        bad[off : off + 64] = bytes(64)
        path.write_bytes(bytes(bad))
        try:
            got = read_table(path)
        except ValueError as err:
            assert str(path) in str(err)
            errors += 1
            continue
        pd.testing.assert_frame_equal(got, expected)  # only if the bytes were zero already
    assert errors >= len(offsets) // 2
    path.write_bytes(good)
    bad = bytearray(good)
    bad[len(good) // 2 : len(good) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=rf"{path}: corrupted or unreadable Parquet"):
        read_table(path)
