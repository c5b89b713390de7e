"""What every ``lastmile`` command shares: the command group, settings, services, the loop.

Settings come from ``LASTMILE_*`` variables (see the README); options given here override
them. With no database or Redis URL, commands start the embedded servers under the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import click

from app.settings import Settings, SettingsError

T = TypeVar("T")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lastmile")
def main() -> None:
    """lastmile: real-time last-mile delivery orchestration."""


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@contextlib.contextmanager
def services(settings: Settings, *, with_redis: bool = True) -> Iterator[Settings]:
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


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on uvloop where it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(make())  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(make())  # type: ignore[arg-type]


def with_connection(ctx: click.Context, action: Callable[[Any], Awaitable[None]]) -> None:
    settings = settings_from(ctx)
    import psycopg

    from store.migrate import upgrade

    with services(settings, with_redis=False) as resolved:
        url = resolved.database_url or ""
        upgrade(url)

        async def go() -> None:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await action(conn)

        run(go)
