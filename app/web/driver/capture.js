// What the driver captures at a stop: photos (the camera through getUserMedia, or the phone's
// own camera app through <input capture>), a signature drawn with a finger, and parcel codes
// (the browser's BarcodeDetector where it has one, typed entry everywhere).
//
// Everything stays on the phone as Blobs until the stop's outcome is queued.

import { el } from "/static/common/reconnect.js";

const PHOTO_MAX_PX = 2048; // camera frames are scaled down to this on their long side
const THUMB_PX = 96;
const MAX_PHOTOS = 10;
const MAX_SCANS = 200;
const MAX_LABELS = 4;

export class Capture {
  constructor(root) {
    this.$ = (id) => root.querySelector(`#${id}`);
    this.photos = [];
    this.scans = [];
    this.expected = []; // the order's parcel codes
    this.labels = []; // photos of parcel labels: the server reads their barcodes
    this.stream = null;
    this.scanStream = null;
    this.signature = new SignaturePad(this.$("signature"));
    this.$("signature-clear").addEventListener("click", () => this.signature.clear());
    this.$("label-input").addEventListener("change", (event) => {
      for (const file of event.target.files) this.addLabel(file);
      event.target.value = "";
    });
    this.$("photo-input").addEventListener("change", (event) => {
      for (const file of event.target.files) this.addPhoto(file);
      event.target.value = "";
    });
    if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      this.$("camera-open").hidden = false;
      this.$("camera-open").addEventListener("click", () => this.openCamera());
      this.$("camera-shoot").addEventListener("click", () => this.shoot());
      this.$("camera-close").addEventListener("click", () => this.closeCamera());
    }
    this.$("scan-add").addEventListener("click", () => this.addTyped());
    this.$("scan-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.addTyped();
      }
    });
    if ("BarcodeDetector" in window) {
      this.$("scan-open").hidden = false;
      this.$("scan-open").addEventListener("click", () => this.toggleScanner());
    }
  }

  reset() {
    this.closeCamera();
    this.stopScanner();
    this.photos = [];
    this.scans = [];
    this.labels = [];
    this.$("labels").textContent = "";
    this.signature.clear();
    this.$("photos").replaceChildren();
    this.drawScans();
    this.$("scan-input").value = "";
  }

  addLabel(blob) {
    if (this.labels.length >= MAX_LABELS) return;
    this.labels.push(blob);
    this.$("labels").textContent = `${this.labels.length} label photo(s): read by the server`;
  }

  addPhoto(blob) {
    if (this.photos.length >= MAX_PHOTOS) return;
    this.photos.push(blob);
    const thumb = el("canvas", { class: "thumb", width: THUMB_PX, height: THUMB_PX, "aria-label": `Photo ${this.photos.length}` });
    this.$("photos").append(thumb);
    createImageBitmap(blob)
      .then((bitmap) => {
        const scale = Math.max(THUMB_PX / bitmap.width, THUMB_PX / bitmap.height);
        const w = bitmap.width * scale;
        const h = bitmap.height * scale;
        thumb.getContext("2d").drawImage(bitmap, (THUMB_PX - w) / 2, (THUMB_PX - h) / 2, w, h);
        bitmap.close();
      })
      .catch(() => thumb.classList.add("thumb-unreadable")); // e.g. HEIC: the server decodes it
  }

  async openCamera() {
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "environment" },
        audio: false,
      });
    } catch (error) {
      this.$("stop-error").textContent = `The camera is not available (${error.name}); use "Add photo".`;
      return;
    }
    const video = this.$("camera-video");
    video.srcObject = this.stream;
    this.$("camera").hidden = false;
    await video.play();
  }

  async shoot() {
    const video = this.$("camera-video");
    if (!video.videoWidth) return;
    const scale = Math.min(1, PHOTO_MAX_PX / Math.max(video.videoWidth, video.videoHeight));
    const canvas = el("canvas", {
      width: Math.round(video.videoWidth * scale),
      height: Math.round(video.videoHeight * scale),
    });
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    if (blob) this.addPhoto(blob);
  }

  closeCamera() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.$("camera-video").srcObject = null;
    this.$("camera").hidden = true;
  }

  // The parcels the order has; each is ticked off as it is scanned.
  expect(codes) {
    this.expected = [...codes];
    this.drawScans();
  }

  addScan(code) {
    const text = code.trim().slice(0, 200);
    if (!text || this.scans.includes(text) || this.scans.length >= MAX_SCANS) return;
    this.scans.push(text);
    this.drawScans();
  }

  // Expected parcels (scanned or not yet), then codes that are not on the order.
  drawScans() {
    const items = this.expected.map((code) => {
      const scanned = this.scans.includes(code);
      return el("li", { class: scanned ? "scan scanned" : "scan missing", dataset: { code } },
        `${scanned ? "✓" : "○"} ${code}`);
    });
    for (const code of this.scans) {
      if (!this.expected.includes(code)) {
        items.push(el("li", { class: "scan unexpected", dataset: { code } }, `! ${code} (not on this order)`));
      }
    }
    this.$("scans").replaceChildren(...items);
    const found = this.expected.filter((code) => this.scans.includes(code)).length;
    this.$("scan-summary").textContent = this.expected.length
      ? `${found} of ${this.expected.length} parcels scanned`
      : "";
  }

  addTyped() {
    this.addScan(this.$("scan-input").value);
    this.$("scan-input").value = "";
  }

  async toggleScanner() {
    if (this.scanStream) {
      this.stopScanner();
      return;
    }
    const video = this.$("scan-video");
    try {
      this.scanStream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (error) {
      this.$("stop-error").textContent = `The camera is not available (${error.name}); type the code.`;
      return;
    }
    video.srcObject = this.scanStream;
    video.hidden = false;
    await video.play();
    const detector = new window.BarcodeDetector();
    const look = async () => {
      if (!this.scanStream) return;
      try {
        for (const code of await detector.detect(video)) this.addScan(code.rawValue);
      } catch {
        // a frame that could not be read; the next one may
      }
      setTimeout(look, 250);
    };
    look();
  }

  stopScanner() {
    if (this.scanStream) for (const track of this.scanStream.getTracks()) track.stop();
    this.scanStream = null;
    const video = this.$("scan-video");
    video.srcObject = null;
    video.hidden = true;
  }
}

// A canvas the driver's or recipient's finger draws on (pointer events: touch, pen, mouse).
class SignaturePad {
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.drawn = false;
    this.last = null;
    canvas.style.touchAction = "none"; // the finger draws instead of scrolling the page
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      this.last = this.point(event);
      this.dot(this.last);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (this.last === null) return;
      const next = this.point(event);
      this.line(this.last, next);
      this.last = next;
    });
    const end = () => {
      this.last = null;
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    this.clear();
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * this.canvas.width) / box.width,
      y: ((event.clientY - box.top) * this.canvas.height) / box.height,
    };
  }

  dot(at) {
    this.context.fillStyle = "#111827";
    this.context.beginPath();
    this.context.arc(at.x, at.y, 1.5, 0, 2 * Math.PI);
    this.context.fill();
    this.drawn = true;
  }

  line(from, to) {
    const c = this.context;
    c.strokeStyle = "#111827";
    c.lineWidth = 3;
    c.lineCap = "round";
    c.beginPath();
    c.moveTo(from.x, from.y);
    c.lineTo(to.x, to.y);
    c.stroke();
    this.drawn = true;
  }

  // A signature drawn before (a refused proof's PNG), back on the pad.
  async load(png) {
    const bitmap = await createImageBitmap(png);
    this.context.drawImage(bitmap, 0, 0, this.canvas.width, this.canvas.height);
    bitmap.close();
    this.drawn = true;
  }

  clear() {
    this.context.fillStyle = "#ffffff";
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = false;
  }

  // The signature as a PNG Blob, or null when nothing was drawn.
  png() {
    if (!this.drawn) return Promise.resolve(null);
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}
