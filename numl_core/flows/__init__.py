"""Normalizing flows: event generation and importance sampling (:mod:`generator`, :mod:`sampling`), and
flow-based uncertainty and two-sample tests."""
