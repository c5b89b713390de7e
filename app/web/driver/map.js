// The small map of the driver app: the open stops, numbered, the line between them in order,
// and the phone's own position. Leaflet, the same library and tiles as the dispatcher's map.

import { baseMap, el } from "/static/common/reconnect.js";

export class RouteMap {
  constructor(L, element, tileUrl) {
    this.L = L;
    this.map = baseMap(L, element, tileUrl, { zoomControl: false });
    this.map.setView([0, 0], 2);
    this.layer = L.layerGroup().addTo(this.map);
    this.position = null;
    this.fitted = "";
  }

  show(stops) {
    const L = this.L;
    this.layer.clearLayers();
    const points = stops.map((stop) => [stop.lat, stop.lon]);
    stops.forEach((stop, n) => {
      const icon = L.divIcon({
        className: n === 0 ? "stop-pin next" : "stop-pin",
        html: "", // the number is set as text below, never as HTML
        iconSize: [24, 24],
      });
      const marker = L.marker([stop.lat, stop.lon], { icon, title: stop.address, keyboard: false });
      marker.on("add", () => {
        marker.getElement().replaceChildren(el("span", {}, String(stop.seq)));
      });
      marker.addTo(this.layer);
    });
    if (points.length > 1) L.polyline(points, { color: "#4f46e5", weight: 3, opacity: 0.7 }).addTo(this.layer);
    // Fit once per set of stops, so the driver's own zoom is kept between position updates.
    const key = stops.map((stop) => stop.id).join(",");
    if (points.length && key !== this.fitted) {
      this.fitted = key;
      this.map.fitBounds(points, { padding: [24, 24], maxZoom: 16 });
    }
  }

  me(lat, lon) {
    if (this.position === null) {
      this.position = this.L.circleMarker([lat, lon], { radius: 7, color: "#ffffff", weight: 2, fillColor: "#2563eb", fillOpacity: 1 }).addTo(this.map);
    } else {
      this.position.setLatLng([lat, lon]);
    }
  }
}
