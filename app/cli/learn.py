"""``lastmile learn``: learn speeds and service times from an organisation's days now."""

from __future__ import annotations

from typing import Any

import click

from app.cli.base import main, settings_from, with_connection


@main.command()
@click.option("--org", "org_id", type=int, help="Only this organisation (default: every one).")
@click.option(
    "--days", type=click.IntRange(1, 366), help="Days to learn from [LASTMILE_LEARN_DAYS]."
)
@click.pass_context
def learn(ctx: click.Context, org_id: int | None, days: int | None) -> None:
    """Learn each organisation's driving speeds (per H3 cell and hour of week) and service
    times from its rolled-up days; plans use the new model from then on."""
    from schemas.ids import OrgId
    from store import tenants
    from workers.learner import learn as learn_org

    settings = settings_from(ctx)

    async def go(conn: Any) -> None:
        if org_id is not None:
            if not await tenants.org_exists(conn, OrgId(org_id)):
                raise click.BadParameter(f"no organisation {org_id}", param_hint="--org")
            orgs = [OrgId(org_id)]
        else:
            orgs = await tenants.org_ids(conn)
        for org in orgs:
            learned = await learn_org(conn, org, days=days or settings.learn_days)
            click.echo(learned.describe())

    with_connection(ctx, go)
