"""``PredictRequest``: what to predict, from which model and input, into which output.

One request type, parsed and checked once, shared by the CLI, the demo, a scheduler, a
queue consumer or a service: they all build a request and hand it to
:func:`probcast.predict.runner.run`. Every option has one default, here (domain constants
come from :mod:`probcast.defaults`, pooling options from
:class:`~probcast.model.predictor.PredictOptions`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from probcast import defaults
from probcast.align.points import is_grid_path
from probcast.model.options import DomainPolicy, PredictOptions
from probcast.units import parse_units


class RequestError(ValueError):
    """A request that cannot be run (the message says which field and what was expected)."""


def _kind(value: Any) -> str:
    """The type of a value, with the value when it is short and plain (for the messages)."""
    name = type(value).__name__
    if value is None:
        return "None"
    if not isinstance(value, str | bytes | numbers.Number | list | tuple):
        return name
    text = repr(value)
    return f"{name} {text}" if len(text) <= 60 else f"{name} {text[:57]}..."


def _wrong(field: str, value: Any, expected: str, hint: str = "") -> RequestError:
    return RequestError(f"{field} must be {expected}, got {_kind(value)}{hint}")


def _integer(field: str, value: Any) -> int:
    """An integer (``int``, a NumPy integer; not a bool, a float or a string)."""
    if not isinstance(value, bool | np.bool_):
        with contextlib.suppress(TypeError):
            return operator.index(value)
    raise _wrong(field, value, "an integer")


def _number(field: str, value: Any) -> float:
    """A real number (not a bool or a string)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return float(value)
    raise _wrong(field, value, "a number")


def _flag(field: str, value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise _wrong(field, value, "True or False")


def _numbers(value: Any) -> tuple[float, ...] | None:
    """A number or a sequence of numbers as a tuple of floats; ``None`` for anything else."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return (float(value),)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return None
    items = list(value)
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in items):
        return tuple(float(v) for v in items)
    return None


def _levels(field: str, value: Any, parser: str) -> tuple[float, ...]:
    """Quantile levels or percentiles: a sequence of numbers (one number: one level)."""
    levels = _numbers(value)
    if levels is None:
        hint = f" (text from a command line: {parser})" if isinstance(value, str) else ""
        raise _wrong(field, value, "a sequence of numbers", hint)
    return levels


def _thresholds(value: Any) -> dict[str, tuple[float, ...]] | None:
    """``{var: thresholds}``; one number for a variable is one threshold."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        hint = " (text: parse_thresholds('tp:0.1,1'))" if isinstance(value, str) else ""
        raise _wrong("thresholds", value, "a mapping {variable: numbers}", hint)
    out = {}
    for var, ts in value.items():
        if not isinstance(var, str):
            raise _wrong("a variable of thresholds", var, "a name (str)")
        values = _numbers(ts)
        if values is None:
            raise _wrong(f"thresholds[{var!r}]", ts, "a number or a sequence of numbers")
        out[var] = values
    return out


def _is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike) and bool(os.fspath(value))


def _workdir(value: Any) -> str | os.PathLike[str]:
    if _is_path(value):
        return value
    hint = ""
    if hasattr(value, "heads") and hasattr(value, "spec"):  # a loaded TrainedModel
        hint = "; a loaded model goes to run(request, model=loaded), next to its workdir here"
    raise _wrong("model", value, "the model's workdir (a str or os.PathLike)", hint)


def _path_or_none(field: str, value: Any) -> Any:
    if value is None or _is_path(value):
        return value
    raise _wrong(field, value, "a path (a str or os.PathLike) or None")


def _text_or_none(field: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _wrong(field, value, "a str or None")


def _source(field: str, value: Any, *, grids: bool, optional: bool = False) -> Any:
    """A station table (path or DataFrame) or, with ``grids``, a grid (path or Dataset)."""
    if (optional and value is None) or _is_path(value) or isinstance(value, pd.DataFrame):
        return value
    if grids and hasattr(value, "data_vars"):  # an xarray.Dataset
        return value
    kinds = ["a path (str or os.PathLike)", "a pandas.DataFrame"]
    kinds += ["an xarray.Dataset"] if grids else []
    kinds += ["None"] if optional else []
    raise _wrong(field, value, ", ".join(kinds[:-1]) + f" or {kinds[-1]}")


def parse_levels(text: str) -> tuple[float, ...]:
    """``"0.05,0.5,0.95"`` -> quantile levels (each in (0, 1))."""
    try:
        levels = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise RequestError(f"quantiles must be numbers like 0.05,0.5,0.95, got {text!r}") from err
    return levels


def parse_percentiles(text: str) -> tuple[float, ...]:
    """``"5,50,95"`` -> percentiles in %."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise RequestError(f"percentiles must be numbers like 5,50,95, got {text!r}") from err


def parse_thresholds(items: str | Iterable[str]) -> dict[str, tuple[float, ...]]:
    """``"tp:0.1,1,5;t2m:273.15"`` (or a list of such items) -> ``{var: thresholds}``."""
    out: dict[str, tuple[float, ...]] = {}
    for text in [items] if isinstance(items, str) else list(items):
        for part in text.replace("/", ";").split(";"):
            if not part.strip():
                continue
            var, sep, values = part.partition(":")
            try:
                ts = tuple(float(v) for v in values.split(",") if v.strip())
            except ValueError:
                ts = ()
            if not sep or not ts:
                raise RequestError(
                    f"thresholds must look like 'tp:0.1,1,5;t2m:273.15', got {text!r}"
                )
            out[var.strip()] = ts
    return out


def is_grid(source: Any) -> bool:
    """Whether ``source`` is a gridded input (an ``xr.Dataset`` or a grid file/store)."""
    if hasattr(source, "data_vars"):
        return True
    return isinstance(source, str | os.PathLike) and is_grid_path(source)


@dataclasses.dataclass(frozen=True)
class PredictRequest:
    """One prediction job.

    Every field is checked when the request is built: a value of the wrong type or range
    is a :class:`RequestError` naming the field, the value's type and what was expected.
    Integers (``members``, ``seed``...) take ``int`` or NumPy integers, not floats or text;
    number sequences (``quantiles``, ``percentiles``, each variable's ``thresholds``) take
    any sequence of numbers, or one number as a sequence of one, and are stored as tuples.
    Text as a command line writes it is parsed by :func:`parse_levels`,
    :func:`parse_percentiles` and :func:`parse_thresholds`, not here.

    Attributes:
        model: Workdir of a trained model (a ``str`` or ``os.PathLike``; a model already
            loaded goes to :func:`probcast.predict.runner.run` next to it).
        input: Station table (CSV/Parquet path or DataFrame) or grid (NetCDF/Zarr/GRIB/
            kerchunk path or ``xr.Dataset``). A DataFrame is validated as a file is
            (:func:`probcast.validate.validate_station_table`).
        output: Where to write: a table file (``.csv``, ``.parquet``, ``.nc``) for station
            input; ``DIR/NAME.nc|.zarr`` for grids (one file per product). ``None``:
            return the results without writing (station input only).
        members: Coherent members per row or grid point (0: none; on station tables a
            target whose parameters are not its forecast, a generative head, a ``mixture``
            of networks or a recalibrated target, gets :data:`defaults.MEMBERS` when neither
            members nor quantiles are asked for: its only scoreable form).
        quantiles: Quantile levels in (0, 1) (station tables).
        percentiles: Percentiles in % (grids; ``None``: :data:`defaults.GRID_PERCENTILES`,
            or the quantiles as percentages when those are given; station tables: quantile
            columns at these levels / 100, next to ``quantiles``).
        thresholds: ``{var: thresholds}`` of exceedance probabilities (grids, ``None``:
            :data:`defaults.PRODUCT_THRESHOLDS`; station tables: none); one number for a
            variable is one threshold (``{"tp": 1.0}`` is ``{"tp": (1.0,)}``). A variable
            the model does not predict is refused before any prediction.
        params: Write the distribution parameters.
        combine: Pool of seed networks (``vincentize`` or ``mixture``).
        batch_size: Rows per forward pass.
        quantile_members: Members per row behind a generative head's quantiles.
        seed: Seed of the member draws.
        tile: Spatial tile edge in cells (grids).
        scheduler: Address of a dask.distributed scheduler (grids; default local threads).
        inflevel: Information kept by the bit rounding of gridded products.
        template: Past observations (a station table path or DataFrame with ``obs_<var>``,
            e.g. the training table) whose dependence the members take on by the Schaake
            shuffle (coherent across lead times, stations and variables); ``None``:
            members are independent across rows (station tables). With ``fc_<var>`` too,
            it also gives the input its recent forecast errors (:mod:`probcast.recent`).
        extrapolation: Rows outside the model's training domain (station tables,
            :mod:`probcast.model.applicability`): ``flag`` (the ``applicability`` column
            and a warning), ``warn`` (the warning only) or ``refuse`` (flag, and an error
            for a row beyond ``extrapolation_limit``).
        extrapolation_tolerance: Soft margin, a fraction of the training q0.001-q0.999
            width of an input, beyond which a row is flagged.
        extrapolation_limit: Hard margin (same unit) beyond which ``refuse`` raises.
        units: ``{var: units}`` of the user (``{"t2m": "degC", "tp": "mm"}``): thresholds
            are given, and outputs written, in them (:mod:`probcast.products.units`);
            ``None``: canonical units. A variable the model does not predict is refused
            before any prediction.
    """

    model: str | os.PathLike[str]
    input: Any
    output: str | os.PathLike[str] | None = None
    members: int = 0
    quantiles: tuple[float, ...] = ()
    percentiles: tuple[float, ...] | None = None
    thresholds: Mapping[str, Sequence[float]] | None = None
    params: bool = True
    combine: str = PredictOptions.combine
    batch_size: int = PredictOptions.batch_size
    quantile_members: int = PredictOptions.quantile_members
    seed: int = 0
    tile: int = 256
    scheduler: str | None = None
    inflevel: float = 0.99
    template: Any = None
    extrapolation: str = DomainPolicy.mode
    extrapolation_tolerance: float = DomainPolicy.tolerance
    extrapolation_limit: float = DomainPolicy.limit
    units: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        self._normalise()
        if self.members < 0:
            raise RequestError(f"members must be >= 0, got {self.members}")
        bad = [q for q in self.quantiles if not 0.0 < q < 1.0]
        if bad:
            raise RequestError(f"quantile levels must lie in (0, 1), got {bad}")
        pct = self.percentiles
        if pct is not None and (
            any(not 0.0 < p < 100.0 for p in pct) or list(pct) != sorted(set(pct))
        ):
            raise RequestError(
                f"percentiles must be strictly increasing values in (0, 100), got {list(pct)}"
            )
        for var, ts in (self.thresholds or {}).items():
            values = np.asarray(ts, dtype=float)
            if not len(ts) or not np.isfinite(values).all() or np.any(np.diff(values) <= 0):
                raise RequestError(
                    f"thresholds of {var!r} must be a non-empty increasing list of finite "
                    f"numbers, got {list(ts)}"
                )
        try:
            parse_units(self.units)
        except ValueError as err:
            raise RequestError(str(err)) from err
        if self.tile < 1:
            raise RequestError(f"tile must be >= 1, got {self.tile}")
        if not 0.0 < self.inflevel <= 1.0:
            raise RequestError(f"inflevel must lie in (0, 1], got {self.inflevel}")
        try:
            PredictOptions(self.combine, self.batch_size, self.quantile_members)
            DomainPolicy(self.extrapolation, self.extrapolation_tolerance, self.extrapolation_limit)
        except ValueError as err:
            raise RequestError(str(err)) from err

    def _normalise(self) -> None:
        """Check every field's type and store it in its plain form (``int``, ``tuple``...)."""
        fields = {
            "model": _workdir(self.model),
            "input": _source("input", self.input, grids=True),
            "output": _path_or_none("output", self.output),
            "template": _source("template", self.template, grids=False, optional=True),
            "scheduler": _text_or_none("scheduler", self.scheduler),
            "quantiles": _levels("quantiles", self.quantiles, "parse_levels('0.05,0.5')"),
            "thresholds": _thresholds(self.thresholds),
            "params": _flag("params", self.params),
        }
        if self.percentiles is not None:
            fields["percentiles"] = _levels(
                "percentiles", self.percentiles, "parse_percentiles('5,50,95')"
            )
        for name in ("members", "batch_size", "quantile_members", "seed", "tile"):
            fields[name] = _integer(name, getattr(self, name))
        for name in ("inflevel", "extrapolation_tolerance", "extrapolation_limit"):
            fields[name] = _number(name, getattr(self, name))
        for name, value in fields.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def options(self) -> PredictOptions:
        """The model's prediction options of this request."""
        return PredictOptions(self.combine, self.batch_size, self.quantile_members)

    @property
    def domain_policy(self) -> DomainPolicy:
        """How rows outside the training domain are treated (station tables)."""
        return DomainPolicy(
            self.extrapolation, self.extrapolation_tolerance, self.extrapolation_limit
        )

    @property
    def gridded(self) -> bool:
        """Whether the input is a grid."""
        return is_grid(self.input)

    @property
    def grid_percentiles(self) -> tuple[float, ...]:
        """Percentiles of a gridded prediction: ``percentiles`` and the ``quantiles`` in %.

        Both when both are given (as station tables take both), sorted; neither: the
        defaults.
        """
        pct = {*(self.percentiles or ()), *(round(100.0 * q, 10) for q in self.quantiles)}
        return tuple(sorted(pct)) if pct else defaults.GRID_PERCENTILES

    @property
    def station_quantiles(self) -> tuple[float, ...]:
        """Quantile levels of a station prediction: ``quantiles`` and ``percentiles`` / 100."""
        pct = [round(p / 100.0, 10) for p in self.percentiles or ()]
        return tuple(sorted({*self.quantiles, *pct}))

    def replace(self, **changes: Any) -> PredictRequest:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (provenance written with the products)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (
                f.name in ("input", "template")
                and value is not None
                and not isinstance(value, str | os.PathLike)
            ):
                value = f"<in-memory {type(value).__name__}>"
            elif isinstance(value, os.PathLike):
                value = str(value)
            elif isinstance(value, Mapping):
                value = {k: v if isinstance(v, str) else list(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
