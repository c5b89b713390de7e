// The proof of delivery for one stop as the parts of POST /v1/driver/stops/{id}/proof
// (docs/proofs.md): one request stores the proof and closes the stop as delivered or failed.
// Parts are [name, value, filename?] triples of strings and Blobs, which IndexedDB keeps as
// they are, so a proof captured offline waits in the outbox with its photos.

const NOTES_MAX = 2000;
const FAILURE_TEXT_MAX = 500;
const NAME_MAX = 200;

export function proofParts(stop, captured) {
  const parts = [["outcome", captured.outcome]];
  captured.photos.forEach((photo, n) => {
    parts.push(["photo", photo, photo.name || `photo-${n + 1}.${extension(photo.type)}`]);
  });
  (captured.labels || []).forEach((label, n) => {
    parts.push(["label_photo", label, label.name || `label-${n + 1}.${extension(label.type)}`]);
  });
  if (captured.signature) parts.push(["signature", captured.signature, "signature.png"]);
  if (captured.recipient) parts.push(["recipient_name", captured.recipient.slice(0, NAME_MAX)]);
  if (captured.note) parts.push(["notes", captured.note.slice(0, NOTES_MAX)]);
  for (const code of captured.scans) parts.push(["scan", code]);
  if (captured.position) {
    parts.push(["lat", String(captured.position.lat)], ["lon", String(captured.position.lon)]);
    if (captured.position.accuracy_m !== null) parts.push(["accuracy_m", String(captured.position.accuracy_m)]);
  }
  parts.push(["device_time", captured.deviceTime]);
  if (captured.ageVerified) parts.push(["age_verified", "true"]);
  if (captured.outcome === "failed") {
    parts.push(["failure_code", captured.reason]);
    if (captured.note) parts.push(["failure_text", captured.note.slice(0, FAILURE_TEXT_MAX)]);
  }
  return { path: `/v1/driver/stops/${stop.id}/proof`, parts };
}

function extension(type) {
  return { "image/png": "png", "image/webp": "webp", "image/heic": "heic", "image/heif": "heif" }[type] || "jpg";
}
