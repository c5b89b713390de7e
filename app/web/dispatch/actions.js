// What a dispatcher does to the running day from the map: cancel an order, move a stop to another
// driver, re-sequence a late driver, insert an urgent order. Each action is first asked as a
// preview (POST …/preview: every pending stop of each route it would rewrite, planned arrival now
// and after), shown in a dialog beside the customer's window, and done only on "Confirm". The
// driver's app gets the new route from the server at once; the map redraws from the live feed.
//
// Names, references and reasons come from people and the server: drawn as text, never markup.

import { el } from "../common/reconnect.js";
import { RUNNING } from "./fleet.js";
import { minutes } from "./times.js";

const MOVED_S = 60; // an arrival that moves less than this is shown as unchanged

export class Actions {
  // `send(method, path, body)` -> {status, body}; `clock()` formats in the organisation's zone;
  // `day()` is the day on the map.
  constructor({ fleet, send, clock, day }) {
    this.fleet = fleet;
    this.send = send;
    this.clock = clock;
    this.day = day;
    const $ = (id) => document.getElementById(id);
    this.ui = {
      dialog: $("action-dialog"),
      title: $("action-title"),
      body: $("action-body"),
      error: $("action-error"),
      confirm: $("action-confirm"),
      back: $("action-back"),
      urgent: $("urgent-button"),
    };
    this.pending = null; // what "Confirm" does
    this.ui.back.addEventListener("click", () => this.close());
    this.ui.confirm.addEventListener("click", () => this.confirm());
    this.ui.urgent.addEventListener("click", () => this.chooseUrgent());
  }

  // The stop popup's section: the actions a pending stop of a running route allows.
  section(stop) {
    if (!this.movable(stop.id)) return null;
    const route = this.fleet.routes.get(this.fleet.stops.get(stop.id).routeId);
    const others = [...this.fleet.routes.values()].filter((r) => r.id !== route.id && RUNNING.has(r.status));
    const target = el("select", { class: "move-target", "aria-label": "Move to driver" },
      others.map((r) => el("option", { value: r.id }, this.fleet.driverName(r.driver_id))));
    const buttons = [
      this.button("Cancel order", "cancel-order", () => this.ask(
        `Cancel ${stop.order_ref}`,
        `/v1/orders/${stop.order_id}/cancel/preview`, undefined,
        `/v1/orders/${stop.order_id}/cancel`, { reason: "cancelled by the dispatcher" })),
      this.button("Re-sequence route", "resequence", () => this.resequence(route.id)),
    ];
    const move = others.length ? [
      el("div", { class: "action-row" }, target,
        this.button("Move", "move-stop", () => this.moveStop(stop.id, Number(target.value)))),
      el("div", { class: "muted action-hint" }, "Or drag the stop onto another driver or their route."),
    ] : null;
    return el("div", { class: "stop-actions" }, el("div", { class: "action-row" }, buttons), move);
  }

  // Whether a stop may be given to another route: pending, on a running route.
  movable(stopId) {
    const entry = this.fleet.stops.get(stopId);
    const route = entry && this.fleet.routes.get(entry.routeId);
    return Boolean(route && RUNNING.has(route.status) && entry.stop.status === "pending");
  }

  // Give a stop to another running route (chosen in its popup, or dropped there on the map).
  moveStop(stopId, routeId) {
    const entry = this.fleet.stops.get(stopId);
    const route = this.fleet.routes.get(routeId);
    if (!entry || !route || entry.routeId === routeId || !RUNNING.has(route.status)) return;
    const body = { route_id: routeId };
    this.ask(`Move ${entry.stop.order_ref} to ${this.fleet.driverName(route.driver_id)}`,
      `/v1/stops/${stopId}/move/preview`, body, `/v1/stops/${stopId}/move`, body);
  }

  // A late driver's alert offers the re-sequence of their route.
  alertAction(alert) {
    if (alert.kind !== "running_late") return null;
    const entry = this.fleet.stops.get(alert.stopId);
    if (!entry) return null;
    return this.button("Re-sequence", "resequence", (event) => {
      event.stopPropagation();
      this.resequence(entry.routeId);
    });
  }

  resequence(routeId) {
    const route = this.fleet.routes.get(routeId);
    const who = route ? this.fleet.driverName(route.driver_id) : `route ${routeId}`;
    this.ask(`Re-sequence ${who}'s stops`, `/v1/routes/${routeId}/resequence/preview`, undefined,
      `/v1/routes/${routeId}/resequence`, undefined);
  }

  // The day's orders no route has: pick one to insert where it costs least.
  async chooseUrgent() {
    this.open("Insert an urgent order");
    const day = this.day();
    const listed = await this.send("GET", `/v1/orders?status=pending${day ? `&day=${day}` : ""}&limit=200`);
    if (listed.status !== 200) return this.fail(listed);
    const orders = listed.body.orders || [];
    if (orders.length === 0) {
      this.ui.body.replaceChildren(el("p", { class: "muted" }, "No pending order on this day: create one first (POST /v1/orders or the import)."));
      return undefined;
    }
    this.ui.body.replaceChildren(el("ul", { class: "urgent-list" }, orders.map((order) => {
      const choose = this.button("Preview", "insert-order", () => {
        const body = { order_id: order.id };
        this.ask(`Insert ${order.external_ref}`, "/v1/routes/insert/preview", body, "/v1/routes/insert", body);
      });
      return el("li", { dataset: { orderId: order.id } },
        el("span", {}, order.external_ref, order.customer_name ? ` · ${order.customer_name}` : "", ` · ${order.address}`),
        choose);
    })));
    return undefined;
  }

  // Ask the preview, show it, and keep what "Confirm" will do.
  async ask(title, previewPath, previewBody, path, body) {
    this.open(title);
    this.ui.body.replaceChildren(el("p", { class: "muted" }, "Working out what changes…"));
    const shown = await this.send("POST", previewPath, previewBody);
    if (shown.status !== 200) return this.fail(shown);
    this.ui.body.replaceChildren(this.previewTable(shown.body));
    this.pending = { path, body };
    this.ui.confirm.hidden = false;
    this.ui.confirm.focus();
    return undefined;
  }

  async confirm() {
    if (!this.pending) return;
    const { path, body } = this.pending;
    this.pending = null;
    this.ui.confirm.hidden = true;
    const done = await this.send("POST", path, body);
    if (done.status !== 200) {
      this.fail(done);
      return;
    }
    this.close();
  }

  previewTable(preview) {
    const clock = this.clock();
    const time = (iso) => (iso ? clock.time(iso) : "—");
    const parts = [];
    if (preview.added_travel_s) parts.push(el("p", {}, `Adds ${minutes(preview.added_travel_s)} of driving.`));
    if (preview.routes.length === 0) parts.push(el("p", {}, "No running route changes."));
    for (const route of preview.routes) {
      const rows = route.stops.map((stop) => {
        const moved = stop.before && stop.after && Math.abs(Date.parse(stop.after) - Date.parse(stop.before)) >= MOVED_S * 1000;
        const state = !stop.before ? "joins" : !stop.after ? "leaves" : moved ? "moves" : "same";
        const window = stop.windows.length ? stop.windows.map((w) => `${time(w.start)}–${time(w.end)}`).join(", ") : "any time";
        return el("tr", { class: `change-${state}`, dataset: { orderId: stop.order_id, change: state } },
          el("td", {}, stop.order_ref), el("td", {}, window), el("td", {}, time(stop.before)),
          el("td", {}, time(stop.after)),
          el("td", {}, stop.late_after_s ? `late ${minutes(stop.late_after_s)}` : state === "leaves" ? "off the route" : "on time"));
      });
      parts.push(el("section", { class: "preview-route", dataset: { routeId: route.route_id } },
        el("h3", {}, this.fleet.driverName(route.driver_id), el("span", { class: "muted" }, ` · ${(route.distance_m_after / 1000).toFixed(1)} km to drive after`)),
        el("table", { class: "preview" },
          el("thead", {}, el("tr", {}, ["Order", "Window", "Planned now", "After", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, rows))));
    }
    return el("div", {}, parts);
  }

  button(text, action, onClick) {
    const node = el("button", { type: "button", class: "action-button", dataset: { action } }, text);
    node.addEventListener("click", onClick);
    return node;
  }

  open(title) {
    this.pending = null;
    this.ui.title.textContent = title;
    this.ui.error.textContent = "";
    this.ui.confirm.hidden = true;
    this.ui.body.replaceChildren();
    if (!this.ui.dialog.open) this.ui.dialog.showModal();
  }

  fail(answer) {
    const body = answer.body || {};
    this.ui.error.textContent = body.reason ? `${body.field ? `${body.field}: ` : ""}${body.reason}` : `The server answered ${answer.status}.`;
    this.ui.confirm.hidden = true;
  }

  close() {
    this.pending = null;
    if (this.ui.dialog.open) this.ui.dialog.close();
    this.ui.body.replaceChildren(); // nothing of this action lingers for the next
  }
}
