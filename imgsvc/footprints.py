"""Item footprints: the outline of where an item holds data, as polygons (shapely lives behind this module).

A footprint is a tuple of closed rings, each the outer boundary of one part of the item's valid data (holes, such
as clouds inside a scene, are not part of it: the footprint says where an item may answer, docs/decisions.md
"Footprints").  The catalog keeps each item's footprint in the service SR; an empty footprint means the item's
bounds.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon, box, shape

from imgsvc import sr

Ring = tuple[tuple[float, float], ...]
Footprint = tuple[Ring, ...]

# Most parts a footprint keeps (the largest): an item's data is a few areas, not a speckle of pixels.
MAX_PARTS = 16
# Points per ring edge when a footprint is taken to another SR, so that a curved edge stays close to the truth.
EDGE_POINTS = 8


def rectangle(bounds: Sequence[float]) -> Footprint:
    """``bounds`` (xmin, ymin, xmax, ymax) as a footprint: one clockwise ring, as Esri polygons are."""
    return _rings(box(*bounds))


def outline(parts: Iterable[dict], tolerance: float, bounds: Sequence[float]) -> Footprint:
    """The footprint of valid-data polygons (GeoJSON-like mappings, e.g. from a polygonised mask), simplified to
    ``tolerance`` without ever cutting into the data: the union is grown by the tolerance before it is simplified,
    then clipped to the item's ``bounds``."""
    geometry = shapely.union_all([Polygon(shape(p).exterior) for p in parts])
    if geometry.is_empty:
        return ()
    grown = geometry.buffer(tolerance, join_style="mitre").simplify(tolerance, preserve_topology=True)
    return _rings(grown.intersection(box(*bounds)))


def _rings(geometry) -> Footprint:
    polygons = [g for g in getattr(geometry, "geoms", [geometry]) if isinstance(g, Polygon) and not g.is_empty]
    polygons = sorted(polygons, key=lambda g: g.area, reverse=True)[:MAX_PARTS]
    # Esri rings: outer boundaries clockwise.
    return tuple(tuple((float(x), float(y)) for x, y in shapely.orient_polygons(p, exterior_cw=True).exterior.coords)
                 for p in polygons)


def _polygon(footprint: Footprint, bounds: Sequence[float]):
    return MultiPolygon([Polygon(r) for r in footprint]) if footprint else box(*bounds)


def to_crs(footprint: Footprint, src: CRS, dst: CRS) -> Footprint:
    """The footprint in ``dst``, each edge densified so that a curved edge stays close; points that do not
    project are dropped, and rings left with fewer than 4 points with them."""
    if src == dst:
        return footprint
    rings = []
    for ring in footprint:
        dense = np.asarray(shapely.segmentize(Polygon(ring), _max_edge(ring)).exterior.coords)
        xs, ys = sr.transform_points(src, dst, dense[:, 0], dense[:, 1])
        points = tuple((float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))
        if len(points) >= 4:
            rings.append(points if points[0] == points[-1] else points + points[:1])
    return tuple(rings)


def _max_edge(ring: Ring) -> float:
    xs, ys = zip(*ring)
    return max(max(xs) - min(xs), max(ys) - min(ys)) / EDGE_POINTS or 1.0


def bounds_of(footprint: Footprint) -> tuple[float, float, float, float]:
    xs = [x for ring in footprint for x, _ in ring]
    ys = [y for ring in footprint for _, y in ring]
    return min(xs), min(ys), max(xs), max(ys)


def meets_box(footprint: Footprint, area: Sequence[float]) -> bool:
    """Whether the footprint meets the rectangle ``area`` (see ``meets``); one whose outline lies inside the area
    does without a polygon test (the common case of a request over many small items)."""
    if footprint:
        xmin, ymin, xmax, ymax = bounds_of(footprint)
        if area[0] <= xmin and xmax <= area[2] and area[1] <= ymin and ymax <= area[3]:
            return True
    return meets(footprint, box(*area))


def overlaps(footprint: Footprint, bounds: Sequence[float], other: Footprint, other_bounds: Sequence[float]) -> bool:
    """Whether two footprints share some area (touching edges do not count)."""
    return bool(_polygon(footprint, bounds).intersection(_polygon(other, other_bounds)).area > 0)


def covers_point(footprint: Footprint, x: float, y: float) -> bool:
    """Whether the point (x, y) lies in the footprint or on its edge (see ``meets``)."""
    return meets(footprint, shapely.Point(x, y))


def area(kind: str, coordinates, src: CRS, dst: CRS):
    """A query geometry (``catalog_query.GEOMETRY_KINDS``) given in ``src``, in ``dst``: what footprints are tested
    against.  A polygon's rings combine by the even-odd rule, so Esri's counter-clockwise holes are holes."""
    if kind == "point":
        xs, ys = sr.transform_points(src, dst, np.array([coordinates[0]]), np.array([coordinates[1]]))
        return shapely.Point(float(xs[0]), float(ys[0]))
    rings = rectangle(coordinates) if kind == "envelope" else coordinates
    polygons = [Polygon(r) for r in to_crs(rings, src, dst)]
    return functools.reduce(lambda a, b: a.symmetric_difference(b), polygons) if polygons else shapely.Point()


def meets(footprint: Footprint, geometry) -> bool:
    """Whether the footprint meets ``geometry`` (a shapely geometry in the same SR: a point on its edge does); an
    item without an outline is taken to (the catalog matched its bounds already)."""
    return not footprint or bool(_outline(footprint).intersects(geometry))


@functools.lru_cache(maxsize=4096)
def _outline(footprint: Footprint):
    """The footprint's polygon, made once: every request tests the same items' footprints (shapely geometries are
    immutable, so threads share them)."""
    return _polygon(footprint, ())


def centre(footprint: Footprint, item_bounds: Sequence[float]) -> tuple[float, float]:
    """The footprint's centroid (an item's CenterX, CenterY)."""
    c = _polygon(footprint, item_bounds).centroid
    return float(c.x), float(c.y)
