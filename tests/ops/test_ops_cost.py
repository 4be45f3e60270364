"""probcast cost: measured cycle times and product sizes from the state store, priced."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from probcast.cli import main
from probcast.ops import cost
from probcast.ops.state import StateStore, cycles


def _store(tmp_path, durations, size=2_000_000):
    store = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}", "p")
    for i, seconds in enumerate(durations):
        cid = f"2026-11-{i + 1:02d}T00Z"
        out = tmp_path / f"pred_{i}.nc"
        out.write_bytes(b"x" * size)
        store.start_cycle(cid)
        store.start_step(cid, "predict")
        store.finish_step(cid, "predict", outputs={"members": str(out)})
        store.finish_cycle(cid)
        start = datetime(2026, 11, i + 1, 0, 5)
        with store.engine.begin() as conn:
            conn.execute(
                cycles.update()
                .where(cycles.c.cycle == cid)
                .values(started_at=start, finished_at=start + timedelta(seconds=seconds))
            )
    store.start_cycle("2026-11-30T00Z")  # unfinished: not measured
    return store


def test_measure_takes_medians_of_finished_cycles(tmp_path):
    store = _store(tmp_path, [100.0, 300.0, 200.0])
    m = cost.measure(store, every_hours=6)
    assert (m.cycles, m.cycle_seconds, m.product_bytes, m.cycles_per_day) == (3, 200.0, 2e6, 4.0)


def test_estimate_arithmetic():
    m = cost.Measured(cycles=5, cycle_seconds=540.0, product_bytes=1e9, cycles_per_day=4.0,
                      training_seconds=7200.0)  # fmt: skip
    prices = cost.Prices(cpu_node_hour=1.0, node_start_seconds=60.0, serve_replicas=2,
                         serve_node_hour=0.5, storage_gb_month=0.02, retention_days=30.4375,
                         gpu_node_hour=4.0, spot_discount=0.5, retrains_per_month=3.0,
                         egress_gb=0.1, egress_gb_per_cycle=2.0)  # fmt: skip
    c = cost.estimate(m, prices)
    assert c["cycles (CPU jobs)"]["day"] == pytest.approx(4 * 600 / 3600 * 1.0)
    assert c["serve"]["day"] == pytest.approx(24.0)
    assert c["storage"]["month"] == pytest.approx(4 * 30.4375 * 0.02)  # 1 GB x cycles kept
    assert c["training (GPU spot)"]["month"] == pytest.approx(3 * 2 * 2.0)
    assert c["egress"]["day"] == pytest.approx(0.8)
    parts = sum(v["day"] for k, v in c.items() if k != "total")
    assert c["total"]["day"] == pytest.approx(parts)


def test_nothing_finished_is_an_error(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}", "p")
    with pytest.raises(ValueError, match="no finished cycle"):
        cost.measure(store, 24)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cpu_node_hour: -1\n", ">= 0"),
        ("cpu_node_hr: 1\n", "unknown price keys"),
        ("[1\n", "cannot"),
    ],
)
def test_bad_prices_are_refused(tmp_path, text, match):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        cost.Prices.load(path)


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    _store(tmp_path, [120.0, 120.0]).close()
    pipe = tmp_path / "p.yaml"
    pipe.write_text(
        f"name: p\nmodel: m\ninput: in/{{cycle:%Y%m%d%H}}.parquet\nevery_hours: 12\n"
        f"state: sqlite:///{tmp_path / 'state.sqlite'}\n"
        "products: {members: 5}\ndestinations: [out]\n"
    )
    prices = tmp_path / "prices.yaml"
    prices.write_text("cpu_node_hour: 0.5\nserve_replicas: 0\n")
    assert main(["cost", "--pipeline", str(pipe), "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    assert "median 120.0 s" in out and "total" in out and "placeholders" not in out
    assert main(["cost", "--pipeline", str(pipe), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measured"]["cycles_per_day"] == 2.0
    assert data["costs"]["cycles (CPU jobs)"]["day"] == pytest.approx(2 * 180 / 3600 * 0.2)
