"""The f=html pages and the map page: what a person sees in a browser, served through the real gateway."""
from __future__ import annotations

import html
import io
import json
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

SERVICE = "/arcgis/rest/services/{}/ImageServer"
EXPORT_NAMES = ["bbox", "bboxSR", "size", "imageSR", "time", "format", "pixelType", "noData",
                "noDataInterpretation", "interpolation", "compression", "compressionQuality",
                "compressionTolerance", "lercVersion", "bandIds", "mosaicRule", "renderingRule", "sliceId",
                "datumTransformation", "adjustAspectRatio", "validateExtent", "f"]


def links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r"href='([^']+)'", page)]


def test_root_page_links_every_resource_and_they_answer(http):
    page = http.get(SERVICE.format("dem")).text
    hrefs = links(page)
    for resource in ("exportImage", "identify", "keyProperties", "rasterFunctionInfos", "statistics",
                     "histograms", "legend", "info/iteminfo", "info/metadata", "map"):
        url = next(h for h in hrefs if h.endswith("/ImageServer/" + resource))
        assert http.get(url).status_code == 200
    assert "test DEM" in page and "esriImageServiceDataTypeElevation" in page


def test_export_form_has_every_parameter_prefilled_with_the_service_extent(http):
    page = http.get(SERVICE.format("dem") + "/exportImage").text
    assert [n for n in EXPORT_NAMES if f"name='{n}'" not in page] == []
    root = http.get(SERVICE.format("dem"), params={"f": "json"}).json()
    bbox = re.search(r"name='bbox' value='([^']+)'", page).group(1)
    assert [float(v) for v in bbox.split(",")] == [root["initialExtent"][k] for k in ("xmin", "ymin", "xmax",
                                                                                       "ymax")]


def test_export_form_submission_shows_the_image_with_its_size_and_extent(http):
    query = {"bbox": "-13167000,4388000,-13151000,4400000", "bboxSR": "3857", "imageSR": "3857",
             "size": "300,200", "format": "png", "f": "html"}
    page = http.get(SERVICE.format("dem") + "/exportImage", params=query).text
    doc = http.get(SERVICE.format("dem") + "/exportImage", params=dict(query, f="json")).json()
    assert re.search(r"id='width'>300<", page) and re.search(r"id='height'>200<", page)
    ext = doc["extent"]
    assert f"{ext['xmin']!r}, {ext['ymin']!r}, {ext['xmax']!r}, {ext['ymax']!r}" in page
    src = html.unescape(re.search(r"<img id='result' src='([^']+)'", page).group(1))
    image = Image.open(io.BytesIO(http.get(src).content))
    assert image.size == (300, 200)
    # The f=image link repeats the submitted parameters.
    image_link = next(h for h in links(page) if "f=image" in h)
    assert parse_qs(urlsplit(image_link).query)["size"] == ["300,200"]
    assert http.get(image_link).content == http.get(src).content


def test_post_from_the_form_gives_the_same_page(http):
    query = {"bbox": "380000,4050000,395000,4065000", "size": "100,100", "f": "html"}
    get = http.get(SERVICE.format("dem") + "/exportImage", params=query).text
    post = http.post(SERVICE.format("dem") + "/exportImage", data=query).text
    strip = re.compile(r"_ags_[0-9a-f_]+")  # each submission stores its own output file
    assert strip.sub("", get) == strip.sub("", post)


def test_legend_page_shows_the_swatches(http):
    page = http.get(SERVICE.format("ms") + "/legend", params={"bandIds": "2,1,0"}).text
    assert page.count("src='data:image/png;base64,") == 3 and "Red: Red" in page


def test_map_page_is_served_from_the_package(http):
    page = http.get(SERVICE.format("ms") + "/map")
    assert page.headers["content-type"].startswith("text/html")
    scripts = re.findall(r"<script src='([^']+)'", page.text) + re.findall(r"rel='stylesheet' href='([^']+)'",
                                                                           page.text)
    assert len(scripts) == 3 and all("/arcgis/rest/static/vendor/" in s for s in scripts)
    for url in scripts:
        asset = http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 10_000
        assert asset.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript",
                                                               "text/css")
    assert "https://" not in page.text.replace("'https://'", "")  # nothing from the internet
    config = json.loads(re.search(r"const CONFIG = (\{.*\});", page.text).group(1))
    assert config["functions"][0] == "None" and config["initialBands"] == "2,1,0"
    assert ["Colour infrared (NIR, Red, Green)", "3,2,1"] in config["bands"]


def test_map_renders_the_service_in_headless_chromium(gateway_url, http, tmp_path):
    """The real page in a real browser: the esri-leaflet layer's exportImage lands on the map."""
    shot = tmp_path / "map.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--virtual-time-budget=8000", f"--screenshot={shot}", "--window-size=800,600",
                    f"{gateway_url}{SERVICE.format('dem')}/map"], check=True, capture_output=True, timeout=90)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    centre = pixels[200:400, 250:550]
    background = np.array([0xdd, 0xe3, 0xea])
    gray = (np.ptp(centre, axis=2) <= 2) & (np.abs(centre - background).sum(axis=2) > 10)
    assert gray.mean() > 0.8  # the stretched DEM (gray), not the empty map background
    assert centre[gray].std() > 20  # terrain, not a flat fill
