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
// Auth: a user signs in with an email and password (POST /v1/session): the session is an HttpOnly
// cookie the page never sees, and every change it asks for carries the session's CSRF token.
// Or an API key, from the URL fragment (#key=...), which the browser never sends to the server; it
// is kept in sessionStorage and removed from the address bar. With neither, the sign-in form asks.
//
// The day: today in the organisation's zone, or ?day=YYYY-MM-DD of the page's address (the day
// form in the header is a plain GET form), passed on to the socket as is; the server closes with
// 4400 and a reason when it is not a date.
//
// Reconnects: with backoff on any drop, passing ?since=<last event id> so that missed events are
// replayed; at once when the server closed with 4408 (this screen fell behind). Replayed events
// are harmless (see dispatch/fleet.js).

import { Actions } from "./actions.js";
import { Fleet } from "./fleet.js";
import { FleetMap } from "./map.js";
import { Panel, alertWords } from "./panel.js";
import { Notices, orderOfEvent } from "./notices.js";
import { ProofDetails } from "./proof.js";
import { Reads } from "./reads.js";
import { zoneClock } from "./times.js";
import { takeFromFragment } from "../common/fragment.js";
import { currentSession, signIn, signOut } from "../common/session.js";
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
  signInForm: $("sign-in-form"),
  email: $("email-input"),
  password: $("password-input"),
  signInError: $("sign-in-error"),
  keyChoice: $("key-choice"),
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
    (stop) => actions.section(stop),
    (stop) => (stop.order_id ? notices.section(stop.order_id) : null),
    (stop) => proofs.section(stop),
  ],
  canMove: (stopId) => actions.movable(stopId),
  onMoveStop: (stopId, routeId) => actions.moveStop(stopId, routeId),
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
  alertAction: (alert) => actions.alertAction(alert),
});
const reads = new Reads({
  headers: () => credentialHeaders(),
  onRejected: () => rejectCredential(),
});

// {kind: "key", key} or {kind: "session", csrf, user}; null while signed out.
let credential = null;
const actions = new Actions({
  fleet,
  send: (method, path, body) => reads.send(method, path, body),
  clock: () => zoneClock(fleet.timeZone),
  day: () => fleet.day,
});
let feed = null;
let connected = false;

// Draw what the model changed, read what it asked for, and redraw the panel: once per animation
// frame, however many messages came since the last (a fleet of 300 sends several a second).
let settling = false;
function settle() {
  if (settling) return;
  settling = true;
  requestAnimationFrame(() => {
    settling = false;
    settleNow();
  });
}

function settleNow() {
  const changes = fleet.takeChanges();
  map.draw(changes);
  for (const routeId of changes.fetch) {
    reads.route(routeId, (route) => {
      if (fleet.acceptRoute(route)) settle();
    });
  }
  if (credential !== null) {
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
    case "routes":
      fleet.applyRoutes(message);
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

// What proves who the page is to the HTTP API: the key, or the session's CSRF token beside the
// cookie the browser sends by itself.
function credentialHeaders() {
  if (credential === null) return {};
  if (credential.kind === "key") return { authorization: `Bearer ${credential.key}` };
  return { "x-csrf-token": credential.csrf };
}

// The credential goes in headers for a single-use ticket; the socket's URL carries only the ticket.
async function feedUrl() {
  const ticket = await socketTicket("/v1/socket-tickets", credentialHeaders());
  const query = new URLSearchParams({ ticket });
  if (requestedDay !== null) query.set("day", requestedDay);
  if (fleet.lastEventId) query.set("since", fleet.lastEventId);
  return socketUrl(`/v1/live/ws?${query}`);
}

function onClose(event) {
  if (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_FORBIDDEN) {
    rejectCredential(event.reason);
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

function connect(given) {
  if (feed) feed.stop();
  credential = given;
  reads.get("/v1/depots?active=true").then((body) => map.drawDepots(body.depots)).catch((error) => reads.failed(error));
  ui.gate.hidden = true;
  ui.forgetKey.textContent = given.kind === "session" ? "Sign out" : "Change key";
  ui.forgetKey.title = given.kind === "session" ? `Signed in as ${given.user.email}` : "";
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

// --- signing in ------------------------------------------------------------------------------

function keyFromFragment() {
  const key = takeFromFragment("key");
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  return sessionStorage.getItem(KEY_STORAGE);
}

function showError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}

// The gate: the sign-in form, or the key form when `keyMessage` is about a key.
function askToSignIn({ signInMessage = "", keyMessage = "" } = {}) {
  ui.gate.hidden = false;
  showError(ui.signInError, signInMessage);
  showError(ui.keyError, keyMessage);
  ui.keyInput.value = "";
  ui.password.value = "";
  ui.keyChoice.open = Boolean(keyMessage);
  (keyMessage ? ui.keyInput : ui.email).focus();
}

function stopFeed() {
  sessionStorage.removeItem(KEY_STORAGE);
  credential = null;
  if (feed) feed.stop();
  feed = null;
}

function rejectCredential(reason) {
  const kind = credential ? credential.kind : "key";
  const why = reason ? ` (${reason})` : "";
  stopFeed();
  setConnection("rejected", kind === "session" ? "Signed out" : "Key not accepted");
  if (kind === "session") askToSignIn({ signInMessage: `Your session has ended${why}. Sign in again.` });
  else askToSignIn({ keyMessage: `This key was not accepted${why}.` });
}

ui.signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(ui.signInError, "");
  const { session, message } = await signIn(ui.email.value, ui.password.value);
  if (!session) {
    showError(ui.signInError, message);
    return;
  }
  ui.password.value = "";
  sessionStorage.removeItem(KEY_STORAGE);
  connect(session);
});

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  connect({ kind: "key", key });
});

ui.forgetKey.addEventListener("click", async () => {
  const was = credential;
  stopFeed();
  setConnection("idle", "Signed out");
  if (was && was.kind === "session") await signOut(was);
  askToSignIn();
});

window.addEventListener("hashchange", () => {
  const before = credential && credential.kind === "key" ? credential.key : null;
  const key = keyFromFragment();
  if (key && key !== before) connect({ kind: "key", key });
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
    likelyEpochS: fleet.windows.get(stop.id)?.likely_epoch_s ?? null,
  })),
  alerts: () => [...fleet.alerts.values()].map((a) => ({ ...a, ...alertWords(a, zoneClock(fleet.timeZone)) })),
});

async function start() {
  const initialKey = keyFromFragment();
  if (initialKey) {
    connect({ kind: "key", key: initialKey });
    return;
  }
  const session = await currentSession();
  if (session) connect(session);
  else {
    setConnection("idle", "Not connected");
    askToSignIn();
  }
}

start();
panel.render();
