// The settings page (/admin): the organisation's settings, its users, its API keys and its
// drivers' device tokens, through the public API only.
//
// Auth: a signed-in user's session (its cookie, and the CSRF token with every change), or an API
// key from the fragment (#key=…) kept in this tab's sessionStorage, as on the live map. Admins
// change everything here; a dispatcher reads the organisation's settings and manages devices.
// Names and emails are typed by people: they are drawn as text, never as markup. Times are shown
// in the organisation's zone, in the reader's locale.

import { SignedInPage, attempt } from "../common/console.js";
import { el } from "../common/reconnect.js";

const DAY_S = 86_400;
const $ = (id) => document.getElementById(id);

let timeZone = "UTC";
let isAdmin = false;
const page = new SignedInPage({ onOpen: (credential) => opened(credential) });
const api = (method, path, body) => page.api(method, path, body);

function when(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone })
    .format(new Date(iso));
}

function button(text, onClick, attributes = {}) {
  const node = el("button", { type: "button", class: "link-button", ...attributes }, text);
  node.addEventListener("click", onClick);
  return node;
}

// --- the organisation ------------------------------------------------------------------------

function zoneOptions(current) {
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  const all = zones.includes(current) ? zones : [current, ...zones];
  $("org-zone").replaceChildren(...all.map((zone) => el("option", { value: zone }, zone)));
  $("org-zone").value = current;
}

async function loadOrganisation() {
  const org = await api("GET", "/v1/settings/organisation");
  timeZone = org.time_zone;
  $("org-name").value = org.name;
  zoneOptions(org.time_zone);
  $("org-locale").value = org.locale;
  $("org-service").value = String(org.default_service_s / 60);
  $("org-auto").checked = org.auto_resequence;
  $("org-summary").value = org.summary_emails.join("\n");
  const fields = ["org-name", "org-zone", "org-locale", "org-service", "org-auto", "org-summary"];
  for (const field of fields) {
    $(field).disabled = !isAdmin;
  }
}

$("org-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt($("org-error"), async () => {
    await api("PATCH", "/v1/settings/organisation", {
      name: $("org-name").value.trim(),
      time_zone: $("org-zone").value,
      locale: $("org-locale").value.trim(),
      default_service_s: Math.round(Number($("org-service").value) * 60),
      auto_resequence: $("org-auto").checked,
      summary_emails: $("org-summary").value.split(/[\s,;]+/).filter((address) => address),
    });
    await loadOrganisation();
    await Promise.all([loadUsers(), loadKeys(), loadDevices()]);
  }, "Organisation settings saved.");
});

// --- users -----------------------------------------------------------------------------------

async function loadUsers() {
  if (!isAdmin) return;
  const { users } = await api("GET", "/v1/users");
  $("users").replaceChildren(...users.map(userRow));
}

function userRow(user) {
  const active = user.deactivated_at === null;
  const me = page.credential.kind === "session" && page.credential.user.id === user.id;
  const change = (patch, done) => () => attempt($("users-error"), async () => {
    await api("PATCH", `/v1/users/${user.id}`, patch);
    await loadUsers();
  }, done);
  const setPassword = () => {
    const password = window.prompt(`A new password for ${user.email} (10 or more characters):`);
    if (!password) return;
    attempt($("users-error"), () => api("PUT", `/v1/users/${user.id}/password`, { password }),
      `Password of ${user.email} set; their other sessions ended.`);
  };
  const other = user.role === "admin" ? "dispatcher" : "admin";
  return el("tr", { class: active ? "" : "is-off", dataset: { userId: user.id } },
    el("td", {}, user.email), el("td", {}, user.name), el("td", {}, user.role),
    el("td", {}, when(user.last_sign_in_at)),
    el("td", {}, active ? "active" : `deactivated ${when(user.deactivated_at)}`),
    el("td", { class: "actions" },
      me ? "you" : [
        button(`Make ${other}`, change({ role: other }, `${user.email} is now ${other}.`)),
        button(active ? "Deactivate" : "Reactivate",
          change({ active: !active }, `${user.email} ${active ? "deactivated" : "reactivated"}.`)),
        button("Set password", setPassword),
      ]));
}

$("user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const email = $("user-email").value.trim();
  attempt($("users-error"), async () => {
    await api("POST", "/v1/users", {
      email,
      name: $("user-name").value.trim(),
      role: $("user-role").value,
      password: $("user-password").value,
    });
    event.target.reset();
    await loadUsers();
  }, `${email} can sign in now.`);
});

// --- API keys --------------------------------------------------------------------------------

async function loadKeys() {
  if (!isAdmin) return;
  const { api_keys: keys } = await api("GET", "/v1/api-keys");
  $("keys").replaceChildren(...keys.map(keyRow));
}

function keyState(key) {
  if (key.revoked_at) return `revoked ${when(key.revoked_at)}`;
  if (key.expires_at && new Date(key.expires_at) <= new Date()) return "expired";
  return "active";
}

function showSecret(created) {
  const box = $("new-secret");
  box.replaceChildren(
    `New key "${created.name}" (${created.role}); copy it now, it is not shown again: `,
    el("code", { id: "new-secret-value" }, created.token),
  );
  box.hidden = false;
}

function keyRow(key) {
  const state = keyState(key);
  const live = state === "active";
  const rotate = () => {
    const hours = window.prompt("Hours the old key keeps working beside the new one (0: stops at once):", "0");
    if (hours === null) return;
    attempt($("keys-error"), async () => {
      showSecret(await api("POST", `/v1/api-keys/${key.id}/rotate`,
        { grace_s: Math.max(0, Math.round(Number(hours) * 3600)) }));
      await loadKeys();
    });
  };
  const revoke = () => attempt($("keys-error"), async () => {
    await api("POST", `/v1/api-keys/${key.id}/revoke`);
    await loadKeys();
  }, `Key "${key.name}" revoked on every server.`);
  return el("tr", { class: live ? "" : "is-off", dataset: { keyId: key.id } },
    el("td", {}, key.name), el("td", {}, key.role), el("td", {}, el("code", {}, `${key.token_prefix}…`)),
    el("td", {}, when(key.created_at)), el("td", {}, when(key.last_used_at)),
    el("td", {}, key.expires_at ? when(key.expires_at) : "never"), el("td", {}, state),
    el("td", { class: "actions" }, live ? [button("Rotate", rotate), button("Revoke", revoke)] : ""));
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const days = Number($("key-days").value);
  attempt($("keys-error"), async () => {
    const body = { name: $("key-name").value.trim(), role: $("key-role").value };
    if (days > 0) body.expires_at = new Date(Date.now() + days * DAY_S * 1000).toISOString();
    showSecret(await api("POST", "/v1/api-keys", body));
    event.target.reset();
    await loadKeys();
  });
});

// --- devices ---------------------------------------------------------------------------------

async function loadDrivers() {
  const { drivers } = await api("GET", "/v1/drivers");
  const select = $("device-driver");
  const before = select.value;
  select.replaceChildren(...drivers.map((d) => el("option", { value: d.id }, d.name)));
  if (before) select.value = before;
}

async function loadDevices() {
  const driverId = $("device-driver").value;
  if (!driverId) {
    $("devices").replaceChildren();
    return;
  }
  const { devices } = await api("GET", `/v1/drivers/${driverId}/devices`);
  $("devices").replaceChildren(...devices.map((device) => {
    const live = !device.revoked_at;
    const revoke = () => attempt($("devices-error"), async () => {
      await api("POST", `/v1/devices/${device.id}/revoke`);
      await loadDevices();
    }, `Device "${device.name}" signed out on every server.`);
    return el("tr", { class: live ? "" : "is-off", dataset: { deviceId: device.id } },
      el("td", {}, device.name), el("td", {}, el("code", {}, `${device.token_prefix}…`)),
      el("td", {}, when(device.created_at)),
      el("td", {}, live ? "active" : `revoked ${when(device.revoked_at)}`),
      el("td", { class: "actions" }, live ? button("Revoke", revoke) : ""));
  }));
}

$("device-driver").addEventListener("change", () => attempt($("devices-error"), loadDevices));

// --- signing in ------------------------------------------------------------------------------

async function opened(credential) {
  if (credential.kind === "session") isAdmin = credential.user.role === "admin";
  else {
    try {
      await api("GET", "/v1/users");
      isAdmin = true;
    } catch (error) {
      if (error.status === 401) return;
      isAdmin = false;
    }
  }
  for (const node of document.querySelectorAll(".admin-only")) node.hidden = !isAdmin;
  await attempt($("org-error"), async () => {
    await loadOrganisation();
    await Promise.all([loadUsers(), loadKeys(), loadDrivers().then(loadDevices)]);
  });
}

page.start();
