from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from probcast.ingest.tables import read_table
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import parse_spec
from probcast.testing import archives as synthetic

T0 = pd.Timestamp("2025-01-01T00", tz="UTC")
T12 = pd.Timestamp("2025-01-01T12", tz="UTC")


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "nwp"
    synthetic.write_archive(folder, [T0, T12], [0, 6, 12])
    obs = tmp_path / "obs.csv"
    obs.write_text(
        "station,time,latitude,longitude,altitude,t2m,tp,tp_hours,u10\n"
        "A,2025-01-01T06:10,50.0,5.0,250,271.0,,,\n"
        "A,2025-01-01T12:00,50.0,5.0,250,272.0,2.5,6,\n"
        "A,2025-01-01T18:40,50.0,5.0,250,273.0,,,\n"
        "B,2025-01-01T06:00,0.0,0.0,10,280.0,,,\n"
    )
    return folder, obs


def _spec(folder, obs, **extra):
    spec = {
        "nwp": {"source": "archive", "paths": str(folder / "*.grib")},
        "truth": {"source": "table", "paths": [str(obs)]},
        "variables": ["t2m", "ws10", "wdir10", "tp"],
        "period": {"start": "2025-01-01", "end": "2025-01-01"},
        "cycles": [0, 12],
        "lead_times": [0, 6, 12],
        "accumulation_hours": 6,
    }
    spec.update(extra)
    return spec


def test_build_hand_values(archive, tmp_path):
    folder, obs = archive
    out = tmp_path / "out"
    result = build(parse_spec(_spec(folder, obs)), out)
    assert result.written == ["2025-01-01T00:00Z", "2025-01-01T12:00Z"]
    assert any("station B" in n and "0/0" in n for n in result.notes)  # null island skipped
    table = read_table(out / "table.parquet")
    assert set(table["station"]) == {"A"} and len(table) == 6
    row = table.set_index(["init_time", "lead_time"]).loc[(T0, 6.0)]
    assert row["fc_t2m"] == pytest.approx(270.6)
    assert row["fc_ws10"] == pytest.approx(5.0)
    assert row["fc_wdir10"] == pytest.approx(216.8699, abs=1e-3)
    assert row["fc_tp"] == pytest.approx(3.0)  # (6 - 0) h / 2
    assert row["obs_t2m"] == 271.0  # the 06:10 report, within 30 min
    assert row["stat_dz"] == pytest.approx(150.0, abs=1e-3)  # 250 m - 100 m
    at12 = table.set_index(["init_time", "lead_time"]).loc[(T0, 12.0)]
    assert at12["fc_tp"] == pytest.approx(3.0) and at12["obs_tp"] == 2.5
    assert np.isnan(table.set_index(["init_time", "lead_time"]).loc[(T0, 0.0), "fc_tp"])
    assert "tp at +0 h" in result.incomplete["2025-01-01T00:00Z"]
    assert (out / "init_date=2025-01-01" / "cycle_1200.parquet").exists()
    summary = json.loads((out / "build-summary.json").read_text())
    assert summary["rows"] == 6


def test_incremental_and_missing_cycles(archive, tmp_path):
    folder, obs = archive
    out = tmp_path / "out"
    spec = _spec(folder, obs, period={"start": "2025-01-01", "end": "2025-01-02T00"})
    first = build(parse_spec(spec), out)
    assert first.written == ["2025-01-01T00:00Z", "2025-01-01T12:00Z"]
    assert list(first.missing_nwp) == ["2025-01-02T00:00Z"]  # reported, not dropped
    synthetic.write_cycle(
        folder / "synth_2025010200.grib", pd.Timestamp("2025-01-02", tz="UTC"), [0, 6, 12]
    )
    second = build(parse_spec(spec), out)
    assert second.written == ["2025-01-02T00:00Z"]
    assert second.skipped == ["2025-01-01T00:00Z", "2025-01-01T12:00Z"]
    assert "2025-01-02T00:00Z" in second.missing_obs
    assert len(read_table(out / "table.parquet")) == 9


def test_archive_on_s3(archive, tmp_path, s3_server):
    s3fs = pytest.importorskip("s3fs")
    import boto3

    folder, obs = archive
    kw = s3_server["client_kwargs"]
    boto3.client(
        "s3", endpoint_url=kw["endpoint_url"], region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket="probcast-archive")  # fmt: skip
    s3 = s3fs.S3FileSystem(**s3_server)
    for p in folder.glob("*.grib"):
        s3.put(str(p), f"probcast-archive/ifs/{p.name}")
    spec = _spec(folder, obs)
    spec["nwp"] = {
        "source": "archive",
        "paths": "s3://probcast-archive/ifs/*.grib",
        "storage_options": s3_server,
    }
    result = build(parse_spec(spec), tmp_path / "s3out")
    assert len(result.written) == 2 and result.rows == 6


def test_real_samples_norway_hres(mirror, tmp_path):
    """ISD Norway 2016 + the HRES GRIB1 samples (the only overlap of the real samples)."""
    files = [str(mirror / "ecmwf-hres-grib1" / f"oper_{v}_sfc.grib") for v in ("10u", "10v", "msl")]
    spec = {
        "nwp": {"source": "archive", "paths": files},
        "truth": {"source": "isd", "paths": [str(mirror / "isd-samples" / "014160-99999-2016.gz")]},
        "variables": ["ws10", "msl"],
        "period": {"start": "2016-09-25", "end": "2016-09-25"},
        "lead_times": [0, 120],
    }
    result = build(parse_spec(spec), tmp_path / "out")
    assert result.written == ["2016-09-25T00:00Z"]
    table = pd.read_parquet(tmp_path / "out" / "init_date=2016-09-25" / "cycle_0000.parquet")
    assert table["fc_msl"].between(95000, 105000).all() and table["fc_ws10"].between(0, 40).all()
    # The station reports no sea-level pressure in 2016, and its wind only as type 'C' with
    # speed 9999 (missing, not a calm: its SYNOP wind group is '/////'): obs_msl and
    # obs_ws10 are all NaN, so table.parquet leaves them out and the cycle is reported.
    assert table["obs_ws10"].isna().all() and table["obs_msl"].isna().all()
    columns = pd.read_parquet(tmp_path / "out" / "table.parquet").columns
    assert "obs_msl" not in columns and "obs_ws10" not in columns
    assert result.missing_obs == ["2016-09-25T00:00Z"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"nwp": {"source": "gfs"}, "truth": {"source": "isd"}}))
    assert main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truth.paths" in err
    cfg.write_text("nwp: [unclosed\n")
    assert main(["build", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.yaml"), "--out", "x"]) == 1
    assert "no such config file" in capsys.readouterr().err


def test_cli_build(archive, tmp_path, capsys):
    folder, obs = archive
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(_spec(folder, obs, variables=["t2m", "snowfall"])))
    assert main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
    assert "unknown variable 'snowfall'" in capsys.readouterr().err
    cfg.write_text(json.dumps(_spec(folder, obs)))
    assert main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    assert "cycles written: 2" in capsys.readouterr().out
