"""The one check of a gridded input's units and values, at training and at prediction.

Every grid a model reads passes here, whatever its variable names: files normalised by
:func:`probcast.ingest.gridded.open_gridded` (names and units from NWP conventions), files
already named ``fc_*``/``obs_*`` opened lazily by :func:`probcast.align.points.open_grid`
(training and prediction) and in-memory datasets handed to the grid predictor.

* Units: each ``fc_<var>``/``obs_<var>`` of a canonical variable, and each extra model's
  ``fc_<var>_<model>`` (:func:`probcast.ranges.ranged_variable`), is converted from its
  ``units`` attribute to the canonical units (:mod:`probcast.schema`), lazily for dask
  arrays; a missing or unconvertible ``units`` attribute is an error naming the file and
  the variable (and listing the convertible units). A spread, difference or variance
  of a variable (``fc_tp_spread`` in ``m``, ``fc_sp_trend`` in ``hPa``, ``fc_t2m_var`` in
  ``K2``; :func:`probcast.ranges.derived_variable`) is scaled by its ``units`` (no
  offset); without ``units`` it is taken as canonical.
* Values: infinite values are errors (missing values must be NaN); a field entirely NaN is
  an error (as a table column); values outside ``[valid_min, valid_max]`` of the variable
  are errors that name the units the values would fit (degC labelled ``K``, millimetres
  labelled ``m``) instead of a silent conversion (float noise only, as for station tables,
  is clipped); latitude/longitude must lie on the globe.
* Times: a ``forecast_period`` of numbers with a duration unit xarray does not decode
  (``'h'``, ``'hour'``, ``'s'``) is converted by it; numbers without a usable time unit
  (a period without one, an epoch reference time without CF units) are errors naming the
  file, the coordinate and the units expected (:func:`decode_time_axes`).

The same sentences as the station-table checks (:mod:`probcast.validate`,
:func:`probcast.schema.range_error`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from probcast.ingest.errors import GriddedReadError
from probcast.ranges import NOISE_TOLERANCE, derived_variable, difference_scale, ranged_variable
from probcast.schema import (
    FC_PREFIX,
    OBS_PREFIX,
    VARIABLES,
    UnitError,
    unit_affine,
    units_hint,
    units_of,
)

log = logging.getLogger(__name__)

FRT, FP = "forecast_reference_time", "forecast_period"
COORD_RANGES = {"latitude": (-90.0, 90.0), "longitude": (-180.0, 360.0)}
"""Plausible ranges of the geographic coordinates (degrees)."""


def canonical_units(ds: xr.Dataset, source: str, *, require: bool = True) -> xr.Dataset:
    """Convert every ``fc_<var>``/``obs_<var>`` field to canonical units by its ``units``.

    Args:
        ds: Dataset (numpy- or dask-backed; dask stays lazy).
        source: File name for error messages.
        require: A field without a ``units`` attribute is an error (else taken as
            canonical).

    Returns:
        ``ds`` with converted fields; each keeps ``source_units`` (the units as given).

    Raises:
        GriddedReadError: Missing (with ``require``) or unconvertible units.
    """
    out = {}
    for name, da in ds.data_vars.items():
        var = ranged_variable(str(name))
        if var is None:
            converted = _derived_to_canonical(str(name), da, source)
            if converted is not None:
                out[str(name)] = converted
            continue
        canon = VARIABLES[var].units
        units = da.attrs.get("units")
        if units is None and not require:
            continue
        if units is None:
            raise GriddedReadError(
                f"{source}: variable {name!r} has no units attribute; expected {canon!r} or "
                f"a convertible unit ({', '.join(units_of(var)[1:])}), e.g. units={canon!r}"
            )
        try:
            scale, offset = unit_affine(str(units), var)
        except UnitError:
            raise GriddedReadError(
                f"{source}: variable {name!r} has units {units!r}; expected {canon!r} or a "
                f"convertible unit ({', '.join(units_of(var)[1:])})"
            ) from None
        if (scale, offset) == (1.0, 0.0) and np.issubdtype(da.dtype, np.floating):
            continue
        values = da.astype("float64") if not np.issubdtype(da.dtype, np.floating) else da
        conv = values * scale + offset if (scale, offset) != (1.0, 0.0) else values
        attrs = {**da.attrs, "units": canon, "source_units": str(units)}
        out[str(name)] = conv.assign_attrs(attrs)
    return ds.assign(out) if out else ds


def _derived_to_canonical(name: str, da: xr.DataArray, source: str) -> xr.DataArray | None:
    """A spread, difference or variance of a variable in canonical units, by its ``units``.

    None when there is nothing to convert (no ``units`` attribute: taken as canonical, as
    in station tables) or the units are not of the variable (a ratio, a per-hour trend):
    then the values are kept as they are, with a warning.
    """
    kind = derived_variable(name)
    units = da.attrs.get("units")
    if kind is None or units is None:
        return None
    var, power = kind
    canon = VARIABLES[var].units if power == 1 else f"({VARIABLES[var].units})2"
    scale = difference_scale(str(units), var, power)
    if scale is None:
        log.warning("%s: %s has units %r, not convertible to %r: values kept as they are",
                    source, name, units, canon)  # fmt: skip
        return None
    if str(units) == canon and np.issubdtype(da.dtype, np.floating):
        return None
    conv = da.astype("float64") * scale if scale != 1.0 else da.astype("float64")
    return conv.assign_attrs({**da.attrs, "units": canon, "source_units": str(units)})


def _names(ds: xr.Dataset, names: Sequence[str] | None) -> list[str]:
    fields = (
        [str(v) for v in ds.data_vars if ranged_variable(str(v))] if names is None else list(names)
    )
    return [*fields, *[c for c in COORD_RANGES if c in ds.variables and c not in fields]]


def check_values(ds: xr.Dataset, source: str, names: Sequence[str] | None = None) -> list[str]:
    """Refuse infinite, entirely missing or physically impossible values (one data pass).

    Values outside the physical range by float noise only (at most
    :data:`probcast.ranges.NOISE_TOLERANCE` of the range, as for station tables) pass;
    the names of the fields that have some are returned, for :func:`check_grid` to clip.

    Args:
        ds: Dataset in canonical units.
        source: File name for error messages.
        names: Variables to check (default every ``fc_*``/``obs_*`` field of a canonical
            variable); latitude/longitude are always checked when present.

    Returns:
        Fields with values outside their range by float noise only.

    Raises:
        GriddedReadError: Naming the file and the variable.
    """
    stats = {}
    for name in _names(ds, names):
        arr = ds[name]
        if np.issubdtype(arr.dtype, np.floating) and arr.size:  # (no extremes of nothing)
            finite = arr.where(np.isfinite(arr))
            stats[name] = [np.isinf(arr).sum(), finite.min(), finite.max()]
    return [
        name
        for name, (n_inf, lo, hi) in _compute(stats).items()
        if _check_one(ds, source, name, n_inf, lo, hi)
    ]


def _check_one(ds: xr.Dataset, source: str, name: str, n_inf: int, lo: float, hi: float) -> bool:
    """Raise on a bad field; True when it is out of range by float noise only."""
    if n_inf:
        raise GriddedReadError(
            f"{source}: {name} has {n_inf} infinite value(s); missing values must be NaN "
            "(or the field's _FillValue)"
        )
    var = ranged_variable(name)
    if not np.isfinite(lo):  # an extra model's field may miss a run: its rows fall back
        if (
            var is not None
            and name in (f"{FC_PREFIX}{var}", f"{OBS_PREFIX}{var}")
            and ds[name].size
        ):
            raise GriddedReadError(
                f"{source}: {name} is entirely missing (all NaN); expected at least one "
                "finite value, or leave the variable out"
            )
        return False
    if name in COORD_RANGES:
        vmin, vmax = COORD_RANGES[name]
        if lo < vmin or hi > vmax:
            raise GriddedReadError(
                f"{source}: {name} has values in [{lo:g}, {hi:g}], outside its physical range "
                f"[{vmin:g}, {vmax:g}] degrees"
            )
        return False
    if var is None:
        return False
    meta = VARIABLES[var]
    tol = NOISE_TOLERANCE * (meta.valid_max - meta.valid_min)
    if lo < meta.valid_min - tol or hi > meta.valid_max + tol:
        given = ds[name].attrs.get("source_units", ds[name].attrs.get("units"))
        hint = units_hint(lo, hi, var, _known(str(given), var) if given is not None else None)
        raise GriddedReadError(
            f"{source}: {name} has values in [{lo:g}, {hi:g}], outside its physical range "
            f"[{meta.valid_min:g}, {meta.valid_max:g}] {meta.units} (units attribute "
            f"{given if given is not None else 'missing'!r}); {hint}"
        )
    return lo < meta.valid_min or hi > meta.valid_max


DURATION_UNITS: dict[str, int] = {
    name: ns
    for ns, names in (
        (1, ("ns", "nanosecond", "nanoseconds")),
        (10**3, ("us", "microsecond", "microseconds")),
        (10**6, ("ms", "millisecond", "milliseconds")),
        (10**9, ("s", "sec", "secs", "second", "seconds")),
        (60 * 10**9, ("min", "mins", "minute", "minutes")),
        (3600 * 10**9, ("h", "hr", "hrs", "hour", "hours")),
        (86400 * 10**9, ("d", "day", "days")),
    )
    for name in names
}
"""Nanoseconds in one unit of a numeric duration, by its (lower-case) units attribute.

Plain units only: CF ``'hours since 2000-01-01'`` is a time (a reference time), not a
duration."""
PERIOD_HINT = "expected a duration unit such as 'hours', 'minutes' or 's' (without 'since')"
REFERENCE_HINT = "expected CF time units such as 'hours since 1970-01-01'"


def duration_ns(units: object) -> int | None:
    """Nanoseconds in one ``units`` of a numeric duration; None when not a duration unit."""
    return DURATION_UNITS.get(str(units).strip().lower()) if units is not None else None


def _time_error(da: xr.DataArray, source: str, name: str, hint: str) -> GriddedReadError:
    units = da.attrs.get("units", da.encoding.get("units"))
    given = f"with units {str(units)!r}" if units is not None else "without a units attribute"
    return GriddedReadError(f"{source}: {name} holds {da.dtype} values {given}; {hint}")


def period_values(da: xr.DataArray, source: str, name: str = FP) -> np.ndarray:
    """A forecast period as ``timedelta64[ns]``; numbers are converted by their ``units``.

    Args:
        da: The period coordinate (decoded by xarray, or numbers with a ``units`` attribute
            xarray does not decode, such as ``'h'`` or ``'s'``).
        source: File name for error messages.
        name: The coordinate's name in the file (for messages).

    Raises:
        GriddedReadError: Numbers without a duration unit (none, an unknown one or CF
            ``'... since ...'``), times, missing or other values.
    """
    values = np.asarray(da.values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("timedelta64[ns]")
    ns = duration_ns(da.attrs.get("units"))
    if ns is None or not np.issubdtype(values.dtype, np.number):
        raise _time_error(da, source, name, PERIOD_HINT)
    if not np.isfinite(values).all():
        raise GriddedReadError(f"{source}: {name} has missing values; {PERIOD_HINT}")
    if np.issubdtype(values.dtype, np.integer):
        return (values.astype("int64") * ns).astype("timedelta64[ns]")
    return np.round(values.astype("float64") * ns).astype("int64").astype("timedelta64[ns]")


def reference_values(da: xr.DataArray, source: str, name: str = FRT) -> np.ndarray:
    """A reference (or valid) time as ``datetime64[ns]``; numbers are refused.

    Numbers left by xarray are times it could not decode: without CF ``units`` (epoch
    seconds? milliseconds?) or with units that are not a time; they are never guessed.

    Raises:
        GriddedReadError: Numbers or durations, naming the file and the coordinate.
    """
    values = np.asarray(da.values)
    if np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.timedelta64):
        raise _time_error(da, source, name, REFERENCE_HINT)
    return values.astype("datetime64[ns]")


def decode_time_axes(ds: xr.Dataset, source: str) -> xr.Dataset:
    """``forecast_reference_time`` as datetime64 and ``forecast_period`` as timedelta64.

    A numeric period with a duration unit xarray does not decode (``'h'``, ``'hour'``,
    ``'s'``) is converted by it (:func:`period_values`); numbers without a usable unit are
    refused. ``valid_time`` is recomputed when a period was converted.

    Raises:
        GriddedReadError: As :func:`period_values` and :func:`reference_values`.
    """
    new = {}
    if FRT in ds.variables and not np.issubdtype(ds[FRT].dtype, np.datetime64):
        new[FRT] = (ds[FRT].dims, reference_values(ds[FRT], source))
    if FP in ds.variables and not np.issubdtype(ds[FP].dtype, np.timedelta64):
        new[FP] = (ds[FP].dims, period_values(ds[FP], source))
    if not new:
        return ds
    ds = ds.assign_coords(new)
    return ds.assign_coords(valid_time=ds[FRT] + ds[FP]) if "valid_time" in ds.coords else ds


def _known(units: str, var: str) -> str | None:
    try:
        unit_affine(units, var)
    except UnitError:
        return None
    return units


def _compute(stats: dict[str, list[xr.DataArray]]) -> dict[str, tuple[int, float, float]]:
    import dask

    (out,) = dask.compute(stats)
    return {
        k: (int(np.asarray(n)), float(np.asarray(a)), float(np.asarray(b)))
        for k, (n, a, b) in out.items()
    }


def check_grid(ds: xr.Dataset, source: str, *, require_units: bool = True) -> xr.Dataset:
    """Time axes, canonical units, then the value checks: the path of every gridded input.

    Args:
        ds: Dataset with ``fc_*``/``obs_*`` fields (lazy or loaded).
        source: File name for error messages.
        require_units: A known field without ``units`` is an error.

    Returns:
        ``ds`` in canonical units.

    Raises:
        GriddedReadError: Units missing or unknown, infinite, all-missing or impossible
            values, coordinates off the globe, time axes that are numbers without a
            usable time unit (:func:`decode_time_axes`; the message names the file and
            variable).
    """
    ds = decode_time_axes(ds, source)
    ds = canonical_units(ds, source, require=require_units)
    noisy = check_values(ds, source)
    for name in noisy:  # float noise only (checked): clip to the physical range, lazily
        meta = VARIABLES[str(ranged_variable(name))]
        log.info("%s: %s: values clipped to [%g, %g] (float noise only)", source, name,
                 meta.valid_min, meta.valid_max)  # fmt: skip
        ds[name] = ds[name].clip(meta.valid_min, meta.valid_max, keep_attrs=True)
    return ds
