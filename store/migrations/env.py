"""Alembic environment: online migrations only, each revision in its own transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

# Serialises concurrent `migrate` runs (server start and CLI at once) on one database.
MIGRATION_LOCK_KEY = 0x6C6D_6D67


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set on the Alembic config")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("lastmile runs migrations online only")
run_migrations_online()
