"""What every benchmark needs: services, a tenant with drivers, a server process, CPU accounting."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from app.auth import issue_api_key, issue_device_token
from app.process.embedded import embedded_services
from schemas.ids import DriverId, OrgId
from store import tenants
from store.db import drop_database, ensure_database, with_database
from store.migrate import upgrade


@dataclass(frozen=True)
class BenchEnv:
    """URLs of a fresh database and a Redis for one benchmark run."""

    database_url: str
    redis_url: str
    redis_prefix: str
    data_dir: Path


@contextlib.contextmanager
def bench_env() -> Iterator[BenchEnv]:
    """Configured services (``LASTMILE_*_URL``) or embedded ones, with a throwaway database."""
    from app import logs

    logs.configure("warning")
    with (
        tempfile.TemporaryDirectory(prefix="lastmile-bench-") as tmp,
        embedded_services(
            Path(tmp),
            database_url=os.environ.get("LASTMILE_DATABASE_URL") or None,
            redis_url=os.environ.get("LASTMILE_REDIS_URL") or None,
        ) as urls,
    ):
        name = f"lastmile_bench_{secrets.token_hex(4)}"
        ensure_database(urls.database_url, name)
        url = with_database(urls.database_url, name)
        try:
            upgrade(url)
            yield BenchEnv(url, urls.redis_url, f"bench-{secrets.token_hex(3)}:", Path(tmp))
        finally:
            drop_database(urls.database_url, name)


@dataclass(frozen=True)
class BenchTenant:
    """An organisation with an API key and drivers with device tokens."""

    org_id: OrgId
    api_key: str
    drivers: list[tuple[DriverId, str]]


def make_tenant(database_url: str, drivers: int) -> BenchTenant:
    """Create the benchmark's organisation and ``drivers`` drivers."""
    import asyncio

    async def go() -> BenchTenant:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            org = await tenants.create_org(conn, "bench")
            key = await issue_api_key(conn, org, role="admin", name="bench")
            made = []
            for n in range(drivers):
                driver = await tenants.create_driver(conn, org, name=f"bench {n}")
                issued = await issue_device_token(conn, org, driver)
                if issued is None:
                    raise RuntimeError(f"driver {driver} vanished")
                made.append((driver, issued[1]))
            return BenchTenant(org, key, made)

    return asyncio.run(go())


@contextlib.contextmanager
def server_process(
    env: BenchEnv, port: int, *, workers: bool = False, log: Path | None = None
) -> Iterator[int]:
    """Run ``lastmile serve`` (one API process, its workers with ``workers``) on ``port``; yields
    its pid. Its log goes to ``log`` (default ``server.log`` in the benchmark's data folder): a
    stderr pipe nobody reads would stall the server once it is full."""
    proc_env = {
        **os.environ,
        "LASTMILE_DATABASE_URL": env.database_url,
        "LASTMILE_REDIS_URL": env.redis_url,
        "LASTMILE_REDIS_PREFIX": env.redis_prefix,
        "LASTMILE_DATA_DIR": str(env.data_dir / "server"),
        "LASTMILE_LOG_LEVEL": "warning",
    }
    proc_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = [sys.executable, "-m", "app", "serve", "--port", str(port), "--osmand-port", "0"]
    if not workers:
        args.append("--no-workers")
    log = log or env.data_dir / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(args, env=proc_env, stderr=sink)
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class Report:
    """Figures of one benchmark run, printed as a table and written as JSON."""

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"title": self.title, "machine": machine(), "rows": self.rows}
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    import platform

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def free_port() -> int:
    """A loopback port free at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
