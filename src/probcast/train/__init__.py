"""Training: data on device, objective, loop, checkpoints, tracking and the CLI.

Entry point: :func:`probcast.train.loop.train` (``probcast train`` on the command line).
"""
