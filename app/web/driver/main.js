// The driver app: sign in with a device token, see the day's route (next stop first) on a list
// and a small map, start it, arrive at and complete or fail each stop with photos, a signature
// and parcel scans, and stream the phone's position while the route runs.
//
// Nothing is sent directly: every ping and command goes to the outbox (IndexedDB) first and is
// replayed from there (outbox.js, commands.js, socket.js), so the app works the same offline;
// what is queued shows on the list at once and reaches the server when the network is back.

import { takeFromFragment } from "/static/common/fragment.js";
import { instructionLines } from "/static/common/instructions.js";
import { el } from "/static/common/reconnect.js";
import { CommandSender } from "./commands.js";
import { RouteMap } from "./map.js";
import { newKey, openOutbox } from "./outbox.js";
import { DriverLink } from "./socket.js";
import { StopDialog } from "./stop.js";

const TOKEN_KEY = "lastmile.driver.token";
const ROUTE_KEY = "lastmile.driver.route";
const SEQ_KEY = "lastmile.driver.seq";
const SIGNED_OUT_KEY = "lastmile.driver.signedOut";
const PROFILE_KEY = "lastmile.driver.profile";
const OPEN = new Set(["pending", "arrived"]);
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  route: null, // the RouteView as the server last sent it
  queued: [], // commands not yet answered, oldest first: their effects show on the list
  changed: new Set(), // stop ids dispatch moved or added in the last change
  outbox: null,
  link: null,
  sender: null,
  map: null,
  watch: null,
  lastFixMs: 0, // when the last ping was taken (the phone's clock)
  latest: null, // the newest position, sent when the second since the last ping is up
  trailing: null, // the timer that sends it
  lastFix: null, // {lat, lon, accuracy_m}: where a proof was captured
  battery: null, // the phone's battery level (0 to 1), where the browser tells
  dialog: null, // the stop dialog (stop.js)
};

// One fix from the phone, numbered and sent over the driver socket (queued while offline).
function ping(position) {
  const at = position.timestamp;
  const c = position.coords;
  state.lastFixMs = at;
  const seq = Number(localStorage.getItem(SEQ_KEY) || "0") + 1;
  localStorage.setItem(SEQ_KEY, String(seq));
  const fix = { time: new Date(at).toISOString(), lat: c.latitude, lon: c.longitude, seq };
  if (c.accuracy !== null) fix.accuracy_m = Math.min(c.accuracy, 100000);
  if (c.speed !== null && c.speed >= 0 && c.speed <= 150) fix.speed_mps = c.speed;
  if (c.heading !== null && !Number.isNaN(c.heading)) fix.heading_deg = c.heading % 360;
  if (c.altitude !== null && c.altitude >= -1000 && c.altitude <= 20000) fix.altitude_m = c.altitude;
  if (state.battery !== null) fix.battery = state.battery;
  state.link.ping(fix);
}

// A read of the API as this device, never answered from the HTTP cache (offline, it throws).
function read(path, token = state.token) {
  return fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
}


async function boot() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/driver/sw.js", { scope: "/driver" }).catch((error) => {
      console.warn("the app will not open offline", error);
    });
  }
  const given = takeFromFragment("token");
  if (given) localStorage.setItem(TOKEN_KEY, given);
  state.token = localStorage.getItem(TOKEN_KEY);
  $("signin-form").addEventListener("submit", signIn);
  if (state.token) await run();
  else showSignIn(sessionStorage.getItem(SIGNED_OUT_KEY) || "");
  sessionStorage.removeItem(SIGNED_OUT_KEY);
}

function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  let response;
  try {
    response = await read("/v1/driver/route", token);
  } catch {
    showSignIn("No connection to the server: try again when online.");
    return;
  }
  if (response.status === 401 || response.status === 403) {
    showSignIn("This token was not accepted. Ask your dispatcher for a new QR code.");
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  state.token = token;
  await run();
}

async function signOut(reason) {
  if (state.outbox !== null && reason === undefined) {
    const waiting = state.queued.length + (await state.outbox.count("pings"));
    if (waiting > 0 && !confirm(`${waiting} updates have not reached the server yet. Sign out and drop them?`)) return;
    await state.outbox.clear();
  }
  stopTracking();
  if (state.link) state.link.stop();
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(ROUTE_KEY);
  localStorage.removeItem(PROFILE_KEY);
  // A fresh page starts from nothing: no socket, sender or listener of this session survives.
  sessionStorage.setItem(SIGNED_OUT_KEY, reason ? `Signed out: ${reason}` : "");
  location.replace("/driver");
}

async function run() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").addEventListener("click", () => signOut());
  $("start").addEventListener("click", () => queue("POST", "/v1/driver/route/start", null, { start: true }));
  state.outbox = await openOutbox();
  // A ping (one a second while the route runs) changes only the count; a command, the list.
  state.outbox.onChange((store) => (store === "pings" ? showWaiting() : refreshQueued()));
  const cached = localStorage.getItem(ROUTE_KEY);
  if (cached) state.route = JSON.parse(cached);
  state.map = new RouteMap(window.L, $("map"), document.body.dataset.tileUrl);
  state.sender = new CommandSender({
    outbox: state.outbox,
    token: state.token,
    onRoute: (route) => showRoute(route),
    onRefused: (command, status, body) => {
      const reason = body.reason || `the server answered ${status}`;
      banner(`${command.label} was refused: ${reason}`, "error");
      if (status === 401) signOut(reason);
      // A refused proof (what the order requires is missing) is kept as a draft: reopening
      // the stop brings back its photos, signature and scans, to add what is missing.
      if (command.parts && command.effect.stopId !== undefined) {
        state.dialog.refused(command.effect.stopId, command.parts, reason);
      }
    },
    onSent: (command, status, answeredRoute) => {
      // A proof answers with the proof, not the route: read the route as it now is.
      if (status < 300 && !answeredRoute) refetchRoute();
    },
  });
  state.link = new DriverLink({
    outbox: state.outbox,
    token: state.token,
    onRoute: (route) => showRoute(route),
    onState: (connection) => {
      $("connection").dataset.state = connection;
      $("connection").textContent = { live: "Online", offline: "Offline", refused: "Signed out" }[connection];
      if (connection === "live") state.sender.kick();
    },
    onSignedOut: (reason) => signOut(reason || "the device token is no longer valid"),
  });
  state.dialog = new StopDialog({ queue, position: () => state.lastFix });
  await refreshQueued();
  loadProfile();
  state.link.start();
  state.sender.kick();
}

async function refetchRoute() {
  try {
    const response = await read("/v1/driver/route");
    if (response.ok) showRoute(await response.json());
  } catch {
    // offline again: the socket sends the route when it reconnects
  }
}

async function refreshQueued() {
  state.queued = (await state.outbox.oldest("commands", 10000)).map(([, command]) => command);
  await showWaiting();
  render();
}

async function showWaiting() {
  const waiting = state.queued.length + (await state.outbox.count("pings"));
  $("queued").hidden = waiting === 0;
  $("queued").textContent = `${waiting} waiting to send`;
}

function showRoute(route) {
  const before = state.route;
  if (before && route.id === before.id && route.version > before.version) {
    const old = new Map(before.stops.map((stop) => [stop.id, stop]));
    state.changed = new Set(
      route.stops
        .filter((stop) => OPEN.has(stop.status) && (!old.has(stop.id) || old.get(stop.id).seq !== stop.seq))
        .map((stop) => stop.id),
    );
    const removed = before.stops.filter(
      (stop) => OPEN.has(stop.status) && route.stops.find((s) => s.id === stop.id)?.status === "removed",
    ).length;
    const parts = [];
    if (state.changed.size) parts.push(`${state.changed.size} stop(s) new or moved`);
    if (removed) parts.push(`${removed} stop(s) removed`);
    banner(`Dispatch changed your route${parts.length ? `: ${parts.join(", ")}` : ""}.`, "changed");
  } else if (!before || route.id !== before.id) {
    state.changed = new Set();
  }
  state.route = route;
  localStorage.setItem(ROUTE_KEY, JSON.stringify(route));
  render();
}

function banner(text, kind) {
  const box = $("banner");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

// The route as the driver sees it: the server's, with the queued commands applied.
function effective() {
  const route = state.route;
  if (route === null) return null;
  let status = route.status;
  const stops = new Map(route.stops.map((stop) => [stop.id, { ...stop }]));
  for (const command of state.queued) {
    if (command.effect.start && status === "dispatched") status = "started";
    const stop = stops.get(command.effect.stopId);
    if (stop && command.effect.status) {
      stop.status = command.effect.status;
      stop.queued = true;
    }
  }
  return { ...route, status, stops: [...stops.values()] };
}

function render() {
  const route = effective();
  const list = $("stops");
  if (route === null) {
    $("route-title").textContent = "No route yet";
    $("route-status").textContent = "";
    $("route-detail").textContent = "Your route shows here as soon as dispatch sends it.";
    $("start").hidden = true;
    list.replaceChildren();
    state.map.show([]);
    return;
  }
  const open = route.stops.filter((stop) => OPEN.has(stop.status)).sort((a, b) => a.seq - b.seq);
  const done = route.stops.filter((stop) => !OPEN.has(stop.status) && stop.status !== "removed").sort((a, b) => a.seq - b.seq);
  $("route-title").textContent = `Route ${route.id} · ${route.day}`;
  $("route-status").textContent = route.status;
  $("route-status").dataset.state = route.status;
  $("route-detail").textContent = `${open.length} to go, ${done.length} done`;
  $("start").hidden = route.status !== "dispatched";
  list.replaceChildren(...open.map((stop, n) => stopItem(stop, n === 0, route)), ...done.map((stop) => stopItem(stop, false, route)));
  state.map.show(open);
  if (route.status === "started") startTracking();
  else stopTracking();
}

// Times in the organisation's zone (GET /v1/driver/me), in the phone's language.
let clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function useProfile(profile) {
  clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", timeZone: profile.time_zone });
  $("driver-name").textContent = profile.name;
  $("zone").textContent = profile.time_zone.replaceAll("_", " ");
  render();
}

async function loadProfile() {
  const cached = localStorage.getItem(PROFILE_KEY);
  if (cached) useProfile(JSON.parse(cached));
  try {
    const response = await read("/v1/driver/me");
    if (!response.ok) return;
    const profile = await response.json();
    localStorage.setItem(PROFILE_KEY, JSON.stringify(profile));
    useProfile(profile);
  } catch {
    // offline: the cached profile (or the phone's zone) serves until the next start
  }
}

function stopItem(stop, next, route) {
  const windows = (stop.windows || []).map((w) => `${clock.format(new Date(w.start))}–${clock.format(new Date(w.end))}`).join(", ");
  const actions = el("div", { class: "stop-actions" });
  if (route.status === "started" && stop.status === "pending") {
    actions.append(button("Arrived", () => queue("POST", `/v1/driver/stops/${stop.id}/arrive`, null, { stopId: stop.id, status: "arrived" }, `Arrival at stop ${stop.seq}`)));
  }
  if (route.status === "started" && OPEN.has(stop.status)) {
    actions.append(button("Complete…", () => state.dialog.open(stop)));
  }
  if (OPEN.has(stop.status)) {
    // geo: opens the phone's maps app (Android asks which one); the label is the customer's name.
    const label = encodeURIComponent(stop.customer_name || stop.address);
    actions.append(el("a", { class: "nav-link", href: `geo:${stop.lat},${stop.lon}?q=${stop.lat},${stop.lon}(${label})` }, "Navigate"));
  }
  return el(
    "li",
    {
      class: ["stop", next ? "next" : "", state.changed.has(stop.id) ? "changed" : "", stop.queued ? "queued" : ""].join(" ").trim(),
      dataset: { stopId: stop.id, status: stop.status },
    },
    el("div", { class: "stop-head" },
      el("span", { class: "stop-seq" }, String(stop.seq)),
      el("strong", {}, stop.customer_name || stop.order_ref),
      el("span", { class: "pill stop-status", dataset: { state: stop.status } }, stop.queued ? `${stop.status} (waiting to send)` : stop.status)),
    el("div", { class: "stop-address" }, stop.address),
    windows ? el("div", { class: "muted" }, `Window ${windows}`) : null,
    stop.notes ? el("div", { class: "stop-notes" }, stop.notes) : null,
    instructionsOf(stop),
    stop.phone ? el("a", { href: `tel:${stop.phone}` }, stop.phone) : null,
    actions,
  );
}

// What the customer asked for on the tracking page (gate code, where to leave it, whether it
// may be left without a signature, a note): the customer's own words, shown as text.
function instructionsOf(stop) {
  if (!OPEN.has(stop.status)) return null;
  // The gate code stands out: the driver reads it at the gate.
  const lines = instructionLines(stop.instructions).map(({ field, label, words }) =>
    el("div", {}, label, field === "gate_code" ? el("strong", {}, words) : words),
  );
  return lines.length ? el("div", { class: "stop-instructions" }, lines) : null;
}

function button(text, onClick) {
  const node = el("button", { type: "button" }, text);
  node.addEventListener("click", onClick);
  return node;
}

async function queue(method, path, json, effect, label = "Starting the route", parts = null) {
  await state.outbox.add("commands", {
    method, path, json, parts, effect, label, key: newKey(), queuedAt: new Date().toISOString(),
  });
  state.sender.kick();
}

// --- position ----------------------------------------------------------------------------

function startTracking() {
  if (state.watch !== null || !("geolocation" in navigator)) return;
  if (navigator.getBattery && state.battery === null) {
    navigator.getBattery().then((battery) => {
      const read = () => { state.battery = battery.level; }; // a fraction, 0 to 1
      read();
      battery.addEventListener("levelchange", read);
    }).catch(() => {});
  }
  state.watch = navigator.geolocation.watchPosition(
    (position) => {
      const c = position.coords;
      // A proof is captured where the phone is now, even between pings.
      state.lastFix = { lat: c.latitude, lon: c.longitude, accuracy_m: c.accuracy };
      state.map.me(c.latitude, c.longitude);
      // One ping a second is plenty for the ETA; a fix inside that second is not dropped but
      // sent when the second is up (the newest one then), since the phone may not move again.
      state.latest = position;
      const wait = state.lastFixMs + 1000 - position.timestamp;
      if (wait > 0) {
        if (state.trailing === null) {
          state.trailing = setTimeout(() => {
            state.trailing = null;
            ping(state.latest);
          }, wait);
        }
        return;
      }
      ping(position);
    },
    (error) => banner(`No position from the phone: ${error.message}`, "error"),
    { enableHighAccuracy: true, maximumAge: 5000 },
  );
}

function stopTracking() {
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  state.watch = null;
  if (state.trailing !== null) clearTimeout(state.trailing);
  state.trailing = null;
}

boot();
