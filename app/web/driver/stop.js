// The stop dialog: the outcome of one stop (delivered, or not and why) with its proof — the
// recipient, a note, photos, a signature, parcel scans, label photos, the ID check — queued as
// one proof upload that also closes the stop (docs/proofs.md).
//
// A proof the server refused (what the order requires is missing) is kept as a draft of its
// stop: reopening the stop brings it back with the reason, to add what is missing.

import { Capture } from "./capture.js";
import { proofParts } from "./proof.js";

const $ = (id) => document.getElementById(id);

export class StopDialog {
  // `queue(method, path, json, effect, label, parts)`: puts a command in the outbox;
  // `position()`: the phone's last fix, where the proof is captured (or null).
  constructor({ queue, position }) {
    this.queue = queue;
    this.position = position;
    this.capture = new Capture(document);
    this.stop = null;
    this.drafts = new Map(); // stop id -> {parts, reason}
    for (const radio of document.querySelectorAll('input[name="outcome"]')) {
      radio.addEventListener("change", () => {
        $("fail-fields").hidden = !this.failing();
      });
    }
    $("stop-cancel").addEventListener("click", () => this.close());
    // Closed by the back gesture or Escape too: the camera must not stay on.
    $("stop-dialog").addEventListener("close", () => this.capture.reset());
    $("stop-submit").addEventListener("click", () => this.submit());
  }

  failing() {
    return $("outcome-set").querySelector('input[value="fail"]').checked;
  }

  open(stop) {
    this.stop = stop;
    this.capture.reset();
    this.capture.expect(stop.barcodes || []);
    $("stop-form").reset();
    $("fail-fields").hidden = true;
    $("stop-error").textContent = "";
    $("stop-dialog-title").textContent = `Stop ${stop.seq}: ${stop.customer_name || stop.order_ref}`;
    $("stop-dialog-address").textContent = stop.address;
    const draft = this.drafts.get(stop.id);
    if (draft) this.restore(draft);
    $("stop-dialog").showModal();
  }

  // Keep a refused proof of `stopId` to be completed.
  refused(stopId, parts, reason) {
    this.drafts.set(stopId, { parts, reason });
  }

  restore(draft) {
    const text = { recipient_name: "recipient", notes: "note" };
    for (const [name, value] of draft.parts) {
      if (name === "photo") this.capture.addPhoto(value);
      else if (name === "label_photo") this.capture.addLabel(value);
      else if (name === "scan") this.capture.addScan(value);
      else if (name === "signature") this.capture.signature.load(value);
      else if (name === "age_verified") $("age-verified").checked = true;
      else if (text[name]) $(text[name]).value = value;
    }
    $("stop-error").textContent = `Refused: ${draft.reason}`;
  }

  close() {
    this.capture.reset();
    $("stop-dialog").close();
    this.stop = null;
  }

  async submit() {
    const stop = this.stop;
    if (stop === null) return;
    const failed = this.failing();
    const capture = this.capture;
    const captured = {
      outcome: failed ? "failed" : "delivered",
      reason: failed ? $("reason").value : null,
      recipient: $("recipient").value.trim(),
      note: $("note").value.trim(),
      photos: capture.photos,
      signature: await capture.signature.png(),
      scans: capture.scans,
      ageVerified: $("age-verified").checked,
      labels: capture.labels,
      position: this.position(),
      deviceTime: new Date().toISOString(),
    };
    if (failed && captured.reason === "other" && !captured.note) {
      $("stop-error").textContent = "Say in the note what went wrong.";
      return;
    }
    const proof = proofParts(stop, captured);
    await this.queue(
      "POST",
      proof.path,
      null,
      { stopId: stop.id, status: captured.outcome },
      `${failed ? "The failure" : "The delivery"} at stop ${stop.seq}`,
      proof.parts,
    );
    this.drafts.delete(stop.id);
    this.close();
  }
}
