// The driver socket (/v1/driver/ws): the route comes down on connect and on every change, and
// the queued pings go up, oldest first, one batch in flight at a time.
//
// A batch leaves the outbox only when its `ack` arrives (the server acks after Redis has the
// fixes). A socket that closes with a batch in flight forgets it; the batch is still first in
// the outbox and goes again on the next connection, and the server keeps each fix once.

import { Reconnecting, socketTicket, socketUrl } from "/static/common/reconnect.js";

const BATCH = 500; // the socket takes up to 1,000 fixes per message
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_GIVEN_UP = 4000; // ours: no answer, or the phone is offline
const ACK_WAIT_MS = 20000; // a batch not acknowledged by then: the connection is dead

export class DriverLink {
  constructor({ outbox, token, onRoute, onState, onSignedOut }) {
    this.outbox = outbox;
    this.onRoute = onRoute;
    this.onState = onState;
    this.onSignedOut = onSignedOut;
    this.inFlight = null; // {id, keys}
    this.ackTimer = null;
    this.nextId = 1;
    this.open = false;
    this.feed = new Reconnecting({
      // The token goes in a header for a single-use ticket: the socket's URL carries only it.
      url: async () => {
        const ticket = await socketTicket("/v1/driver/socket-tickets", token);
        return socketUrl(`/v1/driver/ws?ticket=${encodeURIComponent(ticket)}`);
      },
      onOpen: () => {
        this.open = true;
        this.inFlight = null;
        this.onState("live");
        this.flush();
      },
      onMessage: (message) => this.receive(message),
      onClose: (event) => {
        this.open = false;
        this.inFlight = null;
        if (event.code === CLOSE_UNAUTHORIZED) {
          this.onState("refused");
          this.onSignedOut(event.reason);
          return "stop";
        }
        this.onState("offline");
        return event.code === 4408 ? "now" : "retry";
      },
      onWaiting: () => this.onState("offline"),
      maxDelayMs: 15000,
    });
  }

  start() {
    this.feed.start();
    // A phone that knows it lost the network does not wait for TCP to notice: the socket is
    // given up at once, so nothing is sent into it and the outbox keeps everything.
    window.addEventListener("offline", () => this.drop("the phone went offline"));
  }

  drop(reason) {
    const socket = this.feed.socket;
    this.open = false;
    this.inFlight = null;
    clearTimeout(this.ackTimer);
    this.onState("offline");
    if (socket !== null) socket.close(CLOSE_GIVEN_UP, reason);
  }

  stop() {
    this.feed.stop();
  }

  // Queue one fix (the Ping fields) and send it when the socket can.
  async ping(fix) {
    await this.outbox.add("pings", fix);
    this.flush();
  }

  async flush() {
    if (!this.open || this.inFlight !== null) return;
    const socket = this.feed.socket;
    if (socket === null || socket.readyState !== WebSocket.OPEN) return;
    this.inFlight = { id: 0, keys: [] }; // held while reading, so two flushes cannot interleave
    const batch = await this.outbox.oldest("pings", BATCH);
    if (batch.length === 0 || this.feed.socket !== socket || socket.readyState !== WebSocket.OPEN) {
      this.inFlight = null;
      return;
    }
    const id = this.nextId++;
    this.inFlight = { id, keys: batch.map(([key]) => key) };
    socket.send(JSON.stringify({ type: "pings", id, pings: batch.map(([, fix]) => fix) }));
    clearTimeout(this.ackTimer);
    this.ackTimer = setTimeout(() => this.drop("no acknowledgement"), ACK_WAIT_MS);
  }

  async receive(message) {
    if (message.type === "route") {
      this.onRoute(message.route);
    } else if (message.type === "ack" || message.type === "error") {
      // An error names a message the server could not read at all: sending it again would
      // fail again, so it leaves the outbox like an acknowledged one.
      if (this.inFlight === null || this.inFlight.id !== message.id) return;
      clearTimeout(this.ackTimer);
      const { keys } = this.inFlight;
      await this.outbox.remove("pings", keys);
      this.inFlight = null;
      this.flush();
    }
  }
}
