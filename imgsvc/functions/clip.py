"""Clip: NoData outside (or inside) a polygon or envelope (docs/protocol.md §6.2).

The geometry comes as Esri JSON with its spatial reference; its ring vertices are projected into the grid's CRS
(edges densified first, so a straight edge in one CRS follows its curve in the other) and then into pixel
coordinates.  A pixel is inside when its centre is, by the even-odd rule over all rings (so holes are honoured
whatever their winding): the crossings of every edge with the centre line of every pixel row are
computed with numpy (their number bounded before any work), sorted, and a compiled kernel fills the pixels between
each row's first and second crossing, third and fourth, and so on.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from imgsvc import sr
from imgsvc._kernels import polygon as _polygon
from imgsvc.errors import ImgsvcError, unsupported
from imgsvc.functions.base import RasterFunction

KEEP_INSIDE, KEEP_OUTSIDE = 1, 2
MAX_VERTICES = 100_000  # after densification: a clipping polygon is a boundary, not a dataset
MAX_CROSSINGS = 20_000_000  # edge/row crossings: the work (and memory) of rasterising, bounded before it starts
DENSIFY_STEPS = 64  # an edge is cut into pieces of at most 1/64 of the geometry's diagonal, when CRSs differ
MAX_PIECES_PER_EDGE = 64


class Clip(RasterFunction):
    """Clip: ``ClippingGeometry`` (``{"rings": [...], "spatialReference": ...}`` or ``{"xmin", "ymin", "xmax",
    "ymax", "spatialReference"}``), ``ClipType``/``ClippingType`` 1 keeps the inside (default), 2 the outside;
    removed pixels become NoData, values and type unchanged.  The geometry must carry its spatialReference (the
    grid's CRS is the export's imageSR, not one a client can be assumed to mean).  ``ClippingRaster``, ``Extent``
    and ``UseInputFeatureGeometry`` are refused as not supported."""

    NAME = "Clip"
    ARGUMENTS = {"ClippingGeometry": ("ClippingGeometry",), "ClipType": ("ClipType", "ClippingType"),
                 "ClippingRaster": ("ClippingRaster",), "Extent": ("Extent",),
                 "UseInputFeatureGeometry": ("UseInputFeatureGeometry",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        for name in ("ClippingRaster", "Extent", "UseInputFeatureGeometry"):
            if self.has(name):
                raise unsupported(f"renderingRule Clip argument {name} is not supported yet; give a "
                                  "ClippingGeometry.", parameter="renderingRule")
        self.keep_inside = self.integer("ClipType", KEEP_INSIDE, KEEP_INSIDE, KEEP_OUTSIDE) == KEEP_INSIDE
        if not self.has("ClippingGeometry"):
            raise self.bad("ClippingGeometry", "is required")
        geometry = self.arguments["ClippingGeometry"]
        if isinstance(geometry, str):
            try:
                geometry = json.loads(geometry)
            except ValueError:
                raise self.bad("ClippingGeometry", "must be a polygon or envelope JSON object") from None
        if not isinstance(geometry, Mapping):
            raise self.bad("ClippingGeometry", f"must be a polygon or envelope JSON object, got {geometry!r}")
        self.rings = self._rings(geometry)
        self.crs = self._crs(geometry.get("spatialReference"))

    def _rings(self, geometry: Mapping[str, Any]) -> list[np.ndarray]:
        """The rings as (n, 2) float64 arrays of x, y, each closed."""
        if "rings" in geometry:
            rings = geometry["rings"]
            if not isinstance(rings, list) or not rings:
                raise self.bad("ClippingGeometry", "rings must be a non-empty list of rings")
            out = [self._ring(ring) for ring in rings]
        elif all(k in geometry for k in ("xmin", "ymin", "xmax", "ymax")):
            x0, y0, x1, y1 = (self._number(geometry[k], "ClippingGeometry", None, None)
                              for k in ("xmin", "ymin", "xmax", "ymax"))
            if not (x0 < x1 and y0 < y1):
                raise self.bad("ClippingGeometry", "envelope must have xmin < xmax and ymin < ymax")
            out = [np.array([(x0, y0), (x0, y1), (x1, y1), (x1, y0), (x0, y0)], np.float64)]
        else:
            raise self.bad("ClippingGeometry", "must be a polygon (rings) or an envelope (xmin, ymin, xmax, ymax)")
        if sum(len(r) for r in out) > MAX_VERTICES:
            raise self.bad("ClippingGeometry", f"has more than {MAX_VERTICES} vertices")
        return out

    def _ring(self, ring: Any) -> np.ndarray:
        try:
            points = np.array(ring, dtype=np.float64)
        except (TypeError, ValueError):
            points = None
        if points is None or points.ndim != 2 or points.shape[1] < 2 or len(points) < 3 \
                or not np.isfinite(points[:, :2]).all():
            raise self.bad("ClippingGeometry", "each ring must be a list of at least 3 [x, y] points")
        points = points[:, :2]
        if not np.array_equal(points[0], points[-1]):
            points = np.vstack([points, points[:1]])
        return points

    def _crs(self, reference: Any):
        if not isinstance(reference, Mapping):
            raise self.bad("ClippingGeometry", "needs a spatialReference ({\"wkid\": ...} or {\"wkt\": ...})")
        try:
            return sr.crs_from_parts(reference.get("wkid"), reference.get("latestWkid"), reference.get("wkt"))
        except (ImgsvcError, TypeError, ValueError) as exc:
            raise self.bad("ClippingGeometry", f"spatialReference {reference!r} is not usable") from exc

    def describe(self, inputs):
        return inputs[0]

    def apply(self, inputs, grid):
        (source,) = inputs
        inside = self.inside(grid)
        return source.data, source.valid & (inside if self.keep_inside else ~inside)

    def inside(self, grid) -> np.ndarray:
        """(rows, cols) bool: the pixels of ``grid`` whose centre is inside the geometry (even-odd rule)."""
        rings = self.rings if self.crs == grid.crs else _densified(self.rings)
        pixel_rings = []
        for ring in rings:
            xs, ys = (np.asarray(v) for v in sr.transform_points(self.crs, grid.crs, ring[:, 0], ring[:, 1]))
            if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
                raise self.bad("ClippingGeometry", "cannot be projected into the export's spatial reference")
            pixel_rings.append(np.column_stack(~grid.transform * (xs, ys)))
        try:
            return even_odd_mask(pixel_rings, grid.height, grid.width)
        except TooManyCrossings:
            raise self.bad("ClippingGeometry", "is too detailed for the export size (too many edge crossings "
                           "of pixel rows)") from None


def _densified(rings: list[np.ndarray]) -> list[np.ndarray]:
    """The rings with each edge cut into pieces no longer than 1/DENSIFY_STEPS of the geometry's diagonal (at most
    MAX_PIECES_PER_EDGE pieces an edge); as they are when that would make more than MAX_VERTICES vertices."""
    points = np.vstack(rings)
    diagonal = float(np.hypot(*(points.max(axis=0) - points.min(axis=0))))
    if diagonal == 0:
        return rings
    edges = [(ring[:-1], ring[1:]) for ring in rings]
    pieces = [np.clip(np.ceil(np.hypot(*(ends - starts).T) / (diagonal / DENSIFY_STEPS)), 1,
                      MAX_PIECES_PER_EDGE).astype(np.int64) for starts, ends in edges]
    if sum(int(p.sum()) for p in pieces) > MAX_VERTICES:
        return rings
    out = []
    for ring, (starts, ends), counts in zip(rings, edges, pieces):
        fractions = np.concatenate([np.arange(n) / n for n in counts])
        edge = np.repeat(np.arange(len(starts)), counts)
        cut = starts[edge] + (ends[edge] - starts[edge]) * fractions[:, None]
        out.append(np.vstack([cut, ring[-1:]]))
    return out


class TooManyCrossings(ValueError):
    """Rasterising the rings would take more than MAX_CROSSINGS edge/row crossings."""


def even_odd_mask(rings: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(height, width) bool: pixels whose centre (col + 0.5, row + 0.5) is inside ``rings`` (closed (n, 2) arrays
    in pixel coordinates) by the even-odd rule; an edge crosses row r when its y span holds r + 0.5, half-open."""
    edges = np.vstack([np.concatenate([r[:-1], r[1:]], axis=1) for r in rings])  # x0, y0, x1, y1
    x0, y0, x1, y1 = edges.T
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(low - 0.5), 0, height).astype(np.int64)  # rows whose centre is >= low ...
    last = np.clip(np.ceil(high - 0.5), 0, height).astype(np.int64)  # ... and < high
    spans = np.maximum(last - first, 0)
    if spans.sum() > MAX_CROSSINGS:
        raise TooManyCrossings
    edge = np.repeat(np.arange(len(edges)), spans)
    offsets = np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    rows = first[edge] + offsets
    centre_y = rows + 0.5
    x = x0[edge] + (centre_y - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    # The pixels right of a crossing at x (their centre col + 0.5 > x) start at column floor(x - 0.5) + 1.
    cols = np.clip(np.floor(x - 0.5) + 1, 0, width).astype(np.intp)
    order = np.lexsort((cols, rows))
    out = np.zeros((height, width), np.uint8)
    _polygon.fill_even_odd(np.ascontiguousarray(rows[order], np.intp), np.ascontiguousarray(cols[order]), out)
    return out.view(bool)
