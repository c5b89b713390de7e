"""The ``lastmile`` command: serve, run a worker, migrate, and administer organisations.

Settings come from ``LASTMILE_*`` variables (see the README); options given here override
them. With no database or Redis URL, commands start the embedded servers under the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from simulator.simulation import SimulationConfig

T = TypeVar("T")
SIMULATION_STOP_TIMEOUT_S = 15.0
"""How long Ctrl-C waits for the simulated drivers to stop and retire before the API stops."""


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@contextlib.contextmanager
def _services(settings: Settings, *, with_redis: bool = True) -> Iterator[Settings]:
    """``settings`` with both URLs set, starting embedded servers for those missing."""
    from app.process.embedded import embedded_services
    from app.process.server import settings_with_urls

    with embedded_services(
        settings.data_dir,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        with_redis=with_redis,
    ) as urls:
        yield settings_with_urls(settings, urls.database_url, urls.redis_url)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on uvloop where it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(make())  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(make())  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lastmile")
def main() -> None:
    """lastmile: real-time last-mile delivery orchestration."""


@main.command()
@click.option("--host", help="Address to listen on [LASTMILE_HOST].")
@click.option("--port", type=int, help="API port [LASTMILE_PORT, 8000].")
@click.option("--osmand-port", type=int, help="OsmAnd listener port, 0 for none [5055].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data folder [.lastmile].")
@click.option("--workers/--no-workers", default=True, help="Run the workers as child processes.")
@click.option("--demo/--no-demo", default=False, help="Create a demo organisation and print keys.")
@click.option(
    "--simulate/--no-simulate",
    default=False,
    help="Drive a simulated fleet (10 drivers, 100 orders, 10x speed) once the API is ready.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    osmand_port: int | None,
    data_dir: Path | None,
    workers: bool,
    demo: bool,
    simulate: bool,
) -> None:
    """Run the API server and the workers on this machine (embedded services if no URLs)."""
    if simulate:
        _require_simulator()
    settings = _settings(ctx, host=host, port=port, data_dir=data_dir)
    if osmand_port is not None:
        import msgspec

        settings = msgspec.structs.replace(settings, osmand_port=osmand_port or None)
    _enable_multiprocess_metrics(settings.data_dir)
    from app import logs

    logs.configure(settings.log_level, settings.log_format)
    if simulate:
        _quiet_simulator_clients()
    with _services(settings) as resolved:
        from store.migrate import upgrade

        upgrade(resolved.database_url or "")
        _run(lambda: _serve(resolved, workers=workers, demo=demo, simulate=simulate))


async def _serve(settings: Settings, *, workers: bool, demo: bool, simulate: bool = False) -> None:
    from app.process.server import serve_api, stop_event_on_signals, tune_gc, worker_processes

    stop = stop_event_on_signals()
    banner = await _demo_banner(settings) if demo else ""
    simulation = await _simulation_setup(settings) if simulate else None
    if simulation is not None:
        banner += _simulation_banner(settings, simulation)
    # With a simulation, Ctrl-C first lets the simulated drivers stop and retire through the
    # API, and only then stops the API.
    api_stop = stop if simulation is None else asyncio.Event()
    running: list[asyncio.Task[None]] = []

    def ready() -> None:
        click.echo(_where_to_look(settings) + banner, err=True)
        if simulation is not None:
            running.append(asyncio.create_task(_simulate_in_server(simulation, stop)))

    async def stop_api_after_simulation() -> None:
        await stop.wait()
        if running:
            _, late = await asyncio.wait(running, timeout=SIMULATION_STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        api_stop.set()

    watcher = asyncio.create_task(stop_api_after_simulation()) if simulation else None
    tune_gc()
    try:
        async with contextlib.AsyncExitStack() as stack:
            if workers:
                await stack.enter_async_context(worker_processes(settings, settings.workers))
            await serve_api(settings, api_stop, on_ready=ready)
    finally:
        for task in (*running, *([watcher] if watcher else [])):
            task.cancel()


def _where_to_look(settings: Settings) -> str:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    lines = [
        "",
        "lastmile is running.",
        f"  API           {base}/v1/",
        f"  readiness     {base}/readyz",
        f"  metrics       {base}/metrics",
        f"  driver socket {base.replace('http', 'ws', 1)}/v1/driver/ws",
    ]
    if settings.osmand_port:
        lines.append(f"  OsmAnd        http://{settings.host}:{settings.osmand_port}/")
    lines.append(f"  data folder   {settings.data_dir.resolve()}")
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


async def _demo_banner(settings: Settings) -> str:
    from app.auth import issue_api_key, issue_device_token
    from store import tenants
    from store.db import open_pool

    pool = await open_pool(settings.database_url or "", max_size=1)
    try:
        async with pool.connection() as conn:
            row = await (
                await conn.execute("SELECT id FROM orgs WHERE name = 'Demo fleet' LIMIT 1")
            ).fetchone()
            org_id = row[0] if row else await tenants.create_org(conn, "Demo fleet")
            drivers = await tenants.list_drivers(conn, org_id)
            for n in range(len(drivers), 3):
                await tenants.create_driver(conn, org_id, name=f"Demo driver {n + 1}")
            drivers = await tenants.list_drivers(conn, org_id)
            key = await issue_api_key(conn, org_id, role="dispatcher", name="demo dispatcher")
            lines = ["", f"Demo organisation {org_id}: dispatcher key {key}"]
            for driver_id, name in drivers:
                issued = await issue_device_token(conn, org_id, driver_id)
                token = issued[1] if issued else "(driver vanished)"
                lines.append(f"  {name} (driver {driver_id}): device token {token}")
    finally:
        await pool.close()
    base = f"http://{settings.host}:{settings.port}"
    lines.append(f"Try: curl -H 'Authorization: Bearer {key}' {base}/v1/drivers/live")
    lines.append(f"Dispatcher map: {base}/dispatch#key={key}")
    return "\n".join(lines)


def _require_simulator() -> None:
    """The simulator speaks HTTP with httpx, which is installed with the dev extra."""
    if importlib.util.find_spec("httpx") is None:
        raise click.UsageError(
            "the fleet simulator needs httpx: pip install 'lastmile[dev]' (or httpx alone)"
        )


def _say(line: str) -> None:
    click.echo(line, err=True)


def _quiet_simulator_clients() -> None:
    """One log line per simulated request or socket would drown everything else."""
    import logging

    for name in ("httpx", "websockets.client"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def _simulation_setup(settings: Settings) -> SimulationConfig:
    """A fresh organisation and dispatcher key for this run's simulated fleet.

    A fresh one per run, so that shifts of an earlier run that was killed never take orders.
    """
    from datetime import UTC, datetime

    from app.auth import issue_api_key
    from simulator.simulation import SimulationConfig, default_start
    from store import tenants
    from store.db import open_pool

    start = default_start(datetime.now(UTC))
    pool = await open_pool(settings.database_url or "", max_size=1)
    try:
        async with pool.connection() as conn:
            org_id = await tenants.create_org(conn, f"Simulated fleet {start:%Y-%m-%d %H:%M}Z")
            key = await issue_api_key(
                conn, org_id, role="dispatcher", name="simulated fleet dispatcher"
            )
    finally:
        await pool.close()
    # The simulator runs in this process: it reaches the API on the loopback interface.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return SimulationConfig(url=f"http://{host}:{settings.port}", api_key=key, start=start)


def _simulation_banner(settings: Settings, config: SimulationConfig) -> str:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    auth = f"-H 'Authorization: Bearer {config.api_key}'"
    day = config.start.date() if config.start else "today"
    return "\n".join(
        [
            "",
            f"Simulated fleet: {config.drivers} drivers, {config.orders} orders on {day} "
            f"(UTC), {config.speedup:g}x speed, in its own organisation.",
            f"  dispatcher key  {config.api_key}",
            f"  dispatcher map  {base}/dispatch#key={config.api_key}",
            f"  routes          curl {auth} '{base}/v1/routes?day={day}'",
            f"  live positions  curl {auth} {base}/v1/drivers/live",
        ]
    )


async def _simulate_in_server(config: SimulationConfig, stop: asyncio.Event) -> None:
    """Run the simulation beside the API; a failure is reported and the server keeps serving."""
    from simulator.simulation import simulate

    try:
        await simulate(config, say=_say, stop=stop)
    except Exception as exc:  # whatever went wrong, the server keeps serving
        _say(f"The simulation stopped: {exc!r}")


def _enable_multiprocess_metrics(data_dir: Path) -> None:
    """Let /metrics add up the worker processes' metrics (must run before any metric exists)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = data_dir.expanduser().resolve() / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


@main.command()
@click.argument("name", type=click.Choice(["persist", "planner", "eta"]))
@click.option("--consumer", help="Consumer name in the group [host-NAME-0].")
@click.option("--metrics-port", type=int, help="Serve this worker's /metrics on this port.")
@click.pass_context
def worker(ctx: click.Context, name: str, consumer: str | None, metrics_port: int | None) -> None:
    """Run one worker process (for scaling out: start as many as you need)."""
    settings = _settings(ctx)
    from app import logs

    logs.configure(settings.log_level, settings.log_format)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host)
    if settings.database_url is None or settings.redis_url is None:
        raise click.UsageError(
            "a standalone worker needs LASTMILE_DATABASE_URL and LASTMILE_REDIS_URL"
        )
    from app.process.server import run_worker, stop_event_on_signals, tune_gc

    async def go() -> None:
        tune_gc()
        await run_worker(settings, name, stop_event_on_signals(), consumer_name=consumer)

    _run(go)


@main.command("simulate")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The API.")
@click.option("--api-key", required=True, help="An admin or dispatcher key (lmk_...).")
@click.option("--drivers", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--orders", type=click.IntRange(1, 50_000), default=100, show_default=True)
@click.option(
    "--speedup",
    type=click.FloatRange(0.01, 100_000),
    default=10.0,
    show_default=True,
    help="Simulated seconds per wall-clock second.",
)
@click.option(
    "--delay-share",
    type=click.FloatRange(0, 1),
    default=0.2,
    show_default=True,
    help="Share of drivers caught in a jam.",
)
@click.option(
    "--fail-share",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of orders whose customer is not home.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seeds orders and driving.")
@click.option(
    "--ping-interval-s",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Simulated seconds between a driver's fixes.",
)
@click.pass_context
def simulate_command(
    ctx: click.Context,
    url: str,
    api_key: str,
    drivers: int,
    orders: int,
    speedup: float,
    delay_share: float,
    fail_share: float,
    seed: int,
    ping_interval_s: float,
) -> None:
    """Drive a simulated delivery day through a running server (docs/simulator.md)."""
    _require_simulator()
    settings = _settings(ctx)
    from app import logs

    logs.configure(settings.log_level, settings.log_format)
    _quiet_simulator_clients()
    import httpx

    from simulator.fleet import ApiError
    from simulator.simulation import SimulationConfig, simulate

    try:
        config = SimulationConfig(
            url=url,
            api_key=api_key,
            drivers=drivers,
            orders=orders,
            speedup=speedup,
            delay_share=delay_share,
            fail_share=fail_share,
            seed=seed,
            ping_interval_s=ping_interval_s,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from app.process.server import stop_event_on_signals

    async def go() -> None:
        await simulate(config, say=_say, stop=stop_event_on_signals())

    try:
        _run(go)
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise click.ClickException(f"the simulation stopped: {exc!r}") from None


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema up to date."""
    settings = _settings(ctx)
    from store.migrate import current, upgrade

    with _services(settings, with_redis=False) as resolved:
        upgrade(resolved.database_url or "")
        click.echo(f"database at revision {current(resolved.database_url or '')}")


@main.group()
def org() -> None:
    """Organisations."""


@org.command("create")
@click.argument("name")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone for local times.")
@click.pass_context
def org_create(ctx: click.Context, name: str, timezone: str) -> None:
    """Create an organisation; prints its id."""
    from store import tenants

    async def go(conn: Any) -> None:
        click.echo(await tenants.create_org(conn, name, timezone))

    _with_connection(ctx, go)


@main.group()
def apikey() -> None:
    """API keys (shown once; only their hash is stored)."""


@apikey.command("create")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--role", type=click.Choice(["admin", "dispatcher", "integration"]), required=True)
@click.option("--name", default="api key", show_default=True)
@click.pass_context
def apikey_create(ctx: click.Context, org_id: int, role: str, name: str) -> None:
    """Create an API key; prints the key, which cannot be shown again."""
    from app.auth import issue_api_key
    from schemas.ids import OrgId
    from store import tenants

    async def go(conn: Any) -> None:
        if not await tenants.org_exists(conn, OrgId(org_id)):
            raise click.BadParameter(f"no organisation {org_id}", param_hint="--org")
        click.echo(await issue_api_key(conn, OrgId(org_id), role=role, name=name))  # type: ignore[arg-type]

    _with_connection(ctx, go)


@main.group()
def driver() -> None:
    """Drivers and their devices."""


@driver.command("create")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--name", required=True)
@click.option("--phone")
@click.option("--ref", "external_ref", help="Your own identifier for this driver.")
@click.pass_context
def driver_create(
    ctx: click.Context, org_id: int, name: str, phone: str | None, external_ref: str | None
) -> None:
    """Create a driver with one device; prints the driver id and the device token."""
    from app.auth import issue_device_token
    from schemas.ids import OrgId
    from store import tenants

    async def go(conn: Any) -> None:
        if not await tenants.org_exists(conn, OrgId(org_id)):
            raise click.BadParameter(f"no organisation {org_id}", param_hint="--org")
        driver_id = await tenants.create_driver(
            conn, OrgId(org_id), name=name, phone=phone, external_ref=external_ref
        )
        issued = await issue_device_token(conn, OrgId(org_id), driver_id)
        if issued is None:
            raise click.ClickException(f"driver {driver_id} vanished while being created")
        click.echo(f"driver {driver_id}\ndevice token {issued[1]}")

    _with_connection(ctx, go)


@driver.command("add-device")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--driver", "driver_id", type=int, required=True)
@click.option("--name", default="phone", show_default=True)
@click.pass_context
def driver_add_device(ctx: click.Context, org_id: int, driver_id: int, name: str) -> None:
    """Give a driver another device; prints its token."""
    from app.auth import issue_device_token
    from schemas.ids import DriverId, OrgId

    async def go(conn: Any) -> None:
        issued = await issue_device_token(conn, OrgId(org_id), DriverId(driver_id), name=name)
        if issued is None:
            raise click.BadParameter(f"no driver {driver_id} in organisation {org_id}")
        click.echo(issued[1])

    _with_connection(ctx, go)


def _with_connection(ctx: click.Context, action: Callable[[Any], Awaitable[None]]) -> None:
    settings = _settings(ctx)
    import psycopg

    from store.migrate import upgrade

    with _services(settings, with_redis=False) as resolved:
        url = resolved.database_url or ""
        upgrade(url)

        async def go() -> None:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await action(conn)

        _run(go)
