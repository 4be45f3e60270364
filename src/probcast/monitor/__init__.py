"""Testing in production: input drift and skill decay of a deployed model.

Modules: :mod:`~probcast.monitor.reference` (the training statistics, ``domain.json``),
:mod:`~probcast.monitor.drift` (PSI, KS, spread ratio per feature),
:mod:`~probcast.monitor.skill` (join observations to the issued forecasts, score each case
once), :mod:`~probcast.monitor.state` (the SQLite state), :mod:`~probcast.monitor.baseline`
(EMOS and error references), :mod:`~probcast.monitor.rolling` (rolling CRPS/CRPSS/PIT and
the alerts), :mod:`~probcast.monitor.metrics` (Prometheus textfile),
:mod:`~probcast.monitor.report` (JSON and Markdown), :mod:`~probcast.monitor.config` (the
``monitor:`` YAML block), :mod:`~probcast.monitor.tables` (the inputs, read and coerced file
by file, forecasts in canonical units), :mod:`~probcast.monitor.replay` and
:mod:`~probcast.monitor.scenario` (replay of a benchmark with an injected fault) and
:mod:`~probcast.monitor.cli` (``probcast monitor``).
See docs/monitoring-production.md.
"""
