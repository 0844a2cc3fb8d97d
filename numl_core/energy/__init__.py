"""Neutrino energy and direction from particle lists: model, losses, weights, training, metrics, export."""
