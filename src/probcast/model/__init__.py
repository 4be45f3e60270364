"""Probabilistic models: predictive distributions, the network and the saved artefact.

Modules: :mod:`~probcast.dists` (families, CRPS), :mod:`~probcast.model.network`
(Flax NNX multi-task network), :mod:`~probcast.model.artefact` (save / load a trained model).
"""
