// The dispatcher's page for signing a driver's phone in: pick a driver, get a new device's
// sign-in QR code (POST /v1/drivers/{id}/devices/qr) and show it for the phone's camera.
//
// A signed-in dispatcher's session serves (its cookie, and the CSRF token for the change); or an
// API key from the fragment (#key=lmk_...) or the form, kept in this tab's sessionStorage under
// the same name the dispatcher's map uses. The code holds a new device
// token: it is shown once, never stored, and gone when the page is left.

import { takeFromFragment } from "/static/common/fragment.js";
import { currentSession } from "/static/common/session.js";
import { newKey } from "./outbox.js";

const KEY_STORAGE = "lastmile.dispatch.key";
const $ = (id) => document.getElementById(id);


let session = null;

async function api(path, init = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  const credential = key ? { Authorization: `Bearer ${key}` } : { "X-CSRF-Token": session?.csrf || "" };
  const response = await fetch(path, {
    ...init,
    headers: { ...(init.headers || {}), ...credential },
    cache: "no-store",
  });
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

async function start() {
  const given = takeFromFragment("key");
  if (given) sessionStorage.setItem(KEY_STORAGE, given);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("key-input").value.trim());
    showDrivers();
  });
  $("qr-form").addEventListener("submit", (event) => {
    event.preventDefault();
    issue();
  });
  if (!sessionStorage.getItem(KEY_STORAGE)) session = await currentSession();
  if (sessionStorage.getItem(KEY_STORAGE) || session) await showDrivers();
  else $("key-card").hidden = false;
}

async function showDrivers() {
  const { status, body } = await api("/v1/drivers");
  if (status === 401 || status === 403) {
    sessionStorage.removeItem(KEY_STORAGE);
    session = null;
    $("key-card").hidden = false;
    $("qr-card").hidden = true;
    $("key-error").textContent = "This key was not accepted.";
    return;
  }
  const select = $("driver-select");
  select.replaceChildren(
    ...(body.drivers || []).map((driver) => {
      const option = document.createElement("option");
      option.value = String(driver.id);
      option.textContent = driver.name; // a name is typed by people: text, never markup
      return option;
    }),
  );
  $("key-card").hidden = true;
  $("qr-card").hidden = false;
}

async function issue() {
  const select = $("driver-select");
  const driverId = select.value;
  if (!driverId) return;
  $("qr-error").textContent = "";
  const { status, body } = await api(`/v1/drivers/${driverId}/devices/qr`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": newKey() },
    body: JSON.stringify({ name: $("device-name").value.trim() || "phone" }),
  });
  if (status !== 201 || !body.svg) {
    $("qr-error").textContent = body.reason || `The server answered ${status}.`;
    return;
  }
  // The SVG is the server's own (segno), shown as an image: it cannot run anything here.
  const bytes = new TextEncoder().encode(body.svg);
  $("qr-image").src = `data:image/svg+xml;base64,${btoa(String.fromCharCode(...bytes))}`;
  $("qr-driver").textContent = select.selectedOptions[0].textContent;
  $("qr-url").textContent = body.url;
  $("qr-figure").hidden = false;
}

start();
