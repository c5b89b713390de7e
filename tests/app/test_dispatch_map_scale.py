"""The dispatcher's map at fleet scale, in Chromium, on a constructed day (no server day): from
500 stops they are clustered; a stop that comes into view is drawn with its state; a cluster
holding a late stop is ringed; a small day keeps every stop on its own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import Pages
from tests.conftest import LiveServer

LATE_STOP = 7
"""The one stop whose likely arrival is after the customer's window."""

DAY = """
async ({ stops, late }) => {
  const { Fleet } = await import("/static/dispatch/fleet.js");
  const { FleetMap } = await import("/static/dispatch/map.js");
  const end = Date.parse("2027-01-15T12:00:00Z") / 1000;
  const stop = (id) => ({
    id, seq: id % 10, status: "pending", order_id: id, order_ref: `o${id}`, customer_name: null,
    address: "", lat: 52.4 + 0.2 * ((id * 37) % 101) / 100, lon: 13.2 + 0.4 * ((id * 53) % 97) / 96,
    planned_arrival: "2027-01-15T08:00:00Z", windows: [],
  });
  const routes = [];
  for (let r = 0; r < stops / 10; r += 1) {
    routes.push({ id: r + 1, driver_id: r + 1, status: "dispatched", version: 1,
                  stops: Array.from({ length: 10 }, (_, n) => stop(r * 10 + n + 1)) });
  }
  const windows = [{ stop_id: late, order_id: late, likely_epoch_s: end + 900,
                     lower_epoch_s: end, upper_epoch_s: end + 1800, computed_epoch_s: end - 3600,
                     late_s: 1800 }];
  const fleet = new Fleet();
  fleet.applySnapshot({ as_of: "2027-01-15T07:30:00Z", day: "2027-01-15", time_zone: "UTC",
                        drivers: [], routes, windows });
  const element = document.createElement("div");
  element.style.cssText = "position: fixed; left: 0; top: 0; width: 900px; height: 700px;";
  document.body.append(element);
  const note = document.createElement("p");
  const map = new FleetMap(window.L, fleet, { element, tileUrl: "off", note });
  map.draw(fleet.takeChanges());
  await new Promise((done) => setTimeout(done, 500)); // the clusters are added in slices
  const late_stop = fleet.stops.get(late).stop;
  const seen = () => ({
    clusters: element.querySelectorAll(".stop-cluster").length,
    lateClusters: element.querySelectorAll(".stop-cluster.has-late").length,
    clustered: [...element.querySelectorAll(".stop-cluster span")]
      .reduce((sum, span) => sum + Number(span.dataset.count), 0),
    circles: element.querySelectorAll("path.stop").length,
    lines: element.querySelectorAll("path.route-line").length,
  });
  const zoomedOut = seen();
  map.map.setView([late_stop.lat, late_stop.lon], 18, { animate: false });
  await new Promise((done) => setTimeout(done, 300));
  const circle = element.querySelector(`path.stop[data-stop-id="${late}"]`);
  return {
    zoomedOut,
    zoomedIn: seen(),
    lateCircle: circle && { late: circle.dataset.late, cls: circle.getAttribute("class"),
                            route: circle.dataset.routeId },
  };
}
"""


async def draw_day(server: LiveServer, pages: Pages, stops: int) -> dict[str, Any]:
    page = await pages.open(f"{server.url}/dispatch")  # Leaflet and the clusters loaded
    drawn: dict[str, Any] = await page.evaluate(DAY, {"stops": stops, "late": LATE_STOP})
    return drawn


@pytest.mark.browser
async def test_a_fleet_day_is_clustered_and_a_stop_in_view_keeps_its_state(
    server: LiveServer, pages: Pages
) -> None:
    drawn = await draw_day(server, pages, 600)
    out, near = drawn["zoomedOut"], drawn["zoomedIn"]
    assert out["lines"] == 60
    assert 0 < out["clusters"] < 200
    assert out["circles"] + out["clustered"] == 600  # every stop, in a cluster or on its own
    assert out["circles"] < 100
    assert out["lateClusters"] == 1
    # Zoomed in on the late stop: circles, no more than a street's worth, the late one decorated.
    assert 0 < near["circles"] < 100
    assert drawn["lateCircle"] == {
        "late": "true",
        "cls": "stop stop-pending is-late leaflet-interactive",
        "route": "1",
    }


@pytest.mark.browser
async def test_a_small_day_keeps_every_stop_on_its_own(server: LiveServer, pages: Pages) -> None:
    drawn = await draw_day(server, pages, 100)
    assert drawn["zoomedOut"]["clusters"] == 0
    assert drawn["zoomedOut"]["circles"] == 100
