"""Uncertainties: densities of systematic toys (Gaussian, marginal Gaussian, flows), classifier
two-sample tests and the near-to-far transformer (:mod:`~numl_core.uncertainty.workflow`)."""
