// The driver app's outbox: everything meant for the server is written to IndexedDB first and
// sent from there, so a closed tab, a dead battery or a tunnel loses nothing.
//
// Two stores, each replayed oldest first:
// - "pings": fixes waiting for the driver socket. A batch is deleted only when the server has
//   acknowledged it (the ack comes after Redis has the fixes); a batch sent but never
//   acknowledged is sent again, and the server stores a fix once per (driver, device time).
// - "commands": HTTP requests (start, arrive, deliver, fail, proof uploads), each with the
//   Idempotency-Key it was given when queued, so a request that reached the server but whose
//   answer was lost is not applied twice. A command is deleted when the server answered it.

const DB_NAME = "lastmile-driver";
const DB_VERSION = 1;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export async function openOutbox() {
  const open = indexedDB.open(DB_NAME, DB_VERSION);
  open.onupgradeneeded = () => {
    const db = open.result;
    db.createObjectStore("pings", { autoIncrement: true });
    db.createObjectStore("commands", { autoIncrement: true });
  };
  return new Outbox(await request(open));
}

export class Outbox {
  constructor(db) {
    this.db = db;
    this.listeners = new Set();
  }

  // `listener(store)` is called after every write, with the store written ("pings",
  // "commands"), or with no store when both were.
  onChange(listener) {
    this.listeners.add(listener);
  }

  changed(store) {
    for (const listener of this.listeners) listener(store);
  }

  async add(store, value) {
    const tx = this.db.transaction(store, "readwrite");
    tx.objectStore(store).add(value);
    await done(tx);
    this.changed(store);
  }

  // The oldest `limit` entries of `store` as [key, value] pairs, in the order they were added.
  async oldest(store, limit) {
    const tx = this.db.transaction(store, "readonly");
    const found = [];
    await new Promise((resolve, reject) => {
      const cursor = tx.objectStore(store).openCursor();
      cursor.onerror = () => reject(cursor.error);
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (at === null || found.length >= limit) {
          resolve();
          return;
        }
        found.push([at.key, at.value]);
        at.continue();
      };
    });
    return found;
  }

  async remove(store, keys) {
    const tx = this.db.transaction(store, "readwrite");
    for (const key of keys) tx.objectStore(store).delete(key);
    await done(tx);
    this.changed(store);
  }

  async count(store) {
    const tx = this.db.transaction(store, "readonly");
    return request(tx.objectStore(store).count());
  }

  async clear() {
    const tx = this.db.transaction(["pings", "commands"], "readwrite");
    tx.objectStore("pings").clear();
    tx.objectStore("commands").clear();
    await done(tx);
    this.changed();
  }
}

// A fresh idempotency key: 128 random bits as hex, so two phones never share one.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
