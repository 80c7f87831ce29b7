// OpenLayers' ImageArcGISRest source exactly as a user writes it; the page reports after the first full render.
import Map from "ol/Map.js";
import View from "ol/View.js";
import ImageLayer from "ol/layer/Image.js";
import ImageArcGISRest from "ol/source/ImageArcGISRest.js";
import { fromLonLat } from "ol/proj.js";

const query = new URLSearchParams(location.search);
const source = new ImageArcGISRest({ url: query.get("url"), crossOrigin: "anonymous" });
const map = new Map({
  target: "map",
  controls: [],  // controls would cover map pixels
  layers: [new ImageLayer({ source })],
  view: new View({
    center: fromLonLat([Number(query.get("lon")), Number(query.get("lat"))]),
    resolution: Number(query.get("resolution")),
  }),
});
let errors = 0;
source.on("imageloaderror", () => { errors += 1; window.harnessReady = { ok: false, error: "imageloaderror" }; });
map.once("rendercomplete", () => {
  if (errors) return;
  window.harnessReady = { ok: true, size: map.getSize(), bbox3857: map.getView().calculateExtent(map.getSize()),
                          resolution: map.getView().getResolution() };
});
