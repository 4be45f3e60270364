"""The README's "own data" section runs as written.

The fast tests parse every ``probcast`` command of the section with the command's own
parser (so a renamed flag, a config field that no longer exists or a dropped subcommand
fails here, not in a user's terminal); the slow one runs the section's example block, CSV
to verification report, in a temporary folder on real data.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using probcast on your own data"
EXAMPLE = "<!-- own-data example:"
CHAIN = [("data", "check"), ("data", "split"), ("train",), ("predict",), ("verify",)]


def _section(text: str) -> str:
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end > 0 else None]


def _commands(block: str) -> list[list[str]]:
    """The shell commands of a bash block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _example(text: str) -> list[list[str]]:
    section = _section(text)
    marker = section.index(EXAMPLE)
    return _commands(_bash_blocks(section[marker:])[0])


def _parse(words: list[str]) -> None:
    """Parse one ``probcast`` command line with its command's parser (no work done)."""
    command, args = words[1], words[2:]
    if command == "data" and args[:1] == ["build"]:
        from probcast.sources.cli import build_parser

        build_parser().parse_args(args[1:])
    elif command == "data":
        from probcast.data.cli import build_parser as data_parser

        data_parser().parse_args(args)
    elif command == "train":
        from probcast.train.cli import _parse as train_parse

        config, workdir = train_parse(args)
        assert workdir and config is not None
    elif command == "predict":
        from probcast.predict.cli import REQUIRED, _flags

        fv = _flags()
        fv(["probcast predict", *args])
        assert all(fv[name].value for name in REQUIRED), words
    elif command == "verify":
        from probcast.verify.cli import build_parser as verify_parser

        verify_parser().parse_args(args)
    else:
        raise AssertionError(f"README names an unknown command: {' '.join(words)}")


def test_example_is_the_whole_chain_in_order():
    commands = _example(README.read_text())
    steps = [tuple(w[1 : 1 + len(s)]) for w in commands if w[0] == "probcast" for s in CHAIN]
    found = [s for s in CHAIN if s in steps]
    assert found == CHAIN, f"the example lacks {set(CHAIN) - set(found)}"
    order = [_first(commands, s) for s in CHAIN]
    assert order == sorted(order)
    # the CSV the chain starts from is made by the example itself
    csv = commands[order[0]][3]
    assert csv.endswith(".csv")
    assert any(csv in " ".join(w) for w in commands[: order[0]])


def _first(commands: list[list[str]], step: tuple[str, ...]) -> int:
    return next(i for i, w in enumerate(commands) if tuple(w[1 : 1 + len(step)]) == step)


def test_every_probcast_command_of_the_section_parses(monkeypatch):
    monkeypatch.chdir(README.parent)  # relative config paths as a user in the checkout
    section = _section(README.read_text())
    commands = [w for b in _bash_blocks(section) for w in _commands(b)]
    probcast = [w for w in commands if w[0] == "probcast"]
    assert len(probcast) >= 10
    for words in probcast:
        try:
            _parse(words)
        except SystemExit as exc:  # argparse: unknown flag or missing argument
            raise AssertionError(f"README command does not parse: {' '.join(words)}") from exc
    for words in commands:
        if words[:2] == ["python", "-c"]:
            ast.parse(words[2])


def test_parse_check_can_fail():
    with pytest.raises(SystemExit):
        _parse(["probcast", "verify", "--truth=a", "--forecast", "m=b", "--outdir=x"])
    with pytest.raises(KeyError, match=r"did you mean train\.epochs"):
        _parse(["probcast", "train", "--config=default", "--workdir=x", "--config.train.epoch=3"])


@pytest.mark.slow  # about 3 minutes on a shared 2-core machine (7 processes, one training)
@pytest.mark.realdata
def test_example_runs_as_written(mirror, tmp_path):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PROBCAST_DATA_MIRROR"] = str(mirror)
    env["PROBCAST_QUIET"] = "1"
    timings = []
    for words in _example(README.read_text()):
        t0 = time.perf_counter()
        res = subprocess.run(
            words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        timings.append((" ".join(words[:3]), time.perf_counter() - t0))
        assert res.returncode == 0, f"{' '.join(words)}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        assert "Traceback" not in res.stderr
    assert (tmp_path / "verif" / "scores.csv").stat().st_size > 0
    report = (tmp_path / "verif" / "report.html").read_text()
    assert "<h2>Training</h2>" in report  # verify --model: the training curves
    print("\n".join(f"{s:7.1f} s  {c}" for c, s in timings))
