"""query: a mosaic dataset's catalog items as features (docs/protocol.md §4): footprints and fields, selected by a
where clause, object ids, an envelope and time, ordered and paged.

An item's footprint is the outline of its valid data in the service SR (``imgsvc.footprints``), densified when
taken to ``outSR``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyproj import CRS

from imgsvc.catalog.records import Field
from imgsvc.errors import invalid, unsupported

# The spatial relations a query's envelope is tested with: the footprint itself (Intersects), or the footprint's
# bounds (EnvelopeIntersects, and IndexIntersects, which ArcGIS answers from its spatial index as well).
FOOTPRINT_INTERSECTS = "esriSpatialRelIntersects"
SPATIAL_RELATIONS = (FOOTPRINT_INTERSECTS, "esriSpatialRelEnvelopeIntersects", "esriSpatialRelIndexIntersects")
_ORDER_TERM = re.compile(r"^\s*(\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)\s*(ASC|DESC)?\s*$", re.IGNORECASE)


# The geometries query takes (docs/protocol.md §4): an envelope (xmin, ymin, xmax, ymax), a point (x, y), or a
# polygon (closed rings of (x, y)).
GEOMETRY_KINDS = ("envelope", "point", "polygon")


@dataclass(frozen=True)
class QueryGeometry:
    kind: str  # one of GEOMETRY_KINDS
    coordinates: tuple  # the envelope's four numbers, the point's two, or the polygon's rings
    crs: CRS | None = None  # None = the service SR


@dataclass(frozen=True)
class QueryParams:
    service: str
    where: str | None = None
    object_ids: tuple[int, ...] = ()
    geometry: QueryGeometry | None = None
    spatial_rel: str = SPATIAL_RELATIONS[0]
    time: tuple[int | None, int | None] | None = None
    out_fields: tuple[str, ...] = ()  # () = OBJECTID only; ("*",) = every field
    return_geometry: bool = True
    ids_only: bool = False
    count_only: bool = False
    order_by: str | None = None
    offset: int = 0
    record_count: int | None = None
    out_crs: CRS | None = None  # None = the service SR
    # Only the items visible at this pixel size (their MinPS..MaxPS): (x, y, its SR or None = the service SR).
    pixel_size: tuple[float, float, CRS | None] | None = None
    # A multidimensional service's slices (imgsvc.multidimensional.DimensionFilter entries); () = every item.
    multidimensional_definition: tuple = ()


def query_geometry(kind: str, coordinates, crs: CRS | None = None) -> QueryGeometry:
    """A query geometry, checked: finite numbers, an envelope's corners sorted, polygon rings closed with at least
    four points."""
    if kind not in GEOMETRY_KINDS:
        raise unsupported(f"geometryType {kind!r} is not supported by query; send an envelope, a point or a "
                          "polygon.", parameter="geometryType")
    if kind == "polygon":
        rings = tuple(tuple((float(x), float(y)) for x, y in ring) for ring in coordinates)
        numbers = [v for ring in rings for point in ring for v in point]
        if not rings or any(len(r) < 4 or r[0] != r[-1] for r in rings):
            raise invalid("geometry: a polygon's rings must be closed, with at least 4 points each.",
                          parameter="geometry")
        coordinates = rings
    else:
        numbers = coordinates = tuple(float(v) for v in coordinates)
    if not all(math.isfinite(v) for v in numbers):
        raise invalid(f"geometry must be {'an' if kind == 'envelope' else 'a'} {kind} of finite numbers.",
                      parameter="geometry")
    if kind == "envelope":
        xmin, xmax = sorted(coordinates[0::2])
        ymin, ymax = sorted(coordinates[1::2])
        coordinates = (xmin, ymin, xmax, ymax)
    return QueryGeometry(kind, coordinates, crs)


def query_params(service: str, *, where: str | None = None, object_ids: Sequence[int] = (),
                 geometry: QueryGeometry | None = None, spatial_rel: str | None = None,
                 time: tuple[int | None, int | None] | None = None,
                 out_fields: Sequence[str] = (), return_geometry: bool | None = None, ids_only: bool = False,
                 count_only: bool = False, order_by: str | None = None, offset: int | None = None,
                 record_count: int | None = None, out_crs: CRS | None = None,
                 pixel_size: tuple[float, float, CRS | None] | None = None,
                 multidimensional_definition: Sequence = ()) -> QueryParams:
    """Validate query's values (the doors convert theirs into these)."""
    if not service:
        raise invalid("service is required.")
    relation = spatial_rel or SPATIAL_RELATIONS[0]
    if relation not in SPATIAL_RELATIONS:
        raise unsupported(f"spatialRel {relation!r} is not supported; a geometry is tested with "
                          f"{', '.join(SPATIAL_RELATIONS)}.", parameter="spatialRel")
    if offset is not None and offset < 0:
        raise invalid("resultOffset must be 0 or more.", parameter="resultOffset")
    if record_count is not None and record_count < 1:
        raise invalid("resultRecordCount must be 1 or more.", parameter="resultRecordCount")
    if pixel_size is not None and not all(math.isfinite(v) and v > 0 for v in pixel_size[:2]):
        raise invalid("pixelSize must be two positive numbers.", parameter="pixelSize")
    return QueryParams(service, where or None, tuple(object_ids), geometry, relation, time,
                       tuple(f.strip() for f in out_fields if f.strip()), True if return_geometry is None
                       else return_geometry, ids_only, count_only, order_by or None, offset or 0, record_count,
                       out_crs, pixel_size, tuple(multidimensional_definition))


@dataclass(frozen=True)
class QueryFeature:
    attributes: dict[str, Any]
    rings: tuple[tuple[tuple[float, float], ...], ...]  # closed rings in the answer's SR; () without geometry


@dataclass(frozen=True)
class QueryResult:
    fields: tuple[Field, ...]
    features: tuple[QueryFeature, ...] = ()
    object_ids: tuple[int, ...] = ()
    count: int = 0
    exceeded_transfer_limit: bool = False
    crs: CRS | None = None


def field_named(fields: Sequence[Field], name: str, parameter: str) -> Field:
    """The service's field called ``name`` (case-insensitively), or a 400 naming it."""
    for field in fields:
        if field.name.lower() == name.strip('"').lower():
            return field
    raise invalid(f"{parameter}: {name!r} is not a field of the service.", parameter=parameter)


def out_fields(fields: Sequence[Field], names: Sequence[str]) -> tuple[Field, ...]:
    """The fields the answer carries: OBJECTID always, then the ones named (all for "*"), in the service's order."""
    if "*" in names:
        return tuple(fields)
    wanted = {field_named(fields, name, "outFields").name for name in names}
    return tuple(f for f in fields if f.name in wanted or f is fields[0])


def order_terms(fields: Sequence[Field], text: str | None) -> list[tuple[Field, bool]]:
    """orderByFields as (field, descending) pairs, each field one of the service's; object id order breaks ties."""
    if not text:
        return []
    terms = []
    for part in text.split(","):
        match = _ORDER_TERM.match(part)
        if match is None:
            raise invalid(f"orderByFields: {part.strip()!r} is not 'Field [ASC|DESC]'.", parameter="orderByFields")
        terms.append((field_named(fields, match.group(1), "orderByFields"),
                      (match.group(2) or "ASC").upper() == "DESC"))
    return terms
