"""ArcGIS query/form parameters -> ExportImageRequest.

Names are matched case-insensitively (docs/protocol.md §0, docs/decisions.md Q17: Esri's own examples mix cases);
empty values count as absent, and unknown names are ignored (clients send `transparent`, `dpi`, `layers`, `_ts`, ...).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping

from google.protobuf import json_format, struct_pb2

from imgsvc import documents, mosaic
from imgsvc.encode import FORMATS as OUTPUT_FORMATS
from imgsvc.encode.geotiff import COMPRESSION_ALIASES
from imgsvc.errors import invalid, unsupported
from imgsvc.grpc import enums
from imgsvc.v1 import image_service_pb2 as pb


def _folded(values: Mapping[str, int], aliases: Mapping[str, str] | None = None) -> dict[str, int]:
    """Lower-cased ArcGIS names, and their ``aliases`` (alias -> name), -> proto values: the lookup table of a
    parameter matched case-insensitively."""
    table = {name.lower(): value for name, value in values.items()}
    table.update((alias.lower(), values[name]) for alias, name in (aliases or {}).items())
    return table


FORMATS = _folded(enums.FORMAT, {alias: f.name for f in OUTPUT_FORMATS.values() for alias in f.aliases})
PIXEL_TYPES = enums.PIXEL_TYPE  # matched in upper case
INTERPOLATIONS = _folded(enums.INTERPOLATION)
COMPRESSIONS = _folded(enums.COMPRESSION, COMPRESSION_ALIASES)
NO_DATA_INTERPRETATIONS = _folded(enums.NO_DATA_INTERPRETATION)
# The mosaic vocabularies of the core (imgsvc.mosaic), under both spellings clients send, folded: the request JSON's
# esriMosaic*/MT_* and the root's short names (docs/protocol.md §5.3).
MOSAIC_METHODS = {spelling.lower(): pb.MosaicMethod.Value(f"ESRI_MOSAIC_{m.name}")
                  for m in mosaic.MosaicMethod for spelling in (f"esriMosaic{m.name.replace('_', '')}", m.value)}
MOSAIC_OPERATIONS = {spelling.lower(): pb.MosaicOperation.Value(f"MT_{o.name}")
                     for o in mosaic.MosaicOperation for spelling in (f"MT_{o.name}", o.value)}
RESPONSE_FORMS = ("html", "json", "pjson", "image", "kmz")


class Params:
    """Case-insensitive view of the request's parameters; blank values are absent."""

    def __init__(self, items) -> None:
        self._values: dict[str, str] = {}
        for key, value in items:
            value = value.strip() if isinstance(value, str) else value
            if isinstance(value, str) and value != "":
                self._values[key.lower()] = value

    def get(self, name: str) -> str | None:
        return self._values.get(name.lower())

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values


def _parameter(name: str) -> str:
    """The ArcGIS parameter that a name given to the helpers below points into: ``bbox`` for ``bbox.xmin``."""
    return name.split(".", 1)[0]


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON value")


def _json(text: str, name: str):
    """The parameter's JSON document, within the bounds of ``imgsvc.documents``."""
    try:
        document = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise invalid(f"{name} is not valid JSON: {exc}", parameter=_parameter(name)) from None
    return documents.check(document, _parameter(name))


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise invalid(f"{name} must be a number, got {text!r}.", parameter=_parameter(name)) from None
    if not math.isfinite(value):
        raise invalid(f"{name} must be a finite number, got {text!r}.", parameter=_parameter(name))
    return value


def _integer(text: str, name: str) -> int:
    value = _number(text, name)
    if value != int(value):
        raise invalid(f"{name} must be an integer, got {text!r}.", parameter=_parameter(name))
    return int(value)


def _int32(text: str, name: str, bits: int = 32) -> int:
    value = _integer(text, name)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise invalid(f"{name} is out of range, got {text!r}.", parameter=_parameter(name))
    return value


def _numbers(text: str, name: str, count: int | None = None) -> list[float]:
    parts = [p.strip() for p in text.strip("[]").split(",")]
    if count is not None and len(parts) != count:
        raise invalid(f"{name} needs {count} comma-separated numbers, got {text!r}.", parameter=_parameter(name))
    return [_number(p, name) for p in parts]


def _bool(text: str, name: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid(f"{name} must be true or false, got {text!r}.", parameter=_parameter(name))


def _enum(table: Mapping[str, int], text: str, name: str, fold: bool = True) -> int:
    value = table.get(text.lower() if fold else text)
    if value is None:
        raise invalid(f"{name} {text!r} is not supported; expected one of: {', '.join(sorted(set(table)))}.",
                      parameter=_parameter(name))
    return value


def spatial_reference(text: str, name: str) -> pb.SpatialReference:
    """`3857`, `{"wkid": 3857}`, `{"wkid": 102100, "latestWkid": 3857}` or `{"wkt": "..."}`."""
    if text.lstrip().startswith("{"):
        obj = _json(text, name)
        if not isinstance(obj, dict):
            raise invalid(f"{name} must be a wkid or a spatial reference object.", parameter=_parameter(name))
        return _sr_object(obj, name)
    return pb.SpatialReference(wkid=_int32(text, name))


def _sr_object(obj: dict, name: str) -> pb.SpatialReference:
    msg = pb.SpatialReference()
    for key, field in (("wkid", "wkid"), ("latestWkid", "latest_wkid")):
        if obj.get(key) is not None:
            if not isinstance(obj[key], (int, float)) or isinstance(obj[key], bool):
                raise invalid(f"{name}.{key} must be an integer.", parameter=_parameter(name))
            setattr(msg, field, _int32(str(obj[key]), f"{name}.{key}"))
    wkt = obj.get("wkt") or obj.get("wkt2")
    if wkt is not None:
        if not isinstance(wkt, str):
            raise invalid(f"{name}.wkt must be a string.", parameter=_parameter(name))
        msg.wkt = wkt
    if not (msg.HasField("wkid") or msg.HasField("latest_wkid") or msg.HasField("wkt")):
        raise invalid(f"{name} needs a wkid, latestWkid or wkt.", parameter=_parameter(name))
    return msg


def envelope(text: str, name: str = "bbox") -> pb.Envelope:
    """`xmin,ymin,xmax,ymax` or an envelope JSON (the ArcGIS API for Python sends its initialExtent dict)."""
    if text.lstrip().startswith("{"):
        obj = _json(text, name)
        if not isinstance(obj, dict):
            raise invalid(f"{name} must be an envelope object.", parameter=_parameter(name))
        try:
            values = [_number(str(obj[k]), f"{name}.{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
        except KeyError as exc:
            raise invalid(f"{name} envelope lacks {exc.args[0]}.", parameter=_parameter(name)) from None
        env = pb.Envelope(xmin=values[0], ymin=values[1], xmax=values[2], ymax=values[3])
        if isinstance(obj.get("spatialReference"), dict):
            env.spatial_reference.CopyFrom(_sr_object(obj["spatialReference"], f"{name}.spatialReference"))
        return env
    xmin, ymin, xmax, ymax = _numbers(text, name, 4)
    return pb.Envelope(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax)


def time_value(text: str) -> pb.TimeValue:
    """`t`, `t1,t2`, either end `null` (open), epoch milliseconds UTC."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2:
        raise invalid(f"time must be an instant or start,end in epoch milliseconds, got {text!r}.")

    def end(p: str) -> int | None:
        return None if p.lower() in ("null", "none", "") else _int32(p, "time", bits=64)

    if len(parts) == 1:
        instant = end(parts[0])
        if instant is None:
            return pb.TimeValue(range=pb.TimeRange())
        return pb.TimeValue(instant=instant)
    start, stop = end(parts[0]), end(parts[1])
    if start is not None and stop is not None and start > stop:
        raise invalid("time: the start is after the end.")
    return pb.TimeValue(range=pb.TimeRange(start=start, end=stop))


def datum_transformation(text: str) -> pb.DatumTransformation:
    if not text.lstrip().startswith("{"):
        return pb.DatumTransformation(wkid=_int32(text, "datumTransformation"))
    obj = _json(text, "datumTransformation")
    if not isinstance(obj, dict):
        raise invalid("datumTransformation must be a wkid or an object.")
    if "geoTransforms" in obj:
        steps = obj["geoTransforms"]
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise invalid("datumTransformation.geoTransforms must be a list of objects.")
        chain = pb.GeoTransforms()
        for step in steps:
            gt = chain.geo_transforms.add(transform_forward=bool(step.get("transformForward", True)))
            if step.get("wkid") is not None:
                gt.wkid = _int32(str(step["wkid"]), "datumTransformation.geoTransforms.wkid")
            if step.get("wkt"):
                gt.wkt = str(step["wkt"])
        return pb.DatumTransformation(composite=chain)
    if obj.get("wkid") is not None:
        return pb.DatumTransformation(wkid=_int32(str(obj["wkid"]), "datumTransformation.wkid"))
    if obj.get("wkt"):
        return pb.DatumTransformation(wkt=str(obj["wkt"]))
    raise invalid("datumTransformation needs a wkid, wkt or geoTransforms.")


def struct(text: str, name: str) -> struct_pb2.Struct:
    obj = _json(text, name)
    if not isinstance(obj, dict):
        raise invalid(f"{name} must be a JSON object.", parameter=_parameter(name))
    msg = struct_pb2.Struct()
    try:
        msg.update(obj)
    except (ValueError, TypeError) as exc:
        raise invalid(f"{name} holds a value that cannot be represented: {exc}", parameter=_parameter(name)) from None
    return msg


def mosaic_rule(text: str) -> pb.MosaicRule:
    obj = _json(text, "mosaicRule")
    if not isinstance(obj, dict):
        raise invalid("mosaicRule must be a JSON object.", parameter="mosaicRule")
    rule = pb.MosaicRule()
    if obj.get("mosaicMethod"):
        rule.mosaic_method = _enum(MOSAIC_METHODS, str(obj["mosaicMethod"]), "mosaicRule.mosaicMethod")
    if obj.get("mosaicOperation"):
        rule.mosaic_operation = _enum(MOSAIC_OPERATIONS, str(obj["mosaicOperation"]), "mosaicRule.mosaicOperation")
    for key, field in (("where", "where"), ("sortField", "sort_field")):
        if obj.get(key) is not None:
            setattr(rule, field, str(obj[key]))
    if "sortValue" in obj:
        json_format.ParseDict(obj["sortValue"], rule.sort_value)
    if obj.get("ascending") is not None:
        rule.ascending = bool(obj["ascending"])
    for key, field in (("lockRasterIds", "lock_raster_ids"), ("fids", "fids")):
        ids = obj.get(key)
        if ids is not None:
            if not isinstance(ids, list):
                raise invalid(f"mosaicRule.{key} must be a list of ids.")
            getattr(rule, field).extend(_int32(str(i), f"mosaicRule.{key}", bits=64) for i in ids)
    if isinstance(obj.get("viewpoint"), dict):
        vp = obj["viewpoint"]
        rule.viewpoint.x = _number(str(vp.get("x")), "mosaicRule.viewpoint.x")
        rule.viewpoint.y = _number(str(vp.get("y")), "mosaicRule.viewpoint.y")
        if isinstance(vp.get("spatialReference"), dict):
            rule.viewpoint.spatial_reference.CopyFrom(_sr_object(vp["spatialReference"],
                                                                 "mosaicRule.viewpoint.spatialReference"))
    _dimension_filters(obj.get("multidimensionalDefinition") or [], "mosaicRule.multidimensionalDefinition",
                       rule.multidimensional_definition)
    if isinstance(obj.get("itemRenderingRule"), dict):
        rule.item_rendering_rule.update(obj["itemRenderingRule"])
    if obj.get("blendWidth") is not None:
        rule.blend_width = _number(str(obj["blendWidth"]), "mosaicRule.blendWidth")
    return rule


def _dimension_filters(entries, name: str, into) -> None:
    """A multidimensionalDefinition's entries (JSON) added to the repeated DimensionFilter ``into``."""
    if not isinstance(entries, list):
        raise invalid(f"{name} must be a list of objects.", parameter=_parameter(name))
    for dim in entries:
        if not isinstance(dim, dict):
            raise invalid(f"{name} entries must be objects.", parameter=_parameter(name))
        values = dim.get("values", [])
        if not isinstance(values, list):
            raise invalid(f"{name} values must be a list.", parameter=_parameter(name))
        entry = into.add(variable_name=str(dim.get("variableName") or ""),
                         dimension_name=str(dim.get("dimensionName") or ""))
        try:
            json_format.ParseDict(values, entry.values)
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise invalid(f"{name} values cannot be represented: {exc}", parameter=_parameter(name)) from None
        if dim.get("isSlice") is not None:
            entry.is_slice = bool(dim["isSlice"])


def dimension_filters(text: str, into, name: str = "multidimensionalDefinition") -> None:
    """The multidimensionalDefinition parameter of /slices and /query."""
    _dimension_filters(_json(text, name), name, into)


def band_ids(text: str) -> list[int]:
    ids = [_integer(p.strip(), "bandIds") for p in text.strip("[]").split(",")]
    if any(not 0 <= i < 2**31 for i in ids):
        raise invalid("bandIds must be non-negative band indexes.")
    return ids


def point(text: str, name: str = "geometry") -> pb.Point:
    """`{"x": .., "y": .., "spatialReference": {..}}` or plain `x,y` (QGIS)."""
    if text.lstrip().startswith("{"):
        obj = _json(text, name)
        if not isinstance(obj, dict) or "x" not in obj or "y" not in obj:
            raise invalid(f"{name} must be a point: {{\"x\": .., \"y\": .., \"spatialReference\": ..}} or x,y.")
        msg = pb.Point(x=_number(str(obj["x"]), f"{name}.x"), y=_number(str(obj["y"]), f"{name}.y"))
        if isinstance(obj.get("spatialReference"), dict):
            msg.spatial_reference.CopyFrom(_sr_object(obj["spatialReference"], f"{name}.spatialReference"))
        return msg
    x, y = _numbers(text, name, 2)
    return pb.Point(x=x, y=y)


GEOMETRY_TYPES = _folded(enums.GEOMETRY_TYPE)
IDENTIFY_FLAGS = ("returnGeometry", "returnCatalogItems", "returnPixelValues")


def identify_request(service: str, params: Params) -> pb.IdentifyRequest:
    """identify's parameters (docs/protocol.md §4).  The response always has the pixel value and location, so
    returnGeometry and returnPixelValues are checked for syntax only; returnCatalogItems says whether a mosaic
    dataset's items under the point come with it."""
    req = pb.IdentifyRequest(service=service)
    if (v := params.get("geometryType")) is not None:
        req.geometry_type = _enum(GEOMETRY_TYPES, v, "geometryType")
    geometry = params.get("geometry")
    if geometry is None:
        raise invalid("geometry is required: a point as {\"x\", \"y\", \"spatialReference\"} or x,y.")
    if req.geometry_type != pb.ESRI_GEOMETRY_POLYGON:  # polygons are refused by the service, by name
        req.geometry.CopyFrom(point(geometry))
    if (v := params.get("mosaicRule")) is not None:
        req.mosaic_rule.CopyFrom(mosaic_rule(v))
    if (v := params.get("renderingRule")) is not None:
        req.rendering_rule.CopyFrom(struct(v, "renderingRule"))
    if params.get("renderingRules") is not None:
        raise unsupported("renderingRules is not supported yet; send one renderingRule.")
    if (v := params.get("pixelSize")) is not None:
        size = point(v, "pixelSize")
        req.pixel_size.x, req.pixel_size.y = size.x, size.y
    if (v := params.get("time")) is not None:
        req.time.CopyFrom(time_value(v))
    for flag in IDENTIFY_FLAGS:
        if (v := params.get(flag)) is not None:
            _bool(v, flag)
    if (v := params.get("returnCatalogItems")) is not None:
        req.return_catalog_items = _bool(v, "returnCatalogItems")
    if (v := params.get("maxItemCount")) is not None:
        _int32(v, "maxItemCount")
    return req


def export_request(service: str, params: Params) -> pb.ExportImageRequest:
    """Build the gRPC request from ArcGIS parameters; every listed parameter is carried or refused."""
    req = pb.ExportImageRequest(service=service)
    if (v := params.get("bbox")) is not None:
        req.bbox.CopyFrom(envelope(v))
    if (v := params.get("bboxSR")) is not None:
        req.bbox_sr.CopyFrom(spatial_reference(v, "bboxSR"))
    if (v := params.get("imageSR")) is not None:
        req.image_sr.CopyFrom(spatial_reference(v, "imageSR"))
    if (v := params.get("size")) is not None:
        width, height = _numbers(v, "size", 2)
        if width != int(width) or height != int(height) or not (0 < width < 2**31 and 0 < height < 2**31):
            raise invalid(f"size must be two positive integers, got {v!r}.")
        req.size.width, req.size.height = int(width), int(height)
    if (v := params.get("datumTransformation")) is not None:
        req.datum_transformation.CopyFrom(datum_transformation(v))
    if (v := params.get("time")) is not None:
        req.time.CopyFrom(time_value(v))
    fmt = params.get("format")
    if fmt is not None:
        req.format = _enum(FORMATS, fmt, "format")
    if (v := params.get("lercVersion")) is not None:
        req.lerc_version = _int32(v, "lercVersion")
    if (v := params.get("pixelType")) is not None:
        req.pixel_type = _enum(PIXEL_TYPES, v.upper(), "pixelType", fold=False)
    if (v := params.get("noData")) is not None:
        req.no_data.extend(_numbers(v, "noData"))
    if (v := params.get("noDataInterpretation")) is not None:
        req.no_data_interpretation = _enum(NO_DATA_INTERPRETATIONS, v, "noDataInterpretation")
    if (v := params.get("interpolation")) is not None:
        req.interpolation = _enum(INTERPOLATIONS, v, "interpolation")
    if (v := params.get("compression")) is not None:
        # QGIS sends compression=LERC alongside format=lerc: LERC is the format's own compression.
        if not (v.lower() == "lerc" and req.format == pb.FORMAT_LERC):
            req.compression = _enum(COMPRESSIONS, v, "compression")
    if (v := params.get("compressionQuality")) is not None:
        req.compression_quality = _int32(v, "compressionQuality")
    if (v := params.get("compressionTolerance")) is not None:
        req.compression_tolerance = _number(v, "compressionTolerance")
    if (v := params.get("bandIds")) is not None:
        req.band_ids.extend(band_ids(v))
    if (v := params.get("mosaicRule")) is not None:
        req.mosaic_rule.CopyFrom(mosaic_rule(v))
    if (v := params.get("renderingRule")) is not None:
        req.rendering_rule.CopyFrom(struct(v, "renderingRule"))
    if (v := params.get("sliceId")) is not None:
        req.slice_id = _int32(v, "sliceId")
    if (v := params.get("adjustAspectRatio")) is not None:
        req.adjust_aspect_ratio = _bool(v, "adjustAspectRatio")
    if (v := params.get("validateExtent")) is not None:
        req.validate_extent = _bool(v, "validateExtent")
    if (params.get("f") or "").lower() == "kmz":
        req.output_form = pb.OUTPUT_FORM_KMZ
    return req


# query's geometryType values and the geometry each one reads (docs/protocol.md §4).
QUERY_GEOMETRY_TYPES = {"esrigeometryenvelope": "envelope", "esrigeometrypoint": "point",
                        "esrigeometrypolygon": "polygon"}


def _query_geometry_kind(geometry_type: str | None, text: str) -> str:
    """The kind of query's geometry: its geometryType, else what its JSON holds (ArcGIS's default: an envelope)."""
    if geometry_type is not None:
        kind = QUERY_GEOMETRY_TYPES.get(geometry_type.strip().lower())
        if kind is None:
            raise unsupported(f"geometryType {geometry_type!r} is not supported by query; send "
                              "esriGeometryEnvelope, esriGeometryPoint or esriGeometryPolygon.",
                              parameter="geometryType")
        return kind
    if text.lstrip().startswith("{"):
        obj = _json(text, "geometry")
        if isinstance(obj, dict) and "rings" in obj:
            return "polygon"
        if isinstance(obj, dict) and "x" in obj:
            return "point"
    return "envelope"


def polygon(text: str, name: str = "geometry") -> pb.Polygon:
    """`{"rings": [[[x, y], ...], ...], "spatialReference": {..}}`: Esri polygon JSON."""
    obj = _json(text, name)
    rings = obj.get("rings") if isinstance(obj, dict) else None
    if not isinstance(rings, list) or not all(isinstance(r, list) for r in rings):
        raise invalid(f"{name} must be a polygon: {{\"rings\": [[[x, y], ...]], \"spatialReference\": ..}}.",
                      parameter=_parameter(name))
    msg = pb.Polygon()
    for ring in rings:
        if not all(isinstance(p, list) and len(p) >= 2 for p in ring):
            raise invalid(f"{name}: each ring must be a list of [x, y] points.", parameter=_parameter(name))
        msg.rings.add().coordinates.extend(_number(str(v), f"{name}.rings") for p in ring for v in p[:2])
    if isinstance(obj.get("spatialReference"), dict):
        msg.spatial_reference.CopyFrom(_sr_object(obj["spatialReference"], f"{name}.spatialReference"))
    return msg


def query_request(service: str, params: Params) -> pb.QueryRequest:
    """query's parameters (docs/protocol.md §4): a where clause, object ids, a geometry (an envelope as JSON or
    xmin,ymin,xmax,ymax, a point, a polygon) and pixelSize, time, the fields and form of the answer, its order and
    page."""
    req = pb.QueryRequest(service=service)
    if (v := params.get("where")) is not None:
        req.where = v
    if (v := params.get("objectIds")) is not None:
        req.object_ids.extend(_int32(p.strip(), "objectIds", bits=64) for p in v.strip("[]").split(","))
    if (v := params.get("geometry")) is not None:
        kind = _query_geometry_kind(params.get("geometryType"), v)
        if kind == "point":
            req.point.CopyFrom(point(v, "geometry"))
        elif kind == "polygon":
            req.polygon.CopyFrom(polygon(v, "geometry"))
        else:
            req.geometry.CopyFrom(envelope(v, "geometry"))
    if (v := params.get("pixelSize")) is not None:
        req.pixel_size.CopyFrom(point(v, "pixelSize"))
    if (v := params.get("spatialRel")) is not None:
        req.spatial_rel = v
    if (v := params.get("inSR")) is not None:
        req.in_sr.CopyFrom(spatial_reference(v, "inSR"))
    if (v := params.get("outSR")) is not None:
        req.out_sr.CopyFrom(spatial_reference(v, "outSR"))
    if (v := params.get("time")) is not None:
        req.time.CopyFrom(time_value(v))
    if (v := params.get("outFields")) is not None:
        req.out_fields.extend(p.strip() for p in v.split(",") if p.strip())
    if (v := params.get("returnGeometry")) is not None:
        req.return_geometry = _bool(v, "returnGeometry")
    for flag, field in (("returnIdsOnly", "return_ids_only"), ("returnCountOnly", "return_count_only")):
        if (v := params.get(flag)) is not None:
            setattr(req, field, _bool(v, flag))
    if (v := params.get("orderByFields")) is not None:
        req.order_by_fields = v
    for name, field in (("resultOffset", "result_offset"), ("resultRecordCount", "result_record_count")):
        if (v := params.get(name)) is not None:
            setattr(req, field, _int32(v, name, bits=64))
    if (v := params.get("multidimensionalDefinition")) is not None:
        dimension_filters(v, req.multidimensional_definition)
    return req
