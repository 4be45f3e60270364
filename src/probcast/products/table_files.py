"""Prediction-table files: write and read them with the families of their parameters.

CSV (with the JSON sidecar ``<file>.json``, which records the CSV's checksum:
:mod:`probcast.products.table_sidecar`), Parquet (metadata in the schema, page
checksums) and station NetCDF (metadata in the global attribute ``probcast``); every write
is atomic (:mod:`probcast.io`). The column contract itself is :mod:`probcast.products.table`.
The quality flags (``<var>_source``, ``applicability``) are strings in CSV and Parquet and,
in NetCDF, CF flag variables (``int8`` codes with ``flag_values``/``flag_masks`` and
``flag_meanings``) decoded back to the same strings on reading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast import io, periods
from probcast.products.table import (
    APPLICABILITY,
    APPLICABILITY_REASONS,
    KEYS,
    META_KEY,
    SOURCES,
    TABLE_SUFFIXES,
    bits_from_labels,
    detect_variables,
    is_flag_column,
    labels_from_bits,
    normalise_keys,
    parse_columns,
)
from probcast.products.table_meta import file_metadata, json_text, to_canonical, unit_entries
from probcast.products.table_sidecar import read_sidecar, write_csv_pair
from probcast.schema import OBS_PREFIX, VARIABLES, unit_name

_FLAG_FILL = -1


def sidecar_families(meta: dict[str, Any]) -> dict[str, str]:
    """``{variable: family}`` from a sidecar's ``families`` (or ``distributions``) entry."""
    fams = meta.get("families", meta.get("distributions", {}))
    if isinstance(fams, str):  # "tp:censored_logistic,t2m:normal"
        fams = dict(item.split(":", 1) for item in fams.split(",") if item)
    return {str(k): str(v) for k, v in dict(fams).items()}


def write_predictions(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    families: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a prediction table atomically, with its families; the format follows the suffix.

    ``.csv`` (plus the sidecar ``<file>.json``), ``.parquet`` (metadata in the schema) or
    ``.nc`` (dimensions ``(station, init_time, lead_time)`` when those keys are unique, else
    one ``row`` dimension; metadata in the global attribute ``probcast``).

    A CSV and its sidecar are written to temporary names first; then the sidecar is renamed
    into place, the CSV last: a failed write (metadata, disk) leaves the old pair as it was,
    and a reader never finds a new CSV without its sidecar. The sidecar records the CSV's
    size and sha256 (``table_checksum``), so that a new sidecar beside an old CSV (a write
    killed between the two renames, two writes at once) is refused by
    :func:`read_predictions`, not read (:mod:`probcast.products.table_sidecar`).

    The values of ``frame`` are taken to be in canonical units (:mod:`probcast.schema`)
    unless ``units`` says otherwise; whether they are cannot be checked. A table predicted
    with ``PredictRequest(units=...)`` (``PredictResult.table``) is in those units: pass
    them here, as ``probcast predict --units`` records them, or ``probcast verify`` and
    :func:`read_predictions` take its values for canonical ones.

    Args:
        frame: Prediction table (:func:`predictive_table`).
        path: Destination.
        families: Variable -> family of its parameter columns.
        units: Variable -> units of the table's values (``{"tp": "cm"}``), recorded as
            ``units`` (and ``param_units`` for parameters whose family has no form in those
            units: they are canonical, :func:`probcast.products.units.params_convert`).
        metadata: Further provenance (model, request); NumPy numbers are written as
            numbers, other values JSON cannot hold as their text.

    Returns:
        The written path.

    Raises:
        TypeError: ``families``, ``units`` or ``metadata`` is not a mapping.
        ValueError: Unknown format; unknown units, units of a variable the table has no
            forecast of, or units that differ from ``metadata["units"]``.
        probcast.io.WriteError: The file (or the sidecar) could not be written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq", ".nc"):
        raise ValueError(f"{p}: unknown table format {suffix!r}; expected one of {TABLE_SUFFIXES}")
    from probcast.products.units import UNITS_ATTR

    recorded = frame.attrs.get(UNITS_ATTR)  # a PredictResult.table in the user's units
    if units is None and recorded and not (metadata or {}).get("units"):
        metadata = {**(metadata or {}), **recorded}
    meta = file_metadata(frame, families, units, metadata)
    if suffix == ".csv":  # the sidecar records the CSV's checksum (table_sidecar)
        write_csv_pair(_in_utc(frame), p, meta, lambda m: json_text(m, indent=1) + "\n")
    elif suffix in (".parquet", ".pq"):
        io.write_with(p, lambda tmp: _write_parquet(frame, tmp, meta))
    else:
        io.write_with(p, lambda tmp: _to_netcdf(frame, meta).to_netcdf(tmp))
    return p


def _in_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its zone-aware time columns in UTC (naive ones are UTC already)."""
    zoned = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    if not zoned:
        return frame
    out = frame.copy()
    for col in zoned:
        out[col] = out[col].dt.tz_convert("UTC")
    return out


def _write_parquet(frame: pd.DataFrame, path: Path, meta: Mapping[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    old = table.schema.metadata or {}
    table = table.replace_schema_metadata({**old, META_KEY.encode(): json_text(meta).encode()})
    pq.write_table(table, path, write_page_checksum=True)


def _to_netcdf(frame: pd.DataFrame, meta: Mapping[str, Any]) -> Any:
    import xarray as xr

    keys = [c for c in ("station", "init_time", "lead_time") if c in frame.columns]
    data = frame.copy()
    for col in ("init_time", "valid_time"):
        if col in data:
            data[col] = pd.to_datetime(data[col], utc=True).dt.tz_convert(None)
    flags = [c for c in data.columns if is_flag_column(c)]
    for col in flags:
        data[col] = _encode_flag(col, data[col].to_numpy(dtype=object))
    if len(keys) == 3 and not data.duplicated(keys).any():
        ds = xr.Dataset.from_dataframe(data.set_index(keys))
    else:
        ds = xr.Dataset.from_dataframe(data.rename_axis("row"))
    if "station" in ds.variables:
        ds["station"] = ds["station"].astype(str)
    for col in flags:
        ds[col].attrs.update(_flag_attrs(col))
        ds[col].encoding.update(dtype="int8", _FillValue=_FLAG_FILL)
    if "lead_time" in ds.variables:  # float hours (CF: a period needs its unit)
        ds["lead_time"].attrs.update(units="hours", standard_name="forecast_period")
    for col, name in (("init_time", "forecast_reference_time"), ("valid_time", "time")):
        if col in ds.variables:
            ds[col].attrs.update(standard_name=name)
    _units_attrs(ds, meta)
    ds.attrs.update(
        title="probcast station predictions",
        Conventions="CF-1.10",
        source="probcast predict",
        **{META_KEY: json_text(meta)},
    )
    return ds


_DIFFERENCE = {"degC": "K", "degF": "degR"}
"""CF units of a temperature difference (a spread) given in an offset unit: same size."""


def _units_attrs(ds: Any, meta: Mapping[str, Any]) -> None:
    """CF ``units`` of every value column: the user's (``--units``) or the canonical ones."""
    from probcast.products.units import PARAM_ROLES

    names = [str(n) for n in ds.data_vars]
    user, kept = meta.get("units", {}), meta.get("param_units", {})
    for var in detect_variables(names):
        cs = parse_columns(names, var)
        unit = unit_name(user.get(var, VARIABLES[var].units))
        values = [*cs.members, *cs.quantiles.values(), cs.point, f"{OBS_PREFIX}{var}"]
        for col in (c for c in values if c in ds):
            ds[col].attrs["units"] = unit
        for col in cs.probabilities.values():
            ds[col].attrs["units"] = "1"
        for param, col in cs.other.items():
            if param in PARAM_ROLES:
                role, of = PARAM_ROLES[param], unit_name(kept.get(var, unit))
                spread = _DIFFERENCE.get(of, of) if role == "spread" else of  # a difference
                ds[col].attrs["units"] = "1" if role == "none" else spread


def _read_netcdf(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    import xarray as xr

    with xr.open_dataset(path, decode_timedelta=False) as ds:
        if "station" not in ds.variables and "forecast_reference_time" in ds.variables:
            raise ValueError(
                f"{path}: a gridded product, not a station prediction table (no station); "
                "gridded products are scored with probcast verify --forecast ... --truth GRID"
            )
        ds = _lead_in_hours(ds, path)
        meta = json.loads(ds.attrs.get(META_KEY, "{}"))
        flags = [str(n) for n in ds.data_vars if is_flag_column(str(n))]
        flags = [n for n in flags if "flag_meanings" in ds[n].attrs]
        df = ds.to_dataframe().reset_index()
    for col in flags:
        df[col] = _decode_flag(col, df[col].to_numpy(dtype="float64"))
    if "row" in df.columns:
        df = df.drop(columns="row")
    values = [c for c in df.columns if c not in KEYS]
    # A (station, init, lead) cube holds NaN rows for key combinations the table lacked.
    df = df.loc[df[values].notna().any(axis=1)].reset_index(drop=True)
    return df, meta


def _lead_in_hours(ds: Any, path: Path) -> Any:
    """``ds`` with ``lead_time`` in hours, converted from its ``units`` attribute.

    Any duration unit (``hours``, ``minutes``, ``s``, ``days``...:
    :data:`probcast.ingest.grid_values.DURATION_UNITS`); without ``units`` the numbers are
    hours (as probcast writes them).

    Raises:
        ValueError: Units that are not a duration (``'hours since ...'``, ``'m'``), or
            lead times that are not numbers; naming the file and the column.
    """
    from probcast.ingest.grid_values import duration_ns

    lead = ds.variables.get("lead_time")
    if lead is None or np.issubdtype(lead.dtype, np.timedelta64):
        return ds
    units = lead.attrs.get("units", lead.encoding.get("units"))  # (decoded: a time)
    ns = duration_ns(units)
    if units is None and np.issubdtype(lead.dtype, np.number):
        return ds
    if ns is None or not np.issubdtype(lead.dtype, np.number):
        raise ValueError(
            f"{path}: column 'lead_time' holds {lead.dtype} values with units {units!r}; "
            "expected hours (units 'hours') or another duration unit ('minutes', 's', 'days')"
        )
    hours = lead.astype("float64") * float(ns) / 3.6e12  # exact for whole minutes
    hours.attrs = {"units": "hours"}
    if "lead_time" in ds.coords:
        return ds.assign_coords(lead_time=hours)
    return ds.assign(lead_time=hours)


def read_predictions(
    path: str | Path, *, canonical: bool = True
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a prediction table (CSV, Parquet or station NetCDF) and its families.

    Families and units come from the table's own metadata (Parquet schema, NetCDF
    attribute) or its JSON sidecar (CSV; ``<file>.json`` or ``<stem>.json``; one that
    records the checksum of another CSV is refused: :func:`read_sidecar`). A table
    written in the user's units (``probcast predict --units``, ``write_predictions(...,
    units=...)``) is converted back to canonical units, as ``probcast verify`` scores it,
    so that :func:`probcast.evaluate` gets what it expects.

    Args:
        path: The file.
        canonical: Convert the values to canonical units by the metadata's ``units`` and
            ``param_units`` (:func:`probcast.products.units.table_to_canonical`; the
            ``<var>_p_gt_<t>`` columns are renamed to canonical thresholds). False: the
            values as the file holds them (read its units with
            :func:`probcast.products.units.read_units`).

    Returns:
        ``(table with normalised keys, {variable: family})``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Unknown format, missing key columns, unconvertible units metadata,
            non-numeric values to convert (the message names the file), or a sidecar of
            another CSV (:class:`probcast.products.table_sidecar.SidecarMismatch`).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such prediction table")
    suffix = p.suffix.lower()
    meta: dict[str, Any] = {}
    if suffix == ".nc":
        df, meta = _read_netcdf(p)
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        schema_meta = pq.read_schema(p).metadata or {}
        if META_KEY.encode() in schema_meta:
            meta = json.loads(schema_meta[META_KEY.encode()])
        df = pd.read_parquet(p)
    elif suffix == ".csv":
        df = _read_csv(p)
    else:
        raise ValueError(f"{p}: unknown table format {suffix!r}; expected one of {TABLE_SUFFIXES}")
    meta = {**read_sidecar(p), **meta}
    df = normalise_keys(df, str(p))
    if canonical:
        df = to_canonical(df, unit_entries(meta), p)
    if meta.get("periods"):  # what the model's products cover (probcast.periods)
        periods.recorded(df, periods.parse(meta["periods"], f"{p}: metadata periods"))
    return df, sidecar_families(meta)


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV prediction table, its missing-value cells as NaN.

    The project's missing-value cells (``NA``, ``NaN``, ``null``, ...:
    :data:`probcast.ingest.tables.NA_STRINGS`) are NaN in every column but ``station``,
    whose ids stay text (``NA`` is Namibia).
    """
    from probcast.ingest.tables import NA_STRINGS

    header = pd.read_csv(path, nrows=0).columns
    na = {str(c): list(NA_STRINGS) for c in header if c != "station"}
    return pd.read_csv(path, dtype={"station": str}, keep_default_na=False, na_values=na)


def _encode_flag(column: str, labels: np.ndarray) -> np.ndarray:
    """Flag strings -> float codes (NaN: none), written as ``int8`` with a fill value."""
    if column == APPLICABILITY:
        codes = bits_from_labels(labels).astype("float64")
    else:
        index = {s: i for i, s in enumerate(SOURCES)}
        codes = np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in labels], float)
    return np.where(codes < 0, np.nan, codes)


def _decode_flag(column: str, codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_encode_flag` (a fill value or an unknown code: ``None``)."""
    if column == APPLICABILITY:
        return labels_from_bits(codes)
    out = np.full(codes.shape, None, dtype=object)
    ok = np.isfinite(codes) & (codes >= 0) & (codes < len(SOURCES))
    out[ok] = np.asarray(SOURCES, dtype=object)[codes[ok].astype(int)]
    return out


def _flag_attrs(column: str) -> dict[str, Any]:
    if column == APPLICABILITY:
        return {
            "long_name": "training-domain flags of the row (0: inside the training domain)",
            "flag_masks": np.array([1, 2, 4], dtype="int8"),
            "flag_meanings": " ".join(APPLICABILITY_REASONS),
        }
    return {
        "long_name": f"source of the forecasts of {column.rsplit('_', 1)[0]}",
        "flag_values": np.arange(len(SOURCES), dtype="int8"),
        "flag_meanings": " ".join(SOURCES),
    }
