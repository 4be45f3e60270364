"""Checking a request or a pipeline file loads no numerical stack (JAX): ``probcast run
--status``, ``cost`` and ``model list`` start in about a second, not four."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["probcast.predict.request", "probcast.ops.pipeline_check", "probcast.align.points"],
)
def test_no_jax_for_checks(module: str) -> None:
    heavy = "sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax'))"
    code = f"import sys, {module}; print({heavy})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_lazy_packages_still_export_their_names() -> None:
    from probcast import align, products

    assert callable(products.build_products) and callable(align.align_truth)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = products.nothing
