"""A ``{cycle}`` without a date format in a pipeline template is refused at load.

It named the input files after ``str(datetime)`` (``inputs/2021-01-21 00:00:00+00:00.parquet``):
no feed writes such names, so every cycle waited for an input that never came.
"""

from __future__ import annotations

import pytest
from opshelp import write_pipeline

from probcast.cli import main
from probcast.ops import pipeline as pl


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"input": "inputs/{cycle}.parquet"}, "input"),
        ({"input": "inputs/{cycle:}.parquet"}, "input"),
        ({"input": "inputs/{cycle}/f{lead:03d}.parquet", "leads": [0, 6]}, "input"),
        ({"products": {"output": "pred_{cycle}.parquet"}}, "products.output"),
        ({"layout": "{cycle}/{name}"}, "layout"),
    ],
)
def test_a_cycle_without_format_is_refused_naming_file_and_key(tmp_path, change, key):
    path = write_pipeline(tmp_path, tmp_path / "model", **change)
    with pytest.raises(pl.PipelineError) as err:
        pl.load(path)
    message = str(err.value)
    assert message.startswith(f"ops.yaml: {key}: ") and "\n" not in message
    assert "has no date format" in message and "{cycle:%Y%m%d%H}" in message


def test_the_cli_exits_2_with_one_line(tmp_path, capsys):
    path = write_pipeline(tmp_path, tmp_path / "model", input="inputs/{cycle}.parquet")
    assert main(["run", "--pipeline", str(path), "--cycle", "2021-01-21T00Z"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ops.yaml: input: 'inputs/{cycle}.parquet'" in last and "Traceback" not in last


def test_formats_and_escaped_braces_still_load(tmp_path):
    pipe = pl.load(
        write_pipeline(tmp_path, tmp_path / "model", layout="{{cycle}}{cycle:%Y}/{name}")
    )
    assert pipe.input_path(pl.parse_cycle("2021-01-21T00Z")).name == "2021012100.parquet"
