"""One module per workflow page, each declaring ``PAGE = PageSpec(...)`` (see :mod:`app.components.page`)."""
