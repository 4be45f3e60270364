"""The Kustomize overlays render, match the vendored schemas and keep the deployment's rules.

Rendered with the real ``kubectl kustomize`` (Debian's kubernetes-client in CI); validated
offline against the schemas in deploy/schemas/ (no download at test time).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployhelp import (
    COST_LABELS,
    EXTERNAL_SECRETS,
    OVERLAYS,
    ROOT,
    containers,
    find,
    pod_templates,
    probcast_calls,
    quantity,
    render,
    schema_errors,
)

EXPECTED = {"dev", "prod-gcp"}


def _ops(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "ops.yaml" in d.get("data", {}))
    return yaml.safe_load(cm["data"]["ops.yaml"])


def test_overlays_present_and_render() -> None:
    assert set(OVERLAYS) >= EXPECTED
    for overlay in OVERLAYS:
        kinds = {d["kind"] for d in render(overlay)}
        assert {"Deployment", "HorizontalPodAutoscaler", "ScaledJob", "CronJob", "Job"} <= kinds
        assert {"ConfigMap", "ServiceAccount", "Service", "PersistentVolumeClaim"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_match_vendored_schemas(overlay: str) -> None:
    errors = [e for doc in render(overlay) for e in schema_errors(doc)]
    assert not errors, "\n".join(errors)


def test_schema_check_can_fail() -> None:
    docs = render("dev")
    serve = find(docs, "Deployment", "probcast-serve")
    serve["spec"]["replica"] = 2  # a typo
    serve["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = [1]
    errors = schema_errors(serve)
    assert any("replica" in e for e in errors), errors
    assert any("resources.limits.cpu" in e for e in errors), errors
    job = find(docs, "ScaledJob", "probcast-cycle")
    job["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    job["spec"]["minReplicas"] = 0
    errors = schema_errors(job)
    assert any("jobTargetRef" in e and "imagePullPolicy" in e for e in errors), errors
    assert any("minReplicas" in e for e in errors), errors
    assert schema_errors({"apiVersion": "v9", "kind": "Gadget", "metadata": {"name": "x"}})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_non_root_everywhere(overlay: str) -> None:
    for doc in render(overlay):
        for where, pod, c in containers(doc):
            pod_sc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
            assert pod_sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, where
            assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            assert not sc.get("privileged"), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_requests_and_limits_on_every_container(overlay: str) -> None:
    n = 0
    for doc in render(overlay):
        for where, _, c in containers(doc):
            n += 1
            assert c.get("image"), f"{where}: no image"
            req, lim = c["resources"].get("requests", {}), c["resources"].get("limits", {})
            for key in ("cpu", "memory"):
                assert key in req and key in lim, f"{where}: {key} request and limit"
            for key in set(req) & set(lim):
                assert quantity(req[key]) <= quantity(lim[key]), f"{where}: {key} req > limit"
    assert n >= 5


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cost_labels_on_every_object_and_pod(overlay: str) -> None:
    env = "prod" if overlay.startswith("prod") else overlay
    for doc in render(overlay):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        labels = doc["metadata"].get("labels", {})
        assert all(labels.get(k) for k in COST_LABELS), f"{where}: labels {labels}"
        assert labels["environment"] == env, where
        for _, template in pod_templates(doc):
            pod_labels = template["metadata"]["labels"]
            assert all(pod_labels.get(k) for k in COST_LABELS), f"{where} pods: {pod_labels}"
            component = labels["app.kubernetes.io/component"]
            assert pod_labels["app.kubernetes.io/component"] == component, where


def _serve_routes() -> set[str]:
    """The GET routes of ``probcast serve``, read from its source (importing it is slow)."""
    source = (ROOT / "src" / "probcast" / "ops" / "serve.py").read_text()
    routes = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if (
                    isinstance(dec, ast.Call)
                    and isinstance(dec.func, ast.Attribute)
                    and dec.func.attr == "get"
                    and isinstance(dec.args[0], ast.Constant)
                ):
                    routes.add(str(dec.args[0].value))
    return routes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serve_probes_autoscaling_and_port(overlay: str) -> None:
    docs = render(overlay)
    serve = find(docs, "Deployment", "probcast-serve")
    (c,) = serve["spec"]["template"]["spec"]["containers"]
    routes = _serve_routes()
    assert "/health" in routes
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in c, probe
        path = c[probe].get("httpGet", {}).get("path")
        assert path is None or path in routes, f"{probe} {path} is not a GET route of serve"
    assert c["readinessProbe"]["httpGet"]["path"] in routes
    # audit: /health only reads the model's files; /ready answers 503 while the model cannot
    # be served (or the state store is down), so it decides whether a pod gets traffic;
    # liveness must not restart a pod for a model or database problem
    assert "/ready" in routes
    assert c["startupProbe"]["httpGet"]["path"] == "/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"].get("httpGet", {}).get("path") != "/ready"
    assert c["startupProbe"].get("timeoutSeconds", 1) >= 10  # the first call loads the model
    port = int(c["args"][c["args"].index("--port") + 1])
    assert c["ports"][0]["containerPort"] == port and c["args"][0] == "serve"
    assert c["args"][c["args"].index("--host") + 1] == "0.0.0.0"
    hpa = find(docs, "HorizontalPodAutoscaler", "probcast-serve")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "probcast-serve",
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    svc = find(docs, "Service", "probcast-serve")
    selector = svc["spec"]["selector"]
    pod_labels = serve["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cycle_scaledjob_scales_from_zero_on_the_broker(overlay: str) -> None:
    docs = render(overlay)
    job = find(docs, "ScaledJob", "probcast-cycle")
    spec = job["spec"]
    assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] >= 1
    (c,) = spec["jobTargetRef"]["template"]["spec"]["containers"]
    assert c["args"][0] == "consume" and "--max-messages" in c["args"]
    assert spec["jobTargetRef"]["template"]["spec"]["restartPolicy"] == "Never"
    broker = _ops(docs)["broker"]
    (trigger,) = spec["triggers"]
    if trigger["type"] == "redis-streams":
        assert broker["url"].startswith("redis://")
        assert trigger["metadata"]["stream"] == broker["stream"]
        assert trigger["metadata"]["consumerGroup"] == broker["group"]
        # the pods resolve `redis` in their namespace; KEDA's operator, in its own namespace,
        # needs the Service's full name (audit: a short name never scaled)
        name, port = broker["url"].split("://")[1].split("/")[0].split(":")
        namespace = job["metadata"]["namespace"]
        assert trigger["metadata"]["address"] == f"{name}.{namespace}.svc.cluster.local:{port}"
        service = find(docs, "Service", name)
        assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    else:
        assert trigger["type"] == "gcp-pubsub" and broker["url"].startswith("pubsub://")
        project = broker["url"].split("://")[1]
        sub = f"projects/{project}/subscriptions/{broker['group']}"
        assert trigger["metadata"]["subscriptionName"] == sub
        auth = trigger["authenticationRef"]["name"]
        assert find(docs, "TriggerAuthentication", auth)["spec"]["podIdentity"]["provider"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_schedule_cronjob_is_the_pipeline_schedule(overlay: str) -> None:
    docs = render(overlay)
    cron = find(docs, "CronJob", "probcast-schedule")["spec"]
    assert cron["schedule"] == _ops(docs)["schedule"]["cron"]
    assert cron["timeZone"] == "Etc/UTC" and cron["concurrencyPolicy"] == "Forbid"
    (c,) = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["args"][0] == "schedule" and "--once" in c["args"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pipeline_file_is_accepted_by_probcast(overlay: str, tmp_path: Path) -> None:
    from probcast.ops.broker import broker_config
    from probcast.ops.pipeline import load
    from probcast.ops.schedule import parse_schedule

    file = tmp_path / "ops.yaml"
    file.write_text(yaml.safe_dump(_ops(render(overlay))))
    pipe = load(file)
    assert str(pipe.model).startswith("/data/")
    broker_config(pipe)
    parse_schedule(pipe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_train_job_resumes_and_uses_the_gpu_where_there_is_one(overlay: str) -> None:
    docs = render(overlay)
    job = find(docs, "Job", "probcast-train")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    ignored = {"type": "DisruptionTarget", "status": "True"}
    assert {"action": "Ignore", "onPodConditions": [ignored]} in rules
    script = " ".join(c["args"])
    assert "probcast train" in script and '--workdir="/train/runs/$JOB_UID"' in script
    env = {e["name"]: e for e in c["env"]}
    assert "controller-uid" in env["JOB_UID"]["valueFrom"]["fieldRef"]["fieldPath"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert volumes[mounts["/train"]]["persistentVolumeClaim"]["claimName"] == "probcast-train"
    gpus = c["resources"]["limits"].get("nvidia.com/gpu")
    tolerations = {t["key"] for t in pod.get("tolerations", [])}
    if overlay == "dev":
        assert gpus is None and not tolerations
    else:
        assert gpus == "1" and "nvidia.com/gpu" in tolerations
        assert "cuda" in c["image"]
    if overlay == "prod-gcp":
        assert "cloud.google.com/gke-spot" in tolerations
        assert pod["nodeSelector"]["cloud.google.com/gke-spot"] == "true"


def _gpu_objects(docs: list[dict[str, Any]]) -> list[str]:
    """Objects a cluster without GPUs or ReadWriteMany storage cannot run."""
    out = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in doc["spec"]["accessModes"]:
            out.append(where)
        for _, _, c in containers(doc):
            resources = c.get("resources", {})
            if any("nvidia.com/gpu" in resources.get(k, {}) for k in ("requests", "limits")):
                out.append(where)
    return out


def test_dev_renders_nothing_kind_or_minikube_cannot_run() -> None:
    # audit: dev rendered the multi-host training: a 1 TiB ReadWriteMany claim, a GPU Job
    assert _gpu_objects(render("dev")) == []
    assert not [d for d in render("dev") if "train-distributed" in d["metadata"]["name"]]
    prod = render("prod-gcp")
    assert {"Job/probcast-train", "Job/probcast-train-distributed",
            "PersistentVolumeClaim/probcast-train-shared"} == set(_gpu_objects(prod))  # fmt: skip
    job = find(prod, "Job", "probcast-train-distributed")
    assert job["spec"]["suspend"] is True
    claim = find(prod, "PersistentVolumeClaim", "probcast-train-shared")
    assert claim["spec"]["storageClassName"] == "standard-rwx"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve(overlay: str) -> None:
    docs = render(overlay)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    external = EXTERNAL_SECRETS.get(overlay, set())
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert len(namespaces) == 1 and None not in namespaces
    for doc in docs:
        for where, template in pod_templates(doc):
            pod = template["spec"]
            if "serviceAccountName" in pod:  # else the namespace's default account
                assert ("ServiceAccount", pod["serviceAccountName"]) in names, where
            for v in pod.get("volumes", []):
                if "configMap" in v:
                    assert ("ConfigMap", v["configMap"]["name"]) in names, where
                if "persistentVolumeClaim" in v:
                    claim = v["persistentVolumeClaim"]["claimName"]
                    assert ("PersistentVolumeClaim", claim) in names, where
            for c in pod["containers"]:
                mounted = {m["name"] for m in c.get("volumeMounts", [])}
                assert mounted <= {v["name"] for v in pod.get("volumes", [])}, where
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        ok = ("Secret", ref["name"]) in names or ref["name"] in external
                        assert ok, f"{where}: Secret {ref['name']} is not defined"


def _option_strings(module: str, *sub: str) -> set[str]:
    """The options of a probcast command or subcommand (its ``--help``, run in-process)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        importlib.import_module(module).main([*sub, "--help"])  # argparse exits, train returns
    return {w.strip(",[]").split("=")[0] for w in out.getvalue().split() if w.startswith("--")}


def test_deployed_commands_and_options_exist() -> None:
    from probcast.cli import COMMANDS

    used: dict[tuple[str, ...], set[str]] = {}
    for overlay in OVERLAYS:
        for doc in render(overlay):
            for _, _, c in containers(doc):
                for call in probcast_calls(c):
                    # monitor has subcommands: checked with the subcommand's own --help
                    name = tuple(call[:2]) if call[0] == "monitor" else (call[0],)
                    options = {a.split("=")[0] for a in call if a.startswith("--")}
                    used.setdefault(name, set()).update(options)
    assert {("serve",), ("consume",), ("schedule",), ("train",)} <= used.keys()
    assert {("monitor", "skill"), ("monitor", "drift")} <= used.keys()
    for name, options in used.items():
        assert name[0] in COMMANDS, f"probcast {name[0]} is not a command"
        known = _option_strings(COMMANDS[name[0]][0], *name[1:])
        assert options <= known, f"probcast {' '.join(name)}: unknown options {options - known}"
