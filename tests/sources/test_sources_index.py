from __future__ import annotations

import pytest

from probcast.sources.errors import SourceError
from probcast.sources.index import merge_ranges, parse_ecmwf_index, parse_forecast, parse_idx
from probcast.sources.remote import ECMWF_PARAMS, NoaaSource


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("anl", (0.0, 0.0, "instant")),
        ("21 hour fcst", (21.0, 21.0, "instant")),
        ("18-21 hour acc fcst", (18.0, 21.0, "accum")),
        ("0-0 day acc fcst", (0.0, 0.0, "accum")),
        ("1-2 day acc fcst", (24.0, 48.0, "accum")),
        ("495 min fcst", (8.25, 8.25, "instant")),
        ("18-21 hour ave fcst", (18.0, 21.0, "avg")),
    ],
)
def test_parse_forecast(text, expected):
    assert parse_forecast(text) == expected


def test_rap_submessages_share_one_range(mirror):
    text = (mirror / "nwp-index-samples" / "rap.t00z.awp130pgrbf00.grib2.idx").read_text()
    recs = parse_idx(text)
    assert len(recs) == 355
    u = next(r for r in recs if r.number == "12.1")
    v = next(r for r in recs if r.number == "12.2")
    assert (u.variable, v.variable) == ("UGRD", "VGRD")
    assert u.byte_range == v.byte_range == (734576, 802204)  # next distinct offset: message 13
    assert (u.submessage, v.submessage) == (1, 2)
    assert len(merge_ranges([u, v])) == 1
    assert len(merge_ranges(recs)) == 306  # 306 messages for 355 lines


def test_gfs_f021_precip_and_cloud_selection(mirror):
    recs = parse_idx((mirror / "noaa-idx-inventories" / "gfs.t00z.pgrb2.0p25.f021.idx").read_text())
    tp = [r for r in recs if NoaaSource.wanted(None, r, "tp")]  # type: ignore[arg-type]
    assert [(r.start_step, r.end_step) for r in tp] == [(18.0, 21.0), (0.0, 21.0)]
    tcc = [r for r in recs if NoaaSource.wanted(None, r, "tcc")]  # type: ignore[arg-type]
    assert [r.number for r in tcc] == ["636"]  # instant, not the 18-21 h average
    assert tcc[0].length == 452791241 - 451959374
    u10 = [r for r in recs if NoaaSource.wanted(None, r, "u10")]  # type: ignore[arg-type]
    assert len(u10) == 1 and u10[0].level == "10 m above ground"


def test_hrrr_analysis_precip_is_not_an_amount(mirror):
    recs = parse_idx((mirror / "nwp-index-samples" / "hrrr.t00z.wrfsfcf00.grib2.idx").read_text())
    apcp = [r for r in recs if r.variable == "APCP"]
    assert apcp and (apcp[0].start_step, apcp[0].end_step) == (0.0, 0.0)
    assert not [r for r in recs if NoaaSource.wanted(None, r, "tp")]  # type: ignore[arg-type]
    orog = [r for r in recs if NoaaSource.wanted(None, r, "orog")]  # type: ignore[arg-type]
    assert [r.offset for r in orog] == [31265676]
    last = recs[-1]
    assert last.length is None and last.byte_range[1] is None  # to the end of the file


def test_hrrr_subhourly_steps_in_minutes(mirror):
    recs = parse_idx(
        (mirror / "noaa-idx-inventories" / "hrrr.t01z.wrfsubhf09.grib2.idx").read_text()
    )
    steps = sorted({r.end_step for r in recs if r.kind == "instant"})
    assert steps == [8.25, 8.5, 8.75, 9.0]


def test_ecmwf_index(mirror):
    text = (mirror / "nwp-index-samples" / "20231201000000-0h-oper-fc.index").read_text()
    recs = parse_ecmwf_index(text)
    assert len(recs) == 83
    assert recs[0].offset == 0 and recs[0].length == 199377 and recs[0].level == "pl/1000"
    sfc = {r.variable for r in recs if r.level == "sfc"}
    assert {"10u", "10v", "2t", "msl", "sp", "tp"} <= sfc
    t2 = [r for r in recs if r.level == "sfc" and r.variable in ECMWF_PARAMS["t2m"]]
    assert len(t2) == 1 and t2[0].init == "2023120100"


def test_bad_index_lines_are_named():
    with pytest.raises(SourceError, match="line 2 is not a wgrib2 index line"):
        parse_idx("1:0:d=2023120100:TMP:2 m above ground:anl:\ngarbage\n")
    with pytest.raises(SourceError, match="line 1 is not an ECMWF index line"):
        parse_ecmwf_index('{"param": "2t"}\n')
