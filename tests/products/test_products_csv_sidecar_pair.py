"""A CSV prediction table and its sidecar are read only as the pair they were written as.

The sidecar records the CSV's size and sha256; a sidecar beside another CSV (a write killed
between the two renames, two writes at once, files copied by hand) is refused with an error
naming both files, not read (a degF sidecar beside a degC table scored as degF).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probcast import io
from probcast.cli import main
from probcast.products.table_files import read_predictions, read_sidecar, write_predictions
from probcast.products.table_sidecar import CHECKSUM_KEY, SidecarMismatch
from probcast.products.units import read_units, table_to_units
from probcast.testing.interrupt import Killed, kill_at_rename
from probcast.testing.verification import normal_params_table, truth_table

FAMILIES = {"t2m": "normal"}


def _truth_and_forecast() -> tuple[pd.DataFrame, pd.DataFrame]:
    truth, mu, sigma = truth_table(n_stations=3, n_inits=4)
    return truth, normal_params_table(truth, mu, sigma)


def _write_in(fc: pd.DataFrame, path: Path, units: str) -> None:
    """Write ``fc`` (canonical) as ``probcast predict --units`` writes it: in ``units``."""
    user, meta = table_to_units(fc, {"t2m": units}, FAMILIES)
    write_predictions(user, path, families=FAMILIES, metadata=meta)


def test_sidecar_records_the_checksum_of_its_csv(tmp_path: Path) -> None:
    _, fc = _truth_and_forecast()
    path = tmp_path / "p.csv"
    _write_in(fc, path, "degC")
    recorded = read_sidecar(path)[CHECKSUM_KEY]
    assert recorded == {"bytes": path.stat().st_size, "sha256": io.sha256_file(path)}
    plain = tmp_path / "plain.csv"  # hashed while written: the bytes are pandas' own
    user, _ = table_to_units(fc, {"t2m": "degC"}, FAMILIES)
    user.to_csv(plain, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    assert plain.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.csv.json", "plain.csv"]


def test_new_sidecar_beside_the_old_csv_is_refused(tmp_path: Path, monkeypatch) -> None:
    _, fc = _truth_and_forecast()
    path = tmp_path / "p.csv"
    _write_in(fc, path, "degC")
    old_csv = path.read_bytes()
    kill_at_rename(monkeypatch, path)  # the CSV's rename, after its sidecar's
    with pytest.raises(Killed):
        _write_in(fc.iloc[:5], path, "degF")
    monkeypatch.undo()
    assert path.read_bytes() == old_csv  # the old degC table beside the new degF sidecar
    assert "degF" in (tmp_path / "p.csv.json").read_text()
    for reader in (read_predictions, read_units):
        with pytest.raises(SidecarMismatch) as info:
            reader(path)
        message = str(info.value)
        assert f"{path}.json" in message and str(path) in message
        assert "rerun the prediction" in message


def test_verify_refuses_a_mixed_pair(tmp_path: Path, monkeypatch, capsys) -> None:
    """The repro: exit 1 naming both files, not exit 0 with the CRPS of degC read as degF."""
    truth, fc = _truth_and_forecast()
    truth.to_csv(tmp_path / "truth.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "p.csv"
    _write_in(fc, path, "degC")
    argv = ["verify", f"--truth={tmp_path / 'truth.csv'}", f"--forecast=a={path}"]
    assert main([*argv, f"--out={tmp_path / 'v1'}"]) == 0
    capsys.readouterr()
    kill_at_rename(monkeypatch, path)  # the CSV's rename, after its sidecar's
    with pytest.raises(Killed):
        _write_in(fc, path, "degF")
    monkeypatch.undo()
    assert main([*argv, f"--out={tmp_path / 'v2'}"]) == 1
    err = capsys.readouterr().err
    assert f"{path}.json" in err and "rerun the prediction" in err and err.count("\n") == 1
    assert not (tmp_path / "v2").exists()


def test_pair_put_together_by_hand_is_refused(tmp_path: Path) -> None:
    _, fc = _truth_and_forecast()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_in(fc, a, "degF")
    _write_in(fc.iloc[:6], b, "degC")
    shutil.copy(tmp_path / "a.csv.json", tmp_path / "b.csv.json")  # a's sidecar beside b
    with pytest.raises(SidecarMismatch, match=r"b\.csv\.json: this sidecar belongs to another"):
        read_predictions(b)
    # Same size, other bytes: the sha256 tells them apart.
    data = bytearray(a.read_bytes())
    data[-2:-1] = b"7" if data[-2:-1] != b"7" else b"8"
    shutil.copy(tmp_path / "a.csv.json", tmp_path / "c.csv.json")
    (tmp_path / "c.csv").write_bytes(bytes(data))
    with pytest.raises(SidecarMismatch, match="another sha256"):
        read_predictions(tmp_path / "c.csv")


def test_sidecar_without_a_checksum_is_read_as_before(tmp_path: Path) -> None:
    """Sidecars of earlier versions (and written by hand) have no checksum: read unchecked."""
    _, fc = _truth_and_forecast()
    path = tmp_path / "p.csv"
    _write_in(fc, path, "degC")
    sidecar = tmp_path / "p.csv.json"
    meta = json.loads(sidecar.read_text())
    del meta[CHECKSUM_KEY]
    sidecar.write_text(json.dumps(meta))
    table, families = read_predictions(path)
    assert families == FAMILIES
    got = table.sort_values(["station", "init_time", "lead_time"], ignore_index=True)
    want = fc.sort_values(["station", "init_time", "lead_time"], ignore_index=True)
    np.testing.assert_allclose(got["t2m_loc"], want["t2m_loc"], rtol=1e-9)  # back in K


def test_malformed_checksum_entry_is_an_error(tmp_path: Path) -> None:
    _, fc = _truth_and_forecast()
    path = tmp_path / "p.csv"
    _write_in(fc, path, "degC")
    sidecar = tmp_path / "p.csv.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), CHECKSUM_KEY: "x"}))
    with pytest.raises(ValueError, match=r"p\.csv\.json: table_checksum must be"):
        read_predictions(path)
