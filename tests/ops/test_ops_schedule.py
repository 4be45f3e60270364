"""The cron trigger: fire times -> cycles, catch-up of missed fire times, the command."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from opshelp import drop_cycle, write_pipeline

from probcast.ops import pipeline as pl
from probcast.ops.cli_schedule import main as schedule_main
from probcast.ops.schedule import Schedule, check_cron, parse_schedule, run_schedule
from probcast.ops.state import StateStore


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeClock:
    """A fake clock: waiting jumps straight to the wake-up time (records the waits)."""

    def __init__(self, start: datetime) -> None:
        self.time = start
        self.waits: list[datetime] = []

    def now(self) -> datetime:
        return self.time

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        self.waits.append(when)
        self.time = max(self.time, when) + timedelta(seconds=3)  # wakes a little late


def test_cron_and_schedule_block_are_checked(tmp_path):
    assert check_cron(" 30  5,11 * *  MON-FRI ") == "30 5,11 * * MON-FRI"
    for cron, why in [
        ("0 6 * * * *", "expected 5 fields"),
        ("@daily", "expected 5 fields"),
        ("0 6 L * *", "not standard cron"),
        ("0 6 * * 1#2", "not standard cron"),
        ("61 * * * *", "not a valid cron"),
    ]:
        with pytest.raises(pl.PipelineError, match=why):
            check_cron(cron)
    path = write_pipeline(tmp_path, tmp_path, schedule={"cron": "0 6 * * *"}, every_hours=6)
    sched = parse_schedule(pl.load(path))
    assert (sched.delay, sched.catch_up, sched.retries, sched.every_hours) == (
        timedelta(0),
        timedelta(hours=6),
        3,
        6,
    )
    for block, why in [
        ({}, "'cron' is required"),
        ({"cron": "0 6 * * *", "delay": 5}, "unknown keys"),
        ({"cron": "0 6 * * *", "delay_minutes": "soon"}, "delay_minutes: expected a number"),
        ({"cron": "0 6 * * *", "retries": 0}, "retries: expected a number >= 1"),
        ({"cron": "0 6 * * 8"}, "schedule.cron"),
    ]:
        path = write_pipeline(tmp_path, tmp_path, schedule=block)
        with pytest.raises(pl.PipelineError, match=why):
            parse_schedule(pl.load(path))


def test_fire_times_map_to_cycles():
    sched = Schedule("30 5,11,17,23 * * *", delay=timedelta(minutes=330), every_hours=6)
    fires = sched.fire_times(_t("2026-11-29T00:00"), _t("2026-11-29T17:30"))
    assert [f.strftime("%H:%M") for f in fires] == ["05:30", "11:30", "17:30"]  # end included
    assert [pl.cycle_id(sched.cycle_for(f)) for f in fires] == [
        "2026-11-29T00Z",
        "2026-11-29T06Z",
        "2026-11-29T12Z",
    ]
    hourly = Schedule("0 * * * *", delay=timedelta(hours=4), every_hours=6)
    due = hourly.due(_t("2026-11-29T09:30"), _t("2026-11-29T16:00"))  # 10:00 .. 16:00
    assert [(f.hour, pl.cycle_id(c)) for f, c in due] == [
        (10, "2026-11-29T06Z"),
        (16, "2026-11-29T12Z"),
    ]
    assert sched.next_fire(_t("2026-11-29T23:30")) == _t("2026-11-30T05:30")


def test_fake_clock_runs_due_and_missed_cycles_once(tmp_path, model_dir, stations):
    days = sorted(stations.init_time.unique())[10:14]  # d0..d3, 00Z
    for day in days:
        drop_cycle(stations, tmp_path / "inputs", day)
    cron = {"cron": "0 6 * * *", "delay_minutes": 360, "catch_up_hours": 30}
    pipe = pl.load(write_pipeline(tmp_path, model_dir, schedule=cron))
    store = StateStore(pipe.state, pipe.name)
    sched = parse_schedule(pipe)
    d0, d1, d2, d3 = (d.to_pydatetime() for d in days)
    clock = FakeClock(d2 + timedelta(hours=7))  # the scheduler starts at 07:00 on d2
    seen = []
    outcomes = run_schedule(
        pipe, store, sched, clock=clock, until=d3 + timedelta(hours=12), on_cycle=seen.append
    )
    # catch-up window 30 h: the missed fire times d1 06:00 and d2 06:00 run, d0 06:00 not;
    # then the fire time d3 06:00; the next one (d4 06:00) is after --until
    assert [(o.cycle, o.status) for o in outcomes] == [
        (pl.cycle_id(d), "finished") for d in (d1, d2, d3)
    ]
    assert seen == outcomes
    assert clock.waits == [d3 + timedelta(hours=6)]
    assert store.cycle_status(pl.cycle_id(d0)) is None
    # a restart within the window: nothing left to run
    again = run_schedule(pipe, store, sched, clock=FakeClock(d3 + timedelta(hours=7)), once=True)
    assert again == []
    for d in (d1, d2, d3):
        assert [r["attempts"] for r in store.steps_of(pl.cycle_id(d))] == [1, 1, 1, 1]


def test_schedule_command(tmp_path, model_dir, stations, capsys):
    day = sorted(stations.init_time.unique())[14]
    drop_cycle(stations, tmp_path / "inputs", day)
    cron = {"cron": "0 6 * * *", "delay_minutes": 360, "catch_up_hours": 0}
    path = str(write_pipeline(tmp_path, model_dir, schedule=cron))
    cid = pl.cycle_id(day.to_pydatetime())
    # the real clock, shifted to 2 s before the fire time: waits, runs it, exits at --until
    start = f"{day:%Y-%m-%d}T05:59:58Z"
    until = f"{day:%Y-%m-%d}T06:00:30Z"
    assert schedule_main(["--pipeline", path, "--now", start, "--until", until]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{cid} finished ran=acquire,predict,publish,record"
    ]
    # a replay with a missing input: the cycle fails, exit status 1
    later = f"{day + timedelta(days=1):%Y-%m-%d}T07:00Z"
    with_window = write_pipeline(tmp_path, model_dir, schedule={**cron, "catch_up_hours": 2})
    assert schedule_main(["--pipeline", str(with_window), "--now", later, "--once"]) == 1
    assert "failed" in capsys.readouterr().out
    assert schedule_main(["--pipeline", path, "--once", "--now", "noon"]) == 2
    assert "--now: expected a time like" in capsys.readouterr().err
