"""What the shipped Jobs and CronJobs do: their shell scripts run here, on folders in tmp_path.

The scripts are taken from the rendered overlays and run with ``/bin/sh`` (dash on Debian, as
in the image), their absolute paths (``/data/``, ``/train/``) moved under ``tmp_path``, with
a stub ``probcast`` that records its arguments (the real one is tested elsewhere) and the
real ``python`` of this environment (the scripts check models with
``probcast.model.integrity``). Also: the monitor CronJobs read what the cycles write, on a
mounted volume, and push to one stable Pushgateway group per CronJob.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployhelp import OVERLAYS, containers, find, probcast_calls, render, script

from probcast.model import integrity

TOPS = ("/data/", "/train/", "/etc/probcast/")


def _container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (c,) = [c for _, _, c in containers(find(docs, kind, name))]
    return c


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def run_script(
    container: dict[str, Any], root: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run ``container``'s script under ``root``; the result and the ``probcast`` calls made."""
    text = script(container)
    assert text, "not a /bin/sh script"
    for top in TOPS:
        text = text.replace(top, f"{root}{top}")
    bin_ = root / "bin"
    bin_.mkdir(exist_ok=True)
    calls = root / "calls"
    stub = bin_ / "probcast"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >> "$CALLS"\necho ---- >> "$CALLS"\n')
    (bin_ / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for f in (stub, bin_ / "python"):
        f.chmod(0o755)
    full = {**_env(container), **env, "PATH": f"{bin_}:/usr/bin:/bin", "CALLS": str(calls)}
    done = subprocess.run(
        ["/bin/sh", "-ec", text], env=full, capture_output=True, text=True, timeout=60
    )
    made = calls.read_text().split("----\n")[:-1] if calls.exists() else []
    calls.unlink(missing_ok=True)
    return done, [m.splitlines() for m in made]


def _model(workdir: Path, files: dict[str, str]) -> Path:
    """A fake model work directory: ``files`` and a COMPLETE.json over them."""
    for name, text in files.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    integrity.write_marker(workdir)
    return workdir


RUN_A = {"config.json": "{}", "meta.json": '{"run": "A"}', "seed_0/best/w": "a0",
         "seed_1/best/w": "a1"}  # fmt: skip
RUN_B = {"config.json": "{}", "meta.json": '{"run": "B"}', "seed_0/best/w": "b0"}


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


TRAINERS = [("dev", "probcast-train"), ("prod-gcp", "probcast-train"),
            ("prod-gcp", "probcast-train-distributed")]  # fmt: skip


@pytest.mark.parametrize(("overlay", "name"), TRAINERS)
def test_training_replaces_the_candidate_never_merges_into_it(overlay, name, tmp_path):
    # audit: `cp -a` into an existing candidate merged two runs (seed_1 of the first run
    # stayed), and loading failed with "... is not listed in COMPLETE.json"
    train = _container(render(overlay), "Job", name)
    for uid, files in (("uid-a", RUN_A), ("uid-b", RUN_B)):
        _model(tmp_path / "train" / "runs" / uid, files)
        done, calls = run_script(train, tmp_path, JOB_UID=uid, JOB_COMPLETION_INDEX="0")
        assert done.returncode == 0, done.stderr
        assert (
            calls
            and calls[0][0] == "train"
            and f"--workdir={tmp_path}/train/runs/{uid}" in (calls[0])
        )
    models = tmp_path / "data" / "models"
    candidate = _tree(models / "candidate")
    assert candidate == _tree(tmp_path / "train" / "runs" / "uid-b")
    integrity.verify(models / "candidate")
    assert sorted(p.name for p in models.iterdir()) == ["candidate"]  # no temporary left


def test_training_keeps_the_old_candidate_when_the_copy_is_broken(tmp_path):
    train = _container(render("dev"), "Job", "probcast-train")
    _model(tmp_path / "train" / "runs" / "uid-a", RUN_A)
    assert run_script(train, tmp_path, JOB_UID="uid-a")[0].returncode == 0
    broken = _model(tmp_path / "train" / "runs" / "uid-b", RUN_B)
    (broken / "seed_0" / "best" / "w").write_text("changed after training")
    done, _ = run_script(train, tmp_path, JOB_UID="uid-b")
    assert done.returncode != 0 and "does not match its checksum" in done.stderr
    assert _tree(tmp_path / "data" / "models" / "candidate")["meta.json"] == '{"run": "A"}'


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_promotion_swaps_a_verified_copy_in_as_current(overlay, tmp_path):
    docs = render(overlay)
    cron = find(docs, "CronJob", "probcast-promote")
    assert cron["spec"]["suspend"] is True  # run by hand only: kubectl create job --from=...
    promote = _container(docs, "CronJob", "probcast-promote")
    models = tmp_path / "data" / "models"
    done, _ = run_script(promote, tmp_path)
    assert done.returncode != 0 and "incomplete model" in done.stderr  # no candidate yet
    _model(models / "candidate", RUN_A)
    assert run_script(promote, tmp_path)[0].returncode == 0
    assert _tree(models / "current") == _tree(models / "candidate")
    (models / "candidate").rename(models / "a")
    _model(models / "candidate", RUN_B)
    done, _ = run_script(promote, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _tree(models / "current") == _tree(models / "candidate")  # B alone, nothing of A
    integrity.verify(models / "current")
    assert _tree(models / "previous") == _tree(models / "a")
    assert not (models / "current.new").exists()
    (models / "candidate" / "meta.json").write_text("{}")  # modified after training
    done, _ = run_script(promote, tmp_path)
    assert done.returncode != 0
    assert _tree(models / "current")["meta.json"] == '{"run": "B"}'  # left as it was


def _inputs(root: Path, cycles: dict[datetime, bool]) -> None:
    """Cycle input files named as the pipeline's ``input``, with a .done marker if True."""
    folder = root / "data" / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    for cycle, complete in cycles.items():
        path = folder / f"{cycle:%Y%m%d%H}.parquet"
        path.write_text("")
        if complete:
            (folder / f"{path.name}.done").write_text("")
    (folder / "notes.parquet").write_text("")  # not a cycle's input
    (folder / "notes.parquet.done").write_text("")


def _options(call: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    key = ""
    for word in call:
        if word.startswith("--"):
            key = word
            out[key] = []
        elif key:
            out[key].append(word)
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_skill_monitor_gets_inputs_and_reference_for_every_check(overlay, tmp_path):
    # audit: without --inputs and --reference-table, crpss_raw, crpss_emos and nwp_bias were
    # never evaluated
    docs = render(overlay)
    skill = _container(docs, "CronJob", "probcast-monitor")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    days = int(_env(skill)["INPUT_DAYS"])
    recent, old = now - timedelta(days=2), now - timedelta(days=days + 2)
    _inputs(tmp_path, {recent: True, now: False, old: True})
    done, calls = run_script(skill, tmp_path)
    assert done.returncode == 0, done.stderr
    ((command, sub, *rest),) = calls
    assert (command, sub) == ("monitor", "skill")
    options = _options(rest)
    assert options["--inputs"] == [f"{tmp_path}/data/inputs/{recent:%Y%m%d%H}.parquet"]
    assert options["--reference-table"] == [f"{tmp_path}/data/tables/train.parquet"]
    assert options["--observations"] == [f"{tmp_path}/data/observations/latest.parquet"]
    assert options["--config"] == [f"{tmp_path}/etc/probcast/ops.yaml"]
    ops = yaml.safe_load(
        next(d for d in docs if d["kind"] == "ConfigMap" and "ops.yaml" in d.get("data", {}))[
            "data"
        ]["ops.yaml"]
    )
    assert options["--forecasts"] == ops["destinations"][:1]  # where the cycles publish
    # inputs of every issue still waiting: the window plus obs_grace_days (default 10)
    assert days >= ops["monitor"]["skill"]["window_days"] + 10


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_drift_monitor_pools_the_newest_complete_inputs(overlay, tmp_path):
    # audit: no `monitor drift` ran, so the drift alerts had nothing feeding them
    drift = _container(render(overlay), "CronJob", "probcast-monitor-drift")
    done, calls = run_script(drift, tmp_path)
    assert done.returncode == 1 and "no complete cycle input" in done.stderr and not calls
    start = datetime(2026, 11, 1, tzinfo=UTC)
    cycles = {start + timedelta(hours=6 * i): True for i in range(7)}
    cycles[start + timedelta(hours=6 * 7)] = False  # arriving, no marker yet
    _inputs(tmp_path, cycles)
    done, calls = run_script(drift, tmp_path)
    assert done.returncode == 0, done.stderr
    ((command, sub, *rest),) = calls
    options = _options(rest)
    assert (command, sub) == ("monitor", "drift")
    n = int(_env(drift)["DRIFT_CYCLES"])
    expected = [start + timedelta(hours=6 * i) for i in range(7)][-n:]
    inputs = tmp_path / "data" / "inputs"
    assert options["--input"] == [f"{inputs}/{c:%Y%m%d%H}.parquet" for c in expected]
    assert options["--reference"] == [f"{tmp_path}/data/models/current"]


def _mount_of(pod: dict[str, Any], container: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume that holds ``path`` in ``container`` (the longest mount path above it)."""
    mounts = [
        m
        for m in container["volumeMounts"]
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mounts, f"{path} is on no mounted volume (the container's root file system)"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume


def _source(volume: dict[str, Any]) -> tuple[str, str]:
    """What a volume is: a claim or a bucket, by name."""
    if "persistentVolumeClaim" in volume:
        return "claim", volume["persistentVolumeClaim"]["claimName"]
    if "csi" in volume:
        return "bucket", volume["csi"]["volumeAttributes"]["bucketName"]
    return "other", str(volume)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitor_reads_the_volume_the_cycles_publish_to(overlay):
    # audit: prod-gcp pointed --forecasts at /products without mounting the products bucket
    docs = render(overlay)
    cron = find(docs, "CronJob", "probcast-monitor")
    ((_, pod, monitor),) = list(containers(cron))
    forecasts = _env(monitor)["FORECASTS"]
    ((_, cycle_pod, cycle),) = list(containers(find(docs, "ScaledJob", "probcast-cycle")))
    published = _source(_mount_of(cycle_pod, cycle, forecasts))
    assert _source(_mount_of(pod, monitor, forecasts)) == published
    if published[0] == "bucket":  # GCS FUSE mounts need the pod annotation
        assert (
            cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"][
                "gke-gcsfuse/volumes"
            ]
            == "true"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_folder_renames_are_allowed_where_scripts_rename(overlay):
    # Cloud Storage FUSE refuses to rename a folder of a flat bucket without rename-dir-limit
    for doc in render(overlay):
        for where, pod, c in containers(doc):
            if "mv -T" not in script(c):
                continue
            volume = _mount_of(pod, c, "/data/models")
            if "csi" in volume:
                options = volume["csi"]["volumeAttributes"]["mountOptions"].split(",")
                assert any(o.startswith("rename-dir-limit=") for o in options), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitor_cronjobs_push_to_one_stable_group_each(overlay):
    # audit: the monitor pushed under instance=<hostname>: one group per daily pod, kept
    # forever by the Pushgateway, so an alert pushed once kept firing
    instances = {}
    for doc in render(overlay):
        for where, _, c in containers(doc):
            if not any(call[:1] == ["monitor"] for call in probcast_calls(c)):
                continue
            env = _env(c)
            assert env["PROBCAST_PUSHGATEWAY"].startswith("http://"), where
            instance = env.get("PROBCAST_METRICS_INSTANCE", "")
            assert instance and "$" not in instance, f"{where}: no fixed instance"
            instances[where] = instance
    assert len(instances) == 2 and len(set(instances.values())) == 2, instances


@pytest.fixture
def gateway():
    """A stand-in Pushgateway on 127.0.0.1: the paths of the PUTs it received."""
    from probcast.testing.pushgateway import stand_in

    with stand_in() as (url, handler):
        yield url, handler.received


def test_monitor_push_honours_the_metrics_instance(gateway, tmp_path, monkeypatch):
    import socket

    from probcast.cli import main
    from probcast.testing.stations import station_table

    url, got = gateway
    table = station_table(n_stations=4, n_inits=4, targets=("t2m",), seed=3)
    table.to_parquet(tmp_path / "train.parquet")
    table.drop(columns=["obs_t2m"]).to_parquet(tmp_path / "input.parquet")
    args = ["monitor", "drift", "--reference", str(tmp_path / "train.parquet"), "--input",
            str(tmp_path / "input.parquet"), "--pushgateway", url]  # fmt: skip
    monkeypatch.setenv("PROBCAST_METRICS_INSTANCE", "probcast-monitor-drift")
    assert main(args) == 0
    monkeypatch.setenv("PROBCAST_METRICS_INSTANCE", "  ")  # blank: the host, as for cycles
    assert main(args) == 0
    monkeypatch.delenv("PROBCAST_METRICS_INSTANCE")
    assert main(args) == 0
    host = socket.gethostname()
    assert [path for _, path, _ in got] == [
        "/metrics/job/probcast_monitor_drift/instance/probcast-monitor-drift",
        f"/metrics/job/probcast_monitor_drift/instance/{host}",
        f"/metrics/job/probcast_monitor_drift/instance/{host}",
    ]
