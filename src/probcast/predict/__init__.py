"""Prediction: load a trained model, predict a station table, write the outputs."""
