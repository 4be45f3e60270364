"""No traceback anywhere: every subcommand, fed bad arguments and bad inputs, in a subprocess.

Each case must exit non-zero with one paragraph on stderr (no blank line, nothing that
looks like a traceback or an "unexpected error"), naming what went wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probcast.cli import error_message, main
from probcast.testing.stations import station_table

# (id, argv with {tmp} placeholders, expected exit code, a word the message must contain)
CASES: list[tuple[str, list[str], int, str]] = [
    ("no-command", ["bogus"], 2, "unknown command"),
    ("data-none", ["data"], 2, "required"),
    ("data-bogus", ["data", "bogus"], 2, "invalid choice"),
    ("data-list-extra", ["data", "list", "extra"], 2, "unrecognized"),
    ("fetch-unknown", ["data", "fetch", "no-such-set"], 1, "unknown dataset"),
    ("fetch-nothing", ["data", "fetch"], 2, "--all"),
    ("prepare-unknown", ["data", "prepare", "no-such-set"], 1, "unknown dataset"),
    ("prepare-sample", ["data", "prepare", "grib-samples"], 1, "format sample"),
    ("prepare-none", ["data", "prepare"], 2, "required"),
    ("check-missing", ["data", "check", "{tmp}/missing.csv"], 1, "no such file"),
    ("check-dir", ["data", "check", "{tmp}/folder"], 1, "directory"),
    ("check-format", ["data", "check", "{tmp}/bad.txt"], 1, "unknown format"),
    ("check-truncated", ["data", "check", "{tmp}/trunc.parquet"], 1, "trunc.parquet"),
    ("check-columns", ["data", "check", "{tmp}/nocols.csv"], 1, "missing key column"),
    ("check-grid-garbage", ["data", "check", "{tmp}/bad.nc"], 1, "bad.nc"),
    ("split-missing", ["data", "split", "{tmp}/missing.csv", "--test-from", "2021-01-05",
                       "--out", "{tmp}/o"], 1, "no such file"),
    ("split-dir", ["data", "split", "{tmp}/folder", "--test-from", "2021-01-05", "--out",
                   "{tmp}/o"], 1, "directory"),
    ("split-date", ["data", "split", "{tmp}/good.csv", "--test-from", "someday", "--out",
                    "{tmp}/o"], 2, "ISO date"),
    ("split-no-date", ["data", "split", "{tmp}/good.csv"], 2, "--test-from"),
    ("build-none", ["data", "build"], 2, "required"),
    ("build-missing", ["data", "build", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/o"],
     1, "missing.yaml"),
    ("build-bad-yaml", ["data", "build", "--config", "{tmp}/bad.txt", "--out", "{tmp}/o"],
     1, "bad.txt"),
    ("train-none", ["train"], 2, "--config"),
    ("train-bad-flag", ["train", "--config=tiny", "--workdir={tmp}/w", "--bogus"], 2, "bogus"),
    ("train-config", ["train", "--config=nope", "--workdir={tmp}/w"], 2, "nope"),
    ("train-field", ["train", "--config=tiny", "--workdir={tmp}/w", "--config.model.hiden=2"],
     2, "model.hidden"),
    ("train-value", ["train", "--config=tiny", "--workdir={tmp}/w", "--config.model.hidden=x"],
     2, "model.hidden"),
    ("train-no-data", ["train", "--config=tiny", "--workdir={tmp}/w"], 1, "config.data.path"),
    ("train-missing", ["train", "--config=tiny", "--workdir={tmp}/w",
                       "--config.data.path={tmp}/missing.csv"], 1, "missing.csv"),
    ("train-dir", ["train", "--config=tiny", "--workdir={tmp}/w",
                   "--config.data.path={tmp}/folder"], 1, "directory"),
    ("train-format", ["train", "--config=tiny", "--workdir={tmp}/w",
                      "--config.data.path={tmp}/bad.txt"], 1, "unknown table format"),
    ("train-truncated", ["train", "--config=tiny", "--workdir={tmp}/w",
                         "--config.data.path={tmp}/trunc.parquet"], 1, "trunc.parquet"),
    ("train-dataset", ["train", "--config=tiny", "--workdir={tmp}/w",
                       "--config.data.path=no-such-set"], 1, "unknown dataset"),
    ("predict-none", ["predict"], 2, "--model"),
    ("predict-members", ["predict", "--model={tmp}/folder", "--input={tmp}/good.csv",
                         "--output={tmp}/p.csv", "--members=many"], 2, "members"),
    ("predict-no-model", ["predict", "--model={tmp}/missing", "--input={tmp}/good.csv",
                          "--output={tmp}/p.csv"], 1, "model"),
    ("predict-empty-model", ["predict", "--model={tmp}/folder", "--input={tmp}/good.csv",
                             "--output={tmp}/p.csv"], 1, "model"),
    ("verify-none", ["verify"], 2, "required"),
    ("verify-pair", ["verify", "--truth={tmp}/good.csv", "--forecast=x=", "--out={tmp}/v"],
     2, "expected"),
    ("verify-missing", ["verify", "--truth={tmp}/missing.csv", "--forecast=a={tmp}/good.csv",
                        "--out={tmp}/v"], 1, "missing.csv"),
    ("verify-dir", ["verify", "--truth={tmp}/folder", "--forecast=a={tmp}/good.csv",
                    "--out={tmp}/v"], 1, "directory"),
    ("verify-format", ["verify", "--truth={tmp}/good.csv", "--forecast=a={tmp}/bad.txt",
                       "--out={tmp}/v"], 1, "bad.txt"),
    ("verify-truncated", ["verify", "--truth={tmp}/good.csv", "--forecast=a={tmp}/trunc.parquet",
                          "--out={tmp}/v"], 1, "trunc.parquet"),
    ("verify-columns", ["verify", "--truth={tmp}/nocols.csv", "--forecast=a={tmp}/good.csv",
                        "--out={tmp}/v"], 1, "missing key column"),
    ("verify-reference", ["verify", "--truth={tmp}/good.csv", "--forecast=a={tmp}/good.csv",
                          "--reference=zz", "--out={tmp}/v"], 2, "zz"),
    ("demo-bad-flag", ["demo", "--bogus"], 2, "bogus"),
    ("demo-unknown", ["demo", "--dataset", "no-such-set", "--out", "{tmp}/d"], 1,
     "unknown dataset"),
    ("demo-sample", ["demo", "--dataset", "grib-samples", "--out", "{tmp}/d"], 1, "format sample"),
]  # fmt: skip

SLOW_CASES = [
    # prepares the grid (about a minute on 2 cores) before it finds there is no split
    ("demo-no-split", ["demo", "--dataset", "icp-wrf-precip-grid", "--out", "{tmp}/d"], 1, ""),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    good = station_table(n_stations=2, n_inits=6)
    good.to_csv(tmp / "good.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    good.to_parquet(tmp / "good.parquet")
    (tmp / "trunc.parquet").write_bytes((tmp / "good.parquet").read_bytes()[:300])
    (tmp / "folder").mkdir()
    (tmp / "bad.txt").write_text("hello: [unclosed\n")
    (tmp / "bad.nc").write_bytes(b"CDF\x01 not really a netcdf file")
    (tmp / "nocols.csv").write_text("a,b\n1,2\n")
    return tmp


_DRIVER = """
import contextlib, io, json, sys
from probcast.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except BaseException as exc:  # what the console script would show as a traceback
            rc, err = -1, io.StringIO(f"Traceback: {type(exc).__name__}: {exc}")
    results.append([rc, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def _run_all(cases: list[list[str]], tmp: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run the ``probcast`` entry point on each argv, in one fresh interpreter."""
    args = [[a.replace("{tmp}", str(tmp)) for a in argv] for argv in cases]
    env = {k: v for k, v in os.environ.items() if k != "PROBCAST_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(args)],
        capture_output=True, text=True, timeout=900, check=False, env=env, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.splitlines()[-1])
    return [
        subprocess.CompletedProcess(a, rc, out, err)
        for a, (rc, out, err) in zip(args, rows, strict=True)
    ]


def _run(argv: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    args = [a.replace("{tmp}", str(tmp)) for a in argv]
    env = {k: v for k, v in os.environ.items() if k != "PROBCAST_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "probcast.cli", *args],
        capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp,
    )  # fmt: skip


@pytest.fixture(scope="module")
def results(inputs: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case, one interpreter per subcommand (imports are paid once per command)."""
    out: dict[str, subprocess.CompletedProcess[str]] = {}
    for command in dict.fromkeys(argv[0] for _, argv, _, _ in CASES):
        group = [c for c in CASES if c[1][0] == command]
        for case, res in zip(group, _run_all([c[1] for c in group], inputs), strict=True):
            out[case[0]] = res
    return out


def _assert_one_paragraph(res: subprocess.CompletedProcess[str], code: int, word: str) -> None:
    both = res.stdout + res.stderr
    assert "Traceback" not in both and 'File "' not in both, both[-3000:]
    assert res.returncode == code, (res.returncode, res.stderr[-2000:])
    err = res.stderr.strip()
    # the message, maybe with a usage line before or after it, or a download line before it
    assert any(line.startswith("probcast") for line in err.splitlines()), err
    assert "\n\n" not in err, f"more than one paragraph:\n{err}"
    assert "unexpected error" not in err, err
    assert word.lower() in err.lower(), err


@pytest.mark.parametrize(
    ("argv", "code", "word"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_no_traceback(inputs: Path, argv: list[str], code: int, word: str) -> None:
    _assert_one_paragraph(_run(argv, inputs), code, word)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize(
    ("argv", "code", "word"), [c[1:] for c in SLOW_CASES], ids=[c[0] for c in SLOW_CASES]
)
def test_no_traceback_slow(
    mirror: Path, inputs: Path, argv: list[str], code: int, word: str
) -> None:
    _assert_one_paragraph(_run(argv, inputs), code, word)


def test_failed_training_leaves_no_empty_workdir(inputs: Path) -> None:
    work = inputs / "never-trained"
    res = _run(["train", "--config=tiny", f"--workdir={work}",
                f"--config.data.path={inputs}/missing.csv"], inputs)  # fmt: skip
    assert res.returncode == 1 and not work.exists()


def test_unexpected_errors_are_one_paragraph(monkeypatch, capsys) -> None:
    from probcast.data import cli as data_cli

    def boom(argv: list[str]) -> int:
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(data_cli, "main", boom)
    assert main(["data", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError" in err and "PROBCAST_DEBUG=1" in err
    monkeypatch.setenv("PROBCAST_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["data", "list"])
    assert error_message("x", KeyError("k")) == "probcast x: error: k"


def test_repeated_log_lines_are_shown_once() -> None:
    code = (
        "import logging\n"
        "from probcast.logs import configure_logging\n"
        "configure_logging()\n"
        "log = logging.getLogger('probcast.x')\n"
        "for i in (3, 3, 3, 4, 3):\n"
        "    log.info('%d rows are at stations unseen in training', i)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = [line for line in res.stderr.splitlines() if "unseen" in line]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "3 rows are at stations unseen in training",
        "4 rows are at stations unseen in training",
    ]
