"""ERA5 truth over HTTP: transient errors are retried like NWP reads (``retries``, back-off).

The loopback server of ``test_sources_fetch_audit`` serves a real ERA5 file (a copy of the
mirror's, in the test's folder): ``flaky/``: HTTP 503 twice, then the file; ``s503/``:
always 503.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml
from test_sources_fetch_audit import FAST, server  # noqa: F401 - the HTTP server fixture

from probcast.sources import era5
from probcast.sources.cli import main
from probcast.sources.errors import SourceError
from probcast.testing import archives as synthetic

NAME = "data_stream-oper_stepType-instant.nc"
STATION = pd.DataFrame(
    {"station": ["IDR"], "name": [""], "latitude": [22.6], "longitude": [75.8], "altitude": [0.0]}
)


def _publish(mirror, root) -> None:
    shutil.copyfile(mirror / "era5-cds-netcdf" / NAME, root / NAME)


def test_era5_transient_errors_are_retried(mirror, server):  # noqa: F811
    root, base, hits = server
    _publish(mirror, root)
    got = era5.read_era5([f"{base}/flaky/{NAME}"], STATION, dict(FAST))
    local = era5.read_era5([str(root / NAME)], STATION)
    pd.testing.assert_frame_equal(got.obs, local.obs)
    assert [h[:2] for h in hits].count(("flaky", NAME)) == 3  # 503, 503, the file


def test_era5_retries_zero_fails_at_once(mirror, server):  # noqa: F811
    root, base, hits = server
    _publish(mirror, root)
    url = f"{base}/flaky/{NAME}"
    with pytest.raises(SourceError, match=rf"^{url}: HTTP 503 Service Unavailable$"):
        era5.read_era5([url], STATION, {**FAST, "retries": 0})
    assert len(hits) == 1


def test_era5_always_failing_is_one_clear_error(mirror, server, tmp_path, capsys):  # noqa: F811
    root, base, hits = server
    _publish(mirror, root)
    url = f"{base}/s503/{NAME}"
    with pytest.raises(SourceError, match=rf"^{url}: HTTP 503 .*\(after 3 attempts\)$"):
        era5.read_era5([url], STATION, dict(FAST))
    assert len(hits) == 3
    t0 = pd.Timestamp("2025-01-01T00", tz="UTC")
    synthetic.write_archive(tmp_path / "nwp", [t0], [0, 6])
    spec = {
        "nwp": {"source": "archive", "paths": str(tmp_path / "nwp" / "*.grib")},
        "truth": {"source": "era5", "paths": [url], "storage_options": dict(FAST)},
        "stations": [{"station": "A", "latitude": 22.6, "longitude": 75.8, "altitude": 0.0}],
        "variables": ["t2m"],
        "period": {"start": "2025-01-01", "end": "2025-01-01"},
        "lead_times": [0, 6],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    rc = main(["build", "--config", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"probcast data build: error: {url}: HTTP 503")
    assert "(after 3 attempts)" in err and len(err.strip().splitlines()) == 1
