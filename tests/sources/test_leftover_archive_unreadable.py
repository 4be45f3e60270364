"""A GRIB file of an archive that cannot be read is missing NWP for its cycle, not a stop.

Real samples (the mirror's HRES GRIB1 files, two messages each: +0 h and +120 h of
2016-09-25 00 UTC), copied into the test's folder; ``oper_msl_sfc.grib`` is cut short.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from probcast.sources import partitions
from probcast.sources.archive import Archive
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import parse_spec

INIT = pd.Timestamp("2016-09-25", tz="UTC")
KEY = "2016-09-25T00:00Z"
SECOND = 240  # byte offset of the +120 h message of oper_msl_sfc.grib (234 bytes long)


@pytest.fixture
def nwp(mirror, tmp_path):
    folder = tmp_path / "nwp"
    folder.mkdir()
    for v in ("10u", "10v", "msl"):
        shutil.copyfile(mirror / "ecmwf-hres-grib1" / f"oper_{v}_sfc.grib", folder / f"{v}.grib")
    return folder


def _cut(path, size):
    data = path.read_bytes()
    path.write_bytes(data[:size])
    return data


def _spec(mirror, folder, **nwp):
    return {
        "nwp": {"source": "archive", "paths": str(folder / "*.grib"), **nwp},
        "truth": {"source": "isd", "paths": [str(mirror / "isd-samples" / "014160-99999-2016.gz")]},
        "variables": ["ws10", "msl"],
        "period": {"start": "2016-09-25", "end": "2016-09-25"},
        "lead_times": [0, 120],
    }


def test_truncated_file_is_missing_nwp_and_a_rerun_reads_it(mirror, nwp, tmp_path):
    whole = _cut(nwp / "msl.grib", SECOND + 60)  # the +120 h message is cut short
    out = tmp_path / "out"
    result = build(parse_spec(_spec(mirror, nwp)), out)
    assert result.written == [KEY]
    notes = result.incomplete[KEY]
    assert any(
        n.startswith(f"{nwp / 'msl.grib'}: not a readable GRIB file (") and "missing NWP" in n
        for n in notes
    ), notes
    assert "msl at +120 h" in notes
    summary = json.loads((out / "build-summary.json").read_text())
    assert summary["cycles_incomplete"][KEY] == notes
    path = partitions.partition(out, INIT)
    table = pd.read_parquet(path).set_index("lead_time")
    assert table.loc[[0.0], "fc_msl"].notna().all() and table.loc[[120.0], "fc_msl"].isna().all()
    assert table["fc_ws10"].notna().all()
    assert partitions.read_state(path).unavailable  # so a rerun rebuilds it

    (nwp / "msl.grib").write_bytes(whole)  # the file is complete now
    again = build(parse_spec(_spec(mirror, nwp)), out)
    assert again.rebuilt == [KEY] and again.written == [KEY] and KEY not in again.incomplete
    table = pd.read_parquet(path).set_index("lead_time")
    assert table["fc_msl"].notna().all()


def test_file_cut_in_its_first_message_is_noted_in_every_cycle(mirror, nwp, tmp_path):
    _cut(nwp / "msl.grib", 100)
    result = build(parse_spec(_spec(mirror, nwp)), tmp_path / "out")
    assert result.written == [KEY]
    notes = result.incomplete[KEY]
    assert any("msl.grib: not a readable GRIB file" in n and "cycle is unknown" in n for n in notes)
    assert "msl at +0 h" in notes and "msl at +120 h" in notes


def test_only_unreadable_files_is_one_clear_error(mirror, nwp, tmp_path, capsys):
    for name in ("10u", "10v"):
        (nwp / f"{name}.grib").unlink()
    _cut(nwp / "msl.grib", 100)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_spec(mirror, nwp)))
    assert main(["build", "--config", str(spec), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("probcast data build: error: no readable GRIB message in the archive;")
    assert f"{nwp / 'msl.grib'}: not a readable GRIB file" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["cut", "corrupt"])
def test_message_unreadable_when_the_cycle_is_read(nwp, damage):
    archive = Archive([str(nwp / "*.grib")])
    archive.inventory()  # the files were whole then
    path = nwp / "msl.grib"
    data = bytearray(path.read_bytes())
    if damage == "cut":
        path.write_bytes(bytes(data[: SECOND + 60]))
    else:  # the +120 h message's sections 2-4 overwritten
        data[SECOND + 60 : SECOND + 230] = b"\xff" * 170
        path.write_bytes(bytes(data))
    cf = archive.cycle(
        INIT, [0, 120], ["msl", "u10", "v10"], np.array([60.0]), np.array([10.0]),
        accumulation_hours=6,
    )  # fmt: skip
    assert cf.missing == cf.unavailable and len(cf.missing) == 1
    assert cf.missing[0].startswith(f"{path}: ") and cf.missing[0].endswith("; msl: missing NWP")
    assert sorted(cf.instant["msl"]) == [0.0] and sorted(cf.instant["u10"]) == [0.0, 120.0]
