// The dispatcher's model of the fleet, as the live feed (/v1/live/ws) describes it: the drivers'
// latest positions, the day's routes and stops, the open stops' arrival windows, and alerts.
//
// No DOM and no network. The apply* methods change the state and record what changed; the entry
// module takes those changes (`takeChanges`), draws them and fetches the routes the model asks
// for (`changes.fetch`), then hands each fetched route back with `acceptRoute`.
//
// Replayed events are harmless, which is what makes reconnecting with ?since= safe: a stop's
// status only moves forward, an older route version never replaces a newer one, and alerts are
// keyed by what they are about.

export const OPEN = new Set(["pending", "arrived"]);
export const RUNNING = new Set(["dispatched", "started"]); // routes a dispatcher can still change
const STATUS_RANK = { pending: 0, arrived: 1, delivered: 2, failed: 2, removed: 3 };
const ROUTE_PREFERENCE = { started: 3, dispatched: 2, completed: 1, cancelled: 0 };
const STALE_AFTER_MS = 5 * 60 * 1000;
const MAX_ALERTS = 100;

function noChanges() {
  return {
    routes: new Set(), // route ids to draw again (their line and all their stops)
    removedRoutes: new Set(), // route ids no longer on the map
    stops: new Set(), // stop ids to draw again (or remove, when no longer in the model)
    drivers: new Set(), // driver ids to draw again
    fetch: new Set(), // route ids to read again with GET /v1/routes/{id}
    fit: false, // the first snapshot: fit the map to everything
  };
}

// A position older than five minutes: the driver's device has gone quiet.
export function isStale(position, nowMs = Date.now()) {
  return nowMs - new Date(position.time).getTime() > STALE_AFTER_MS;
}

export class Fleet {
  constructor() {
    this.day = null; // the snapshot's day: routes of other days are not shown
    this.timeZone = "UTC"; // the organisation's zone, from the snapshot
    this.names = new Map(); // driver id -> name
    this.positions = new Map(); // driver id -> LivePosition
    this.routes = new Map(); // route id -> RouteView
    this.routesOf = new Map(); // driver id -> Set of route ids (asked for every driver each frame)
    this.stops = new Map(); // stop id -> { stop, routeId }
    this.windows = new Map(); // stop id -> ArrivalWindow
    this.nextStop = new Map(); // driver id -> stop id (from en_route and arrived)
    this.alerts = new Map(); // key -> alert (see lateAlert, failedAlert)
    this.alertsVersion = 0; // grows with every change to the alerts
    this.lastEventId = null;
    this.snapshots = 0;
    this.whole = false; // every route of the last snapshot arrived (see applyRoutes)
    this.changes = noChanges();
  }

  // What changed since the last call, for drawing; starts a new record.
  takeChanges() {
    const changes = this.changes;
    this.changes = noChanges();
    return changes;
  }

  // --- questions ---------------------------------------------------------------------------

  driverName(driverId) {
    return this.names.get(Number(driverId)) || `Driver ${driverId}`;
  }

  // Some driver on the map or on a route has no name yet.
  missingNames() {
    const ids = [...this.positions.keys(), ...[...this.routes.values()].map((r) => r.driver_id)];
    return ids.some((id) => !this.names.has(Number(id)));
  }

  // How an open stop's arrival window sits against the customer's window: "late" when the
  // likely arrival is after it, "risk" when only the window's late end is (the driver may well
  // be on time: far stops have wide windows), else null. late_s is how far the late end is
  // past the customer's window, so the customer's window ends at upper - late_s.
  lateness(stopId) {
    const entry = this.stops.get(stopId);
    const eta = this.windows.get(stopId);
    if (!entry || !OPEN.has(entry.stop.status) || !eta || !(eta.late_s > 0)) return null;
    return eta.likely_epoch_s > eta.upper_epoch_s - eta.late_s ? "late" : "risk";
  }

  isLate(stopId) {
    return this.lateness(stopId) === "late";
  }

  isAtRisk(stopId) {
    return this.lateness(stopId) === "risk";
  }

  // The driver's route that matters most now: started, then dispatched, then the newest.
  activeRoute(driverId) {
    let best = null;
    for (const routeId of this.routesOf.get(Number(driverId)) || []) {
      const route = this.routes.get(routeId);
      if (route === undefined || route.driver_id !== Number(driverId)) continue;
      const rank = ROUTE_PREFERENCE[route.status] ?? 0;
      if (best === null || rank > best.rank || (rank === best.rank && route.id > best.route.id)) {
        best = { rank, route };
      }
    }
    return best && best.route;
  }

  // The stop the driver heads for: the one en_route named, else the route's first open stop.
  nextStopOf(driverId, route) {
    const told = this.nextStop.get(Number(driverId));
    const toldEntry = told !== undefined ? this.stops.get(told) : undefined;
    if (toldEntry && OPEN.has(toldEntry.stop.status)) return toldEntry.stop;
    if (!route) return null;
    return route.stops.filter((s) => OPEN.has(s.status)).sort((a, b) => a.seq - b.seq)[0] || null;
  }

  // Drivers with a position or a route, by name.
  driverIds() {
    const ids = new Set([...this.positions.keys()].map(Number));
    for (const route of this.routes.values()) ids.add(route.driver_id);
    return [...ids].sort((a, b) => this.driverName(a).localeCompare(this.driverName(b)) || a - b);
  }

  lateCount(route) {
    return route ? route.stops.filter((s) => this.isLate(s.id)).length : 0;
  }

  riskCount(route) {
    return route ? route.stops.filter((s) => this.isAtRisk(s.id)).length : 0;
  }

  // The panel's counts: drivers out (not stale), stops done of all, late, at risk, failed.
  stats(nowMs = Date.now()) {
    let out = 0;
    for (const position of this.positions.values()) if (!isStale(position, nowMs)) out += 1;
    const counts = { out, done: 0, total: 0, late: 0, risk: 0, failed: 0 };
    for (const { stop } of this.stops.values()) {
      if (stop.status === "removed") continue;
      counts.total += 1;
      if (stop.status === "delivered" || stop.status === "failed") counts.done += 1;
      if (stop.status === "failed") counts.failed += 1;
      const lateness = this.lateness(stop.id);
      if (lateness === "late") counts.late += 1;
      if (lateness === "risk") counts.risk += 1;
    }
    return counts;
  }

  // --- messages ----------------------------------------------------------------------------

  // The snapshot replaces the whole state (positions of drivers it leaves out are kept). A large
  // day's other routes follow in parts (snapshot.following: their ids, kept meanwhile).
  applySnapshot(snapshot) {
    this.day = snapshot.day || snapshot.as_of.slice(0, 10); // an older server: the UTC day
    this.timeZone = snapshot.time_zone || "UTC";
    const following = snapshot.following || [];
    const present = new Set([...snapshot.routes.map((r) => r.id), ...following]);
    for (const routeId of [...this.routes.keys()]) {
      if (!present.has(routeId)) this.removeRoute(routeId);
    }
    this.windows.clear();
    this.addRoutes(snapshot.routes, snapshot.windows);
    for (const position of snapshot.drivers) this.positions.set(position.driver_id, position);
    for (const driverId of this.positions.keys()) this.changes.drivers.add(driverId);
    for (const stopId of this.stops.keys()) this.changes.stops.add(stopId);
    this.whole = following.length === 0;
    if (this.snapshots === 0 && this.whole) this.changes.fit = true;
    this.snapshots += 1;
  }

  // More of the snapshot's routes; the map is fitted to the first day once it is whole.
  applyRoutes(part) {
    this.addRoutes(part.routes, part.windows);
    for (const route of part.routes) {
      for (const stop of route.stops) this.changes.stops.add(stop.id);
    }
    if (part.last && !this.whole) {
      this.whole = true;
      if (this.snapshots === 1) this.changes.fit = true;
    }
  }

  // Routes as the server has them now (whatever version was known), and their open stops' windows.
  addRoutes(routes, windows) {
    for (const eta of windows) this.windows.set(eta.stop_id, eta);
    for (const route of routes) {
      const known = this.routes.get(route.id);
      if (known) this.unindex(known);
      this.routes.delete(route.id);
      this.setRoute(route);
    }
    for (const eta of windows) {
      if (this.isLate(eta.stop_id)) {
        this.lateAlert(eta, this.routes.get(this.stops.get(eta.stop_id).routeId)?.driver_id);
      }
    }
  }

  applyPositions(drivers) {
    for (const position of drivers) {
      this.positions.set(position.driver_id, position);
      this.changes.drivers.add(position.driver_id);
    }
  }

  // Moved arrival windows, the newest of each stop (eta_changed details, coalesced by the server).
  applyWindows(changes) {
    for (const detail of changes) this.applyDelivery(detail);
  }

  applyEvent(id, event) {
    this.lastEventId = id;
    switch (event.type) {
      case "route_dispatched":
      case "route_changed":
        this.changes.fetch.add(event.route_id);
        break;
      case "route_started": {
        const route = this.routes.get(event.route_id);
        if (route) this.setRoute({ ...route, status: "started" });
        else this.changes.fetch.add(event.route_id);
        break;
      }
      case "stop_arrived":
        this.setStopStatus(event.stop_id, "arrived", { arrived_at: event.at });
        break;
      case "stop_delivered":
        this.setStopStatus(event.stop_id, "delivered", { completed_at: event.at });
        this.afterStopClosed(event.route_id);
        break;
      case "stop_failed": {
        const stop = this.setStopStatus(event.stop_id, "failed",
          { completed_at: event.at, failure_reason: event.reason });
        this.failedAlert(
          stop || { id: event.stop_id, order_ref: `Order ${event.order_id}`, failure_reason: event.reason },
          event.driver_id, event.at);
        this.afterStopClosed(event.route_id);
        break;
      }
      case "order_cancelled":
        for (const { stop } of this.stops.values()) {
          if (stop.order_id === event.order_id) this.setStopStatus(stop.id, "removed");
        }
        if (event.route_id !== null && event.route_id !== undefined) this.changes.fetch.add(event.route_id);
        break;
      case "delivery":
        this.applyDelivery(event.detail);
        break;
      default:
        break; // a newer server's event: nothing to draw
    }
  }

  // A route read with GET /v1/routes/{id}: taken when it is on the map or of the map's day.
  acceptRoute(route) {
    if (!this.routes.has(route.id) && route.day !== this.day) return false;
    this.setRoute(route);
    return true;
  }

  // The drivers of GET /v1/drivers: their names.
  setNames(drivers) {
    for (const driver of drivers) this.names.set(driver.id, driver.name);
    for (const driverId of this.positions.keys()) this.changes.drivers.add(driverId);
  }

  // --- changes -----------------------------------------------------------------------------

  setRoute(route) {
    const previous = this.routes.get(route.id);
    if (previous && previous.version > route.version) return; // an older answer came late
    if (previous && previous.driver_id !== route.driver_id) this.unindex(previous);
    this.routes.set(route.id, route);
    if (!this.routesOf.has(route.driver_id)) this.routesOf.set(route.driver_id, new Set());
    this.routesOf.get(route.driver_id).add(route.id);
    const keep = new Set(route.stops.map((s) => s.id));
    if (previous) {
      for (const stop of previous.stops) {
        if (!keep.has(stop.id) && this.stops.get(stop.id)?.routeId === route.id) {
          this.stops.delete(stop.id);
          this.changes.stops.add(stop.id);
        }
      }
    }
    for (const stop of route.stops) {
      this.stops.set(stop.id, { stop, routeId: route.id });
      if (stop.status === "failed") this.failedAlert(stop, route.driver_id, stop.completed_at);
    }
    this.changes.removedRoutes.delete(route.id);
    this.changes.routes.add(route.id);
    this.changes.drivers.add(route.driver_id); // the marker takes the route's colour
  }

  removeRoute(routeId) {
    const route = this.routes.get(routeId);
    if (route === undefined) return;
    this.routes.delete(routeId);
    this.unindex(route);
    for (const stop of route.stops) {
      if (this.stops.get(stop.id)?.routeId === routeId) {
        this.stops.delete(stop.id);
        this.changes.stops.add(stop.id);
      }
    }
    this.changes.routes.delete(routeId);
    this.changes.removedRoutes.add(routeId);
  }

  unindex(route) {
    const routes = this.routesOf.get(route.driver_id);
    if (routes === undefined) return;
    routes.delete(route.id);
    if (routes.size === 0) this.routesOf.delete(route.driver_id);
  }

  // Statuses only move forward, so a replayed event never undoes what the snapshot shows.
  setStopStatus(stopId, status, changes = {}) {
    const entry = this.stops.get(stopId);
    if (entry === undefined) return null;
    if (STATUS_RANK[status] < STATUS_RANK[entry.stop.status]) return entry.stop;
    if (status === entry.stop.status && Object.keys(changes).length === 0) return entry.stop;
    const stop = { ...entry.stop, status, ...changes };
    const route = this.routes.get(entry.routeId);
    if (route) {
      const stops = route.stops.map((s) => (s.id === stopId ? stop : s));
      this.routes.set(route.id, { ...route, stops });
    }
    this.stops.set(stopId, { stop, routeId: entry.routeId });
    this.changes.stops.add(stopId);
    return stop;
  }

  setWindow(eta) {
    if (!eta) return;
    this.windows.set(eta.stop_id, eta);
    this.changes.stops.add(eta.stop_id);
  }

  afterStopClosed(routeId) {
    // The last closed stop completes the route: read it back for its status.
    const route = this.routes.get(routeId);
    if (route && !route.stops.some((s) => OPEN.has(s.status))) this.changes.fetch.add(routeId);
  }

  applyDelivery(detail) {
    if (detail.window) this.setWindow(detail.window);
    switch (detail.type) {
      case "en_route":
      case "arrived":
        this.nextStop.set(detail.driver_id, detail.stop_id);
        break;
      case "running_late": // the likely arrival is late (a window only at risk raises none)
        if (this.isLate(detail.stop_id)) this.lateAlert(detail.window, detail.driver_id);
        break;
      case "eta_changed":
        if (this.isLate(detail.stop_id)) this.lateAlert(detail.window, detail.driver_id);
        break;
      case "out_of_sequence": // the driver waits at a stop that is not the route's next one
        this.sequenceAlert(detail);
        break;
      default:
        break;
    }
  }

  // --- alerts: facts only; the panel words them, in the organisation's zone -----------------

  lateAlert(eta, driverId) {
    const stop = this.stops.get(eta.stop_id)?.stop;
    this.addAlert({
      key: `late:${eta.stop_id}`,
      kind: "running_late",
      at: new Date(eta.computed_epoch_s * 1000).toISOString(),
      stopId: eta.stop_id,
      driverId,
      orderRef: stop ? stop.order_ref : `Order ${eta.order_id}`,
      customerName: stop ? stop.customer_name : null,
      expectedEpochS: eta.upper_epoch_s,
      lateS: eta.late_s,
    });
  }

  sequenceAlert(detail) {
    const stop = this.stops.get(detail.stop_id)?.stop;
    const expected = this.stops.get(detail.expected_stop_id)?.stop;
    this.addAlert({
      key: `sequence:${detail.stop_id}:${detail.stay_start_epoch_s}`,
      kind: "out_of_sequence",
      at: new Date(detail.at_epoch_s * 1000).toISOString(),
      stopId: detail.stop_id,
      driverId: detail.driver_id,
      orderRef: stop ? stop.order_ref : `Order ${detail.order_id}`,
      customerName: stop ? stop.customer_name : null,
      expectedRef: expected ? expected.order_ref : `order ${detail.expected_order_id}`,
      dwellS: detail.dwell_s,
    });
  }

  failedAlert(stop, driverId, at) {
    this.addAlert({
      key: `failed:${stop.id}`,
      kind: "stop_failed",
      at: at || new Date().toISOString(),
      stopId: stop.id,
      driverId,
      orderRef: stop.order_ref,
      customerName: stop.customer_name || null,
      reason: stop.failure_reason || null,
    });
  }

  addAlert(alert) {
    this.alertsVersion += 1;
    const known = this.alerts.get(alert.key);
    if (known && known.kind === alert.kind) {
      // A later late window says by how much now; the first alert's time stays.
      this.alerts.set(alert.key, { ...alert, at: known.at });
    } else {
      this.alerts.set(alert.key, alert);
    }
    if (this.alerts.size > MAX_ALERTS) {
      const oldest = [...this.alerts.values()].sort((a, b) => a.at.localeCompare(b.at))[0];
      this.alerts.delete(oldest.key);
    }
  }
}
