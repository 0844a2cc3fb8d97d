"""Cross-section DNNs for electron-nucleus scattering.

``config`` (XsecConfig), ``points`` (PointSet and the data preparation), ``model`` (the network),
``fit`` (normalisation-aware chi2), ``train`` (bootstrap and MC-dropout ensembles), ``metrics`` (bands,
predictive, coverage), ``transfer`` (transfer learning to other nuclei), ``result`` (XsecResult,
TransferResult), ``workflow`` (the ``run`` and ``transfer`` actions and their live plots), ``figures``
(matplotlib figures of a result).
"""
