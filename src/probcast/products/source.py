"""Predictive sources: one interface over distribution parameters and ensemble members.

A product builder asks a source for quantiles, exceedance probabilities or members of one
variable; it does not care whether the forecast is a parametric distribution on a grid
(``<var>_<param>`` fields plus a family name per variable) or a set of members along a
``realization`` dimension. Everything stays lazy (one dask graph over the spatial chunks).
Quantiles and members of parameters are limited to the variable's physical bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import dask.array as dsa
import numpy as np
import xarray as xr

from probcast import schema
from probcast.products import kernels

REALIZATION = "realization"
DEFAULT_CHUNK = 512
POINT_DIM = "point"
"""Dimension of scattered grid points (1-D spatial layout, e.g. ``gfsnam-precip-grid``)."""
"""Default spatial chunk edge; 512 x 512 x 51 members of float32 is ~53 MB per block."""


@runtime_checkable
class Distribution(Protocol):
    """Predictive distribution family (``probcast.dists.get(name)``)."""

    def quantile(self, params: dict[str, Any], q: Any) -> Any:
        """Return quantiles at levels ``q``, broadcast elementwise against the parameters."""
        ...

    def cdf(self, params: dict[str, Any], x: Any) -> Any:
        """Return the CDF at ``x``, broadcast elementwise against the parameters."""
        ...

    def sample(self, params: dict[str, Any], key: Any, n: int) -> Any:
        """Return ``n`` random draws, shape ``(..., n)``."""
        ...


def get_distribution(family: str | Distribution) -> Distribution:
    """Return the distribution object for a family name (or pass an object through).

    Args:
        family: Registered family name or an object implementing :class:`Distribution`.

    Returns:
        The distribution object.
    """
    if not isinstance(family, str):
        return family
    # Imported lazily: the model package pulls in JAX, which ensemble-only users don't need.
    from probcast import dists

    return dists.get(family)


class PredictiveSource(Protocol):
    """What product builders need from a gridded probabilistic forecast."""

    variables: tuple[str, ...]
    grid: xr.Dataset
    """Dataset holding the coordinates and grid-mapping variable of the input."""

    def quantiles(self, var: str, q: np.ndarray, dim: str) -> xr.DataArray:
        """Quantiles at levels ``q`` in (0, 1) stacked along a new leading ``dim``."""
        ...

    def exceedance(self, var: str, thresholds: np.ndarray, dim: str) -> xr.DataArray:
        """P(X > t) for each threshold, stacked along a new leading ``dim``."""
        ...

    def members(self, var: str, n: int | None, method: str, seed: int) -> xr.DataArray:
        """``n`` members along a leading ``realization`` dimension."""
        ...


def _chunk_spatial(ds: xr.Dataset, chunks: Mapping[str, int] | None) -> xr.Dataset:
    """Chunk ``ds`` over its spatial dims and by one along the other dims.

    The spatial dims are the last two, or the last one alone when it is a 1-D ``point``
    dim of scattered grid points (chunked by ``DEFAULT_CHUNK**2`` points, one block as
    large as a 2-D one, instead of 512 points per lead time and member).
    """
    if chunks is None:
        chunks = {}
        for name in ds.data_vars:
            dims = ds[name].dims
            spatial = dims[-1:] if dims and dims[-1] == POINT_DIM else dims[-2:]
            for d in spatial:
                size = DEFAULT_CHUNK * DEFAULT_CHUNK if d == POINT_DIM else DEFAULT_CHUNK
                chunks.setdefault(str(d), size)
            for d in dims[: len(dims) - len(spatial)]:
                chunks.setdefault(str(d), 1)
    return ds.chunk({d: c for d, c in chunks.items() if d in ds.dims})


def _new_axis(
    func: Callable[..., np.ndarray],
    arrays: Sequence[xr.DataArray],
    dim: str,
    size: int,
    *,
    core: str | None = None,
) -> xr.DataArray:
    """Apply ``func(*blocks) -> (size, ...)`` block-wise: a new leading ``dim``, C order.

    The block functions put the new axis first themselves (for JAX families inside the
    compiled code, where XLA fuses it), so blocks need no transposing copy when rounded and
    written (docs/products.md).

    Args:
        func: Block function; the blocks of ``arrays`` in, ``(size, *block shape)`` out
            (without the ``core`` axis).
        arrays: Inputs with the same dims (broadcast first).
        dim: Name of the new leading dimension.
        size: Its length.
        core: Leading input dimension consumed by ``func`` (one chunk), e.g. the members.
    """
    fields = xr.broadcast(*arrays)
    template = fields[0]
    dims = tuple(template.dims)
    index = tuple(range(len(dims)))
    data = dsa.core.unify_chunks(*(x for f in fields for x in (f.transpose(*dims).data, index)))[1]
    if core is not None and (dims[0] != core or len(data[0].chunks[0]) != 1):
        raise ValueError(f"{core!r} must be the first dimension, in one chunk")
    out_dims: tuple[Hashable, ...] = dims if core is None else dims[1:]
    out_chunks = ((size,), *data[0].chunks[len(dims) - len(out_dims) :])
    extra = {} if core is not None else {"new_axis": 0}
    result = dsa.map_blocks(func, *data, chunks=out_chunks, dtype=np.float32, **extra)
    coords = {n: c for n, c in template.coords.items() if set(c.dims) <= set(out_dims)}
    return xr.DataArray(result, dims=(dim, *out_dims), coords=coords)


def _grid_of(ds: xr.Dataset) -> xr.Dataset:
    grid = ds.coords.to_dataset()
    for name, var in ds.data_vars.items():
        if "grid_mapping_name" in var.attrs:
            grid[name] = var
    return grid


class ParametricSource:
    """Distribution parameters ``<var>_<param>`` on a grid plus one family per variable.

    Args:
        ds: Dataset with fields ``<var>_<param>``, dims like
            ``(forecast_reference_time?, forecast_period, y, x)``.
        families: Variable -> family name (or distribution object). When None, read from
            the ``distribution`` (or ``family``) attribute of each ``<var>_<param>`` field.
        chunks: Dask chunks; default 512 x 512 over the last two dims, 1 elsewhere.

    Raises:
        ValueError: If a variable has no parameter fields or no family.
    """

    def __init__(
        self,
        ds: xr.Dataset,
        families: Mapping[str, str | Distribution] | None = None,
        chunks: Mapping[str, int] | None = None,
    ) -> None:
        families = dict(families) if families is not None else _families_from_attrs(ds)
        if not families:
            raise ValueError(
                "no distribution families: pass families={'t2m': 'normal', ...} or set a "
                "'distribution' attribute on each <var>_<param> field"
            )
        self.grid = _grid_of(ds)
        chunked = _chunk_spatial(ds, chunks)
        self.params: dict[str, dict[str, xr.DataArray]] = {}
        self.families = families
        self.param_attrs: dict[str, dict[str, dict[str, Any]]] = {}
        for var in families:
            names = [str(n) for n in ds.data_vars if str(n).startswith(f"{var}_")]
            if not names:
                raise ValueError(
                    f"variable {var!r}: no parameter fields named '{var}_<param>' in the "
                    f"input; found {sorted(map(str, ds.data_vars))}"
                )
            fields = xr.broadcast(*(chunked[n] for n in names))
            self.params[var] = {n[len(var) + 1 :]: f for n, f in zip(names, fields, strict=True)}
            self.param_attrs[var] = {n[len(var) + 1 :]: dict(ds[n].attrs) for n in names}
        self.variables = tuple(families)
        self._dists = {v: get_distribution(f) for v, f in families.items()}

    def family_name(self, var: str) -> str:
        """Return the family name of ``var`` (the class name for distribution objects)."""
        fam = self.families[var]
        return fam if isinstance(fam, str) else type(fam).__name__

    def _kernel(self, var: str, key: tuple[Any, ...], body: kernels.Body) -> Callable:
        """Block function ``(*param blocks) -> (k, ...)`` float32 for ``body``.

        ``body(dist, params, lo, hi, xp)`` returns ``(..., k)``; its last axis is moved
        first, in C order. Registered families are JAX code, jit-compiled once per family
        and ``key`` (kind, then the levels or thresholds), shared by the variables of the
        family (:mod:`probcast.products.kernels`). Distribution objects passed in directly
        are called eagerly with ``xp = numpy`` (one transposing copy).
        """
        names = list(self.params[var])
        dist = self._dists[var]
        bounds = schema.bounds(var)
        family = self.families[var]
        if isinstance(family, str):
            fkey = (family, key)
            fn = kernels.compiled(fkey, dist, body)

            def kernel(*blocks: np.ndarray) -> np.ndarray:
                params = dict(zip(names, blocks, strict=True))
                return kernels.run(fkey, fn, params, bounds, len(key) - 1)

            return kernel

        def eager(*blocks: np.ndarray) -> np.ndarray:
            params = dict(zip(names, blocks, strict=True))
            values = np.moveaxis(body(dist, params, *bounds, np), -1, 0)
            return np.ascontiguousarray(values, dtype=np.float32)

        return eager

    def quantiles(self, var: str, q: np.ndarray, dim: str) -> xr.DataArray:
        """Quantiles at levels ``q`` in (0, 1) stacked along a new leading ``dim``."""
        levels = np.asarray(q, dtype=np.float64)
        kernel = self._kernel(var, ("quantiles", *levels.tolist()), kernels.quantile_body(levels))
        return _new_axis(kernel, list(self.params[var].values()), dim, levels.size)

    def exceedance(self, var: str, thresholds: np.ndarray, dim: str) -> xr.DataArray:
        """P(X > t) = 1 - F(t) for each threshold, stacked along a new leading ``dim``."""
        ts = [float(t) for t in thresholds]
        kernel = self._kernel(var, ("exceedance", *ts), kernels.exceedance_body(ts))
        return _new_axis(kernel, list(self.params[var].values()), dim, len(ts))

    def members(self, var: str, n: int | None, method: str, seed: int) -> xr.DataArray:
        """``n`` members: equidistant quantiles (ECC-Q) or random draws per chunk.

        ``method="quantiles"`` takes levels ``i / (n + 1)`` (ECC-Q, Schefzik et al. 2013):
        deterministic, independent of chunking, smooth, compressible. ``method="random"`` calls
        ``distribution.sample`` with a key folded from ``seed`` and the chunk position;
        the draws are reproducible for a given chunking.
        """
        if n is None or n < 1:
            raise ValueError(f"n_members must be a positive integer, got {n!r}")
        if method == "quantiles":
            levels = np.arange(1, n + 1) / (n + 1)
            return self.quantiles(var, levels, REALIZATION)
        if method == "random":
            return self._random_members(var, n, seed)
        raise ValueError(f"method must be 'quantiles' or 'random', got {method!r}")

    def _random_members(self, var: str, n: int, seed: int) -> xr.DataArray:
        import jax

        names = list(self.params[var])
        dist = self._dists[var]
        lo, hi = schema.bounds(var)  # within the physical bounds, as the quantiles
        family = self.families[var]
        draw: Callable[[dict[str, Any], Any], Any]
        if isinstance(family, str):  # one compiled function per family and member count
            fn = kernels.compiled_draw(family, dist, n)

            def draw(params: dict[str, Any], key: Any) -> Any:
                dtype = np.result_type(*params.values())
                return fn(params, key, np.asarray(lo, dtype=dtype), np.asarray(hi, dtype=dtype))

        else:

            def draw(params: dict[str, Any], key: Any) -> Any:
                return np.clip(np.moveaxis(dist.sample(params, key, n), -1, 0), lo, hi)

        def kernel(*blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            loc = block_info[0]["chunk-location"] if block_info else (0,)
            nblocks = block_info[0]["num-chunks"] if block_info else (1,)
            index = int(np.ravel_multi_index(loc, nblocks))
            key = jax.random.fold_in(jax.random.key(seed), index)
            params = dict(zip(names, blocks, strict=True))
            return np.ascontiguousarray(draw(params, key), dtype=np.float32)

        return _new_axis(kernel, list(self.params[var].values()), REALIZATION, n)


def _families_from_attrs(ds: xr.Dataset) -> dict[str, str | Distribution]:
    families: dict[str, str | Distribution] = {}
    for name, field in ds.data_vars.items():
        family = field.attrs.get("distribution", field.attrs.get("family"))
        if family is None or "_" not in str(name):
            continue
        var = str(name).rsplit("_", 1)[0]
        families.setdefault(var, str(family))
    return families


class EnsembleSource:
    """Ensemble members along a member dimension (renamed to ``realization``).

    Args:
        ds: Dataset whose data variables have the member dimension.
        member_dim: Name of the member dimension in ``ds`` (``number`` for cfgrib).
        chunks: Dask chunks over the other dims; the member dim is always one chunk.

    Raises:
        ValueError: If no data variable has ``member_dim``.
    """

    def __init__(
        self,
        ds: xr.Dataset,
        member_dim: str = REALIZATION,
        chunks: Mapping[str, int] | None = None,
    ) -> None:
        names = [str(n) for n, v in ds.data_vars.items() if member_dim in v.dims]
        if not names:
            raise ValueError(
                f"no data variable has the member dimension {member_dim!r}; "
                f"dims found: {sorted(map(str, ds.dims))}"
            )
        if member_dim != REALIZATION:
            ds = ds.rename({member_dim: REALIZATION})
        self.grid = _grid_of(ds.drop_dims(REALIZATION))
        ds = ds[names].transpose(REALIZATION, ...)
        chunked = _chunk_spatial(ds.drop_vars(REALIZATION, errors="ignore"), chunks)
        self.data = chunked.chunk({REALIZATION: -1})
        self.variables = tuple(names)

    def _values(self, var: str) -> xr.DataArray:
        return self.data[var]

    def quantiles(self, var: str, q: np.ndarray, dim: str) -> xr.DataArray:
        """Empirical quantiles (linear interpolation, as IMPROVER) along the members."""
        levels = np.asarray(q, dtype=np.float64) * 100.0

        def kernel(block: np.ndarray) -> np.ndarray:
            return np.percentile(block, levels, axis=0).astype(np.float32)

        return _new_axis(kernel, [self._values(var)], dim, levels.size, core=REALIZATION)

    def exceedance(self, var: str, thresholds: np.ndarray, dim: str) -> xr.DataArray:
        """Fraction of finite members strictly above each threshold (NaN if none finite)."""
        ts = np.asarray(thresholds, dtype=np.float64)

        def kernel(block: np.ndarray) -> np.ndarray:
            count = np.isfinite(block).sum(axis=0)
            above = np.stack([(block > t).sum(axis=0) for t in ts])
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(count > 0, above / count, np.nan).astype(np.float32)

        return _new_axis(kernel, [self._values(var)], dim, ts.size, core=REALIZATION)

    def members(self, var: str, n: int | None, method: str, seed: int) -> xr.DataArray:
        """The members themselves, or ``n`` equidistant empirical quantiles when ``n`` differs.

        Args:
            var: Variable name.
            n: Member count; None keeps the input members.
            method: Ignored for ensembles (the input members are used as they are).
            seed: Ignored for ensembles.

        Returns:
            Members along a leading ``realization`` dimension.
        """
        values = self._values(var)
        if n is None or n == values.sizes[REALIZATION]:
            return values.astype(np.float32)
        levels = np.arange(1, n + 1) / (n + 1)
        return self.quantiles(var, levels, REALIZATION)


def as_source(
    data: xr.Dataset | PredictiveSource,
    *,
    families: Mapping[str, str | Distribution] | None = None,
    member_dim: str = REALIZATION,
    chunks: Mapping[str, int] | None = None,
) -> PredictiveSource:
    """Wrap ``data`` in the matching source: ensemble when it has ``member_dim``.

    Args:
        data: Parameter fields, ensemble members, or an existing source.
        families: Families for parameter fields (see :class:`ParametricSource`).
        member_dim: Member dimension name of an ensemble input.
        chunks: Dask chunks.

    Returns:
        A :class:`PredictiveSource`.
    """
    if not isinstance(data, xr.Dataset):
        return data
    if member_dim in data.dims and families is None:
        return EnsembleSource(data, member_dim, chunks)
    return ParametricSource(data, families, chunks)
