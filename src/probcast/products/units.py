"""Products in the user's units (``probcast predict --units t2m=degC,tp=mm``) and back.

Predictions are computed in canonical units (:mod:`probcast.schema`); with user units the
outputs are converted once, at the end, by the affine conversions of
:class:`probcast.units.UserUnit`:

* members, quantiles / percentiles, point forecasts (``fc_<var>``), observations
  (``obs_<var>``) and threshold values (``<var>_p_gt_<t>`` column names, the ``threshold``
  coordinate of the gridded probabilities: the user's thresholds exactly as given);
* distribution parameters where the conversion keeps the family (:func:`params_convert`):
  location ``loc`` affine, spreads ``scale``/``shift`` scaled, ``shape`` unchanged; a
  family bounded at 0 (censored, truncated, gamma) needs a conversion without offset, one
  bounded at 1 (cloud fraction) none at all. Other parameters stay canonical and the
  metadata says so.

Tables record ``units`` (``{var: units}``) and ``param_units`` (only where the parameters
stayed canonical) in their metadata (CSV sidecar, Parquet schema, NetCDF attribute);
:func:`table_to_canonical` converts such a table back before it is scored, so
``probcast verify`` scores in canonical units whatever the file's units. Gridded products
carry the units in each variable's (and the threshold coordinate's) ``units`` attribute.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast import dists
from probcast.products.table import META_KEY, format_level, parse_columns
from probcast.schema import OBS_PREFIX, VARIABLES
from probcast.units import UserUnit, format_units, user_units

log = logging.getLogger(__name__)

UNITS_ATTR = "probcast_units"
"""``DataFrame.attrs`` key of a prediction table in the user's units: its metadata
(``units``, ``param_units``), so that :func:`probcast.evaluate` and
:func:`probcast.write_predictions` take the table as what it is without being told."""

PARAM_ROLES = {"loc": "location", "scale": "spread", "shift": "spread", "shape": "none"}
"""How each distribution parameter converts: affine, by the scale factor, or not at all."""

FAMILY_BOUNDS: dict[str, tuple[float, float]] = {
    "normal": (-math.inf, math.inf),
    "logistic": (-math.inf, math.inf),
    "censored_logistic": (0.0, math.inf),
    "censored_normal": (0.0, math.inf),
    "truncated_normal": (0.0, math.inf),
    "censored_shifted_gamma": (0.0, math.inf),
    "censored_normal_01": (0.0, 1.0),
}
"""Support of each registered family in canonical units (its bounds are fixed numbers)."""


def params_convert(family: str | None, unit: UserUnit) -> bool:
    """Whether the parameters of ``family`` can be given in ``unit`` (the family is kept).

    A conversion keeps a family when it maps its fixed bounds onto themselves and the
    family has only location / spread / shape parameters.
    """
    if unit.identity:
        return True
    if family is None or family not in FAMILY_BOUNDS:
        return False
    if any(p not in PARAM_ROLES for p in dists.get(family).param_names):
        return False
    return all(
        not math.isfinite(b) or math.isclose(float(unit.to_user(b)), b, abs_tol=1e-12)
        for b in FAMILY_BOUNDS[family]
    )


def _param(values: Any, param: str, unit: UserUnit, to_user: bool) -> Any:
    role = PARAM_ROLES.get(param, "none")
    if role == "location":
        return unit.to_user(values) if to_user else unit.to_canonical(values)
    if role == "spread":
        return unit.spread_to_user(values) if to_user else unit.spread_to_canonical(values)
    return values


def _threshold_names(
    var: str, unit: UserUnit, thresholds: Mapping[str, Sequence[float]] | None
) -> dict[str, str]:
    """``format_level(canonical t)`` -> ``format_level(user t)`` for the user's thresholds."""
    given = list((thresholds or {}).get(var, ()))
    canon = unit.thresholds_to_canonical(given)
    return {format_level(c): format_level(u) for c, u in zip(canon, given, strict=True)}


def table_to_units(
    frame: pd.DataFrame,
    units: Mapping[str, str] | None,
    heads: Mapping[str, str],
    thresholds: Mapping[str, Sequence[float]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A canonical prediction table in the user's units, and the metadata saying so.

    Args:
        frame: Prediction table (:mod:`probcast.products.table` columns) in canonical units.
        units: ``{var: units}`` (``None``/empty: the table as it is, no metadata).
        heads: Variable -> family of its parameter columns (the model's heads).
        thresholds: The user's thresholds (in the user's units) the probabilities were
            computed for, to name their columns exactly as given.

    Returns:
        ``(table, {"units": ..., "param_units": ...})``.

    Raises:
        ValueError: Units given for a variable the table has no forecast of.
    """
    conv = user_units(units)
    if not conv:
        return frame, {}
    out = frame.copy()
    renames: dict[str, str] = {}
    param_units: dict[str, str] = {}
    for var, unit in conv.items():
        cs = parse_columns(out.columns, var)
        family = heads.get(var)
        params = [c for p, c in cs.other.items() if p in PARAM_ROLES]
        values = [*cs.members, *cs.quantiles.values(), *[c for c in (cs.point,) if c]]
        if not (values or params or cs.probabilities):
            raise ValueError(
                f"units= / --units {var}={unit.units}: the prediction has no forecast of "
                f"{var!r} (variables: {sorted(heads)})"
            )
        for col in [*values, *[c for c in (f"{OBS_PREFIX}{var}",) if c in out]]:
            out[col] = unit.to_user(out[col].to_numpy("float64"))
        if params and params_convert(family, unit):
            for p, col in cs.other.items():
                if p in PARAM_ROLES:
                    out[col] = _param(out[col].to_numpy("float64"), p, unit, True)
        elif params:
            param_units[var] = unit.canonical
            log.warning(
                "%s parameters (%s) stay in %s: the %s family has no exact form in %s",
                var, family, unit.canonical, family, unit.units,
            )  # fmt: skip
        exact = _threshold_names(var, unit, thresholds)
        for t, col in cs.probabilities.items():
            name = exact.get(format_level(t), format_level(unit.thresholds_to_user([t])[0]))
            renames[col] = f"{var}_p_gt_{name}"
    meta: dict[str, Any] = {"units": {v: u.units for v, u in conv.items()}}
    if param_units:
        meta["param_units"] = param_units
    out = out.rename(columns=renames)
    out.attrs[UNITS_ATTR] = meta
    return out, meta


def table_to_canonical(
    frame: pd.DataFrame, meta: Mapping[str, Any], source: str = "<table>"
) -> pd.DataFrame:
    """Inverse of :func:`table_to_units`: a table with ``units`` metadata in canonical units.

    Args:
        frame: Prediction table as read.
        meta: Its metadata (``units``, ``param_units``); none: returned as it is.
        source: File name for error messages.

    Raises:
        ValueError: Metadata naming unknown variables or unconvertible units.
    """
    try:
        conv = user_units(meta.get("units") or {})
        param_conv = user_units(meta.get("param_units") or {})
    except ValueError as err:
        raise ValueError(f"{source}: units metadata: {err}") from None
    if not conv:
        return frame
    out = frame.copy()
    out.attrs.pop(UNITS_ATTR, None)  # canonical now
    renames: dict[str, str] = {}
    for var, unit in conv.items():
        cs = parse_columns(out.columns, var)
        values = [*cs.members, *cs.quantiles.values(), *[c for c in (cs.point,) if c]]
        for col in [*values, *[c for c in (f"{OBS_PREFIX}{var}",) if c in out]]:
            out[col] = unit.to_canonical(out[col].to_numpy("float64"))
        punit = param_conv.get(var, unit)
        for p, col in cs.other.items():
            if p in PARAM_ROLES:
                out[col] = _param(out[col].to_numpy("float64"), p, punit, False)
        for t, col in cs.probabilities.items():
            renames[col] = f"{var}_p_gt_{unit.thresholds_to_canonical([t])[0]:.12g}"
    return out.rename(columns=renames)


def read_units(path: str | Path) -> dict[str, Any]:
    """The ``units``/``param_units`` metadata of a prediction table file (``{}``: none).

    Reads the same places as :func:`probcast.products.table_files.read_predictions`: the
    NetCDF global attribute, the Parquet schema metadata or the CSV sidecar.
    """
    from probcast.products.table_files import read_sidecar

    p = Path(path)
    suffix = p.suffix.lower()
    meta: dict[str, Any] = {}
    if suffix == ".nc":
        with xr.open_dataset(p) as ds:
            meta = json.loads(ds.attrs.get(META_KEY, "{}"))
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        raw = (pq.read_schema(p).metadata or {}).get(META_KEY.encode())
        meta = json.loads(raw) if raw else {}
    meta = {**read_sidecar(p), **meta} if suffix == ".csv" else meta
    return {k: dict(meta[k]) for k in ("units", "param_units") if isinstance(meta.get(k), dict)}


def canonical_thresholds(
    thresholds: Mapping[str, Sequence[float]] | None, units: Mapping[str, str] | None
) -> dict[str, tuple[float, ...]] | None:
    """The user's thresholds (in their units) in canonical units, for the model."""
    if thresholds is None:
        return None
    conv = user_units(units)
    return {
        v: conv[v].thresholds_to_canonical(ts) if v in conv else tuple(ts)
        for v, ts in thresholds.items()
    }


def products_to_units(
    products: Mapping[str, xr.Dataset],
    units: Mapping[str, str] | None,
    heads: Mapping[str, str],
    thresholds: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, xr.Dataset]:
    """Gridded products (:func:`probcast.products.build_products`) in the user's units.

    Lazy: the conversions are dask operations on the product fields. Members and
    percentiles are converted, the ``threshold`` coordinate takes the user's thresholds
    (as given) and units, parameters follow :func:`params_convert` (their ``units``
    attribute says which). Each product records ``probcast_units``.
    """
    conv = user_units(units)
    if not conv:
        return dict(products)
    check_units_for(list(heads), units)
    out = {}
    for name, ds in products.items():
        ds = ds.copy()
        for var in [str(v) for v in ds.data_vars]:
            da = ds[var]
            if var in conv and name in ("members", "percentiles"):
                attrs = {**da.attrs, "units": conv[var].units, **_standard(da, conv[var])}
                ds[var] = conv[var].to_user(da).assign_attrs(attrs)
            elif da.attrs.get("diagnostic") in conv and "threshold" in ds.coords:
                unit = conv[da.attrs["diagnostic"]]
                renamed = _standard(ds["threshold"], unit).get("standard_name")
                ds = _threshold_to_units(ds, unit, thresholds)
                if renamed:  # probability_of_<its standard name>_above_threshold
                    ds = ds.rename({var: f"probability_of_{renamed}_above_threshold"})
            elif "distribution_parameter" in da.attrs:
                ds[var] = _param_field(da, conv, heads)
        ds.attrs["probcast_units"] = format_units({v: u.units for v, u in conv.items()})
        out[name] = ds
    return out


def _threshold_to_units(
    ds: xr.Dataset, unit: UserUnit, thresholds: Mapping[str, Sequence[float]] | None
) -> xr.Dataset:
    coord = ds["threshold"]
    given = (thresholds or {}).get(unit.variable)
    # the coordinate is float32 (273.15 is 273.14999): back to the decimal it stands for
    # first, so 0 degC is 0, not -6.1e-06 (ds.sel(threshold=0) finds it)
    decimal = [float(str(np.float32(v))) for v in coord.values]
    values = list(given) if given else list(unit.thresholds_to_user(decimal))
    attrs = {**coord.attrs, "units": unit.units, **_standard(coord, unit)}
    new = xr.DataArray(np.asarray(values, dtype=coord.dtype), dims="threshold", attrs=attrs)
    return ds.assign_coords(threshold=new)


LWE = {"precipitation_amount": "lwe_thickness_of_precipitation_amount"}
"""CF standard names of a mass per area whose values in a length unit (mm, in) are the
liquid water equivalent thickness (IMPROVER names precipitation in mm so)."""


def _standard(da: xr.DataArray, unit: UserUnit) -> dict[str, str]:
    """The ``standard_name`` of ``da``'s values in ``unit`` when it is not the canonical one."""
    name = str(da.attrs.get("standard_name", ""))
    if name in LWE and unit.units != VARIABLES[unit.variable].units:
        return {"standard_name": LWE[name]}
    return {}


def _param_field(
    da: xr.DataArray, conv: Mapping[str, UserUnit], heads: Mapping[str, str]
) -> xr.DataArray:
    param = str(da.attrs["distribution_parameter"])
    var = str(da.name)[: -len(param) - 1]
    if var not in conv or not params_convert(heads.get(var), conv[var]):
        return da
    unit = conv[var]
    attrs = dict(da.attrs)
    if PARAM_ROLES.get(param, "none") != "none":
        attrs["units"] = unit.units
    return _param(da, param, unit, True).assign_attrs(attrs)


def check_thresholds_for(variables: Sequence[str], thresholds: Mapping[str, Any] | None) -> None:
    """Raise ValueError when ``thresholds`` name a variable outside ``variables``."""
    unknown = sorted(set(thresholds or {}) - set(variables))
    if unknown:
        raise ValueError(
            f"thresholds given for {unknown}, which the model does not predict "
            f"(targets: {list(variables)})"
        )


def check_units_for(variables: Sequence[str], units: Mapping[str, str] | None) -> None:
    """Raise ValueError when ``units`` name a variable outside ``variables``."""
    unknown = sorted(set(user_units(units)) - set(variables))
    if unknown:
        raise ValueError(
            f"units= / --units given for {unknown}, which the model does not predict "
            f"(targets: {list(variables)})"
        )
