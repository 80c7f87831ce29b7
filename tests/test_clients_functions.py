"""Rendering rules from real clients, unmodified, in headless Chromium: esri-leaflet's `setRenderingRule`, the
ArcGIS Maps SDK's `rasterFunction` (a service template by name) and its renderers show what the service exports for
the same rule."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
import pytest

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import DEMO_TEMPLATES, add_demo_templates, register
from tests.clients import harness
from tests.conftest import _Serve
from tests.test_clients_browser import (DEM_CENTRE_LAT, DEM_CENTRE_LON, EXPORT, MAP_BACKGROUND,
                                        assert_client_was_served)

HILLSHADE = {"rasterFunction": "Hillshade", "rasterFunctionArguments": {"Azimuth": 315, "Altitude": 45, "ZFactor": 1}}


@pytest.fixture(scope="module")
def served(tmp_path_factory, dem_path):
    """The test DEM with the demo elevation templates, served by `imgsvc serve`: (gateway URL, HTTP client)."""
    folder = tmp_path_factory.mktemp("client-rules")
    catalog = Catalog(folder / "catalog.sqlite")
    register(catalog, "dem", dem_path, ServiceSettings(service_data_type="esriImageServiceDataTypeElevation"))
    add_demo_templates(catalog, {"dem": DEMO_TEMPLATES["elevation"]})
    with _Serve(folder / "catalog.sqlite", folder / "output") as url, httpx.Client(base_url=url, timeout=60) as http:
        yield url, http


@pytest.fixture(scope="module")
def pages():
    with harness.PageServer() as origin:
        yield origin


def exported_with(http, sent: dict, rule: dict) -> bytes:
    """The service's own PNG of what a client asked for, with ``rule``."""
    query = {key: sent[key] for key in ("bbox", "bboxSR", "imageSR", "size")}
    reply = http.get(EXPORT.format("dem"), params={**query, "renderingRule": json.dumps(rule), "format": "png",
                                                   "f": "image"})
    assert reply.headers["content-type"] == "image/png", reply.text[:300]
    return reply.content


def test_esri_leaflet_rendering_rule_shows_the_services_hillshade(pages, served):
    url, http = served
    query = {"url": f"{url}/arcgis/rest/services/dem/ImageServer/", "lat": DEM_CENTRE_LAT, "lon": DEM_CENTRE_LON,
             "zoom": 12, "renderingRule": json.dumps(HILLSHADE)}
    run = harness.drive_page(f"{pages}/pages/leaflet.html?{urlencode(query)}")
    requests = assert_client_was_served(run, url)
    exports = [dict(harness.query_of(r)) for r in requests if "/exportImage" in r["url"]]
    assert exports and all(json.loads(e["renderingRule"]) == HILLSHADE for e in exports)
    expected = harness.composite_over(exported_with(http, exports[-1], HILLSHADE), MAP_BACKGROUND)
    harness.assert_shows_the_same_picture(run.screenshot, expected, max_mean_error=1.0, min_correlation=0.999)


def test_arcgis_maps_sdk_raster_function_template_by_name(pages, served):
    url, http = served
    query = {"url": f"{url}/arcgis/rest/services/dem/ImageServer", "extent": "-13172000,4386640,-13146400,4402000",
             "rasterFunction": "Shaded Relief"}
    run = harness.drive_page(f"{pages}/pages/arcgis.html?{urlencode(query)}")
    requests = assert_client_was_served(run, url)
    exports = [dict(harness.query_of(r)) for r in requests if "/exportImage" in r["url"]]
    assert exports and all(json.loads(e["renderingRule"])["rasterFunction"] == "Shaded Relief" for e in exports)
    sent = exports[-1]
    expected = harness.composite_over(exported_with(http, sent, json.loads(sent["renderingRule"])), MAP_BACKGROUND)
    rows = int(sent["size"].split(",")[1]) - 20  # the SDK's attribution strip is drawn over the bottom rows
    harness.assert_shows_the_same_picture(run.screenshot[:rows], expected[:rows], max_mean_error=1.5,
                                          min_correlation=0.998)


@pytest.mark.parametrize("renderer, function", [
    ({"type": "raster-stretch", "stretchType": "standard-deviation", "numberOfStandardDeviations": 2}, "Stretch"),
    ({"type": "raster-shaded-relief", "altitude": 45, "azimuth": 315, "hillshadeType": "traditional",
      "scalingType": "none", "zFactor": 1}, "Hillshade"),
])
def test_arcgis_maps_sdk_renderers_are_drawn_by_the_server(pages, served, renderer, function):
    url, http = served
    query = {"url": f"{url}/arcgis/rest/services/dem/ImageServer", "extent": "-13172000,4386640,-13146400,4402000",
             "renderer": json.dumps(renderer)}
    run = harness.drive_page(f"{pages}/pages/arcgis.html?{urlencode(query)}")
    requests = assert_client_was_served(run, url)
    exports = [dict(harness.query_of(r)) for r in requests if "/exportImage" in r["url"]]
    rules = [json.loads(e["renderingRule"]) for e in exports if "renderingRule" in e]
    assert rules and function in json.dumps(rules[-1]), exports
    sent = exports[-1]
    expected = harness.composite_over(exported_with(http, sent, json.loads(sent["renderingRule"])), MAP_BACKGROUND)
    rows = int(sent["size"].split(",")[1]) - 20
    harness.assert_shows_the_same_picture(run.screenshot[:rows], expected[:rows], max_mean_error=1.5,
                                          min_correlation=0.998)
