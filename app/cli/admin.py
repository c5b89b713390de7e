"""Administration: ``migrate``, and organisations, API keys, drivers and their devices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from app.cli.base import main, services, settings_from, with_connection
from schemas.auth import Credential

if TYPE_CHECKING:
    from app.revocation import CredentialKind


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema up to date."""
    settings = settings_from(ctx)
    from store.migrate import current, upgrade

    with services(settings, with_redis=False) as resolved:
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
    import zoneinfo

    from store import tenants

    if timezone not in zoneinfo.available_timezones():
        raise click.BadParameter(
            f"expected an IANA time zone such as Europe/Berlin, got {timezone!r}",
            param_hint="--timezone",
        )

    async def go(conn: Any) -> None:
        click.echo(await tenants.create_org(conn, name, timezone))

    with_connection(ctx, go)


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

    with_connection(ctx, go)


@main.group()
def user() -> None:
    """People who sign in to the pages (admins and dispatchers)."""


@user.command("create")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "dispatcher"]), required=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="LASTMILE_NEW_PASSWORD",
    help="Asked for when not given (or taken from LASTMILE_NEW_PASSWORD); at least 10 characters.",
)
@click.pass_context
def user_create(
    ctx: click.Context, org_id: int, email: str, name: str, role: str, password: str
) -> None:
    """Create a user who signs in with an email and password; prints their id."""
    import msgspec

    from app.passwords import hash_password
    from schemas.ids import OrgId
    from schemas.users import UserIn
    from store import tenants, users

    try:
        wanted = msgspec.convert(
            {"email": email, "name": name, "role": role, "password": password}, UserIn
        )
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from None

    async def go(conn: Any) -> None:
        if not await tenants.org_exists(conn, OrgId(org_id)):
            raise click.BadParameter(f"no organisation {org_id}", param_hint="--org")
        try:
            created = await users.create(
                conn,
                OrgId(org_id),
                email=wanted.email.strip(),
                name=wanted.name,
                role=wanted.role,
                password_hash=await hash_password(wanted.password),
            )
        except users.EmailTaken:
            raise click.BadParameter(
                f"{email!r} already has an account", param_hint="--email"
            ) from None
        click.echo(created.id)

    with_connection(ctx, go)


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

    with_connection(ctx, go)


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

    with_connection(ctx, go)


def _echo_credentials(credentials: list[Credential]) -> None:
    for c in credentials:
        state = f"revoked {c.revoked_at:%Y-%m-%d %H:%M}Z" if c.revoked_at else "active"
        click.echo(
            f"{c.id}\t{c.role}\t{c.token_prefix}...\t{c.name}\t"
            f"created {c.created_at:%Y-%m-%d %H:%M}Z\t{state}"
        )


REVOCATION_NOTE = (
    "With LASTMILE_REDIS_URL set, every server forgets it at once. Without (embedded services),"
    " servers that authenticated it in the last LASTMILE_AUTH_CACHE_TTL_S seconds (30 by"
    " default) accept it until their cache entry expires: revoke through the API instead."
)


async def _announce(ctx: click.Context, kind: CredentialKind, token_hash: bytes) -> None:
    """Tell the servers to forget the revoked token, when there is a configured Redis."""
    settings = settings_from(ctx)
    if not settings.redis_url:
        click.echo("no LASTMILE_REDIS_URL: servers forget it when their cache entry expires")
        return
    from redis.asyncio import Redis

    from app.revocation import announce

    redis = Redis.from_url(settings.redis_url)
    try:
        await announce(
            redis, settings.redis_prefix, kind, [token_hash], settings.auth_fallback_ttl_s
        )
    finally:
        await redis.aclose()


@apikey.command("list")
@click.option("--org", "org_id", type=int, required=True)
@click.pass_context
def apikey_list(ctx: click.Context, org_id: int) -> None:
    """List an organisation's API keys: id, role, prefix, name, created, state (never the key)."""
    from schemas.ids import OrgId
    from store import tenants

    async def go(conn: Any) -> None:
        _echo_credentials(await tenants.list_api_keys(conn, OrgId(org_id)))

    with_connection(ctx, go)


@apikey.command("revoke", epilog=REVOCATION_NOTE)
@click.option("--org", "org_id", type=int, required=True)
@click.argument("key_id", type=click.IntRange(1, 2**63 - 1))
@click.pass_context
def apikey_revoke(ctx: click.Context, org_id: int, key_id: int) -> None:
    """Revoke API key KEY_ID (as `apikey list` shows it) of an organisation."""
    from schemas.ids import ApiKeyId, OrgId
    from store import tenants

    async def go(conn: Any) -> None:
        token_hash = await tenants.revoke_api_key(conn, OrgId(org_id), ApiKeyId(key_id))
        if token_hash is None:
            raise click.BadParameter(
                f"no active API key {key_id} in organisation {org_id}", param_hint="KEY_ID"
            )
        click.echo(f"API key {key_id} revoked")
        await _announce(ctx, "key", token_hash)

    with_connection(ctx, go)


@driver.command("devices")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--driver", "driver_id", type=int, required=True)
@click.pass_context
def driver_devices(ctx: click.Context, org_id: int, driver_id: int) -> None:
    """List a driver's device tokens: id, prefix, name, created, state (never the token)."""
    from schemas.ids import DriverId, OrgId
    from store import tenants

    async def go(conn: Any) -> None:
        _echo_credentials(await tenants.list_devices(conn, OrgId(org_id), DriverId(driver_id)))

    with_connection(ctx, go)


@driver.command("revoke-device", epilog=REVOCATION_NOTE)
@click.option("--org", "org_id", type=int, required=True)
@click.argument("device_id", type=click.IntRange(1, 2**63 - 1))
@click.pass_context
def driver_revoke_device(ctx: click.Context, org_id: int, device_id: int) -> None:
    """Revoke device token DEVICE_ID (as `driver devices` shows it) of an organisation."""
    from schemas.ids import DeviceId, OrgId
    from store import tenants

    async def go(conn: Any) -> None:
        token_hash = await tenants.revoke_device(conn, OrgId(org_id), DeviceId(device_id))
        if token_hash is None:
            raise click.BadParameter(
                f"no active device {device_id} in organisation {org_id}", param_hint="DEVICE_ID"
            )
        click.echo(f"device {device_id} revoked")
        await _announce(ctx, "device", token_hash)

    with_connection(ctx, go)


@main.group()
def audit() -> None:
    """The audit log: every proof and stop transition, hash-chained per organisation."""


@audit.command("verify")
@click.option("--org", "org_id", type=int, help="Only this organisation (default: every one).")
@click.pass_context
def audit_verify(ctx: click.Context, org_id: int | None) -> None:
    """Walk the audit chains; exit 1 when one is broken, naming the first bad entry."""
    from schemas.ids import OrgId
    from store import audit as chain

    broken: list[int] = []

    async def go(conn: Any) -> None:
        orgs = [OrgId(org_id)] if org_id is not None else await chain.orgs_with_entries(conn)
        for org in orgs:
            check = await chain.verify(conn, org)
            if check.ok:
                click.echo(f"org {org}: ok, {check.entries} entries")
            else:
                broken.append(org)
                click.echo(
                    f"org {org}: BROKEN at entry {check.first_bad_seq}: {check.reason}"
                    f" ({check.entries} entries before it hold)"
                )

    with_connection(ctx, go)
    if broken:
        ctx.exit(1)
