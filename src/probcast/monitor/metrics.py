"""Prometheus textfile of the monitor's results (for node_exporter's textfile collector).

Metric names (the alert rules are written on ``probcast_monitor_alert``: the monitor's own
decision, with its configured thresholds and minimum samples):

- ``probcast_monitor_alert{kind,variable}``: 1 while the alert holds, 0 when the check was
  made and is clear; **absent** when the check could not be made (too few values, no raw
  forecast, no EMOS reference). ``variable`` is the feature for ``drift_*``,
  ``nwp_variance`` and ``missing_feature``;
- ``probcast_drift_rows{feature}``: finite values of the feature (0: missing);
- ``probcast_drift_psi{feature}``, ``probcast_drift_ks{feature}``,
  ``probcast_drift_spread_ratio{feature}``: input drift of the pooled cycles given, only
  with ``min_rows`` values or more;
- ``probcast_skill_cases_rolling{variable}``: cases in the rolling window;
- ``probcast_skill_crps_rolling{variable,lead_group}`` (``lead_group="all"``: every lead);
- ``probcast_skill_crpss_rolling{variable,reference}`` (``reference`` ``raw`` or ``emos``),
  only with ``min_cases`` paired cases or more;
- ``probcast_pit_max_bin_deviation{variable}``, only with ``min_cases`` cases or more;
- ``probcast_nwp_bias_shift{variable}``: shift of the raw error in reference sds, only with
  ``min_cases`` errors in its window or more.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from probcast.monitor.drift import DriftResult
from probcast.monitor.rolling import SkillResult

DRIFT_KINDS = ("drift_psi", "drift_ks", "nwp_variance", "missing_feature")
SKILL_KINDS = ("crpss_raw", "crpss_emos", "pit", "nwp_bias")
ALERT_KINDS = (*DRIFT_KINDS, *SKILL_KINDS)
"""Every ``kind`` label of ``probcast_monitor_alert`` (each has an alert rule)."""
METRICS_SUFFIX = ".prom"


def check_metrics_path(path: str | Path) -> None:
    """Refuse a textfile name node-exporter would not read (as ``probcast run`` does).

    Raises:
        ValueError: ``path`` does not end with ``.prom``.
    """
    if Path(path).suffix != METRICS_SUFFIX:
        raise ValueError(
            f"--metrics must end with {METRICS_SUFFIX} (node-exporter's textfile collector "
            f"reads only those): {path}"
        )


def _set(gauge: Gauge, value: float, **labels: str) -> None:
    if math.isfinite(value):
        gauge.labels(**labels).set(value)


def drift_registry(result: DriftResult) -> CollectorRegistry:
    """A registry holding the drift metrics and alerts of ``result``."""
    reg = CollectorRegistry()
    psi = Gauge("probcast_drift_psi", "PSI of a feature vs training", ["feature"], registry=reg)
    ks = Gauge(
        "probcast_drift_ks", "KS distance of a feature vs training", ["feature"], registry=reg
    )
    spread = Gauge(
        "probcast_drift_spread_ratio",
        "interdecile range of a feature over the training one",
        ["feature"],
        registry=reg,
    )
    rows = Gauge(
        "probcast_drift_rows", "finite values of a feature in the input", ["feature"], registry=reg
    )
    alert = _alert_gauge(reg)
    for f in result.pooled:
        rows.labels(feature=f.feature).set(f.n)
        if "drift_psi" in f.checked:  # min_rows values: the statistics mean something
            _set(psi, f.psi, feature=f.feature)
            _set(ks, f.ks, feature=f.feature)
            _set(spread, f.spread_ratio, feature=f.feature)
        for kind in f.checked:
            alert.labels(kind=kind, variable=f.feature).set(1.0 if kind in f.alerts else 0.0)
    return reg


def _alert_gauge(reg: CollectorRegistry) -> Gauge:
    return Gauge(
        "probcast_monitor_alert",
        "1 while a monitor alert holds",
        ["kind", "variable"],
        registry=reg,
    )


def skill_registry(result: SkillResult) -> CollectorRegistry:
    """A registry holding the rolling skill metrics and alerts of ``result``."""
    reg = CollectorRegistry()
    crps = Gauge(
        "probcast_skill_crps_rolling",
        "rolling mean CRPS of the issued forecasts",
        ["variable", "lead_group"],
        registry=reg,
    )
    crpss = Gauge(
        "probcast_skill_crpss_rolling",
        "rolling CRPSS of the issued forecasts",
        ["variable", "reference"],
        registry=reg,
    )
    pit = Gauge(
        "probcast_pit_max_bin_deviation",
        "largest PIT bin frequency deviation from uniform (rolling)",
        ["variable"],
        registry=reg,
    )
    cases = Gauge(
        "probcast_skill_cases_rolling", "cases in the rolling window", ["variable"], registry=reg
    )
    shift = Gauge(
        "probcast_nwp_bias_shift",
        "shift of the mean raw error in reference error sds",
        ["variable"],
        registry=reg,
    )
    alert = _alert_gauge(reg)
    need = result.min_cases
    for g in result.groups:
        if g.station_group != "all":
            continue
        _set(crps, g.crps, variable=g.variable, lead_group=g.lead_group)
        if g.lead_group == "all":
            if g.n_raw >= need:
                _set(crpss, g.crpss_raw, variable=g.variable, reference="raw")
            if g.n_emos >= need:
                _set(crpss, g.crpss_emos, variable=g.variable, reference="emos")
            if g.n >= need:
                _set(pit, g.pit_max_dev, variable=g.variable)
            cases.labels(variable=g.variable).set(g.n)
    for b in result.bias:
        if b.n >= need:
            _set(shift, b.shift, variable=b.variable)
    fired = {(a["kind"], a["variable"]) for a in result.alerts}
    for c in result.checked:
        key = (c["kind"], c["variable"])
        alert.labels(kind=key[0], variable=key[1]).set(1.0 if key in fired else 0.0)
    return reg


PUSH_TIMEOUT = 10.0
"""Seconds a push to the Pushgateway may take."""
INSTANCE_ENV = "PROBCAST_METRICS_INSTANCE"
"""The Pushgateway ``instance`` when set (as for the cycle commands: ``probcast.ops``)."""


def push_instance() -> str:
    """The ``instance`` of the pushed group: ``$PROBCAST_METRICS_INSTANCE``, else the host name.

    The rule of ``probcast.ops.metrics_export``: a monitor run as a Kubernetes CronJob gets a
    new pod (host name) every day, and each would leave a group behind that the Pushgateway
    keeps forever (a past alert firing for good); a stable name replaces the last push.
    """
    import socket

    return os.environ.get(INSTANCE_ENV, "").strip() or socket.gethostname()


def push_metrics(registry: CollectorRegistry, url: str, job: str) -> None:
    """Push ``registry`` to the Pushgateway at ``url`` (replacing ``job``'s last push).

    The group is ``job`` and ``instance`` (:func:`push_instance`: ``$PROBCAST_METRICS_INSTANCE``,
    else the host), as ``probcast run --pushgateway`` pushes; a monitor run in a Kubernetes
    CronJob has no textfile collector to read it.

    Raises:
        OSError: The gateway refused or could not be reached (naming it).
    """
    from prometheus_client import push_to_gateway

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--pushgateway must be an http(s) URL like http://host:9091, got {url!r}")
    try:
        push_to_gateway(
            url,
            job=job,
            registry=registry,
            grouping_key={"instance": push_instance()},
            timeout=PUSH_TIMEOUT,
        )
    except Exception as err:  # urllib's errors; the alerts would not reach Prometheus
        raise OSError(f"push to the Pushgateway {url} failed: {err}") from None


def write_metrics(registry: CollectorRegistry, path: str | Path) -> Path:
    """Write ``registry`` as a Prometheus textfile (``write_to_textfile``: temp + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(p), registry)
    return p
