"""The read stage: rasterio behind one module.  Every GDAL call runs inside one ``rasterio.Env``.

Paths handed to GDAL here only ever come from the catalog (written by the CLI), never from a request.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window

from imgsvc.block import BandStats
from imgsvc.catalog import RasterItem
from imgsvc.errors import ImgsvcError, ErrorKind, invalid

# No .aux.xml side files next to users' rasters, no directory listing on open (rasters live in big folders).
GDAL_OPTIONS = {
    "GDAL_PAM_ENABLED": "NO",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": 256,
}

# Bands GDAL reads as U8 even when stored with fewer bits (U1/U2/U4); complex types are refused.
SUPPORTED_DTYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"}


def describe_raster(path: str | Path) -> RasterItem:
    """What the catalog records for a GeoTIFF/COG: grid, bands, nodata, overviews, per-band statistics."""
    path = Path(path).resolve()
    try:
        with rasterio.Env(**GDAL_OPTIONS), rasterio.open(path) as src:
            if src.crs is None or src.transform == Affine.identity():
                raise invalid(f"{path} has no georeferencing (CRS and geotransform are required).")
            dtype = src.dtypes[0]
            if dtype not in SUPPORTED_DTYPES:
                raise invalid(f"{path} has pixel type {dtype}, which imgsvc does not serve (complex types "
                              "C64/C128 are not supported).")
            flags = src.mask_flag_enums[0]
            if MaskFlags.alpha in flags:
                mask_kind = "alpha"
            elif MaskFlags.nodata in flags:
                mask_kind = "nodata"
            elif MaskFlags.per_dataset in flags:
                mask_kind = "mask"
            else:
                mask_kind = "none"
            band_count = src.count - (1 if mask_kind == "alpha" else 0)
            stats = tuple(BandStats(min=float(s.min), max=float(s.max), mean=float(s.mean), stdv=float(s.std))
                          for s in src.stats(indexes=list(range(1, band_count + 1)), approx=False))
            overview_shapes = []
            for factor in src.overviews(1):
                overview_shapes.append((-(-src.width // factor), -(-src.height // factor)))
            names = tuple(src.descriptions[b] or f"Band_{b + 1}" for b in range(band_count))
            return RasterItem(
                item_id=0,
                path=str(path),
                crs_wkt=src.crs.to_wkt(),
                transform=src.transform,
                width=src.width,
                height=src.height,
                dtype=dtype,
                nodata=None if src.nodata is None else float(src.nodata),
                band_names=names,
                stats=stats,
                overview_shapes=tuple(overview_shapes),
                block_shape=(src.block_shapes[0][1], src.block_shapes[0][0]),
                compression=(src.compression.name if src.compression else "None"),
                mask_kind=mask_kind,
            )
    except RasterioError as exc:
        raise invalid(f"Cannot open {path} as a raster: {exc}") from exc


@dataclass(frozen=True)
class SourceWindow:
    """Pixels read from one raster (at one overview level): what the kernels resample from."""

    data: np.ndarray  # (bands, rows, cols)
    valid: np.ndarray  # (rows, cols) bool
    transform: Affine


def read_window(item: RasterItem, overview: int | None, window: Window, bands: tuple[int, ...]) -> SourceWindow:
    """Read ``bands`` (0-based) of ``window`` from ``item`` at ``overview`` (None = full resolution).

    The window is already clipped to the raster (by the plan).  Validity comes from the file itself (nodata value,
    internal mask or alpha band), and NaN is never valid.
    """
    indexes = [b + 1 for b in bands]
    try:
        with rasterio.Env(**GDAL_OPTIONS), rasterio.open(item.path, overview_level=overview) as src:
            data = src.read(indexes, window=window)
            if item.mask_kind == "none":
                valid = np.ones(data.shape[1:], dtype=bool)
            else:
                valid = src.dataset_mask(window=window) > 0
            transform = src.window_transform(window)
    except RasterioError as exc:
        raise ImgsvcError(ErrorKind.INTERNAL, f"Reading the source raster failed: {exc}") from exc
    if data.dtype.kind == "f":
        valid &= ~np.isnan(data).any(axis=0)
    return SourceWindow(data=data, valid=valid, transform=transform)
