"""Known-good outputs (IMPROVER acceptance style): compare, or record with an env switch.

``tests/acceptance/known_good.json`` holds, per case, the layout (exact) and the scores
(within a tolerance) of a fixed small run. A changed layout or a score off by more than
the tolerance fails. After an intended change, regenerate with
``PROBCAST_UPDATE_KNOWN_GOOD=1 make test`` and commit the file with the change that
explains it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

KNOWN_GOOD = Path(__file__).with_name("known_good.json")


class KnownGood:
    """Compares a case's outputs with the recorded ones (or records them)."""

    def __init__(self) -> None:
        self.update = os.environ.get("PROBCAST_UPDATE_KNOWN_GOOD") == "1"
        self.data: dict[str, Any] = (
            json.loads(KNOWN_GOOD.read_text()) if KNOWN_GOOD.exists() else {}
        )

    def check(self, case: str, layout: Any, scores: dict[str, float], rtol: float) -> None:
        """Layout must match exactly; every score within ``rtol`` (relative)."""
        if self.update:
            self.data[case] = {"layout": layout, "scores": scores, "rtol": rtol}
            KNOWN_GOOD.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")
            return
        if case not in self.data:
            pytest.fail(f"no known-good output for {case!r} (PROBCAST_UPDATE_KNOWN_GOOD=1)")
        good = self.data[case]
        assert layout == good["layout"], f"{case}: output layout changed"
        assert set(scores) == set(good["scores"]), f"{case}: scored quantities changed"
        off = {
            k: (v, good["scores"][k])
            for k, v in scores.items()
            if not math.isclose(v, good["scores"][k], rel_tol=good["rtol"], abs_tol=1e-9)
        }
        assert not off, f"{case}: scores moved beyond rtol={good['rtol']} (now, known-good): {off}"


@pytest.fixture(scope="session")
def known_good() -> KnownGood:
    """The known-good store."""
    return KnownGood()
