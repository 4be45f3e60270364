"""Dask-parallel ``probcast data build``: the same files as a serial build, resumable."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probcast.sources import parallel
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import parse_spec
from probcast.sources.errors import SourceError
from probcast.testing import archives as synthetic

INITS = [pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(hours=12 * i) for i in range(6)]
LEADS = [0, 6, 12, 18]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    synthetic.write_archive(root / "nwp", INITS, LEADS, noise=1.0)
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-12-31T18", "2025-01-04T12", freq="30min", tz="UTC")
    rows = [
        (f"S{i}", t.isoformat(), 40.0 + 3 * i, 5.0 * i, 100.0, 270 + rng.normal(), 0.1 * i, 1.0)
        for i in range(5)
        for t in times
    ]
    cols = ["station", "time", "latitude", "longitude", "altitude", "t2m", "tp", "tp_hours"]
    pd.DataFrame(rows, columns=cols).to_csv(root / "obs.csv", index=False)
    spec = {
        "nwp": {"source": "archive", "paths": str(root / "nwp" / "*.grib")},
        "truth": {"source": "table", "paths": [str(root / "obs.csv")]},
        "variables": ["t2m", "ws10", "msl", "tp"],
        "period": {"start": "2025-01-01", "end": "2025-01-04"},  # 2025-01-04: no NWP
        "cycles": [0, 12],
        "lead_times": LEADS,
    }
    (root / "build.json").write_text(json.dumps(spec))
    build(parse_spec(spec), root / "serial")
    return root


def _files(out: Path) -> dict[str, pd.DataFrame]:
    names = [*sorted(glob.glob(str(out / "init_date=*" / "*.parquet"))), str(out / "table.parquet")]
    return {str(Path(n).relative_to(out)): pd.read_parquet(n) for n in names}


def _same(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert list(fa) == list(fb) and len(fa) == len(INITS) + 1
    for name in fa:
        pd.testing.assert_frame_equal(fa[name], fb[name], check_exact=True)
    sa = json.loads((a / "build-summary.json").read_text())
    sb = json.loads((b / "build-summary.json").read_text())
    sa.pop("out"), sb.pop("out")
    assert sa == sb


def test_workers_equal_serial_and_resume(root, capsys):
    out = root / "workers"
    args = ["build", "--config", str(root / "build.json"), "--out", str(out), "--workers", "2"]
    assert main(args) == 0
    _same(root / "serial", out)
    summary = json.loads((out / "build-summary.json").read_text())
    assert len(summary["cycles_written"]) == 6 and len(summary["cycles_missing_nwp"]) == 2
    assert summary["rows"] == 6 * 4 * 5
    # Resume: a lost partition is the only one computed again, by the workers.
    (out / "init_date=2025-01-02" / "cycle_1200.parquet").unlink()
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cycles_written"] == ["2025-01-02T12:00Z"]
    assert len(again["cycles_skipped_existing"]) == 5
    table = pd.read_parquet(out / "table.parquet")
    pd.testing.assert_frame_equal(table, pd.read_parquet(root / "serial" / "table.parquet"))


def test_distributed_cluster_equals_serial(root):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        spec = parse_spec(json.loads((root / "build.json").read_text()))
        build(spec, root / "cluster", scheduler=cluster.scheduler_address)
    _same(root / "serial", root / "cluster")


def test_bad_workers_and_scheduler(root, monkeypatch, capsys):
    args = ["build", "--config", str(root / "build.json"), "--out", str(root / "bad")]
    assert main([*args, "--workers", "0"]) == 2  # a usage error, found before any work
    assert "argument --workers: expected a whole number >= 1, got '0'" in capsys.readouterr().err
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1)
    spec = parse_spec(json.loads((root / "build.json").read_text()))
    with pytest.raises(SourceError, match=r"--scheduler tcp://127\.0\.0\.1:9: cannot connect"):
        build(spec, root / "bad", scheduler="tcp://127.0.0.1:9")
    assert not glob.glob(str(root / "bad" / "init_date=*"))
