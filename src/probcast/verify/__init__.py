"""Verification: proper scores, calibration diagnostics, skill, aggregation and the report.

Modules: :mod:`~probcast.verify.scores` (CRPS, errors, Brier),
:mod:`~probcast.verify.calibration` (PIT, rank histograms, spread-skill, coverage),
:mod:`~probcast.verify.pointwise` (per-case scores of any form of
:class:`~probcast.dists.Predictive`; tables are parsed by :mod:`probcast.products.table`),
:mod:`~probcast.verify.aggregate` (tidy tables, files), :mod:`~probcast.verify.skill` (CRPSS,
block bootstrap), :mod:`~probcast.verify.evaluate` (:func:`~probcast.verify.evaluate.verify`),
:mod:`~probcast.verify.report` (HTML) and :mod:`~probcast.verify.cli` (``probcast verify``).
Gridded products against a gridded analysis: :mod:`~probcast.verify.grid_inputs` (reading,
units), :mod:`~probcast.verify.grid_match` (same grid), :mod:`~probcast.verify.gridded`
(block-wise scoring), :mod:`~probcast.verify.grid_stats` (streaming sums),
:mod:`~probcast.verify.grid_results` (tidy scores, maps) and
:mod:`~probcast.verify.grid_cli`. See docs/verification.md.
"""
