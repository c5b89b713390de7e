"""Late routes re-sequenced by themselves (``auto_resequence``), through a live API process:
the ``running_late`` the ETA worker emits reaches the process's consumer, which rewrites the
route when a less late order exists, at most every ten minutes, and only where the organisation
turned it on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import websockets
from redis.asyncio import Redis

from app.auth import issue_api_key
from realtime.events import emit
from realtime.streams import StreamNames
from schemas.eta import ArrivalWindow, RunningLate
from schemas.events import DeliveryUpdate
from schemas.ids import DriverId, OrgId, RouteId, StopId
from tests.conftest import LiveServer, Tenant
from tests.days import DEPOT, Day, create, device, key, order, plan_and_dispatch
from tests.helpers import eventually

GROUP = "autoresequence"


def stream_id(raw: bytes | str | None) -> tuple[int, int]:
    """A stream entry id as numbers, to compare (``9-0`` comes before ``10-0``)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


async def late_event(redis: Redis, server: LiveServer, org_id: int, route: dict[str, Any]) -> None:
    """Emit a ``running_late`` for the route's last stop, and wait until the process's consumer
    has handled it (its group read past it, nothing pending)."""
    stop = route["stops"][-1]
    now = int(datetime.now(UTC).timestamp())
    window = ArrivalWindow(
        stop_id=StopId(stop["id"]), order_id=stop["order_id"], likely_epoch_s=now + 1800,
        lower_epoch_s=now + 1500, upper_epoch_s=now + 2400, computed_epoch_s=now, late_s=900,
    )  # fmt: skip
    detail = RunningLate(
        driver_id=DriverId(route["driver_id"]), route_id=RouteId(route["id"]),
        route_version=route["version"], stop_id=StopId(stop["id"]), order_id=stop["order_id"],
        at_epoch_s=now, window=window, customer_end_epoch_s=now + 900,
    )  # fmt: skip
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    event = DeliveryUpdate(org_id=OrgId(org_id), at=datetime.now(UTC), detail=detail)
    await emit(redis, names, event)
    newest = await redis.xrevrange(names.events, count=1)
    assert newest
    last_id = stream_id(newest[0][0])

    seen: list[Any] = []

    async def handled() -> bool:
        groups = await redis.xinfo_groups(names.events)
        mine = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        seen[:] = [mine, await redis.xinfo_consumers(names.events, GROUP) if mine else None]
        return bool(
            mine is not None
            and stream_id(mine["last-delivered-id"]) >= last_id
            and mine["pending"] == 0
        )

    try:
        await eventually(handled, "the running_late handled by the API process")
    except AssertionError as exc:  # say where the group stood, waiting for what
        entries = await redis.xrange(names.events)
        raise AssertionError(f"{exc}; event {last_id}, group {seen}, stream {entries}") from exc


async def route_now(http: httpx.AsyncClient, tenant: Tenant, route_id: int) -> dict[str, Any]:
    found: dict[str, Any] = (await http.get(f"/v1/routes/{route_id}", headers=key(tenant))).json()
    return found


async def test_a_late_route_is_resequenced_by_itself_only_where_asked_and_not_too_often(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    redis: Redis,
    tenant: Tenant,
    planner: None,
) -> None:
    """One driver, three stops east of the depot, the nearest due within 25 minutes. The
    route's order is turned around (as if the dispatcher had fixed it badly), so the nearest
    stop would be reached late: a running_late changes nothing while the setting is off; once on,
    the next one puts the nearest stop first and the driver's app gets the route; a third within
    the cooldown changes nothing more."""
    now = datetime.now(UTC)
    depot = await create(
        http, tenant, "/v1/depots", {"name": "Hub", "lat": DEPOT[0], "lon": DEPOT[1]}
    )
    van = await create(http, tenant, "/v1/vehicles", {"name": "Van", "capacity": {"parcels": 9}})
    driver = tenant.drivers[0]
    shift = await create(http, tenant, "/v1/shifts", {
        "driver_id": driver.id, "vehicle_id": van, "day": now.date().isoformat(),
        "start_place": {"depot_id": depot},
        "working_window": {"start": (now - timedelta(hours=1)).isoformat(),
                           "end": (now + timedelta(hours=8)).isoformat()},
    })  # fmt: skip
    tight = {"start": now.isoformat(), "end": (now + timedelta(minutes=25)).isoformat()}
    loose = {"start": now.isoformat(), "end": (now + timedelta(hours=6)).isoformat()}
    orders = {
        "near": await order(http, tenant, now.date(), "near", DEPOT[0], DEPOT[1] + 0.03, tight),
        "mid": await order(http, tenant, now.date(), "mid", DEPOT[0], DEPOT[1] + 0.08, loose),
        "far": await order(http, tenant, now.date(), "far", DEPOT[0], DEPOT[1] + 0.13, loose),
    }
    await plan_and_dispatch(http, tenant, Day(now.date(), [shift], orders))
    [planned] = (await http.get(f"/v1/routes?day={now.date()}", headers=key(tenant))).json()[
        "routes"
    ]
    assert sorted(s["order_id"] for s in planned["stops"]) == sorted(orders.values())
    started = await http.post("/v1/driver/route/start", headers=device(driver.token))
    assert started.status_code == 200, started.text
    backwards = [orders["far"], orders["mid"], orders["near"]]
    for seq, order_id in enumerate(backwards):
        await db.execute(
            "UPDATE stops SET seq = %s WHERE route_id = %s AND order_id = %s",
            (seq, planned["id"], order_id),
        )
    turned = await route_now(http, tenant, planned["id"])
    assert [s["order_id"] for s in turned["stops"]] == backwards

    await late_event(redis, server, tenant.org_id, turned)
    assert (await route_now(http, tenant, planned["id"]))["version"] == turned["version"]

    admin = await issue_api_key(db, tenant.org_id, role="admin", name="admin")
    switched = await http.patch(
        "/v1/settings/organisation",
        json={"auto_resequence": True},
        headers={"authorization": f"Bearer {admin}"},
    )
    assert switched.json()["auto_resequence"] is True
    async with websockets.connect(f"{server.ws_url}/v1/driver/ws?token={driver.token}") as phone:
        json.loads(await phone.recv())  # the route as it is now
        await late_event(redis, server, tenant.org_id, turned)
        pushed = json.loads(await phone.recv())["route"]
    assert pushed["version"] == turned["version"] + 1
    assert pushed["stops"][0]["order_id"] == orders["near"]
    assert pushed["stops"][0]["lateness_s"] == 0

    await late_event(redis, server, tenant.org_id, pushed)
    assert (await route_now(http, tenant, planned["id"]))["version"] == pushed["version"]
