"""Stream consumers: one module each, all on the shared loop in :mod:`workers.runner`."""
