// The driver app's service worker: the app opens with no network. It keeps a copy of the page
// and its assets and answers from the network first (so a new version shows at once when
// online) and from the copy when the network fails. The API is never cached: what the app
// sends waits in its own outbox (IndexedDB), and what it reads must be current.

const CACHE = "lastmile-driver-v1";
const SHELL = [
  "/driver",
  "/static/driver/main.js",
  "/static/driver/capture.js",
  "/static/driver/commands.js",
  "/static/driver/map.js",
  "/static/driver/outbox.js",
  "/static/driver/proof.js",
  "/static/driver/socket.js",
  "/static/driver/stop.js",
  "/static/driver/driver.css",
  "/static/driver/manifest.json",
  "/static/driver/icon.svg",
  "/static/driver/icon-192.png",
  "/static/driver/icon-512.png",
  "/static/common/pages.css",
  "/static/common/reconnect.js",
  "/static/common/fragment.js",
  "/static/common/instructions.js",
  "/static/leaflet/leaflet.js",
  "/static/leaflet/leaflet.css",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

function cacheable(url) {
  return url.origin === self.location.origin && (url.pathname === "/driver" || url.pathname.startsWith("/static/"));
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || !cacheable(url)) return; // the API goes straight to the network
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() =>
        caches.match(url.pathname).then((cached) => cached || new Response("offline", { status: 503 })),
      ),
  );
});
