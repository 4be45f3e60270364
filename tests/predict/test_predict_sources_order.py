"""The source flags of gridded products come in one order whatever the hash seed (audit).

``with_sources`` iterated a set of variable names, so the flags' order (and with it the
order of the HDF5 chunks in NetCDF products) followed ``PYTHONHASHSEED``: two processes
wrote different bytes for the same products, against the byte-identical reruns promised.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import numpy as np, xarray as xr
from probcast.predict.gridded import with_sources
from probcast.predict.tiles import source_field
names = ["tp", "t2m", "ws10", "msl", "tcc", "td2m", "u10", "v10"]
shape = ("y", "x")
ds = xr.Dataset({f"{v}_q50": (shape, np.zeros((2, 2))) for v in names})
for v in names:
    ds[f"{v}_q50"].attrs["diagnostic"] = v
fields = xr.Dataset({source_field(v): (shape, np.zeros((2, 2), "int8")) for v in names})
out = with_sources({"percentiles": ds}, fields, names, {"y": 2, "x": 2})
print(",".join(map(str, out["percentiles"].data_vars)))
"""


def test_flags_follow_the_products_variables_whatever_the_hash_seed():
    orders = set()
    for seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
        )
        orders.add(done.stdout.strip())
    assert len(orders) == 1, orders
    flags = [n for n in orders.pop().split(",") if n.endswith("_source")]
    assert flags == ["tp_source", "t2m_source", "ws10_source", "msl_source", "tcc_source",
                     "td2m_source", "u10_source", "v10_source"]  # fmt: skip
