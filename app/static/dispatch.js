// The dispatcher's live map (/dispatch).
//
// State comes from /v1/live/ws: a snapshot first on every connection, then `positions` (the
// newest position of drivers that moved) and `event` (domain events with their stream id). The
// page keeps one model (drivers, routes, stops, arrival windows, alerts) and draws it: Leaflet
// layers for the map, plain DOM for the side panel. Routes named by route_dispatched and
// route_changed events are fetched again from GET /v1/routes/{id}.
//
// Auth: the API key comes from the URL fragment (#key=...), which the browser never sends to the
// server; it is kept in sessionStorage and removed from the address bar. Without one, a form asks.
//
// Reconnects: with backoff on any drop, passing ?since=<last event id> so that missed events are
// replayed; at once when the server closed with 4408 (this screen fell behind). Replayed events
// are harmless: stop statuses only move forward and alerts are keyed by what they are about.

import { Reconnecting, baseMap, el, socketUrl } from "./reconnect.js";

const L = window.L;
const KEY_STORAGE = "lastmile.dispatch.key";
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_TOO_SLOW = 4408;
const STALE_AFTER_MS = 5 * 60 * 1000;
const MAX_ALERTS = 100;
const PALETTE = [
  "#2563eb", "#db2777", "#0d9488", "#d97706", "#7c3aed", "#0891b2",
  "#65a30d", "#c026d3", "#ea580c", "#4f46e5", "#be123c", "#15803d",
];
const STATUS_RANK = { pending: 0, arrived: 1, delivered: 2, failed: 2, removed: 3 };
const OPEN = new Set(["pending", "arrived"]);
const ROUTE_PREFERENCE = { started: 3, dispatched: 2, completed: 1, cancelled: 0 };

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

const model = {
  day: null, // the snapshot's day (UTC, like the server's): routes of other days are not shown
  names: new Map(), // driver id -> name
  positions: new Map(), // driver id -> LivePosition
  routes: new Map(), // route id -> RouteView
  stops: new Map(), // stop id -> { stop, routeId }
  windows: new Map(), // stop id -> ArrivalWindow
  nextStop: new Map(), // driver id -> stop id (from en_route)
  alerts: new Map(), // key -> { key, kind, at, stopId, driverId, title, text }
  lastEventId: null,
  connected: false,
  snapshots: 0,
};

const ui = {
  body: document.body,
  connection: document.getElementById("connection"),
  drivers: document.getElementById("drivers"),
  driverCount: document.getElementById("driver-count"),
  alerts: document.getElementById("alerts"),
  alertCount: document.getElementById("alert-count"),
  mapNote: document.getElementById("map-note"),
  gate: document.getElementById("key-gate"),
  keyForm: document.getElementById("key-form"),
  keyInput: document.getElementById("key-input"),
  keyError: document.getElementById("key-error"),
  forgetKey: document.getElementById("forget-key"),
  stats: {
    drivers: document.getElementById("stat-drivers"),
    done: document.getElementById("stat-done"),
    late: document.getElementById("stat-late"),
    failed: document.getElementById("stat-failed"),
  },
};

// --- the map -------------------------------------------------------------------------------

const map = baseMap(L, "map", ui.body.dataset.tileUrl, { worldCopyJump: true }, () => {
  note("Map background unavailable: showing drivers, routes and stops without it.");
});
map.setView([20, 0], 2);
const routeLayer = L.layerGroup().addTo(map);
const stopLayer = L.layerGroup().addTo(map);
const driverLayer = L.layerGroup().addTo(map);
const drawn = {
  lines: new Map(), // route id -> polyline
  stops: new Map(), // stop id -> circle marker
  drivers: new Map(), // driver id -> { marker, icon, label, arrow }
};

function note(text) {
  ui.mapNote.textContent = text;
  ui.mapNote.hidden = !text;
}

function routeColor(routeId) {
  return PALETTE[Number(routeId) % PALETTE.length];
}

function isLate(stopId) {
  const entry = model.stops.get(stopId);
  const eta = model.windows.get(stopId);
  return Boolean(entry && OPEN.has(entry.stop.status) && eta && eta.late_s > 0);
}

function drawRoute(route) {
  const color = routeColor(route.id);
  const visible = route.stops.filter((s) => s.status !== "removed").sort((a, b) => a.seq - b.seq);
  const points = visible.map((s) => [s.lat, s.lon]);
  let line = drawn.lines.get(route.id);
  if (line === undefined) {
    line = L.polyline(points, { color, weight: 4, opacity: 0.85, className: "route-line" });
    line.addTo(routeLayer);
    drawn.lines.set(route.id, line);
  } else {
    line.setLatLngs(points);
  }
  const path = line.getElement();
  if (path) {
    path.dataset.routeId = route.id;
    path.dataset.driverId = route.driver_id;
    path.dataset.stops = visible.length;
    path.classList.toggle("is-finished", route.status === "completed" || route.status === "cancelled");
  }
  for (const stop of route.stops) drawStop(stop.id);
}

function drawStop(stopId) {
  const entry = model.stops.get(stopId);
  let marker = drawn.stops.get(stopId);
  if (entry === undefined || entry.stop.status === "removed") {
    if (marker !== undefined) {
      marker.remove();
      drawn.stops.delete(stopId);
    }
    return;
  }
  const { stop, routeId } = entry;
  const late = isLate(stopId);
  if (marker === undefined) {
    marker = L.circleMarker([stop.lat, stop.lon], {
      radius: 7, weight: 3, color: routeColor(routeId), fillOpacity: 1, className: "stop",
    });
    marker.bindTooltip(() => stopCard(stopId), { direction: "top", offset: [0, -8] });
    marker.addTo(stopLayer);
    drawn.stops.set(stopId, marker);
  } else {
    marker.setLatLng([stop.lat, stop.lon]);
    marker.setStyle({ color: routeColor(routeId) });
  }
  marker.setRadius(late ? 9 : 7);
  const path = marker.getElement();
  if (path) {
    path.setAttribute("class", `stop leaflet-interactive stop-${stop.status}${late ? " is-late" : ""}`);
    Object.assign(path.dataset, {
      stopId: stop.id, routeId, orderId: stop.order_id, status: stop.status,
      late: late ? "true" : "false", seq: stop.seq, lat: stop.lat, lon: stop.lon,
    });
  }
  if (late) marker.bringToFront();
}

function stopCard(stopId) {
  const entry = model.stops.get(stopId);
  if (entry === undefined) return "";
  const { stop } = entry;
  const eta = model.windows.get(stopId);
  const rows = [
    el("div", { class: "tip-title" }, `#${stop.seq + 1} · ${stop.order_ref}`),
    stop.customer_name ? el("div", {}, stop.customer_name) : null,
    el("div", { class: "tip-muted" }, stop.address),
    el("div", {}, statusWords(stop)),
  ];
  if (stop.windows.length) {
    rows.push(el("div", { class: "tip-muted" },
      "Window ", stop.windows.map((w) => `${time(w.start)}–${time(w.end)}`).join(", ")));
  }
  if (OPEN.has(stop.status)) {
    if (eta) {
      rows.push(el("div", {}, `ETA ${epochTime(eta.lower_epoch_s)}–${epochTime(eta.upper_epoch_s)}`,
        ` (likely ${epochTime(eta.likely_epoch_s)})`));
    } else {
      rows.push(el("div", { class: "tip-muted" }, `Planned ${time(stop.planned_arrival)}`));
    }
  }
  if (isLate(stopId)) {
    rows.push(el("div", { class: "tip-late" }, `Running late by ${minutes(eta.late_s)}`));
  }
  return el("div", { class: "tip" }, rows);
}

function statusWords(stop) {
  switch (stop.status) {
    case "arrived": return stop.arrived_at ? `Driver at stop since ${time(stop.arrived_at)}` : "Driver at stop";
    case "delivered": return `Delivered${stop.completed_at ? ` at ${time(stop.completed_at)}` : ""}`;
    case "failed": return `Failed${stop.failure_reason ? `: ${stop.failure_reason}` : ""}`;
    case "removed": return "Removed from the route";
    default: return "Pending";
  }
}

function drawDriver(driverId) {
  const position = model.positions.get(driverId);
  if (position === undefined) return;
  let drawnDriver = drawn.drivers.get(driverId);
  if (drawnDriver === undefined) {
    const label = el("span", { class: "driver-initials" });
    const arrow = el("span", { class: "driver-heading" });
    const icon = el("span", { class: "driver-pin" }, arrow, label);
    const marker = L.marker([position.lat, position.lon], {
      icon: L.divIcon({ className: "driver-marker", html: icon, iconSize: [34, 34], iconAnchor: [17, 17] }),
      keyboard: true,
      zIndexOffset: 1000,
    });
    marker.bindTooltip(() => driverCard(driverId), { direction: "top", offset: [0, -16] });
    marker.on("click", () => focusDriver(driverId));
    marker.addTo(driverLayer);
    drawnDriver = { marker, icon, label, arrow };
    drawn.drivers.set(driverId, drawnDriver);
  } else {
    drawnDriver.marker.setLatLng([position.lat, position.lon]);
  }
  const name = driverName(driverId);
  const route = activeRoute(driverId);
  drawnDriver.label.textContent = initials(name);
  drawnDriver.icon.style.setProperty("--driver-color", route ? routeColor(route.id) : "#64748b");
  drawnDriver.arrow.hidden = position.heading_deg === null || position.heading_deg === undefined;
  drawnDriver.arrow.style.transform = `rotate(${position.heading_deg || 0}deg)`;
  const element = drawnDriver.marker.getElement();
  if (element) {
    element.title = name;
    element.setAttribute("aria-label", `${name}, driver`);
    Object.assign(element.dataset, { driverId, lat: position.lat, lon: position.lon, time: position.time });
    element.classList.toggle("is-stale", isStale(position));
  }
}

function driverCard(driverId) {
  const position = model.positions.get(driverId);
  const rows = [el("div", { class: "tip-title" }, driverName(driverId))];
  if (position) {
    rows.push(el("div", { class: "tip-muted" }, `Seen ${ago(position.time)}`));
    if (position.speed_mps !== null && position.speed_mps !== undefined) {
      rows.push(el("div", {}, `${Math.round(position.speed_mps * 3.6)} km/h`));
    }
    if (position.battery !== null && position.battery !== undefined) {
      rows.push(el("div", { class: "tip-muted" }, `Battery ${Math.round(position.battery)} %`));
    }
  }
  return el("div", { class: "tip" }, rows);
}

function fitToData() {
  const points = [];
  for (const position of model.positions.values()) points.push([position.lat, position.lon]);
  for (const { stop } of model.stops.values()) {
    if (stop.status !== "removed") points.push([stop.lat, stop.lon]);
  }
  if (points.length === 1) map.setView(points[0], 14);
  else if (points.length > 1) map.fitBounds(L.latLngBounds(points), { padding: [40, 40], maxZoom: 15 });
}

function focusDriver(driverId) {
  const position = model.positions.get(driverId);
  if (position) {
    map.flyTo([position.lat, position.lon], Math.max(map.getZoom(), 14), { duration: 0.6 });
    return;
  }
  const route = activeRoute(driverId);
  const line = route && drawn.lines.get(route.id);
  if (line && line.getLatLngs().length) map.fitBounds(line.getBounds(), { padding: [40, 40], maxZoom: 15 });
}

function focusStop(stopId) {
  const entry = model.stops.get(stopId);
  if (entry === undefined) return;
  map.flyTo([entry.stop.lat, entry.stop.lon], Math.max(map.getZoom(), 15), { duration: 0.6 });
  const marker = drawn.stops.get(stopId);
  if (marker) marker.openTooltip();
}

// --- the model -----------------------------------------------------------------------------

function driverName(driverId) {
  return model.names.get(Number(driverId)) || `Driver ${driverId}`;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  if (words.length === 1) return words[0].slice(0, 2).toUpperCase();
  return (words[0][0] + words[words.length - 1][0]).toUpperCase();
}

function activeRoute(driverId) {
  let best = null;
  for (const route of model.routes.values()) {
    if (route.driver_id !== Number(driverId)) continue;
    const rank = ROUTE_PREFERENCE[route.status] ?? 0;
    if (best === null || rank > best.rank || (rank === best.rank && route.id > best.route.id)) {
      best = { rank, route };
    }
  }
  return best && best.route;
}

function nextStopOf(driverId, route) {
  const told = model.nextStop.get(Number(driverId));
  const toldEntry = told !== undefined ? model.stops.get(told) : undefined;
  if (toldEntry && OPEN.has(toldEntry.stop.status)) return toldEntry.stop;
  if (!route) return null;
  return route.stops.filter((s) => OPEN.has(s.status)).sort((a, b) => a.seq - b.seq)[0] || null;
}

function setRoute(route) {
  const previous = model.routes.get(route.id);
  if (previous && previous.version > route.version) return; // an older answer came late
  model.routes.set(route.id, route);
  const keep = new Set(route.stops.map((s) => s.id));
  if (previous) {
    for (const stop of previous.stops) {
      if (!keep.has(stop.id) && model.stops.get(stop.id)?.routeId === route.id) {
        model.stops.delete(stop.id);
        drawStop(stop.id);
      }
    }
  }
  for (const stop of route.stops) {
    model.stops.set(stop.id, { stop, routeId: route.id });
    if (stop.status === "failed") failedAlert(stop, route.driver_id, stop.completed_at);
  }
  drawRoute(route);
  drawDriver(route.driver_id);
}

function removeRoute(routeId) {
  const route = model.routes.get(routeId);
  if (route === undefined) return;
  model.routes.delete(routeId);
  for (const stop of route.stops) {
    if (model.stops.get(stop.id)?.routeId === routeId) {
      model.stops.delete(stop.id);
      drawStop(stop.id);
    }
  }
  const line = drawn.lines.get(routeId);
  if (line) line.remove();
  drawn.lines.delete(routeId);
}

// Statuses only move forward, so a replayed event never undoes what the snapshot shows.
function setStopStatus(stopId, status, changes = {}) {
  const entry = model.stops.get(stopId);
  if (entry === undefined) return null;
  if (STATUS_RANK[status] < STATUS_RANK[entry.stop.status]) return entry.stop;
  if (status === entry.stop.status && Object.keys(changes).length === 0) return entry.stop;
  const stop = { ...entry.stop, status, ...changes };
  const route = model.routes.get(entry.routeId);
  if (route) {
    const stops = route.stops.map((s) => (s.id === stopId ? stop : s));
    model.routes.set(route.id, { ...route, stops });
  }
  model.stops.set(stopId, { stop, routeId: entry.routeId });
  drawStop(stopId);
  return stop;
}

function setWindow(eta) {
  if (!eta) return;
  model.windows.set(eta.stop_id, eta);
  drawStop(eta.stop_id);
}

function lateAlert(eta, driverId) {
  const entry = model.stops.get(eta.stop_id);
  const stop = entry && entry.stop;
  addAlert({
    key: `late:${eta.stop_id}`,
    kind: "running_late",
    at: new Date(eta.computed_epoch_s * 1000).toISOString(),
    stopId: eta.stop_id,
    driverId,
    title: "Running late",
    text: `${stop ? stop.order_ref : `Order ${eta.order_id}`}${stop && stop.customer_name ? ` · ${stop.customer_name}` : ""}`
      + ` — expected by ${epochTime(eta.upper_epoch_s)}, ${minutes(eta.late_s)} past the window`,
  });
}

function failedAlert(stop, driverId, at) {
  addAlert({
    key: `failed:${stop.id}`,
    kind: "stop_failed",
    at: at || new Date().toISOString(),
    stopId: stop.id,
    driverId,
    title: "Delivery failed",
    text: `${stop.order_ref}${stop.customer_name ? ` · ${stop.customer_name}` : ""}`
      + `${stop.failure_reason ? ` — ${stop.failure_reason}` : ""}`,
  });
}

function addAlert(alert) {
  const known = model.alerts.get(alert.key);
  if (known && known.kind === alert.kind) {
    // A later late window says by how much now; the first alert's time stays.
    model.alerts.set(alert.key, { ...alert, at: known.at });
  } else {
    model.alerts.set(alert.key, alert);
  }
  if (model.alerts.size > MAX_ALERTS) {
    const oldest = [...model.alerts.values()].sort((a, b) => a.at.localeCompare(b.at))[0];
    model.alerts.delete(oldest.key);
  }
}

function applySnapshot(snapshot) {
  model.day = snapshot.as_of.slice(0, 10);
  const present = new Set(snapshot.routes.map((r) => r.id));
  for (const routeId of [...model.routes.keys()]) {
    if (!present.has(routeId)) removeRoute(routeId);
  }
  model.windows.clear();
  for (const eta of snapshot.windows) model.windows.set(eta.stop_id, eta);
  for (const route of snapshot.routes) {
    model.routes.delete(route.id); // the snapshot is the truth, whatever version we had
    setRoute(route);
  }
  for (const eta of snapshot.windows) {
    if (isLate(eta.stop_id)) lateAlert(eta, model.routes.get(model.stops.get(eta.stop_id).routeId)?.driver_id);
  }
  for (const position of snapshot.drivers) model.positions.set(position.driver_id, position);
  for (const driverId of model.positions.keys()) drawDriver(driverId);
  for (const stopId of model.stops.keys()) drawStop(stopId);
  ensureNames();
  if (model.snapshots === 0) fitToData();
  model.snapshots += 1;
}

function applyPositions(drivers) {
  for (const position of drivers) {
    model.positions.set(position.driver_id, position);
    drawDriver(position.driver_id);
  }
  ensureNames();
}

function applyEvent(id, event) {
  model.lastEventId = id;
  switch (event.type) {
    case "route_dispatched":
    case "route_changed":
      refreshRoute(event.route_id);
      break;
    case "route_started": {
      const route = model.routes.get(event.route_id);
      if (route) setRoute({ ...route, status: "started" });
      else refreshRoute(event.route_id);
      break;
    }
    case "stop_arrived":
      setStopStatus(event.stop_id, "arrived", { arrived_at: event.at });
      break;
    case "stop_delivered":
      setStopStatus(event.stop_id, "delivered", { completed_at: event.at });
      afterStopClosed(event.route_id);
      break;
    case "stop_failed": {
      const stop = setStopStatus(event.stop_id, "failed", { completed_at: event.at, failure_reason: event.reason });
      failedAlert(stop || { id: event.stop_id, order_ref: `Order ${event.order_id}`, failure_reason: event.reason },
        event.driver_id, event.at);
      afterStopClosed(event.route_id);
      break;
    }
    case "order_cancelled":
      for (const { stop } of model.stops.values()) {
        if (stop.order_id === event.order_id) setStopStatus(stop.id, "removed");
      }
      if (event.route_id !== null && event.route_id !== undefined) refreshRoute(event.route_id);
      break;
    case "delivery":
      applyDelivery(event.detail);
      break;
    default:
      break; // a newer server's event: nothing to draw
  }
}

function afterStopClosed(routeId) {
  // The last closed stop completes the route: read it back for its status.
  const route = model.routes.get(routeId);
  if (route && !route.stops.some((s) => OPEN.has(s.status))) refreshRoute(routeId);
}

function applyDelivery(detail) {
  if (detail.window) setWindow(detail.window);
  switch (detail.type) {
    case "en_route":
      model.nextStop.set(detail.driver_id, detail.stop_id);
      break;
    case "arrived":
      model.nextStop.set(detail.driver_id, detail.stop_id);
      break;
    case "running_late":
      lateAlert(detail.window, detail.driver_id);
      break;
    case "eta_changed":
      if (isLate(detail.stop_id)) lateAlert(detail.window, detail.driver_id);
      break;
    default:
      break;
  }
}

// --- the API -------------------------------------------------------------------------------

let apiKey = null;
let feed = null;
const fetching = new Map(); // route id -> promise

class KeyRejected extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${apiKey}` } });
  if (response.status === 401 || response.status === 403) throw new KeyRejected(`${response.status}`);
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return response.json();
}

function refreshRoute(routeId) {
  if (fetching.has(routeId)) return fetching.get(routeId);
  const done = api(`/v1/routes/${routeId}`)
    .then((route) => {
      // Only today's routes are on the map, as in the snapshot.
      if (model.routes.has(route.id) || route.day === model.day) {
        setRoute(route);
        render();
      }
    })
    .catch(onApiError)
    .finally(() => fetching.delete(routeId));
  fetching.set(routeId, done);
  return done;
}

let namesLoading = null;
let namesLoadedAt = 0;

function ensureNames() {
  const ids = [...model.positions.keys(), ...[...model.routes.values()].map((r) => r.driver_id)];
  const missing = ids.some((id) => !model.names.has(Number(id)));
  // A new driver appears: read the names again, at most once a minute.
  if (namesLoading || (namesLoadedAt && (!missing || Date.now() - namesLoadedAt < 60000))) return;
  namesLoading = api("/v1/drivers")
    .then((body) => {
      for (const driver of body.drivers) model.names.set(driver.id, driver.name);
      for (const driverId of model.positions.keys()) drawDriver(driverId);
      render();
    })
    .catch(onApiError)
    .finally(() => {
      namesLoading = null;
      namesLoadedAt = Date.now(); // a failed read is retried a minute later, not on every message
    });
}

function onApiError(error) {
  if (error instanceof KeyRejected) {
    rejectKey("This key was not accepted.");
    return;
  }
  console.warn(error);
}

// --- the panel -----------------------------------------------------------------------------

let renderQueued = false;

function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderDrivers();
    renderAlerts();
    renderStats();
  });
}

function driverIds() {
  const ids = new Set([...model.positions.keys()].map(Number));
  for (const route of model.routes.values()) ids.add(route.driver_id);
  return [...ids].sort((a, b) => driverName(a).localeCompare(driverName(b)) || a - b);
}

function lateCount(route) {
  return route ? route.stops.filter((s) => isLate(s.id)).length : 0;
}

function renderDrivers() {
  const ids = driverIds();
  ui.driverCount.textContent = ids.length ? String(ids.length) : "";
  if (ids.length === 0) {
    ui.drivers.replaceChildren(el("li", { class: "empty" }, "No drivers on the road yet."));
    return;
  }
  ui.drivers.replaceChildren(...ids.map(driverItem));
}

function driverItem(driverId) {
  const name = driverName(driverId);
  const position = model.positions.get(driverId);
  const route = activeRoute(driverId);
  const late = lateCount(route);
  const next = nextStopOf(driverId, route);
  const eta = next && model.windows.get(next.id);
  const done = route ? route.stops.filter((s) => s.status === "delivered" || s.status === "failed").length : 0;
  const total = route ? route.stops.filter((s) => s.status !== "removed").length : 0;
  const status = routeStatusWords(route, done, total);
  const meta = [status];
  meta.push(position ? `seen ${ago(position.time)}` : "no position yet");
  const item = el("li", {
    class: `driver${late ? " has-late" : ""}${position && isStale(position) ? " is-stale" : ""}`,
    tabindex: 0,
    dataset: {
      driverId,
      routeId: route ? route.id : "",
      status: route ? route.status : "none",
      late: String(late),
      ...(position ? { lat: String(position.lat), lon: String(position.lon) } : {}),
    },
  },
  el("span", { class: "swatch", "aria-hidden": "true" }),
  el("div", { class: "driver-main" },
    el("div", { class: "driver-name" }, name,
      late ? el("span", { class: "badge badge-late" }, `${late} late`) : null),
    el("div", { class: "driver-meta" }, meta.join(" · ")),
    next ? el("div", { class: "driver-next" },
      el("span", { class: "muted" }, "Next "),
      `${next.order_ref}${next.customer_name ? ` · ${next.customer_name}` : ""}`,
      el("span", { class: isLate(next.id) ? "eta eta-late" : "eta" },
        eta ? `ETA ${epochTime(eta.likely_epoch_s)}` : `planned ${time(next.planned_arrival)}`))
      : null));
  item.querySelector(".swatch").style.background = route ? routeColor(route.id) : "#94a3b8";
  item.addEventListener("click", () => focusDriver(driverId));
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      focusDriver(driverId);
    }
  });
  return item;
}

function routeStatusWords(route, done, total) {
  if (!route) return "No route today";
  switch (route.status) {
    case "dispatched": return `Not started · ${total} stops`;
    case "started": return `On route · ${done}/${total} done`;
    case "completed": return `Route complete · ${total} stops`;
    case "cancelled": return "Route cancelled";
    default: return route.status;
  }
}

function renderAlerts() {
  const alerts = [...model.alerts.values()].sort((a, b) => b.at.localeCompare(a.at));
  ui.alertCount.textContent = alerts.length ? String(alerts.length) : "";
  if (alerts.length === 0) {
    ui.alerts.replaceChildren(el("li", { class: "empty" }, "Nothing needs your attention."));
    return;
  }
  ui.alerts.replaceChildren(...alerts.map((alert) => {
    const item = el("li", {
      class: `alert alert-${alert.kind}`,
      tabindex: 0,
      dataset: { kind: alert.kind, stopId: alert.stopId, at: alert.at },
    },
    el("time", { datetime: alert.at }, time(alert.at)),
    el("div", { class: "alert-body" },
      el("div", { class: "alert-title" }, alert.title,
        alert.driverId ? el("span", { class: "muted" }, ` · ${driverName(alert.driverId)}`) : null),
      el("div", { class: "alert-text" }, alert.text)));
    item.addEventListener("click", () => focusStop(alert.stopId));
    return item;
  }));
}

function renderStats() {
  let out = 0;
  for (const position of model.positions.values()) if (!isStale(position)) out += 1;
  let done = 0;
  let total = 0;
  let late = 0;
  let failed = 0;
  for (const { stop } of model.stops.values()) {
    if (stop.status === "removed") continue;
    total += 1;
    if (stop.status === "delivered" || stop.status === "failed") done += 1;
    if (stop.status === "failed") failed += 1;
    if (isLate(stop.id)) late += 1;
  }
  ui.stats.drivers.textContent = String(out);
  ui.stats.done.textContent = `${done}/${total}`;
  ui.stats.late.textContent = String(late);
  ui.stats.failed.textContent = String(failed);
  ui.stats.late.parentElement.classList.toggle("is-on", late > 0);
  ui.stats.failed.parentElement.classList.toggle("is-on", failed > 0);
}

function setConnection(state, text) {
  model.connected = state === "live";
  ui.connection.dataset.state = state;
  ui.connection.textContent = text;
}

// --- formatting ----------------------------------------------------------------------------

function time(iso) {
  return iso ? clock.format(new Date(iso)) : "";
}

function epochTime(epochS) {
  return clock.format(new Date(epochS * 1000));
}

function minutes(seconds) {
  const m = Math.max(1, Math.round(seconds / 60));
  return m < 90 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `on ${new Date(iso).toLocaleDateString()}`;
}

function isStale(position) {
  return Date.now() - new Date(position.time).getTime() > STALE_AFTER_MS;
}

// --- the key and the feed ------------------------------------------------------------------

function keyFromFragment() {
  // Parsed by hand: URLSearchParams would turn a "+" in a pasted key into a space.
  const pair = location.hash.slice(1).split("&").find((part) => part.startsWith("key="));
  const key = pair ? decodeURIComponent(pair.slice(4)).trim() : "";
  if (key) {
    sessionStorage.setItem(KEY_STORAGE, key);
    // Out of the address bar, the history and any screenshot.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_STORAGE);
}

function askForKey(message) {
  ui.gate.hidden = false;
  ui.keyError.textContent = message || "";
  ui.keyError.hidden = !message;
  ui.keyInput.value = "";
  ui.keyInput.focus();
}

function rejectKey(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  apiKey = null;
  if (feed) feed.stop();
  feed = null;
  setConnection("rejected", "Key not accepted");
  askForKey(message);
}

function connect(key) {
  if (feed) feed.stop();
  apiKey = key;
  ui.gate.hidden = true;
  setConnection("connecting", "Connecting…");
  feed = new Reconnecting({
    url: () => {
      const query = new URLSearchParams({ token: apiKey });
      if (model.lastEventId) query.set("since", model.lastEventId);
      return socketUrl(`/v1/live/ws?${query}`);
    },
    onMessage,
    onClose: (event) => {
      if (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_FORBIDDEN) {
        rejectKey(`This key was not accepted${event.reason ? ` (${event.reason})` : ""}.`);
        return "stop";
      }
      setConnection("reconnecting", "Reconnecting…");
      return event.code === CLOSE_TOO_SLOW ? "now" : "retry";
    },
    onWaiting: (delayMs) => {
      if (delayMs > 0) setConnection("reconnecting", `Reconnecting in ${Math.ceil(delayMs / 1000)} s…`);
    },
  });
  feed.start();
  ensureNames();
}

function onMessage(message) {
  switch (message.type) {
    case "snapshot":
      applySnapshot(message);
      setConnection("live", "Live");
      break;
    case "positions":
      applyPositions(message.drivers);
      break;
    case "event":
      applyEvent(message.id, message.event);
      break;
    default:
      return;
  }
  render();
}

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  connect(key);
});

ui.forgetKey.addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  if (feed) feed.stop();
  feed = null;
  apiKey = null;
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
  for (const driverId of model.positions.keys()) drawDriver(driverId);
  render();
}, 30000);

// Read-only view of the model for tests and the browser console.
window.lastmileDispatch = Object.freeze({
  get connected() { return model.connected; },
  get lastEventId() { return model.lastEventId; },
  drivers: () => [...model.positions.values()].map((p) => ({
    id: p.driver_id, name: driverName(p.driver_id), lat: p.lat, lon: p.lon, time: p.time,
  })),
  routes: () => [...model.routes.values()].map((r) => ({
    id: r.id, driverId: r.driver_id, status: r.status, version: r.version,
    stops: r.stops.filter((s) => s.status !== "removed").map((s) => s.id),
  })),
  stops: () => [...model.stops.values()].map(({ stop, routeId }) => ({
    id: stop.id, routeId, orderId: stop.order_id, status: stop.status, late: isLate(stop.id),
  })),
  alerts: () => [...model.alerts.values()].map((a) => ({ ...a })),
});

const initialKey = keyFromFragment();
if (initialKey) connect(initialKey);
else {
  setConnection("idle", "Not connected");
  askForKey("");
}
render();
