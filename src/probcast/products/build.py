"""Build gridded probabilistic products: members, percentiles, probabilities, parameters.

Every builder takes a :class:`~probcast.products.source.PredictiveSource` (or a Dataset that
:func:`~probcast.products.source.as_source` wraps) and returns a lazy, CF-decorated
``xr.Dataset`` whose leading dimension is the product dimension (IMPROVER layout):

=============  ==============================  =======================================
product        data variable(s)                leading dimension / coordinate
=============  ==============================  =======================================
members        ``<var>``                       ``realization`` (int32, standard_name)
percentiles    ``<var>``                       ``percentile`` (float32, units ``%``)
probabilities  ``probability_of_<sn>_above_    ``threshold`` (variable's standard_name
               threshold`` (one per dataset)   and units, ``spp__relative_to_threshold``)
parameters     ``<var>_<param>``               none
=============  ==============================  =======================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from probcast import defaults
from probcast.products import cf
from probcast.products.coherence import CONSTRAINTS
from probcast.products.source import (
    REALIZATION,
    Distribution,
    ParametricSource,
    PredictiveSource,
    as_source,
)

PRODUCTS = ("members", "percentiles", "probabilities", "parameters")

SourceLike = xr.Dataset | PredictiveSource


def _decorate(product: xr.Dataset, source: PredictiveSource) -> xr.Dataset:
    return cf.attach_grid(product, source.grid)


def build_members(
    data: SourceLike,
    *,
    n_members: int | None = defaults.MEMBERS,
    method: str = "quantiles",
    seed: int = 0,
) -> xr.Dataset:
    """Members of every variable along a leading ``realization`` dimension.

    Args:
        data: Source or Dataset (see :func:`~probcast.products.source.as_source`).
        n_members: Member count (any); None keeps the members of an ensemble input.
        method: ``quantiles`` (equidistant quantiles, ECC-Q) or ``random`` (draws).
        seed: Seed of the random draws.

    Returns:
        Lazy dataset with one ``(realization, ...)`` variable per input variable. Members
        obey :data:`~probcast.products.coherence.CONSTRAINTS` (td2m <= t2m, tmin <= tmax):
        equidistant quantiles are comonotone across variables, so a member crosses only
        where the two distributions cross, and is set to the upper variable's there.
    """
    source = as_source(data)
    out = xr.Dataset({v: source.members(v, n_members, method, seed) for v in source.variables})
    for low, high in CONSTRAINTS:  # td2m <= t2m member-wise, lazily, where both exist
        if low in out and high in out:
            out[low] = out[low].where(~(out[low] > out[high]), out[high])
    n = out.sizes[REALIZATION]
    out = out.assign_coords(
        {
            REALIZATION: (
                REALIZATION,
                np.arange(n, dtype=np.int32),
                {"standard_name": "realization", "units": "1", "long_name": "realization"},
            )
        }
    )
    for v in source.variables:
        out[v].attrs = cf.variable_attrs(v)
    return _decorate(out, source)


def _check_percentiles(percentiles: Sequence[float]) -> np.ndarray:
    values = np.asarray(percentiles, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all((values > 0) & (values < 100)):
        raise ValueError(f"percentiles must be a non-empty list in (0, 100), got {percentiles!r}")
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"percentiles must be strictly increasing, got {percentiles!r}")
    return values


def build_percentiles(
    data: SourceLike, percentiles: Sequence[float] = defaults.PRODUCT_PERCENTILES
) -> xr.Dataset:
    """Percentiles of every variable along a leading ``percentile`` dimension (in %).

    Args:
        data: Source or Dataset.
        percentiles: Strictly increasing percentiles in (0, 100).

    Returns:
        Lazy dataset with one ``(percentile, ...)`` variable per input variable.
    """
    source = as_source(data)
    values = _check_percentiles(percentiles)
    out = xr.Dataset(
        {v: source.quantiles(v, values / 100.0, "percentile") for v in source.variables}
    )
    out = out.assign_coords(
        percentile=(
            "percentile",
            values.astype(np.float32),
            {"units": "%", "long_name": "percentile"},
        )
    )
    for v in source.variables:
        out[v].attrs = cf.variable_attrs(v)
    return _decorate(out, source)


def build_probabilities(data: SourceLike, var: str, thresholds: Sequence[float]) -> xr.Dataset:
    """Probabilities of exceeding thresholds for one variable (one diagnostic per dataset).

    The data variable is ``probability_of_<standard_name>_above_threshold`` (units ``1``);
    the ``threshold`` coordinate carries the variable's standard_name and units, and
    ``spp__relative_to_threshold = "greater_than"`` as in IMPROVER. Variables that share a
    standard name (t2m, tmax, tmin) therefore go to separate datasets.

    Args:
        data: Source or Dataset.
        var: Variable name.
        thresholds: Strictly increasing thresholds in the variable's canonical units.

    Returns:
        Lazy dataset with one ``(threshold, ...)`` variable.
    """
    source = as_source(data)
    if var not in source.variables:
        raise ValueError(f"variable {var!r} not in the source; available: {source.variables}")
    ts = np.asarray(thresholds, dtype=np.float64)
    if ts.ndim != 1 or ts.size == 0 or not np.isfinite(ts).all() or np.any(np.diff(ts) <= 0):
        raise ValueError(
            f"thresholds of {var!r} must be a non-empty strictly increasing list of finite "
            f"numbers, got {thresholds!r}"
        )
    name = cf.probability_name(var)
    prob = source.exceedance(var, ts, "threshold")
    out = xr.Dataset({name: prob}).assign_coords(threshold=cf.threshold_coord(var, ts))
    attrs = {"long_name": name, "units": "1", "spp__relative_to_threshold": "greater_than"}
    if var in cf.CELL_METHODS:
        attrs["cell_methods"] = cf.CELL_METHODS[var]
    attrs["diagnostic"] = var
    out[name].attrs = attrs
    return _decorate(out, source)


def _param_attrs(source: ParametricSource, var: str, param: str) -> dict[str, str]:
    base = cf.variable_attrs(var)
    attrs = {k: str(v) for k, v in source.param_attrs[var][param].items() if k != "family"}
    family = source.family_name(var)
    attrs.setdefault(
        "long_name",
        f"{param} parameter of the {family} predictive distribution of {base['long_name']}",
    )
    attrs["distribution"] = family
    attrs["distribution_parameter"] = param
    # Location/scale parameters carry the variable's units; others are dimensionless.
    location_scale = param in ("loc", "mu", "mean", "scale", "sigma", "std")
    attrs.setdefault("units", base.get("units", "1") if location_scale else "1")
    return attrs


def build_parameters(data: SourceLike) -> xr.Dataset:
    """Distribution parameters as their own variables ``<var>_<param>``.

    Args:
        data: A parametric source or parameter Dataset.

    Returns:
        Lazy dataset of float32 parameter fields with ``distribution`` attributes.

    Raises:
        TypeError: If the source is an ensemble (it has no parameters).
    """
    source = as_source(data)
    if not isinstance(source, ParametricSource):
        raise TypeError("parameters product needs distribution parameters, got an ensemble")
    fields = {}
    for var, params in source.params.items():
        for param, field in params.items():
            out = field.astype(np.float32)
            out.attrs = _param_attrs(source, var, param)
            fields[f"{var}_{param}"] = out
    return _decorate(xr.Dataset(fields), source)


def build_products(
    data: xr.Dataset,
    *,
    families: Mapping[str, str | Distribution] | None = None,
    products: Iterable[str] = PRODUCTS,
    n_members: int | None = defaults.MEMBERS,
    percentiles: Sequence[float] = defaults.PRODUCT_PERCENTILES,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    method: str = "quantiles",
    seed: int = 0,
    member_dim: str = REALIZATION,
    chunks: Mapping[str, int] | None = None,
    provenance: cf.Provenance | None = None,
) -> dict[str, xr.Dataset]:
    """Build the requested products from parameters or members, with provenance.

    Args:
        data: Parameter fields ``<var>_<param>`` (with ``families``) or members along
            ``member_dim``.
        families: Variable -> distribution family for parameter input.
        products: Subset of ``members``, ``percentiles``, ``probabilities``,
            ``parameters`` (the latter needs parameter input).
        n_members: Member count of the members product.
        percentiles: Percentiles in % of the percentiles product.
        thresholds: Variable -> thresholds; defaults to
            :data:`probcast.defaults.PRODUCT_THRESHOLDS`; variables without thresholds get
            no probability product.
        method: Members method (``quantiles`` or ``random``).
        seed: Seed for random members.
        member_dim: Member dimension of ensemble input.
        chunks: Dask chunks (default 512 x 512 spatial).
        provenance: Global attributes; defaults to :class:`~probcast.products.cf.Provenance`.

    Returns:
        Product name -> lazy dataset: ``members``, ``percentiles``, ``parameters`` and
        ``probabilities_<var>`` (one per variable).
    """
    wanted = list(products)
    unknown = sorted(set(wanted) - set(PRODUCTS))
    if unknown:
        raise ValueError(f"unknown products {unknown}; expected a subset of {PRODUCTS}")
    source = as_source(data, families=families, member_dim=member_dim, chunks=chunks)
    prov = provenance or cf.Provenance()
    out: dict[str, xr.Dataset] = {}
    if "members" in wanted:
        out["members"] = build_members(source, n_members=n_members, method=method, seed=seed)
    if "percentiles" in wanted:
        out["percentiles"] = build_percentiles(source, percentiles)
    if "probabilities" in wanted:
        table = defaults.PRODUCT_THRESHOLDS if thresholds is None else thresholds
        for var in source.variables:
            if var in table:
                out[f"probabilities_{var}"] = build_probabilities(source, var, table[var])
    if "parameters" in wanted:
        out["parameters"] = build_parameters(source)
    return {
        name: cf.add_provenance(ds, prov, product=name.split("_")[0]) for name, ds in out.items()
    }
