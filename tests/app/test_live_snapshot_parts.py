"""A large day's snapshot on the dispatcher feed comes in parts: no message grows with the day.

The budget (``snapshot_part_stops``) is one stop here, so that a small day is already "large":
each route is a part of its own.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest
import websockets

from app.api.live_socket import route_parts
from app.settings import Settings
from schemas.route import RouteView
from tests.browser import Pages
from tests.conftest import LiveServer, Tenant
from tests.days import Day, plan_and_dispatch


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test's settings with a snapshot part of one stop."""
    return msgspec.structs.replace(settings, snapshot_part_stops=1)


def route(route_id: int, stops: int) -> RouteView:
    """A route view with ``stops`` stops (only the count matters to the cutting)."""
    return msgspec.convert(
        {"id": route_id, "plan_id": 1, "driver_id": 1, "vehicle_id": 1, "shift_id": 1,
         "day": "2027-01-15",
         "status": "dispatched", "version": 1, "planned_start": "2027-01-15T07:00:00Z",
         "planned_end": "2027-01-15T15:00:00Z", "distance_m": 0,
         "stops": [{"id": route_id * 100 + n, "order_id": n + 1, "order_ref": f"o{n}", "seq": n,
                    "status": "pending", "address": "", "lat": 52.5, "lon": 13.4,
                    "planned_arrival": "2027-01-15T08:00:00Z",
                    "planned_departure": "2027-01-15T08:05:00Z"} for n in range(stops)]},
        RouteView,
    )  # fmt: skip


def test_routes_are_cut_at_the_stop_budget_and_never_split() -> None:
    """Parts hold at most the budget's stops, in order; a route longer than the budget is a
    part of its own; no routes is one empty part (the snapshot)."""
    routes = [route(1, 3), route(2, 2), route(3, 9), route(4, 1), route(5, 4)]
    parts = route_parts(routes, 5)
    assert [[r.id for r in part] for part in parts] == [[1, 2], [3], [4, 5]]
    assert route_parts([], 5) == [[]]
    assert [[r.id for r in p] for p in route_parts(routes, 100)] == [[1, 2, 3, 4, 5]]


@pytest.mark.usefixtures("planner")
async def test_the_snapshot_names_the_routes_that_follow_and_they_come_before_anything_else(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day
) -> None:
    """Two routes and a budget of one stop: the snapshot holds the first and names the second,
    which comes next in a ``routes`` message marked last; together they are the day."""
    await plan_and_dispatch(http, tenant, delivery_day)
    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}&day={delivery_day.day}"
    async with websockets.connect(url) as socket:
        head: dict[str, Any] = json.loads(await socket.recv())
        part: dict[str, Any] = json.loads(await socket.recv())
    assert head["type"] == "snapshot"
    assert [len(head["routes"]), len(head["following"])] == [1, 1]
    assert part["type"] == "routes"
    assert part["last"] is True
    assert [r["id"] for r in part["routes"]] == head["following"]
    day = (await http.get(
        f"/v1/routes?day={delivery_day.day}", headers={"authorization": f"Bearer {tenant.api_key}"}
    )).json()["routes"]  # fmt: skip
    assert sorted(r["id"] for r in head["routes"] + part["routes"]) == sorted(r["id"] for r in day)


MODEL = """
async () => {
  const { Fleet } = await import("/static/dispatch/fleet.js");
  const fleet = new Fleet();
  const stop = (id, seq) => ({
    id, seq, status: "pending", order_id: id, order_ref: `o${id}`, customer_name: null,
    address: "", lat: 52.5, lon: 13.4, planned_arrival: "2027-01-15T08:00:00Z",
    windows: [{ start: "2027-01-15T07:00:00Z", end: "2027-01-15T09:00:00Z" }],
  });
  const route = (id, driver, stopIds) => ({
    id, driver_id: driver, status: "started", version: 1,
    stops: stopIds.map((s, n) => stop(s, n)),
  });
  const late = (stopId) => ({
    stop_id: stopId, order_id: stopId, likely_epoch_s: 1800003000, lower_epoch_s: 1800002400,
    upper_epoch_s: 1800003600, computed_epoch_s: 1800000000, late_s: 900,
  });
  const day = { as_of: "2027-01-15T07:30:00Z", day: "2027-01-15", time_zone: "UTC", drivers: [] };
  // A first connection: one route now, two to follow.
  fleet.applySnapshot({ ...day, routes: [route(1, 10, [11, 12])], windows: [], following: [2, 3] });
  const first = { routes: [...fleet.routes.keys()], fit: fleet.takeChanges().fit };
  fleet.applyRoutes({ routes: [route(2, 20, [21])], windows: [late(21)], last: false });
  const middle = { routes: [...fleet.routes.keys()], fit: fleet.takeChanges().fit };
  fleet.applyRoutes({ routes: [route(3, 30, [31])], windows: [], last: true });
  const changes = fleet.takeChanges();
  const whole = {
    routes: [...fleet.routes.keys()].sort(),
    fit: changes.fit,
    stops: [...changes.stops].sort(),
    alerts: [...fleet.alerts.values()].map((a) => `${a.kind}:${a.stopId}`),
  };
  // A reconnect: route 3 is gone; route 2 is kept while its part is on its way.
  fleet.applySnapshot({ ...day, routes: [route(1, 10, [11, 12])], windows: [], following: [2] });
  const reconnected = { routes: [...fleet.routes.keys()].sort(), fit: fleet.takeChanges().fit };
  return { first, middle, whole, reconnected };
}
"""


@pytest.mark.browser
async def test_the_page_keeps_the_following_routes_and_fits_the_map_once_the_day_is_whole(
    server: LiveServer, pages: Pages
) -> None:
    """The page's model: routes arrive part by part, a part's late windows raise alerts, the
    map is fitted once, when the first day is whole; a new snapshot keeps the routes it names
    as following and drops the others."""
    page = await pages.open(f"{server.url}/healthz")
    seen: dict[str, Any] = await page.evaluate(MODEL)
    assert seen["first"] == {"routes": [1], "fit": False}
    assert seen["middle"] == {"routes": [1, 2], "fit": False}
    assert seen["whole"]["routes"] == [1, 2, 3]
    assert seen["whole"]["fit"] is True
    assert seen["whole"]["stops"] == [31]
    assert seen["whole"]["alerts"] == ["running_late:21"]
    assert seen["reconnected"] == {"routes": [1, 2], "fit": False}
