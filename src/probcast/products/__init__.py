"""Gridded probabilistic products: build, describe (CF-1.8), compress and write.

Typical use::

    products = build_products(params, families={"t2m": "normal"}, provenance=Provenance(...))
    for name, ds in products.items():
        write_products(ds, f"out/{name}.nc", inflevel=0.99)

See docs/products.md.
"""

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
