"""Cross-section DNNs: model, bootstrap/MC-dropout ensembles, normalisation-aware fit, transfer learning."""
