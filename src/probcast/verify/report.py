"""Self-contained HTML verification report.

One file, no external resources (no CDN, scripts or fonts): figures are PNG embedded as
base64 ``data:`` URIs, styles are inline. It opens offline and can be mailed or archived
as it is. Written atomically (temporary name, then rename).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd

from probcast import io
from probcast.verify import notes, plots

SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n", "cases"),
    ("n_dropped", "dropped"),
    ("crps", "CRPS"),
    ("crps_fair", "fair CRPS"),
    ("crpss", "CRPSS [95% CI]"),
    ("mae", "MAE (median)"),
    ("rmse", "RMSE (mean)"),
    ("spread_skill", "spread/skill"),
    ("pit_max_dev", "PIT max dev"),
    ("pit_noise", "PIT noise"),
    ("pit_ri", "PIT RI"),
    ("coverage_80", "80% cover"),
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td.l,th.l{text-align:left}
img{max-width:100%;height:auto;margin:0.4em 0.6em 0.4em 0;border:1px solid #eee;
vertical-align:top}
p{overflow-wrap:anywhere}
.meta{color:#555;font-size:0.85em}
"""


def _fmt(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if abs(v) >= 1000 and float(v).is_integer():
        return f"{int(v):d}"
    return f"{v:.{digits}g}"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def summary_table(scores: pd.DataFrame) -> str:
    """HTML table of the overall scores per method and variable."""
    s = scores[scores["by"] == "all"]
    if s.empty:
        return "<p>No scores.</p>"
    wide = s.pivot_table(
        index=["variable", "method"], columns="metric", values="value", sort=False, dropna=False
    )
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in SUMMARY_COLUMNS)
    rows = []
    for idx, row in wide.iterrows():
        var, method = cast(tuple[str, str], idx)
        cells = []
        for metric, _ in SUMMARY_COLUMNS:
            v = row.get(metric, float("nan"))
            count = metric in ("n", "n_dropped") and math.isfinite(v)
            text = f"{int(v):d}" if count else _fmt(v)
            if metric == "crpss" and math.isfinite(v):
                lo, hi = row.get("crpss_lo", math.nan), row.get("crpss_hi", math.nan)
                text += f" [{_fmt(lo, 3)}, {_fmt(hi, 3)}]"
                n_ss, n = row.get("crpss_n", math.nan), row.get("n", math.nan)
                if math.isfinite(n_ss) and n_ss != n:
                    text += f" on {int(n_ss):d} cases"
            cells.append(f"<td>{text}</td>")
        rows.append(
            f'<tr><td class="l">{html.escape(str(var))}</td>'
            f'<td class="l">{html.escape(str(method))}</td>{"".join(cells)}</tr>'
        )
    return (
        '<div style="overflow-x:auto"><table><tr><th class="l">variable</th>'
        f'<th class="l">method</th>{head}</tr>' + "".join(rows) + "</table></div>"
    )


MULTIVARIATE_COLUMNS = (
    ("vectors_lead_time", "vectors (leads)"),
    ("dim_lead_time", "leads"),
    ("energy_lead_time", "energy (leads)"),
    ("variogram_lead_time", "variogram (leads)"),
    ("crps_lead_sum", "CRPS of lead sum"),
    ("pit_corr_lead_time", "PIT corr (leads)"),
    ("vectors_station", "vectors (stations)"),
    ("dim_station", "stations"),
    ("energy_station", "energy (stations)"),
    ("variogram_station", "variogram (stations)"),
    ("pit_corr_station", "PIT corr (stations)"),
)
"""Multivariate scores of members (:mod:`probcast.verify.multivariate`) and their labels."""


def multivariate_table(scores: pd.DataFrame) -> str:
    """HTML table of the multivariate scores per variable and method ("" when none)."""
    names = [m for m, _ in MULTIVARIATE_COLUMNS]
    s = scores[(scores["by"] == "all") & scores["metric"].isin(names)]
    if s.empty:
        return ""
    wide = s.pivot_table(index=["variable", "method"], columns="metric", values="value", sort=False)
    cols = [(m, label) for m, label in MULTIVARIATE_COLUMNS if m in wide.columns]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    rows = []
    for idx, row in wide.iterrows():
        var, method = cast(tuple[str, str], idx)
        cells = "".join(f"<td>{_fmt(row.get(m, math.nan))}</td>" for m, _ in cols)
        rows.append(
            f'<tr><td class="l">{html.escape(str(var))}</td>'
            f'<td class="l">{html.escape(str(method))}</td>{cells}</tr>'
        )
    return (
        '<h2>Members as scenarios</h2><p class="meta">Energy and variogram (p = 0.5) scores of '
        "the members as vectors over lead times (per station and run) and over stations (per "
        "run and lead time), and the CRPS of the members' sum over lead times: lower is "
        "better; only forecasts with members, all scored on the cases they share (vectors: "
        "how many were scored; leads, stations: their components). PIT corr: mean rank "
        "correlation of the "
        "observations' PIT between two components, the dependence that coherent members can "
        "restore (near 0: none).</p>"
        '<div style="overflow-x:auto"><table><tr><th class="l">variable</th>'
        f'<th class="l">method</th>{head}</tr>' + "".join(rows) + "</table></div>"
    )


def _meta_block(ver: Any) -> str:
    m = ver.meta
    forms = "; ".join(
        f"{html.escape(name)}: "
        + ", ".join(f"{html.escape(v)} ({html.escape(str(d['kind']))})" for v, d in fv.items())
        for name, fv in m.get("forms", {}).items()
    )
    matching = "; ".join(
        f"{html.escape(n)}: {c['cases']} cases, {c['forecast_rows_without_truth']} forecast "
        f"rows without truth, {c.get('truth_rows_without_forecast', 0)} truth rows without "
        "forecast"
        for n, c in m.get("matching", {}).items()
    )
    cases = "".join(f"<li>{html.escape(line)}</li>" for line in notes.coverage_lines(ver))
    warn = "".join(
        f'<li style="color:#a40">{html.escape(line)}</li>' for line in notes.warnings_lines(ver)
    )
    ref = html.escape(str(m.get("reference")))
    return (
        f'<p class="meta">Reference: <b>{ref}</b>. Forms: {forms}. Matching: {matching}. '
        f"Groupings: {html.escape(', '.join(m.get('by', [])))}. CRPSS intervals: "
        f"{m.get('n_boot')} bootstrap replicates of whole init dates. Seed {m.get('seed')}. "
        f"NaN cases {'dropped' if m.get('skipna', True) else 'propagated'}.</p>"
        + (f'<ul class="meta">{cases}{warn}</ul>' if cases or warn else "")
    )


def _variable_section(ver: Any, variable: str) -> str:
    figs: list[tuple[Callable[..., bytes | None], tuple[Any, ...], str]] = [
        (plots.crps_by_lead, (ver, variable), "CRPS by lead time"),
        (plots.pit_histograms, (ver, variable), "PIT histograms"),
        (plots.spread_skill, (ver, variable), "spread-skill"),
    ]
    figs.append((plots.reliability, (ver, variable), "reliability diagrams"))
    figs.append((plots.station_map, (ver, variable), "CRPSS map"))
    imgs = "".join(_img(fn(*args), f"{variable}: {alt}") for fn, args, alt in figs)
    return f"<h2>{html.escape(variable)}</h2>\n{imgs}"


def render(ver: Any, *, title: str = "probcast verification", training: str = "") -> str:
    """The report of a :class:`~probcast.verify.evaluate.Verification` as an HTML string.

    ``training``: the model's training section (:func:`probcast.verify.curves.section`),
    shown after the summary.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(_variable_section(ver, v) for v in ver.meta.get("variables", []))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1><p class="meta">Generated {stamp}.</p>\n'
        f"<h2>Summary</h2>{summary_table(ver.scores)}{_meta_block(ver)}\n"
        f"{multivariate_table(ver.scores)}{training}{sections}\n"
        "</body></html>\n"
    )


def write_report(
    ver: Any, path: str | Path, *, title: str = "probcast verification", training: str = ""
) -> Path:
    """Render the report and write it atomically to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    io.write_text(p, render(ver, title=title, training=training))
    return p


def _grid_block(ver: Any) -> str:
    m = ver.meta
    grid = " x ".join(f"{n} {d}" for d, n in m.get("grid", {}).items())
    runs = ", ".join(f"{v}: {n}" for v, n in m.get("runs", {}).items())
    leads = ", ".join(
        f"{v}: {', '.join(f'{h:g}' for h in hs)} h" for v, hs in m.get("lead_times", {}).items()
    )
    return (
        f'<p class="meta">Grid: {html.escape(grid)}. Runs scored: {html.escape(runs)}. Lead '
        f"times: {html.escape(leads)}. Scores are domain means over every grid point, run and "
        "lead time; the maps average over runs and lead times at each grid point.</p>"
    )


def _grid_variable_section(ver: Any, maps: Any, variable: str) -> str:
    ref = ver.meta.get("reference")
    imgs = "".join(
        _img(plots.grid_map(maps, variable, metric, reference=ref), f"{variable}: {alt}")
        for metric, alt in (("crps", "map of mean CRPS"), ("crpss", "map of CRPSS"))
    )
    return f"{_variable_section(ver, variable)}\n<h3>{html.escape(variable)}: maps</h3>\n{imgs}"


def render_gridded(
    ver: Any, maps: Any, *, title: str = "probcast gridded verification", training: str = ""
) -> str:
    """The report of a gridded verification (:mod:`probcast.verify.gridded`) as HTML.

    As :func:`render` (``training``: the model's training section, after the summary),
    with the grid described and, per variable, maps of the mean CRPS and of the CRPSS
    against the reference at every grid point.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(
        _grid_variable_section(ver, maps, v) for v in ver.meta.get("variables", [])
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1><p class="meta">Generated {stamp}.</p>\n'
        f"<h2>Summary</h2>{summary_table(ver.scores)}{_meta_block(ver)}{_grid_block(ver)}\n"
        f"{training}{sections}\n</body></html>\n"
    )


def write_gridded_report(
    ver: Any,
    maps: Any,
    path: str | Path,
    *,
    title: str = "probcast gridded verification",
    training: str = "",
) -> Path:
    """Render the gridded report and write it atomically to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    io.write_text(p, render_gridded(ver, maps, title=title, training=training))
    return p
