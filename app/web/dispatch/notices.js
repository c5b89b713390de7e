// An order's customer messages, in the stop's popup on the map: what was sent on which channel
// to whom, and how far each got (pending, sending, sent, delivered, failed, dead), from
// GET /v1/orders/{id}/notifications.
//
// A section is read when the popup opens, again whenever an event of its order arrives on the
// live feed (a message follows an event within seconds), and every few seconds while it is open
// and something is still on its way. Everything shown is text (textContent): a recipient, an
// error from a provider and the rest may carry anything.

import { el } from "../common/reconnect.js";

const POLL_MS = 5_000;
const KINDS = {
  en_route: "On its way",
  approaching: "Nearly there",
  delivered: "Delivered",
  failed: "Could not deliver",
  running_late: "Running late",
  eta_changed: "New arrival window",
  out_of_sequence: "Out of sequence (alert)",
};
const STATES = {
  pending: "waiting",
  sending: "sending",
  sent: "sent",
  delivered: "delivered",
  failed: "failed",
  dead: "gave up",
};
const MOVING = new Set(["pending", "sending"]);

export class Notices {
  // `get(path)`: a JSON read with the page's key (Reads.get); `clock()`: the zone's clock.
  constructor({ get, clock, onError = (error) => console.warn(error) }) {
    this.get = get;
    this.clock = clock;
    this.onError = onError;
    this.open = new Map(); // order id -> { element, list, timer, loading, loaded }
  }

  // A section for the order, filled as soon as its messages are read.
  section(orderId) {
    const list = el("ul", { class: "notice-list" }, el("li", { class: "tip-muted" }, "Reading…"));
    const element = el("section", { class: "notices", dataset: { orderId } },
      el("div", { class: "notices-title" }, "Customer messages"), list);
    const previous = this.open.get(orderId);
    if (previous) clearTimeout(previous.timer);
    const entry = { element, list, timer: null, loading: null, loaded: false };
    this.open.set(orderId, entry);
    this.load(orderId);
    return element;
  }

  // Read the order's messages again if its section is showing (an event of the order came).
  refresh(orderId) {
    if (orderId !== undefined && orderId !== null && this.open.has(Number(orderId))) {
      this.load(Number(orderId));
    }
  }

  load(orderId) {
    const entry = this.open.get(orderId);
    if (!entry) return;
    if (!entry.element.isConnected && entry.loaded) {
      this.forget(orderId);
      return;
    }
    if (entry.loading) return;
    clearTimeout(entry.timer);
    entry.loading = this.get(`/v1/orders/${orderId}/notifications`)
      .then((body) => {
        entry.loaded = true;
        const notifications = body.notifications || [];
        this.draw(entry, notifications);
        if (notifications.length === 0 || notifications.some((n) => MOVING.has(n.state))) {
          entry.timer = setTimeout(() => this.load(orderId), POLL_MS);
        }
      })
      .catch((error) => {
        entry.loaded = true;
        entry.list.replaceChildren(el("li", { class: "tip-muted" }, "Messages could not be read."));
        this.onError(error);
      })
      .finally(() => { entry.loading = null; });
  }

  forget(orderId) {
    const entry = this.open.get(orderId);
    if (entry) clearTimeout(entry.timer);
    this.open.delete(orderId);
  }

  draw(entry, notifications) {
    if (!notifications.length) {
      entry.list.replaceChildren(el("li", { class: "tip-muted" }, "None sent yet."));
      return;
    }
    const clock = this.clock();
    entry.list.replaceChildren(...notifications.map((n) => {
      const last = n.attempts.length ? n.attempts[n.attempts.length - 1] : null;
      const tries = n.attempts.length === 1 ? "1 try" : `${n.attempts.length} tries`;
      // The message's text as a tooltip (an attribute set as text, never parsed as markup).
      return el("li", { class: "notice", title: n.text || null, dataset: { id: n.id, kind: n.kind, channel: n.channel, state: n.state } },
        el("div", { class: "notice-head" },
          el("span", { class: "notice-kind" }, KINDS[n.kind] || n.kind),
          el("span", { class: `notice-state state-${n.state}` }, STATES[n.state] || n.state)),
        el("div", { class: "tip-muted notice-to" },
          `${n.channel === "sms" ? "SMS" : n.channel === "email" ? "Email" : "Webhook"} to `,
          el("span", { class: "notice-recipient" }, n.recipient)),
        el("div", { class: "tip-muted" },
          `${clock.time(n.created_at)} · ${tries}`,
          last && last.latency_ms !== null ? ` · ${last.latency_ms} ms` : ""),
        n.last_error && !["sent", "delivered"].includes(n.state)
          ? el("div", { class: "notice-error" }, n.last_error)
          : null);
    }));
  }
}

// The order an event of the live feed is about, if any.
export function orderOfEvent(event) {
  if (!event) return null;
  if (event.order_id !== undefined) return event.order_id;
  if (event.detail && event.detail.order_id !== undefined) return event.detail.order_id;
  return null;
}
