"""A pipeline file's ``monitor:`` block is checked when the file is read.

It was parsed only by ``probcast monitor``: a typo (``psi: abc``, ``windw_days``) passed
``probcast run --status`` and every cycle, and failed the monitor CronJob later.
"""

from __future__ import annotations

import subprocess

import pytest
from opshelp import PYTHON, write_pipeline

from probcast.cli import main
from probcast.monitor.config import load_config
from probcast.ops import pipeline as pl


@pytest.mark.parametrize(
    ("block", "parts"),
    [
        ({"drift": {"psi": "abc"}}, ["monitor.drift.psi", "expected a number", "'abc'"]),
        ({"drift": {"psi": 0}}, ["monitor.drift.psi", "number > 0", "got 0"]),
        ({"skill": {"windw_days": 7}}, ["monitor.skill", "'windw_days'", "window_days"]),
        ({"drfit": {"psi": 0.3}}, ["monitor:", "'drfit'", "drift, skill"]),
        ({"skill": {"min_cases": 0}}, ["monitor.skill.min_cases", "integer >= 1", "got 0"]),
        ({"skill": {"lead_groups": [48, 24]}}, ["monitor.skill.lead_groups", "ascending"]),
        ({"skill": {"crpss_floor": {"rw": 0}}}, ["crpss_floor", "'raw', 'emos'", "'rw'"]),
        ({"drift": {"features": "fc_t2m"}}, ["monitor.drift.features", "list", "'fc_t2m'"]),
        ({"drift": [1]}, ["monitor.drift", "expected a mapping", "[1]"]),
        (["psi"], ["monitor:", "expected a mapping", "drift, skill", "['psi']"]),
    ],
)
def test_a_bad_monitor_block_is_refused_at_load(tmp_path, block, parts):
    path = write_pipeline(tmp_path, tmp_path / "model", monitor=block)
    with pytest.raises(pl.PipelineError) as err:
        pl.load(path)
    message = str(err.value)
    assert message.startswith("ops.yaml: ") and "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


def test_the_cli_exits_2_before_running(tmp_path, capsys):
    path = write_pipeline(tmp_path, tmp_path / "model", monitor={"drift": {"ks": "high"}})
    assert main(["run", "--pipeline", str(path), "--status", "--cycle", "2026-11-29T00Z"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ops.yaml: monitor.drift.ks: expected a number, got 'high'" in last, last


def test_a_good_block_loads_and_the_monitor_reads_the_same(tmp_path):
    block = {"drift": {"psi": 0.3, "features": ["fc_t2m"]}, "skill": {"window_days": 7}}
    path = write_pipeline(tmp_path, tmp_path / "model", monitor=block)
    pl.load(path)  # no error
    config = load_config(path)
    assert (config.drift.psi, config.drift.features, config.skill.window_days) == (
        0.3,
        ("fc_t2m",),
        7.0,
    )
    pl.load(write_pipeline(tmp_path, tmp_path / "model", monitor=None))  # `monitor:` empty
    with pytest.raises(pl.PipelineError, match=r"ops\.yaml: monitor\.skill\.window_days: expected"):
        pl.load(
            write_pipeline(tmp_path, tmp_path / "model", monitor={"skill": {"window_days": -7}})
        )


def test_the_parser_imports_no_heavy_module():
    # monitor.config's parser sits below ops (probcast.configs._monitor): yaml, stdlib only
    code = (
        "import sys; from probcast.ops import pipeline, pipeline_check; "
        "from probcast.configs import _monitor; "
        "heavy = ('jax', 'pandas', 'numpy', 'pyarrow', 'scipy'); "
        "print([m for m in sys.modules if m.split('.')[0] in heavy "
        "or m.startswith('probcast.monitor')])"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
