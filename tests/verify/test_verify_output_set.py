"""``probcast verify --out DIR`` writes scores.csv, scores.json and report.html as one set.

A run killed (or failing: a full disk) between its files, or two runs into one folder at
once, never leave the scores of one run beside the report of another.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from probcast import io
from probcast.cli import main
from probcast.products.table_files import write_predictions
from probcast.testing.interrupt import Killed, kill_at_rename
from probcast.testing.verification import normal_params_table, truth_table
from probcast.verify import aggregate

SET = ["report.html", "scores.csv", "scores.json"]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    truth, mu, sigma = truth_table(n_stations=3, n_inits=4)
    truth.to_parquet(tmp_path / "truth.parquet")
    fc = normal_params_table(truth, mu, sigma)
    write_predictions(fc, tmp_path / "a.parquet", families={"t2m": "normal"})
    wide = fc.assign(t2m_scale=fc["t2m_scale"] * 3)
    write_predictions(wide, tmp_path / "b.parquet", families={"t2m": "normal"})
    return {"truth": tmp_path / "truth.parquet", "a": tmp_path / "a.parquet",
            "b": tmp_path / "b.parquet", "out": tmp_path / "v"}  # fmt: skip


def _verify(inputs: dict[str, Path], forecast: str, title: str) -> int:
    return main([
        "verify", f"--truth={inputs['truth']}", f"--forecast={forecast}={inputs[forecast]}",
        f"--out={inputs['out']}", f"--title={title}",
    ])  # fmt: skip


def _runs(out: Path) -> set[str]:
    """The run (forecast name) each present file of the set comes from."""
    found = set()
    if (out / "scores.csv").exists():
        found |= set(pd.read_csv(out / "scores.csv")["method"])
    if (out / "scores.json").exists():
        found |= set(json.loads((out / "scores.json").read_text())["meta"]["forecasts"])
    if (out / "report.html").exists():
        html = (out / "report.html").read_text()
        found |= {t.removeprefix("title-") for t in ("title-a", "title-b") if t in html}
    return found


def _names(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize("killed_at", ["scores.json", "report.html"])
def test_verify_killed_between_its_files_leaves_no_mixed_set(
    inputs: dict[str, Path], monkeypatch, capsys, killed_at: str
) -> None:
    out = inputs["out"]
    assert _verify(inputs, "a", "title-a") == 0
    assert _names(out) == SET and _runs(out) == {"a"}
    kill_at_rename(monkeypatch, out / killed_at)
    with pytest.raises(Killed):
        _verify(inputs, "b", "title-b")
    monkeypatch.undo()
    assert _runs(out) == {"b"}  # part of the new set, nothing of the previous run
    moved = {"scores.json": ["scores.csv"], "report.html": ["scores.csv", "scores.json"]}
    assert _names(out) == moved[killed_at]  # renamed in this order, report.html last
    assert _verify(inputs, "b", "title-b") == 0  # a rerun completes it
    assert _names(out) == SET and _runs(out) == {"b"}


def test_verify_failing_at_the_report_keeps_the_previous_set(
    inputs: dict[str, Path], monkeypatch, capsys
) -> None:
    out = inputs["out"]
    assert _verify(inputs, "a", "title-a") == 0
    before = {n: (out / n).read_bytes() for n in SET}
    capsys.readouterr()
    real = io.write_text

    def full_disk(path, text):  # type: ignore[no-untyped-def]
        if Path(path).name == "report.html":
            raise io.WriteError(errno.ENOSPC, "no space left on the device", str(path))
        return real(path, text)

    monkeypatch.setattr(io, "write_text", full_disk)
    assert _verify(inputs, "b", "title-b") == 1
    err = capsys.readouterr().err
    assert f"{out / 'report.html'}: cannot write: no space left on the device" in err
    assert err.count("\n") == 1
    assert {n: (out / n).read_bytes() for n in _names(out)} == before  # no temporaries


def test_write_scores_without_a_report_removes_the_previous_report_and_maps(
    tmp_path: Path,
) -> None:
    """The gridded path and the demo write their report after the scores: the old one goes."""
    for name in ("report.html", "maps.nc", "scores.csv", "keep.txt"):
        (tmp_path / name).write_text("old")
    table = pd.DataFrame({"method": ["x"], "value": [1.0]})
    paths = aggregate.write_scores(table, tmp_path, meta={}, extra={})
    assert paths == {"csv": tmp_path / "scores.csv", "json": tmp_path / "scores.json"}
    assert _names(tmp_path) == ["keep.txt", "scores.csv", "scores.json"]
    paths = aggregate.write_scores(table, tmp_path, meta={}, extra={}, report="<html></html>")
    assert paths["report"] == tmp_path / "report.html"
    assert (tmp_path / "report.html").read_text() == "<html></html>"


def test_two_runs_into_one_folder_do_not_interleave(tmp_path: Path, monkeypatch) -> None:
    """Run a pauses while moving its files in; run b, started then, waits for it."""
    paused, go = threading.Event(), threading.Event()
    real = os.replace

    def replace(src, dst):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "a" and Path(dst) == tmp_path / "scores.json":
            paused.set()
            go.wait(10)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)

    def run(name: str) -> None:
        table = pd.DataFrame({"method": [name], "value": [1.0]})
        meta = {"forecasts": {name: name}}
        aggregate.write_scores(table, tmp_path, meta=meta, extra={}, report=f"title-{name}")

    a = threading.Thread(target=run, args=("a",), name="a")
    b = threading.Thread(target=run, args=("b",), name="b")
    a.start()
    assert paused.wait(10)
    b.start()
    time.sleep(0.5)  # b has staged its files and waits for the folder
    go.set()
    a.join(10)
    b.join(10)
    assert _names(tmp_path) == SET and _runs(tmp_path) == {"b"}
