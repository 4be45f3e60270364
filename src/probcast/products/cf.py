"""CF-1.8 metadata for products: variable attributes, coordinates, grid mapping, provenance.

Conventions follow IMPROVER (metoppv/improver) where CF is silent: leading ``realization``,
``percentile`` (in %) or ``threshold`` dimension; probabilities named
``probability_of_<standard_name>_above_threshold`` with units ``1``; forecast_period stored
as int32 seconds and times as float64 seconds since 1970-01-01 (CF-1.8 has no int64).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import xarray as xr

import probcast
from probcast import periods, schema

CONVENTIONS = "CF-1.8"
FRT = "forecast_reference_time"
FP = "forecast_period"
TIME = "time"
EPOCH_UNITS = "seconds since 1970-01-01 00:00:00"

CELL_METHODS = {var: f"time: {method}" for var, method in periods.STATISTICS.items()}
"""Statistics over the forecast period, written to ``cell_methods`` (CF 7.3)."""

_LATLON_ATTRS = {
    "latitude": {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude"},
    "longitude": {
        "standard_name": "longitude",
        "units": "degrees_east",
        "long_name": "longitude",
    },
}


LATLON_NAMES = frozenset({"latitude", "longitude", "lat", "lon", "grid_latitude", "grid_longitude"})
"""Names or standard names of the latitude/longitude coordinates stored as float32."""


def coordinate_encoding(name: Hashable, var: xr.Variable) -> dict[str, Any]:
    """Encoding of a coordinate: no ``_FillValue``; auxiliary latitude/longitude in float32.

    Args:
        name: Coordinate name.
        var: The coordinate.

    Returns:
        Encoding with ``units``/``calendar``/``dtype`` kept from ``var.encoding``.
    """
    keep = {k: v for k, v in var.encoding.items() if k in ("units", "calendar", "dtype")}
    keep["_FillValue"] = None  # coordinates have no missing values (CF 5)
    if var.dtype.kind != "f" or var.dims == (name,):
        return keep  # dimension coordinates (x, y, regular lat/lon axes) stay exact
    if str(name) in LATLON_NAMES or var.attrs.get("standard_name") in LATLON_NAMES:
        # Auxiliary latitude/longitude in float32 are accurate to ~1 m and half the size,
        # even when read from a float64 file (whose encoding would otherwise keep float64).
        keep["dtype"] = "float32"
    elif var.ndim >= 2:
        keep.setdefault("dtype", "float32")
    return keep


def variable_attrs(var: str) -> dict[str, str]:
    """CF attributes of canonical variable ``var`` (standard_name, units, long_name, ...).

    Args:
        var: Canonical variable name (see :mod:`probcast.schema`).

    Returns:
        Attribute dict; unknown variables get only a ``long_name``.
    """
    meta = schema.VARIABLES.get(var)
    if meta is None:
        return {"long_name": var}
    attrs = {"standard_name": meta.standard_name, "long_name": meta.long_name, "units": meta.units}
    if var in CELL_METHODS:
        attrs["cell_methods"] = CELL_METHODS[var]
    return attrs


def grid_mapping_name(ds: xr.Dataset) -> str | None:
    """Return the name of the grid-mapping variable of ``ds`` (data var or coord), if any."""
    for name, var in ds.variables.items():
        if "grid_mapping_name" in var.attrs:
            return str(name)
    return None


def attach_grid(product: xr.Dataset, grid: xr.Dataset) -> xr.Dataset:
    """Copy spatial/time coordinates and the grid mapping of ``grid`` onto ``product``.

    The grid-mapping variable is kept as a (scalar) coordinate so that it survives
    selections; xarray writes it as a plain variable because each data variable names it
    in ``grid_mapping``.

    Args:
        product: Product dataset.
        grid: Dataset holding the input coordinates and grid-mapping variable.

    Returns:
        The product with coordinates, CF coordinate attributes and ``grid_mapping``.
    """
    dims = set(product.dims)
    # Replace coordinates the builders carried along too: apply_ufunc drops their attrs.
    keep = {
        n: c
        for n, c in grid.variables.items()
        if set(c.dims) <= dims and n not in product.data_vars
    }
    product = product.assign_coords(keep)
    mapping = grid_mapping_name(grid)
    for name, attrs in _LATLON_ATTRS.items():
        if name in product.coords:
            product[name].attrs = {**product[name].attrs, **attrs}
    if mapping is not None:
        product[mapping].attrs.setdefault("long_name", "grid mapping")
        _projection_attrs(product, grid[mapping].attrs.get("grid_mapping_name"))
        for var in product.data_vars.values():
            var.attrs["grid_mapping"] = mapping
    return add_time_coords(product)


def _projection_attrs(product: xr.Dataset, mapping_kind: str | None) -> None:
    """Give projected x/y dimension coordinates their CF standard names."""
    if mapping_kind in (None, "latitude_longitude"):
        return
    for axis in ("x", "y"):
        if axis in product.coords:
            attrs = product[axis].attrs
            attrs.setdefault("standard_name", f"projection_{axis}_coordinate")
            attrs.setdefault("units", "m")
            attrs.setdefault("axis", axis.upper())


def add_time_coords(ds: xr.Dataset) -> xr.Dataset:
    """Add CF attrs/encodings to forecast_reference_time and forecast_period and add ``time``.

    ``time`` (valid time) is ``forecast_reference_time + forecast_period``; it is a
    dimension-less auxiliary coordinate when both are present.

    Args:
        ds: Product dataset.

    Returns:
        Dataset with CF time coordinates.

    Raises:
        ValueError: A time coordinate that is not datetime64 / timedelta64.
    """
    kinds = {FRT: "M", FP: "m", TIME: "M"}  # datetime64, timedelta64
    for name, kind in kinds.items():
        if name in ds.coords and ds[name].dtype.kind != kind:
            expected = "timedelta64 (e.g. np.timedelta64(6, 'h'))" if kind == "m" else "datetime64"
            raise ValueError(
                f"coordinate {name!r} is {ds[name].dtype}; expected {expected}: numbers "
                "carry no unit here, so convert them first"
            )
    if FRT in ds.coords and FP in ds.coords and TIME not in ds.coords:
        valid = ds[FRT] + ds[FP]
        ds = ds.assign_coords({TIME: valid.variable})
    # CF-1.8 has no 64-bit integers (they came with CF-1.9), so times are float64 seconds,
    # exact for whole seconds; forecast_period is int32 seconds as in IMPROVER.
    specs = {
        FRT: ("forecast_reference_time", EPOCH_UNITS, "float64"),
        FP: ("forecast_period", "seconds", "int32"),
        TIME: ("time", EPOCH_UNITS, "float64"),
    }
    for name, (standard_name, units, dtype) in specs.items():
        if name not in ds.coords:
            continue
        ds[name].attrs = {
            "standard_name": standard_name,
            "long_name": standard_name.replace("_", " "),
        }
        encoding = {"units": units, "dtype": dtype}
        if units != "seconds":
            encoding["calendar"] = "standard"
        ds[name].encoding.update(encoding)
    return ds


@dataclass(frozen=True)
class Provenance:
    """Provenance written to the global attributes of every product file.

    Attributes:
        model_fingerprint: Fingerprint of the fitted model artefact that made the forecast.
        input_files: Input files the products were computed from.
        institution: Producing institution (CF ``institution``).
        source: Method of production (CF ``source``).
        title: Short description (CF ``title``).
        history: Previous history lines to keep; a probcast line is appended.
        references: References (CF ``references``).
        created: ISO 8601 creation time; defaults to ``$SOURCE_DATE_EPOCH`` when set
            (reproducible builds) or the current UTC time.
    """

    model_fingerprint: str = "unknown"
    input_files: Sequence[str] = field(default_factory=tuple)
    institution: str = "unknown"
    source: str = "probcast statistical post-processing of NWP output"
    title: str = "probcast probabilistic forecast products"
    history: str = ""
    references: str = "https://cfconventions.org/cf-conventions/v1.8/cf-conventions.html"
    created: str | None = None


def creation_time(created: str | None = None) -> str:
    """Return an ISO 8601 UTC timestamp (``created``, ``$SOURCE_DATE_EPOCH`` or now)."""
    if created:
        return created
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def add_provenance(ds: xr.Dataset, prov: Provenance, *, product: str) -> xr.Dataset:
    """Set CF global attributes and provenance on ``ds``.

    Args:
        ds: Product dataset.
        prov: Provenance record.
        product: Product kind (``members``, ``percentiles``, ...), written as ``product``.

    Returns:
        ``ds`` with new global attributes (a shallow copy).
    """
    created = creation_time(prov.created)
    line = f"{created} probcast {probcast.__version__}: {product} product"
    history = f"{prov.history}\n{line}" if prov.history else line
    ds = ds.copy()
    ds.attrs = {
        "Conventions": CONVENTIONS,
        "title": prov.title,
        "institution": prov.institution,
        "source": prov.source,
        "history": history,
        "references": prov.references,
        "product": product,
        "probcast_version": probcast.__version__,
        "model_fingerprint": prov.model_fingerprint,
        "input_files": "\n".join(str(f) for f in prov.input_files),
        "date_created": created,
    }
    return ds


def _stated_var(name: str, attrs: Mapping[str, Any], stated: Mapping[str, float]) -> str | None:
    """The statistic variable that product variable ``name`` describes, if it has a period."""
    for var in stated:
        if name == var or attrs.get("diagnostic") == var:
            return var
        if name.startswith(f"{var}_") and "distribution_parameter" in attrs:
            return var
    return None


def state_periods(ds: xr.Dataset, stated: Mapping[str, float]) -> xr.Dataset:
    """State the period of every statistic variable (:mod:`probcast.periods`) in ``ds``.

    Each product variable of ``tp``/``tmax``/``tmin`` (members, percentiles, probabilities,
    parameters) gets ``statistic_period`` (ISO 8601 duration, ``PT6H``) and its
    ``cell_methods`` a CF comment (``time: sum (over the 6 h ending at time)``).
    The file keeps no CF time bounds: one file holds variables of different periods (and
    instantaneous ones) on one time axis.

    Args:
        ds: A product dataset.
        stated: Variable -> hours (the model's periods); variables without one are left as
            they are.

    Returns:
        ``ds`` with the attributes set (a shallow copy).
    """
    out = ds.copy()
    for name in out.data_vars:
        var = _stated_var(str(name), out[name].attrs, stated)
        if var is None:
            continue
        hours = float(stated[var])
        attrs = dict(out[name].attrs)
        attrs["statistic_period"] = periods.iso(hours)
        method = CELL_METHODS.get(var)
        if method and "distribution_parameter" not in attrs:
            attrs["cell_methods"] = f"{method} (over the {hours:g} h ending at time)"
        out[name].attrs = attrs
    return out


def threshold_coord(var: str, thresholds: np.ndarray) -> xr.DataArray:
    """IMPROVER threshold coordinate: variable's standard_name and units, var_name threshold."""
    attrs = {k: v for k, v in variable_attrs(var).items() if k in ("standard_name", "units")}
    attrs["long_name"] = f"threshold of {variable_attrs(var)['long_name']}"
    attrs["spp__relative_to_threshold"] = "greater_than"
    values = np.asarray(thresholds, dtype=np.float32)
    return xr.DataArray(values, dims="threshold", attrs=attrs)


def probability_name(var: str) -> str:
    """``probability_of_<standard_name>_above_threshold`` for canonical variable ``var``."""
    meta = schema.VARIABLES.get(var)
    return f"probability_of_{meta.standard_name if meta else var}_above_threshold"
