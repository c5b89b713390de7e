// What the signed-in pages (/admin, /plan) share: the sign-in gate, the credential and the API.
//
// The credential is a signed-in user's session (its HttpOnly cookie, and the CSRF token sent with
// every change), or an API key from the fragment (#key=…) kept in this tab's sessionStorage, as on
// the live map. The page's markup has #gate, #sign-in-form, #email-input, #password-input,
// #sign-in-error, #console, #who, #sign-out and #notice.

import { takeFromFragment } from "./fragment.js";
import { currentSession, signIn, signOut } from "./session.js";

const KEY_STORAGE = "lastmile.dispatch.key";
const $ = (id) => document.getElementById(id);

export class Refused extends Error {
  constructor(status, body) {
    super(body.reason || `The server answered ${status}.`);
    this.status = status;
    this.field = body.field;
    this.body = body;
  }
}

export class SignedInPage {
  // `onOpen(credential)`: the page is signed in; draw it.
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.credential = null;
    $("sign-in-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const { session, message } = await signIn($("email-input").value, $("password-input").value);
      $("password-input").value = "";
      if (session) this.open(session);
      else $("sign-in-error").textContent = message;
    });
    $("sign-out").addEventListener("click", async () => {
      const was = this.credential;
      this.signedOut("");
      if (was && was.kind === "session") await signOut(was);
    });
  }

  async start() {
    const key = takeFromFragment("key");
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    const stored = sessionStorage.getItem(KEY_STORAGE);
    if (stored) return this.open({ kind: "key", key: stored });
    const session = await currentSession();
    if (session) return this.open(session);
    return this.signedOut("");
  }

  async open(credential) {
    this.credential = credential;
    $("gate").hidden = true;
    $("sign-out").hidden = false;
    $("sign-out").textContent = credential.kind === "session" ? "Sign out" : "Forget key";
    $("who").textContent = credential.kind === "session"
      ? `${credential.user.name} · ${credential.user.role}` : "API key";
    $("console").hidden = false;
    await this.onOpen(credential);
    document.body.dataset.ready = "true";
  }

  signedOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    this.credential = null;
    $("console").hidden = true;
    $("sign-out").hidden = true;
    $("who").textContent = "";
    $("gate").hidden = false;
    $("sign-in-error").textContent = message || "";
    $("email-input").focus();
  }

  headers() {
    if (this.credential === null) return {};
    return this.credential.kind === "key"
      ? { authorization: `Bearer ${this.credential.key}` }
      : { "x-csrf-token": this.credential.csrf };
  }

  // The answer's JSON; a refusal throws Refused (a 401 also signs the page out).
  async api(method, path, body, { contentType = "application/json" } = {}) {
    const headers = this.headers();
    let payload;
    if (body !== undefined) {
      headers["content-type"] = contentType;
      payload = contentType === "application/json" ? JSON.stringify(body) : body;
    }
    const reply = await fetch(path, { method, headers, cache: "no-store", body: payload });
    const answer = reply.status === 204 ? {} : await reply.json().catch(() => ({}));
    if (reply.status === 401) {
      this.signedOut("Your session has ended or the key was not accepted. Sign in again.");
      throw new Refused(401, answer);
    }
    if (!reply.ok) throw new Refused(reply.status, answer);
    return answer;
  }
}

// Run `action`; its refusal is written in `errorElement` (the field the server named first),
// else `done` is shown as a notice.
export async function attempt(errorElement, action, done) {
  errorElement.textContent = "";
  try {
    await action();
    if (done) notice(done);
  } catch (error) {
    if (error.status === 401) return;
    errorElement.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
  }
}

export function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
}
