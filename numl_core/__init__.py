"""numl: machine learning for neutrino-physics analysis (UI-agnostic core)."""

__version__ = "0.1.0"
