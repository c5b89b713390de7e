"""``lastmile serve`` (the API, the workers, embedded services, a demo) and ``lastmile worker``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli import kept
from app.cli.base import main, run, services, settings_from
from app.cli.simulate import (
    quiet_simulator_clients,
    require_simulator,
    simulate_in_server,
    simulation_banner,
    simulation_setup,
)
from app.process.urls import base_url
from app.settings import WORKER_NAMES, Settings

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from schemas.ids import DriverId, OrgId

BESIDE_FLEET = "And an organisation of its own, empty, to try the API and the driver app by hand:"

SIMULATION_STOP_TIMEOUT_S = 15.0
"""How long Ctrl-C waits for the simulated drivers to stop and retire before the API stops."""


@main.command()
@click.option("--host", help="Address to listen on, 0.0.0.0 for all [LASTMILE_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="API port [LASTMILE_PORT, 8000].")
@click.option("--osmand-port", type=int, help="OsmAnd port, 0 = none [LASTMILE_OSMAND_PORT, 5055].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data folder [.lastmile].")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this PEM certificate chain [LASTMILE_TLS_CERT].",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The certificate's PEM private key [LASTMILE_TLS_KEY].",
)
@click.option(
    "--tls-self-signed",
    is_flag=True,
    help="Serve HTTPS with a certificate of a local authority kept in the data folder"
    " (for phones on the local network; prints how to trust it).",
)
@click.option("--workers/--no-workers", default=True, help="Run the workers as child processes.")
@click.option("--demo/--no-demo", default=False, help="Create a demo organisation and print keys.")
@click.option(
    "--simulate/--no-simulate",
    default=False,
    help="Drive a simulated fleet once the API is ready: 10 drivers, 100 orders, a day already"
    " 2 hours under way that runs on the server's clock.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    osmand_port: int | None,
    data_dir: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool,
    workers: bool,
    demo: bool,
    simulate: bool,
) -> None:
    """Run the API server and the workers on this machine (embedded services if no URLs)."""
    if simulate:
        require_simulator()
    settings = settings_from(
        ctx, host=host, port=port, data_dir=data_dir, tls_cert=tls_cert, tls_key=tls_key
    )
    settings, tls_note = _with_tls(settings, self_signed=tls_self_signed)
    if osmand_port is not None:
        import msgspec

        settings = msgspec.structs.replace(settings, osmand_port=osmand_port or None)
    _enable_multiprocess_metrics(settings.data_dir)
    from app import logs

    logs.configure(settings.log_level, settings.log_format)
    if simulate:
        quiet_simulator_clients()
    with services(settings) as resolved:
        from store.migrate import upgrade

        upgrade(resolved.database_url or "")
        run(
            lambda: _serve(
                resolved, workers=workers, demo=demo, simulate=simulate, tls_note=tls_note
            )
        )


def _with_tls(settings: Settings, *, self_signed: bool) -> tuple[Settings, str]:
    """``settings`` with the certificate to serve, and what to print about it."""
    import msgspec

    if self_signed:
        if settings.tls_cert is not None or settings.tls_key is not None:
            raise click.UsageError("--tls-self-signed makes its own certificate: drop --tls-cert")
        from app.cli.tls import ensure_local_tls, local_names, phone_steps

        made = ensure_local_tls(settings.data_dir / "tls", local_names(settings.host))
        settings = msgspec.structs.replace(settings, tls_cert=made.cert, tls_key=made.key)
        return settings, phone_steps(made, base_url(settings))
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise click.UsageError("HTTPS needs both --tls-cert and --tls-key")
    return settings, ""


async def _serve(
    settings: Settings,
    *,
    workers: bool,
    demo: bool,
    simulate: bool = False,
    tls_note: str = "",
) -> None:
    from app.process.server import serve_api, stop_event_on_signals, tune_gc, worker_processes

    stop = stop_event_on_signals()
    sink = None
    if demo and settings.smtp_host is None:
        sink, settings = await _demo_mail(settings)
    simulation = await simulation_setup(settings) if simulate else None
    # The simulated fleet comes first: its map is the one a new user should open.
    banner = "" if simulation is None else simulation_banner(settings, simulation)
    if demo:
        banner += await _demo_banner(settings, note="" if simulation is None else BESIDE_FLEET)
    # With a simulation, Ctrl-C first lets the simulated drivers stop and retire through the
    # API, and only then stops the API.
    api_stop = stop if simulation is None else asyncio.Event()
    running: list[asyncio.Task[None]] = []

    def ready() -> None:
        click.echo(_where_to_look(settings) + tls_note + banner, err=True)
        if simulation is not None:
            running.append(asyncio.create_task(simulate_in_server(simulation.config, stop)))

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
        if sink is not None:
            sink.close()


async def _demo_mail(settings: Settings) -> tuple[asyncio.Server, Settings]:
    """Start the demo mail sink on a free loopback port and point the sender at it."""
    import msgspec

    from app.process.mail_sink import sink_port, start_mail_sink

    folder = settings.data_dir / "demo-mail"
    server = await start_mail_sink(folder)
    return server, msgspec.structs.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=sink_port(server),
        smtp_tls="none",
        smtp_username=None,
        smtp_password=None,
        smtp_from=settings.smtp_from or "Demo fleet <deliveries@example.com>",
        demo_mail_dir=folder,
    )


def _where_to_look(settings: Settings) -> str:
    base = base_url(settings)
    lines = [
        "",
        "lastmile is running.",
        f"  API           {base}/v1/",
        f"  driver app    {base}/driver",
        f"  reference     {base}/docs",
        f"  readiness     {base}/readyz",
        f"  metrics       {base}/metrics",
        f"  driver socket {base.replace('http', 'ws', 1)}/v1/driver/ws",
    ]
    if settings.osmand_port:
        lines.append(f"  OsmAnd        http://{settings.host}:{settings.osmand_port}/")
    lines.append(f"  data folder   {settings.data_dir.resolve()}")
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


async def _demo_banner(settings: Settings, *, note: str = "") -> str:
    from app.api.notification_rules import default_rules
    from app.process.mail_sink import prefer_email
    from store import tenants
    from store.db import open_pool

    path = settings.data_dir / "demo" / "demo.json"
    saved = kept.load(path)
    pool = await open_pool(settings.database_url or "", max_size=1)
    try:
        async with pool.connection() as conn:
            row = await (
                await conn.execute("SELECT id FROM orgs WHERE name = 'Demo fleet' LIMIT 1")
            ).fetchone()
            org_id = row[0] if row else await tenants.create_org(conn, "Demo fleet")
            if settings.demo_mail_dir is not None:  # the mail sink runs: customers hear by email
                await prefer_email(conn, org_id, default_rules(settings))
            drivers = await tenants.list_drivers(conn, org_id)
            for n in range(len(drivers), 3):
                await tenants.create_driver(conn, org_id, name=f"Demo driver {n + 1}")
            drivers = await tenants.list_drivers(conn, org_id)
            key = await _kept_key(conn, org_id, saved.get("key"))
            password = await kept.dispatcher_password(
                conn, org_id, DEMO_EMAIL, "Demo dispatcher", saved.get("password")
            )
            tokens: dict[str, str] = {}
            lines = [
                "",
                *([note] if note else []),
                f"Demo organisation {org_id}: dispatcher key {key}",
            ]
            for driver_id, name in drivers:
                token = await _kept_device(conn, org_id, driver_id, saved.get("devices", {}))
                tokens[str(driver_id)] = token or ""
                shown = token or "(driver vanished)"
                lines.append(f"  {name} (driver {driver_id}): device token {shown}")
    finally:
        await pool.close()
    kept.save(path, {"key": key, "password": password, "devices": tokens})
    base = base_url(settings)
    lines.append(f"Try: curl -H 'Authorization: Bearer {key}' {base}/v1/drivers/live")
    lines.append(f"Dispatcher map: {base}/dispatch#key={key}")
    lines.append(f"  or sign in there as {DEMO_EMAIL} with the password {password}")
    lines.append(f"Driver sign-in codes: {base}/driver/qr#key={key}")
    if settings.demo_mail_dir is not None:
        lines.append(f"Customers' mail (a local sink, relayed nowhere): {base}/demo/mail#key={key}")
    return "\n".join(lines)


async def _kept_key(conn: AsyncConnection, org_id: OrgId, key: object) -> str:
    """The demo dispatcher key kept from an earlier start while it works, else a new one."""
    from app.auth import hash_token, issue_api_key
    from store import tenants

    if isinstance(key, str):
        found = await tenants.find_api_key(conn, hash_token(key))
        if found is not None and found.org_id == org_id and found.role == "dispatcher":
            return key
    return await issue_api_key(conn, org_id, role="dispatcher", name="demo dispatcher")


async def _kept_device(
    conn: AsyncConnection, org_id: OrgId, driver_id: DriverId, kept_tokens: object
) -> str | None:
    """A demo driver's device token kept from an earlier start while it works, else a new one
    (None when the driver is gone)."""
    from app.auth import hash_token, issue_device_token
    from store import tenants

    token = kept_tokens.get(str(driver_id)) if isinstance(kept_tokens, dict) else None
    if isinstance(token, str) and token:
        found = await tenants.find_device(conn, hash_token(token))
        if found is not None and found.org_id == org_id and found.driver_id == driver_id:
            return token
    issued = await issue_device_token(conn, org_id, driver_id)
    return None if issued is None else issued[1]


DEMO_EMAIL = "dispatcher@demo.example"


def _enable_multiprocess_metrics(data_dir: Path) -> None:
    """Let /metrics add up the worker processes' metrics (must run before any metric exists)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = data_dir.expanduser().resolve() / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


@main.command()
@click.argument("name", type=click.Choice(WORKER_NAMES))
@click.option("--consumer", help="Consumer name in the group [host-NAME-0].")
@click.option("--metrics-port", type=int, help="Serve this worker's /metrics on this port.")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    help="Run this many processes of the worker, each restarted if it dies [1].",
)
@click.pass_context
def worker(
    ctx: click.Context,
    name: str,
    consumer: str | None,
    metrics_port: int | None,
    processes: int,
) -> None:
    """Run one worker process (for scaling out: start as many as you need, here or elsewhere,
    or several here with --processes: e.g. planners, each computing one plan at a time)."""
    settings = settings_from(ctx)
    from app import logs

    logs.configure(settings.log_level, settings.log_format)
    if settings.database_url is None or settings.redis_url is None:
        raise click.UsageError(
            "a standalone worker needs LASTMILE_DATABASE_URL and LASTMILE_REDIS_URL"
        )
    if processes > 1:
        if consumer is not None or metrics_port is not None:
            raise click.UsageError(
                "--processes runs processes with consumer names of their own and no metrics"
                " port; start them one by one to choose those"
            )
        run(lambda: _supervised(settings, name, processes))
        return
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host)
    from app.process.server import run_worker, stop_event_on_signals, tune_gc

    async def go() -> None:
        tune_gc()
        await run_worker(settings, name, stop_event_on_signals(), consumer_name=consumer)

    run(go)


async def _supervised(settings: Settings, name: str, processes: int) -> None:
    """``processes`` child processes of worker ``name`` until a signal stops them all."""
    from app.process.server import stop_event_on_signals, worker_processes

    stop = stop_event_on_signals()
    async with worker_processes(settings, [name] * processes):
        await stop.wait()
