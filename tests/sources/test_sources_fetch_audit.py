"""Fetching raw NWP files: wrong runs, open ranges, HTTP errors, timeouts, reruns, streams.

A loopback HTTP server whose first path segment picks a behaviour (``ok``, ``norange``:
ignores Range, ``s403``: 403 for a missing file, ``s503``: always 503, ``flaky``: 503 twice
then ``ok``, ``short``: declares the length and sends half, ``hang``: answers nothing).
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import eccodes
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from probcast.sources import fs, partitions
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import parse_spec
from probcast.sources.cycle import CycleFields
from probcast.sources.errors import SourceError, WrongRunError
from probcast.sources.grib import Field
from probcast.sources.index import parse_ecmwf_index
from probcast.sources.remote import EcmwfOpenData, Gfs, Hrrr

FAST = {"retries": 2, "retry_wait": 0.01, "timeout": 0.5}
INIT = pd.Timestamp("2023-11-04T00", tz="UTC")
LAT, LON = np.array([40.0]), np.array([2.0])


class Handler(http.server.BaseHTTPRequestHandler):
    """Files under ``root`` with single-Range support; the first path segment is the mode."""

    protocol_version = "HTTP/1.1"
    hits: ClassVar[list[tuple[str, str, str | None]]] = []
    flaky: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: object, root: Path, **kwargs: object) -> None:
        self.root = root
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mode, _, rel = self.path.lstrip("/").partition("/")
        rng = self.headers.get("Range")
        type(self).hits.append((mode, rel, rng))
        path = self.root / rel
        if mode == "hang":
            time.sleep(4)
            self.close_connection = True
            return
        if mode == "s503" or (mode == "flaky" and self.flaky.setdefault(rel, 0) < 2):
            self.flaky[rel] = self.flaky.get(rel, 0) + 1
            return self._send(503, b"<Error>busy</Error>")
        if not path.is_file():
            return self._send(403 if mode == "s403" else 404, b"<Error>nope</Error>")
        data = path.read_bytes()
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", (rng or "").strip())
        if m and mode != "norange":
            start = int(m.group(1))
            end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            if start >= len(data):
                return self._send(416, b"")
            return self._send(206, data[start : end + 1])
        return self._send(200, data, cut=mode == "short")

    def _send(self, status: int, body: bytes, cut: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if cut:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str, list]]:
    """(folder served, base URL without mode, requests seen)."""
    root = tmp_path / "www"
    root.mkdir()
    Handler.hits, Handler.flaky = [], {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, root=root))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", Handler.hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def grib2(short: str, value: float, init: pd.Timestamp, step: int, level: int = 2) -> bytes:
    """A 5x5 1-degree GRIB2 message around (40N, 2E), constant ``value``."""
    h = eccodes.codes_grib_new_from_samples("GRIB2")
    for key, val in (
        ("Ni", 5), ("Nj", 5), ("latitudeOfFirstGridPointInDegrees", 42.0),
        ("longitudeOfFirstGridPointInDegrees", 0.0), ("latitudeOfLastGridPointInDegrees", 38.0),
        ("longitudeOfLastGridPointInDegrees", 4.0), ("iDirectionIncrementInDegrees", 1.0),
        ("jDirectionIncrementInDegrees", 1.0), ("discipline", 0), ("shortName", short),
        ("typeOfLevel", "heightAboveGround"), ("level", level),
        ("dataDate", int(f"{init:%Y%m%d}")), ("dataTime", int(f"{init:%H%M}")), ("step", step),
    ):  # fmt: skip
        eccodes.codes_set(h, key, val)
    eccodes.codes_set_values(h, np.full(25, value))
    blob = bytes(eccodes.codes_get_message(h))
    eccodes.codes_release(h)
    return blob


def publish(
    root: Path,
    init: pd.Timestamp,
    step: int,
    *,
    d: str | None = None,
    grib_init: pd.Timestamp | None = None,
    idx_lines: int | None = None,
) -> Path:
    """Write an HRRR file (2t, 10u, 2t-at-10m) of ``init`` + ``step`` and its ``.idx``."""
    folder = root / f"hrrr.{init:%Y%m%d}" / "conus"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"hrrr.t{init:%H}z.wrfsfcf{step:02d}.grib2"
    run = grib_init if grib_init is not None else init
    msgs = [
        (grib2("2t", 280.0 + step, run, step), "TMP:2 m above ground"),
        (grib2("10u", 3.0, run, step, 10), "UGRD:10 m above ground"),
        (grib2("2t", 999.0, run, step, 10), "TMP:10 m above ground"),
    ]
    lines, offset = [], 0
    for i, (blob, text) in enumerate(msgs, 1):
        lines.append(f"{i}:{offset}:d={d or f'{init:%Y%m%d%H}'}:{text}:{step} hour fcst:")
        offset += len(blob)
    path.write_bytes(b"".join(b for b, _ in msgs))
    Path(f"{path}.idx").write_text("\n".join(lines[:idx_lines]) + "\n")
    return path


# 1. A file of another run -------------------------------------------------------------


def test_index_of_another_run_is_refused(server):
    root, base, _ = server
    publish(root, INIT, 1, d="2023110300")  # yesterday's file left under today's name
    cf = Hrrr(base_url=f"{base}/ok").cycle(INIT, [1.0], ["t2m"], LAT, LON, accumulation_hours=1)
    assert not cf.instant
    (note,) = cf.missing
    assert "wrfsfcf01.grib2" in note and "2023-11-03 00 UTC" in note and "2023-11-04 00 UTC" in note
    assert cf.unavailable == [note]


def test_grib_of_another_run_is_refused(server):
    root, base, _ = server
    publish(root, INIT, 1, grib_init=INIT - pd.Timedelta(hours=6))  # .idx right, GRIB not
    cf = Hrrr(base_url=f"{base}/ok").cycle(INIT, [1.0], ["t2m"], LAT, LON, accumulation_hours=1)
    assert not cf.instant and "2023-11-03 18:00 UTC" in cf.missing[0]
    field = Field("2t", "heightAboveGround", 2, INIT, 1, 1, "instant", "K", np.array([280.0]))
    one = CycleFields(init_time=INIT + pd.Timedelta(hours=1))
    with pytest.raises(WrongRunError, match="run asked for, 2023-11-04 01:00 UTC"):
        one.extend([field], source="f.grib2")
    assert not one.instant


def test_build_counts_a_wrong_run_as_missing_nwp(server, tmp_path):
    root, base, _ = server
    publish(root, INIT, 1)
    publish(root, INIT + pd.Timedelta(days=1), 1, d="2023110400")
    result = build(parse_spec(_spec(tmp_path, f"{base}/ok", end="2023-11-05")), tmp_path / "o")
    assert result.written == ["2023-11-04T00:00Z"]
    assert "2023-11-04 00 UTC" in result.missing_nwp["2023-11-05T00:00Z"][0]
    assert not (tmp_path / "o" / "init_date=2023-11-05").exists()


def test_ecmwf_index_run_time_is_padded():
    line = {"date": "20260512", "time": "600", "step": "0", "levtype": "sfc", "param": "2t",
            "_offset": 0, "_length": 10}  # fmt: skip
    assert parse_ecmwf_index(json.dumps(line))[0].init == "2026051206"
    line["time"] = "1200"
    assert parse_ecmwf_index(json.dumps(line))[0].init == "2026051212"


# 3. The open-ended last message ---------------------------------------------------------


def test_last_idx_message_is_read_exactly(server):
    root, base, hits = server
    path = publish(root, INIT, 1, idx_lines=1)  # .idx cut after its first line
    url = f"{base}/ok/{path.relative_to(root)}"
    (blob,) = fs.read_ranges(url, [(0, None)], FAST)
    assert blob == grib2("2t", 281.0, INIT, 1)  # one message, not the rest of the file
    cf = Hrrr(base_url=f"{base}/ok").cycle(INIT, [1.0], ["t2m"], LAT, LON, accumulation_hours=1)
    assert cf.instant["t2m"][1.0] == pytest.approx([281.0]) and not cf.missing
    assert [h[2] for h in hits if h[1].endswith(".grib2")][:2] == ["bytes=0-15", "bytes=0-178"]


def test_range_ignored_or_file_cut_is_refused(server):
    root, base, _ = server
    path = publish(root, INIT, 1)
    rel = path.relative_to(root)
    second = len(grib2("2t", 281.0, INIT, 1))
    with pytest.raises(SourceError, match="ignores Range requests"):
        fs.read_ranges(f"{base}/norange/{rel}", [(second, None)], FAST)
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # the last message still being written
    with pytest.raises(SourceError, match="asked for bytes"):
        fs.read_ranges(f"{base}/ok/{rel}", [(2 * second, None)], FAST)
    path.write_bytes(data[: 2 * second])  # ... or not started
    with pytest.raises(SourceError, match="416"):
        fs.read_ranges(f"{base}/ok/{rel}", [(2 * second, None)], FAST)
    with pytest.raises(SourceError, match="not the start of a GRIB message"):
        fs.read_ranges(f"{base}/ok/{rel}", [(5, None)], FAST)


# 4. HTTP errors and truncated bodies ----------------------------------------------------


def test_http_errors_are_source_errors_after_retries(server):
    root, base, hits = server
    (root / "f.bin").write_bytes(b"0123456789" * 10)
    with pytest.raises(SourceError, match=r"s503/f\.bin: HTTP 503 .*after 3 attempts"):
        fs.read_bytes(f"{base}/s503/f.bin", FAST)
    assert len([h for h in hits if h[0] == "s503"]) == 3
    with pytest.raises(SourceError, match="cut short"):
        fs.read_bytes(f"{base}/short/f.bin", FAST)
    with pytest.raises(SourceError, match=r"not found .*403"):
        fs.read_bytes(f"{base}/s403/missing.bin", FAST)
    assert len([h for h in hits if h[0] == "s403"]) == 1  # "not there yet": no retry
    with pytest.raises(SourceError, match="503"):
        fs.read_ranges(f"{base}/s503/f.bin", [(0, 4)], {**FAST, "retries": 0})
    assert fs.read_bytes(f"{base}/flaky/f.bin", FAST) == b"0123456789" * 10
    assert fs.read_ranges(f"{base}/flaky/f.bin", [(2, 5)], FAST) == [b"234"]


def test_http_errors_count_as_missing_nwp(server):
    root, base, _ = server
    publish(root, INIT, 1)
    for mode, lead, why in (("s503", 1, "HTTP 503"), ("s403", 2, "403"), ("short", 1, "short")):
        src = Hrrr(base_url=f"{base}/{mode}", storage_options=FAST)
        cf = src.cycle(INIT, [lead], ["t2m"], LAT, LON, accumulation_hours=1)
        assert why in cf.missing[0] and cf.unavailable


# 5. Timeouts ------------------------------------------------------------------------------


def test_stalled_server_times_out(server, monkeypatch):
    _, base, _ = server
    monkeypatch.setattr(fs, "DEFAULT_TIMEOUT_S", 0.3)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"hang/x\.idx: no answer within 0\.3 s"):
        fs.read_bytes(f"{base}/hang/x.idx", {"retries": 0})
    assert time.monotonic() - started < 3
    cf = Hrrr(base_url=f"{base}/hang", storage_options={"timeout": 0.2, "retries": 0}).cycle(
        INIT, [1.0], ["t2m"], LAT, LON, accumulation_hours=1
    )
    assert "no answer within 0.2 s" in cf.missing[0]


def test_storage_options_checked_in_the_spec(tmp_path):
    spec = _spec(tmp_path, "http://127.0.0.1:9")
    spec["nwp"]["storage_options"] = {"timeout": -1}
    with pytest.raises(SourceError, match=r"nwp\.storage_options\.timeout: expected a number"):
        parse_spec(spec, source="b.yaml")
    spec["nwp"]["storage_options"] = {"timeout": 5, "retries": 1, "retry_wait": 0}
    assert parse_spec(spec).nwp["storage_options"]["timeout"] == 5


# 2. Reruns: cycles written incomplete, builds without any NWP ----------------------------


def _spec(tmp_path: Path, base: str, end: str = "2023-11-04") -> dict:
    obs = tmp_path / "obs.csv"
    obs.write_text("station,time,t2m\nS,2023-11-04T01:00Z,280\nS,2023-11-04T02:00Z,281\n")
    return {
        "nwp": {"source": "hrrr", "base_url": base, "storage_options": FAST},
        "truth": {"source": "table", "paths": [str(obs)]},
        "stations": [{"station": "S", "latitude": 40.0, "longitude": 2.0, "altitude": 0}],
        "variables": ["t2m"],
        "period": {"start": "2023-11-04", "end": end},
        "cycles": [0],
        "lead_times": [1, 2],
        "accumulation_hours": 1,
    }


def test_rerun_rebuilds_a_cycle_written_incomplete(server, tmp_path):
    root, base, _ = server
    out, spec = tmp_path / "out", parse_spec(_spec(tmp_path, f"{base}/ok"))
    publish(root, INIT, 1)  # lead 2 not published yet
    first = build(spec, out)
    key = "2023-11-04T00:00Z"
    assert first.written == [key] and "t2m at +2 h" in first.incomplete[key]
    part = partitions.partition(out, INIT)
    assert partitions.read_state(part).unavailable  # kept in the Parquet metadata
    assert "wrfsfcf02" in pq.read_schema(part).metadata[partitions.MISSING_KEY].decode()
    publish(root, INIT, 2)
    second = build(spec, out)
    assert second.rebuilt == [key] and second.written == [key] and not second.incomplete
    table = pd.read_parquet(out / "table.parquet")
    assert table["fc_t2m"].tolist() == pytest.approx([281.0, 282.0])
    third = build(spec, out)
    assert third.skipped == [key] and not third.written and not third.rebuilt


def test_rebuild_never_loses_values_and_summary_keeps_incomplete(server, tmp_path):
    root, base, _ = server
    out, spec = tmp_path / "out", parse_spec(_spec(tmp_path, f"{base}/ok"))
    path = publish(root, INIT, 1)
    build(spec, out)
    before = (out / "table.parquet").read_bytes()
    path.unlink()  # lead 1 gone from the server, lead 2 still missing
    again = build(spec, out)
    assert again.rebuilt == ["2023-11-04T00:00Z"] and not again.written
    assert "t2m at +2 h" in again.incomplete["2023-11-04T00:00Z"]
    assert any("earlier build is kept" in n for n in again.notes)
    assert (out / "table.parquet").read_bytes() == before
    summary = json.loads((out / "build-summary.json").read_text())
    assert summary["cycles_incomplete"] and summary["cycles_rebuilt"]


def test_permanently_incomplete_cycle_is_skipped_but_listed(server, tmp_path):
    root, base, _ = server
    publish(root, INIT, 1)
    publish(root, INIT, 2)
    spec = _spec(tmp_path, f"{base}/ok")
    spec["variables"] = ["t2m", "u10", "msl"]  # no msl in these files: not a fetch failure
    out = tmp_path / "out"
    build(parse_spec(spec), out)
    again = build(parse_spec(spec), out)
    assert again.skipped == ["2023-11-04T00:00Z"] and not again.rebuilt
    assert "msl at +1 h" in again.summary()["cycles_incomplete"]["2023-11-04T00:00Z"]


def test_build_without_any_nwp_fails(server, tmp_path, capsys):
    _, base, _ = server
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="no NWP data for any of the 1 cycle"):
        build(parse_spec(_spec(tmp_path, f"{base}/ok")), out)
    summary = json.loads((out / "build-summary.json").read_text())
    assert list(summary["cycles_missing_nwp"]) == ["2023-11-04T00:00Z"]
    (tmp_path / "b.json").write_text(json.dumps(_spec(tmp_path, f"{base}/ok")))
    assert main(["build", "--config", str(tmp_path / "b.json"), "--out", str(out)]) == 1
    assert "no NWP data" in capsys.readouterr().err


# 6. ECMWF streams; 7. GFS msl, period end ---------------------------------------------------


@pytest.mark.parametrize(
    ("when", "model", "stream", "expected"),
    [
        ("2026-05-11T06", "ifs", "auto", "scda"),
        ("2026-05-11T18", "ifs", "auto", "scda"),
        ("2026-05-12T06", "ifs", "auto", "oper"),
        ("2026-06-01T18", "ifs", "auto", "oper"),
        ("2025-01-01T12", "ifs", "auto", "oper"),
        ("2025-01-01T06", "aifs-single", "auto", "oper"),
        ("2025-01-01T06", "ifs", "oper", "oper"),
        ("2026-06-01T06", "ifs", "scda", "scda"),
        ("2026-06-01T00", "ifs", "scda", "oper"),
    ],
)
def test_ecmwf_stream_by_date(when, model, stream, expected):
    src = EcmwfOpenData(model=model, stream=stream)
    url = src.url(pd.Timestamp(when, tz="UTC"), 6)
    assert f"/0p25/{expected}/" in url and url.endswith(f"-6h-{expected}-fc.grib2")


def test_ecmwf_stream_in_the_spec(tmp_path):
    spec = _spec(tmp_path, "http://127.0.0.1:9")
    spec["nwp"] = {"source": "ecmwf-opendata", "stream": "scda"}
    assert parse_spec(spec).nwp["stream"] == "scda"
    spec["nwp"]["stream"] = "scwv"
    with pytest.raises(SourceError, match=r"nwp\.stream: 'scwv' unknown"):
        parse_spec(spec)


def test_gfs_msl_reads_prmsl_only(server):
    root, base, _ = server
    folder = root / "gfs.20231104" / "00" / "atmos"
    folder.mkdir(parents=True)
    idx = [
        "1:0:d=2023110400:PRMSL:mean sea level:21 hour fcst:",
        "2:100:d=2023110400:TMP:2 m above ground:21 hour fcst:",
        "3:200:d=2023110400:MSLET:mean sea level:21 hour fcst:",
        "4:300:d=2023110400:GUST:surface:21 hour fcst:",
    ]
    (folder / "gfs.t00z.pgrb2.0p25.f021.idx").write_text("\n".join(idx) + "\n")
    src = Gfs(base_url=f"{base}/ok")
    recs = src.records(src.url(INIT, 21), ["msl", "gust"], INIT)
    assert [r.variable for r in recs] == ["PRMSL", "GUST"]


def test_period_end_given_as_a_date_is_the_whole_day(tmp_path):
    spec = parse_spec(_spec(tmp_path, "http://127.0.0.1:9", end="2023-11-05"))
    inits = Hrrr().cycles(spec.start, spec.end, [0, 6, 12, 18])
    assert inits[-1] == pd.Timestamp("2023-11-05T18", tz="UTC") and len(inits) == 8
