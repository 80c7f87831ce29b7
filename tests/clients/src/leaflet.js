// esri-leaflet's ImageMapLayer exactly as a user writes it; the page only reports when the image is on screen.
import L from "leaflet";
import { imageMapLayer } from "esri-leaflet";

const query = new URLSearchParams(location.search);
const map = L.map("map", {
  center: [Number(query.get("lat")), Number(query.get("lon"))],
  zoom: Number(query.get("zoom")),
  // Controls would cover map pixels and animations would leave the image half faded in the screenshot.
  zoomControl: false, attributionControl: false, fadeAnimation: false, zoomAnimation: false,
});
const layer = imageMapLayer({ url: query.get("url"), f: query.get("f") || "image" });
// Rules and times the way a user switches them on: the layer's setters.
if (query.get("renderingRule")) layer.setRenderingRule(JSON.parse(query.get("renderingRule")));
if (query.get("mosaicRule")) layer.setMosaicRule(JSON.parse(query.get("mosaicRule")));
if (query.get("timeFrom")) layer.setTimeRange(new Date(Number(query.get("timeFrom"))), new Date(Number(query.get("timeTo"))));
layer.addTo(map);
layer.on("load", (event) => {
  const bounds = map.getPixelBounds();
  window.harnessReady = {
    ok: true, zoom: map.getZoom(), size: [map.getSize().x, map.getSize().y],
    bbox3857: [map.options.crs.project(map.getBounds().getSouthWest()),
               map.options.crs.project(map.getBounds().getNorthEast())].flatMap((p) => [p.x, p.y]),
    pixelBounds: [bounds.min.x, bounds.min.y, bounds.max.x, bounds.max.y],
  };
});
layer.on("requesterror", (event) => { window.harnessReady = { ok: false, error: String(event.message) }; });
