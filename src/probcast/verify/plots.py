"""Verification figures as PNG bytes.

Figures are built as ``matplotlib.figure.Figure`` objects without pyplot, so rendering
needs no display, never changes the process's matplotlib backend and leaks no figures.

Each function takes a :class:`~probcast.verify.evaluate.Verification` and one variable and
returns PNG bytes, or None when there is nothing to draw.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 90
MIN_WIDTH_IN = 4.8
"""Narrowest figure (inches): at DPI 90 every figure is at least 432 px wide."""
MAX_RELIABILITY_COLUMNS = 3
MAX_PANEL_COLUMNS = 4
"""Panels per row (reliability diagrams, PIT histograms, station maps); more wrap."""


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _subplots(
    nrows: int, ncols: int, figsize: tuple[float, float], **kw: Any
) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def _grid(n: int, max_columns: int) -> tuple[int, int]:
    """``(columns, rows)`` of ``n`` panels with at most ``max_columns`` per row."""
    ncols = max(1, min(n, max_columns))
    return ncols, -(-n // ncols)


def colours(ver: Any) -> dict[str, str]:
    """A fixed colour per method (in the order of the forecasts), shared by all figures."""
    names = list(ver.meta.get("forms", {})) or sorted(set(ver.scores["method"]))
    return {m: f"C{i % 10}" for i, m in enumerate(names)}


def _by_lead(scores: pd.DataFrame, variable: str, metric: str) -> pd.DataFrame:
    """``lead_time`` x method table of one metric (empty without a lead-time grouping)."""
    s = scores[
        (scores["variable"] == variable)
        & (scores["by"] == "lead_time")
        & (scores["metric"] == metric)
    ]
    if s.empty:
        return pd.DataFrame()
    t = s.assign(lead=s["key"].astype(float)).pivot_table(
        index="lead", columns="method", values="value", sort=True
    )
    return t


def _interval(
    scores: pd.DataFrame, variable: str, metric: str, like: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``metric``'s ``_lo`` and ``_hi`` by lead time, on the leads and methods of ``like``.

    Leads where some interval could not be computed are NaN, never a shorter axis.
    """
    lo, hi = (
        _by_lead(scores, variable, f"{metric}_{end}").reindex(
            index=like.index, columns=like.columns
        )
        for end in ("lo", "hi")
    )
    return lo, hi


def crps_by_lead(ver: Any, variable: str) -> bytes | None:
    """CRPS against lead time, one line per method; CRPSS with its interval beside it."""
    crps = _by_lead(ver.scores, variable, "crps")
    if crps.empty:
        return None
    skill = _by_lead(ver.scores, variable, "crpss")
    ncol = 2 if not skill.empty else 1
    fig, axes = _subplots(1, ncol, (5.2 * ncol, 3.6), squeeze=False)
    ax = axes[0, 0]
    col = colours(ver)
    for method in crps.columns:
        ax.plot(crps.index, crps[method], marker="o", label=method, color=col.get(method))
    ax.set(xlabel="lead time (h)", ylabel="CRPS", title=f"{variable}: CRPS by lead time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if ncol == 2:
        lo, hi = _interval(ver.scores, variable, "crpss", skill)
        ax = axes[0, 1]
        for method in skill.columns:
            c = col.get(method)
            ax.plot(skill.index, skill[method], marker="o", label=method, color=c)
            ax.fill_between(skill.index, lo[method], hi[method], alpha=0.2, color=c)
        ax.axhline(0, color="k", lw=0.8)
        ref = ver.meta.get("reference")
        ax.set(xlabel="lead time (h)", ylabel="CRPSS", title=f"CRPSS vs {ref} (95% CI)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _png(fig)


def reliability(ver: Any, variable: str) -> bytes | None:
    """Reliability diagrams of ``Y > t``, one column per threshold, counts below each."""
    thresholds = [f"{t:g}" for t in ver.meta.get("thresholds", {}).get(variable, [])]
    panels = []
    for thr in thresholds:
        tables = {
            m: d[variable]["reliability"].get(thr)
            for m, d in ver.diagnostics.items()
            if variable in d
        }
        tables = {m: t for m, t in tables.items() if t is not None and sum(t["count"]) > 0}
        if tables:
            panels.append((thr, tables))
    if not panels:
        return None
    ncols, nrows = _grid(len(panels), MAX_RELIABILITY_COLUMNS)
    fig, axes = _subplots(
        2 * nrows,
        ncols,
        (max(4.2 * ncols, MIN_WIDTH_IN), 5.0 * nrows),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1] * nrows},
    )
    col = colours(ver)
    for j, (thr, tables) in enumerate(panels):
        row, c = divmod(j, ncols)
        ax, axn = axes[2 * row, c], axes[2 * row + 1, c]
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
        for m, t in tables.items():
            ax.plot(t["forecast"], t["observed"], marker="o", label=m, color=col.get(m))
            centres = (np.asarray(t["bin_lower"]) + np.asarray(t["bin_upper"])) / 2
            axn.plot(centres, np.maximum(t["count"], 1), marker=".", color=col.get(m))
        ax.set(title=f"{variable} > {thr}", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        axn.set(xlabel="forecast probability", yscale="log")
        axn.tick_params(labelbottom=True)
        axn.grid(alpha=0.3)
        if c == 0:
            ax.set_ylabel("observed frequency")
            axn.set_ylabel("cases")
    for j in range(len(panels), nrows * ncols):  # empty cells of the last row
        row, c = divmod(j, ncols)
        axes[2 * row, c].set_axis_off()
        axes[2 * row + 1, c].set_axis_off()
    axes[0, 0].legend(fontsize=8)
    return _png(fig)


def pit_histograms(ver: Any, variable: str) -> bytes | None:
    """PIT histograms (density, 1 = flat), one panel per method with a distribution."""
    hists = {
        m: np.asarray(d[variable]["pit_hist"], dtype=float)
        for m, d in ver.diagnostics.items()
        if variable in d and sum(d[variable]["pit_hist"]) > 0
    }
    if not hists:
        return None
    ncols, nrows = _grid(len(hists), MAX_PANEL_COLUMNS)
    size = (max(3.0 * ncols, MIN_WIDTH_IN), 2.8 * nrows)
    fig, axes = _subplots(nrows, ncols, size, squeeze=False, sharey=True)
    flat = axes.ravel()
    for ax, (m, h) in zip(flat, hists.items(), strict=False):
        k = h.size
        x = (np.arange(k) + 0.5) / k
        ax.bar(x, h / h.sum() * k, width=1 / k, edgecolor="white", color=colours(ver).get(m))
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set(title=m, xlabel="PIT", xlim=(0, 1))
    for ax in flat[len(hists) :]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    fig.suptitle(f"{variable}: PIT histograms")
    return _png(fig)


def spread_skill(ver: Any, variable: str) -> bytes | None:
    """Spread-skill ratio against lead time (1 = calibrated spread), with its 95 % interval."""
    ratio = _by_lead(ver.scores, variable, "spread_skill").dropna(axis=1, how="all")
    if ratio.empty:
        return None
    lo, hi = _interval(ver.scores, variable, "spread_skill", ratio)
    fig, ax = _subplots(1, 1, (max(5.2, MIN_WIDTH_IN), 3.6))
    col = colours(ver)
    for m in ratio.columns:
        ax.plot(ratio.index, ratio[m], marker="o", label=m, color=col.get(m))
        ax.fill_between(ratio.index, lo[m], hi[m], alpha=0.2, color=col.get(m))
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    band = " (95% CI)" if lo.notna().to_numpy().any() else ""  # gridded scores have none
    title = f"{variable}: spread-skill{band}"
    ax.set(xlabel="lead time (h)", ylabel="spread / RMSE", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def station_map(ver: Any, variable: str) -> bytes | None:
    """Stations at their lon/lat, coloured by CRPSS against the reference, per method."""
    st = ver.stations
    s = ver.scores
    sk = s[(s["variable"] == variable) & (s["by"] == "station") & (s["metric"] == "crpss")]
    if st.empty or sk.empty:
        return None
    methods = list(dict.fromkeys(sk["method"]))
    ncols, nrows = _grid(len(methods), MAX_RELIABILITY_COLUMNS)
    size = (max(4.4 * ncols, MIN_WIDTH_IN), 3.8 * nrows)
    fig, axes = _subplots(nrows, ncols, size, squeeze=False)
    for ax in axes.ravel()[len(methods) :]:
        ax.set_axis_off()
    lim = float(np.nanmax(np.abs(sk["value"].to_numpy()))) if sk["value"].notna().any() else 1.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    for ax, m in zip(axes.ravel(), methods, strict=False):
        d = st.merge(sk[sk["method"] == m], left_on="station", right_on="key")
        sc = ax.scatter(
            d["longitude"], d["latitude"], c=d["value"], cmap="RdBu", vmin=-lim, vmax=lim, s=18
        )
        ax.set(title=f"{m}: CRPSS by station", xlabel="longitude", ylabel="latitude")
        fig.colorbar(sc, ax=ax, shrink=0.8)
    return _png(fig)


MAP_MAX_CELLS = 600
"""Grid maps are drawn from at most this many cells per axis (every k-th row/column)."""


def _map_panel(ax: Any, da: Any, cmap: str, vmin: float, vmax: float) -> Any:
    """Draw one 2-D (or point) field on its longitude/latitude (or x/y) and return it."""
    if "point" in da.dims:
        lon, lat = np.asarray(da["longitude"]), np.asarray(da["latitude"])
        size = float(np.clip(20000.0 / max(1, da.size), 1.0, 30.0))
        art = ax.scatter(lon, lat, c=np.asarray(da), s=size, cmap=cmap, vmin=vmin, vmax=vmax)
    else:
        step = max(1, -(-max(da.shape) // MAP_MAX_CELLS))
        da = da[::step, ::step]
        if da.dims == ("longitude", "latitude"):
            da = da.T  # rows along latitude
        if "latitude" in da.coords and "longitude" in da.coords:
            lon, lat = np.asarray(da["longitude"]), np.asarray(da["latitude"])
            if lon.ndim == 1:  # a regular grid: its 1-D axes
                lon, lat = np.meshgrid(lon, lat)
        else:
            lat, lon = np.meshgrid(
                np.arange(da.shape[0]) * step, np.arange(da.shape[1]) * step, indexing="ij"
            )
        art = ax.pcolormesh(
            lon, lat, np.asarray(da), cmap=cmap, vmin=vmin, vmax=vmax, shading="auto"
        )
    if "latitude" in da.coords:
        mid = float(np.nanmean(np.asarray(da["latitude"])))
        ax.set_aspect(1.0 / max(0.2, np.cos(np.deg2rad(mid))))
        ax.set(xlabel="longitude", ylabel="latitude")
    return art


def grid_map(
    maps: Any, variable: str, metric: str = "crps", reference: str | None = None
) -> bytes | None:
    """Maps of the mean CRPS (``metric="crps"``) or CRPSS per grid point, one panel per method.

    Args:
        maps: The maps dataset of a gridded verification (``<var>_<metric>_all``).
        variable: Canonical variable name.
        metric: ``crps`` or ``crpss``.
        reference: Name of the CRPSS reference (titles).

    Returns:
        PNG bytes, or None when there is nothing to draw.
    """
    name = f"{variable}_{metric}_all"
    if name not in maps:
        return None
    da = maps[name]
    dim = str(da.dims[0])  # the forecasts (``maps.sel(method=...)`` is a keyword trap)
    methods = [str(m) for m in da[dim].values if np.isfinite(da.sel({dim: m})).any()]
    if not methods:
        return None
    vals = np.asarray(da.sel({dim: methods}), dtype=float)
    if metric == "crpss":
        lim = float(np.nanpercentile(np.abs(vals), 99)) or 1.0
        cmap, vmin, vmax = "RdBu", -min(lim, 1.0), min(lim, 1.0)
        what, label = f"CRPSS vs {reference}", "CRPSS"
    else:
        cmap, vmin, vmax = "viridis", 0.0, float(np.nanpercentile(vals, 99)) or 1.0
        what, label = "mean CRPS", f"CRPS ({da.attrs.get('units', '')})"
    ncols, nrows = _grid(len(methods), MAX_RELIABILITY_COLUMNS)
    fig, axes = _subplots(
        nrows, ncols, (max(4.6 * ncols, MIN_WIDTH_IN), 3.9 * nrows), squeeze=False
    )
    for ax in axes.ravel()[len(methods) :]:
        ax.set_axis_off()
    for ax, m in zip(axes.ravel(), methods, strict=False):
        art = _map_panel(ax, da.sel({dim: m}), cmap, vmin, vmax)
        ax.set_title(f"{variable}: {m}: {what}", fontsize=10)
        fig.colorbar(art, ax=ax, shrink=0.85, label=label)
    return _png(fig)
