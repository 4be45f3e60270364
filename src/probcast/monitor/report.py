"""The monitor's reports: JSON (everything) and Markdown (for people), written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from probcast import io
from probcast.monitor.drift import DriftResult
from probcast.monitor.rolling import SkillResult

NWP_NOTE = "possible NWP model change"


def _f(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _alert_lines(alerts: list[dict[str, Any]]) -> list[str]:
    if not alerts:
        return ["No alerts.", ""]
    lines = ["| alert | variable / feature | value | threshold | note |", "|---|---|---|---|---|"]
    for a in alerts:
        note = NWP_NOTE if str(a["kind"]).startswith("nwp_") else ""
        lines.append(
            f"| {a['kind']} | {a['variable']} | {_f(a['value'])} | {_f(a['threshold'])} | {note} |"
        )
    return [*lines, ""]


def _skipped_lines(skipped: list[dict[str, str]]) -> list[str]:
    if not skipped:
        return []
    lines = ["## Checks not evaluated", "", "| check | variable | why |", "|---|---|---|"]
    lines += [f"| {s['kind']} | {s['variable']} | {s['reason']} |" for s in skipped]
    return [*lines, ""]


def drift_markdown(result: DriftResult, title: str = "probcast input drift") -> str:
    """The Markdown drift report."""
    alerts = []
    for f in result.pooled:
        for kind in f.alerts:
            value = {"drift_psi": f.psi, "drift_ks": f.ks, "nwp_variance": f.spread_ratio}.get(
                kind, math.nan
            )
            alerts.append(
                {"kind": kind, "variable": f.feature, "value": value, "threshold": math.nan}
            )
    lines = [f"# {title}", "", f"{result.rows} input rows, {len(result.cycles)} cycle(s).", ""]
    lines += ["## Alerts", "", *_alert_lines(alerts)]
    lines += [
        "## Features (pooled)",
        "",
        "| feature | n | PSI | KS | spread ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.feature} | {f.n} | {_f(f.psi)} | {_f(f.ks)} | {_f(f.spread_ratio, 2)} |"
        for f in result.pooled
    ]
    if result.missing:
        lines += [
            "",
            "Reference features missing from the input (absent or no finite value): "
            f"{', '.join(result.missing)}.",
        ]
    if len(result.cycles) > 1:
        lines += ["", "## Per cycle (PSI / KS)", ""]
        feats = [f.feature for f in result.pooled]
        lines += ["| cycle | " + " | ".join(feats) + " |", "|---" * (len(feats) + 1) + "|"]
        for cyc, fs in result.cycles.items():
            lines.append(
                f"| {cyc} | " + " | ".join(f"{_f(f.psi, 2)} / {_f(f.ks, 2)}" for f in fs) + " |"
            )
    return "\n".join(lines) + "\n"


def skill_markdown(
    result: SkillResult, counts: dict[str, int], title: str = "probcast skill"
) -> str:
    """The Markdown skill report."""
    lines = [
        f"# {title}",
        "",
        f"Rolling window: issues after {result.window_start or '-'} up to "
        f"{result.window_end or '-'}. "
        f"This run: {counts.get('files', 0)} forecast file(s) read, {counts.get('skipped', 0)} "
        f"complete ones skipped, {counts.get('scored', 0)} case(s) scored, "
        f"{counts.get('pending', 0)} waiting for observations, "
        f"{counts.get('unobserved', 0)} given up (never observed).",
        "",
        "## Alerts",
        "",
        *_alert_lines(result.alerts),
        *_skipped_lines(result.not_evaluated),
        "## Rolling skill",
        "",
        "| variable | lead group | station group | n | CRPS | CRPS raw | CRPS EMOS "
        "| CRPSS raw | CRPSS EMOS | PIT max dev |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in result.groups:
        lines.append(
            f"| {g.variable} | {g.lead_group} | {g.station_group} | {g.n} | {_f(g.crps)} | "
            f"{_f(g.crps_raw)} | {_f(g.crps_emos)} | {_f(g.crpss_raw)} | {_f(g.crpss_emos)} | "
            f"{_f(g.pit_max_dev)} |"
        )
    if result.bias:
        lines += ["", f"## Raw error bias ({NWP_NOTE} check)", ""]
        lines += [
            "| variable | n | mean fc-obs | reference | shift (sd) | reference from |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {b.variable} | {b.n} | {_f(b.mean_error)} | {_f(b.reference_mean)} ± "
            f"{_f(b.reference_sd)} | {_f(b.shift, 2)} | {b.reference} |"
            for b in result.bias
        ]
    return "\n".join(lines) + "\n"


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_reports(
    data: dict[str, Any], markdown: str, json_path: str | Path | None, md_path: str | Path | None
) -> list[Path]:
    """Write the JSON and/or Markdown report (atomically); returns the paths written."""
    out = []
    if json_path:
        out.append(io.write_json(Path(json_path), json_safe(data)))
    if md_path:
        out.append(io.write_text(Path(md_path), markdown))
    return out
