"""Operational runs: every NWP cycle through a pipeline file, with a state store.

- :mod:`~probcast.ops.pipeline`: the pipeline file (model, input per cycle, products,
  destinations) and cycle names.
- :mod:`~probcast.ops.state`: the state store (SQLAlchemy; SQLite by default, PostgreSQL by
  URL): cycles, steps and the lease that runs a cycle once.
- :mod:`~probcast.ops.cycle`: one cycle, acquire -> predict -> publish -> record, resumable.
- :mod:`~probcast.ops.publish`: atomic publishing to folders and fsspec URLs.
- :mod:`~probcast.ops.watch`: the new-data trigger (poll a folder for complete cycles).
- :mod:`~probcast.ops.cli`: ``probcast run`` / ``watch`` / ``serve``.

Everything here builds :class:`probcast.PredictRequest` objects and hands them to
:func:`probcast.run`; see ``docs/operations.md``.
"""
