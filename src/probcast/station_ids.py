"""Station ids as text, one spelling per station whatever the column's dtype.

probcast keys stations by text (``"7"``, ``"010010-99999"``, ``"KBOS"``). Tables give ids as
text, integers or, once a column of integers has passed through a float (a Parquet column
written from a frame with missing values, a NumPy array of mixed numbers), floats: ``7.0``
formats as ``"7.0"`` and would be another station than the ``"7"`` a model was trained on
(its rows "unseen", predicted with the unknown-station embedding). Integral floats are
therefore written as integers; text is kept as it is (leading zeros are part of an id).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

PAD_MARK = "~pad"
"""In a station id, marks a padding row: a copy of another row, added only to reach a row
count the compiled kernels already know (``probcast serve``); never part of an answer."""


def is_pad(value: object) -> bool:
    """Whether station id ``value`` marks a padding row (:data:`PAD_MARK`)."""
    return PAD_MARK in str(value)


def pad_rows(station: pd.Series) -> np.ndarray:
    """Which rows of a station column are padding rows (:data:`PAD_MARK`), as booleans."""
    marked = station.astype(str).str.contains(PAD_MARK, regex=False)
    return np.asarray(marked.to_numpy(dtype=bool))


def text_of(value: object) -> str:
    """One id as text: an integral float as its integer, anything else as ``str``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        number = float(value)
        if np.isfinite(number) and number.is_integer() and abs(number) < 2**53:
            return str(int(number))
    return str(value)


def as_text(station: pd.Series) -> pd.Series:
    """Station ids as text (``astype(str)``'s dtype), integral floats written as integers.

    Args:
        station: A station column of any dtype (no missing values: callers refuse them).

    Returns:
        The ids as Python strings, index kept: ``7``, ``7.0`` and ``"7"`` all give ``"7"``;
        ``"007"`` stays ``"007"`` and ``7.5`` gives ``"7.5"``.
    """
    if pd.api.types.is_integer_dtype(station) or pd.api.types.is_bool_dtype(station):
        return station.astype(str)
    if pd.api.types.is_float_dtype(station):
        values = station.to_numpy(dtype="float64")
        if np.all(np.isfinite(values) & (values == np.round(values)) & (abs(values) < 2**53)):
            return pd.Series(values.astype("int64"), index=station.index).astype(str)
    elif pd.api.types.infer_dtype(station, skipna=False) == "string":
        return station.astype(str)
    if isinstance(station.dtype, pd.CategoricalDtype):
        names = pd.Series(station.cat.categories)
        mapped = dict(zip(names, as_text(names), strict=True))
        return station.map(mapped).astype(str)
    return station.map(text_of).astype(str)
