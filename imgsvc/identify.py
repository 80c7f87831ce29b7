"""identify: the pixel values under one point (docs/protocol.md §4).

Decision: the pixel is always read at full resolution, whatever ``pixelSize`` says.  ``pixelSize`` only picks a
resolution level in ArcGIS, and for the datasets imgsvc serves the full-resolution value is the true one; reading
an overview would report averaged values no file holds.  Items are tried in catalog order and the first one with
data under the point answers (the exportImage compositing order).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyproj import CRS

from imgsvc import catalog_query, mosaic, sr
from imgsvc.catalog import RasterItem, ServiceRecord
from imgsvc.errors import invalid, unsupported
from imgsvc.read import read_pixel

NO_DATA_TEXT = "NoData"
POINT, POLYGON = "esriGeometryPoint", "esriGeometryPolygon"
GEOMETRY_TYPES = (POINT, POLYGON)


@dataclass(frozen=True)
class IdentifyParams:
    service: str
    x: float
    y: float
    crs: CRS | None  # the point's spatial reference; None = the service SR
    rendering_rule: dict | None = None  # the rule's JSON object: the value identified is the rule's output
    mosaic_rule: mosaic.MosaicRule = mosaic.DEFAULT_RULE  # which item answers, on a mosaic dataset
    time: tuple[int | None, int | None] | None = None
    return_catalog_items: bool = True


def identify_params(service: str, point: tuple[float, float] | None, crs: CRS | None = None, *,
                    geometry_type: str | None = None, mosaic_rule: mosaic.MosaicRule | None = None,
                    rendering_rule: dict | None = None, pixel_size: tuple[float, float] | None = None,
                    time: tuple[int | None, int | None] | None = None,
                    return_catalog_items: bool | None = None) -> IdentifyParams:
    """Validate identify's values: a point (``geometry_type`` None is a point too) with finite coordinates; the
    other parameters are refused when their processing is not built yet, or checked and unused (``pixel_size``:
    the pixel is always read at full resolution)."""
    if not service:
        raise invalid("service is required.")
    if geometry_type == POLYGON:
        raise unsupported(f"geometryType {POLYGON} is not supported by identify yet; send a point.")
    if geometry_type not in (None, POINT):
        raise invalid(f"geometryType {geometry_type!r} is not supported; expected one of: "
                      f"{', '.join(GEOMETRY_TYPES)}.")
    if point is None:
        raise invalid("geometry is required: a point as {\"x\", \"y\", \"spatialReference\"} or x,y.")
    x, y = point
    if not (math.isfinite(x) and math.isfinite(y)):
        raise invalid("geometry x and y must be finite numbers.")
    if pixel_size is not None and not (pixel_size[0] >= 0 and pixel_size[1] >= 0):
        raise invalid("pixelSize must be two non-negative numbers.")
    return IdentifyParams(service, x, y, crs, rendering_rule or None, mosaic_rule or mosaic.DEFAULT_RULE, time,
                          True if return_catalog_items is None else return_catalog_items)


@dataclass(frozen=True)
class IdentifyResult:
    values: tuple[float, ...] | None  # one per band; None = no item has data under the point
    dtype: str  # numpy dtype name of the service's bands
    x: float
    y: float
    crs: CRS  # the point's spatial reference (as asked)
    object_id: int = 0  # the OBJECTID of the item whose pixel answers (0: none, or a one-raster service)
    # A mosaic dataset's items under the point, and per item 1 when it is the one that answers, else 0.
    catalog_items: catalog_query.QueryResult | None = None
    visibilities: tuple[float, ...] = ()

    @property
    def text(self) -> str:
        """ArcGIS's `value`: the bands separated by ", " (ints as ints, floats at their type's precision)."""
        if self.values is None:
            return NO_DATA_TEXT
        return ", ".join(format_value(v, self.dtype) for v in self.values)


def format_value(value: float, dtype: str) -> str:
    kind = np.dtype(dtype).kind
    if kind in "iu":
        return str(int(value))
    # The shortest text that reads back to the same value of the band's own type (float32: 1234.5677, not
    # 1234.5677490234375).
    return np.format_float_positional(np.dtype(dtype).type(value), unique=True, trim="-")


def identify(service: ServiceRecord, candidates: tuple[RasterItem, ...], x: float, y: float,
             point_crs: CRS) -> IdentifyResult:
    """The values under (x, y), given in ``point_crs``, from the first of ``candidates`` (the catalog's items under
    the point, by object id) with data there."""
    dtype = service.description.dtype
    for item in candidates:
        xs, ys = sr.transform_points(point_crs, sr.crs_from_wkt(item.crs_wkt), np.array([x]), np.array([y]))
        ix, iy = float(xs[0]), float(ys[0])
        if not (math.isfinite(ix) and math.isfinite(iy)):
            continue
        col, row = ~item.transform @ (ix, iy)
        col, row = math.floor(col), math.floor(row)
        if not (0 <= col < item.width and 0 <= row < item.height):
            continue
        values, valid = read_pixel(item, col, row)
        if valid:
            return IdentifyResult(tuple(float(v) for v in values), dtype, x, y, point_crs, item.object_id)
    return IdentifyResult(None, dtype, x, y, point_crs)
