"""The ``lastmile`` command: serve, run a worker, simulate, migrate, and administer.

One module per concern registers its commands on :data:`main`: :mod:`app.cli.serve`,
:mod:`app.cli.simulate`, :mod:`app.cli.admin`, :mod:`app.cli.learn`.
"""

from app.cli import admin, learn, serve, simulate
from app.cli.base import main

__all__ = ["admin", "learn", "main", "serve", "simulate"]
