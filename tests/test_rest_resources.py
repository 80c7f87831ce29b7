"""The resources around exportImage (docs/protocol.md §3, §4), through the real gateway and gRPC server, checked
against what numpy/rasterio compute from the same files."""
from __future__ import annotations

import base64
import io
import json
import sqlite3
from pathlib import Path

import grpc
import numpy as np
import pytest
import rasterio
from PIL import Image

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.catalog.store import SCHEMA_VERSION
from imgsvc.cli import main as cli_main
from imgsvc.cli import register
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc
from tests import rasters

SERVICE = "/arcgis/rest/services/{}/ImageServer"


def valid_values(path) -> np.ndarray:
    """(bands, n) values of the pixels the file says hold data."""
    with rasterio.open(path) as src:
        data = src.read()
        mask = src.dataset_mask() > 0
    return data[:, mask].astype(np.float64)


def get(http, service: str, resource: str, **params) -> dict:
    reply = http.get(f"{SERVICE.format(service)}/{resource}", params=dict(params, f=params.get("f", "json")))
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json", reply.text
    return reply.json()


def test_statistics_match_numpy_over_the_valid_pixels(http, dem_path, u16_path):
    for service, path in (("dem", dem_path), ("ms", u16_path)):
        stats = get(http, service, "statistics")["statistics"]
        values = valid_values(path)
        assert len(stats) == values.shape[0]
        for band, s in zip(values, stats):
            assert s["count"] == band.size and (s["skipX"], s["skipY"]) == (1, 1)
            assert s["min"] == band.min() and s["max"] == band.max()
            assert s["mean"] == pytest.approx(band.mean(), rel=1e-9)
            assert s["standardDeviation"] == pytest.approx(band.std(), rel=1e-6)
            bin_width = (band.max() - band.min()) / 256
            assert abs(s["median"] - np.median(band)) <= bin_width
            counts, edges = np.histogram(band, bins=256)
            assert s["mode"] == pytest.approx((edges[counts.argmax()] + edges[counts.argmax() + 1]) / 2)


def test_histograms_are_numpy_histograms_over_min_max(http, u16_path):
    histograms = get(http, "ms", "histograms")["histograms"]
    for band, h in zip(valid_values(u16_path), histograms):
        counts, _ = np.histogram(band, bins=256, range=(band.min(), band.max()))
        assert (h["size"], h["min"], h["max"]) == (256, band.min(), band.max())
        assert h["counts"] == counts.tolist()


def test_root_advertises_histograms_statistics_and_is_complete(http):
    root = get(http, "dem", "")
    assert root["hasHistograms"] is True and root["supportsStatistics"] is True
    # Every field docs/protocol.md §3.3 lists as the minimum all five clients need.
    minimum = ["currentVersion", "name", "serviceDescription", "description", "copyrightText", "extent",
               "initialExtent", "fullExtent", "spatialReference", "pixelSizeX", "pixelSizeY", "bandCount",
               "bandNames", "pixelType", "minValues", "maxValues", "meanValues", "stdvValues", "noDataValue",
               "noDataValues", "serviceDataType", "serviceSourceType", "objectIdField", "fields", "capabilities",
               "defaultMosaicMethod", "allowedMosaicMethods", "sortField", "sortValue", "sortAscending",
               "mosaicOperator", "maxImageWidth", "maxImageHeight", "maxRecordCount", "defaultCompressionQuality",
               "defaultResamplingMethod", "allowRasterFunction", "rasterFunctionInfos", "hasHistograms",
               "hasColormap", "hasRasterAttributeTable", "hasMultidimensions", "minScale", "maxScale",
               "singleFusedMapCache", "exportTilesAllowed"]
    assert [k for k in minimum if k not in root] == []
    assert root["extent"]["xmax"] - root["extent"]["xmin"] == pytest.approx(720 * 30)
    pjson = http.get(SERVICE.format("dem"), params={"f": "pjson"})
    assert pjson.text.startswith("{\n") and json.loads(pjson.text) == root


def test_key_properties_and_raster_function_infos(http):
    dem = get(http, "dem", "keyProperties")
    assert dem["DataType"] == "Elevation" and dem["BandProperties"] == [{"BandName": "Band_1"}]
    assert dem["LowCellSize"] == 30 and dem["HighCellSize"] == pytest.approx(30 * 8)
    ms = get(http, "ms", "KEYPROPERTIES")
    assert ms["DataType"] == "Generic"
    assert [b["BandName"] for b in ms["BandProperties"]] == ["Blue", "Green", "Red", "NearInfrared"]
    infos = get(http, "dem", "rasterFunctionInfos")["rasterFunctionInfos"]
    assert infos[0]["name"] == "None" and infos == [
        {**f, "functionType": 0} for f in get(http, "dem", "")["rasterFunctionInfos"]]


def _png(entry: dict) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(entry["imageData"])))
    assert image.format == "PNG" and image.size == (20, 20) == (entry["width"], entry["height"])
    return np.asarray(image.convert("RGB"))


def test_single_band_legend_is_a_stretched_ramp_labelled_with_the_default_stretch(http):
    root = get(http, "dem", "")
    layer = get(http, "dem", "legend")["layers"][0]
    assert (layer["layerId"], layer["layerType"], layer["legendType"]) == (0, "Raster Layer", "Stretched")
    assert (layer["minScale"], layer["maxScale"]) == (0, 0)
    mean, stdv = root["meanValues"][0], root["stdvValues"][0]
    hi = min(root["maxValues"][0], mean + 2.5 * stdv)
    lo = max(root["minValues"][0], mean - 2.5 * stdv)
    labels = [e["label"] for e in layer["legend"]]
    assert labels == [f"High : {hi:.6g}", "", f"Low : {lo:.6g}"]
    assert layer["legend"][0]["values"] == [hi] and layer["legend"][-1]["values"] == [lo]
    ramp = np.concatenate([_png(e)[..., 0] for e in layer["legend"]])  # stacked top to bottom
    assert ramp[0, 0] == 255 and ramp[-1, 0] == 0 and (np.diff(ramp[:, 0].astype(int)) <= 0).all()


def test_multiband_legend_names_the_band_on_each_channel(http):
    layer = get(http, "ms", "legend", bandIds="3,2,1")["layers"][0]
    assert layer["legendType"] == "RGB Composite"
    assert [e["label"] for e in layer["legend"]] == ["Red: NearInfrared", "Green: Red", "Blue: Green"]
    assert [tuple(_png(e)[0, 0]) for e in layer["legend"]] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    single = get(http, "ms", "legend", bandIds="2")["layers"][0]
    assert single["legendType"] == "Stretched" and single["layerName"] == "ms: Red"
    assert get(http, "ms", "legend", bandIds="9")["error"]["code"] == 400


def test_item_info_and_metadata(http):
    info = get(http, "dem", "info/iteminfo")
    assert info == get(http, "dem", "info")
    assert info["name"] == "dem" and info["type"] == "Image Service" and info["description"] == "test DEM"
    (west, south), (east, north) = info["extent"]
    assert -119 < west < east < -118 and 36 < south < north < 37  # UTM 11N near the Sierra Nevada
    xml = http.get(f"{SERVICE.format('dem')}/info/metadata")
    assert xml.headers["content-type"] == "application/xml" and "<resTitle>dem</resTitle>" in xml.text


def test_rest_info_and_services(http):
    doc = http.get("/arcgis/rest/info", params={"f": "json"}).json()
    assert doc["currentVersion"] >= 10.91 and doc["fullVersion"].startswith(str(doc["currentVersion"]))
    assert doc["authInfo"] == {"isTokenBasedSecurity": False}
    services = http.get("/arcgis/rest/services", params={"f": "pjson"}).json()
    assert services["currentVersion"] == doc["currentVersion"]
    page = http.get("/arcgis/rest/services").text
    assert "/arcgis/rest/services/dem/ImageServer'" in page and "/dem/ImageServer/map'" in page


@pytest.mark.parametrize("resource", ["", "keyProperties", "rasterFunctionInfos", "statistics", "histograms",
                                      "legend", "info/iteminfo"])
def test_every_resource_speaks_get_post_jsonp_pjson_and_html(http, resource):
    url = f"{SERVICE.format('dem')}/{resource}"
    doc = http.get(url, params={"f": "json"}).json()
    assert http.post(url, data={"f": "json"}).json() == doc
    assert http.get(url, params={"f": "pjson"}).json() == doc
    wrapped = http.get(url, params={"f": "json", "callback": "L.esri._callback.c7"})
    assert wrapped.text == f"L.esri._callback.c7({json.dumps(doc)});"
    page = http.get(url)  # f defaults to html
    assert page.headers["content-type"].startswith("text/html") and "<html" in page.text


# ---- the catalog side: histograms cached at registration, old catalogs migrated -----------------------------------

def test_u8_histogram_convention_and_migration_of_an_old_catalog(tmp_path):
    from imgsvc.grpc import create_server
    from imgsvc.service import ImageService

    data = (rasters.smooth_field(200, 300, seed=5) / 20).astype(np.uint8)[None]
    path = rasters.write_raster(tmp_path / "u8.tif", data, nodata=None)
    catalog_path = tmp_path / "catalog.sqlite"
    register(Catalog(catalog_path), "u8", path, ServiceSettings())
    # Make it a catalog from before statistics were kept: no band_statistics table at all.
    with sqlite3.connect(catalog_path) as conn:
        conn.execute("DROP TABLE band_statistics")
    server, port = create_server(ImageService(Catalog(catalog_path, readonly=True)), "127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ImageServiceStub(channel)
            assert stub.GetServiceInfo(pb.GetServiceInfoRequest(service="u8")).has_histograms is False
            with pytest.raises(grpc.RpcError) as info:
                stub.GetHistograms(pb.HistogramsRequest(service="u8"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND and "imgsvc migrate" in info.value.details()
            assert cli_main(["--catalog", str(catalog_path), "migrate"]) == 0
            histogram = stub.GetHistograms(pb.HistogramsRequest(service="u8")).histograms[0]
            statistics = stub.GetStatistics(pb.StatisticsRequest(service="u8")).statistics[0]
    finally:
        server.stop(grace=None)
    values = data.ravel()
    assert (histogram.size, histogram.min, histogram.max) == (256, -0.5, 255.5)
    assert list(histogram.counts) == np.bincount(values, minlength=256).tolist()
    assert statistics.median == np.median(values) and statistics.mode == np.bincount(values).argmax()
    assert Catalog(catalog_path).items_without_distributions() == []


def test_registration_stores_distributions_in_the_catalog(catalog_path: Path):
    with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT item_id, band, count FROM band_statistics ORDER BY item_id, band").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert len(rows) == 1 + 4 and version == SCHEMA_VERSION
