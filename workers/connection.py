"""The one PostgreSQL connection a worker keeps between batches.

A worker handles one batch at a time, so one autocommit connection is enough; it is opened on
first use and opened again after PostgreSQL dropped it (the runner retries the batch that saw
the drop). Workers mix this in and declare ``database_url`` and ``_conn`` as fields.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg


class OwnConnection:
    """``_connection()`` and ``close()`` over the worker's ``database_url`` and ``_conn``."""

    database_url: str
    _conn: psycopg.AsyncConnection[Any] | None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        """The open connection, opened anew when there is none or PostgreSQL closed it."""
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        return self._conn

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection for one batch; closed when PostgreSQL failed under it (the error
        goes on to the runner, whose retry opens a new one)."""
        conn = await self._connection()
        try:
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection (the next batch opens a new one)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
