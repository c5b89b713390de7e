// A WebSocket that reconnects with exponential backoff, shared by the dispatcher map and the
// customer tracking page.
//
// The owner decides, on every close, whether to reconnect: `onClose(event)` returns "stop"
// (an end state, a rejected key), "now" (the server asked to resume at once, e.g. 4408), or
// anything else for a retry after the backoff delay. The delay doubles from `minDelayMs` up to
// `maxDelayMs`, with jitter so that a restarted server is not hit by every screen at once, and
// resets once a connection has delivered a message. Coming back online or to the foreground
// retries at once instead of waiting out the delay.

export class Reconnecting {
  constructor({ url, onMessage, onOpen = () => {}, onClose = () => "retry",
                onWaiting = () => {}, minDelayMs = 1000, maxDelayMs = 30000 }) {
    // A function: the URL may change between attempts (?since=). It may be async (a page asks
    // for a socket ticket first); when it throws, the attempt counts as closed with the
    // error's `closeCode` (4401 for a refused credential) or, without one, as a lost network.
    this.url = url;
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onClose = onClose;
    this.onWaiting = onWaiting;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = true;
    this.connecting = false; // waiting for an async url()
    this.nudge = () => {
      if (!this.stopped && this.socket === null && document.visibilityState !== "hidden") {
        this.connectNow();
      }
    };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.nudge);
    document.addEventListener("visibilitychange", this.nudge);
    this.connectNow();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.nudge);
    document.removeEventListener("visibilitychange", this.nudge);
    clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) socket.close(1000, "page closed the feed");
  }

  async connectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.socket !== null || this.connecting) return;
    this.connecting = true;
    let url;
    try {
      url = await this.url();
    } catch (error) {
      this.connecting = false;
      this.closed({ code: error.closeCode ?? 4000, reason: error.message ?? "" });
      return;
    }
    this.connecting = false;
    if (this.stopped || this.socket !== null) return;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (this.socket === socket) this.onOpen();
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        console.warn("ignoring a frame that is not JSON", error);
        return;
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return; // closed by stop(): nothing to decide
      this.socket = null;
      this.closed(event);
    });
  }

  closed(event) {
    const decision = this.onClose(event);
    if (this.stopped || decision === "stop") {
      this.stop();
      return;
    }
    const delay = decision === "now" ? 0 : this.nextDelay();
    this.onWaiting(delay);
    this.timer = setTimeout(() => this.connectNow(), delay);
  }

  nextDelay() {
    const base = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(base * (0.5 + Math.random() / 2));
  }
}

// The socket URL for a same-origin path: wss:// on an https page, ws:// otherwise.
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// A single-use ticket for a socket, asked for with the credential in a header (so that the
// credential never sits in a socket's URL, where logs keep URLs): a bearer token, or the headers
// to send (a signed-in page's CSRF token beside its session cookie). Throws an error whose
// `closeCode` is the refusal's socket code (4401, 4403, 4429) when the server refuses it.
export async function socketTicket(path, credential) {
  const reply = await fetch(path, {
    method: "POST",
    headers: typeof credential === "string" ? { authorization: `Bearer ${credential}` } : credential,
    cache: "no-store",
  });
  if (!reply.ok) {
    let reason = `${reply.status}`;
    try {
      reason = (await reply.json()).reason ?? reason;
    } catch (_) {
      // not a JSON refusal: keep the status
    }
    const error = new Error(reason);
    if (reply.status < 500) error.closeCode = 4000 + reply.status;
    throw error;
  }
  return (await reply.json()).ticket;
}

// A DOM element with attributes and children (strings become text nodes, never HTML).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The base map both pages use: tiles from `tileUrl` unless it is "off"; a tile server that
// cannot be reached only greys the background (and `onTilesFailing` is called once).
export function baseMap(L, element, tileUrl, options = {}, onTilesFailing = () => {}) {
  const map = L.map(element, { zoomControl: true, ...options });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  if (tileUrl && tileUrl !== "off") {
    const osm = /openstreetmap\.(org|fr|de)/.test(tileUrl);
    const tiles = L.tileLayer(tileUrl, {
      maxZoom: 19,
      attribution: osm ? '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors' : "",
    });
    let told = false;
    tiles.on("tileerror", () => {
      if (!told) {
        told = true;
        onTilesFailing();
      }
    });
    tiles.addTo(map);
  }
  return map;
}
