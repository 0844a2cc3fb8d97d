"""Neutrino energy and direction from particle lists: model, losses, weights, training, metrics, export,
and matplotlib figures of a result (:mod:`~numl_core.energy.figures`)."""
