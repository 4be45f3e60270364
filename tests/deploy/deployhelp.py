"""Helpers of the deployment tests: render the Kustomize overlays, validate them offline."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "kustomize" / "overlays").iterdir() if p.is_dir())
SCHEMAS = DEPLOY / "schemas"
COST_LABELS = ("app.kubernetes.io/part-of", "app.kubernetes.io/component", "environment",
               "team", "cost-center")  # fmt: skip
# Secrets created outside the manifests (docs/deployment.md), by overlay.
EXTERNAL_SECRETS = {"prod-gcp": {"probcast-state"}}


def kubectl() -> str:
    """The kubectl to render with (``PROBCAST_KUBECTL`` or the one on PATH); skips if none."""
    found = os.environ.get("PROBCAST_KUBECTL") or shutil.which("kubectl")
    if not found:
        pytest.skip("kubectl not installed (Debian package kubernetes-client): cannot render")
    return found


@functools.cache
def _render(binary: str, overlay: str) -> tuple[dict[str, Any], ...]:
    path = DEPLOY / "kustomize" / "overlays" / overlay
    proc = subprocess.run(
        [binary, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def render(overlay: str) -> list[dict[str, Any]]:
    """The objects of ``overlay`` as rendered by ``kubectl kustomize`` (deep copies)."""
    return json.loads(json.dumps(_render(kubectl(), overlay)))


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` named ``name`` (asserts it exists)."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, template)`` of every pod template in ``doc``."""
    spec = doc.get("spec", {})
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        yield where, spec["template"]
    elif doc["kind"] == "CronJob":
        yield where, spec["jobTemplate"]["spec"]["template"]
    elif doc["kind"] == "ScaledJob":
        yield where, spec["jobTargetRef"]["template"]


def containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(where, pod spec, container)`` of every container (init containers too) in ``doc``."""
    for where, template in pod_templates(doc):
        pod = template["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            yield f"{where}:{c.get('name')}", pod, c


@functools.cache
def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    import jsonschema

    validators: dict[str, Any] = {}
    job_spec = None
    for file in ("kubernetes-strict.json", "keda.json"):
        data = json.loads((SCHEMAS / file).read_text())
        for kind, name in data["x-kinds"].items():
            schema = {"$defs": data["$defs"], "$ref": f"#/$defs/{name}"}
            validators[kind] = jsonschema.Draft202012Validator(schema)
        if "x-jobspec" in data:
            ref = {"$defs": data["$defs"], "$ref": f"#/$defs/{data['x-jobspec']}"}
            job_spec = jsonschema.Draft202012Validator(ref)
    assert job_spec is not None
    return validators, {"JobSpec": job_spec}


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """What the vendored schemas find wrong with ``doc`` (``[]`` when it is valid)."""
    validators, extra = _schemas()
    kind = f"{doc.get('apiVersion')}/{doc.get('kind')}"
    where = f"{kind} {doc.get('metadata', {}).get('name')}"
    if kind not in validators:
        return [f"{where}: no vendored schema (add the kind to deploy/schemas/vendor_schemas.py)"]
    found = [(e.json_path, e.message) for e in validators[kind].iter_errors(doc)]
    if doc["kind"] == "ScaledJob":
        ref = doc["spec"]["jobTargetRef"]
        found += [(f"$.spec.jobTargetRef{e.json_path[1:]}", e.message)
                  for e in extra["JobSpec"].iter_errors(ref)]  # fmt: skip
    return [f"{where}: {path}: {message[:300]}" for path, message in found]


_UNITS = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2.0**10,
          "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}  # fmt: skip


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (``500m``, ``2Gi``, ``"1"``) as a number."""
    text = str(value)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)]) * _UNITS[suffix]
    return float(text)


def script(container: dict[str, Any]) -> str:
    """The shell script of a ``command: [/bin/sh, -ec]`` container (``""`` for any other)."""
    if container.get("command", [])[:1] != ["/bin/sh"]:
        return ""
    return str(container["args"][0])


def probcast_calls(container: dict[str, Any]) -> list[list[str]]:
    """The ``probcast`` command lines a container runs: its args, or those in its script.

    Lines of a script continued with a backslash are joined; shell variables stay as text.
    """
    if "probcast" not in container.get("image", ""):
        return []
    text = script(container)
    if not text:
        return [list(container["args"])] if not container.get("command") else []
    calls = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["exec"]:
            words = words[1:]
        if words[:1] == ["probcast"]:
            calls.append(words[1:])
    return calls
