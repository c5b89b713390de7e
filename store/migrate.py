"""Schema migrations with Alembic, configured in code so no ini file is needed.

Migrations live in ``store/migrations/versions``; each is plain SQL run through ``op.execute``.
``lastmile migrate`` and the server's start both call :func:`upgrade`, which is safe to run
from several processes at once (Alembic's version table update runs under an advisory lock).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(database_url: str) -> str:
    """Turn a libpq URL into the SQLAlchemy form that selects the psycopg 3 driver."""
    parts = urlsplit(database_url)
    if parts.scheme not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise ValueError(f"expected a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration pointing at lastmile's migrations and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic interpolates %-signs in options; URL-encoded passwords contain them.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the newest by default)."""
    command.upgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
