// Replays the queued HTTP commands in the order they were queued, one at a time.
//
// What the server answered decides what happens to a command:
// - 2xx: done; the answer (the route as it now is) is handed to `onRoute`.
// - 409: the stop or route is already past this step (a replay of a command whose first answer
//   was lost, or dispatch changed it meanwhile): nothing to do, the command is dropped.
// - any other 4xx: the server refused it for good (its reason is shown); it is dropped so that
//   one refusal cannot block everything queued behind it.
// - 5xx, 429 or no answer at all: the network or the server is away; replay stops and
//   resumes later, with this command still first in line.

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;

export class CommandSender {
  constructor({ outbox, token, onRoute, onRefused, onSent }) {
    this.outbox = outbox;
    this.token = token;
    this.onRoute = onRoute;
    this.onRefused = onRefused;
    this.onSent = onSent;
    this.running = false;
    this.again = false;
    this.delayMs = RETRY_MIN_MS;
    this.timer = null;
    window.addEventListener("online", () => this.kick());
  }

  // Send what is queued now; called after every enqueue, on coming online, and on a timer.
  kick() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.drain()
      .catch(() => "retry")
      .then((result) => {
        this.running = false;
        if (result === "retry") {
          this.timer = setTimeout(() => this.kick(), this.delayMs);
          this.delayMs = Math.min(this.delayMs * 2, RETRY_MAX_MS);
        } else {
          this.delayMs = RETRY_MIN_MS;
          if (this.again) {
            this.again = false;
            this.kick();
          }
        }
      });
  }

  async drain() {
    for (;;) {
      const [next] = await this.outbox.oldest("commands", 1);
      if (next === undefined) return "empty";
      const [key, command] = next;
      let response;
      try {
        response = await fetch(command.path, this.init(command));
      } catch {
        return "retry"; // offline, or the connection broke before an answer came
      }
      if (response.status >= 500 || response.status === 429) return "retry";
      let answeredRoute = false;
      if (response.ok) {
        const body = await response.json().catch(() => null);
        await this.outbox.remove("commands", [key]);
        answeredRoute = body !== null && Array.isArray(body.stops);
        if (answeredRoute) this.onRoute(body);
      } else {
        const body = await response.json().catch(() => ({}));
        await this.outbox.remove("commands", [key]);
        if (response.status !== 409) this.onRefused(command, response.status, body);
      }
      this.onSent(command, response.status, answeredRoute);
    }
  }

  init(command) {
    const headers = {
      Authorization: `Bearer ${this.token}`,
      "Idempotency-Key": command.key,
    };
    let body;
    if (command.parts) {
      body = new FormData();
      for (const [name, value, filename] of command.parts) {
        if (filename) body.append(name, value, filename);
        else body.append(name, value);
      }
    } else if (command.json !== null) {
      headers["Content-Type"] = "application/json";
      body = command.json;
    } else if (command.queuedAt) {
      // Start and arrive say when the driver acted: sent late (offline), they keep that time.
      headers["Content-Type"] = "application/json";
      body = JSON.stringify({ at: command.queuedAt });
    }
    return { method: command.method, headers, body, cache: "no-store" };
  }
}
