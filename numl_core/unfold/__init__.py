"""Unfolding: OmniFold and Iterative Bayesian Unfolding on the ND280 CC0pi sample, with throws and metrics.

``config`` (UnfoldingConfig), ``events`` (sample, features, ensemble weights), ``user_files`` (a
user's MC and data files, their throw-weight columns), ``inputs``
(UnfoldingInputs), ``model`` (classifier ensembles), ``train`` (their training), ``omnifold`` and
``omnifold_distributed`` (the unbinned algorithm, here or on a Dask cluster), ``ibu`` (D'Agostini's
iterative unfolding), ``compare`` (histograms, covariances, chi2, the T2K overlay), ``metrics``,
``result`` (UnfoldResult), ``workflow`` (run, live plots, the registered WORKFLOW) and ``figures``
(matplotlib figures of a result).
"""
