"""The commands docs/deployment.md gives work on the shipped manifests (offline).

The copy of the manifests renders, ``kubectl create job --from`` names a CronJob, the label
selectors of the step-by-step first deployment select what each step needs and nothing
that would start before a model exists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deployhelp import OVERLAYS, ROOT, find, kubectl, pod_templates, render

DOCS = [ROOT / "docs" / n for n in ("deployment.md", "runbook.md", "monitoring.md")]
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()


def _section(title: str) -> str:
    start = DEPLOYMENT.index(f"### {title}")
    end = min(DEPLOYMENT.find(mark, start + 4) % (len(DEPLOYMENT) + 1)
              for mark in ("\n## ", "\n### "))  # fmt: skip
    return DEPLOYMENT[start:end]


def test_documented_copy_of_the_manifests_renders(tmp_path: Path) -> None:
    # audit: copying the overlay folder alone to /tmp/prod broke its `../../base`
    binary = kubectl()
    lines = DEPLOYMENT.splitlines()
    (copy,) = [ln.strip() for ln in lines if ln.strip().startswith("cp -r deploy/kustomize")]
    (sub,) = [ln.strip() for ln in lines if ln.strip().startswith('sed -i "s/PROJECT_ID/')]
    assert not re.search(r"cp -r deploy/kustomize/overlays", DEPLOYMENT)
    target = copy.split()[-1]
    commands = "\n".join([copy, sub]).replace(target, str(tmp_path / "copy"))
    done = subprocess.run(
        ["bash", "-ec", commands], cwd=ROOT, env={"PROJECT": "my-project", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = subprocess.run(
        [binary, "kustomize", str(tmp_path / "copy" / "overlays" / "prod-gcp")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert "PROJECT_ID" not in rendered.stdout and "my-project-probcast-data" in rendered.stdout
    assert "PROJECT_ID" in (ROOT / "deploy/kustomize/overlays/prod-gcp/ops.yaml").read_text()


def _create_job_sources() -> list[str]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"create job\b", text):
            window = text[match.end() : match.end() + 120]
            source = re.search(r"--from=([^\s`'\"]+)", window)
            assert source, f"{doc.name}: `kubectl create job` without --from near {window!r}"
            found.append(source.group(1))
    return found


def test_documented_create_job_copies_a_suspended_cronjob() -> None:
    # audit: `kubectl create job --from` takes only a CronJob; probcast-train is a Job
    sources = _create_job_sources()
    assert sources
    for overlay in OVERLAYS:
        docs = render(overlay)
        for source in sources:
            kind, _, name = source.partition("/")
            assert kind == "cronjob", f"--from={source}: kubectl copies only a CronJob"
            if not name.isupper():  # not a placeholder (NAME)
                assert find(docs, "CronJob", name)["spec"]["suspend"] is True


def selects(selector: str, labels: dict[str, str]) -> bool:
    """A kubectl label selector (``k=v``, ``k!=v``, ``k in (a,b)``, comma-joined) on labels."""
    for term in re.findall(r"[^,()]+(?:\([^)]*\))?", selector):
        term = term.strip()
        if match := re.fullmatch(r"(\S+)\s+in\s+\(([^)]*)\)", term):
            if labels.get(match.group(1)) not in [v.strip() for v in match.group(2).split(",")]:
                return False
        elif "!=" in term:
            key, value = term.split("!=")
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=")
            if labels.get(key) != value:
                return False
    return True


def test_selector_parser() -> None:
    labels = {"app.kubernetes.io/component": "train", "environment": "dev"}
    assert selects("app.kubernetes.io/component=train", labels)
    assert selects("app.kubernetes.io/component in (shared,train),environment=dev", labels)
    assert not selects("app.kubernetes.io/component in (shared, serve)", labels)
    assert not selects("app.kubernetes.io/component!=train", labels)


def _applied(section: str) -> list[str]:
    """The label selectors of ``kubectl apply`` in ``section``, ``""`` for a whole apply."""
    out = []
    for line in section.splitlines():
        if "kubectl apply -f -" in line:
            match = re.search(r"-l\s+('([^']+)'|(\S+))", line)
            out.append((match.group(2) or match.group(3)) if match else "")
    return out


def _names(docs: list[dict[str, Any]], selector: str) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs
            if selects(selector, d["metadata"].get("labels", {}))}  # fmt: skip


def _needs(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """The ServiceAccount, claims, ConfigMaps and Secrets a workload's pods name."""
    out = set()
    for _, template in pod_templates(doc):
        pod = template["spec"]
        if "serviceAccountName" in pod:
            out.add(("ServiceAccount", pod["serviceAccountName"]))
        for v in pod.get("volumes", []):
            if "persistentVolumeClaim" in v:
                out.add(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
            if "configMap" in v:
                out.add(("ConfigMap", v["configMap"]["name"]))
        for c in pod["containers"]:
            for e in c.get("env", []):
                if "secretKeyRef" in e.get("valueFrom", {}):
                    out.add(("Secret", e["valueFrom"]["secretKeyRef"]["name"]))
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_first_deployment_trains_and_promotes_before_serving(overlay: str) -> None:
    # audit: on a first apply nothing put a model in /data/models/current, so serve, consume
    # and schedule exited 2; the docs must train and promote one before applying those
    section = _section("First deployment")
    applies = _applied(section)
    assert applies[-1] == "" and "" not in applies[:-1], applies  # the whole overlay last
    steps = applies[:-1]
    text = section
    whole = text.rindex("kubectl kustomize $OVERLAY | kubectl apply -f -\n")
    assert text.index("wait --for=condition=complete job/probcast-train") < whole
    assert text.index("create job --from=cronjob/probcast-promote") < whole
    docs = render(overlay)
    selected: set[tuple[str, str]] = set()
    for selector in steps:
        selected |= _names(docs, selector)
    serving = {("Deployment", "probcast-serve"), ("ScaledJob", "probcast-cycle"),
               ("CronJob", "probcast-schedule")}  # fmt: skip
    assert not selected & serving, "a serving part applied before the model exists"
    workloads = [("Job", "probcast-train"), ("CronJob", "probcast-promote")]
    assert set(workloads) <= selected
    external = {("Secret", "probcast-state")} if overlay == "prod-gcp" else set()
    for kind, name in workloads:
        missing = _needs(find(docs, kind, name)) - selected - external
        assert not missing, f"{kind}/{name} needs {missing}, applied later"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_documented_retraining_applies_the_training_job(overlay: str) -> None:
    section = _section("Retraining and promotion")
    (selector,) = _applied(section)
    assert "delete job probcast-train --ignore-not-found" in section
    chosen = _names(render(overlay), selector)
    assert ("Job", "probcast-train") in chosen
    assert not {k for k, _ in chosen} & {"Deployment", "ScaledJob"}


def test_documented_observations_file_is_the_one_the_monitor_reads() -> None:
    # audit: the skill CronJob read a file nothing writes, and the docs did not say who must
    from deployhelp import containers, probcast_calls

    section = _section("Observations for the skill monitor")
    for overlay in OVERLAYS:
        cron = find(render(overlay), "CronJob", "probcast-monitor")
        ((_, _, c),) = list(containers(cron))
        (call,) = probcast_calls(c)
        path = call[call.index("--observations") + 1]
        assert f"`{path}`" in section
    for word in ("probcast data build", "obs_<var>", "station", "valid_time"):
        assert word in section
