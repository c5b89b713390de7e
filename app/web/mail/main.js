// The demo mail page (/demo/mail): the mails the demo sink received for this organisation, from
// GET /v1/demo/mail, read again every 10 seconds.
//
// Everything a mail carries is untrusted (a customer's name, an address, text a template put
// there): the list and the headers are written with textContent; the text part is shown as text;
// the HTML part only inside a frame with an empty `sandbox` (no scripts, no forms, no popups, an
// opaque origin) or, under "HTML source", as text.
//
// Auth: the API key comes from the URL fragment (#key=...) or from this tab's sessionStorage,
// where the dispatcher map keeps it, so the map's "Mail" link opens this page without asking.

import { takeFromFragment } from "../common/fragment.js";
import { currentSession } from "../common/session.js";

const KEY_STORAGE = "lastmile.dispatch.key";
const REFRESH_MS = 10_000;

const $ = (id) => document.getElementById(id);
const ui = {
  mails: $("mails"),
  reading: $("reading"),
  subject: $("subject"),
  to: $("to"),
  from: $("from"),
  received: $("received"),
  html: $("html"),
  text: $("text"),
  tabs: { html: $("tab-html"), text: $("tab-text"), source: $("tab-source") },
  problem: $("problem"),
  zone: $("zone"),
  refresh: $("refresh"),
  gate: $("key-gate"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyError: $("key-error"),
};

let apiKey = null;
let signedIn = false; // a signed-in user's session cookie serves instead of a key
let zone = undefined;
let mails = [];
let openId = null;
let view = "html";
let timer = null;

function takeKey() {
  const fromFragment = takeFromFragment("key");
  if (fromFragment) {
    sessionStorage.setItem(KEY_STORAGE, fromFragment);
    return fromFragment;
  }
  return sessionStorage.getItem(KEY_STORAGE);
}

function ask(reason) {
  apiKey = null;
  signedIn = false;
  sessionStorage.removeItem(KEY_STORAGE);
  ui.keyError.textContent = reason || "";
  ui.keyError.hidden = !reason;
  ui.gate.hidden = false;
  ui.keyInput.focus();
}

function when(iso) {
  if (!iso) return "";
  try {
    return new Intl.DateTimeFormat(undefined, {
      dateStyle: "medium", timeStyle: "medium", timeZone: zone,
    }).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleString();
  }
}

function showProblem(text) {
  ui.problem.textContent = text || "";
  ui.problem.hidden = !text;
}

async function load() {
  if (!apiKey && !signedIn) return;
  let response;
  try {
    const headers = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
    response = await fetch("/v1/demo/mail", { headers, cache: "no-store" });
  } catch {
    showProblem("The server did not answer; trying again shortly.");
    return;
  }
  if (response.status === 401 || response.status === 403) {
    ask("This key was not accepted.");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showProblem(body.reason || `The server answered ${response.status}.`);
    return;
  }
  showProblem("");
  zone = body.time_zone || undefined;
  ui.zone.textContent = body.time_zone || "your time zone";
  mails = body.mails || [];
  drawList();
  if (openId === null && mails.length) openMail(mails[0].id);
}

function drawList() {
  const items = mails.map((mail) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.id = mail.id;
    if (mail.id === openId) button.setAttribute("aria-current", "true");
    const subject = document.createElement("span");
    subject.className = "subject";
    subject.textContent = mail.subject || "(no subject)";
    const to = document.createElement("span");
    to.className = "to";
    to.textContent = mail.to;
    const time = document.createElement("span");
    time.className = "when";
    time.textContent = when(mail.received_at);
    button.append(subject, to, time);
    button.addEventListener("click", () => openMail(mail.id));
    li.append(button);
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No mail yet. Mails appear here as the simulated day sends them.";
    items.push(li);
  }
  ui.mails.replaceChildren(...items);
}

function openMail(id) {
  const mail = mails.find((m) => m.id === id);
  if (!mail) return;
  openId = id;
  for (const button of ui.mails.querySelectorAll("button")) {
    if (button.dataset.id === id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  ui.reading.hidden = false;
  ui.subject.textContent = mail.subject || "(no subject)";
  ui.to.textContent = mail.to;
  ui.from.textContent = mail.sender;
  ui.received.textContent = when(mail.received_at);
  show(mail.html ? view : "text");
}

function show(which) {
  const mail = mails.find((m) => m.id === openId);
  if (!mail) return;
  view = which;
  for (const [name, tab] of Object.entries(ui.tabs)) {
    tab.setAttribute("aria-selected", String(name === which));
  }
  ui.tabs.html.disabled = !mail.html;
  ui.tabs.source.disabled = !mail.html;
  if (which === "html" && mail.html) {
    ui.html.srcdoc = mail.html; // rendered inside the sandbox, never in this page
    ui.html.hidden = false;
    ui.text.hidden = true;
  } else {
    ui.text.textContent = which === "source" ? mail.html || "" : mail.text || "(no text part)";
    ui.text.hidden = false;
    ui.html.hidden = true;
  }
}

ui.tabs.html.addEventListener("click", () => show("html"));
ui.tabs.text.addEventListener("click", () => show("text"));
ui.tabs.source.addEventListener("click", () => show("source"));
ui.refresh.addEventListener("click", () => load());
ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  apiKey = key;
  ui.gate.hidden = true;
  ui.keyInput.value = "";
  load();
});

apiKey = takeKey();
if (apiKey) load();
else {
  signedIn = (await currentSession()) !== null;
  if (signedIn) load();
  else ask("");
}
timer = setInterval(() => load(), REFRESH_MS);
window.addEventListener("pagehide", () => clearInterval(timer));
