"""Uncertainties: densities of systematic toys (Gaussian, marginal Gaussian, flows), classifier
two-sample tests and the near-to-far transformer.

``config`` (:class:`~numl_core.uncertainty.config.UncertaintyConfig`), ``model`` (density models),
``c2st``, ``ndfd`` (near-to-far models), ``train`` (fitting the flow and the near-to-far models),
``result`` (:class:`~numl_core.uncertainty.result.UncertaintyResult`), ``workflow`` (the run, its live
plots, :data:`~numl_core.uncertainty.workflow.WORKFLOW`) and ``figures`` (matplotlib figures of a result)."""
