// The dispatcher's map: Leaflet layers for the fleet's routes (one line each), stops (a circle
// coloured by status, a pulsing ring when late) and drivers (a disc with initials and a heading
// arrow). `draw(changes)` draws what the model says changed; nothing here changes the model.
//
// The shapes carry their state in data- attributes (see docs/pages.md) for tests and tooling.

import { instructionLines } from "../common/instructions.js";
import { baseMap, el } from "../common/reconnect.js";
import { OPEN, isStale } from "./fleet.js";
import { minutes, zoneClock } from "./times.js";

// Route colours: blues, violets, cyans and magentas only, so that no route is mistaken for a
// stop's state (green delivered, red failed or late, amber arrived or at risk).
const PALETTE = [
  "#2563eb", "#7c3aed", "#0891b2", "#c026d3", "#4f46e5", "#0369a1",
  "#9333ea", "#1e3a8a", "#a21caf", "#0e7490",
];
const NO_ROUTE_COLOR = "#64748b";

export function routeColor(routeId) {
  return PALETTE[Number(routeId) % PALETTE.length];
}

// The start of the customer's window when the driver is likely to come before any window opens
// (they wait for it); null when the likely arrival is inside or after a window.
function firstOpening(windows, likelyEpochS) {
  if (!windows.length) return null;
  const likelyMs = likelyEpochS * 1000;
  const later = windows.filter((w) => Date.parse(w.end) >= likelyMs);
  if (later.some((w) => Date.parse(w.start) <= likelyMs)) return null;
  const next = later.sort((a, b) => Date.parse(a.start) - Date.parse(b.start))[0];
  return next ? next.start : null;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  if (words.length === 1) return words[0].slice(0, 2).toUpperCase();
  return (words[0][0] + words[words.length - 1][0]).toUpperCase();
}

export class FleetMap {
  // `stopDetails`: functions (stop) -> element or null, each adding a section to a stop's popup
  // (the customer messages of notices.js).
  constructor(L, fleet, { element, tileUrl, note, stopDetails = [] }) {
    this.L = L;
    this.fleet = fleet;
    this.note = note;
    this.stopDetails = stopDetails;
    this.map = baseMap(L, element, tileUrl, { worldCopyJump: true }, () => {
      this.showNote("Map background unavailable: showing drivers, routes and stops without it.");
    });
    this.map.setView([20, 0], 2);
    this.routeLayer = L.layerGroup().addTo(this.map);
    this.stopLayer = L.layerGroup().addTo(this.map);
    this.driverLayer = L.layerGroup().addTo(this.map);
    this.lines = new Map(); // route id -> polyline
    this.stops = new Map(); // stop id -> circle marker
    this.drivers = new Map(); // driver id -> { marker, icon, label, arrow }
    this.leads = new Map(); // driver id -> dashed line from the driver to their next stop
    this.depotLayer = L.layerGroup().addTo(this.map);
  }

  // The organisation's depots, where routes start and end: a square each.
  drawDepots(depots) {
    this.depotLayer.clearLayers();
    for (const depot of depots) {
      const marker = this.L.marker([depot.lat, depot.lon], {
        icon: this.L.divIcon({ className: "depot-marker", html: el("span", { class: "depot-pin" }, "D"), iconSize: [22, 22], iconAnchor: [11, 11] }),
        keyboard: false,
        zIndexOffset: -100,
      });
      marker.bindTooltip(() => el("div", { class: "tip" }, el("div", { class: "tip-title" }, depot.name), el("div", { class: "tip-muted" }, "Depot")), { direction: "top" });
      marker.addTo(this.depotLayer);
      const element = marker.getElement();
      if (element) Object.assign(element.dataset, { depotId: depot.id });
    }
  }

  // A driver on the road is joined to their next stop by a dashed line in the route's colour.
  drawLead(driverId) {
    const position = this.fleet.positions.get(driverId);
    const route = this.fleet.activeRoute(driverId);
    const next = route && route.status === "started" ? this.fleet.nextStopOf(driverId, route) : null;
    let lead = this.leads.get(driverId);
    if (!position || !next) {
      if (lead) lead.remove();
      this.leads.delete(driverId);
      return;
    }
    const points = [[position.lat, position.lon], [next.lat, next.lon]];
    if (lead === undefined) {
      lead = this.L.polyline(points, { weight: 3, opacity: 0.8, dashArray: "6 6", className: "route-lead", interactive: false });
      lead.addTo(this.routeLayer);
      this.leads.set(driverId, lead);
    } else {
      lead.setLatLngs(points);
    }
    lead.setStyle({ color: routeColor(route.id) });
    const path = lead.getElement();
    if (path) Object.assign(path.dataset, { driverId, routeId: route.id, stopId: next.id });
  }

  get clock() {
    return zoneClock(this.fleet.timeZone);
  }

  showNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  // Draw what changed (see Fleet.takeChanges).
  draw(changes) {
    for (const routeId of changes.removedRoutes) this.removeRoute(routeId);
    for (const routeId of changes.routes) this.drawRoute(routeId);
    for (const stopId of changes.stops) this.drawStop(stopId);
    for (const driverId of changes.drivers) this.drawDriver(driverId);
    if (changes.fit) this.fitToData();
  }

  // Markers age without any message: "seen 2 min ago", greyed out when stale.
  redrawDrivers() {
    for (const driverId of this.fleet.positions.keys()) this.drawDriver(driverId);
  }

  removeRoute(routeId) {
    const line = this.lines.get(routeId);
    if (line) line.remove();
    this.lines.delete(routeId);
  }

  drawRoute(routeId) {
    const route = this.fleet.routes.get(routeId);
    if (route === undefined) return;
    const color = routeColor(route.id);
    const visible = route.stops.filter((s) => s.status !== "removed").sort((a, b) => a.seq - b.seq);
    const points = visible.map((s) => [s.lat, s.lon]);
    let line = this.lines.get(route.id);
    if (line === undefined) {
      line = this.L.polyline(points, { color, weight: 4, opacity: 0.85, className: "route-line" });
      line.addTo(this.routeLayer);
      this.lines.set(route.id, line);
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
    for (const stop of route.stops) this.drawStop(stop.id);
    this.drawLead(route.driver_id);
  }

  drawStop(stopId) {
    const entry = this.fleet.stops.get(stopId);
    let marker = this.stops.get(stopId);
    if (entry === undefined || entry.stop.status === "removed") {
      if (marker !== undefined) {
        marker.remove();
        this.stops.delete(stopId);
      }
      return;
    }
    const { stop, routeId } = entry;
    const lateness = this.fleet.lateness(stopId);
    const late = lateness === "late";
    if (marker === undefined) {
      marker = this.L.circleMarker([stop.lat, stop.lon], {
        radius: 7, weight: 3, color: routeColor(routeId), fillOpacity: 1, className: "stop",
      });
      marker.bindTooltip(() => this.stopCard(stopId), { direction: "top", offset: [0, -8] });
      marker.bindPopup(() => this.stopPopup(stopId), { maxWidth: 320, minWidth: 220, className: "stop-popup" });
      marker.addTo(this.stopLayer);
      this.stops.set(stopId, marker);
    } else {
      marker.setLatLng([stop.lat, stop.lon]);
      marker.setStyle({ color: routeColor(routeId) });
    }
    marker.setRadius(late ? 9 : 7);
    const path = marker.getElement();
    if (path) {
      path.setAttribute("class", `stop leaflet-interactive stop-${stop.status}${lateness ? ` is-${lateness}` : ""}`);
      Object.assign(path.dataset, {
        stopId: stop.id, routeId, orderId: stop.order_id, status: stop.status,
        late: late ? "true" : "false", risk: lateness === "risk" ? "true" : "false",
        seq: stop.seq, lat: stop.lat, lon: stop.lon,
      });
    }
    if (late) marker.bringToFront();
    const route = this.fleet.routes.get(routeId);
    if (route) this.drawLead(route.driver_id);
  }

  stopCard(stopId) {
    const entry = this.fleet.stops.get(stopId);
    if (entry === undefined) return "";
    const { stop } = entry;
    const clock = this.clock;
    const eta = this.fleet.windows.get(stopId);
    const rows = [
      el("div", { class: "tip-title" }, `#${stop.seq + 1} · ${stop.order_ref}`),
      stop.customer_name ? el("div", {}, stop.customer_name) : null,
      el("div", { class: "tip-muted" }, stop.address),
      el("div", {}, statusWords(stop, clock)),
      ...customerInstructions(stop),
    ];
    if (stop.windows.length) {
      rows.push(el("div", { class: "tip-muted" },
        "Window ", stop.windows.map((w) => `${clock.time(w.start)}–${clock.time(w.end)}`).join(", ")));
    }
    if (OPEN.has(stop.status)) {
      if (eta) {
        rows.push(el("div", {},
          `ETA ${clock.epochTime(eta.lower_epoch_s)}–${clock.epochTime(eta.upper_epoch_s)}`,
          ` (likely ${clock.epochTime(eta.likely_epoch_s)})`));
        const opens = firstOpening(stop.windows, eta.likely_epoch_s);
        if (opens !== null) {
          rows.push(el("div", { class: "tip-early" },
            `Early: the driver will wait until ${clock.time(opens)}, when the window opens`));
        }
      } else {
        rows.push(el("div", { class: "tip-muted" }, `Planned ${clock.time(stop.planned_arrival)}`));
      }
    }
    const lateness = this.fleet.lateness(stopId);
    if (lateness === "late") {
      rows.push(el("div", { class: "tip-late" }, `Running late by up to ${minutes(eta.late_s)}`));
    } else if (lateness === "risk") {
      rows.push(el("div", { class: "tip-risk" }, `At risk: may be up to ${minutes(eta.late_s)} late`));
    }
    return el("div", { class: "tip" }, rows);
  }

  // A clicked stop: its card and every detail section (read when the popup opens).
  stopPopup(stopId) {
    const entry = this.fleet.stops.get(stopId);
    if (entry === undefined) return "";
    const sections = this.stopDetails.map((detail) => detail(entry.stop));
    return el("div", { class: "stop-detail", dataset: { stopId } }, this.stopCard(stopId), sections);
  }

  drawDriver(driverId) {
    const position = this.fleet.positions.get(driverId);
    if (position === undefined) return;
    let drawn = this.drivers.get(driverId);
    if (drawn === undefined) {
      const label = el("span", { class: "driver-initials" });
      const arrow = el("span", { class: "driver-heading" });
      const icon = el("span", { class: "driver-pin" }, arrow, label);
      const marker = this.L.marker([position.lat, position.lon], {
        icon: this.L.divIcon({ className: "driver-marker", html: icon, iconSize: [34, 34], iconAnchor: [17, 17] }),
        keyboard: true,
        zIndexOffset: 1000,
      });
      marker.bindTooltip(() => this.driverCard(driverId), { direction: "top", offset: [0, -16] });
      marker.on("click", () => this.focusDriver(driverId));
      marker.addTo(this.driverLayer);
      drawn = { marker, icon, label, arrow };
      this.drivers.set(driverId, drawn);
    } else {
      drawn.marker.setLatLng([position.lat, position.lon]);
    }
    const name = this.fleet.driverName(driverId);
    const route = this.fleet.activeRoute(driverId);
    drawn.label.textContent = initials(name);
    drawn.icon.style.setProperty("--driver-color", route ? routeColor(route.id) : NO_ROUTE_COLOR);
    drawn.arrow.hidden = position.heading_deg === null || position.heading_deg === undefined;
    drawn.arrow.style.transform = `rotate(${position.heading_deg || 0}deg)`;
    const element = drawn.marker.getElement();
    if (element) {
      element.title = name;
      element.setAttribute("aria-label", `${name}, driver`);
      Object.assign(element.dataset, { driverId, lat: position.lat, lon: position.lon, time: position.time });
      element.classList.toggle("is-stale", isStale(position));
    }
    this.drawLead(driverId);
  }

  driverCard(driverId) {
    const position = this.fleet.positions.get(driverId);
    const rows = [el("div", { class: "tip-title" }, this.fleet.driverName(driverId))];
    if (position) {
      rows.push(el("div", { class: "tip-muted" }, `Seen ${this.clock.ago(position.time)}`));
      if (position.speed_mps !== null && position.speed_mps !== undefined) {
        rows.push(el("div", {}, `${Math.round(position.speed_mps * 3.6)} km/h`));
      }
      if (position.battery !== null && position.battery !== undefined) {
        rows.push(el("div", { class: "tip-muted" }, `Battery ${Math.round(position.battery)} %`));
      }
    }
    return el("div", { class: "tip" }, rows);
  }

  // Every driver and stop in view; called on the first snapshot only, after that the map stays
  // where the dispatcher puts it.
  fitToData() {
    const points = [];
    for (const position of this.fleet.positions.values()) points.push([position.lat, position.lon]);
    for (const { stop } of this.fleet.stops.values()) {
      if (stop.status !== "removed") points.push([stop.lat, stop.lon]);
    }
    if (points.length === 1) this.map.setView(points[0], 14);
    else if (points.length > 1) this.map.fitBounds(this.L.latLngBounds(points), { padding: [40, 40], maxZoom: 15 });
  }

  focusDriver(driverId) {
    const position = this.fleet.positions.get(driverId);
    if (position) {
      this.map.flyTo([position.lat, position.lon], Math.max(this.map.getZoom(), 14), { duration: 0.6 });
      return;
    }
    const route = this.fleet.activeRoute(driverId);
    const line = route && this.lines.get(route.id);
    if (line && line.getLatLngs().length) {
      this.map.fitBounds(line.getBounds(), { padding: [40, 40], maxZoom: 15 });
    }
  }

  focusStop(stopId) {
    const entry = this.fleet.stops.get(stopId);
    if (entry === undefined) return;
    this.map.flyTo([entry.stop.lat, entry.stop.lon], Math.max(this.map.getZoom(), 15), { duration: 0.6 });
    const marker = this.stops.get(stopId);
    if (marker) marker.openTooltip();
  }
}

// The customer's instructions from the tracking page or a text reply: their own words, as text.
function customerInstructions(stop) {
  return instructionLines(stop.instructions).map(({ label, words }) =>
    el("div", { class: "tip-instructions" }, label, words),
  );
}

function statusWords(stop, clock) {
  switch (stop.status) {
    case "arrived":
      return stop.arrived_at ? `Driver at stop since ${clock.time(stop.arrived_at)}` : "Driver at stop";
    case "delivered":
      return `Delivered${stop.completed_at ? ` at ${clock.time(stop.completed_at)}` : ""}`;
    case "failed":
      return `Failed${stop.failure_reason ? `: ${stop.failure_reason}` : ""}`;
    case "removed":
      return "Removed from the route";
    default:
      return "Pending";
  }
}
