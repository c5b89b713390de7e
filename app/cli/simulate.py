"""``lastmile simulate``: a simulated delivery day driven through a running server.

``serve --simulate`` uses the same pieces to run one beside the API it starts.
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from app.cli import kept
from app.cli.base import main, run, settings_from
from app.settings import Settings
from store import simulated

if TYPE_CHECKING:
    from simulator.simulation import SimulationConfig


def require_simulator() -> None:
    """The simulator speaks HTTP with httpx, which is installed with the dev extra."""
    if importlib.util.find_spec("httpx") is None:
        raise click.UsageError(
            "the fleet simulator needs httpx: pip install 'lastmile[dev]' (or httpx alone)"
        )


def say(line: str) -> None:
    click.echo(line, err=True)


def quiet_simulator_clients() -> None:
    """One log line per simulated request or socket would drown everything else."""
    import logging

    for name in ("httpx", "websockets.client"):
        logging.getLogger(name).setLevel(logging.WARNING)


DEMO_UNDER_WAY_H = 2.0
"""How far into its day ``serve --simulate``'s fleet is when it starts."""

FLEET_EMAIL = "fleet@demo.example"
"""The simulated fleet's dispatcher, who signs in to its pages."""


@dataclass(frozen=True)
class Simulation:
    """What ``serve --simulate`` runs, and the password of :data:`FLEET_EMAIL` to print."""

    config: SimulationConfig
    password: str


async def simulation_setup(settings: Settings) -> Simulation:
    """The simulated fleet's organisation, its dispatcher key and user, and a day already under
    way.

    The organisation, its key and its dispatcher's password are kept across restarts (in the
    data folder, readable by its owner only): a restart prints the same ones while they work.
    What an earlier run left open (it was
    killed before it retired its fleet) is ended first (:func:`store.simulated.retire_leftovers`),
    so that no abandoned day stays "live".
    """
    from datetime import UTC, datetime

    from app import revocation
    from app.cli.tls import local_ca
    from app.process.urls import loopback_url
    from simulator.simulation import SimulationConfig, default_start
    from store.db import open_pool

    start = default_start(datetime.now(UTC))
    pool = await open_pool(settings.database_url or "", max_size=1)
    try:
        async with pool.connection() as conn:
            path = settings.data_dir / "demo" / "simulation.json"
            saved = kept.load(path)
            org_id, key = await _simulation_org(settings, conn, saved)
            password = await kept.dispatcher_password(
                conn, org_id, FLEET_EMAIL, "Fleet dispatcher", saved.get("password")
            )
            kept.save(path, {"org_id": org_id, "key": key, "password": password})
            retired = await simulated.retire_leftovers(conn, org_id)
    finally:
        await pool.close()
    if retired.device_hashes and settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
        try:
            await revocation.announce(
                redis,
                settings.redis_prefix,
                "device",
                retired.device_hashes,
                settings.auth_fallback_ttl_s,
            )
        finally:
            await redis.aclose()
    if retired.drivers or retired.orders:
        say(
            f"An earlier simulated day was left running: {retired.drivers} drivers retired,"
            f" {retired.routes} routes and {retired.orders} orders cancelled."
        )
    # The simulator runs in this process: it reaches the API on the loopback interface, and
    # trusts the local certificate authority when serve made one (--tls-self-signed).
    ca = local_ca(settings.data_dir / "tls")
    config = SimulationConfig(
        url=loopback_url(settings),
        api_key=key,
        start=start,
        speedup=1.0,
        under_way_h=DEMO_UNDER_WAY_H,
        streets=True,
        ca_file=ca if settings.tls_cert is not None and ca.exists() else None,
    )
    return Simulation(config, password)


async def _simulation_org(settings: Settings, conn: Any, saved: dict[str, Any]) -> tuple[Any, str]:
    """The simulated fleet's organisation and its dispatcher key: the ones ``saved`` in the data
    folder while the key still works, else new ones."""
    from app.api.notification_rules import default_rules
    from app.auth import hash_token, issue_api_key
    from app.process.mail_sink import prefer_email
    from schemas.ids import OrgId
    from store import tenants

    try:
        org_id, key = OrgId(int(saved["org_id"])), str(saved["key"])
    except (ValueError, KeyError, TypeError):
        org_id, key = None, ""
    if org_id is not None:
        principal = await tenants.find_api_key(conn, hash_token(key))
        if principal is not None and principal.org_id == org_id:
            return org_id, key
    org_id = await simulated.find_org(conn)
    if org_id is None:
        org_id = await tenants.create_org(conn, simulated.NAME)
        if settings.demo_mail_dir is not None:  # serve --demo's mail sink: mail first
            await prefer_email(conn, org_id, default_rules(settings))
    key = await issue_api_key(conn, org_id, role="dispatcher", name="simulated fleet dispatcher")
    return org_id, key


def simulation_banner(settings: Settings, simulation: Simulation) -> str:
    from datetime import timedelta

    from app.process.urls import base_url

    config = simulation.config
    base = base_url(settings)
    auth = f"-H 'Authorization: Bearer {config.api_key}'"
    day = config.start.date() if config.start else "today"
    if config.under_way_h and config.start is not None:
        began = config.start - timedelta(hours=config.under_way_h)
        ends = began + timedelta(hours=config.day_hours)
        pace = (
            f"a day under way since {began:%H:%M} UTC (its first {config.under_way_h:g} h"
            f" replayed in seconds), running on the server's clock until about {ends:%H:%M} UTC"
        )
    else:
        pace = f"{config.speedup:g}x speed"
    return "\n".join(
        [
            "",
            f"Simulated fleet: {config.drivers} drivers, {config.orders} orders on {day} "
            f"(UTC), {pace}, in its own organisation.",
            "  first: open the dispatcher map, click a driver in the list, then a stop",
            f"  dispatcher key  {config.api_key}",
            f"  dispatcher map  {base}/dispatch#key={config.api_key}",
            f"    or sign in there as {FLEET_EMAIL} with the password {simulation.password}",
            f"  routes          curl {auth} '{base}/v1/routes?day={day}'",
            f"  live positions  curl {auth} {base}/v1/drivers/live",
            *(
                [f"  customers' mail {base}/demo/mail#key={config.api_key}"]
                if settings.demo_mail_dir is not None
                else []
            ),
        ]
    )


async def simulate_in_server(config: SimulationConfig, stop: asyncio.Event) -> None:
    """Run the simulation beside the API; a failure is reported and the server keeps serving."""
    from simulator.simulation import simulate

    try:
        await simulate(config, say=say, stop=stop)
    except Exception as exc:  # whatever went wrong, the server keeps serving
        say(f"The simulation stopped: {exc!r}")


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
@click.option(
    "--under-way-h",
    type=click.FloatRange(0, 12),
    default=0.0,
    show_default=True,
    help="Start a day already this many hours under way (its past replayed in seconds, the"
    " rest on the server's clock); needs --speedup 1.",
)
@click.option(
    "--world/--no-world",
    default=False,
    show_default=True,
    help="Drive in a city whose speeds (by zone and hour) and customers' service times differ"
    " from the planner's model, for learning to find (docs/simulator.md).",
)
@click.option(
    "--city-factor",
    type=click.FloatRange(0.1, 10),
    default=1.0,
    show_default=True,
    help="With --world: every driver's speed against the planner's model.",
)
@click.option(
    "--streets/--straight",
    default=True,
    show_default=True,
    help="Drive along Berlin's streets (a packaged street map), or in straight lines between"
    " places as the planner assumes.",
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
    under_way_h: float,
    world: bool,
    city_factor: float,
    streets: bool,
) -> None:
    """Drive a simulated delivery day through a running server (docs/simulator.md)."""
    require_simulator()
    settings = settings_from(ctx)
    from app import logs

    logs.configure(settings.log_level, settings.log_format)
    quiet_simulator_clients()
    import httpx

    from simulator.fleet import ApiError
    from simulator.simulation import SimulationConfig, simulate
    from simulator.world import World

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
            under_way_h=under_way_h,
            world=World(seed=seed, city_factor=city_factor) if world else None,
            streets=streets,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from app.process.server import stop_event_on_signals

    async def go() -> None:
        await simulate(config, say=say, stop=stop_event_on_signals())

    try:
        run(go)
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise click.ClickException(f"the simulation stopped: {exc!r}") from None
