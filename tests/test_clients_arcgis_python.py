"""ArcGIS API for Python (`arcgis` from PyPI, its own venv) ImageryLayer.export_image with f="json", f="image" and
f="numpy_array" against the real gateway: each result equals the service's own export of the same request."""
from __future__ import annotations

import io
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from rasterio.io import MemoryFile

from tests.clients import harness

EXPORT = "/arcgis/rest/services/{}/ImageServer/exportImage"
BBOX_3857 = "-13172000,4386640,-13146400,4402000"
CALLS = [
    {"bbox": BBOX_3857, "bbox_sr": 3857, "size": [400, 240], "f": "json"},
    {"bbox": BBOX_3857, "bbox_sr": 3857, "image_sr": 3857, "size": [400, 240], "export_format": "png", "f": "image"},
    {"bbox": BBOX_3857, "bbox_sr": 3857, "size": [400, 240], "f": "numpy_array"},
]


def run_arcgis(gateway_url: str, service: str, calls: list[dict]) -> tuple[list, list[dict]]:
    with harness.RecordingProxy(gateway_url) as proxy, tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [str(harness.ARCGIS_PYTHON), str(harness.CLIENTS_DIR / "arcgis_export.py"),
             f"{proxy.url}/arcgis/rest/services/{service}/ImageServer", json.dumps(calls), tmp],
            capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-4000:]
        results = []
        for index, call in enumerate(calls):
            path = Path(tmp) / f"{index}.{ {'json': 'json', 'image': 'bin'}.get(call['f'], 'npy') }"
            results.append(json.loads(path.read_text()) if call["f"] == "json"
                           else path.read_bytes() if call["f"] == "image" else np.load(path))
    return results, proxy.requests


def direct_tiff(http, service: str, query: dict) -> tuple[np.ndarray, float]:
    reply = http.get(EXPORT.format(service), params=dict(query, format="tiff", f="image"))
    assert reply.headers["content-type"] == "image/tiff", reply.text[:500]
    with MemoryFile(reply.content) as memory, memory.open() as tiff:
        return tiff.read(), tiff.nodata


def test_arcgis_python_export_image_json_image_and_numpy_array(gateway_url, http):
    (doc, png, array), sent = run_arcgis(gateway_url, "dem", CALLS)
    # Its connection also probes /arcgis/info, /arcgis/rest/info and /arcgis/sharing/rest/info; it tolerates
    # the not-found envelope there, so only the service's own resources must succeed.
    for request in sent:
        if "/rest/services/" in request["url"]:
            assert request["status"] == 200, request
    exports = [r for r in sent if r["url"].endswith("/exportImage")]
    # The Python API POSTs every export as a form; the f=image ones must come back as image bytes, not JSON.
    assert [r["method"] for r in exports] == ["POST"] * 3
    assert [r["responseContentType"] for r in exports] == ["application/json", "image/png",
                                                           "application/octet-stream"]

    # f="json": the image resource of the same request, and its href serves the image.
    expected_doc = http.get(EXPORT.format("dem"), params={"bbox": BBOX_3857, "bboxSR": "3857", "size": "400,240",
                                                         "format": "jpgpng", "f": "json"}).json()
    assert {k: v for k, v in doc.items() if k != "href"} == {k: v for k, v in expected_doc.items() if k != "href"}
    assert doc["extent"]["spatialReference"]["wkid"] == 32611      # no imageSR sent: the service's own SR
    served = http.get(doc["href"])
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/")

    # f="image": the very bytes of a direct export.
    direct = http.get(EXPORT.format("dem"), params={"bbox": BBOX_3857, "bboxSR": "3857", "imageSR": "3857",
                                                    "size": "400,240", "format": "png", "f": "image"})
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == direct.content

    # f="numpy_array": LERC2 decoded by the client into (rows, cols, bands), equal to the float export's data.
    values, nodata = direct_tiff(http, "dem", {"bbox": BBOX_3857, "bboxSR": "3857", "size": "400,240"})
    assert array.shape == (240, 400, 1) and array.dtype == np.float32
    valid = values[0] != nodata
    assert valid.mean() > 0.5 and not valid.all()
    # No compressionTolerance sent: LERC is lossy up to the default of 0.01 (docs/protocol.md §1.1), no further.
    np.testing.assert_allclose(array[..., 0][valid], values[0][valid], rtol=0, atol=0.01 * 1.001)
    harness.check_recorded("arcgis-python dem", sent)


def test_arcgis_python_numpy_array_keeps_every_band(gateway_url, http):
    bbox = "381000,4066000,386000,4069000"
    calls = [{"bbox": bbox, "size": [250, 150], "f": "numpy_array"}]
    (array,), sent = run_arcgis(gateway_url, "ms", calls)
    values, nodata = direct_tiff(http, "ms", {"bbox": bbox, "size": "250,150"})
    assert array.shape == (150, 250, 4) and array.dtype == np.uint16
    valid = values != nodata
    assert valid.mean() > 0.5
    np.testing.assert_array_equal(array.transpose(2, 0, 1)[valid], values[valid])
    harness.check_recorded("arcgis-python ms", sent)


def test_arcgis_python_raster_functions_export_what_the_service_renders(gateway_url, http):
    """arcgis.raster.functions (hillshade, stretch, colormap, ndvi) on the ImageryLayer: each export carries the
    rule the library built (its ndvi is BandArithmetic method 1), and its PNG is the service's own export of it."""
    calls = {"dem": {"hillshade": "Hillshade", "stretch": "Stretch", "colormap": "Colormap"},
             "ms": {"ndvi": "BandArithmetic"}}
    for service, functions in calls.items():
        with harness.RecordingProxy(gateway_url) as proxy, tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [str(harness.ARCGIS_PYTHON), str(harness.CLIENTS_DIR / "arcgis_functions.py"),
                 f"{proxy.url}/arcgis/rest/services/{service}/ImageServer", json.dumps(BBOX_3857), tmp,
                 ",".join(functions)], capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr[-4000:]
            exports = [dict(harness.query_of(r)) for r in proxy.requests if "/exportImage" in r["url"]]
            for name, function in functions.items():
                sent = next(e for e in exports if json.loads(e["renderingRule"])["rasterFunction"] == function)
                query = {k: sent[k] for k in ("bbox", "bboxSR", "imageSR", "size")}
                direct = http.get(EXPORT.format(service), params={**query, "renderingRule": sent["renderingRule"],
                                                                  "format": "png", "f": "image"})
                assert direct.headers["content-type"] == "image/png", (name, direct.text[:300])
                ours = np.asarray(Image.open(io.BytesIO(Path(tmp, f"{name}.png").read_bytes())))
                assert np.array_equal(ours, np.asarray(Image.open(io.BytesIO(direct.content)))), name
