// Analytics (/analytics): the days in figures and the messages sent about their stops, trends by
// day, drivers side by side, a zone map of lateness (and of the learned driving speeds), the
// patterns worth acting on, the accuracy of the arrival windows, and CSV exports. Only the
// public API is used (/v1/analytics/...).
//
// Days are the organisation's (GET /v1/settings/organisation gives its zone); numbers are shown
// in the reader's locale. What people typed (drivers' names, addresses) is drawn as text.

/* global L, Plotly */
import { SignedInPage } from "../common/console.js";
import { baseMap, el } from "../common/reconnect.js";

const $ = (id) => document.getElementById(id);
const DAYS = 7;
const HORIZONS = [5, 15, 30, 60];

const page = new SignedInPage({ onOpen: () => opened() });
const api = (method, path) => page.api(method, path);
const locale = navigator.language || "en";
const percent = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
const number = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });

let zone = "UTC";
let map = null;
let layers = null;
let loaded = null; // the last answers, for the map's layer switch

function ratio(value) {
  return value === null || value === undefined ? "–" : percent.format(value);
}

function todayInZone() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date());
}

function shifted(day, days) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function range() {
  return `from=${$("from-input").value}&to=${$("to-input").value}`;
}

async function opened() {
  const org = await api("GET", "/v1/settings/organisation").catch(() => null);
  zone = org ? org.time_zone : "UTC";
  $("zone").textContent = `Days in ${zone}`;
  if (!$("to-input").value) {
    $("to-input").value = todayInZone();
    $("from-input").value = shifted($("to-input").value, 1 - DAYS);
  }
  await load();
}

async function load() {
  $("load-error").textContent = "";
  document.body.dataset.loaded = "false";
  try {
    const [byDay, byDriver, byZone, routesByDriver, routesByDay, patterns, learned] = await Promise.all([
      api("GET", `/v1/analytics/deliveries?by=day&${range()}`),
      api("GET", `/v1/analytics/deliveries?by=driver&${range()}`),
      api("GET", `/v1/analytics/deliveries?by=zone&${range()}`),
      api("GET", `/v1/analytics/routes?by=driver&${range()}`),
      api("GET", `/v1/analytics/routes?by=day&${range()}`),
      api("GET", `/v1/analytics/patterns?${range()}`),
      api("GET", "/v1/analytics/learned").catch((error) => {
        if (error.status === 404) return null;
        throw error;
      }),
    ]);
    loaded = { byZone, learned };
    drawFigures(byDay.rows, routesByDay.rows);
    drawMessages(byDay.rows);
    drawTrend(byDay.rows);
    drawDrivers(byDriver.rows, routesByDriver.rows);
    drawMap();
    drawPatterns(patterns.patterns);
    drawEta(byDay.rows, learned);
  } catch (error) {
    if (error.status === 401) return;
    $("load-error").textContent = error.field ? `${error.field}: ${error.message}` : error.message;
  }
  document.body.dataset.loaded = "true";
}

// --- figures -----------------------------------------------------------------------------------

function sum(rows, field) {
  return rows.reduce((total, row) => total + (row[field] || 0), 0);
}

function drawFigures(days, routes) {
  const stops = sum(days, "stops");
  const firsts = sum(days, "first_attempts");
  const firstOk = days.reduce((t, r) => t + (r.first_attempt_success_rate || 0) * r.first_attempts, 0);
  const windows = sum(days, "with_window");
  const driven = sum(routes, "driven_km");
  const planned = sum(routes, "planned_km");
  const figures = [
    ["Stops closed", number.format(stops)],
    ["On time", windows ? ratio(sum(days, "on_time") / windows) : "–"],
    ["First attempt", firsts ? ratio(firstOk / firsts) : "–"],
    ["Failed", number.format(sum(days, "failed"))],
    ["Driven km", number.format(driven)],
    ["Planned ÷ driven", driven ? ratio(planned / driven) : "–"],
    ["CO₂ kg", number.format(sum(routes, "co2_kg"))],
  ];
  $("figures").replaceChildren(
    ...figures.map(([label, value]) => el("div", {}, el("dt", {}, label), el("dd", {}, value))),
  );
}

const CHANNELS = { sms: "SMS", email: "Email", webhook: "Webhook" };

function drawMessages(days) {
  const totals = new Map();
  for (const day of days) {
    for (const m of day.notifications || []) {
      const total = totals.get(m.channel) || { sent: 0, failed: 0 };
      total.sent += m.sent;
      total.failed += m.failed;
      totals.set(m.channel, total);
    }
  }
  const used = [...totals].filter(([, t]) => t.sent + t.failed > 0);
  $("messages-table").tBodies[0].replaceChildren(...(used.length
    ? used.map(([channel, t]) => el("tr", { dataset: { channel } },
      el("td", {}, CHANNELS[channel] || channel),
      el("td", {}, number.format(t.sent)),
      el("td", {}, number.format(t.failed)),
      el("td", {}, ratio(t.failed / (t.sent + t.failed)))))
    : [el("tr", {}, el("td", { class: "muted", colspan: 4 }, "No messages about these days' stops."))]));
}

// --- charts ----------------------------------------------------------------------------------

const CHART = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

function layout(extra) {
  return {
    margin: { l: 48, r: 48, t: 12, b: 40 },
    legend: { orientation: "h", y: -0.2 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    ...extra,
  };
}

function drawTrend(days) {
  const x = days.map((r) => r.key);
  Plotly.react("trend-chart", [
    { type: "bar", name: "Stops", x, y: days.map((r) => r.stops), yaxis: "y2", marker: { color: "#cbd5e1" } },
    { type: "scatter", mode: "lines+markers", name: "On time", x, y: days.map((r) => r.on_time_rate) },
    { type: "scatter", mode: "lines+markers", name: "First attempt", x, y: days.map((r) => r.first_attempt_success_rate) },
  ], layout({
    xaxis: { type: "category" },
    yaxis: { range: [0, 1.05], tickformat: ".0%" },
    yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
  }), CHART);
}

function drawDrivers(drivers, routes) {
  const perHour = new Map(routes.map((r) => [r.key, r]));
  const names = drivers.map((r) => r.label);
  Plotly.react("drivers-chart", [
    { type: "bar", name: "On time", x: names, y: drivers.map((r) => r.on_time_rate) },
    { type: "bar", name: "First attempt", x: names, y: drivers.map((r) => r.first_attempt_success_rate) },
    {
      type: "scatter", mode: "markers", name: "Stops per hour", x: names, yaxis: "y2",
      y: drivers.map((r) => (perHour.get(r.key) || {}).stops_per_hour ?? null), marker: { size: 10 },
    },
  ], layout({
    barmode: "group",
    xaxis: { type: "category" },
    yaxis: { range: [0, 1.05], tickformat: ".0%" },
    yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
  }), CHART);
  $("drivers-table").tBodies[0].replaceChildren(...drivers.map((r) => {
    const route = perHour.get(r.key) || {};
    return el("tr", {},
      el("td", {}, r.label),
      el("td", {}, number.format(r.stops)),
      el("td", {}, ratio(r.on_time_rate)),
      el("td", {}, ratio(r.first_attempt_success_rate)),
      el("td", {}, r.mean_service_s === null ? "–" : `${number.format(r.mean_service_s / 60)} min`),
      el("td", {}, route.stops_per_hour == null ? "–" : number.format(route.stops_per_hour)),
      el("td", {}, route.driven_km == null ? "–" : number.format(route.driven_km)),
      el("td", {}, r.rating_mean === null ? "–" : `${number.format(r.rating_mean)} (${r.ratings})`));
  }));
}

function drawEta(days, learned) {
  const rows = HORIZONS.map((horizon) => {
    let arrivals = 0, error = 0, inside = 0;
    for (const day of days) {
      const e = day.eta.find((x) => x.horizon_min === horizon);
      if (!e) continue;
      arrivals += e.arrivals;
      error += e.mae_s * e.arrivals;
      inside += e.inside_rate * e.arrivals;
    }
    return { horizon, arrivals, mae: arrivals ? error / arrivals / 60 : null, inside: arrivals ? inside / arrivals : null };
  });
  const x = rows.map((r) => `${r.horizon} min before`);
  Plotly.react("eta-chart", [
    { type: "bar", name: "Mean error (min)", x, y: rows.map((r) => r.mae) },
    { type: "scatter", mode: "lines+markers", name: "Inside the window", x, y: rows.map((r) => r.inside), yaxis: "y2" },
  ], layout({
    xaxis: { type: "category" },
    yaxis: { rangemode: "tozero", title: { text: "min" } },
    yaxis2: { overlaying: "y", side: "right", range: [0, 1.05], tickformat: ".0%", showgrid: false },
  }), CHART);
  $("learned-summary").textContent = learned
    ? `Plans use the model learned on ${new Date(learned.learned_at).toLocaleString(locale, { timeZone: zone })} `
      + `from ${learned.routes} routes (${learned.day_from} to ${learned.day_to}): `
      + (learned.city_speed_kmh === null ? "too few drives for speeds" : `${number.format(learned.city_speed_kmh)} km/h across the city, ${learned.cells.length} zones of their own`)
      + (learned.service_overall_s === null ? "." : `; ${number.format(learned.service_overall_s)} s at a stop in the middle.`)
    : "Nothing learned yet: plans use the configured speed.";
}

// --- the zone map ------------------------------------------------------------------------------

function heat(share) {
  // green (0) → amber → red (≥ 0.5)
  const t = Math.max(0, Math.min(1, share / 0.5));
  const hue = 130 - 130 * t;
  return `hsl(${hue}, 75%, 45%)`;
}

function speedColour(kmh) {
  const t = Math.max(0, Math.min(1, (kmh - 10) / 40));
  return `hsl(${220 - 160 * t}, 70%, 45%)`;
}

function drawMap() {
  if (map === null) {
    map = baseMap(L, $("zone-map"), document.body.dataset.tileUrl, { zoomSnap: 0.5 });
    layers = L.layerGroup().addTo(map);
    for (const input of document.querySelectorAll('input[name="layer"]')) {
      input.addEventListener("change", drawMap);
    }
  }
  layers.clearLayers();
  const which = document.querySelector('input[name="layer"]:checked').value;
  const bounds = [];
  if (which === "late") {
    for (const row of loaded.byZone.rows) {
      if (!row.boundary) continue;
      const share = row.with_window ? row.late / row.with_window : 0;
      const shape = L.polygon(row.boundary, { color: heat(share), weight: 1, fillOpacity: 0.45, className: "zone-cell" });
      shape.bindTooltip(el("div", {},
        el("strong", {}, row.with_window ? `${ratio(share)} late` : "no windows"),
        el("div", {}, `${number.format(row.stops)} stops, ${number.format(row.failed)} failed`),
        el("div", { class: "tip-muted" }, row.key)));
      shape.addTo(layers);
      bounds.push(...row.boundary);
    }
    $("map-legend").textContent = "Share of stops with a window that were late: green none, red half or more.";
  } else {
    const cells = loaded.learned ? loaded.learned.cells : [];
    for (const cell of cells) {
      const shape = L.polygon(cell.boundary, { color: speedColour(cell.speed_kmh), weight: 1, fillOpacity: 0.45, className: "speed-cell" });
      shape.bindTooltip(el("div", {},
        el("strong", {}, `${number.format(cell.speed_kmh)} km/h`),
        el("div", {}, `${number.format(cell.samples)} drives`)));
      shape.addTo(layers);
      bounds.push(...cell.boundary);
    }
    $("map-legend").textContent = cells.length
      ? "Learned driving speed over all hours: blue slow, green fast."
      : "Nothing learned yet.";
  }
  if (bounds.length) map.fitBounds(bounds, { padding: [20, 20] });
  else map.setView([52.52, 13.405], 11);
}

// --- patterns ----------------------------------------------------------------------------------

const KINDS = {
  late_zone: "Late day after day",
  failing_address: "First attempts keep failing",
  failing_zone: "A zone of failed first attempts",
  slow_service: "Slow at the door",
  fast_service: "Quick at the door",
};

function drawPatterns(patterns) {
  $("patterns").replaceChildren(...(patterns.length
    ? patterns.map((p) => el("li", { dataset: { kind: p.kind } },
      el("span", { class: "kind" }, KINDS[p.kind] || p.kind),
      el("span", { class: "label" }, p.label),
      el("div", { class: "muted small" }, p.summary)))
    : [el("li", { class: "muted" }, "Nothing stands out in these days.")]));
}

// --- exports -------------------------------------------------------------------------------------

async function exportCsv(report, by) {
  const reply = await fetch(`/v1/analytics/${report}?by=${by}&format=csv&${range()}`, {
    headers: page.headers(), cache: "no-store",
  });
  if (!reply.ok) {
    $("load-error").textContent = `The export was refused (${reply.status}).`;
    return;
  }
  const url = URL.createObjectURL(await reply.blob());
  const link = el("a", { href: url, download: `${report}-by-${by}-${$("from-input").value}-${$("to-input").value}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

for (const button of document.querySelectorAll("[data-export]")) {
  button.addEventListener("click", () => exportCsv(button.dataset.export, button.dataset.by));
}
for (const id of ["from-input", "to-input"]) {
  $(id).addEventListener("change", () => { if (page.credential) load(); });
}

page.start();
