"""GDAL's WMS driver with the AGS minidriver (docs/protocol.md §12), opened by rasterio, reads an image service as a
raster: block by block, through exportImage, and the pixels it assembles equal one direct export of the same grid."""
from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.io import MemoryFile

from tests.clients import harness

EXPORT = "/arcgis/rest/services/{}/ImageServer/exportImage"


def ags_connection(base_url: str, service: str, *, srs: str, image_format: str, window, size, bands: int,
                   extra: str = "", transparent: str = "") -> str:
    """The connection XML a GDAL user writes for an ArcGIS image service; window = (ulx, uly, lrx, lry)."""
    ulx, uly, lrx, lry = window
    return f"""<GDAL_WMS>
  <Service name="AGS">
    <ServerUrl>{base_url}{EXPORT.format(service)}?</ServerUrl>
    <BBoxOrder>xyXY</BBoxOrder><SRS>{srs}</SRS><ImageFormat>{image_format}</ImageFormat>{transparent}
  </Service>
  <DataWindow><UpperLeftX>{ulx}</UpperLeftX><UpperLeftY>{uly}</UpperLeftY>
    <LowerRightX>{lrx}</LowerRightX><LowerRightY>{lry}</LowerRightY><SizeX>{size[0]}</SizeX><SizeY>{size[1]}</SizeY>
  </DataWindow>
  <BandsCount>{bands}</BandsCount>{extra}<BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY>
</GDAL_WMS>"""


def read_through_gdal(gateway_url: str, **connection) -> tuple[np.ndarray, list[dict]]:
    with harness.RecordingProxy(gateway_url) as proxy, tempfile.TemporaryDirectory() as tmp:
        xml, out = Path(tmp) / "service.xml", Path(tmp) / "pixels.npy"
        xml.write_text(ags_connection(proxy.url, **connection))
        subprocess.run([sys.executable, str(harness.CLIENTS_DIR / "gdal_read.py"), str(xml), str(out)],
                       check=True, timeout=120)
        pixels = np.load(out)
    for request in proxy.requests:
        assert request["status"] == 200 and request["responseContentType"].startswith("image/"), request
    return pixels, proxy.requests


def test_gdal_reads_the_rendered_service_in_web_mercator(gateway_url, http):
    # 800x480 at 32 m in 3857 over the DEM: 8 blocks, the right-hand and bottom ones partial.
    window = (-13172000, 4402000, -13146400, 4386640)
    pixels, sent = read_through_gdal(gateway_url, service="dem", srs="EPSG:3857", image_format="png",
                                     window=window, size=(800, 480), bands=4,
                                     transparent="<Transparent>true</Transparent>")
    assert len(sent) == 8
    direct = http.get(EXPORT.format("dem"), params={
        "bbox": "-13172000,4386640,-13146400,4402000", "bboxSR": "3857", "imageSR": "3857", "size": "800,480",
        "format": "png", "f": "image"})
    expected = np.asarray(Image.open(io.BytesIO(direct.content)).convert("RGBA")).transpose(2, 0, 1)
    assert (expected[3] == 0).any() and (expected[3] == 255).mean() > 0.5   # the view holds data and nodata
    np.testing.assert_array_equal(pixels, expected)
    harness.check_recorded("gdal-wms-ags png", sent)


def test_gdal_reads_the_native_float_grid_unchanged(gateway_url, http, dem_path):
    # The service's own grid (UTM 11N, 30 m) as Float32 TIFF blocks: GDAL must get the source values back.
    pixels, sent = read_through_gdal(gateway_url, service="dem", srs="EPSG:32611", image_format="tiff",
                                     window=(380000, 4070000, 401600, 4050800), size=(720, 640), bands=1,
                                     extra="<DataType>Float32</DataType>")
    assert len(sent) == 9
    direct = http.get(EXPORT.format("dem"), params={
        "bbox": "380000,4050800,401600,4070000", "bboxSR": "32611", "imageSR": "32611", "size": "720,640",
        "format": "tiff", "f": "image"})
    with MemoryFile(direct.content) as memory, memory.open() as tiff:
        expected = tiff.read()
    np.testing.assert_array_equal(pixels, expected)
    with rasterio.open(dem_path) as source:
        np.testing.assert_array_equal(pixels, source.read())
    harness.check_recorded("gdal-wms-ags tiff", sent)
