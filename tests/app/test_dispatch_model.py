"""The dispatcher page's model (``app/web/dispatch/fleet.js``) on its own, in Chromium: the
facts it keeps from a snapshot and the messages after it, without a map or a socket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import Pages
from tests.conftest import LiveServer

END_S = 1_800_003_600
"""The customer's window of every stop here ends at this instant."""

MODEL = """
async (given) => {
  const { Fleet } = await import("/static/dispatch/fleet.js");
  const fleet = new Fleet();
  const stop = (id, seq) => ({
    id, seq, status: "pending", order_id: id, order_ref: `o${id}`, customer_name: null,
    address: "", lat: 52.5, lon: 13.4, planned_arrival: "2027-01-15T08:00:00Z",
    windows: [{ start: "2027-01-15T07:00:00Z", end: new Date(given.end * 1000).toISOString() }],
  });
  // late_s: how far the window's late end is past the customer's; likely: its likely arrival.
  const window = (stopId, lateS, likelyS) => ({
    stop_id: stopId, order_id: stopId, likely_epoch_s: likelyS, lower_epoch_s: likelyS - 600,
    upper_epoch_s: given.end + lateS, computed_epoch_s: given.end - 7200, late_s: lateS,
  });
  const route = {
    id: 7, driver_id: 3, status: "started", version: 1, stops: [stop(1, 0), stop(2, 1), stop(3, 2)],
  };
  fleet.applySnapshot({
    as_of: "2027-01-15T07:30:00Z", day: "2027-01-15", time_zone: "UTC", drivers: [],
    routes: [route],
    windows: [
      window(1, 900, given.end + 300), // likely after the customer's window: late
      window(2, 600, given.end - 300), // likely inside it, the late end after it: at risk
      window(3, 0, given.end - 900), // inside it
    ],
  });
  const seen = () => ({
    lateness: [1, 2, 3].map((id) => fleet.lateness(id)),
    stats: fleet.stats(),
    alerts: [...fleet.alerts.values()].map((a) => `${a.kind}:${a.stopId}`),
  });
  const atSnapshot = seen();
  // Stop 2's window moves later: its likely arrival is now after the customer's window too.
  const moved = window(2, 1500, given.end + 600);
  fleet.applyWindows([{ type: "eta_changed", driver_id: 3, stop_id: 2, window: moved }]);
  const afterMove = seen();
  // Stop 1 is delivered, and the replayed event changes nothing more.
  const delivered = { type: "stop_delivered", route_id: 7, stop_id: 1, order_id: 1, driver_id: 3,
                      at: "2027-01-15T08:10:00Z" };
  fleet.applyEvent("1-0", delivered);
  fleet.applyEvent("1-0", delivered);
  return { atSnapshot, afterMove, afterDelivery: seen() };
}
"""


@pytest.mark.browser
async def test_late_and_at_risk_stops_are_told_apart_and_replays_change_nothing(
    server: LiveServer, pages: Pages
) -> None:
    """Likely after the customer's window is late (alerted); only the late end after it is at
    risk (counted, not alerted); a delivered stop is neither, however often it is replayed."""
    page = await pages.open(f"{server.url}/healthz")
    seen: dict[str, Any] = await page.evaluate(MODEL, {"end": END_S})
    at_snapshot, after_move, after_delivery = (
        seen["atSnapshot"],
        seen["afterMove"],
        seen["afterDelivery"],
    )
    assert at_snapshot["lateness"] == ["late", "risk", None]
    assert (at_snapshot["stats"]["late"], at_snapshot["stats"]["risk"]) == (1, 1)
    assert at_snapshot["alerts"] == ["running_late:1"]
    assert after_move["lateness"] == ["late", "late", None]
    assert after_move["alerts"] == ["running_late:1", "running_late:2"]
    assert after_delivery["lateness"] == [None, "late", None]
    assert after_delivery["stats"] | {"out": 0} == {
        "out": 0,
        "done": 1,
        "total": 3,
        "late": 1,
        "risk": 0,
        "failed": 0,
    }


SEQUENCE = """
async () => {
  const { Fleet } = await import("/static/dispatch/fleet.js");
  const { alertWords } = await import("/static/dispatch/panel.js");
  const fleet = new Fleet();
  const stop = (id, seq) => ({
    id, seq, status: "pending", order_id: id, order_ref: `o${id}`, customer_name: `c${id}`,
    address: "", lat: 52.5, lon: 13.4, planned_arrival: "2027-01-15T08:00:00Z", windows: [],
  });
  fleet.applySnapshot({
    as_of: "2027-01-15T07:30:00Z", day: "2027-01-15", time_zone: "UTC", drivers: [],
    routes: [{ id: 7, driver_id: 3, status: "started", version: 1,
               stops: [stop(1, 0), stop(2, 1), stop(3, 2)] }],
    windows: [],
  });
  const detail = {
    type: "out_of_sequence", driver_id: 3, route_id: 7, route_version: 1, stop_id: 3,
    order_id: 3, at_epoch_s: 1800000000, expected_stop_id: 1, expected_order_id: 1,
    stay_start_epoch_s: 1799999880, dwell_s: 120,
  };
  const event = { type: "delivery", org_id: 1, at: "2027-01-15T08:00:00Z", detail };
  fleet.applyEvent("1-0", event);
  fleet.applyEvent("1-0", event);
  const alerts = [...fleet.alerts.values()];
  const clock = { epochTime: () => "08:00" };
  return {
    alerts: alerts.map((a) => `${a.kind}:${a.stopId}`),
    words: alerts.map((a) => alertWords(a, clock)),
    next: fleet.nextStop.get(3) ?? null,
  };
}
"""


@pytest.mark.browser
async def test_a_wait_out_of_sequence_is_one_alert_naming_the_stop_that_is_next(
    server: LiveServer, pages: Pages
) -> None:
    """A dwell at stop 3 while stop 1 is next is one alert (replays add none) that names both,
    and it does not make stop 3 the driver's next stop on the map."""
    page = await pages.open(f"{server.url}/healthz")
    seen: dict[str, Any] = await page.evaluate(SEQUENCE)
    assert seen["alerts"] == ["out_of_sequence:3"]
    assert seen["words"] == [
        {"title": "Out of sequence", "text": "o3 · c3 — waiting here 2 min while o1 is next"}
    ]
    assert seen["next"] is None
