"""Mosaic datasets from real clients, unmodified: the ArcGIS API for Python's query, filter_by and mosaic_by, and
esri-leaflet's setMosaicRule and setTimeRange in headless Chromium, against the three-scene mosaic of
tests/test_mosaic_dataset.py; each answer is the service's own for the request the client sent."""
from __future__ import annotations

import io
import json
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from PIL import Image
from pyproj import Transformer

from tests.clients import harness
from tests.conftest import _Serve
from tests.test_clients_browser import EXPORT, MAP_BACKGROUND, assert_client_was_served
from tests.test_mosaic_dataset import RES, X0, Y0, build_scenes_catalog

TO_3857 = Transformer.from_crs(32611, 3857, always_xy=True)
TO_4326 = Transformer.from_crs(32611, 4326, always_xy=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("client-mosaic")
    db = build_scenes_catalog(folder)
    with _Serve(db, folder / "output") as url, httpx.Client(base_url=url, timeout=60) as http:
        yield url, http


def png_pixels(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


def test_arcgis_python_query_filter_by_and_mosaic_by(served):
    url, http = served
    x0, y0 = TO_3857.transform(X0 + RES * 10, Y0 - RES * 130)
    x1, y1 = TO_3857.transform(X0 + RES * 170, Y0 - RES * 10)
    bbox = {"xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "spatialReference": {"wkid": 3857}}
    with harness.RecordingProxy(url) as proxy, tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(harness.ARCGIS_PYTHON), str(harness.CLIENTS_DIR / "arcgis_mosaic.py"),
                               f"{proxy.url}/arcgis/rest/services/mos/ImageServer", json.dumps(bbox), tmp],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-4000:]
        queried = json.loads(Path(tmp, "query.json").read_text())
        images = {name: Path(tmp, f"{name}.png").read_bytes() for name in ("filtered", "mosaicked")}
        exports = [dict(harness.query_of(r)) for r in proxy.requests if "/exportImage" in r["url"]]
    assert [(q["Name"], q["Year"]) for q in queried] == [("scene_c", 2021), ("scene_b", 2020)]
    assert len(exports) == 2
    for sent, (name, png) in zip(exports, images.items()):
        rule = json.loads(sent["mosaicRule"])
        direct = http.get(EXPORT.format("mos"), params={**{k: sent[k] for k in ("bbox", "bboxSR", "imageSR", "size")},
                                                        "mosaicRule": sent["mosaicRule"], "format": "png",
                                                        "f": "image"})
        assert np.array_equal(png_pixels(png), png_pixels(direct.content)), (name, rule)
    filtered_rule, mosaicked_rule = (json.loads(e["mosaicRule"]) for e in exports)
    assert "alpha" in json.dumps(filtered_rule) or filtered_rule.get("lockRasterIds") == [1, 3]
    assert mosaicked_rule["mosaicMethod"] == "esriMosaicAttribute" and mosaicked_rule["sortField"] == "Year"
    # scene_c (2021) is on top where the three overlap once mosaicked by Year towards 2021.
    plain = png_pixels(http.get(EXPORT.format("mos"), params={**{k: exports[1][k] for k in
                                                                ("bbox", "bboxSR", "imageSR", "size")},
                                                             "format": "png", "f": "image"}).content)
    assert not np.array_equal(png_pixels(images["mosaicked"]), plain)


@pytest.fixture(scope="module")
def pages():
    with harness.PageServer() as origin:
        yield origin


@pytest.mark.parametrize("extra", [
    {"mosaicRule": json.dumps({"mosaicMethod": "esriMosaicLockRaster", "lockRasterIds": [3, 2]})},
    {"timeFrom": 1577836800000, "timeTo": 1609459199000},
], ids=["setMosaicRule", "setTimeRange"])
def test_esri_leaflet_mosaic_rule_and_time_range(pages, served, extra):
    url, http = served
    lon, lat = TO_4326.transform(X0 + RES * 90, Y0 - RES * 70)
    query = {"url": f"{url}/arcgis/rest/services/mos/ImageServer/", "lat": lat, "lon": lon, "zoom": 14, **extra}
    run = harness.drive_page(f"{pages}/pages/leaflet.html?{urlencode(query)}")
    requests = assert_client_was_served(run, url)
    sent = [dict(harness.query_of(r)) for r in requests if "/exportImage" in r["url"]][-1]
    if "mosaicRule" in extra:
        assert json.loads(sent["mosaicRule"])["lockRasterIds"] == [3, 2]
    else:
        assert sent["time"] == f"{extra['timeFrom']},{extra['timeTo']}"
    forwarded = {k: sent[k] for k in ("bbox", "bboxSR", "imageSR", "size", "mosaicRule", "time") if k in sent}
    direct = http.get(EXPORT.format("mos"), params={**forwarded, "format": "png", "f": "image"})
    expected = harness.composite_over(direct.content, MAP_BACKGROUND)
    harness.assert_shows_the_same_picture(run.screenshot, expected, max_mean_error=1.0, min_correlation=0.999)
