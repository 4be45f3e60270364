"""Regenerate the JSON schemas vendored in deploy/schemas/ (run by hand; needs no network).

The tests validate every rendered manifest offline against these files, so they hold only
the kinds probcast deploys, without descriptions:

- ``kubernetes-strict.json``: the Kubernetes definitions reachable from the kinds in
  ``KINDS``, pruned from the strict schemas (unknown fields refused) that the PyPI package
  ``kubernetes-validate`` ships (``pip install kubernetes-validate``).
- ``keda.json``: KEDA's ``ScaledJob`` and ``TriggerAuthentication`` CRD schemas from a
  checkout of github.com/kedacore/keda (``config/crd/bases``), made strict like the
  Kubernetes ones (``additionalProperties: false`` wherever the CRD lists the properties).
  ``spec.jobTargetRef`` of a ScaledJob is a ``batch/v1`` JobSpec: it is checked against the
  Kubernetes schema instead of KEDA's copy, which keeps this file small.

Usage::

    python deploy/schemas/vendor_schemas.py --kubernetes 1.33.0 --keda-repo ../keda
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KINDS = {
    "v1/ConfigMap": "io.k8s.api.core.v1.ConfigMap",
    "v1/Secret": "io.k8s.api.core.v1.Secret",
    "v1/Service": "io.k8s.api.core.v1.Service",
    "v1/ServiceAccount": "io.k8s.api.core.v1.ServiceAccount",
    "v1/PersistentVolumeClaim": "io.k8s.api.core.v1.PersistentVolumeClaim",
    "apps/v1/Deployment": "io.k8s.api.apps.v1.Deployment",
    "autoscaling/v2/HorizontalPodAutoscaler": "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    "policy/v1/PodDisruptionBudget": "io.k8s.api.policy.v1.PodDisruptionBudget",
    "batch/v1/Job": "io.k8s.api.batch.v1.Job",
    "batch/v1/CronJob": "io.k8s.api.batch.v1.CronJob",
    "networking.k8s.io/v1/NetworkPolicy": "io.k8s.api.networking.v1.NetworkPolicy",
}
JOB_SPEC = "io.k8s.api.batch.v1.JobSpec"
KEDA_CRDS = {
    "keda.sh/v1alpha1/ScaledJob": "keda.sh_scaledjobs.yaml",
    "keda.sh/v1alpha1/TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


def strip_descriptions(node: Any, in_properties: bool = False) -> Any:
    """``node`` without ``description`` texts (a property *named* description is kept)."""
    if isinstance(node, dict):
        return {
            k: strip_descriptions(v, in_properties=(k == "properties" and not in_properties))
            for k, v in node.items()
            if in_properties or not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        out = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            out |= _refs(value)
        return out
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def prune(defs: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    """The definitions reachable from ``roots``."""
    keep: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = defs[name]
        todo.extend(_refs(defs[name]) - keep.keys())
    return dict(sorted(keep.items()))


def kubernetes_schema(version: str) -> dict[str, Any]:
    """The pruned strict Kubernetes definitions of ``KINDS`` (and JobSpec) for ``version``."""
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    source = root / f"v{version}-local-strict" / "_definitions.json"
    defs = json.loads(source.read_text())["$defs"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-source": f"kubernetes-validate {kubernetes_validate.__version__}, {source.parent.name}",
        "x-kinds": KINDS,
        "x-jobspec": JOB_SPEC,
        "$defs": strip_descriptions(prune(defs, [*KINDS.values(), JOB_SPEC])),
    }


def make_strict(node: Any) -> Any:
    """Refuse unknown fields wherever a CRD schema lists the properties of an object."""
    if isinstance(node, dict):
        out = {k: make_strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [make_strict(v) for v in node]
    return node


def keda_schema(repo: Path) -> dict[str, Any]:
    """The strict, trimmed schemas of the KEDA CRDs in ``KEDA_CRDS``."""
    defs: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for kind, file in KEDA_CRDS.items():
        crd = yaml.safe_load((repo / "config" / "crd" / "bases" / file).read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == kind.split("/")[1])
        schema = version["schema"]["openAPIV3Schema"]
        if kind.endswith("ScaledJob"):
            # A batch/v1 JobSpec: checked against the Kubernetes schema (see the docstring).
            spec = schema["properties"]["spec"]["properties"]
            spec["jobTargetRef"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schema["properties"].pop("status", None)
        schema["properties"]["metadata"] = {"type": "object"}
        name = kind.replace("/", ".")
        defs[name] = make_strict(strip_descriptions(schema))
        kinds[kind] = name
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-source": "github.com/kedacore/keda config/crd/bases",
        "x-kinds": kinds,
        "$defs": defs,
    }


def main(argv: list[str]) -> int:
    """Write ``kubernetes-strict.json`` and ``keda.json`` next to this script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes", default="1.33.0", help="Kubernetes version of the schemas")
    parser.add_argument("--keda-repo", type=Path, help="a checkout of kedacore/keda at a tag")
    parser.add_argument("--keda-tag", default="", help="the tag checked out (recorded)")
    args = parser.parse_args(argv)
    out = kubernetes_schema(args.kubernetes)
    (HERE / "kubernetes-strict.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")
    if args.keda_repo:
        keda = keda_schema(args.keda_repo)
        if args.keda_tag:
            keda["x-source"] += f" at {args.keda_tag}"
        (HERE / "keda.json").write_text(json.dumps(keda, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
