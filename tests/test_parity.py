"""exportImage pixels against GDAL's warper (exact transformer, the overview GDAL picks) on the same source/grid."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling

from imgsvc import sr
from imgsvc.grpc.requests import export_params
from imgsvc.plan import output_grid, overview_for
from imgsvc.rest.query import Params, export_request

RESAMPLING = {"RSP_NearestNeighbor": Resampling.nearest, "RSP_BilinearInterpolation": Resampling.bilinear}

# (imageSR, bbox in that SR, size): up- and downsampling, three target systems.  Outputs stay within one block of
# GDAL's warped VRT (128 rows x 512 columns): GDAL widens downsampling kernels by the scale it measures per chunk,
# so its own result changes along chunk seams, and a one-chunk reference is what `gdalwarp` gives for such a grid.
CASES = [
    ("3857", (-13167000, 4388000, -13155000, 4394000), (240, 120)),   # 40 m on the ground: fractional downsampling
    ("3857", (-13163000, 4392000, -13159000, 4394000), (256, 128)),   # upsampling ~12 m
    ("3857", (-13172000, 4384000, -13148000, 4406000), (120, 110)),   # ~160 m: read from an overview
    ("4326", (-118.30, 36.62, -118.16, 36.68), (360, 120)),           # geographic
    ("4326", (-118.34, 36.60, -118.11, 36.76), (90, 62)),             # geographic, overview
    ("32610", (918000, 4063000, 935000, 4070000), (300, 124)),        # the next UTM zone west (rotated grid)
    ("32611", (384000, 4055000, 396000, 4058000), (480, 120)),        # same SR: affine path, upsampling
]


def gdal_reference(path, grid, resampling, overview):
    """GDAL's warper over the overview it would pick, with an exact transformer (gdalwarp -et 0).

    rasterio's array ``reproject`` always wraps the transformer in GDAL's 0.125 px approximation (its ``tolerance``
    is not applied on that path), which moves ~5 % of nearest picks; a WarpedVRT honours ``tolerance``, and a
    tolerance of 1e-9 px is exact to within float rounding (0 itself is refused by rasterio's VRT setup).
    The VRT is read block by block (GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO): GDAL 3.10's whole-image VRT read hands
    the kernel the padded source window as the footprint, so its downsampling scale differs from gdalwarp's.
    """
    with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"), \
            rasterio.open(path, overview_level=overview) as src, WarpedVRT(
            src, crs=grid.crs.to_wkt(), transform=grid.transform, width=grid.width, height=grid.height,
            resampling=resampling, tolerance=1e-9, nodata=-9999) as vrt:
        assert vrt.block_shapes[0][0] >= grid.height and vrt.block_shapes[0][1] >= grid.width
        return vrt.read(1)


@pytest.mark.parametrize("interp", list(RESAMPLING))
@pytest.mark.parametrize("image_sr, bbox, size", CASES)
def test_export_matches_gdal(image_service_on, dem_path, image_sr, bbox, size, interp):
    """... with the raster on disk and its catalog in SQLite, and with the same raster in S3 and the catalog on
    PostgreSQL (conftest.STORAGES)."""
    image_service = image_service_on
    query = {"bbox": ",".join(map(str, bbox)), "bboxSR": image_sr, "imageSR": image_sr,
             "size": f"{size[0]},{size[1]}", "format": "tiff", "interpolation": interp}
    params = export_params(export_request("dem", Params(query.items())))
    service = image_service.service("dem")
    grid = output_grid(params, service)
    result = image_service.export_image(params)
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        ours = tif.read(1)
        assert tif.crs == grid.crs and tif.transform.almost_equals(grid.transform)
    expected = gdal_reference(dem_path, grid, RESAMPLING[interp], overview_for(image_service.catalog.items("dem")[0], grid))
    ours_valid, gdal_valid = ours != -9999, expected != -9999
    both = ours_valid & gdal_valid
    assert both.sum() > 0.5 * both.size
    # Validity may differ only on the kernel's footprint at nodata/coverage edges.
    assert (ours_valid != gdal_valid).mean() < 0.01
    if interp == "RSP_NearestNeighbor":
        agree = (ours[both] == expected[both]).mean()
    else:
        agree = np.isclose(ours[both], expected[both], rtol=1e-4, atol=0).mean()
    print(f"{image_sr} {size} {interp}: {agree:.5f} of {both.sum()} valid pixels agree")
    assert agree >= 0.995
