"""deploy/monitoring: alert rules (promtool), PrometheusRule, Alertmanager, Grafana dashboard.

Every metric an alert or a panel queries must be one the code defines (parsed from the
``prometheus_client`` constructors under ``src/probcast``) or one ``probcast monitor``
emits (``probcast.ops.metrics.EXTERNAL``); every metric the code defines has a panel; every
alert has a promtool unit test and a runbook section. The promtool/amtool checks are skipped
only when the tools are absent (Debian: ``apt-get install prometheus prometheus-alertmanager``).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from probcast.ops import metrics

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "deploy" / "monitoring"
SRC = ROOT / "src" / "probcast"
RULES = yaml.safe_load((MON / "rules.yml").read_text())
DASHBOARD = json.loads((MON / "grafana" / "probcast.json").read_text())
BUILTIN = {"up"}
"""Series Prometheus makes itself."""
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "inf", "nan"}
SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


def defined_families(folder: Path = SRC) -> dict[str, tuple[str, ...]]:
    """Metric family -> its sample names, from the prometheus_client constructors in folder."""
    out: dict[str, tuple[str, ...]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if kind in SUFFIXES and isinstance(first, ast.Constant):
                name = str(first.value).removesuffix("_total")
                out[name] = tuple(name + s for s in SUFFIXES[kind])
    return out


FAMILIES = defined_families()
KNOWN = {s for samples in FAMILIES.values() for s in samples} | set(metrics.EXTERNAL) | BUILTIN


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        if match.group(2) is None and match.group(1) not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def alerts() -> list[dict]:
    return [r for g in RULES["groups"] for r in g["rules"] if "alert" in r]


def panel_exprs() -> list[tuple[str, str]]:
    return [
        (p["title"], t["expr"])
        for p in DASHBOARD["panels"]
        if p["type"] != "row"
        for t in p["targets"]
    ]


def test_metric_names_are_extracted_from_promql():
    expr = (
        'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{handler="/x", le=~"1|2"}[5m])))'
        " > 5 and on (job) b_total / ignoring (x) max without (y) (c:rule) or time() - d offset 1h"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c:rule", "d"}
    assert "probcast_cycles_total" in KNOWN and "probcast_model_info" in KNOWN
    assert "probcast_cycle_duration_seconds_bucket" in KNOWN and "probcast_nope" not in KNOWN


def test_alerts_reference_only_known_metrics():
    unknown = {r["alert"]: metric_names(r["expr"]) - KNOWN for r in alerts()}
    assert not {k: v for k, v in unknown.items() if v}, unknown
    assert len(alerts()) >= 10


def test_dashboard_panels_reference_only_known_metrics():
    unknown = {title: metric_names(expr) - KNOWN for title, expr in panel_exprs()}
    assert not {k: v for k, v in unknown.items() if v}, unknown


def test_every_metric_has_a_panel():
    used = set().union(*(metric_names(expr) for _, expr in panel_exprs()))
    ours = defined_families(SRC / "ops")
    assert len(ours) >= 15
    missing = [f for f, samples in ours.items() if not used & set(samples)]
    missing += [name for name in metrics.EXTERNAL if name not in used]
    assert not missing, f"metrics without a dashboard panel: {missing}"


def test_dashboard_structure():
    assert DASHBOARD["uid"] == "probcast-ops" and DASHBOARD["schemaVersion"] >= 36
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids, cells = set(), set()
    for panel in DASHBOARD["panels"]:
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_prometheusrule_wraps_the_rules_file():
    crd = yaml.safe_load((MON / "prometheusrule.yaml").read_text())
    assert crd["apiVersion"] == "monitoring.coreos.com/v1" and crd["kind"] == "PrometheusRule"
    assert crd["metadata"]["name"] == "probcast"
    assert crd["spec"]["groups"] == RULES["groups"], "prometheusrule.yaml differs from rules.yml"


def test_every_alert_is_tested_routed_and_in_the_runbook():
    tested = set()
    for path in (MON / "tests").glob("*.yml"):
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../rules.yml"], path
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    for rule in alerts():
        name = rule["alert"]
        assert name in tested, f"{name}: no promtool test where it fires"
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["labels"]["team"] == "probcast", name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbook.md#") and url.split("#")[1] in anchors, name


def test_alertmanager_routes_severities_to_pagerduty():
    config = yaml.safe_load((MON / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    routes = config["route"]["routes"]
    by_severity = {
        m.split("=")[1].strip('"'): r["receiver"]
        for r in routes
        for m in r["matchers"]
        if m.startswith("severity=")
    }
    assert set(by_severity) == {"critical", "warning"}
    assert config["route"]["receiver"] in receivers
    for name in [config["route"]["receiver"], *by_severity.values()]:
        pagerduty = receivers[name]["pagerduty_configs"][0]
        assert pagerduty["routing_key_file"].startswith("/etc/alertmanager/secrets/")
        assert "routing_key" not in pagerduty and "service_key" not in pagerduty  # no inline key
    assert by_severity["critical"] != by_severity["warning"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
        )
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_promtool_checks_rules_and_config():
    promtool = _tool("promtool")
    for args in (
        ["check", "rules", "deploy/monitoring/rules.yml"],
        ["check", "config", "deploy/monitoring/prometheus.yml"],
    ):
        done = _run([promtool, *args])
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass():
    promtool = _tool("promtool")
    files = sorted(str(p.relative_to(ROOT)) for p in (MON / "tests").glob("*.yml"))
    assert len(files) >= 4
    done = _run([promtool, "test", "rules", *files])
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_can_fail(tmp_path):
    promtool = _tool("promtool")
    rules = tmp_path / "rules.yml"
    broken = (MON / "rules.yml").read_text().replace("> 0.2\n", "> 0.9\n")  # fallback threshold
    rules.write_text(broken)
    (tmp_path / "tests").mkdir()
    case = tmp_path / "tests" / "cycles.yml"
    shutil.copy(MON / "tests" / "cycles.yml", case)
    done = subprocess.run(
        [promtool, "test", "rules", str(case)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "ProbcastFallbackRateHigh" in done.stdout + done.stderr


def test_amtool_checks_the_alertmanager_config():
    amtool = _tool("amtool")
    done = _run([amtool, "check-config", "deploy/monitoring/alertmanager.yml"])
    assert done.returncode == 0, done.stdout + done.stderr
    config = "--config.file=deploy/monitoring/alertmanager.yml"
    for severity, receiver in (("critical", "probcast-oncall"), ("warning", "probcast-tickets")):
        done = _run(
            [
                amtool,
                "config",
                "routes",
                "test",
                config,
                "team=probcast",
                f"severity={severity}",
                "alertname=ProbcastCycleLate",
            ]
        )
        assert done.returncode == 0 and done.stdout.strip() == receiver, done.stdout


def _alertmanager() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        pytest.skip("alertmanager not installed (Debian: apt-get install prometheus-alertmanager)")
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(url: str, body: object = None) -> object:
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read()
    return json.loads(text) if text.strip()[:1] in (b"[", b"{") else text


ALERTS = {
    # the audit's case: a serve alert (no pipeline) must not silence a model-monitor warning
    "ProbcastServeErrors": {"severity": "critical", "job": "probcast-serve"},
    "ProbcastSkillDecay": {"severity": "warning", "kind": "crpss_raw", "variable": "t2m"},
    # a critical alert of a pipeline still silences that pipeline's warnings, not another's
    "ProbcastCycleLate": {"severity": "critical", "pipeline": "stations"},
    "ProbcastInputStale": {"severity": "warning", "pipeline": "stations"},
    "ProbcastInputLate": {"severity": "warning", "pipeline": "grids"},
}
INHIBITED = {"ProbcastInputStale"}


def test_alertmanager_inhibits_only_within_a_pipeline(tmp_path):
    import time
    import urllib.error

    binary = _alertmanager()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--config.file={MON / 'alertmanager.yml'}",
         f"--storage.path={tmp_path}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _api(f"{url}/-/ready")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, "no alertmanager"
                time.sleep(0.1)
        alerts = [{"labels": {"alertname": name, "team": "probcast", **labels}}
                  for name, labels in ALERTS.items()]  # fmt: skip
        _api(f"{url}/api/v2/alerts", alerts)
        deadline = time.monotonic() + 20
        while True:  # the inhibitor sees new source alerts asynchronously
            got = _api(f"{url}/api/v2/alerts")
            assert isinstance(got, list)
            state = {a["labels"]["alertname"]: a["status"]["inhibitedBy"] for a in got}
            if set(state) == set(ALERTS) and {n for n, by in state.items() if by} >= INHIBITED:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        time.sleep(0.5)  # let any wrong inhibition show too
        got = _api(f"{url}/api/v2/alerts")
        assert isinstance(got, list)
        inhibited = {a["labels"]["alertname"] for a in got if a["status"]["inhibitedBy"]}
        assert inhibited == INHIBITED
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_servicemonitor_scrapes_serve_under_the_job_the_alerts_select():
    # audit: the serve alerts select job=~"probcast-serve.*", but nothing made Prometheus
    # scrape serve under such a job on Kubernetes
    from deployhelp import OVERLAYS, render

    monitor = yaml.safe_load((MON / "servicemonitor.yaml").read_text())
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor" and "namespace" not in monitor["metadata"]
    spec = monitor["spec"]
    assert "jobLabel" not in spec  # the job is the Service's name
    (endpoint,) = spec["endpoints"]
    match = re.search(r'up\{job=~"([^"]+)"\}', _serve_down_expr())
    assert match, "ProbcastServeDown no longer selects up{job=~...}"
    pattern = match.group(1)
    for overlay in OVERLAYS:
        wanted = spec["selector"]["matchLabels"].items()
        services = [d for d in render(overlay) if d["kind"] == "Service"]
        selected = [s for s in services if wanted <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in selected] == ["probcast-serve"], overlay
        (service,) = selected
        assert re.fullmatch(pattern, service["metadata"]["name"])
        assert endpoint["port"] in [p.get("name") for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"


def _serve_down_expr() -> str:
    (rule,) = [r for r in alerts() if r["alert"] == "ProbcastServeDown"]
    return str(rule["expr"])
