// The customer's tracking page (/t/{token}).
//
// GET /v1/track/{token} gives the first view (404: unknown link, 410: expired); the socket
// /v1/track/{token}/ws then sends the view again (`track`) whenever the status changes, `window`
// when the arrival window moves and `position` while this stop is next. Times are shown in the
// organisation's time zone (TrackView.time_zone), not the browser's. The socket reconnects with
// backoff; once the delivery has ended (delivered, failed, cancelled) or the link is refused
// (4404/4410) the page stops listening.
//
// The customer answers back (GET/POST /v1/track/{token}/answers, /instructions, /reschedule,
// /rating): instructions for the driver and another day while the delivery is open, a rating
// once it is delivered. Whatever a customer typed is shown with textContent, never as markup.

import { Reconnecting, baseMap, el, socketUrl } from "../common/reconnect.js";

const L = window.L;
const CLOSE_NOT_FOUND = 4404;
const CLOSE_GONE = 4410;
const END_STATES = new Set(["delivered", "failed", "cancelled"]);
const STEP_OF = {
  received: "received",
  scheduled: "scheduled",
  out_for_delivery: "out",
  en_route: "near",
  arrived: "near",
  delivered: "done",
  failed: "done",
  cancelled: "done",
};
const STEPS = ["received", "scheduled", "out", "near", "done"];

const token = document.body.dataset.token;
const tileUrl = document.body.dataset.tileUrl;
const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  icon: $("status-icon"),
  eyebrow: $("status-eyebrow"),
  title: $("status-title"),
  detail: $("status-detail"),
  steps: $("steps"),
  eta: $("eta"),
  etaLabel: $("eta-label"),
  etaWindow: $("eta-window"),
  etaLikely: $("eta-likely"),
  etaAsOf: $("eta-asof"),
  details: $("details"),
  address: $("address"),
  requested: $("requested"),
  orderRefLine: $("order-ref-line"),
  orderRef: $("order-ref"),
  map: $("map"),
  live: $("live"),
  zone: $("zone"),
};

let view = null;
let feed = null;
let ended = false;

// --- time in the organisation's zone -------------------------------------------------------

const formats = new Map();

function formatter(zone, options) {
  const key = `${zone}|${JSON.stringify(options)}`;
  if (!formats.has(key)) {
    let format;
    try {
      format = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone });
    } catch {
      format = new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }); // unknown zone
    }
    formats.set(key, format);
  }
  return formats.get(key);
}

function clock(iso) {
  return formatter(view.time_zone, { hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

function dayKey(date) {
  return formatter(view.time_zone, { year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

// "" for today, "tomorrow", or "on Tue 14 May": what goes before the times of another day.
function dayWords(iso) {
  const date = new Date(iso);
  const now = new Date();
  if (dayKey(date) === dayKey(now)) return "";
  if (dayKey(date) === dayKey(new Date(now.getTime() + 86400000))) return "tomorrow";
  return `on ${formatter(view.time_zone, { weekday: "short", day: "numeric", month: "short" }).format(date)}`;
}

function withDay(iso, text) {
  const day = dayWords(iso);
  return day ? `${day}, ${text}` : text;
}

function sentence(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// --- what the customer reads ---------------------------------------------------------------

function statusWords(v) {
  const stops = v.stops_before;
  switch (v.status) {
    case "received":
      return ["Order received", "We have your order and will schedule its delivery soon."];
    case "scheduled":
      return ["Scheduled for delivery", v.planned_arrival
        ? sentence(withDay(v.planned_arrival, `planned for around ${clock(v.planned_arrival)}.`))
        : "Your delivery is planned. You will see a live arrival time once the driver sets off."];
    case "out_for_delivery":
      return ["Out for delivery", stops === null || stops === undefined
        ? "The driver is on the way with your order."
        : `The driver is on the way, with ${stops} ${stops === 1 ? "stop" : "stops"} before yours.`];
    case "en_route":
      return ["On the way to you", "You are the driver's next stop."];
    case "arrived":
      return ["Your driver has arrived", "The driver is at your address now."];
    case "delivered":
      return ["Delivered", v.completed_at
        ? sentence(withDay(v.completed_at, `delivered at ${clock(v.completed_at)}. Thank you!`))
        : "Your order has been delivered. Thank you!"];
    case "failed":
      return ["We could not deliver your order", v.failure_reason
        ? `Reason: ${v.failure_reason}. Please contact the sender to arrange another delivery.`
        : "Please contact the sender to arrange another delivery."];
    case "cancelled":
      return ["Delivery cancelled", "This order was cancelled and will not be delivered."];
    default:
      return ["Your delivery", ""];
  }
}

function render() {
  const [title, detail] = statusWords(view);
  ui.status.dataset.status = view.status;
  ui.eyebrow.textContent = END_STATES.has(view.status) ? "Delivery ended" : "Live delivery status";
  ui.title.textContent = title;
  ui.detail.textContent = detail;
  renderDeliveryProof();
  ui.icon.hidden = !END_STATES.has(view.status);
  ui.icon.textContent = view.status === "delivered" ? "✓" : "!";
  ui.orderRef.textContent = view.order_ref;
  ui.orderRefLine.hidden = false;
  document.title = `${title} · Order ${view.order_ref}`;
  renderSteps();
  renderEstimate();
  ui.address.textContent = view.address;
  ui.requested.textContent = view.requested.length
    ? view.requested.map((w) => sentence(withDay(w.start, `${clock(w.start)} – ${clock(w.end)}`))).join("; ")
    : "Any time of the day";
  ui.details.hidden = false;
  ui.zone.textContent = view.time_zone.replaceAll("_", " ");
  renderMap();
}

// A delivered order's proof: the driver's note (as text) and, where the organisation shares
// it, the photo through its signed, short-lived link.
function renderDeliveryProof() {
  let note = document.getElementById("delivery-note");
  let photo = document.getElementById("delivery-photo");
  if (note === null) {
    note = Object.assign(document.createElement("p"), { id: "delivery-note", className: "delivery-note" });
    photo = Object.assign(document.createElement("img"), { id: "delivery-photo", alt: "Photo taken at delivery" });
    Object.assign(photo.style, { display: "block", maxWidth: "100%", marginTop: "12px", borderRadius: "12px" });
    ui.detail.after(note, photo);
  }
  note.textContent = view.delivery_note ? `Driver's note: ${view.delivery_note}` : "";
  note.hidden = !view.delivery_note;
  if (view.delivery_photo_url && photo.getAttribute("src") !== view.delivery_photo_url) photo.src = view.delivery_photo_url;
  photo.hidden = !view.delivery_photo_url;
}

function renderSteps() {
  const current = STEPS.indexOf(STEP_OF[view.status]);
  ui.steps.hidden = false;
  ui.steps.dataset.outcome = END_STATES.has(view.status) ? view.status : "";
  for (const item of ui.steps.children) {
    const index = STEPS.indexOf(item.dataset.step);
    item.classList.toggle("is-done", index < current);
    item.classList.toggle("is-current", index === current);
    if (item.dataset.step === "done") {
      item.textContent = { failed: "Not delivered", cancelled: "Cancelled" }[view.status] || "Delivered";
    }
  }
}

function renderEstimate() {
  const estimate = view.estimate;
  const open = !END_STATES.has(view.status) && view.status !== "arrived";
  if (open && estimate) {
    ui.eta.hidden = false;
    ui.etaLabel.textContent = "Arriving";
    ui.etaWindow.textContent = sentence(withDay(estimate.likely,
      `between ${clock(estimate.earliest)} and ${clock(estimate.latest)}`));
    ui.etaLikely.textContent = `most likely ${clock(estimate.likely)}`;
    ui.etaAsOf.textContent = `updated ${clock(estimate.as_of)}`;
    Object.assign(ui.eta.dataset, {
      earliest: estimate.earliest, latest: estimate.latest, likely: estimate.likely, kind: "live",
    });
  } else if (open && view.planned_arrival && view.status !== "received") {
    ui.eta.hidden = false;
    ui.etaLabel.textContent = "Planned arrival";
    ui.etaWindow.textContent = sentence(withDay(view.planned_arrival, `around ${clock(view.planned_arrival)}`));
    ui.etaLikely.textContent = "A live arrival window follows once the driver is on the way.";
    ui.etaAsOf.textContent = "";
    Object.assign(ui.eta.dataset, { earliest: "", latest: "", likely: view.planned_arrival, kind: "planned" });
  } else {
    ui.eta.hidden = true;
    Object.assign(ui.eta.dataset, { earliest: "", latest: "", likely: "", kind: "none" });
  }
}

// --- the map -------------------------------------------------------------------------------

let map = null;
let home = null;
let driver = null;

function renderMap() {
  if (map === null) {
    ui.map.hidden = false;
    map = baseMap(L, ui.map, tileUrl, { scrollWheelZoom: false, zoomControl: true }, () => {
      ui.map.classList.add("no-tiles");
    });
    map.setView([view.lat, view.lon], 15);
    home = L.marker([view.lat, view.lon], {
      icon: L.divIcon({ className: "home-marker", html: el("span", { class: "home-pin" }),
        iconSize: [30, 30], iconAnchor: [15, 30] }),
      title: "Delivery address",
      keyboard: false,
    }).addTo(map);
    home.getElement().dataset.role = "home";
  } else {
    home.setLatLng([view.lat, view.lon]);
  }
  showDriver(view.driver);
}

function showDriver(spot) {
  if (!spot) {
    if (driver !== null) {
      driver.marker.remove();
      driver = null;
      map.setView([view.lat, view.lon], Math.max(map.getZoom(), 15));
    }
    return;
  }
  const first = driver === null;
  if (first) {
    const arrow = el("span", { class: "driver-heading" });
    const icon = el("span", { class: "driver-pin driver-pin-small" }, arrow);
    const marker = L.marker([spot.lat, spot.lon], {
      icon: L.divIcon({ className: "driver-marker", html: icon, iconSize: [34, 34], iconAnchor: [17, 17] }),
      title: "Your driver",
      keyboard: false,
      zIndexOffset: 1000,
    }).addTo(map);
    driver = { marker, arrow };
  } else {
    driver.marker.setLatLng([spot.lat, spot.lon]);
  }
  const hasHeading = spot.heading_deg !== null && spot.heading_deg !== undefined;
  driver.arrow.hidden = !hasHeading;
  driver.arrow.style.transform = `rotate(${spot.heading_deg || 0}deg)`;
  const element = driver.marker.getElement();
  Object.assign(element.dataset, { role: "driver", lat: spot.lat, lon: spot.lon, time: spot.time });
  const here = L.latLng(spot.lat, spot.lon);
  if (first || !map.getBounds().pad(-0.1).contains(here)) {
    map.fitBounds(L.latLngBounds([[view.lat, view.lon], here]), { padding: [40, 40], maxZoom: 16 });
  }
}

// --- messages ------------------------------------------------------------------------------

function apply(message) {
  switch (message.type) {
    case "track":
      view = message;
      break;
    case "window":
      if (view === null) return;
      view = { ...view, estimate: message.estimate };
      break;
    case "position":
      if (view === null) return;
      view = { ...view, driver: message.driver };
      break;
    default:
      return;
  }
  render();
  answersAfter(view);
  if (END_STATES.has(view.status)) end();
}

function end() {
  ended = true;
  if (feed) feed.stop();
  setLive("ended", "Tracking ended");
}

function refuse(status) {
  ended = true;
  if (feed) feed.stop();
  const expired = status === 410;
  ui.status.dataset.status = "unknown";
  ui.status.dataset.reason = expired ? "expired" : "unknown";
  ui.icon.hidden = false;
  ui.icon.textContent = "?";
  ui.eyebrow.textContent = "Tracking link";
  ui.title.textContent = "This link is unknown or has expired";
  ui.detail.textContent = expired
    ? "Tracking links stop working a while after the delivery ends. Ask the sender for a new one if you need it."
    : "Check that you opened the whole link, or ask the sender for a new one.";
  ui.steps.hidden = true;
  ui.eta.hidden = true;
  ui.details.hidden = true;
  ui.map.hidden = true;
  $("answers").hidden = true;
  $("rating").hidden = true;
  document.title = "Link unknown or expired";
  ui.zone.parentElement.hidden = true;
  setLive("gone", "Not tracking");
}

function setLive(state, text) {
  ui.live.dataset.state = state;
  ui.live.textContent = text;
}

async function start() {
  if (!token) {
    refuse(404);
    return;
  }
  const path = encodeURIComponent(token);
  try {
    const response = await fetch(`/v1/track/${path}`, { headers: { accept: "application/json" } });
    if (response.status === 404 || response.status === 410) {
      refuse(response.status);
      return;
    }
    if (response.ok) apply({ ...(await response.json()), type: "track" });
  } catch (error) {
    console.warn("could not load the delivery; the live feed will bring it", error);
  }
  if (ended) return;
  feed = new Reconnecting({
    url: () => socketUrl(`/v1/track/${path}/ws`),
    onOpen: () => setLive("live", "Live"),
    onMessage: (message) => {
      setLive("live", "Live");
      apply(message);
    },
    onClose: (event) => {
      if (event.code === CLOSE_NOT_FOUND || event.code === CLOSE_GONE) {
        refuse(event.code === CLOSE_GONE ? 410 : 404);
        return "stop";
      }
      if (ended || (view && END_STATES.has(view.status))) return "stop";
      setLive("reconnecting", "Reconnecting…");
      return "retry";
    },
  });
  feed.start();
}

// --- the customer's answers ----------------------------------------------------------------

const tokenPath = token ? encodeURIComponent(token) : "";
const answersUi = {
  section: $("answers"),
  current: $("answers-current"),
  instructionsForm: $("instructions-form"),
  gateCode: $("gate-code"),
  leaveAt: $("leave-at"),
  safePlace: $("safe-place"),
  note: $("note"),
  instructionsState: $("instructions-state"),
  rescheduleForm: $("reschedule-form"),
  rescheduleDay: $("reschedule-day"),
  rescheduleState: $("reschedule-state"),
  rating: $("rating"),
  ratingForm: $("rating-form"),
  ratingComment: $("rating-comment"),
  ratingState: $("rating-state"),
  ratingDone: $("rating-done"),
  ratingStars: $("rating-stars"),
  ratingCommentShown: $("rating-comment-shown"),
};
let answers = null;
let answersOf = null; // the status the answers were read for

// The view's status moved (or the first view came): read the answers again, since what the
// customer may do changed (a delivered order asks for a rating).
function answersAfter(current) {
  if (answersOf === current.status) {
    renderAnswers();
    return;
  }
  answersOf = current.status;
  loadAnswers();
}

async function loadAnswers() {
  try {
    const response = await fetch(`/v1/track/${tokenPath}/answers`, { headers: { accept: "application/json" } });
    if (!response.ok) return;
    const first = answers === null;
    answers = await response.json();
    if (first) fillInstructions(answers.instructions);
    renderAnswers();
  } catch (error) {
    console.warn("could not read the answers", error);
  }
}

function fillInstructions(given) {
  answersUi.gateCode.value = (given && given.gate_code) || "";
  answersUi.leaveAt.value = (given && given.leave_at) || "";
  answersUi.note.value = (given && given.note) || "";
  const safe = given ? given.safe_place_allowed : null;
  answersUi.safePlace.value = safe === true ? "yes" : safe === false ? "no" : "";
}

function showRow(id, text) {
  const row = $(`${id}-row`);
  row.hidden = text === null || text === undefined || text === "";
  $(id).textContent = row.hidden ? "" : text; // customer text: never innerHTML
  return !row.hidden;
}

function renderAnswers() {
  if (view === null || answers === null) return;
  const open = !END_STATES.has(view.status);
  answersUi.section.hidden = !open;
  answersUi.rescheduleForm.hidden = !open || view.status === "arrived";
  const given = answers.instructions;
  const safe = given ? given.safe_place_allowed : null;
  const shown = [
    showRow("answers-gate-code", given && given.gate_code),
    showRow("answers-leave-at", given && given.leave_at),
    showRow("answers-safe-place", safe === true ? "Allowed" : safe === false ? "Not allowed" : null),
    showRow("answers-note", given && given.note),
  ];
  answersUi.current.hidden = !shown.some(Boolean);
  answersUi.rescheduleDay.min = isoDay(new Date(Date.now() + 86400000));
  const rated = answers.rating;
  answersUi.rating.hidden = view.status !== "delivered" || (!answers.can_rate && !rated);
  answersUi.ratingForm.hidden = Boolean(rated);
  answersUi.ratingDone.hidden = !rated;
  if (rated) {
    answersUi.ratingStars.textContent = `${rated.stars} of 5`;
    answersUi.ratingCommentShown.textContent = rated.comment || "";
  }
}

// YYYY-MM-DD of an instant in the organisation's zone (what a date input and the API take).
function isoDay(date) {
  const zone = view ? view.time_zone : "UTC";
  const parts = formatter(zone, { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(date);
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

function setState(element, state, text) {
  element.dataset.state = state;
  element.textContent = text;
}

async function send(path, body, stateElement) {
  setState(stateElement, "sending", "Sending…");
  try {
    const response = await fetch(`/v1/track/${tokenPath}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      setState(stateElement, "error", answer.reason ? sentence(`${answer.reason}.`) : "That did not work; please try again.");
      return null;
    }
    return answer;
  } catch {
    setState(stateElement, "error", "No connection; please try again.");
    return null;
  }
}

function orNull(text) {
  const trimmed = text.trim();
  return trimmed === "" ? null : trimmed;
}

answersUi.instructionsForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const safe = answersUi.safePlace.value;
  const saved = await send("instructions", {
    gate_code: orNull(answersUi.gateCode.value),
    leave_at: orNull(answersUi.leaveAt.value),
    safe_place_allowed: safe === "yes" ? true : safe === "no" ? false : null,
    note: orNull(answersUi.note.value),
  }, answersUi.instructionsState);
  if (saved === null) return;
  answers = { ...answers, instructions: saved };
  renderAnswers();
  setState(answersUi.instructionsState, "saved", "Saved");
});

answersUi.rescheduleForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!answersUi.rescheduleDay.value) {
    setState(answersUi.rescheduleState, "error", "Choose a day first.");
    return;
  }
  const moved = await send("reschedule", { day: answersUi.rescheduleDay.value }, answersUi.rescheduleState);
  if (moved === null) return;
  const day = new Date(`${moved.to_day}T12:00:00Z`);
  setState(answersUi.rescheduleState, "saved",
    `Moved to ${formatter("UTC", { weekday: "long", day: "numeric", month: "long" }).format(day)}.`);
  loadAnswers();
});

answersUi.ratingForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const chosen = answersUi.ratingForm.querySelector("input[name=stars]:checked");
  if (chosen === null) {
    setState(answersUi.ratingState, "error", "Choose 1 to 5 stars first.");
    return;
  }
  const rated = await send("rating", {
    stars: Number(chosen.value),
    comment: orNull(answersUi.ratingComment.value),
  }, answersUi.ratingState);
  if (rated === null) return;
  answers = { ...answers, rating: rated, can_rate: false };
  renderAnswers();
});

// Read-only view for tests and the browser console.
window.lastmileTrack = Object.freeze({
  get view() { return view === null ? null : structuredClone(view); },
  get listening() { return feed !== null && !feed.stopped; },
});

start();
