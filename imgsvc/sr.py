"""Spatial references: ArcGIS wkid / SR JSON <-> pyproj CRS, cached per-thread transformers, bbox projection.

pyproj lives behind this module only.  A PROJ transformer is not thread-safe, so each thread gets its own.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import math
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from pyproj import CRS, Transformer, network
from pyproj.crs import CoordinateOperation
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup

from imgsvc.errors import invalid

# PROJ may download grids it lacks from a CDN when networking is on: a request must never make the server fetch.
network.set_network_enabled(False)

# How PROJ strings, WKT and ESRI WKT name a file PROJ would open (docs/decisions.md "Hardening"): the PROJ keys that
# take a grid, model or init file, WKT2's PARAMETERFILE, WKT1's PROJ4 extensions and an ESRI dataset given as a path.
# A request names grids by the transformation's code or its known name; PROJ then finds them among its installed ones.
_FILE_REFERENCE = re.compile(
    r"\b(?:init|grids|nadgrids|geoidgrids|hgrids|vgrids|xy_grids|z_grids|file|model)\s*="
    r"|\bPARAMETERFILE\b|\bPROJ4(?:_GRIDS)?\b|\bEXTENSION\s*\["
    r"|\bDataset_(?:[/\\~]|[^\"\]]*\.\.)", re.IGNORECASE)


def refuse_file_references(text: str, parameter: str) -> None:
    """Refuse a spatial reference or transformation text that could make PROJ open a file (a path, a grid or init
    file, PROJJSON, whose parameters can name files too), before PROJ sees it."""
    if text.lstrip().startswith("{"):
        raise invalid(f"{parameter} must be a wkid or WKT; PROJJSON is not taken.", parameter=parameter)
    if _FILE_REFERENCE.search(text):
        raise invalid(f"{parameter} names a file (a grid, init or parameter file): name a transformation by its "
                      "wkid or a spatial reference by wkid or WKT instead.", parameter=parameter)


# Esri keeps old ids alive: 102100/102113 are Web Mercator (docs/protocol.md §1.6).
_WKID_ALIASES = {102100: 3857, 102113: 3857, 900913: 3857, 104199: 4326}
# The wkid Esri reports for a latest one, so responses carry both (Web Mercator is reported as 102100).
_LEGACY_WKID = {3857: 102100}


@functools.lru_cache(maxsize=512)
def crs_from_wkid(wkid: int) -> CRS:
    """A CRS from an Esri or EPSG well-known id."""
    code = _WKID_ALIASES.get(wkid, wkid)
    for authority in ("EPSG", "ESRI"):
        try:
            return CRS.from_user_input(f"{authority}:{code}")
        except CRSError:
            continue
    raise invalid(f"Unknown spatial reference wkid {wkid}.")


@functools.lru_cache(maxsize=128)
def crs_from_wkt(wkt: str) -> CRS:
    try:
        return CRS.from_wkt(wkt)
    except CRSError as exc:  # PROJ's text can name its own files: the request is told what, not PROJ's words
        raise invalid("Invalid spatial reference WKT.") from exc


def crs_from_parts(wkid: int | None = None, latest_wkid: int | None = None, wkt: str | None = None,
                   parameter: str = "spatialReference") -> CRS:
    """The CRS an ArcGIS SR object names; latestWkid wins over wkid, and either over wkt.  ``parameter`` is the
    request's name for it, which a refusal names."""
    for code in (latest_wkid, wkid):
        if code:
            return crs_from_wkid(int(code))
    if wkt:
        refuse_file_references(wkt, parameter)
        return crs_from_wkt(wkt)
    raise invalid("A spatial reference needs a wkid, latestWkid or wkt.")


def parse_sr(text: str, name: str) -> CRS:
    """Parse an SR query parameter: a bare wkid (``3857``) or SR JSON (``{"wkid": 3857}`` / ``{"wkt": ...}``)."""
    text = text.strip()
    try:
        if text.startswith("{"):
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError
            return crs_from_parts(obj.get("wkid"), obj.get("latestWkid"), obj.get("wkt") or obj.get("wkt2"), name)
        return crs_from_wkid(int(float(text)) if text.replace(".", "", 1).isdigit() else int(text))
    except (ValueError, TypeError) as exc:
        raise invalid(f"Invalid {name}: {text!r}.") from exc


def wkid_of(crs: CRS) -> int | None:
    """The EPSG (or ESRI) code of a CRS, or None when it has none."""
    auth = crs.to_authority(min_confidence=90)
    if auth and auth[0] in ("EPSG", "ESRI"):
        return int(auth[1])
    return None


def sr_json(crs: CRS) -> dict:
    """ArcGIS SR JSON for a CRS: ``{"wkid", "latestWkid"}`` when it has a code, else ``{"wkt"}``."""
    code = wkid_of(crs)
    if code is None:
        return {"wkt": crs.to_wkt(version="WKT1_ESRI")}
    return {"wkid": _LEGACY_WKID.get(code, code), "latestWkid": code}


@dataclass(frozen=True)
class DatumTransformation:
    """ArcGIS `datumTransformation`: one geographic transformation or a chain of them, by PROJ database name.

    It applies wherever a request transforms between two different datums that the chain connects (service SR <->
    imageSR above all); between SRs on one datum it has nothing to do, as in ArcGIS.
    """

    names: tuple[str, ...]
    label: str  # how the request named it, for error messages


def _operation_name(wkid: int | None, wkt: str | None) -> str:
    if wkid is not None:
        for authority in ("EPSG", "ESRI"):
            try:
                return CoordinateOperation.from_authority(authority, wkid).name
            except (CRSError, ProjError):
                continue
        raise invalid(f"Unknown datumTransformation wkid {wkid}.", parameter="datumTransformation")
    refuse_file_references(wkt, "datumTransformation")
    try:
        return CoordinateOperation.from_string(wkt).name
    except (CRSError, ProjError) as exc:
        raise invalid("datumTransformation WKT is not a transformation PROJ knows.",
                      parameter="datumTransformation") from exc


def datum_transformation(steps: list[tuple[int | None, str | None]]) -> DatumTransformation:
    """The chain named by (wkid, wkt) steps, in order.  Direction is resolved per transformer, as ArcGIS does."""
    names = tuple(_operation_name(wkid, wkt) for wkid, wkt in steps)
    label = " + ".join(str(wkid) if wkid is not None else name for (wkid, _), name in zip(steps, names))
    return DatumTransformation(names=names, label=label)


_DATUM_TRANSFORMATION: contextvars.ContextVar[DatumTransformation | None] = contextvars.ContextVar(
    "imgsvc_datum_transformation", default=None)


@contextlib.contextmanager
def datum_transformation_scope(choice: DatumTransformation | None):
    """Every transformer made in this scope (this request, on this thread) honours ``choice``."""
    token = _DATUM_TRANSFORMATION.set(choice)
    try:
        yield
    finally:
        _DATUM_TRANSFORMATION.reset(token)


def _same_datum(src: CRS, dst: CRS) -> bool:
    a, b = src.geodetic_crs, dst.geodetic_crs
    return a is None or b is None or a.datum == b.datum


def _chosen_transformer(src: CRS, dst: CRS, choice: DatumTransformation) -> Transformer:
    """The candidate PROJ offers between src and dst whose operations run through ``choice``'s chain, in order."""
    with warnings.catch_warnings():  # PROJ warns when its own best choice lacks a grid: not our choice here
        warnings.simplefilter("ignore", UserWarning)
        group = TransformerGroup(src, dst, always_xy=True, allow_ballpark=False)
    for candidate in group.transformers:
        names = [op.name.removeprefix("Inverse of ") for op in candidate.operations or ()]
        remaining = iter(names)
        if all(name in remaining for name in choice.names):  # an ordered subsequence
            return candidate
    for op in group.unavailable_operations:
        if any(name in op.name for name in choice.names):
            raise invalid(f"datumTransformation {choice.label} needs a grid file that is not installed.")
    raise invalid(f"datumTransformation {choice.label} does not transform between {src.name} and {dst.name}.")


_local = threading.local()
# Transformers each thread keeps, least recently used dropped first: requests may name any number of spatial
# references (2 000 distinct imageSR WKTs once grew an unbounded cache by 270 MB).
TRANSFORMERS_PER_THREAD = 64


def transformer(src: CRS, dst: CRS) -> Transformer:
    """A per-thread cached transformer, always x/y (easting/longitude first) order.

    Inside a :func:`datum_transformation_scope`, a transformation between different datums goes through the
    requested geographic transformation(s) instead of PROJ's default choice.
    """
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    choice = _DATUM_TRANSFORMATION.get()
    if choice is not None and _same_datum(src, dst):
        choice = None
    key = (src.srs if src.srs else src.to_wkt(), dst.srs if dst.srs else dst.to_wkt(), choice)
    tr = cache.get(key)
    if tr is None:
        if choice is None:
            tr = Transformer.from_crs(src, dst, always_xy=True)
        else:
            tr = _chosen_transformer(src, dst, choice)
        cache[key] = tr
        if len(cache) > TRANSFORMERS_PER_THREAD:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return tr


def _x_period(crs: CRS) -> float | None:
    """The span after which x repeats (360 degrees, or the equator's length on a cylindrical projection)."""
    if crs.is_geographic:
        return 360.0
    method = (crs.coordinate_operation.method_name if crs.coordinate_operation else "").lower()
    if not any(word in method for word in ("mercator", "equirectangular", "cylindrical", "plate carree", "miller")):
        return None
    if "transverse" in method or "oblique" in method:  # UTM and its kin: the cylinder is not along the equator
        return None
    geographic = crs.geodetic_crs
    east, _ = transformer(geographic, crs).transform(180.0, 0.0)
    west, _ = transformer(geographic, crs).transform(-180.0, 0.0)
    span = east - west
    return span if math.isfinite(span) and span > 0 else None


def _singular_at_poles(crs: CRS) -> bool:
    """Projections that send a pole (Mercator family) or the far hemisphere (polar stereographic) to infinity."""
    method = (crs.coordinate_operation.method_name if crs.coordinate_operation else "").lower()
    return ("mercator" in method and "transverse" not in method) or "polar stereographic" in method


def _clamp_latitudes(src: CRS, dst: CRS, bounds: tuple[float, float, float, float]):
    """A geographic bbox cut to the latitudes ``dst`` is defined for, where beyond them it runs off to infinity
    (ArcGIS likewise shows Web Mercator only to +-85.05 degrees); other projections keep the bbox as asked."""
    area = dst.area_of_use
    if not (src.is_geographic and area is not None and _singular_at_poles(dst)):
        return bounds
    xmin, ymin, xmax, ymax = bounds
    south, north = max(ymin, area.south), min(ymax, area.north)
    if south >= north:
        raise invalid("The bbox lies outside the latitudes the requested spatial reference covers.")
    return xmin, south, xmax, north


def transform_bounds(src: CRS, dst: CRS, bounds: tuple[float, float, float, float],
                     densify: int = 21) -> tuple[float, float, float, float]:
    """The envelope of a bbox's densified boundary projected into ``dst`` (docs/protocol.md §1.2).

    Corner-only projection is wrong for rotated projections, so every edge carries ``densify`` points.  A bbox that
    crosses the antimeridian keeps going east (xmax beyond 180 degrees, or beyond the Web Mercator edge) instead of
    turning into an envelope of the whole world, and a geographic envelope reaches a pole it contains.
    """
    if src == dst:
        return bounds
    try:
        if dst.is_geographic:
            left, bottom, right, top = transformer(src, dst).transform_bounds(*bounds, densify_pts=densify)
            if left > right:  # pyproj's signal for a crossing of the antimeridian
                right += 360.0
            out = (left, bottom, right, top)
        else:
            xmin, ymin, xmax, ymax = _clamp_latitudes(src, dst, bounds)
            t = np.linspace(0.0, 1.0, densify)
            ring_x = np.concatenate([xmin + t * (xmax - xmin), np.full(densify, xmax),
                                     xmax - t * (xmax - xmin), np.full(densify, xmin)])
            ring_y = np.concatenate([np.full(densify, ymin), ymin + t * (ymax - ymin),
                                     np.full(densify, ymax), ymax - t * (ymax - ymin)])
            xs, ys = transform_points(src, dst, ring_x, ring_y)
            ok = np.isfinite(xs) & np.isfinite(ys)
            if not ok.any():
                raise invalid("The bbox cannot be projected into the requested spatial reference.")
            xs, ys = xs[ok], ys[ok]
            period = _x_period(dst)
            if period:
                xs = np.unwrap(xs, period=period)  # walk the ring continuously across the antimeridian
            out = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    except ProjError as exc:
        raise invalid("The bbox cannot be projected into the requested spatial reference.") from exc
    if not all(math.isfinite(v) for v in out):
        raise invalid("The bbox cannot be projected into the requested spatial reference.")
    return out


def transform_points(src: CRS, dst: CRS, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project coordinate arrays; points outside the projection's domain come back as inf/nan."""
    if src == dst:
        return xs, ys
    return transformer(src, dst).transform(xs, ys, errcheck=False)
