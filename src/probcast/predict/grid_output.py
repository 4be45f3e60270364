"""Gridded predictive fields -> CF product files, written as a set or not at all.

``--output=DIR/NAME.nc`` gives one file per product, ``DIR/NAME_<product>.nc`` (or
``.zarr``): ``parameters`` (distribution parameters of parametric heads), ``percentiles``,
``probabilities_<var>`` (one per variable with thresholds) and ``members``. Each file is
built by :func:`probcast.products.build_products` and written (bit-rounded, compressed) by
:func:`probcast.products.write_products` into a staging folder next to the output; only
when all are complete are they renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import xarray as xr

from probcast import io
from probcast.dists import is_generative
from probcast.products import Provenance, build_products, write_products

SUFFIXES = (".nc", ".nc4", ".zarr")

MIN_KEEPBITS = 1


def product_paths(output: str | os.PathLike[str], names: Sequence[str]) -> dict[str, Path]:
    """``DIR/NAME.nc`` -> ``{product: DIR/NAME_<product>.nc}`` (same for ``.zarr``).

    Raises:
        ValueError: If the output suffix is not ``.nc``, ``.nc4`` or ``.zarr``.
    """
    out = Path(output)
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(
            f"--output {out}: gridded products need a name ending in {', '.join(SUFFIXES)}"
        )
    return {n: out.with_name(f"{out.stem}_{n}{out.suffix}") for n in names}


def model_fingerprint(workdir: str | os.PathLike[str]) -> str:
    """sha256 over the artefact's config, feature spec and metadata files."""
    digest = hashlib.sha256()
    for name in ("config.json", "features.json", "meta.json"):
        digest.update((Path(workdir) / name).read_bytes())
    return f"sha256:{digest.hexdigest()}"


@contextlib.contextmanager
def staging(output: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder next to ``output``, removed whatever happens.

    The temporaries that killed predictions left in that folder are removed first
    (:func:`probcast.io.sweep`: those of processes no longer alive).
    """
    out = Path(output)
    io.make_parent(out)  # a parent that is a file: named as such
    io.sweep(out.parent)
    folder = io.temp_name(out)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(staged: Mapping[str, Path], final: Mapping[str, Path]) -> None:
    """Move every staged product onto its final path (renames within one folder)."""
    for name, path in staged.items():
        io.replace(path, final[name])


def _merge(parts: Sequence[Mapping[str, xr.Dataset]]) -> dict[str, xr.Dataset]:
    out: dict[str, xr.Dataset] = {}
    for part in parts:
        for name, ds in part.items():
            out[name] = xr.merge([out[name], ds], combine_attrs="override") if name in out else ds
    return out


def grid_products(
    fields: xr.Dataset,
    heads: Mapping[str, str],
    *,
    members: int,
    percentiles: Sequence[float],
    thresholds: Mapping[str, Sequence[float]] | None,
    params: bool,
    chunks: Mapping[str, int],
    provenance: Provenance,
) -> dict[str, xr.Dataset]:
    """Lazy product datasets from parameter fields (parametric heads) and members.

    Args:
        fields: ``<var>_<param>`` fields and ``<var>`` members along ``realization``.
        heads: Target -> head family (``GENERATIVE`` for member fields).
        members: Members product size (0: no members product).
        percentiles: Percentiles in % (empty: none).
        thresholds: Target -> thresholds (None: ``defaults.PRODUCT_THRESHOLDS``).
        params: Include the parameters product.
        chunks: Dask chunks of the products.
        provenance: Global attributes.

    Returns:
        Product name -> dataset.
    """
    wanted = [p for p, on in (("members", members > 0), ("percentiles", bool(percentiles))) if on]
    wanted.append("probabilities")
    parts = []
    families = {v: h for v, h in heads.items() if not is_generative(h)}
    common = {
        "percentiles": list(percentiles) or [50.0],  # only used when requested
        "thresholds": thresholds,
        "chunks": dict(chunks),
        "provenance": provenance,
    }
    if families:
        names = [
            str(n) for n in fields.data_vars if str(n).startswith(tuple(f"{v}_" for v in families))
        ]
        parts.append(
            build_products(
                fields[names],
                families=families,
                products=wanted + (["parameters"] if params else []),
                n_members=members or None,
                **common,  # type: ignore[arg-type]
            )
        )
    generative = [v for v, h in heads.items() if is_generative(h)]
    if generative:
        parts.append(
            build_products(
                fields[generative],
                products=wanted,
                n_members=members or None,
                **common,  # type: ignore[arg-type]
            )
        )
    return _merge(parts)


def write_set(
    products: Mapping[str, xr.Dataset],
    output: str | os.PathLike[str],
    folder: Path,
    *,
    inflevel: float = 0.99,
) -> dict[str, Path]:
    """Write every product into the staging ``folder``, then move them all into place.

    Returns:
        Product name -> final path.
    """
    final = product_paths(output, list(products))
    staged = {n: folder / p.name for n, p in final.items()}
    for name, ds in products.items():
        # min_keepbits=1: numcodecs BitRound turns NaN (masked areas) into -0.0 when it
        # keeps 0 mantissa bits (the rounding carry overflows the exponent); 1 bit keeps NaN.
        write_products(ds, staged[name], inflevel=inflevel, min_keepbits=MIN_KEEPBITS)
    publish(staged, final)
    return final


def store_fields(fields: xr.Dataset, store: Path) -> xr.Dataset:
    """Compute the predictive fields once into a Zarr store and reopen it lazily."""
    fields = fields.copy()
    for var in fields.variables.values():
        var.encoding = {}
    fields.to_zarr(store, mode="w-", zarr_format=3, consolidated=False)
    opened = xr.open_zarr(store, consolidated=False, decode_timedelta=True)
    # A Zarr v3 store lists its arrays in no fixed order: put them back in the fields'
    # order, or the products' variable order (and so their bytes) changes from run to run.
    return xr.Dataset(
        {k: opened[k].variable for k in fields.data_vars},
        coords={k: opened[k].variable for k in fields.coords},
        attrs=opened.attrs,
    )
