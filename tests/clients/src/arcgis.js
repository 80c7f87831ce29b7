// ArcGIS Maps SDK for JavaScript's ImageryLayer exactly as a user writes it (assets served locally: no CDN here).
// The page reports once the view has finished updating, with the pixels the layer fetched for client rendering.
import esriConfig from "@arcgis/core/config.js";
import * as reactiveUtils from "@arcgis/core/core/reactiveUtils.js";
import Extent from "@arcgis/core/geometry/Extent.js";
import ImageryLayer from "@arcgis/core/layers/ImageryLayer.js";
import EsriMap from "@arcgis/core/Map.js";
import MapView from "@arcgis/core/views/MapView.js";

esriConfig.assetsPath = new URL("../node_modules/@arcgis/core/assets", location.href).href;
const query = new URLSearchParams(location.search);
const [xmin, ymin, xmax, ymax] = query.get("extent").split(",").map(Number);

async function main() {
  // format "lerc" is how a user asks for client-side rendering: raw pixels the SDK decodes and draws itself.
  // rasterFunction: a template of the service by name, as a user picks one from the layer's rasterFunctionInfos.
  const layer = new ImageryLayer({
    url: query.get("url"),
    ...(query.get("format") ? { format: query.get("format") } : {}),
    ...(query.get("rasterFunction") ? { rasterFunction: { functionName: query.get("rasterFunction") } } : {}),
    // renderer: a renderer's JSON as a user writes it (autocast by its type), drawn by the server as a rule.
    ...(query.get("renderer") ? { renderer: JSON.parse(query.get("renderer")) } : {}),
  });
  const view = new MapView({
    container: "map",
    map: new EsriMap({ layers: [layer] }),
    extent: new Extent({ xmin, ymin, xmax, ymax, spatialReference: { wkid: 3857 } }),
    ui: { components: [] },  // widgets would cover map pixels
  });
  await view.when();
  const layerView = await view.whenLayerView(layer);
  await reactiveUtils.whenOnce(() => !view.updating && !layerView.updating);
  const block = layerView.pixelData?.pixelBlock ?? null;
  window.harnessReady = {
    ok: true,
    loaded: layer.loaded,
    pixelType: layer.pixelType,
    bandCount: layer.serviceRasterInfo?.bandCount,
    format: layer.format,
    viewExtent: [view.extent.xmin, view.extent.ymin, view.extent.xmax, view.extent.ymax],
    size: [view.width, view.height],
    pixelBlock: block && {
      width: block.width, height: block.height, pixelType: block.pixelType,
      band0: Array.from(block.pixels[0]), mask: block.mask ? Array.from(block.mask) : null,
    },
  };
}
main().catch((error) => { window.harnessReady = { ok: false, error: String(error?.stack ?? error) }; });
