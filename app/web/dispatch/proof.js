// A closed stop's proof of delivery, in its popup on the map: photos, the signature, parcel
// scans (and what did not match the order), the recipient, notes, the failure reason, when it
// was captured (in the organisation's zone), and where: the capture position is drawn on the
// map while the popup is open, and a capture farther from the stop's address than the
// configured distance (LASTMILE_PROOF_MAX_DISTANCE_M) is flagged.
//
// Read from GET /v1/stops/{id}/proof when the popup opens. Images use the proof's signed,
// short-lived URLs; everything the driver or the customer typed is shown as text.

import { el } from "../common/reconnect.js";

const CLOSED = new Set(["delivered", "failed"]);
const EARTH_RADIUS_M = 6_371_000;
const FAILURES = {
  not_home: "Nobody home",
  refused: "Refused",
  address_not_found: "Address not found",
  access_problem: "Could not get in",
  damaged: "Damaged",
  unsafe_to_leave: "Unsafe to leave",
  other: "Other",
};

// Great-circle distance in metres (haversine).
export function distanceM(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

export class ProofDetails {
  // `get(path)`: a JSON read with the page's key; `clock()`: the organisation's clock;
  // `map`: the Leaflet map the capture position is drawn on; `maxDistanceM`: the flag's limit.
  constructor({ get, clock, L, map, maxDistanceM }) {
    this.get = get;
    this.clock = clock;
    this.L = L;
    this.map = map;
    this.maxDistanceM = maxDistanceM;
    this.layer = null;
    map.on("popupclose", () => this.clearMark());
  }

  section(stop) {
    if (!CLOSED.has(stop.status)) return null;
    const body = el("div", { class: "tip-muted" }, "Reading…");
    const element = el("section", { class: "proof", dataset: { stopId: stop.id } },
      el("div", { class: "notices-title" }, "Proof"), body);
    this.get(`/v1/stops/${stop.id}/proof`)
      .then((proof) => this.draw(body, element, stop, proof))
      .catch(() => body.replaceChildren("No proof recorded for this stop."));
    return element;
  }

  draw(body, element, stop, proof) {
    const clock = this.clock();
    const rows = [];
    const outcome = proof.outcome === "delivered" ? "Delivered" : `Not delivered: ${FAILURES[proof.failure_code] || proof.failure_code || "no reason"}`;
    rows.push(el("div", { class: "proof-outcome" }, `${outcome} at ${clock.time(proof.captured_at)}`,
      proof.attempt > 1 ? ` (attempt ${proof.attempt})` : ""));
    if (proof.device_time) rows.push(el("div", { class: "tip-muted" }, `Phone's clock: ${clock.time(proof.device_time)}`));
    if (proof.recipient_name) rows.push(el("div", {}, "Received by ", el("strong", { class: "proof-recipient" }, proof.recipient_name)));
    if (proof.failure_text) rows.push(el("div", { class: "proof-failure" }, proof.failure_text));
    if (proof.notes) rows.push(el("div", { class: "proof-notes" }, proof.notes));
    const scans = [...(proof.scans || []), ...(proof.decoded_scans || [])];
    if (scans.length) rows.push(el("div", { class: "proof-scans" }, `Scanned: ${scans.join(", ")}`));
    if (proof.missing_parcels && proof.missing_parcels.length) {
      rows.push(el("div", { class: "tip-late proof-flag" }, `Not scanned: ${proof.missing_parcels.join(", ")}`));
    }
    if (proof.unexpected_parcels && proof.unexpected_parcels.length) {
      rows.push(el("div", { class: "tip-late proof-flag" }, `Not on the order: ${proof.unexpected_parcels.join(", ")}`));
    }
    const images = [
      ...(proof.photos || []).map((photo, n) => this.image(photo.thumbnail_url || photo.url, photo.url, `Photo ${n + 1}`)),
      ...(proof.signature_url ? [this.image(proof.signature_url, proof.signature_url, "Signature", "proof-signature")] : []),
    ];
    if (images.length) rows.push(el("div", { class: "proof-images" }, images));
    if (proof.lat !== null && proof.lat !== undefined && proof.lon !== null && proof.lon !== undefined) {
      const away = distanceM(stop.lat, stop.lon, proof.lat, proof.lon);
      const far = away > this.maxDistanceM;
      element.dataset.distanceM = String(Math.round(away));
      element.classList.toggle("proof-far", far);
      rows.push(el("div", { class: far ? "tip-late proof-flag proof-where" : "tip-muted proof-where" },
        far ? `Captured ${Math.round(away)} m from the address (more than ${this.maxDistanceM} m)`
          : `Captured ${Math.round(away)} m from the address`));
      this.mark(stop, proof, far);
    } else {
      rows.push(el("div", { class: "tip-muted proof-where" }, "No capture position"));
    }
    for (const override of proof.overrides || []) {
      rows.push(el("div", { class: "tip-muted" }, `Override: ${override.reason || ""}`));
    }
    body.className = "proof-body";
    body.replaceChildren(...rows);
  }

  image(src, href, label, extra = "") {
    const img = el("img", { src, alt: label, class: `proof-image ${extra}`.trim(), loading: "lazy" });
    return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, img);
  }

  mark(stop, proof, far) {
    this.clearMark();
    const L = this.L;
    const color = far ? "#dc2626" : "#16a34a";
    this.layer = L.layerGroup([
      L.polyline([[stop.lat, stop.lon], [proof.lat, proof.lon]], { color, weight: 2, dashArray: "4 4" }),
      L.circleMarker([proof.lat, proof.lon], { radius: 6, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1, className: "proof-position" }),
    ]).addTo(this.map);
  }

  clearMark() {
    if (this.layer !== null) this.layer.remove();
    this.layer = null;
  }
}
