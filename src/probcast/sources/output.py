"""The build spec's ``output``: the station table (default) or a canonical grid (Zarr).

::

    output: {kind: table}                           # default: OUT/table.parquet
    output: {kind: zarr-grid, method: bilinear}     # OUT/grid.zarr (see grid_build.py)

``zarr-grid`` needs an ``archive`` NWP source (NetCDF, Zarr, kerchunk references or GRIB
files) and gridded truth (``era5`` or ``arco-era5``); ``method`` (``bilinear`` or
``nearest``) is how the truth is regridded onto the model grid.
"""

from __future__ import annotations

from typing import Any

from probcast.sources.errors import SourceError
from probcast.sources.obs import GRIDDED_TRUTH

OUTPUT_KINDS = ("table", "zarr-grid")
GRID_METHODS = ("bilinear", "nearest")


def parse_output(value: Any, nwp: dict[str, Any], truth: dict[str, Any], src: str) -> dict:
    """Validate the ``output`` section; every error names the key and what was expected."""
    if value is None:
        return {"kind": "table"}
    if not isinstance(value, dict) or value.get("kind", "table") not in OUTPUT_KINDS:
        raise SourceError(f"{src}: output: expected {{kind: KIND}} with KIND one of {OUTPUT_KINDS}")
    out = {"kind": "table", **value}
    unknown = sorted(set(out) - {"kind", "method"})
    if unknown:
        raise SourceError(f"{src}: output: unknown key(s) {unknown}; expected kind, method")
    if out["kind"] == "table":
        return out
    out.setdefault("method", "bilinear")
    if out["method"] not in GRID_METHODS:
        raise SourceError(
            f"{src}: output.method: {out['method']!r} unknown; expected one of {GRID_METHODS}"
        )
    if nwp.get("source") != "archive":
        raise SourceError(
            f"{src}: output: zarr-grid needs nwp.source 'archive' (whole model fields); "
            f"got {nwp.get('source')!r}"
        )
    if truth.get("source") not in GRIDDED_TRUTH:
        raise SourceError(
            f"{src}: output: zarr-grid needs gridded truth (truth.source one of "
            f"{list(GRIDDED_TRUTH)}); got {truth.get('source')!r}"
        )
    return out
