"""The README's "Verify gridded forecasts" commands, extracted from README.md and run.

The fenced ``bash`` block after the marker ``<!-- readme-test: verify-gridded -->`` is
parsed into commands (``\\`` continuations joined). The fast tests check that the commands
chain (each reads what an earlier one writes) and run the README's verify command, exactly
as written, through the console script's entry point on synthetic files at the paths the
earlier commands would write; the slow one runs every command, in a subprocess each, on the
real gfsnam-precip-grid data.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from probcast.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-test: verify-gridded -->"
BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 900


def readme_commands(text: str | None = None) -> list[list[str]]:
    """The commands of the README block after :data:`MARKER`, as argument lists."""
    text = (ROOT / "README.md").read_text() if text is None else text
    assert MARKER in text, f"README.md lost the marker {MARKER}"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert block is not None, "no ```bash block after the marker"
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def _option(argv: list[str], name: str) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if arg == name:
            out.append(argv[i + 1])
        elif arg.startswith(name + "="):
            out.append(arg.split("=", 1)[1])
    return out


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert argv[0] == "probcast"
    exe = BIN / "probcast"
    return subprocess.run(
        [str(exe), *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def test_commands_chain_into_each_other() -> None:
    """prepare -> train -> predict -> verify: each reads what an earlier one writes."""
    from probcast.predict.grid_output import product_paths

    cmds = readme_commands()
    assert [c[:2] for c in cmds] == [
        ["probcast", "data"],
        ["probcast", "train"],
        ["probcast", "predict"],
        ["probcast", "verify"],
    ]
    assert all(c[1] in COMMANDS for c in cmds)
    prepared = Path(_option(cmds[0], "--out")[0])
    train, predict, verify = cmds[1], cmds[2], cmds[3]
    assert Path(_option(train, "--config.data.path")[0]) == prepared / "train.nc"
    assert _option(predict, "--model") == _option(train, "--workdir")
    assert Path(_option(predict, "--input")[0]) == prepared / "test.nc"
    written = product_paths(_option(predict, "--output")[0], ["parameters", "probabilities_tp"])
    assert [Path(p) for p in _option(verify, "--forecast")] == list(written.values())
    assert {Path(p) for p in _option(verify, "--truth") + _option(verify, "--raw")} == {
        prepared / "test.nc"
    }


def test_readme_verify_command_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The verify command, unchanged, on small synthetic files at the README's paths."""
    import xarray as xr

    from probcast.ingest.gridded import write_dataset
    from probcast.products import build_products, write_products
    from probcast.testing.grids import forecast_grid

    verify = readme_commands()[-1]
    ds = forecast_grid((8, 10), 4, layout="point")
    truth = Path(_option(verify, "--truth")[0])
    (tmp_path / truth.parent).mkdir(parents=True)
    write_dataset(ds, tmp_path / truth)
    params = xr.Dataset({"tp_loc": ds["fc_tp"], "tp_scale": 0.5 + 0.1 * ds["fc_tp"]})
    products = build_products(
        params,
        families={"tp": "censored_logistic"},
        products=["parameters", "probabilities"],
        thresholds={"tp": [0.1, 1, 5]},
    )
    for path in _option(verify, "--forecast"):
        name = "parameters" if "parameters" in path else "probabilities_tp"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        write_products(products[name], tmp_path / path, min_keepbits=7)
    monkeypatch.chdir(tmp_path)  # in this process: the console script's entry point
    assert main(verify[1:]) == 0, capsys.readouterr().err[-3000:]
    assert "gfsnam tp: distribution (censored_logistic" in capsys.readouterr().out
    out = tmp_path / _option(verify, "--out")[0]
    assert sorted(p.name for p in out.iterdir()) == [
        "maps.nc",
        "report.html",
        "scores.csv",
        "scores.json",
    ]


@pytest.mark.slow
@pytest.mark.realdata
def test_readme_commands_run_on_real_data(mirror: Path, tmp_path: Path) -> None:
    """Every command of the block, as written, on gfsnam-precip-grid (a few minutes)."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PROBCAST_DATA_MIRROR": str(mirror),
        "PROBCAST_CACHE": str(tmp_path / "cache"),
        "PROBCAST_QUIET": "1",
    }
    for argv in readme_commands():
        res = _run(argv, tmp_path, env)
        assert res.returncode == 0, f"{shlex.join(argv)}\n{res.stderr[-3000:]}"
    verify = readme_commands()[-1]
    out = tmp_path / _option(verify, "--out")[0]
    doc = json.loads((out / "scores.json").read_text())
    value = {
        (r["method"], r["metric"]): r["value"]
        for r in doc["scores"]
        if r["by"] == "all" and r["variable"] == "tp"
    }
    assert value[("raw", "n")] > 280_000  # 121 test days x 2352 points, a few without analysis
    assert 0.25 < value[("raw", "crps")] < 0.4  # the raw MAE of the test period (0.309 mm)
    assert value[("gfsnam", "crps")] < value[("raw", "crps")]
    assert value[("gfsnam", "crpss_lo")] > 0.1
    assert doc["meta"]["forms"]["gfsnam"]["tp"]["kind"] == "params"
