// The dispatcher's side panel: the header (connection, the day shown and the organisation's
// zone), the counts, the driver list and the alerts, drawn from the model with plain DOM.
// `render()` redraws at most once per animation frame, however many messages arrive.
//
// The driver list holds hundreds of drivers: it is filtered (by state, and by a search over
// driver names, order references and customer names) and draws only the rows in view, every
// row being one height, with spacers standing for the rest. A row (and an alert) is built again
// only when what it shows changed, and the list's size and scroll are remembered from their
// events rather than read while drawing (a read there would lay out the whole page, map and all).
//
// Every time is shown in the organisation's zone (the snapshot's `time_zone`), not the browser's.

import { el } from "../common/reconnect.js";
import { isStale } from "./fleet.js";
import { routeColor } from "./map.js";
import { minutes, zoneClock } from "./times.js";

const NO_ROUTE_COLOR = "#94a3b8";
const ROW_PX = 74; // .driver's height in pages.css
const OVERSCAN = 6; // rows drawn above and below the view

export class Panel {
  // `onDriver(driverId)` and `onStop(stopId)`: the dispatcher picked one in the lists;
  // `alertAction(alert)`: a button an alert offers (a late driver's re-sequence), or null.
  constructor(fleet, { onDriver, onStop, alertAction = () => null }) {
    const $ = (id) => document.getElementById(id);
    this.fleet = fleet;
    this.onDriver = onDriver;
    this.onStop = onStop;
    this.alertAction = alertAction;
    this.queued = false;
    this.ui = {
      connection: $("connection"),
      day: $("day"),
      zone: $("zone"),
      dayInput: $("day-input"),
      problem: $("feed-problem"),
      drivers: $("drivers"),
      driverCount: $("driver-count"),
      search: $("driver-search"),
      filter: $("driver-filter"),
      alerts: $("alerts"),
      alertCount: $("alert-count"),
      stats: { drivers: $("stat-drivers"), done: $("stat-done"), late: $("stat-late"), risk: $("stat-risk"), failed: $("stat-failed") },
    };
    this.shown = []; // the driver ids the list shows, in order
    this.rows = new Map(); // driver id -> { signature, item } of the rows drawn
    this.alertItems = new Map(); // alert key -> { signature, item }
    this.view = { height: this.ui.drivers.clientHeight, top: 0 };
    if (this.ui.search) this.ui.search.addEventListener("input", () => this.render());
    if (this.ui.filter) this.ui.filter.addEventListener("change", () => this.render());
    this.ui.drivers.addEventListener("scroll", () => {
      this.view.top = this.ui.drivers.scrollTop;
      this.renderRows();
    }, { passive: true });
    new ResizeObserver(([entry]) => {
      this.view.height = entry.contentRect.height;
      this.renderRows();
    }).observe(this.ui.drivers);
  }

  get clock() {
    return zoneClock(this.fleet.timeZone);
  }

  render() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.renderDay();
      this.renderDrivers();
      this.renderAlerts();
      this.renderStats();
    });
  }

  setConnection(state, text) {
    this.ui.connection.dataset.state = state;
    this.ui.connection.textContent = text;
  }

  // Why the feed stopped, when it is something the dispatcher has to act on; "" hides it.
  showProblem(text) {
    this.ui.problem.textContent = text;
    this.ui.problem.hidden = !text;
  }

  renderDay() {
    const { day, timeZone } = this.fleet;
    if (day === null || this.dayShown === `${day} ${timeZone}`) return; // none yet, or the same
    this.dayShown = `${day} ${timeZone}`;
    this.ui.day.textContent = this.clock.dayName(day);
    this.ui.day.dateTime = day;
    this.ui.zone.textContent = timeZone.replaceAll("_", " ");
    this.ui.zone.dataset.timeZone = timeZone;
    if (document.activeElement !== this.ui.dayInput) this.ui.dayInput.value = day;
  }

  renderDrivers() {
    const ids = this.fleet.driverIds();
    const shown = ids.filter((id) => this.matches(id));
    setText(this.ui.driverCount, ids.length
      ? (shown.length === ids.length ? String(ids.length) : `${shown.length} of ${ids.length}`) : "");
    this.shown = shown;
    if (ids.length === 0 || shown.length === 0) {
      this.rows.clear();
      const why = ids.length === 0 ? "No drivers on the road yet." : "No driver matches.";
      if (this.ui.drivers.textContent !== why) this.ui.drivers.replaceChildren(el("li", { class: "empty" }, why));
      return;
    }
    this.renderRows();
  }

  // Only the rows in view (and a few around them) are in the DOM; a row whose facts did not
  // change is kept as it is.
  renderRows() {
    const list = this.ui.drivers;
    const shown = this.shown;
    if (!shown.length) return;
    const { top } = this.view;
    const height = this.view.height || ROW_PX * 10;
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((top + height) / ROW_PX) + OVERSCAN);
    const rows = new Map();
    for (const id of shown.slice(first, last)) {
      const facts = this.driverFacts(id);
      const signature = JSON.stringify(facts);
      const known = this.rows.get(id);
      rows.set(id, known && known.signature === signature ? known : { signature, item: this.driverItem(facts) });
    }
    this.rows = rows;
    const items = [...rows.values()].map((row) => row.item);
    const [before, after] = this.spacers();
    before.style.height = `${first * ROW_PX}px`;
    after.style.height = `${(shown.length - last) * ROW_PX}px`;
    const children = list.children;
    const same = children.length === items.length + 2 && children[0] === before
      && items.every((item, n) => children[n + 1] === item);
    if (!same) list.replaceChildren(before, ...items, after);
  }

  // The two spacers standing for the rows above and below those drawn.
  spacers() {
    if (!this.spacerItems) {
      this.spacerItems = [0, 1].map(() => el("li", { class: "driver-spacer", "aria-hidden": "true" }));
    }
    return this.spacerItems;
  }

  // Whether a driver passes the state filter and the search.
  matches(driverId) {
    const fleet = this.fleet;
    const route = fleet.activeRoute(driverId);
    const state = this.ui.filter ? this.ui.filter.value : "all";
    if (state === "late" && !fleet.lateCount(route)) return false;
    if (state === "risk" && !fleet.riskCount(route)) return false;
    if (state === "none" && route) return false;
    if (["started", "dispatched", "completed"].includes(state) && (!route || route.status !== state)) return false;
    const query = this.ui.search ? this.ui.search.value.trim().toLowerCase() : "";
    if (!query) return true;
    if (fleet.driverName(driverId).toLowerCase().includes(query)) return true;
    return Boolean(route && route.stops.some((stop) =>
      (stop.order_ref || "").toLowerCase().includes(query)
      || (stop.customer_name || "").toLowerCase().includes(query)));
  }

  // What a driver's row shows, as plain values (their JSON tells whether the row changed).
  driverFacts(driverId) {
    const fleet = this.fleet;
    const clock = this.clock;
    const position = fleet.positions.get(driverId);
    const route = fleet.activeRoute(driverId);
    const next = fleet.nextStopOf(driverId, route);
    const eta = next && fleet.windows.get(next.id);
    const done = route ? route.stops.filter((s) => s.status === "delivered" || s.status === "failed").length : 0;
    const total = route ? route.stops.filter((s) => s.status !== "removed").length : 0;
    return {
      driverId,
      name: fleet.driverName(driverId),
      routeId: route ? route.id : "",
      status: route ? route.status : "none",
      color: route ? routeColor(route.id) : NO_ROUTE_COLOR,
      late: fleet.lateCount(route),
      risk: fleet.riskCount(route),
      stale: Boolean(position && isStale(position)),
      lat: position ? String(position.lat) : null,
      lon: position ? String(position.lon) : null,
      meta: [routeStatusWords(route, done, total), position ? `seen ${clock.ago(position.time)}` : "no position yet"].join(" · "),
      next: next ? `${next.order_ref}${next.customer_name ? ` · ${next.customer_name}` : ""}` : null,
      nextLateness: next ? fleet.lateness(next.id) : null,
      eta: !next ? null : eta ? `ETA ${clock.epochTime(eta.likely_epoch_s)}` : `planned ${clock.time(next.planned_arrival)}`,
    };
  }

  driverItem(facts) {
    const { driverId, late, risk } = facts;
    const item = el("li", {
      class: `driver${late ? " has-late" : ""}${facts.stale ? " is-stale" : ""}`,
      tabindex: 0,
      dataset: {
        driverId,
        routeId: facts.routeId,
        status: facts.status,
        late: String(late),
        risk: String(risk),
        ...(facts.lat !== null ? { lat: facts.lat, lon: facts.lon } : {}),
      },
    },
    el("span", { class: "swatch", "aria-hidden": "true" }),
    el("div", { class: "driver-main" },
      el("div", { class: "driver-name" }, facts.name,
        late ? el("span", { class: "badge badge-late" }, `${late} late`) : null,
        risk ? el("span", { class: "badge badge-risk" }, `${risk} at risk`) : null),
      el("div", { class: "driver-meta" }, facts.meta),
      facts.next !== null ? el("div", { class: "driver-next" },
        el("span", { class: "next-what" }, el("span", { class: "muted" }, "Next "), facts.next),
        el("span", { class: `eta${facts.nextLateness ? ` eta-${facts.nextLateness}` : ""}` }, facts.eta))
        : null));
    item.querySelector(".swatch").style.background = facts.color;
    item.addEventListener("click", () => this.onDriver(driverId));
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.onDriver(driverId);
      }
    });
    return item;
  }

  renderAlerts() {
    const { alertsVersion, timeZone, names, stops } = this.fleet;
    const seen = `${alertsVersion} ${timeZone} ${names.size} ${stops.size}`;
    if (seen === this.alertsSeen) return; // nothing an alert shows changed
    this.alertsSeen = seen;
    const alerts = [...this.fleet.alerts.values()].sort((a, b) => b.at.localeCompare(a.at));
    setText(this.ui.alertCount, alerts.length ? String(alerts.length) : "");
    if (alerts.length === 0) {
      this.alertItems.clear();
      this.ui.alerts.replaceChildren(el("li", { class: "empty" }, "Nothing needs your attention."));
      return;
    }
    const items = new Map();
    for (const alert of alerts) {
      const signature = JSON.stringify(alert);
      const known = this.alertItems.get(alert.key);
      items.set(alert.key, known && known.signature === signature ? known : { signature, item: this.alertItem(alert) });
    }
    this.alertItems = items;
    this.ui.alerts.replaceChildren(...[...items.values()].map((entry) => entry.item));
  }

  alertItem(alert) {
    const { title, text } = alertWords(alert, this.clock);
    const item = el("li", {
      class: `alert alert-${alert.kind}`,
      tabindex: 0,
      dataset: { kind: alert.kind, stopId: alert.stopId, at: alert.at },
    },
    el("time", { datetime: alert.at }, this.clock.time(alert.at)),
    el("div", { class: "alert-body" },
      el("div", { class: "alert-title" }, title,
        alert.driverId ? el("span", { class: "muted" }, ` · ${this.fleet.driverName(alert.driverId)}`) : null),
      el("div", { class: "alert-text" }, text),
      this.alertAction(alert)));
    item.addEventListener("click", () => this.onStop(alert.stopId));
    return item;
  }

  renderStats() {
    const { out, done, total, late, risk, failed } = this.fleet.stats();
    const stats = this.ui.stats;
    setText(stats.drivers, String(out));
    setText(stats.done, `${done}/${total}`);
    setText(stats.late, String(late));
    setText(stats.risk, risk ? `+${risk} at risk` : "");
    setText(stats.failed, String(failed));
    stats.late.parentElement.classList.toggle("is-on", late > 0);
    stats.failed.parentElement.classList.toggle("is-on", failed > 0);
  }
}

// Text set only when it differs: an unchanged panel costs the page no layout.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// An alert's title and sentence (see Fleet.lateAlert, sequenceAlert and failedAlert for its facts).
export function alertWords(alert, clock) {
  const who = `${alert.orderRef}${alert.customerName ? ` · ${alert.customerName}` : ""}`;
  if (alert.kind === "running_late") {
    return {
      title: "Running late",
      text: `${who} — expected by ${clock.epochTime(alert.expectedEpochS)}, ${minutes(alert.lateS)} past the window`,
    };
  }
  if (alert.kind === "out_of_sequence") {
    return {
      title: "Out of sequence",
      text: `${who} — waiting here ${minutes(alert.dwellS)} while ${alert.expectedRef} is next`,
    };
  }
  return { title: "Delivery failed", text: `${who}${alert.reason ? ` — ${alert.reason}` : ""}` };
}

function routeStatusWords(route, done, total) {
  if (!route) return "No route this day";
  switch (route.status) {
    case "dispatched": return `Not started · ${total} stops`;
    case "started": return `On route · ${done}/${total} done`;
    case "completed": return `Route complete · ${total} stops`;
    case "cancelled": return "Route cancelled";
    default: return route.status;
  }
}
