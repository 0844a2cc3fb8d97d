"""Unfolding: Iterative Bayesian Unfolding and OmniFold, with throws and metrics."""
