"""Notify worker benchmark: events decided, rendered with templates and stored, per second.

    python -m bench.notify_render [--events 2000] [--batch 100] [--out FILE]

Creates ``--events`` orders (phone and email) and one ``en_route`` event with a window for
each on the events stream, then runs the notify consumer's ``handle`` over them in batches of
``--batch``, as the runner would: load orders, rules, templates and links, decide, render each
message (Jinja2 sandbox, Babel) with a new tracking link per order, insert with the text, in
one transaction per batch. Two phases on the same events: the organisation's built-in
templates, then its own template for ``en_route`` SMS (a second organisation). Beside them,
the rendering alone (:func:`workers.messages.render`) without any I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from redis.asyncio import Redis

from bench.harness import BenchEnv, Report, bench_env
from realtime.events import emit
from realtime.streams import StreamNames
from schemas.codecs import EVENT_DECODER
from schemas.delivery import OrderIn
from schemas.eta import ArrivalWindow, EnRoute
from schemas.events import DeliveryUpdate, Event
from schemas.ids import OrgId, RouteId, StopId
from schemas.notifications import Template
from store import notification_rules, tenants
from store.orders import import_orders
from workers import messages
from workers.notify import NotifyConsumer
from workers.runner import Entry

OWN = Template(
    kind="en_route",
    channel="sms",
    language="en",
    text="{{ org.name }}: {{ order.ref }} is on its way{% if window %}, between"
    " {{ window.earliest|time }} and {{ window.latest|time }}{% endif %}."
    "{% if tracking_url %} {{ tracking_url }}{% endif %}",
    custom=True,
)


async def _organisation(conn: psycopg.AsyncConnection, count: int, own: bool) -> list[Event]:
    org = await tenants.create_org(conn, "bench own" if own else "bench")
    driver = await tenants.create_driver(conn, org, name="bench")
    if own:
        await notification_rules.put_template(conn, org, OWN)
    rows = [
        (
            n,
            OrderIn(
                external_ref=f"b{n}",
                address=f"{n} Main Street",
                lat=52.5,
                lon=13.4,
                day=date.today(),
                phone="+4915550000",
                email="customer@example.com",
            ),
        )
        for n in range(count)
    ]
    created, _ = await import_orders(conn, org, rows)
    t = int(datetime.now(UTC).timestamp())
    return [
        DeliveryUpdate(
            org_id=OrgId(org),
            at=datetime.now(UTC),
            detail=EnRoute(
                driver_id=driver,
                route_id=RouteId(1),
                route_version=1,
                stop_id=StopId(row.line + 1),
                order_id=row.order_id,
                at_epoch_s=t,
                window=ArrivalWindow(
                    stop_id=StopId(row.line + 1),
                    order_id=row.order_id,
                    likely_epoch_s=t + 900,
                    lower_epoch_s=t + 600,
                    upper_epoch_s=t + 1200,
                    computed_epoch_s=t,
                ),
            ),
        )
        for row in created
    ]


async def _phase(env: BenchEnv, redis: Redis, events: list[Event], batch: int) -> float:
    """Events per second through ``handle``."""
    names = StreamNames(prefix=env.redis_prefix + f"{id(events)}:", shards=1)
    for k in range(0, len(events), 500):
        await emit(redis, names, *events[k : k + 500])
    raw: list[Any] = list(await redis.xrange(names.events) or [])
    entries: list[Entry[Event]] = [
        Entry(names.events, i.decode(), EVENT_DECODER.decode(f[b"e"])) for i, f in raw
    ]
    consumer = NotifyConsumer(
        names=names, database_url=env.database_url, public_url="https://track.example"
    )
    try:
        started = time.perf_counter()
        for k in range(0, len(entries), batch):
            await consumer.handle(entries[k : k + batch])
        return len(entries) / (time.perf_counter() - started)
    finally:
        await consumer.close()


def _render_only(count: int) -> float:
    """Messages per second through :func:`workers.messages.render` (an email: three parts)."""
    template = messages.default("en_route", "email", "de")
    facts = messages.sample_facts("en_route")[0]
    reader = messages.Reader(timezone="Europe/Berlin", language="de")
    messages.render(template, facts, reader)
    started = time.perf_counter()
    for _ in range(count):
        messages.render(template, facts, reader)
    return count / (time.perf_counter() - started)


async def run(env: BenchEnv, events: int, batch: int, report: Report) -> None:
    redis = Redis.from_url(env.redis_url)
    try:
        async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as c:
            defaults = await _organisation(c, events, own=False)
            own = await _organisation(c, events, own=True)
        report.add(phase="built-in templates", events=events, batch=batch,
                   events_per_s=await _phase(env, redis, defaults, batch))  # fmt: skip
        report.add(phase="organisation's own template", events=events, batch=batch,
                   events_per_s=await _phase(env, redis, own, batch))  # fmt: skip
        async with await psycopg.AsyncConnection.connect(env.database_url) as c:
            cursor = await c.execute(
                "SELECT count(*), count(body_text), count(DISTINCT link_token) FROM outbox"
            )
            rows, texts, links = await cursor.fetchone() or (0, 0, 0)
        report.add(phase="stored", rows=rows, with_text=texts, distinct_links=links)
        report.add(phase="render only (email, de)", messages_per_s=_render_only(5000))
        keys = [k async for k in redis.scan_iter(match=f"{env.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = Report("notify worker: decide, render, store")
    with bench_env() as env:
        asyncio.run(run(env, args.events, args.batch, report))
    report.write(args.out)


if __name__ == "__main__":
    main()
