"""Benchmarks: one module per workflow, each exposing ``run(quick: bool) -> dict``."""
