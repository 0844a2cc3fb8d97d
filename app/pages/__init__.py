"""One module per workflow page, each with ``WORKFLOW_NAME`` and ``build_page(ctx)``."""
