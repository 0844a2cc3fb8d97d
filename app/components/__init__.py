"""Building blocks shared by the dashboard pages: job panel, live curves, run browser."""
