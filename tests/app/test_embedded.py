"""The embedded default: real PostgreSQL and Valkey under the data folder, kept across restarts."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis

from app.process.embedded import embedded_services


def test_data_survives_a_restart(tmp_path: Path) -> None:
    """A row and a Redis key written before a stop are there after the next start."""
    with embedded_services(tmp_path) as urls:
        with psycopg.connect(urls.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        client = redis.Redis.from_url(urls.redis_url)
        client.xadd("pings:{0}", {"b": b"entry"})
        client.close()
    with embedded_services(tmp_path) as urls:
        with psycopg.connect(urls.database_url, autocommit=True) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]
        client = redis.Redis.from_url(urls.redis_url)
        assert client.xlen("pings:{0}") == 1
        client.close()
