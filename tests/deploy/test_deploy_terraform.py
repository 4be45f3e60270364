"""Static checks of the GCP Terraform module (no terraform binary here: parsed with python-hcl2).

The module must parse, reference only declared variables/locals/resources, keep the pools
scalable to zero (the GPU one on spot VMs), give every bucket lifecycle rules, grant no broad
roles, and name what the prod-gcp overlay and its pipeline file use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployhelp import DEPLOY

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 (dev extra) parses the Terraform")
MODULE = DEPLOY / "terraform" / "gcp"
OVERLAY = DEPLOY / "kustomize" / "overlays" / "prod-gcp"


def _clean(node: Any) -> Any:
    """python-hcl2 output without its quoting and bookkeeping keys (v7 and v8 alike)."""
    if isinstance(node, dict):
        return {
            _clean(k): _clean(v)
            for k, v in node.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(node, list):
        return [_clean(v) for v in node]
    if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"':
        return node[1:-1]
    return node


def _module() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for file in sorted(MODULE.glob("*.tf")):
        with file.open() as fh:
            for key, value in _clean(hcl2.load(fh)).items():
                out.setdefault(key, []).extend(value)
    return out


def _resources(module: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for r in module["resource"] for name, body in r.get(kind, {}).items()}


def _text() -> str:
    return "\n".join(f.read_text() for f in sorted(MODULE.glob("*.tf")))


def test_parses_and_references_are_declared() -> None:
    module = _module()
    text = _text()
    variables = {name for v in module["variable"] for name in v}
    locals_ = {name for block in module["locals"] for name in block}
    declared = {(kind, name) for r in module["resource"] for kind, b in r.items() for name in b}
    declared |= {(f"data.{k}", n) for d in module.get("data", []) for k, b in d.items() for n in b}
    used_vars = set(re.findall(r"\bvar\.([a-z_0-9]+)", text))
    assert used_vars <= variables, f"undeclared variables: {used_vars - variables}"
    assert variables <= used_vars, f"unused variables: {variables - used_vars}"
    used_locals = set(re.findall(r"\blocal\.([a-z_0-9]+)", text))
    assert used_locals <= locals_, f"undeclared locals: {used_locals - locals_}"
    refs = set(re.findall(r"\b((?:data\.)?google_[a-z_0-9]+|random_[a-z_]+)\.([a-z_0-9]+)\.", text))
    assert refs <= declared, f"references to undeclared resources: {refs - declared}"
    for v in module["variable"]:
        for name, body in v.items():
            assert body.get("description") and body.get("type"), f"variable {name}"


def pool_problems(pools: dict[str, dict[str, Any]]) -> list[str]:
    """What breaks the node-pool rules: both pools down to 0, the GPU pool on tainted spot VMs."""
    out = []
    if set(pools) != {"cpu", "gpu_spot"}:
        out.append(f"pools {sorted(pools)}, expected cpu and gpu_spot")
    for name, pool in pools.items():
        if pool["autoscaling"][0].get("min_node_count") != 0:
            out.append(f"{name}: min_node_count is not 0")
        config = pool["node_config"][0]
        if config.get("workload_metadata_config", [{}])[0].get("mode") != "GKE_METADATA":
            out.append(f"{name}: no Workload Identity metadata server")
        if config.get("resource_labels") != "${local.labels}":
            out.append(f"{name}: no cost labels")
    gpu = pools.get("gpu_spot", {}).get("node_config", [{}])[0]
    if gpu.get("spot") is not True or not gpu.get("guest_accelerator"):
        out.append("gpu_spot: not spot VMs with an accelerator")
    taints = {(t["key"], t["effect"]) for t in gpu.get("taint", [])}
    if ("cloud.google.com/gke-spot", "NO_SCHEDULE") not in taints:
        out.append("gpu_spot: no spot taint")
    return out


def test_node_pools_scale_to_zero_and_gpu_pool_is_spot() -> None:
    pools = _resources(_module(), "google_container_node_pool")
    assert pool_problems(pools) == []
    assert not pools["cpu"]["node_config"][0].get("spot")


def test_cluster_has_workload_identity_gcs_fuse_and_cost_allocation() -> None:
    (cluster,) = _resources(_module(), "google_container_cluster").values()
    assert (
        cluster["workload_identity_config"][0]["workload_pool"] == "${var.project_id}.svc.id.goog"
    )
    assert cluster["addons_config"][0]["gcs_fuse_csi_driver_config"][0]["enabled"] is True
    assert cluster["cost_management_config"][0]["enabled"] is True
    assert cluster["remove_default_node_pool"] is True


def test_buckets_have_lifecycle_rules_and_no_public_access() -> None:
    buckets = _resources(_module(), "google_storage_bucket")
    assert set(buckets) == {"data", "products"}
    for name, bucket in buckets.items():
        rules = bucket["lifecycle_rule"]
        assert any(r["action"][0]["type"] == "Delete" for r in rules), name
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["soft_delete_policy"][0]["retention_duration_seconds"], name
        assert not bucket.get("retention_policy"), f"{name}: a republish overwrites its keys"
    prefixes = {
        p
        for r in buckets["data"]["lifecycle_rule"]
        for p in r["condition"][0].get("matches_prefix", [])
    }
    assert {"inputs/", "work/"} <= prefixes


def test_pubsub_dead_letter_and_names_match_the_pipeline_file() -> None:
    module = _module()
    topics = _resources(module, "google_pubsub_topic")
    subs = _resources(module, "google_pubsub_subscription")
    broker = yaml.safe_load((OVERLAY / "ops.yaml").read_text())["broker"]
    assert topics["cycles"]["name"] == broker["stream"]
    assert topics["dead_letter"]["name"] == broker["dead_letter"]
    assert subs["cycles"]["name"] == broker["group"]
    (policy,) = subs["cycles"]["dead_letter_policy"]
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert policy["max_delivery_attempts"] >= broker["max_tries"]
    assert broker["url"] == "pubsub://PROJECT_ID"


def test_least_privilege() -> None:
    module = _module()
    broad = re.compile(
        r"roles/(owner|editor|viewer|.*\.admin|iam\.serviceAccount(User|TokenCreator))$"
    )
    kinds = ["google_project_iam_member", "google_storage_bucket_iam_member"]
    kinds += ["google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member"]
    for kind in kinds:
        for name, body in _resources(module, kind).items():
            roles = [body["role"]] if "${" not in body["role"] else []
            assert not any(broad.match(r) for r in roles), f"{kind}.{name}: {roles}"
    project_roles = _resources(module, "google_project_iam_member")
    runtime = [b["role"] for b in project_roles.values() if "runtime" in b["member"]]
    assert runtime == ["roles/cloudsql.client"]
    assert not _resources(module, "google_project_iam_binding"), "bindings replace other members"
    assert "google_service_account_key" not in _text(), "no key files: Workload Identity"


def test_names_match_the_prod_overlay() -> None:
    module = _module()
    text = "\n".join(p.read_text() for p in OVERLAY.rglob("*.yaml"))
    buckets = _resources(module, "google_storage_bucket")
    for bucket in buckets.values():
        assert bucket["name"].replace("${var.project_id}", "PROJECT_ID") in text
    accounts = _resources(module, "google_service_account")
    assert f"{accounts['runtime']['account_id']}@PROJECT_ID.iam.gserviceaccount.com" in text
    variables = {name: body for v in module["variable"] for name, body in v.items()}
    namespace = variables["namespace"]["default"]
    assert re.search(
        rf"^namespace: {namespace}$", (OVERLAY / "kustomization.yaml").read_text(), re.M
    )
    (wi,) = [b for b in _resources(module, "google_service_account_iam_member").values()
             if "runtime" in b["service_account_id"]]  # fmt: skip
    assert wi["member"] == "${local.ksa}"
    assert "[${var.namespace}/probcast]" in _text()
    (repo,) = _resources(module, "google_artifact_registry_repository").values()
    region = variables["region"]["default"]
    assert f"{region}-docker.pkg.dev/PROJECT_ID/{repo['repository_id']}/probcast" in text
    labels = module["locals"][0]["labels"]
    overlay_labels = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["commonLabels"]
    for key in ("environment", "team", "cost-center"):
        assert key in labels and key in overlay_labels
    assert overlay_labels["team"] == labels["team"]


BAD_POOL = """
resource "google_container_node_pool" "gpu_spot" {
  autoscaling {
    min_node_count = 1
  }
  node_config {
    spot = false
  }
}
"""


def test_checker_can_fail(tmp_path: Path) -> None:
    (tmp_path / "bad.tf").write_text(BAD_POOL)
    with (tmp_path / "bad.tf").open() as fh:
        pools = _clean(hcl2.load(fh))["resource"][0]["google_container_node_pool"]
    problems = pool_problems(pools)
    assert "gpu_spot: min_node_count is not 0" in problems
    assert "gpu_spot: not spot VMs with an accelerator" in problems
    assert "gpu_spot: no spot taint" in problems


def test_filestore_driver_for_the_readwritemany_claims() -> None:
    # audit: the multi-host training's claim asks for storageClassName standard-rwx, which
    # only the GKE Filestore CSI driver provides (and it needs the Filestore API)
    module = _module()
    (cluster,) = _resources(module, "google_container_cluster").values()
    addons = cluster["addons_config"][0]
    assert addons["gcp_filestore_csi_driver_config"][0]["enabled"] is True
    (apis,) = _resources(module, "google_project_service").values()
    assert "file.googleapis.com" in apis["for_each"]
    overlay = "\n".join(p.read_text() for p in (OVERLAY / "patches").glob("*.yaml"))
    assert "standard-rwx" in overlay  # what the driver is for
