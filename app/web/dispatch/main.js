// The dispatcher's live map (/dispatch): the entry module, wiring the API key, the live feed and
// the day to the model and its views.
//
//   dispatch/fleet.js   the model: applies the snapshot, positions and events (no DOM, no network)
//   dispatch/map.js     draws the model on the Leaflet map
//   dispatch/panel.js   draws the side panel: header, counts, drivers, alerts
//   dispatch/notices.js an order's customer messages in its stop's popup (click a stop)
//   dispatch/reads.js   reads routes and driver names from the HTTP API
//   dispatch/times.js   formats times in the organisation's zone
//
// State comes from /v1/live/ws: a snapshot first on every connection (with the day it covers and
// the organisation's time zone), then `positions`, `windows` and `event` messages. After each message the
// model's changes are drawn, and routes named by route_dispatched and route_changed are read
// again from GET /v1/routes/{id}.
//
// Auth: the API key comes from the URL fragment (#key=...), which the browser never sends to the
// server; it is kept in sessionStorage and removed from the address bar. Without one, a form asks.
//
// The day: today in the organisation's zone, or ?day=YYYY-MM-DD of the page's address (the day
// form in the header is a plain GET form), passed on to the socket as is; the server closes with
// 4400 and a reason when it is not a date.
//
// Reconnects: with backoff on any drop, passing ?since=<last event id> so that missed events are
// replayed; at once when the server closed with 4408 (this screen fell behind). Replayed events
// are harmless (see dispatch/fleet.js).

import { Fleet } from "./fleet.js";
import { FleetMap } from "./map.js";
import { Panel, alertWords } from "./panel.js";
import { Notices, orderOfEvent } from "./notices.js";
import { ProofDetails } from "./proof.js";
import { Reads } from "./reads.js";
import { zoneClock } from "./times.js";
import { takeFromFragment } from "../common/fragment.js";
import { Reconnecting, socketTicket, socketUrl } from "../common/reconnect.js";

const KEY_STORAGE = "lastmile.dispatch.key";
const CLOSE_BAD_REQUEST = 4400;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_TOO_SLOW = 4408;
const AGE_EVERY_MS = 30_000;

const $ = (id) => document.getElementById(id);
const ui = {
  gate: $("key-gate"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyError: $("key-error"),
  forgetKey: $("forget-key"),
};
const requestedDay = new URLSearchParams(location.search).get("day");

const fleet = new Fleet();
const notices = new Notices({
  get: (path) => reads.get(path).catch((error) => { reads.failed(error); throw error; }),
  clock: () => zoneClock(fleet.timeZone),
});
const map = new FleetMap(window.L, fleet, {
  element: "map", tileUrl: document.body.dataset.tileUrl, note: $("map-note"),
  stopDetails: [
    (stop) => (stop.order_id ? notices.section(stop.order_id) : null),
    (stop) => proofs.section(stop),
  ],
});
const proofs = new ProofDetails({
  get: (path) => reads.get(path),
  clock: () => zoneClock(fleet.timeZone),
  L: window.L,
  map: map.map,
  maxDistanceM: Number(document.body.dataset.proofMaxDistanceM),
});
const panel = new Panel(fleet, {
  onDriver: (driverId) => map.focusDriver(driverId),
  onStop: (stopId) => map.focusStop(stopId),
});
const reads = new Reads({
  key: () => apiKey,
  onRejected: () => rejectKey("This key was not accepted."),
});

let apiKey = null;
let feed = null;
let connected = false;

// Draw what the model changed, read what it asked for, and redraw the panel.
function settle() {
  const changes = fleet.takeChanges();
  map.draw(changes);
  for (const routeId of changes.fetch) {
    reads.route(routeId, (route) => {
      if (fleet.acceptRoute(route)) settle();
    });
  }
  if (apiKey !== null) {
    reads.names(fleet.missingNames(), (drivers) => {
      fleet.setNames(drivers);
      settle();
    });
  }
  panel.render();
}

function setConnection(state, text) {
  connected = state === "live";
  panel.setConnection(state, text);
}

function onMessage(message) {
  switch (message.type) {
    case "snapshot":
      fleet.applySnapshot(message);
      setConnection("live", "Live");
      break;
    case "positions":
      fleet.applyPositions(message.drivers);
      break;
    case "windows":
      fleet.applyWindows(message.changes);
      break;
    case "event":
      fleet.applyEvent(message.id, message.event);
      notices.refresh(orderOfEvent(message.event));
      break;
    default:
      return;
  }
  settle();
}

// The key goes in a header for a single-use ticket; the socket's URL carries only the ticket.
async function feedUrl() {
  const ticket = await socketTicket("/v1/socket-tickets", apiKey);
  const query = new URLSearchParams({ ticket });
  if (requestedDay !== null) query.set("day", requestedDay);
  if (fleet.lastEventId) query.set("since", fleet.lastEventId);
  return socketUrl(`/v1/live/ws?${query}`);
}

function onClose(event) {
  if (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_FORBIDDEN) {
    rejectKey(`This key was not accepted${event.reason ? ` (${event.reason})` : ""}.`);
    return "stop";
  }
  if (event.code === CLOSE_BAD_REQUEST) {
    // The address asks for something the server refuses (a malformed ?day=): asking again
    // would get the same answer.
    setConnection("refused", "Not connected");
    panel.showProblem(`The server refused this view: ${event.reason || "bad request"}.`);
    return "stop";
  }
  setConnection("reconnecting", "Reconnecting…");
  return event.code === CLOSE_TOO_SLOW ? "now" : "retry";
}

function connect(key) {
  if (feed) feed.stop();
  apiKey = key;
  ui.gate.hidden = true;
  panel.showProblem("");
  setConnection("connecting", "Connecting…");
  feed = new Reconnecting({
    url: feedUrl,
    onMessage,
    onClose,
    onWaiting: (delayMs) => {
      if (delayMs > 0) setConnection("reconnecting", `Reconnecting in ${Math.ceil(delayMs / 1000)} s…`);
    },
  });
  feed.start();
  settle();
}

// --- the key -------------------------------------------------------------------------------

function keyFromFragment() {
  const key = takeFromFragment("key");
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  return sessionStorage.getItem(KEY_STORAGE);
}

function askForKey(message) {
  ui.gate.hidden = false;
  ui.keyError.textContent = message || "";
  ui.keyError.hidden = !message;
  ui.keyInput.value = "";
  ui.keyInput.focus();
}

function stopFeed() {
  sessionStorage.removeItem(KEY_STORAGE);
  apiKey = null;
  if (feed) feed.stop();
  feed = null;
}

function rejectKey(message) {
  stopFeed();
  setConnection("rejected", "Key not accepted");
  askForKey(message);
}

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  connect(key);
});

ui.forgetKey.addEventListener("click", () => {
  stopFeed();
  setConnection("idle", "Signed out");
  askForKey("");
});

window.addEventListener("hashchange", () => {
  const before = apiKey;
  const key = keyFromFragment();
  if (key && key !== before) connect(key);
});

// "Seen 2 min ago" and stale markers age without any message.
setInterval(() => {
  map.redrawDrivers();
  panel.render();
}, AGE_EVERY_MS);

// Read-only view of the model for tests and the browser console.
window.lastmileDispatch = Object.freeze({
  get connected() { return connected; },
  get lastEventId() { return fleet.lastEventId; },
  get day() { return fleet.day; },
  get timeZone() { return fleet.timeZone; },
  drivers: () => [...fleet.positions.values()].map((p) => ({
    id: p.driver_id, name: fleet.driverName(p.driver_id), lat: p.lat, lon: p.lon, time: p.time,
  })),
  routes: () => [...fleet.routes.values()].map((r) => ({
    id: r.id, driverId: r.driver_id, status: r.status, version: r.version,
    stops: r.stops.filter((s) => s.status !== "removed").map((s) => s.id),
  })),
  stops: () => [...fleet.stops.values()].map(({ stop, routeId }) => ({
    id: stop.id, routeId, orderId: stop.order_id, status: stop.status,
    late: fleet.isLate(stop.id), atRisk: fleet.isAtRisk(stop.id),
  })),
  alerts: () => [...fleet.alerts.values()].map((a) => ({ ...a, ...alertWords(a, zoneClock(fleet.timeZone)) })),
});

const initialKey = keyFromFragment();
if (initialKey) connect(initialKey);
else {
  setConnection("idle", "Not connected");
  askForKey("");
}
panel.render();
