// The proof of delivery upload for one stop, as multipart parts the outbox can store (Blobs
// and strings). Returns null while the server has no proof capture API to send them to.

export function proofParts(stop, captured) {
  return null;
}
