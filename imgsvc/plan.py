"""The plan stage: from validated parameters and the service record to the output grid and the reads it needs.

Pure: no I/O.  Geometry follows docs/protocol.md §1.2-§1.4; the overview choice follows GDAL's warper so results match
what `gdalwarp` produces for the same request.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS

from imgsvc import kernels, mosaic, sr
from imgsvc.catalog import RasterItem, ServiceRecord
from imgsvc.errors import invalid
from imgsvc.functions import IDENTITY, Chain
from imgsvc.kernels import DEFAULT_RESAMPLING_NAMES
from imgsvc.params import ExportParams

SIZE_LIMIT_DETAIL = "The requested image exceeds the size limit."
# Source pixels a kernel reaches beyond the point it samples, at a scale of 1 (GDAL's kernel radii).
KERNEL_RADIUS = {"nearest": 1, "bilinear": 1, "cubic": 2, "mode": 1}
# Output points per side sampled to find an item's footprint (edges and interior, so curved mappings are covered).
FOOTPRINT_SAMPLES = 33


@dataclass(frozen=True)
class OutputGrid:
    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def extent(self) -> tuple[float, float, float, float]:
        x0, y1 = self.transform @ (0, 0)
        x1, y0 = self.transform @ (self.width, self.height)
        return x0, y0, x1, y1

    def widened(self, margin: int) -> OutputGrid:
        """The grid with ``margin`` more pixels on every side (same pixels where they overlap)."""
        if margin == 0:
            return self
        return OutputGrid(crs=self.crs, transform=self.transform @ Affine.translation(-margin, -margin),
                          width=self.width + 2 * margin, height=self.height + 2 * margin)


@dataclass(frozen=True)
class PixelWindow:
    col_off: int
    row_off: int
    width: int
    height: int


@dataclass(frozen=True)
class ItemRead:
    item: RasterItem
    overview: int | None  # index into the item's overviews, None = full resolution
    window: PixelWindow  # in the pixel space of that overview level, clipped to it
    # A global geographic raster also stands 360 degrees east and west of itself, so an output grid that runs past
    # the antimeridian finds its pixels: the read's source transform is moved by this many degrees.
    x_shift: float = 0.0


@dataclass(frozen=True)
class ExportPlan:
    service: ServiceRecord
    grid: OutputGrid  # what the client gets
    read_grid: OutputGrid  # ``grid`` widened by the function chain's buffer: what is rendered
    reads: tuple[ItemRead, ...]  # in compositing order, top item first; empty when the request misses the data
    bands: tuple[int, ...]  # 0-based source bands read, in order
    output_bands: tuple[int, ...] | None  # bands kept after the functions (bandIds), None = all
    resampling: str
    operation: mosaic.MosaicOperation
    chain: Chain
    # The reads of each catalog item the chain reads alone ("$<n>"), by OBJECTID.
    item_reads: tuple[tuple[int, tuple[ItemRead, ...]], ...] = ()
    # The mosaic rule's itemRenderingRule: applied to each item, resampled, before the operation combines them.
    item_chain: Chain = IDENTITY
    # Seamline: the feathering width across the seamlines (service SR units); None for the other methods.
    seamline_blend_width: float | None = None

    @property
    def buffer(self) -> int:
        return (self.read_grid.width - self.grid.width) // 2


def output_grid(params: ExportParams, service: ServiceRecord) -> OutputGrid:
    """The output grid: bbox projected (densified) into imageSR, then squared per adjustAspectRatio (§1.3)."""
    settings = service.settings
    width, height = params.size
    if width > settings.max_image_width or height > settings.max_image_height:
        raise invalid(SIZE_LIMIT_DETAIL)
    service_crs = sr.crs_from_wkt(service.description.crs_wkt)
    image_crs = params.image_crs or service_crs
    if params.bbox is None:
        # docs/decisions.md Q1: with no bbox, export the service's full extent (what the root calls `extent`).
        bbox, bbox_crs = service.description.extent, service_crs
    else:
        bbox, bbox_crs = params.bbox, params.bbox_crs or service_crs
    if params.validate_extent:
        _validate_extent(bbox, bbox_crs, service.description.extent, service_crs)
    x0, y0, x1, y1 = sr.transform_bounds(bbox_crs, image_crs, bbox)
    if not (x1 > x0 and y1 > y0):
        raise invalid("The bbox is empty once projected into imageSR.")
    if params.adjust_aspect_ratio:
        res = max((x1 - x0) / width, (y1 - y0) / height)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1 = cx - res * width / 2, cx + res * width / 2
        y0, y1 = cy - res * height / 2, cy + res * height / 2
    transform = Affine((x1 - x0) / width, 0.0, x0, 0.0, -(y1 - y0) / height, y1)
    return OutputGrid(crs=image_crs, transform=transform, width=width, height=height)


def _validate_extent(bbox, bbox_crs: CRS, service_bounds, service_crs: CRS) -> None:
    try:
        bx0, by0, bx1, by1 = sr.transform_bounds(bbox_crs, service_crs, bbox)
    except Exception:
        raise invalid("validateExtent: the bbox is outside the service extent.") from None
    sx0, sy0, sx1, sy1 = service_bounds
    if bx1 <= sx0 or bx0 >= sx1 or by1 <= sy0 or by0 >= sy1:
        raise invalid("validateExtent: the bbox is outside the service extent.")


def resampling_for(params: ExportParams, service: ServiceRecord, chain: Chain) -> str:
    """How the service image is rendered: the choice of a Resample over it in the rendering rule, else the
    request's ``interpolation``, else the service's default resampling method."""
    if chain.resampling:
        return chain.resampling
    if params.resampling:
        return params.resampling
    return DEFAULT_RESAMPLING_NAMES.get(service.settings.default_resampling_method.lower(), "bilinear")


def band_selection(band_ids: tuple[int, ...], band_count: int) -> tuple[int, ...]:
    """``band_ids`` checked against ``band_count`` bands; all of them when none are given."""
    if not band_ids:
        return tuple(range(band_count))
    bad = [b for b in band_ids if b >= band_count]
    if bad:
        raise invalid(f"bandIds {bad} out of range: the service has {band_count} band(s) (0-based ids).",
                      parameter="bandIds")
    return band_ids


def _grid_points(grid: OutputGrid, n: int) -> tuple[np.ndarray, np.ndarray]:
    cols = np.linspace(0, grid.width, n)
    rows = np.linspace(0, grid.height, n)
    cc, rr = np.meshgrid(cols, rows)
    a = grid.transform
    return a.a * cc + a.b * rr + a.c, a.d * cc + a.e * rr + a.f


def overview_for(item: RasterItem, grid: OutputGrid) -> int | None:
    """GDAL's warper choice (gdalwarp -ovr AUTO): the coarsest overview not coarser than the target ratio.

    The ratio is source pixels per output pixel along the diagonal of the whole source raster, measured the way
    GDALSuggestedWarpOutput2 does (its densified edges projected into the output pixel space).
    """
    if not item.overview_shapes:
        return None
    n = 21
    t = np.linspace(0.0, 1.0, n)
    cols = np.concatenate([t * item.width, np.full(n, item.width), t[::-1] * item.width, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * item.height, np.full(n, item.height), t[::-1] * item.height])
    a = item.transform
    xs, ys = a.a * cols + a.b * rows + a.c, a.d * cols + a.e * rows + a.f
    dx, dy = sr.transform_points(sr.crs_from_wkt(item.crs_wkt), grid.crs, xs, ys)
    ok = np.isfinite(dx) & np.isfinite(dy)
    if ok.sum() < 2:
        return None
    inv = ~grid.transform
    px = inv.a * dx[ok] + inv.b * dy[ok] + inv.c
    py = inv.d * dx[ok] + inv.e * dy[ok] + inv.f
    diag_dst = math.hypot(px.max() - px.min(), py.max() - py.min())
    if diag_dst <= 0:
        return None
    target = math.hypot(item.width, item.height) / diag_dst
    if target <= 1.0:
        return None
    ratios = [1.0] + [item.width / w for w, _ in item.overview_shapes]
    level = -1
    while level < len(item.overview_shapes) - 1:
        here, nxt = ratios[level + 1], ratios[level + 2]
        if here < target < nxt or abs(here - target) < 0.1:
            break
        level += 1
    return None if level < 0 else level


def _wraps_the_globe(item: RasterItem, crs: CRS) -> bool:
    xmin, _, xmax, _ = item.bounds
    return crs.is_geographic and xmax - xmin >= 359.999


def item_reads(item: RasterItem, grid: OutputGrid, resampling: str) -> tuple[ItemRead, ...]:
    """The windows of ``item`` (at the overview GDAL would use) that the output grid needs; none when it misses."""
    overview = overview_for(item, grid)
    if overview is None:
        width, height, transform = item.width, item.height, item.transform
    else:
        width, height = item.overview_shapes[overview]
        transform = item.transform @ Affine.scale(item.width / width, item.height / height)
    item_crs = sr.crs_from_wkt(item.crs_wkt)
    xs, ys = _grid_points(grid, FOOTPRINT_SAMPLES)
    sx, sy = sr.transform_points(grid.crs, item_crs, xs.ravel(), ys.ravel())
    ok = np.isfinite(sx) & np.isfinite(sy)
    if not ok.any():
        return ()
    sx, sy = sx[ok], sy[ok]
    shifts = (0.0, 360.0, -360.0) if _wraps_the_globe(item, item_crs) else (0.0,)
    reads = []
    for shift in shifts:
        px = sx - shift
        if shift:
            xmin, _, xmax, _ = item.bounds
            inside = (px >= xmin) & (px <= xmax)
            if not inside.any():
                continue
            px_used, py_used = px[inside], sy[inside]
        else:
            px_used, py_used = px, sy
        window = _window(transform, width, height, px_used, py_used, grid, resampling)
        if window is not None:
            reads.append(ItemRead(item=item, overview=overview, window=window, x_shift=shift))
    return tuple(reads)


def _window(transform: Affine, width: int, height: int, xs: np.ndarray, ys: np.ndarray, grid: OutputGrid,
            resampling: str) -> PixelWindow | None:
    inv = ~transform
    cols = inv.a * xs + inv.b * ys + inv.c
    rows = inv.d * xs + inv.e * ys + inv.f
    # Downsampling kernels widen with the scale (as GDAL's do), so the margin grows with source pixels per output.
    scale = max(1.0, (cols.max() - cols.min()) / grid.width, (rows.max() - rows.min()) / grid.height)
    margin = int(math.ceil(KERNEL_RADIUS[resampling] * scale)) + 2
    c0 = max(0, int(math.floor(cols.min())) - margin)
    r0 = max(0, int(math.floor(rows.min())) - margin)
    c1 = min(width, int(math.ceil(cols.max())) + margin)
    r1 = min(height, int(math.ceil(rows.max())) + margin)
    if c1 <= c0 or r1 <= r0:
        return None
    return PixelWindow(c0, r0, c1 - c0, r1 - r0)


def search_bounds(grid: OutputGrid, service_crs: CRS) -> tuple[float, float, float, float] | None:
    """The box, in the service SR, that holds every item the grid can touch (None: the grid does not map there).

    The grid's sample points (edges and interior) taken into the service SR, widened by one sample spacing so that
    an edge bulging between samples, and the kernels' margins, stay inside.
    """
    xs, ys = _grid_points(grid, FOOTPRINT_SAMPLES)
    sx, sy = sr.transform_points(grid.crs, service_crs, xs.ravel(), ys.ravel())
    ok = np.isfinite(sx) & np.isfinite(sy)
    if not ok.any():
        return None
    sx, sy = sx[ok], sy[ok]
    pad_x = (sx.max() - sx.min()) / (FOOTPRINT_SAMPLES - 1)
    pad_y = (sy.max() - sy.min()) / (FOOTPRINT_SAMPLES - 1)
    return sx.min() - pad_x, sy.min() - pad_y, sx.max() + pad_x, sy.max() + pad_y


def view_centre(grid: OutputGrid, service_crs: CRS) -> tuple[float, float]:
    """The output grid's centre in the service SR (what esriMosaicCenter measures from)."""
    cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
    x, y = sr.transform_points(grid.crs, service_crs, np.array([cx]), np.array([cy]))
    return float(x[0]), float(y[0])


def output_pixel_size(grid: OutputGrid, service_crs: CRS) -> float | None:
    """The size of the output grid's middle pixel in service SR units (what MinPS/MaxPS are compared with), or None
    where it does not map there."""
    cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
    ex, ey = grid.transform @ (grid.width / 2 + 1, grid.height / 2)
    xs, ys = sr.transform_points(grid.crs, service_crs, np.array([cx, ex]), np.array([cy, ey]))
    size = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    return size if math.isfinite(size) else None


def grid_centres(grid: OutputGrid, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """The grid's pixel centres, (rows, cols) each, in ``crs`` (within 1/100 of a pixel)."""
    return kernels.pixel_centres(grid.transform, grid.crs, (grid.height, grid.width), crs)


def viewpoint_in(viewpoint, service_crs: CRS) -> tuple[float, float] | None:
    """A mosaic rule's viewpoint (x, y, its SR or None for the service SR) in the service SR."""
    if viewpoint is None:
        return None
    x, y, crs = viewpoint
    xs, ys = sr.transform_points(crs or service_crs, service_crs, np.array([x]), np.array([y]))
    return float(xs[0]), float(ys[0])


def make_plan(params: ExportParams, service: ServiceRecord, grid: OutputGrid, candidates: tuple[RasterItem, ...],
              chain: Chain, referenced: tuple[RasterItem, ...] = (), item_chain: Chain = IDENTITY) -> ExportPlan:
    """Select and order the ``candidates`` (the catalog's items under the grid), and plan their reads over the grid
    widened by the buffers of the chain and of the ``item_chain`` (the mosaic rule's itemRenderingRule).

    bandIds are read as asked when every function treats bands alone; otherwise every band is read and bandIds
    pick from the chain's output (docs/protocol.md §1.2).
    """
    description = service.description
    rule = params.mosaic_rule
    service_crs = sr.crs_from_wkt(description.crs_wkt)
    read_grid = grid.widened(chain.buffer + item_chain.buffer)
    viewpoint = viewpoint_in(rule.viewpoint, service_crs)
    items = mosaic.order_items(rule, candidates, view_centre(grid, service_crs), description.extent,
                               service.settings.max_mosaic_image_count, service.fields, viewpoint)
    resampling = resampling_for(params, service, chain)
    if chain.bandwise and item_chain.is_identity:
        bands, output_bands = band_selection(params.band_ids, description.band_count), None
    else:
        bands = tuple(range(description.band_count))
        output_bands = params.band_ids or None
    reads = tuple(read for item in items for read in item_reads(item, read_grid, resampling))
    return ExportPlan(service=service, grid=grid, read_grid=read_grid, reads=reads, bands=bands,
                      output_bands=output_bands, resampling=resampling, operation=rule.operation, chain=chain,
                      seamline_blend_width=(rule.blend_width if rule.method is mosaic.MosaicMethod.SEAMLINE
                                            else None),
                      item_reads=tuple((item.object_id, item_reads(item, read_grid, resampling))
                                       for item in referenced), item_chain=item_chain)
