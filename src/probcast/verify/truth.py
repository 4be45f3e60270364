"""The truth of a station verification: read from a file or taken from a DataFrame, checked.

Scores are computed in canonical units (:mod:`probcast.schema`), so the observations must
be in them too. A truth file that records the units of its values (written by
:func:`probcast.products.table_files.write_predictions` with ``units=``, as ``probcast
predict --units`` writes its tables: the Parquet schema metadata, a CSV's sidecar
``<file>.json``, the NetCDF attribute ``probcast``) is converted back to canonical units by
them, in every format, before it is checked and scored; a CSV sidecar that records the
checksum of another CSV is refused (:mod:`probcast.products.table_sidecar`). A truth without
units metadata is canonical, as before.

A truth DataFrame (``probcast.evaluate``) is converted by the units it records
(``attrs["probcast_units"]``, :data:`probcast.products.units.UNITS_ATTR`: a
``PredictResult.table`` of a request with ``units``) and its observations are then checked
as a truth file's are (:func:`probcast.validate.validate_station_table`): non-numeric or
infinite observations, and observations outside the physical range of their variable (degC
where K is expected), are refused with the units they would fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def truth_units(path: str | Path) -> dict[str, Any]:
    """The ``units``/``param_units`` metadata a truth file records (``{}``: canonical).

    Read where :func:`probcast.products.table_files.read_predictions` reads them
    (:func:`probcast.products.units.read_units`).

    Raises:
        ValueError: A sidecar that is not a JSON object, or that belongs to another CSV.
    """
    from probcast.products.units import read_units

    return read_units(Path(path))


def read_truth(path: Path) -> pd.DataFrame:
    """Read a truth station table (CSV, Parquet or station NetCDF) in canonical units.

    CSV and Parquet are read by :func:`probcast.ingest.tables.read_table` (truncated and
    corrupted files refused), station NetCDF (as ``probcast predict`` writes it) by the
    prediction-table reader; the values are converted by the file's units metadata
    (module docstring), then the table is validated
    (:func:`probcast.validate.validate_station_table`).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Unknown format, a damaged file, unconvertible units metadata, a sidecar
            of another CSV, or a table that fails validation (the message names the file).
    """
    from probcast.products.table_meta import to_canonical
    from probcast.validate import validate_station_table

    if path.suffix.lower() in (".nc", ".nc4"):
        from probcast.products.table_files import read_predictions

        table, _ = read_predictions(path)  # converted by the attribute's units
    else:
        from probcast.ingest.tables import read_table

        table = read_table(path, validate=False)  # validated once converted
        table = to_canonical(table, truth_units(path), path)
    return validate_station_table(table, source=str(path))


def truth_frame(truth: pd.DataFrame, name: str = "truth") -> pd.DataFrame:
    """A truth DataFrame in canonical units (by ``attrs["probcast_units"]``), its obs checked.

    The observations (the only values taken from the truth) are checked as
    :func:`probcast.validate.validate_station_table` checks a truth file's: numbers, no
    infinities, and within the physical range of their variable (float noise clipped);
    the rest of the table (raw forecasts, all-missing columns) is left to the matching.

    Raises:
        ValueError: Unconvertible units in its attrs, non-numeric or infinite
            observations, or observations outside their physical range (the message names
            the column and the units the values would fit).
    """
    from probcast.products.units import UNITS_ATTR, table_to_canonical

    recorded = truth.attrs.get(UNITS_ATTR) or {}
    if recorded:
        if not isinstance(recorded, dict):
            raise ValueError(
                f"{name}: attrs[{UNITS_ATTR!r}] must be a mapping {{'units': {{variable: "
                f"units}}}}, got {recorded!r}"
            )
        try:
            truth = table_to_canonical(truth, recorded, name)
        except (ValueError, TypeError) as err:
            if str(err).startswith(name):
                raise
            raise ValueError(
                f"{name}: cannot convert to canonical units from {recorded} ({err})"
            ) from None
    return _checked_obs(truth, name)


def _checked_obs(truth: pd.DataFrame, name: str) -> pd.DataFrame:
    """``truth`` with its ``obs_<var>`` columns checked (float noise clipped: a copy)."""
    from probcast.products.units import UNITS_ATTR
    from probcast.ranges import checked_values, ranged_variable
    from probcast.schema import OBS_PREFIX

    out = truth
    for col in [c for c in truth.columns if isinstance(c, str) and c.startswith(OBS_PREFIX)]:
        try:
            values = truth[col].to_numpy(dtype="float64")
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name}: column {col!r} is not numeric ({err})") from None
        var = ranged_variable(col)
        if var is None:
            continue
        hint = f" (a truth in other units records them in attrs[{UNITS_ATTR!r}])"
        clipped = checked_values(name, col, var, values, hint)
        if not np.array_equal(clipped, values, equal_nan=True):
            out = out.copy() if out is truth else out
            out[col] = clipped
    return out
