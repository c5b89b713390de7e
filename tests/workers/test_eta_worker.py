"""The ETA worker end to end: pings of a driver on a dispatched route become windows and events."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from app.settings import Settings
from realtime.streams import StreamNames, shard_of
from schemas.codecs import EVENT_DECODER
from schemas.events import DeliveryUpdate
from schemas.ids import DriverId
from tests.conftest import LiveServer, Tenant
from tests.days import Day, device, key, plan_and_dispatch, running_worker
from tests.helpers import eventually, stream_entries


async def delivery_updates(redis: Redis, names: StreamNames, stop_id: int) -> Counter[str]:
    """How often each kind of detection was recorded for one stop."""
    kinds: Counter[str] = Counter()
    for _, fields in stream_entries(await redis.xrange(names.events)):
        event = EVENT_DECODER.decode(fields[b"e"])
        if isinstance(event, DeliveryUpdate) and event.detail.stop_id == stop_id:
            kinds[event.detail.__struct_config__.tag] += 1  # type: ignore[index]
    return kinds


def fixes(lat: float, lon: float, start: datetime) -> list[dict[str, Any]]:
    """Far away, then 500 m off, then dwelling at the stop for a minute."""
    track = [(lat + 0.02, lon), (lat + 0.0045, lon)] + [(lat, lon)] * 4
    return [
        {
            "time": (start + timedelta(seconds=20 * i)).isoformat(),
            "lat": a,
            "lon": b,
            "accuracy_m": 5,
        }
        for i, (a, b) in enumerate(track)
    ]


async def test_pings_near_a_stop_fire_each_delivery_event_once(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    eta_worker: None,
    redis: Redis,
) -> None:
    """En route, approaching and arrived fire once each, even when the pings are sent twice."""
    await plan_and_dispatch(http, tenant, delivery_day)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    first = route["stops"][0]
    body = {"pings": fixes(first["lat"], first["lon"], datetime.now(UTC) - timedelta(minutes=3))}
    for _ in range(2):
        sent = await http.post("/v1/pings", json=body, headers=device(driver.token))
        assert sent.json()["accepted"] == 6
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    kinds: Counter[str] = Counter()
    for _ in range(200):
        kinds = await delivery_updates(redis, names, first["id"])
        if kinds["arrived"]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the re-sent batch has been handled by now, and added nothing
    kinds = await delivery_updates(redis, names, first["id"])
    assert (kinds["en_route"], kinds["approaching"], kinds["arrived"]) == (1, 1, 1)
    windows = await redis.hgetall(names.arrival_windows(route["id"]))
    assert {int(k) for k in windows} == {s["id"] for s in route["stops"]}


async def wait_for_kind(redis: Redis, names: StreamNames, stop_id: int, kind: str) -> None:
    async def fired() -> int:
        return (await delivery_updates(redis, names, stop_id))[kind]

    await eventually(fired, f"{kind} for stop {stop_id}")


async def test_a_route_change_reaches_the_tracker_on_the_next_ping(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    eta_worker: None,
    redis: Redis,
) -> None:
    """A stop cancelled after the worker loaded the route is not arrived at on the next pings:
    the route change moves the driver's route generation and the worker re-reads the route
    at once, not when its cached copy expires minutes later."""
    await plan_and_dispatch(http, tenant, delivery_day)
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    route = max(routes["routes"], key=lambda r: len(r["stops"]))
    assert len(route["stops"]) >= 2
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    first, second = route["stops"][:2]
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    track = fixes(first["lat"], first["lon"], datetime.now(UTC) - timedelta(minutes=3))
    far = await http.post("/v1/pings", json={"pings": track[:1]}, headers=device(driver.token))
    assert far.json()["accepted"] == 1
    await wait_for_kind(redis, names, first["id"], "en_route")
    cancelled = await http.post(
        f"/v1/orders/{first['order_id']}/cancel", json={"reason": "customer"}, headers=key(tenant)
    )
    assert cancelled.status_code == 200, cancelled.text
    rest = await http.post("/v1/pings", json={"pings": track[1:]}, headers=device(driver.token))
    assert rest.json()["accepted"] == 5
    await wait_for_kind(redis, names, second["id"], "en_route")
    await asyncio.sleep(0.3)
    kinds = await delivery_updates(redis, names, first["id"])
    assert (kinds["approaching"], kinds["arrived"]) == (0, 0)


async def holder_of(redis: Redis, names: StreamNames, shard: int) -> str | None:
    """The ETA consumer working on ``shard`` now, if one does."""
    held = await redis.get(names.lease(f"eta:{shard}"))
    return held.decode().split(":")[0] if isinstance(held, bytes) else None


async def shared(redis: Redis, names: StreamNames) -> dict[int, str | None]:
    """Wait until the two ETA workers hold a shard each; which holds which."""

    async def holders() -> dict[int, str | None]:
        found = {shard: await holder_of(redis, names, shard) for shard in range(names.shards)}
        return found if set(found.values()) == {"eta-a", "eta-b"} else {}

    return await eventually(holders, "two workers holding a shard each")


async def test_eta_workers_share_the_shards_and_one_takes_over_what_another_left(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    settings: Settings,
    redis: Redis,
) -> None:
    """Two ETA workers hold a ping shard each; when the one with the driver's shard stops, the
    other takes it over and continues from the saved trackers: en route (seen by the first),
    approaching and arrived (by the second) each fire once."""
    await plan_and_dispatch(http, tenant, delivery_day)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    first = route["stops"][0]
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    shard = shard_of(DriverId(driver.id), names.shards)
    track = fixes(first["lat"], first["lon"], datetime.now(UTC) - timedelta(minutes=3))
    workers = {name: contextlib.AsyncExitStack() for name in ("eta-a", "eta-b")}
    async with workers["eta-a"], workers["eta-b"]:
        for name, stack in workers.items():
            await stack.enter_async_context(running_worker(settings, "eta", consumer=name))
        holders = await shared(redis, names)
        far = await http.post("/v1/pings", json={"pings": track[:1]}, headers=device(driver.token))
        assert far.json()["accepted"] == 1
        await wait_for_kind(redis, names, first["id"], "en_route")

        leaving = holders[shard]
        assert leaving is not None
        await workers[leaving].aclose()  # a graceful stop gives its shard back at once
        other = ({"eta-a", "eta-b"} - {leaving}).pop()

        async def taken_over() -> bool:
            return await holder_of(redis, names, shard) == other

        await eventually(taken_over, f"{other} working on shard {shard}")
        rest = await http.post("/v1/pings", json={"pings": track[1:]}, headers=device(driver.token))
        assert rest.json()["accepted"] == 5
        await wait_for_kind(redis, names, first["id"], "arrived")
        await asyncio.sleep(0.3)
    kinds = await delivery_updates(redis, names, first["id"])
    assert (kinds["en_route"], kinds["approaching"], kinds["arrived"]) == (1, 1, 1)


async def test_events_a_failed_emit_lost_fire_on_the_retry(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    eta_worker: None,
    redis: Redis,
) -> None:
    """When the events stream refuses the worker's XADD, the detections are not marked seen:
    once the stream takes writes again, the retried batch fires en route, approaching and
    arrived (at least once, never lost)."""
    await plan_and_dispatch(http, tenant, delivery_day)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    first = route["stops"][0]
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    # A key of the wrong type makes every XADD to the events stream fail (WRONGTYPE).
    # Its entries as they are, fields typed as XADD takes them to put them back.
    kept = cast("list[tuple[bytes, dict[FieldT, EncodableT]]]", await redis.xrange(names.events))
    await redis.delete(names.events)
    await redis.set(names.events, b"not a stream")
    body = {"pings": fixes(first["lat"], first["lon"], datetime.now(UTC) - timedelta(minutes=3))}
    sent = await http.post("/v1/pings", json=body, headers=device(driver.token))
    assert sent.json()["accepted"] == 6
    shard = names.pings(shard_of(driver.id, names.shards))

    async def tried() -> bool:
        groups = await redis.xinfo_groups(shard)
        eta = next((g for g in groups if g["name"] == b"eta"), None)
        return eta is not None and eta["pending"] > 0

    await eventually(tried, "the ETA group holding the batch it failed on")
    await redis.delete(names.events)
    for entry_id, fields in kept:
        await redis.xadd(names.events, fields, id=entry_id)
    for kind in ("en_route", "approaching", "arrived"):
        await wait_for_kind(redis, names, first["id"], kind)


async def test_a_wait_at_a_later_stop_alerts_dispatchers_until_the_driver_marks_it_arrived(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    eta_worker: None,
    redis: Redis,
) -> None:
    """Dwelling at the second stop with the first pending records out_of_sequence and nothing
    for its customer; once the driver app marks it arrived, the next pings record its arrival."""
    await plan_and_dispatch(http, tenant, delivery_day)
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    route = max(routes["routes"], key=lambda r: len(r["stops"]))
    assert len(route["stops"]) >= 2
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    second = route["stops"][1]
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    track = fixes(second["lat"], second["lon"], datetime.now(UTC) - timedelta(minutes=4))
    sent = await http.post("/v1/pings", json={"pings": track}, headers=device(driver.token))
    assert sent.json()["accepted"] == 6
    await wait_for_kind(redis, names, second["id"], "out_of_sequence")
    kinds = await delivery_updates(redis, names, second["id"])
    assert (kinds["en_route"], kinds["approaching"], kinds["arrived"]) == (0, 0, 0)
    marked = await http.post(
        f"/v1/driver/stops/{second['id']}/arrive", headers=device(driver.token)
    )
    assert marked.status_code == 200, marked.text
    later = fixes(second["lat"], second["lon"], datetime.now(UTC) - timedelta(minutes=2))[-2:]
    more = await http.post("/v1/pings", json={"pings": later}, headers=device(driver.token))
    assert more.json()["accepted"] == 2
    await wait_for_kind(redis, names, second["id"], "arrived")
    kinds = await delivery_updates(redis, names, second["id"])
    assert (kinds["out_of_sequence"], kinds["arrived"]) == (1, 1)
