"""The benchmark harness: the demo, the skill table and the datasets' own references.

Not part of the library: it drives the library (through :func:`probcast.run`) on the
registry's benchmark datasets and compares every method. ``probcast demo`` and ``make skill``.
"""
