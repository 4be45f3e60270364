"""Byte-range subsetting end to end against loopback HTTP and S3 servers."""

from __future__ import annotations

import json
import shutil

import eccodes
import numpy as np
import pandas as pd
import pytest

from probcast.sources import fs
from probcast.sources.errors import SourceError
from probcast.sources.remote import EcmwfOpenData, Hrrr


def _messages(path):
    """(offset, length, shortName, startStep, endStep, values, lats, lons) of each message."""
    out = []
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            out.append(
                (
                    int(eccodes.codes_get(h, "offset")),
                    int(eccodes.codes_get(h, "totalLength")),
                    eccodes.codes_get(h, "shortName"),
                    eccodes.codes_get(h, "startStep", ktype=int),
                    eccodes.codes_get(h, "endStep", ktype=int),
                    eccodes.codes_get_double_array(h, "values"),
                    eccodes.codes_get_double_array(h, "latitudes"),
                    eccodes.codes_get_double_array(h, "longitudes"),
                )
            )
            eccodes.codes_release(h)
    return out


def _bucket(options, name):
    import boto3

    kw = options["client_kwargs"]
    boto3.client(
        "s3",
        endpoint_url=kw["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
    ).create_bucket(Bucket=name)


def test_hrrr_precip_by_byte_range(mirror, http_root):
    root, base, ranges = http_root
    src = mirror / "nwp-index-samples" / "subset_20201214_hrrr.t00z.wrfsfcf12.grib2"
    folder = root / "hrrr.20201214" / "conus"
    folder.mkdir(parents=True)
    shutil.copy(src, folder / "hrrr.t00z.wrfsfcf12.grib2")
    msgs = _messages(src)
    lines = [
        f"{i + 1}:{m[0]}:d=2020121400:APCP:surface:{m[3]}-{m[4]} hour acc fcst:"
        for i, m in enumerate(msgs)
    ]
    (folder / "hrrr.t00z.wrfsfcf12.grib2.idx").write_text("\n".join(lines) + "\n")
    total, last_hour = msgs[0][5], msgs[1][5]
    k = int(np.argmax(last_hour))  # the wettest point of the last hour
    lat, lon = np.array([msgs[0][6][k]]), np.array([msgs[0][7][k] - 360.0])
    init = pd.Timestamp("2020-12-14T00", tz="UTC")
    source = Hrrr(base_url=base)
    cf = source.cycle(init, [12.0], ["tp"], lat, lon, accumulation_hours=1.0)
    table, _ = cf.table(["X"], [12.0], ["tp"], accumulation_hours=1.0)
    assert table["fc_tp"].iloc[0] == pytest.approx(last_hour[k]) and last_hour[k] > 0
    table, _ = cf.table(["X"], [12.0], ["tp"], accumulation_hours=12.0)
    assert table["fc_tp"].iloc[0] == pytest.approx(total[k])
    # Only the two messages were transferred, not the whole file: the last one (open
    # ended in the .idx) is cut to the length in its section 0 (first 16 bytes), without
    # the byte that follows it in this file.
    served = sorted(r for p, r in ranges if p.endswith(".grib2"))
    last, length = msgs[1][0], msgs[1][1]
    assert last + length < src.stat().st_size
    assert served == sorted(
        [f"{msgs[0][0]}-{last - 1}", f"{last}-{last + 15}", f"{last}-{last + length - 1}"]
    )


def test_ecmwf_open_data_by_byte_range(mirror, http_root):
    root, base, ranges = http_root
    src = mirror / "ecmwf-opendata-samples" / "ecmwf-ifs-oper-surface.grib2"
    folder = root / "20260310" / "00z" / "ifs" / "0p25" / "oper"
    folder.mkdir(parents=True)
    shutil.copy(src, folder / "20260310000000-0h-oper-fc.grib2")
    msgs = _messages(src)
    index = [
        {"date": "20260310", "time": "0000", "step": "0", "levtype": "sfc", "param": m[2],
         "_offset": m[0], "_length": m[1]}
        for m in msgs
    ]  # fmt: skip
    (folder / "20260310000000-0h-oper-fc.index").write_text(
        "\n".join(json.dumps(x) for x in index) + "\n"
    )
    tcc = next(m for m in msgs if m[2] == "tcc")
    lat, lon = np.array([45.0, -30.0]), np.array([10.0, 150.0])
    source = EcmwfOpenData(base_url=base)
    init = pd.Timestamp("2026-03-10T00", tz="UTC")
    assert source.url(init, 0).endswith(
        "/20260310/00z/ifs/0p25/oper/20260310000000-0h-oper-fc.grib2"
    )
    cf = source.cycle(init, [0.0], ["tcc"], lat, lon, accumulation_hours=6)
    table, _ = cf.table(["A", "B"], [0.0], ["tcc"], accumulation_hours=6)
    # The stations sit on grid points: their values are read straight off the field.
    lons = tcc[7] % 360.0
    at = [
        int(np.flatnonzero((tcc[6] == la) & (lons == lo % 360.0))[0])
        for la, lo in zip(lat, lon, strict=True)
    ]
    expected = [tcc[5][i] for i in at]
    assert table["fc_tcc"].tolist() == pytest.approx(expected)
    assert [r for p, r in ranges if p.endswith(".grib2")] == [f"{tcc[0]}-{tcc[0] + tcc[1] - 1}"]
    # A missing step is reported, not raised.
    cf = source.cycle(init, [6.0], ["tcc"], lat, lon, accumulation_hours=6)
    assert cf.missing and "not found" in cf.missing[0]


def test_server_ignoring_range_is_refused(mirror, http_root, monkeypatch):
    root, base, _ = http_root
    (root / "f.bin").write_bytes(b"0123456789")
    assert fs.read_ranges(f"{base}/f.bin", [(2, 5)]) == [b"234"]
    with pytest.raises(SourceError, match="not found"):
        fs.read_ranges(f"{base}/missing.bin", [(0, 4)])


def test_s3_ranges(s3_server, mirror):
    s3fs = pytest.importorskip("s3fs")
    s3 = s3fs.S3FileSystem(**s3_server)
    _bucket(s3_server, "probcast-ranges")
    src = mirror / "gfs-hrrr-idx-samples" / "gfswave.t18z.atlocn.0p16.f001.grib2"
    s3.put(str(src), "probcast-ranges/gfswave.grib2")
    url = "s3://probcast-ranges/gfswave.grib2"
    assert fs.expand("s3://probcast-ranges/*.grib2", s3_server) == [url]
    (blob,) = fs.read_ranges(url, [(41723, 100527)], s3_server)
    assert blob[:4] == b"GRIB" and len(blob) == 100527 - 41723
