// The dispatcher's reads from the HTTP API, with the page's credential (an API key, or the session
// cookie the browser sends by itself): a route by id (one request
// per route at a time) and the drivers' names (read again at most once a minute, and only when a
// driver without a name has appeared). A 401 or 403 answer calls `onRejected`; other failures are
// logged, and the next need reads again.

const NAMES_EVERY_MS = 60_000;

class KeyRejected extends Error {}

export class Reads {
  // `headers()`: the credential's headers now; `onRejected()`: the server refused it.
  constructor({ headers, onRejected }) {
    this.headers = headers;
    this.onRejected = onRejected;
    this.routes = new Map(); // route id -> promise of the read in flight
    this.namesLoading = null;
    this.namesLoadedAt = 0;
  }

  async get(path) {
    const response = await fetch(path, { headers: this.headers(), cache: "no-store" });
    if (response.status === 401 || response.status === 403) throw new KeyRejected(`${response.status}`);
    if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
    return response.json();
  }

  // A change (or a read that may fail): {status, body}; a 401 calls `onRejected` as well.
  async send(method, path, body) {
    const headers = { ...this.headers() };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      return { status: 0, body: { reason: "The server cannot be reached." } };
    }
    if (response.status === 401) this.onRejected();
    return { status: response.status, body: await response.json().catch(() => ({})) };
  }

  // GET /v1/routes/{id}, then `onRoute(route)`; a read already in flight is not repeated.
  route(routeId, onRoute) {
    if (this.routes.has(routeId)) return this.routes.get(routeId);
    const done = this.get(`/v1/routes/${routeId}`)
      .then(onRoute)
      .catch((error) => this.failed(error))
      .finally(() => this.routes.delete(routeId));
    this.routes.set(routeId, done);
    return done;
  }

  // GET /v1/drivers, then `onNames(drivers)`: the first time, then when `missing` and a minute
  // has passed since the last read.
  names(missing, onNames) {
    const recently = Date.now() - this.namesLoadedAt < NAMES_EVERY_MS;
    if (this.namesLoading || (this.namesLoadedAt && (!missing || recently))) return;
    this.namesLoading = this.get("/v1/drivers")
      .then((body) => onNames(body.drivers))
      .catch((error) => this.failed(error))
      .finally(() => {
        this.namesLoading = null;
        this.namesLoadedAt = Date.now(); // a failed read is retried a minute later, not on every message
      });
  }

  failed(error) {
    if (error instanceof KeyRejected) this.onRejected();
    else console.warn(error);
  }
}
