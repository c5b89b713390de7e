// Planning a day (/plan): the day's orders (entered, edited, imported from a CSV with the row
// report), its shifts, planning with a time limit and its progress, the day's plans compared side
// by side, a plan reviewed on a map and in a table with the unassigned orders and their reasons,
// and dispatch in one click, for every route or one. Only the public API is used.
//
// Times are entered and shown in the organisation's zone (GET /v1/settings/organisation), in the
// reader's locale. What people typed (names, addresses, references) is drawn as text.

import { SignedInPage, attempt, notice } from "../common/console.js";
import { baseMap, el } from "../common/reconnect.js";
import { routeColor } from "../dispatch/map.js";
import { minutes, zoneClock } from "../dispatch/times.js";

const POLL_MS = 1000;
const FINISHED = new Set(["done", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

const page = new SignedInPage({ onOpen: () => opened() });
const api = (method, path, body, options) => page.api(method, path, body, options);

let zone = "UTC";
let orders = []; // the day's orders
let editing = null; // the order the form edits, or null for a new one
let drivers = new Map(); // id -> name
let watching = null; // the plan being polled
let reviewed = null; // the plan on review
let map = null;
let layer = null;
const compared = new Set();

// --- times in the organisation's zone --------------------------------------------------------

function clock() {
  return zoneClock(zone);
}

// How far ahead of UTC the zone is at `utcMs`.
function offsetMs(utcMs) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(utcMs));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second")) - utcMs;
}

// The instant of `hhmm` on `day` in the organisation's zone, as ISO 8601.
function zoned(day, hhmm) {
  const [y, m, d] = day.split("-").map(Number);
  const [h, mi] = hhmm.split(":").map(Number);
  const guess = Date.UTC(y, m - 1, d, h, mi);
  const first = guess - offsetMs(guess);
  return new Date(guess - offsetMs(first)).toISOString();
}

// "HH:MM" of an instant in the organisation's zone, for a time input.
function hhmm(iso) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .format(new Date(iso));
}

function day() {
  return $("day-input").value;
}

function todayInZone() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date());
}

function hours(seconds) {
  return (seconds / 3600).toFixed(1);
}

function km(metres) {
  return (metres / 1000).toFixed(1);
}

// --- orders ----------------------------------------------------------------------------------

async function loadOrders() {
  const found = [];
  let after = 0;
  for (;;) {
    const pageOf = await api("GET", `/v1/orders?day=${day()}&limit=500&after=${after}`);
    found.push(...pageOf.orders);
    if (!pageOf.next_after) break;
    after = pageOf.next_after;
  }
  orders = found;
  const counts = {};
  for (const order of orders) counts[order.status] = (counts[order.status] || 0) + 1;
  $("order-count").textContent = orders.length
    ? `· ${orders.length} (${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")})` : "· none yet";
  $("orders").replaceChildren(...orders.map(orderRow));
}

function windowText(windows) {
  if (!windows.length) return "any time";
  return windows.map((w) => `${clock().time(w.start)}–${clock().time(w.end)}`).join(", ");
}

function orderRow(order) {
  const edit = order.status === "pending" ? el("button", { type: "button", class: "link-button", dataset: { action: "edit" } }, "Edit") : "";
  if (edit) edit.addEventListener("click", () => editOrder(order));
  return el("tr", { dataset: { orderId: order.id, ref: order.external_ref } },
    el("td", {}, order.external_ref), el("td", {}, order.customer_name || ""), el("td", {}, order.address),
    el("td", {}, windowText(order.time_windows)), el("td", {}, String(order.service_s / 60)),
    el("td", {}, order.status), el("td", { class: "actions" }, edit));
}

function editOrder(order) {
  editing = order;
  $("order-editor").open = true;
  $("order-editor-title").textContent = `Edit ${order.external_ref}`;
  $("o-ref").value = order.external_ref;
  $("o-ref").disabled = true;
  $("o-name").value = order.customer_name || "";
  $("o-phone").value = order.phone || "";
  $("o-email").value = order.email || "";
  $("o-address").value = order.address;
  $("o-lat").value = String(order.lat);
  $("o-lon").value = String(order.lon);
  const [first] = order.time_windows;
  $("o-from").value = first ? hhmm(first.start) : "";
  $("o-to").value = first ? hhmm(first.end) : "";
  $("o-service").value = String(order.service_s / 60);
}

function newOrder() {
  editing = null;
  $("order-form").reset();
  $("o-ref").disabled = false;
  $("order-editor-title").textContent = "New order";
}

$("order-new").addEventListener("click", newOrder);

$("order-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = {
    customer_name: $("o-name").value.trim() || null,
    phone: $("o-phone").value.trim() || null,
    email: $("o-email").value.trim() || null,
    address: $("o-address").value.trim(),
    lat: Number($("o-lat").value),
    lon: Number($("o-lon").value),
    time_windows: $("o-from").value && $("o-to").value
      ? [{ start: zoned(day(), $("o-from").value), end: zoned(day(), $("o-to").value) }] : [],
  };
  if ($("o-service").value !== "") body.service_s = Math.round(Number($("o-service").value) * 60);
  const was = editing;
  attempt($("order-error"), async () => {
    if (was) await api("PATCH", `/v1/orders/${was.id}`, body);
    else await api("POST", "/v1/orders", { ...body, external_ref: $("o-ref").value.trim(), day: day() });
    newOrder();
    await loadOrders();
  }, was ? `Order ${was.external_ref} saved.` : "Order added.");
});

$("import-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return;
  attempt($("order-error"), async () => {
    const text = await file.text();
    const report = await api("POST", "/v1/orders/import", text, { contentType: "text/csv; charset=utf-8" });
    showReport(report);
    event.target.reset();
    await loadOrders();
  });
});

function showReport(report) {
  const box = $("import-report");
  const rejected = report.rejected.map((p) => el("li", { dataset: { line: p.line } }, `line ${p.line}, ${p.field}: ${p.reason}`));
  box.replaceChildren(
    el("div", { id: "import-summary" },
      `${report.rows} rows: ${report.created.length} created, ${report.duplicates.length} already there, ${report.rejected.length} rejected.`),
    rejected.length ? el("ul", { id: "import-rejected" }, rejected) : "",
  );
  box.hidden = false;
}

// --- shifts ----------------------------------------------------------------------------------

async function loadFleet() {
  const [driverList, vehicleList, depotList] = await Promise.all([
    api("GET", "/v1/drivers?active=true"), api("GET", "/v1/vehicles?active=true"), api("GET", "/v1/depots?active=true"),
  ]);
  drivers = new Map(driverList.drivers.map((d) => [d.id, d.name]));
  $("s-driver").replaceChildren(...driverList.drivers.map((d) => el("option", { value: d.id }, d.name)));
  $("s-vehicle").replaceChildren(...vehicleList.vehicles.map((v) => el("option", { value: v.id }, v.name)));
  $("s-depot").replaceChildren(...depotList.depots.map((d) => el("option", { value: d.id }, d.name)));
}

async function loadShifts() {
  const { shifts } = await api("GET", `/v1/shifts?day=${day()}`);
  $("shifts").replaceChildren(...shifts.map((shift) => el("tr", { dataset: { shiftId: shift.id } },
    el("td", {}, drivers.get(shift.driver_id) || `driver ${shift.driver_id}`),
    el("td", {}, shift.vehicle_id ? String(shift.vehicle_id) : "—"),
    el("td", {}, clock().time(shift.working_window.start)), el("td", {}, clock().time(shift.working_window.end)),
    el("td", {}, shift.start_place.depot_id ? `depot ${shift.start_place.depot_id}` : `${shift.start_place.lat}, ${shift.start_place.lon}`),
    el("td", {}, shift.status))));
}

$("shift-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt($("shift-error"), async () => {
    await api("POST", "/v1/shifts", {
      driver_id: Number($("s-driver").value),
      vehicle_id: Number($("s-vehicle").value),
      day: day(),
      start_place: { depot_id: Number($("s-depot").value) },
      working_window: { start: zoned(day(), $("s-from").value), end: zoned(day(), $("s-to").value) },
    });
    await loadShifts();
  }, "Shift added.");
});

// --- planning --------------------------------------------------------------------------------

$("plan-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt($("plan-error"), async () => {
    const plan = await api("POST", "/v1/plans", {
      day: day(),
      time_limit_s: Number($("p-limit").value),
      balance_workload: $("p-balance").checked,
    });
    watch(plan.id);
  });
});

$("plan-cancel").addEventListener("click", () => {
  if (watching !== null) attempt($("plan-error"), () => api("POST", `/v1/plans/${watching}/cancel`));
});

async function watch(planId) {
  watching = planId;
  $("plan-cancel").hidden = false;
  for (;;) {
    let plan;
    try {
      plan = await api("GET", `/v1/plans/${planId}`);
    } catch (error) {
      $("plan-error").textContent = error.message;
      break;
    }
    if (watching !== planId) return;
    const p = plan.progress;
    $("plan-progress").textContent = `Plan ${plan.id}: ${plan.status}`
      + (plan.status === "running" ? ` · ${p.elapsed_s.toFixed(0)} s · ${p.solutions_found} solutions` : "")
      + (p.objective !== null && p.objective !== undefined ? ` · cost ${Math.round(p.objective)}` : "");
    $("plan-progress").dataset.status = plan.status;
    if (FINISHED.has(plan.status)) {
      if (plan.error) $("plan-error").textContent = plan.error;
      await loadPlans();
      if (plan.outcome) review(plan);
      break;
    }
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
  }
  $("plan-cancel").hidden = true;
  watching = null;
}

async function loadPlans() {
  const { plans } = await api("GET", `/v1/plans?day=${day()}`);
  $("plans").replaceChildren(...plans.map((plan) => {
    const box = el("input", { type: "checkbox", "aria-label": `Compare plan ${plan.id}`, checked: compared.has(plan.id) });
    box.addEventListener("change", () => {
      if (box.checked) compared.add(plan.id);
      else compared.delete(plan.id);
      drawComparison(plans);
    });
    const open = el("button", { type: "button", class: "link-button", dataset: { action: "review" } }, "Review");
    open.addEventListener("click", () => attempt($("plan-error"), async () => review(await api("GET", `/v1/plans/${plan.id}`))));
    return el("tr", { dataset: { planId: plan.id } },
      el("td", {}, box), el("td", {}, `#${plan.id} · ${clock().time(plan.created_at)}`),
      el("td", { class: `status-${plan.status}` }, plan.status), el("td", {}, String(plan.routes)),
      el("td", {}, String(plan.served)), el("td", {}, String(plan.unassigned)), el("td", {}, km(plan.distance_m)),
      el("td", {}, hours(plan.duration_s)), el("td", {}, plan.engine || "—"),
      el("td", { class: "actions" }, plan.routes ? open : ""));
  }));
  drawComparison(plans);
}

// Two (or more) plans side by side: a row per figure, the better value marked.
function drawComparison(plans) {
  const chosen = plans.filter((p) => compared.has(p.id));
  const box = $("comparison");
  box.hidden = chosen.length < 2;
  if (chosen.length < 2) return;
  const figures = [
    ["Routes", (p) => p.routes, "low"], ["Orders served", (p) => p.served, "high"],
    ["Unassigned", (p) => p.unassigned, "low"], ["Distance (km)", (p) => p.distance_m / 1000, "low"],
    ["Duration (h)", (p) => p.duration_s / 3600, "low"], ["Time limit (s)", (p) => p.time_limit_s, null],
    ["Engine", (p) => p.engine || "—", null],
  ];
  const rows = figures.map(([name, value, better]) => {
    const values = chosen.map(value);
    const best = better === "low" ? Math.min(...values) : better === "high" ? Math.max(...values) : null;
    return el("tr", { dataset: { figure: name } }, el("td", {}, name), values.map((v) => el("td", {
      class: best !== null && v === best && values.some((w) => w !== best) ? "better" : "",
    }, typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : String(v))));
  });
  box.replaceChildren(el("table", { class: "compare", id: "compare-table" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), chosen.map((p) => el("th", {}, `Plan #${p.id}`)))),
    el("tbody", {}, rows)));
}

// --- review and dispatch ---------------------------------------------------------------------

function review(plan) {
  reviewed = plan;
  const outcome = plan.outcome;
  $("review").hidden = false;
  $("review-title").textContent = `Review plan #${plan.id} (${plan.status}, ${outcome.engine || "solver"})`;
  const where = new Map(orders.map((o) => [o.id, [o.lat, o.lon]]));
  if (map === null) {
    map = baseMap(window.L, "review-map", document.body.dataset.tileUrl, {});
    layer = window.L.layerGroup().addTo(map);
  }
  layer.clearLayers();
  const bounds = [];
  outcome.routes.forEach((route, n) => {
    const points = route.visits.map((v) => where.get(v.order_id)).filter(Boolean);
    bounds.push(...points);
    const color = routeColor(route.shift_id || n);
    window.L.polyline(points, { color, weight: 4, className: "plan-route" }).addTo(layer);
    for (const point of points) window.L.circleMarker(point, { radius: 5, color, fillOpacity: 0.9 }).addTo(layer);
  });
  if (bounds.length) map.fitBounds(bounds, { padding: [20, 20] });
  setTimeout(() => map.invalidateSize(), 0);
  $("review-routes").replaceChildren(...outcome.routes.map((route, n) => {
    const send = el("button", { type: "button", class: "link-button", dataset: { action: "dispatch-route" } }, "Dispatch");
    send.addEventListener("click", () => dispatch([route.shift_id]));
    const swatch = el("span");
    swatch.style.background = routeColor(route.shift_id || n);
    return el("tr", { dataset: { shiftId: route.shift_id, driverId: route.driver_id } },
      el("td", { class: "swatch-cell" }, swatch), el("td", {}, drivers.get(route.driver_id) || `driver ${route.driver_id}`),
      el("td", {}, String(route.visits.length)), el("td", {}, outcome.dimensions.map((d, i) => `${route.load[i]} ${d}`).join(", ")),
      el("td", {}, km(route.distance_m)), el("td", {}, minutes(route.duration_s)), el("td", { class: "actions" }, send));
  }));
  $("review-unassigned").replaceChildren(...(outcome.unassigned.length
    ? outcome.unassigned.map((u) => el("li", { dataset: { orderId: u.order_id } }, `${u.order_ref}: ${u.reason}`))
    : [el("li", { class: "muted" }, "Every order has a route.")]));
}

function dispatch(shiftIds) {
  if (!reviewed) return;
  const body = shiftIds ? { shift_ids: shiftIds } : {};
  attempt($("dispatch-error"), async () => {
    const result = await api("POST", `/v1/plans/${reviewed.id}/dispatch`, body);
    await loadOrders();
    notice(`Dispatched ${result.route_ids.length} route${result.route_ids.length === 1 ? "" : "s"} to the drivers`
      + (result.skipped_order_ids.length ? `; ${result.skipped_order_ids.length} orders had changed and were left out.` : "."));
  });
}

$("dispatch-all").addEventListener("click", () => dispatch(null));

// --- the page --------------------------------------------------------------------------------

async function loadDay() {
  $("review").hidden = true;
  reviewed = null;
  compared.clear();
  await attempt($("order-error"), async () => {
    await Promise.all([loadOrders(), loadShifts(), loadPlans()]);
  });
}

$("day-input").addEventListener("change", () => {
  const url = new URL(location.href);
  url.searchParams.set("day", day());
  history.replaceState(null, "", url.pathname + url.search);
  loadDay();
});

async function opened() {
  await attempt($("order-error"), async () => {
    const org = await api("GET", "/v1/settings/organisation");
    zone = org.time_zone;
    $("zone").textContent = `Times in ${zone.replaceAll("_", " ")}`;
    $("day-input").value = new URLSearchParams(location.search).get("day") || todayInZone();
    await loadFleet();
  });
  await loadDay();
}

page.start();
