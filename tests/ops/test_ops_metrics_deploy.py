"""The shipped Kubernetes objects that run cycles export their metrics, to one stable group.

Without an export the cycle alerts (ProbcastCycleLate, CycleFailed, InputStale) can never
fire; with the host name as the Pushgateway ``instance`` every Job pod would leave a group
behind forever and ``max by (pipeline)`` would keep reading its stale gauges.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

KUSTOMIZE = Path(__file__).resolve().parents[2] / "deploy" / "kustomize"
CYCLE_RUNNERS = {("ScaledJob", "probcast-cycle"), ("CronJob", "probcast-schedule")}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    template = (spec.get("jobTargetRef") or spec.get("jobTemplate", {}).get("spec", {}))["template"]
    return template["spec"]["containers"]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _check(docs: list[dict[str, Any]]) -> None:
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs if d}
    assert set(by_name) >= CYCLE_RUNNERS
    gateway = _env(_containers(by_name[("CronJob", "probcast-monitor")])[0])["PROBCAST_PUSHGATEWAY"]
    assert gateway.startswith("http://")
    instances = set()
    for key in sorted(CYCLE_RUNNERS):
        (container,) = _containers(by_name[key])
        env = _env(container)
        assert env.get("PROBCAST_PUSHGATEWAY") == gateway, key  # the monitor's gateway
        instance = env.get("PROBCAST_METRICS_INSTANCE")
        assert instance and "$(" not in instance, key  # a fixed name, not the pod's
        instances.add(instance)
        assert container["args"][0] in ("consume", "schedule")
    assert len(instances) == 2  # consume and schedule keep groups of their own


def test_base_cycle_runners_push_to_a_stable_group():
    docs = []
    for name in ("cycle-scaledjob.yaml", "cronjobs.yaml"):
        docs += list(yaml.safe_load_all((KUSTOMIZE / "base" / name).read_text()))
    _check(docs)


@pytest.mark.parametrize("overlay", sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir()))
def test_rendered_overlays_keep_the_export(overlay):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed (Debian package kubernetes-client)")
    proc = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    _check(list(yaml.safe_load_all(proc.stdout)))
