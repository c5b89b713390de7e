// The dispatcher's map: Leaflet layers for the fleet's routes (one line each), stops (a circle
// coloured by status, a pulsing ring when late) and drivers (a disc with initials and a heading
// arrow). `draw(changes)` draws what the model says changed; nothing here changes the model.
//
// The shapes carry their state in data- attributes (see docs/pages.md) for tests and tooling.
//
// At fleet scale (CLUSTER_FROM stops or more) the stops are clustered (Leaflet.markercluster):
// a zoomed-out map shows a count per area instead of thousands of circles, and only the stops
// in view are in the page. A stop's circle is then made again whenever it comes back into view,
// so its state is kept on the marker and put on each new element (`add`).
//
// A pending stop of a running route can be dragged onto another driver (their marker or their
// row in the list), their route's line or one of their stops: that asks to move it there, and
// the action's preview comes first (dispatch/actions.js).

import { instructionLines } from "../common/instructions.js";
import { baseMap, el } from "../common/reconnect.js";
import { OPEN, RUNNING, isStale } from "./fleet.js";
import { minutes, zoneClock } from "./times.js";

// Route colours: blues, violets, cyans and magentas only, so that no route is mistaken for a
// stop's state (green delivered, red failed or late, amber arrived or at risk).
const PALETTE = [
  "#2563eb", "#7c3aed", "#0891b2", "#c026d3", "#4f46e5", "#0369a1",
  "#9333ea", "#1e3a8a", "#a21caf", "#0e7490",
];
const NO_ROUTE_COLOR = "#64748b";
const DRAG_PX = 6; // a press that moves less than this is a click
const CLUSTER_FROM = 500; // stops on the map from which they are clustered
const CLUSTER_OPTIONS = {
  chunkedLoading: true, // thousands of stops are added in slices, between frames
  animate: false,
  disableClusteringAtZoom: 16, // a street's stops one by one
  maxClusterRadius: 48,
  showCoverageOnHover: false,
  spiderfyOnMaxZoom: false,
  removeOutsideVisibleBounds: true,
};

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
  // (the customer messages of notices.js); `canMove(stopId)` whether a stop may be dragged to
  // another route, `onMoveStop(stopId, routeId)` when one was dropped there.
  constructor(L, fleet, { element, tileUrl, note, stopDetails = [], canMove = () => false, onMoveStop = () => {} }) {
    this.L = L;
    this.fleet = fleet;
    this.note = note;
    this.stopDetails = stopDetails;
    this.canMove = canMove;
    this.onMoveStop = onMoveStop;
    // maxZoom: the stop clusters need one even when there are no tiles to give it.
    this.map = baseMap(L, element, tileUrl, { worldCopyJump: true, maxZoom: 19 }, () => {
      this.showNote("Map background unavailable: showing drivers, routes and stops without it.");
    });
    this.map.setView([20, 0], 2);
    this.routeLayer = L.layerGroup().addTo(this.map);
    this.clustered = false;
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

  // Draw what changed (see Fleet.takeChanges): each route, stop, driver and lead line once.
  draw(changes) {
    this.useClusters(this.fleet.stops.size >= CLUSTER_FROM);
    const stops = new Set(changes.stops);
    const leads = new Set(changes.drivers);
    for (const routeId of changes.removedRoutes) this.removeRoute(routeId);
    for (const routeId of changes.routes) {
      const route = this.drawRoute(routeId);
      if (route) {
        for (const stop of route.stops) stops.add(stop.id);
        leads.add(route.driver_id);
      }
    }
    const added = [];
    for (const stopId of stops) {
      const routeId = this.drawStop(stopId, added);
      const route = routeId !== undefined && this.fleet.routes.get(routeId);
      if (route) leads.add(route.driver_id);
    }
    if (this.clustered) this.stopLayer.addLayers(added);
    else for (const marker of added) marker.addTo(this.stopLayer);
    for (const driverId of changes.drivers) this.drawDriver(driverId);
    for (const driverId of leads) this.drawLead(driverId);
    if (changes.fit) this.fitToData();
  }

  // Stops in clusters (`on`) or each on its own, moving those drawn to the new layer.
  useClusters(on) {
    if (on === this.clustered || (on && !this.L.markerClusterGroup)) return;
    const markers = [...this.stops.values()];
    this.stopLayer.remove();
    this.clustered = on;
    if (on) {
      this.stopLayer = this.L.markerClusterGroup({ ...CLUSTER_OPTIONS, iconCreateFunction: (cluster) => this.clusterIcon(cluster) });
      this.stopLayer.addTo(this.map);
      this.stopLayer.addLayers(markers);
    } else {
      this.stopLayer = this.L.layerGroup(markers).addTo(this.map);
    }
  }

  // A cluster: how many stops, ringed red when one of them is running late.
  clusterIcon(cluster) {
    const markers = cluster.getAllChildMarkers();
    const late = markers.some((marker) => this.fleet.isLate(marker.stopId));
    const count = markers.length;
    const size = count < 100 ? 34 : count < 1000 ? 40 : 46;
    return this.L.divIcon({
      className: `stop-cluster${late ? " has-late" : ""}`,
      html: el("span", { dataset: { count } }, String(count)),
      iconSize: [size, size],
    });
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

  // The route's line; the caller draws its stops. Returns the route, or undefined when gone.
  drawRoute(routeId) {
    const route = this.fleet.routes.get(routeId);
    if (route === undefined) return undefined;
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
    return route;
  }

  // A stop's circle, made or updated; a new one is pushed on `added` for the caller to put on
  // the map. Returns the stop's route id (undefined when the stop is gone).
  drawStop(stopId, added) {
    const entry = this.fleet.stops.get(stopId);
    let marker = this.stops.get(stopId);
    if (entry === undefined || entry.stop.status === "removed") {
      if (marker !== undefined) {
        this.stopLayer.removeLayer(marker);
        this.stops.delete(stopId);
      }
      return undefined;
    }
    const { stop, routeId } = entry;
    const lateness = this.fleet.lateness(stopId);
    const late = lateness === "late";
    const className = `stop stop-${stop.status}${lateness ? ` is-${lateness}` : ""}`;
    const dataset = {
      stopId: stop.id, routeId, orderId: stop.order_id, status: stop.status,
      late: late ? "true" : "false", risk: lateness === "risk" ? "true" : "false",
      seq: stop.seq, lat: stop.lat, lon: stop.lon,
    };
    if (marker === undefined) {
      marker = this.L.circleMarker([stop.lat, stop.lon], {
        radius: late ? 9 : 7, weight: 3, color: routeColor(routeId), fillOpacity: 1, className,
      });
      marker.stopId = stopId;
      marker.bindTooltip(() => this.stopCard(stopId), { direction: "top", offset: [0, -8] });
      marker.bindPopup(() => this.stopPopup(stopId), { maxWidth: 320, minWidth: 220, className: "stop-popup" });
      marker.on("add", () => decorate(marker));
      marker.on("mousedown", (event) => this.dragStop(stopId, event.originalEvent));
      marker.look = { className, dataset };
      this.stops.set(stopId, marker);
      added.push(marker);
      return routeId;
    }
    const wasLate = marker.look.dataset.late === "true";
    marker.look = { className, dataset };
    marker.options.className = className; // for the element made when it comes back into view
    marker.setStyle({ color: routeColor(routeId) });
    marker.setRadius(late ? 9 : 7);
    decorate(marker);
    if (late && this.map.hasLayer(marker)) marker.bringToFront();
    if (this.clustered && late !== wasLate) this.stopLayer.refreshClusters(marker);
    return routeId;
  }

  // Follow a press on a stop: a drag shows a line from the stop to the pointer, the route under
  // the pointer highlighted, and a drop there asks to move the stop; a press that does not move
  // stays a click (the stop's popup). The map does not pan meanwhile.
  dragStop(stopId, press) {
    if (press.button !== 0 || !this.canMove(stopId)) return;
    press.preventDefault(); // no text selection while dragging
    const from = this.stops.get(stopId).getLatLng();
    const container = this.map.getContainer();
    this.map.dragging.disable();
    let line = null;
    let lit = null;
    const light = (element) => {
      if (lit === element) return;
      if (lit) lit.classList.remove("is-drop-target");
      lit = element;
      if (lit) lit.classList.add("is-drop-target");
    };
    const follow = (event) => {
      if (line === null) {
        if (Math.hypot(event.clientX - press.clientX, event.clientY - press.clientY) < DRAG_PX) return;
        line = this.L.polyline([from, from], { className: "drag-line", interactive: false, dashArray: "4 6", weight: 2 }).addTo(this.map);
        container.classList.add("is-dragging-stop");
      }
      line.setLatLngs([from, this.map.mouseEventToLatLng(event)]);
      const target = this.dropTarget(document.elementFromPoint(event.clientX, event.clientY), stopId);
      light(target && target.element);
    };
    const drop = (event) => {
      document.removeEventListener("mousemove", follow);
      document.removeEventListener("mouseup", drop);
      this.map.dragging.enable();
      if (line === null) return;
      line.remove();
      light(null);
      container.classList.remove("is-dragging-stop");
      const target = this.dropTarget(document.elementFromPoint(event.clientX, event.clientY), stopId);
      if (target) this.onMoveStop(stopId, target.routeId);
    };
    document.addEventListener("mousemove", follow);
    document.addEventListener("mouseup", drop);
  }

  // The running route a drop on `element` gives the stop to, with the element to highlight: a
  // driver's marker or list row (their route that matters now), a route's line or another
  // route's stop. Null for anything else, and for the stop's own route.
  dropTarget(element, stopId) {
    if (!element) return null;
    let found = null;
    const driver = element.closest(".driver-marker, li.driver");
    if (driver) {
      const route = this.fleet.activeRoute(driver.dataset.driverId);
      if (route) found = { element: driver, routeId: route.id };
    } else if (element.matches("path.route-line, path.stop")) {
      found = { element, routeId: Number(element.dataset.routeId) };
    }
    if (found === null || found.routeId === this.fleet.stops.get(stopId)?.routeId) return null;
    const route = this.fleet.routes.get(found.routeId);
    return route && RUNNING.has(route.status) ? found : null;
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

  // A driver's marker; only what changed is touched (hundreds move every second).
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
      drawn = { marker, icon, label, arrow, shown: {} };
      this.drivers.set(driverId, drawn);
    }
    const name = this.fleet.driverName(driverId);
    const route = this.fleet.activeRoute(driverId);
    const heading = position.heading_deg;
    const now = {
      at: `${position.lat},${position.lon},${position.time}`,
      name,
      color: route ? routeColor(route.id) : NO_ROUTE_COLOR,
      heading: heading === null || heading === undefined ? null : heading,
      stale: isStale(position),
    };
    const shown = drawn.shown;
    drawn.shown = now;
    const element = drawn.marker.getElement();
    if (now.at !== shown.at) {
      if (shown.at !== undefined) drawn.marker.setLatLng([position.lat, position.lon]);
      if (element) Object.assign(element.dataset, { driverId, lat: position.lat, lon: position.lon, time: position.time });
    }
    if (now.name !== shown.name) {
      drawn.label.textContent = initials(name);
      if (element) {
        element.title = name;
        element.setAttribute("aria-label", `${name}, driver`);
      }
    }
    if (now.color !== shown.color) drawn.icon.style.setProperty("--driver-color", now.color);
    if (now.heading !== shown.heading) {
      drawn.arrow.hidden = now.heading === null;
      drawn.arrow.style.transform = `rotate(${now.heading || 0}deg)`;
    }
    if (now.stale !== shown.stale && element) element.classList.toggle("is-stale", now.stale);
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
    const marker = this.stops.get(stopId);
    if (marker && this.clustered) {
      this.stopLayer.zoomToShowLayer(marker, () => marker.openTooltip());
      return;
    }
    this.map.flyTo([entry.stop.lat, entry.stop.lon], Math.max(this.map.getZoom(), 15), { duration: 0.6 });
    if (marker) marker.openTooltip();
  }
}

// Put a stop's state (class and data- attributes) on its circle's element, when it has one.
function decorate(marker) {
  const path = marker.getElement();
  if (!path) return;
  path.setAttribute("class", `${marker.look.className} leaflet-interactive`);
  Object.assign(path.dataset, marker.look.dataset);
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
