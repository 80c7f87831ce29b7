"""esri-leaflet, OpenLayers and the ArcGIS Maps SDK for JavaScript, unmodified, in headless Chromium against the
real gateway: the page loads, every exportImage the client makes is answered with an image, nothing is logged as
an error, and the map area on screen shows what the service itself exports for the same bbox and size."""
from __future__ import annotations

import math
from urllib.parse import urlencode

import numpy as np
import pytest
from pyproj import Transformer
from rasterio.io import MemoryFile

from tests.clients import harness

MAP_BACKGROUND = (255, 0, 255)   # the pages' #map background: shows through the transparent nodata pixels
EXPORT = "/arcgis/rest/services/{}/ImageServer/exportImage"
# The centre of the dem service (UTM 11N, 380000..401600 x 4050800..4070000) in lon/lat, for the map views.
DEM_CENTRE_LON, DEM_CENTRE_LAT = Transformer.from_crs(32611, 4326, always_xy=True).transform(390800, 4060400)


@pytest.fixture(scope="module")
def pages():
    with harness.PageServer() as origin:
        yield origin


def service_url(gateway_url: str, name: str) -> str:
    return f"{gateway_url}/arcgis/rest/services/{name}/ImageServer"


def assert_client_was_served(run: harness.BrowserRun, gateway_url: str) -> list[dict]:
    """The run finished, every gateway request got 200 and the exportImage ones an image; returns them."""
    assert run.driver_error is None, run.driver_error
    assert run.ready and run.ready.get("ok"), run.ready
    assert run.page_errors == []
    assert run.console_errors() == []
    assert run.failed == []
    served = run.to(gateway_url)
    for request in served:
        assert request.get("status") == 200, request
    exports = [r for r in served if "/exportImage" in r["url"]]
    assert exports, served
    # The image comes straight from exportImage (f=image) or from the href an f=json export answered with.
    images = [r for r in served if _answered_with_image(r)]
    assert images, served
    for request in images:
        # LERC is raw pixels, not an image type; the SDK sniffs its magic bytes rather than the content type.
        raw = dict(harness.query_of(request)).get("format") == "lerc"
        assert request["responseContentType"] == "application/octet-stream" if raw else \
            request["responseContentType"].startswith("image/"), request
        assert max(request.get("bodyLength", 0), request.get("contentLength", 0)) > 100, request
    for request in exports:
        if dict(harness.query_of(request)).get("f") == "json":
            assert request["responseContentType"] == "application/json", request
    return served


def _answered_with_image(request: dict) -> bool:
    if "/arcgis/rest/directories/arcgisoutput/" in request["url"]:
        return True
    return "/exportImage" in request["url"] and dict(harness.query_of(request)).get("f") == "image"


def direct_export(http, service: str, bbox, size) -> bytes:
    """The service's own rendering of a 3857 bbox at a size, asked for plainly (PNG, so no JPEG loss)."""
    query = {"bbox": ",".join(repr(float(v)) for v in bbox), "bboxSR": "3857", "imageSR": "3857",
             "size": f"{size[0]},{size[1]}", "format": "png", "f": "image"}
    reply = http.get(EXPORT.format(service), params=query)
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png", reply.text[:500]
    return reply.content


@pytest.mark.parametrize("response_form", ["image", "json"])
def test_esri_leaflet_image_map_layer_shows_the_export(pages, gateway_url, http, response_form):
    query = {"url": service_url(gateway_url, "dem") + "/", "lat": DEM_CENTRE_LAT, "lon": DEM_CENTRE_LON,
             "zoom": 12, "f": response_form}
    run = harness.drive_page(f"{pages}/pages/leaflet.html?{urlencode(query)}")
    served = assert_client_was_served(run, gateway_url)
    # esri-leaflet reads the root once (for copyrightText), then exports the map's pixel bounds in 3857.
    assert [r["url"] for r in served if r["url"].endswith("/dem/ImageServer/?f=json")], served
    size = run.ready["size"]
    xmin, ymin, xmax, ymax = run.ready["bbox3857"]
    # At zoom 12 one screen pixel is 2πR/2^20 m in 3857; the view spans the whole 600x400 map.
    assert math.isclose((xmax - xmin) / size[0], 2 * math.pi * 6378137 / 2**20, rel_tol=1e-9)
    expected = harness.composite_over(direct_export(http, "dem", (xmin, ymin, xmax, ymax), size), MAP_BACKGROUND)
    harness.assert_shows_the_same_picture(run.screenshot, expected, max_mean_error=1.0, min_correlation=0.999)
    harness.check_recorded(f"esri-leaflet f={response_form}", served)


def test_openlayers_image_arcgis_rest_shows_the_export(pages, gateway_url, http):
    # 40 m per pixel in 3857: not a power-of-two zoom, so OpenLayers' own resolution logic is exercised.
    query = {"url": service_url(gateway_url, "dem"), "lat": DEM_CENTRE_LAT, "lon": DEM_CENTRE_LON,
             "resolution": 40}
    run = harness.drive_page(f"{pages}/pages/openlayers.html?{urlencode(query)}")
    served = assert_client_was_served(run, gateway_url)
    # OpenLayers reads no metadata: it only exports, an image 1.5 times the view, and shows its middle.
    assert all("/exportImage" in r["url"] for r in served)
    expected = harness.composite_over(direct_export(http, "dem", run.ready["bbox3857"], run.ready["size"]),
                                      MAP_BACKGROUND)
    harness.assert_shows_the_same_picture(run.screenshot, expected, max_mean_error=1.5, min_correlation=0.998)
    harness.check_recorded("openlayers", served)


def run_arcgis_sdk(pages: str, gateway_url: str, **layer_options) -> harness.BrowserRun:
    # A 3857 extent over the DEM; with no basemap the view takes the layer's own SR (UTM 11N) and projects it.
    query = {"url": service_url(gateway_url, "dem"), "extent": "-13172000,4386640,-13146400,4402000", **layer_options}
    return harness.drive_page(f"{pages}/pages/arcgis.html?{urlencode(query)}")


def assert_sdk_loaded_the_service(run: harness.BrowserRun, served: list[dict]) -> None:
    assert run.ready["loaded"] and run.ready["pixelType"] == "f32" and run.ready["bandCount"] == 1
    roots = [r for r in served if r["url"].split("?")[0].endswith("/dem/ImageServer")]
    assert roots and dict(harness.query_of(roots[0]))["f"] == "json"


def test_arcgis_maps_sdk_imagery_layer_shows_the_export(pages, gateway_url, http):
    run = run_arcgis_sdk(pages, gateway_url)
    served = assert_client_was_served(run, gateway_url)
    assert_sdk_loaded_the_service(run, served)
    exports = [dict(harness.query_of(r)) for r in served if "/exportImage" in r["url"]]
    assert [q["format"] for q in exports] == ["jpgpng"]
    sent = exports[0]
    height = int(sent["size"].split(",")[1])
    direct = http.get(EXPORT.format("dem"), params={"bbox": sent["bbox"], "bboxSR": sent["bboxSR"],
                                                    "imageSR": sent["imageSR"], "size": sent["size"],
                                                    "format": "png", "f": "image"})
    expected = harness.composite_over(direct.content, MAP_BACKGROUND)
    # The bottom strip is the SDK's mandatory "Powered by Esri" attribution, drawn over the map.
    rows = height - 20
    harness.assert_shows_the_same_picture(run.screenshot[:rows], expected[:rows], max_mean_error=1.5,
                                          min_correlation=0.998)
    harness.check_recorded("arcgis-maps-sdk-js", served)


def test_arcgis_maps_sdk_lerc_pixels_are_the_service_values(pages, gateway_url, http):
    run = run_arcgis_sdk(pages, gateway_url, format="lerc")
    served = assert_client_was_served(run, gateway_url)
    assert_sdk_loaded_the_service(run, served)
    # With format "lerc" the SDK asks for raw pixels as LERC2, decodes them itself and renders on the client.
    lerc = [r for r in served if dict(harness.query_of(r)).get("format") == "lerc"]
    assert lerc and len(lerc) == len([r for r in served if "/exportImage" in r["url"]]), served
    sent = dict(harness.query_of(lerc[-1]))
    assert sent["f"] == "image" and sent["lercVersion"] == "2"
    assert http.get(lerc[-1]["url"]).content[:6] == b"Lerc2 "
    block = run.ready["pixelBlock"]
    assert block is not None, run.ready
    width, height = map(int, sent["size"].split(","))
    assert (block["width"], block["height"]) == (width, height)
    # Those decoded pixels are the service's float values for the grid the SDK asked for (within its tolerance).
    direct = http.get(EXPORT.format("dem"), params={**{k: sent[k] for k in ("bbox", "bboxSR", "imageSR", "size")},
                                                    "interpolation": sent.get("interpolation", ""),
                                                    "format": "tiff", "f": "image"})
    with MemoryFile(direct.content) as memory, memory.open() as tiff:
        values, nodata = tiff.read(1), tiff.nodata
    decoded = np.asarray(block["band0"], dtype=np.float32).reshape(height, width)
    valid = values != nodata
    assert valid.mean() > 0.5
    # The view holds nodata, so the decoded block carries a mask, and it marks exactly the service's nodata.
    assert block["mask"] is not None
    np.testing.assert_array_equal(np.asarray(block["mask"]).reshape(height, width).astype(bool), valid)
    tolerance = float(sent.get("compressionTolerance", 0))
    np.testing.assert_allclose(decoded[valid], values[valid], rtol=0, atol=tolerance * 1.001)
    # And it drew them: the map area is not the page background, and shows the terrain's variation.
    shown = run.screenshot.astype(np.int16)
    background = np.all(shown == MAP_BACKGROUND, axis=-1)
    assert background.mean() < 0.5 and shown[~background].std() > 20
    harness.check_recorded("arcgis-maps-sdk-js format=lerc", served)
