"""The host shuffle buffer of streamed training: transformed rows, drawn by index.

:class:`ShuffleBuffer` holds up to ``capacity`` transformed rows (a
:class:`~probcast.features.Batch`) in arrays allocated once. :meth:`ShuffleBuffer.add`
copies a transformed record batch in at the end; :meth:`ShuffleBuffer.draw` takes ``k``
rows at uniformly random positions (gathered in position order, one copy of ``k`` rows) and
moves the undrawn rows of the tail into the holes they leave (at most ``k`` rows moved).
Nothing else is copied: the buffer is never concatenated or permuted as a whole. The order
within a drawn chunk is shuffled later, on the device, by the step's index array.
"""

from __future__ import annotations

import numpy as np

from probcast.features import Batch

FIELDS = ("x", "station", "center", "y", "mask")
"""Per-row fields of a :class:`Batch` (``scale`` is per target and shared)."""


class ShuffleBuffer:
    """A fixed-capacity buffer of transformed rows (see the module docstring).

    Args:
        capacity: Most rows held.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.n = 0
        self._arrays: dict[str, np.ndarray] = {}
        self._scale: np.ndarray | None = None

    def add(self, piece: Batch) -> None:
        """Copy the rows of ``piece`` in at the end.

        Raises:
            ValueError: The buffer has no room for them.
        """
        m = len(piece)
        if self.n + m > self.capacity:
            raise ValueError(f"shuffle buffer full: {self.n} + {m} rows > {self.capacity}")
        if not self._arrays:
            self._scale = piece.scale
            for f in FIELDS:
                a = getattr(piece, f)
                self._arrays[f] = np.empty((self.capacity, *a.shape[1:]), dtype=a.dtype)
        for f in FIELDS:
            self._arrays[f][self.n : self.n + m] = getattr(piece, f)
        self.n += m

    def draw(self, rng: np.random.Generator, k: int) -> Batch:
        """Remove ``k`` rows drawn uniformly without replacement; return them."""
        k = min(int(k), self.n)
        pos = np.sort(rng.choice(self.n, size=k, replace=False))
        rest = self.n - k
        holes = pos[pos < rest]  # drawn rows that the undrawn tail rows fill
        drawn_tail = np.zeros(k, dtype=bool)
        drawn_tail[pos[pos >= rest] - rest] = True
        movers = rest + np.flatnonzero(~drawn_tail)
        out = {f: np.take(a[: self.n], pos, axis=0) for f, a in self._arrays.items()}
        for a in self._arrays.values():
            a[holes] = a[movers]
        self.n = rest
        assert self._scale is not None
        return Batch(out["x"], out["station"], out["center"], self._scale, out["y"], out["mask"])
