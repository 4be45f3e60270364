"""The fast host path of streamed training: Arrow transform, Arrow row selection, buffer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from probcast.features import Batch, FeatureSpec
from probcast.testing.stations import station_table
from probcast.train.stream_buffer import ShuffleBuffer
from probcast.train.stream_source import ParquetSource, canonical
from probcast.train.stream_transform import ArrowTransform, arrow_ready

FIELDS = ("x", "station", "center", "y", "mask")


def _table() -> pd.DataFrame:
    table = station_table(n_stations=5, n_inits=30, leads=(3.0, 6.0, 27.5))
    table.loc[::7, "fc_ws10"] = np.nan  # missing predictor: an indicator feature
    table.loc[::5, "obs_tp"] = np.nan  # missing observation: masked
    table["station"] = table["station"].astype(str)
    return table


def _assert_same(got: Batch, expected: Batch) -> None:
    for f in (*FIELDS, "scale"):
        a, b = getattr(got, f), getattr(expected, f)
        assert a.dtype == b.dtype and a.shape == b.shape, f
        np.testing.assert_array_equal(a, b, err_msg=f)  # bit for bit (NaN == NaN)


@pytest.mark.parametrize("doy", [True, False])
@pytest.mark.parametrize("station_type", ["string", "dictionary"])
def test_arrow_transform_equals_the_feature_spec_transform(doy, station_type):
    table = _table()
    spec = FeatureSpec.fit(table.iloc[:300], None, {"recent_error_hours": 0.0})
    spec.doy = doy
    assert spec.indicators == ["fc_ws10"] and spec.cyclic
    rows = table.iloc[250:].reset_index(drop=True)  # stations unseen in the first rows too
    rows.loc[3, "station"] = "nowhere"  # a station not in the vocabulary: index 0
    rb = pa.RecordBatch.from_pandas(rows, preserve_index=False)
    if station_type == "dictionary":
        i = rb.schema.get_field_index("station")
        rb = rb.set_column(i, "station", rb.column("station").dictionary_encode())
    assert arrow_ready(spec, rb.schema)
    got = ArrowTransform(spec)(rb)
    _assert_same(got, spec.transform(canonical(rb.to_pandas())))
    assert got.station[3] == 0 and got.station[4] > 0


def test_arrow_path_needs_timestamps_and_numeric_columns():
    table = _table()
    spec = FeatureSpec.fit(table, None, {"recent_error_hours": 0.0})
    schema = pa.Schema.from_pandas(table, preserve_index=False)
    assert arrow_ready(spec, schema)
    assert not arrow_ready(spec, schema.remove(schema.get_field_index("valid_time")))
    as_text = table.assign(init_time=table["init_time"].astype(str))
    assert not arrow_ready(spec, pa.Schema.from_pandas(as_text, preserve_index=False))


def test_arrow_transform_reports_a_missing_forecast_as_the_spec_does():
    table = _table()
    spec = FeatureSpec.fit(table, None, {"recent_error_hours": 0.0})
    table.loc[2, "fc_t2m"] = np.inf
    rb = pa.RecordBatch.from_pandas(table, preserve_index=False)
    with pytest.raises(ValueError, match="raw forecast 'fc_t2m' is missing"):
        ArrowTransform(spec)(rb)


@pytest.mark.parametrize("split", ["", "2021-01-25"])
def test_arrow_row_selection_equals_the_pandas_one(tmp_path, split):
    table = _table()
    table.loc[::11, "fc_tp"] = np.nan  # not usable: no raw forecast
    table.loc[::13, ["obs_t2m", "obs_tp"]] = np.nan  # not usable: no observation
    path = tmp_path / "t.parquet"
    table.to_parquet(path, index=False, row_group_size=100)
    source = ParquetSource.open(path, "t2m,tp", split, 0.25, 40)
    columns = ["fc_ws10", "lead_time"]
    for part in ("fit", "val", "all"):
        for unit in range(len(source.units)):
            frames = list(source.batches(unit, part, columns))
            arrow = [rb.to_pandas() for rb in source.record_batches(unit, part, columns)]
            got = pd.concat(arrow) if arrow else None
            if not frames:
                assert got is None or not len(got)
                continue
            expected = pd.concat(frames, ignore_index=True)
            got = canonical(got.reset_index(drop=True))[list(expected.columns)]
            pd.testing.assert_frame_equal(got, expected, check_categorical=False)


def _batch(start: int, n: int) -> Batch:
    rows = np.arange(start, start + n)
    return Batch(
        x=np.stack([rows, -rows], axis=1).astype("float32"),
        station=rows.astype("int32"),
        center=rows[:, None].astype("float32"),
        scale=np.ones(1, dtype="float32"),
        y=rows[:, None].astype("float32"),
        mask=(rows % 2 == 0)[:, None],
    )


def test_shuffle_buffer_draws_every_row_once_and_keeps_rows_whole():
    rng = np.random.default_rng(0)
    buffer = ShuffleBuffer(capacity=50)
    drawn, added = [], 0
    while added < 400:
        buffer.add(_batch(added, 17))
        added += 17
        while buffer.n >= 30:
            drawn.append(buffer.draw(rng, 20))
    while buffer.n:
        drawn.append(buffer.draw(rng, 20))
    rows = np.concatenate([d.station for d in drawn])
    np.testing.assert_array_equal(np.sort(rows), np.arange(added))  # each row exactly once
    assert not np.array_equal(rows, np.arange(added))  # in a shuffled order
    for d in drawn:  # the fields of a row stay together
        np.testing.assert_array_equal(d.x[:, 0], d.station)
        np.testing.assert_array_equal(d.x[:, 1], -d.station)
        np.testing.assert_array_equal(d.mask[:, 0], d.station % 2 == 0)
    with pytest.raises(ValueError, match="shuffle buffer full"):
        ShuffleBuffer(capacity=10).add(_batch(0, 11))


def test_scan_state_does_not_grow_with_the_number_of_record_batches(tmp_path):
    from probcast.train.stream import _Rows
    from probcast.train.stream_stats import Extent

    table = _table()
    extent, rows = Extent(["fc_t2m", "fc_ws10", "lead_time"]), _Rows(every=8)
    pieces = [table.iloc[i : i + 10] for i in range(0, len(table), 10)]
    for piece in pieces:
        extent.add(piece)
        rows.add(piece)
        rows.add(piece.iloc[:0])  # empty frames are not kept
    assert len(rows.merged) + len(rows.pending) <= len(pieces) // 8 + 8
    pd.testing.assert_frame_equal(rows.frame(table.iloc[:0]), table.reset_index(drop=True))
    low, high = extent.ranges()
    assert low == {"fc_t2m": table["fc_t2m"].min(), "fc_ws10": table["fc_ws10"].min()}
    assert high["fc_ws10"] == table["fc_ws10"].max()
    assert (extent.lead_min, extent.lead_max) == (3.0, 27.5)
    assert extent.stations == set(table["station"])
    path = tmp_path / "t.parquet"
    table.to_parquet(path, index=False, row_group_size=100)
    source = ParquetSource.open(path, "t2m,tp", "", 0.25, 40)
    # row groups are kept as (file, index), not as fragments holding the file's metadata
    assert source.units == [(str(path), g) for g in range(-(-len(table) // 100))]
