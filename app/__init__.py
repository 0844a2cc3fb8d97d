"""The numl dashboard (Panel): ``panel serve app/main.py`` or ``numl app``."""
