"""The pages the app serves: ``/dispatch`` (the dispatcher's map) and ``/t/{token}``."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """The pages' routes and their static assets (none yet)."""
    return []
