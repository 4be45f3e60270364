"""``probcast COMMAND --help``: teaches (fields, defaults, meaning) and starts fast."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from probcast.cli import main
from probcast.configs import default, tiny
from probcast.train import cli as train_cli

HELP_COMMANDS = [
    ["data"], ["data", "list"], ["data", "fetch"], ["data", "prepare"], ["data", "check"],
    ["data", "split"], ["data", "build"], ["train"], ["predict"], ["verify"], ["demo"], [],
]  # fmt: skip
HEAVY = {"jax", "flax", "xarray", "mlflow", "matplotlib", "optax", "orbax", "dask", "netCDF4"}
MAX_HELP_S = 2.0
_PROBE = (
    "import contextlib, io, sys\n"
    "from probcast.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
    "    rc = main({argv!r})\n"
    "names = {{m.split('.')[0] for m in sys.modules}}\n"
    "print(rc, int('usage' in out.getvalue().lower()), ' '.join(sorted(names)))\n"
)


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "probcast")
def test_help_imports_nothing_heavy(command: list[str]) -> None:
    probe = _PROBE.format(argv=[*command, "--help"])
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    rc, n_chars, modules = res.stdout.split(" ", 2)
    assert rc == "0" and n_chars == "1", "no usage printed"
    assert not HEAVY & set(modules.split()), (
        f"heavy imports on the help path: {HEAVY & set(modules.split())}"
    )


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "probcast")
def test_help_starts_in_under_two_seconds(command: list[str]) -> None:
    exe = [sys.executable, "-m", "probcast.cli", *command, "--help"]
    best = float("inf")
    for _ in range(3):  # the best of three: a loaded machine slows single runs
        start = time.perf_counter()
        res = subprocess.run(exe, capture_output=True, text=True, timeout=60, check=False)
        best = min(best, time.perf_counter() - start)
        assert res.returncode == 0 and "usage" in res.stdout.lower(), res.stderr
        if best < MAX_HELP_S:
            break
    assert best < MAX_HELP_S, f"probcast {' '.join(command)} --help took {best:.2f} s"


def _flat(config) -> dict:
    return train_cli._flat(config)


def test_train_help_lists_every_field_with_default_and_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: probcast train")
    docs = train_cli.field_docs()
    fields = _flat(default.get_config())
    assert set(docs) == set(fields), "a config field is missing from configs/default.py"
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for key, value in fields.items():
        assert docs[key], f"config field {key} has no comment in configs/default.py"
        shown = repr(value) if isinstance(value, str) else str(value)
        assert key in rows and shown in rows[key] and docs[key].split()[0] in rows[key], key


def test_train_help_shows_the_chosen_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config=tiny", "--help"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("model.hidden "))
    assert str(tiny.get_config().model.hidden) in row.split()[1]
    assert "values of 'tiny'" in out


def test_field_docs_parse_trailing_and_leading_comments(tmp_path) -> None:
    path = tmp_path / "cfg.py"
    path.write_text(
        "def get_config():\n"
        "    config = ml_collections.ConfigDict()\n"
        "    config.a = a = ml_collections.ConfigDict()\n"
        "    a.x = 1  # the x\n"
        "    # the y, on\n"
        "    # two lines\n"
        "    a.y = 2\n"
        "    a.z = 3\n"
    )
    assert train_cli.field_docs(path) == {"a.x": "the x", "a.y": "the y, on two lines", "a.z": ""}


def test_mistyped_override_names_the_field(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--config=tiny", f"--workdir={tmp_path}", "--config.model.hiden=8"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown config field 'model.hiden'" in err and "model.hidden" in err
    assert '"' not in err and "\\" not in err


def test_predict_and_verify_help_are_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: probcast predict")
    for option in ("--model", "--input", "--output", "--members", "--quantiles", "--thresholds"):
        assert f"  {option} " in out
    assert "(default: 65536)" in out and "``" not in out
    assert main(["verify", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: probcast verify") and "--forecast [NAME=]FILE" in out
