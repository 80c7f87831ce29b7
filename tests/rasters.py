"""Test rasters written by rasterio: smooth fields with nodata holes, overviews, several dtypes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin

UTM11 = "EPSG:32611"
# Sierra Nevada, UTM 11N: the same area the demo data covers.
ORIGIN = (380000.0, 4070000.0)


def smooth_field(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A terrain-like field: a few broad waves plus a little noise, so bilinear differs from nearest."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    field = 1500 + 600 * np.sin(x / 37.0) * np.cos(y / 53.0) + 300 * np.sin((x + 2 * y) / 91.0)
    return field + rng.normal(0, 15, size=field.shape)


def write_raster(path: Path, data: np.ndarray, *, crs: str = UTM11, res: float = 30.0, nodata=None,
                 overviews=(2, 4, 8), origin=ORIGIN, descriptions=None) -> Path:
    bands, rows, cols = data.shape
    profile = dict(driver="GTiff", width=cols, height=rows, count=bands, dtype=data.dtype, crs=crs,
                   transform=from_origin(origin[0], origin[1], res, res), nodata=nodata, tiled=True,
                   blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, 1):
                dst.set_band_description(i, d)
        if overviews:
            dst.build_overviews(list(overviews), Resampling.average)
    return path


def dem(path: Path, rows: int = 640, cols: int = 720) -> Path:
    """Float32 DEM, nodata -9999 with a hole and a no-data strip, internal overviews."""
    data = smooth_field(rows, cols).astype(np.float32)
    data[100:140, 200:260] = -9999
    data[:, :12] = -9999
    return write_raster(path, data[None], nodata=-9999.0)


def multiband_u16(path: Path, rows: int = 500, cols: int = 500) -> Path:
    base = smooth_field(rows, cols, seed=3)
    data = np.stack([(base * k) % 10000 for k in (1.0, 1.3, 1.7, 2.1)]).astype(np.uint16)
    data[:, :, -20:] = 0
    return write_raster(path, data, nodata=0, res=10.0, descriptions=["Blue", "Green", "Red", "NearInfrared"])


def global_ids(path: Path, res: float = 0.5) -> Path:
    """A whole-globe EPSG:4326 raster whose value is the pixel's own index (row * width + col), so a nearest
    export says exactly which source pixel each output pixel took."""
    cols, rows = int(360 / res), int(180 / res)
    data = np.arange(rows * cols, dtype=np.float32).reshape(1, rows, cols)
    return write_raster(path, data, crs="EPSG:4326", res=res, origin=(-180.0, 90.0), overviews=(2, 4))


def nad27_ids(path: Path) -> Path:
    """UTM 11N on NAD27 (EPSG:26711), value = pixel index: which source pixel a datum-shifted export took."""
    data = np.arange(400 * 400, dtype=np.float32).reshape(1, 400, 400)
    return write_raster(path, data, crs="EPSG:26711", res=30.0, overviews=())
