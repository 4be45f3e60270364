"""Progress bars: drawn on a terminal, nothing without one, silenced by --quiet."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from rich.console import Console

from probcast import cli, progress


def _terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=120), buf


def _text(buf: io.StringIO) -> str:
    """What the terminal shows, without its control sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())


@pytest.fixture(autouse=True)
def _not_quiet(monkeypatch):
    monkeypatch.delenv(progress.QUIET_ENV, raising=False)


def test_bar_renders_on_a_terminal_with_eta():
    console, buf = _terminal()
    with progress.bar("seed 0 epochs", 4, console=console) as bar:
        assert bar.shown
        for i in range(4):
            bar.advance(1, f"seed 0 epochs | val crps t2m={1.5 - i / 10:.4g}")
    out = _text(buf)
    assert "seed 0 epochs | val crps t2m=1.2" in out
    assert "4/4" in out and "100%" in out
    assert "eta" in out
    assert "\x1b[" in buf.getvalue()  # drawn with terminal control sequences


def test_nested_bar_is_one_more_line_of_the_same_display():
    console, buf = _terminal()
    with progress.bar("outer", 2, console=console) as outer:
        with progress.bar("EMOS t2m", 2) as inner:  # no console: joins the shown display
            assert inner.shown
            inner.advance(2)
        outer.advance(2)
    assert "EMOS t2m" in buf.getvalue() and "outer" in buf.getvalue()


def test_track_yields_every_item_and_labels_them():
    console, buf = _terminal()
    got = list(
        progress.track(["t2m", "tp"], "verify", label=lambda v: f"verify {v}", console=console)
    )
    assert got == ["t2m", "tp"]
    assert "verify tp" in buf.getvalue() and "2/2" in buf.getvalue()


def test_log_lines_print_above_the_bar():
    console, buf = _terminal()
    handler = logging.StreamHandler(sys.__stderr__)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with progress.bar("work", 1, console=console):
            assert handler.stream is not sys.__stderr__  # routed through the display
            logging.getLogger("probcast.test").warning("an epoch line")
        assert handler.stream is sys.__stderr__  # restored
    finally:
        root.removeHandler(handler)
    assert "an epoch line" in buf.getvalue()


def test_no_terminal_draws_nothing(capsys):
    plain = io.StringIO()
    console = Console(file=plain)  # not a terminal (a pipe, a log file)
    with progress.bar("work", 3, console=console) as bar:
        assert not bar.shown
        bar.advance()
        bar.update(description="x", total=5)
    assert plain.getvalue() == ""
    with progress.bar("work", 3) as bar:  # default: stderr, captured here (no terminal)
        assert not bar.shown
    assert list(progress.track(range(3), "n")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_quiet_environment_silences_a_terminal(monkeypatch):
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    console, buf = _terminal()
    with progress.bar("work", 2, console=console) as bar:
        assert not bar.shown
        bar.advance(2)
    assert buf.getvalue() == ""


def test_quiet_flag_of_the_probcast_command(monkeypatch, capsys):
    monkeypatch.setenv(progress.QUIET_ENV, "")
    assert cli.main(["--quiet", "--help"]) == 0
    assert progress.quiet()
    assert "--quiet" in capsys.readouterr().out
    console, buf = _terminal()
    with progress.bar("work", 1, console=console) as bar:
        bar.advance()
    assert buf.getvalue() == ""
    # the flag is taken off the command line before the command sees it
    monkeypatch.setenv(progress.QUIET_ENV, "")
    assert cli.main(["data", "list", "--quiet"]) == 0
    assert progress.quiet() and "pnw-t2m" in capsys.readouterr().out


def test_verification_and_emos_fits_show_bars():
    from probcast.baselines.emos import fit_emos
    from probcast.testing.stations import station_table
    from probcast.testing.verification import members_table, truth_table
    from probcast.verify.evaluate import verify

    truth, mu, sigma = truth_table(n_stations=3, n_inits=8)
    fc = members_table(truth, mu, sigma)
    console, buf = _terminal()
    with progress.bar("outer", console=console):
        verify(truth, {"raw": truth, "m": fc}, reference="raw", n_boot=20)
        fit_emos(station_table(n_stations=3, n_inits=30), "t2m", by_station=True, min_rows=10)
    out = _text(buf)
    assert "verify t2m" in out and "CRPSS m t2m" in out
    assert "EMOS fit t2m (per station)" in out and "2/2" in out


def test_tile_tasks_of_a_dask_computation_show_a_bar():
    import dask.array as dsa

    from probcast.predict.tiles import TILE_PROGRESS

    def tile(block):  # what each tile task does when done
        TILE_PROGRESS.tick()
        return block + 1

    console, buf = _terminal()
    TILE_PROGRESS.total = 4
    arr = dsa.zeros((4, 4), chunks=2).map_blocks(tile)
    with progress.bar("predict", console=console), TILE_PROGRESS:
        assert float(dsa.ones(3, chunks=1).sum().compute(scheduler="threads")) == 3.0
        assert "grid tiles" not in buf.getvalue()  # no tile task: no bar
        assert float(arr.sum().compute(scheduler="threads")) == 16.0
        TILE_PROGRESS.tick()  # outside a computation: ignored
    assert "grid tiles" in _text(buf) and "4/4" in _text(buf)
