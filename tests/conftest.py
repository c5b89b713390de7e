"""Fixtures shared by the suite: real PostgreSQL and Redis, a live server, a tenant.

With ``LASTMILE_DATABASE_URL`` and ``LASTMILE_REDIS_URL`` unset, the session starts embedded
PostgreSQL and Valkey in a temporary folder; with them set, it uses those servers. Either way
it creates a fresh database for the session (dropped at the end) and gives every test its
own Redis key prefix, so tests never see each other's streams.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from redis.asyncio import Redis

from app.auth import issue_api_key, issue_device_token
from app.process.embedded import ServiceUrls, embedded_services
from app.process.server import run_worker, serve_api
from app.settings import Settings
from schemas.auth import Role
from schemas.ids import DriverId, OrgId
from store import tenants
from store.db import drop_database, ensure_database, with_database
from store.migrate import upgrade

pytest_plugins = ["tests.days", "tests.browser"]


@pytest.fixture(scope="session")
def service_urls() -> Iterator[ServiceUrls]:
    """PostgreSQL and Redis for the whole session: the configured ones, or embedded.

    The embedded servers' data lives in a folder of this session's own, not under pytest's
    temporary root: pytest removes all but the newest few session folders there, so another
    pytest run on the same machine would delete the data of servers still running here.
    """
    with (
        tempfile.TemporaryDirectory(prefix="lastmile-test-services-") as folder,
        embedded_services(
            Path(folder),
            database_url=os.environ.get("LASTMILE_DATABASE_URL") or None,
            redis_url=os.environ.get("LASTMILE_REDIS_URL") or None,
        ) as urls,
    ):
        yield urls


@pytest.fixture(scope="session")
def database_url(service_urls: ServiceUrls) -> Iterator[str]:
    """A fresh, migrated database of this session."""
    name = f"lastmile_test_{secrets.token_hex(4)}"
    ensure_database(service_urls.database_url, name)
    url = with_database(service_urls.database_url, name)
    upgrade(url)
    yield url
    drop_database(service_urls.database_url, name)


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port, held so that nobody else can take it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Bound sockets for the test's API port and OsmAnd port."""
    pair = (bound_socket(), bound_socket())
    yield pair
    for sock in pair:
        sock.close()


@pytest.fixture
def settings(
    service_urls: ServiceUrls,
    database_url: str,
    tmp_path: Path,
    listeners: tuple[socket.socket, socket.socket],
) -> Settings:
    """Settings of one test: its own Redis prefix and ports, short claim times."""
    return Settings(
        database_url=database_url,
        redis_url=service_urls.redis_url,
        data_dir=tmp_path,
        port=listeners[0].getsockname()[1],
        osmand_port=listeners[1].getsockname()[1],
        redis_prefix=f"test-{secrets.token_hex(4)}:",
        ping_shards=2,
        claim_idle_ms=300,
        worker_block_ms=100,
        persist_batch=50,
        auth_cache_ttl_s=0.5,
        warm_solver=False,  # most test servers never re-optimise: no process for them
        lease_ttl_s=1.0,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A Redis client; the test's keys are deleted afterwards."""
    client = Redis.from_url(settings.redis_url or "")
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """An autocommit connection to the session's database."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    yield conn
    await conn.close()


@dataclass(frozen=True)
class Driver:
    """A driver with one device token."""

    id: DriverId
    token: str


@dataclass(frozen=True)
class Tenant:
    """An organisation with a dispatcher key and two drivers."""

    org_id: OrgId
    api_key: str
    drivers: tuple[Driver, ...]


async def make_tenant(
    conn: psycopg.AsyncConnection, drivers: int = 2, role: Role = "dispatcher"
) -> Tenant:
    """Create an organisation, an API key of ``role`` and ``drivers`` drivers with tokens."""
    org_id = await tenants.create_org(conn, f"org-{secrets.token_hex(3)}")
    key = await issue_api_key(conn, org_id, role=role, name="test")
    made = []
    for n in range(drivers):
        driver_id = await tenants.create_driver(conn, org_id, name=f"driver {n}")
        issued = await issue_device_token(conn, org_id, driver_id)
        assert issued is not None
        made.append(Driver(driver_id, issued[1]))
    return Tenant(org_id=org_id, api_key=key, drivers=tuple(made))


@pytest.fixture
async def tenant(db: psycopg.AsyncConnection) -> Tenant:
    """A fresh organisation with a dispatcher key and two drivers."""
    return await make_tenant(db)


@dataclass(frozen=True)
class LiveServer:
    """A running API process of this test."""

    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}"

    @property
    def osmand_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.osmand_port}"


@pytest.fixture
async def server(
    settings: Settings, redis: Redis, listeners: tuple[socket.socket, socket.socket]
) -> AsyncIterator[LiveServer]:
    """The real API (uvicorn, both listeners) serving on this test's ports."""
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve_api(settings, stop, on_ready=ready.set, sockets=listeners))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED, timeout=30)
    if task.done():
        waiter.cancel()
        task.result()
    yield LiveServer(settings)
    stop.set()
    await asyncio.wait_for(task, timeout=30)


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the live server."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@dataclass
class WorkerHandle:
    """A persist worker running in this process."""

    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def persist_worker(settings: Settings, redis: Redis) -> AsyncIterator[WorkerHandle]:
    """The persist worker, consuming this test's streams until the test ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, "persist", stop, consumer_name="in-test"))
    handle = WorkerHandle(stop, task)
    yield handle
    stop.set()
    await asyncio.wait_for(task, timeout=30)
