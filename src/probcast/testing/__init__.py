"""Synthetic test data with real coordinate names, in one place (IMPROVER ``synthetic_data``).

:mod:`~probcast.testing.stations` (canonical station tables), :mod:`~probcast.testing.grids`
(gridded forecasts and truth), :mod:`~probcast.testing.verification` (forecast/truth pairs
with known scores), :mod:`~probcast.testing.products` (parameter and member fields).
"""
