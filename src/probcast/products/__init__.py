"""Gridded probabilistic products: build, describe (CF-1.8), compress and write.

Typical use::

    products = build_products(params, families={"t2m": "normal"}, provenance=Provenance(...))
    for name, ds in products.items():
        write_products(ds, f"out/{name}.nc", inflevel=0.99)

See docs/products.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probcast.products.build import (
        PRODUCTS,
        build_members,
        build_parameters,
        build_percentiles,
        build_probabilities,
        build_products,
    )
    from probcast.products.cf import Provenance, add_provenance
    from probcast.products.compress import bitround, information_keepbits
    from probcast.products.source import (
        Distribution,
        EnsembleSource,
        ParametricSource,
        PredictiveSource,
        as_source,
    )
    from probcast.products.write import write_products

_HOMES = {
    "build": ("PRODUCTS", "build_members", "build_parameters", "build_percentiles",
              "build_probabilities", "build_products"),
    "cf": ("Provenance", "add_provenance"),
    "compress": ("bitround", "information_keepbits"),
    "source": ("Distribution", "EnsembleSource", "ParametricSource", "PredictiveSource",
               "as_source"),
    "write": ("write_products",),
}  # fmt: skip
"""Where each name of the package lives: imported on first use (PEP 562), so that importing
one light submodule (``products.units``, ``products.table``) does not load them all."""


def __getattr__(name: str) -> Any:
    for module, names in _HOMES.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRODUCTS",
    "Distribution",
    "EnsembleSource",
    "ParametricSource",
    "PredictiveSource",
    "Provenance",
    "add_provenance",
    "as_source",
    "bitround",
    "build_members",
    "build_parameters",
    "build_percentiles",
    "build_probabilities",
    "build_products",
    "information_keepbits",
    "write_products",
]
