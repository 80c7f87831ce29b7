"""esri-leaflet, OpenLayers and the ArcGIS Maps SDK for JavaScript, unmodified, in headless Chromium against the
real gateway: the page loads, every exportImage the client makes is answered with an image, nothing is logged as
an error, and the map area on screen shows what the service itself exports for the same bbox and size."""
from __future__ import annotations

import math
from urllib.parse import urlencode

import pytest
from pyproj import Transformer

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
        assert request["responseContentType"].startswith("image/"), request
        assert request["bodyLength"] > 100, request
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
