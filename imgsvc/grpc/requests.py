"""Protobuf requests -> the core's frozen parameters.

Conversion only: enum values become the core's ArcGIS names (``enums``), unset fields and UNSPECIFIED values become
None, messages become plain values.  Whether the values are acceptable, and the defaults for those not given, is the
core's to say (``imgsvc.params.export_params``, ``imgsvc.identify.identify_params``), the same for every door.
"""
from __future__ import annotations

from google.protobuf.json_format import MessageToDict
from pyproj import CRS

from imgsvc import catalog_query, documents, identify, mosaic, multidimensional, params, sr
from imgsvc.errors import invalid
from imgsvc.grpc import enums
from imgsvc.v1 import image_service_pb2 as pb


def _optional(msg, field: str):
    return getattr(msg, field) if msg.HasField(field) else None


def _document(value, parameter: str):
    """A Struct, Value or ListValue as plain JSON, within the bounds of ``imgsvc.documents`` (a Struct can carry a
    NaN that JSON cannot)."""
    try:
        return documents.check(MessageToDict(value), parameter)
    except ValueError:
        raise invalid(f"{parameter} holds NaN or Infinity, which JSON numbers cannot be.",
                      parameter=parameter) from None


def _json_object(msg, field: str, parameter: str) -> dict | None:
    return _document(getattr(msg, field), parameter) if msg.HasField(field) else None


def _crs_or_none(msg: pb.SpatialReference, parameter: str = "spatialReference") -> CRS | None:
    """The CRS a spatial reference names, or None when it names none."""
    parts = (_optional(msg, "wkid"), _optional(msg, "latest_wkid"), _optional(msg, "wkt"))
    return None if parts == (None, None, None) else sr.crs_from_parts(*parts, parameter=parameter)


def _crs(msg: pb.SpatialReference, name: str) -> CRS:
    crs = _crs_or_none(msg, name.split(" ", 1)[0])
    if crs is None:
        raise invalid(f"{name} is empty: give a wkid, latestWkid or wkt.")
    return crs


def _datum_steps(msg: pb.DatumTransformation) -> list[tuple[int | None, str | None]]:
    """The (wkid, wkt) steps of the chain; none when the message names nothing."""
    kind = msg.WhichOneof("kind")
    if kind == "wkid":
        return [(msg.wkid, None)]
    if kind == "wkt":
        return [(None, msg.wkt)]
    # transformForward is implied by the pair of SRs: PROJ runs each step in the direction the pair needs.
    return [(_optional(gt, "wkid"), _optional(gt, "wkt")) for gt in msg.composite.geo_transforms]


def _mosaic_rule(msg: pb.MosaicRule) -> mosaic.MosaicRule:
    """The message's mosaic rule; the core's method and operation enums carry the proto's names without prefix."""
    method = mosaic.DEFAULT_RULE.method
    if msg.mosaic_method != pb.MOSAIC_METHOD_UNSPECIFIED:
        method = mosaic.MosaicMethod[pb.MosaicMethod.Name(msg.mosaic_method).removeprefix("ESRI_MOSAIC_")]
    operation = mosaic.DEFAULT_RULE.operation
    if msg.mosaic_operation != pb.MOSAIC_OPERATION_UNSPECIFIED:
        operation = mosaic.MosaicOperation[pb.MosaicOperation.Name(msg.mosaic_operation).removeprefix("MT_")]
    return mosaic.MosaicRule(
        method=method, operation=operation, ascending=msg.ascending if msg.HasField("ascending") else True,
        where=_optional(msg, "where"), fids=tuple(msg.fids) if msg.fids else None,
        lock_raster_ids=tuple(msg.lock_raster_ids), sort_field=_optional(msg, "sort_field"),
        sort_value=_document(msg.sort_value, "mosaicRule") if msg.HasField("sort_value") else None,
        viewpoint=((msg.viewpoint.x, msg.viewpoint.y, _crs_or_none(msg.viewpoint.spatial_reference))
                   if msg.HasField("viewpoint") else None),
        multidimensional_definition=dimension_filters(msg.multidimensional_definition),
        item_rendering_rule=_json_object(msg, "item_rendering_rule", "mosaicRule"),
        blend_width=msg.blend_width if msg.HasField("blend_width") else 0.0)


def export_params(req: pb.ExportImageRequest) -> params.ExportParams:
    bbox_crs = None
    if req.bbox.HasField("spatial_reference"):
        bbox_crs = _crs(req.bbox.spatial_reference, "bbox spatialReference")
    if req.HasField("bbox_sr"):  # bboxSR says what the bbox's numbers are in, whatever the envelope says
        bbox_crs = _crs(req.bbox_sr, "bboxSR")
    box = req.bbox
    datum = req.datum_transformation
    return params.export_params(
        req.service,
        bbox=(box.xmin, box.ymin, box.xmax, box.ymax) if req.HasField("bbox") else None,
        bbox_crs=bbox_crs,
        size=(req.size.width, req.size.height) if req.HasField("size") else None,
        image_crs=_crs(req.image_sr, "imageSR") if req.HasField("image_sr") else None,
        format=enums.FORMAT_NAMES.get(req.format),
        pixel_type=enums.PIXEL_TYPE_NAMES.get(req.pixel_type),
        no_data=req.no_data,
        no_data_interpretation=enums.NO_DATA_INTERPRETATION_NAMES.get(req.no_data_interpretation),
        interpolation=enums.INTERPOLATION_NAMES.get(req.interpolation),
        compression=enums.COMPRESSION_NAMES.get(req.compression),
        quality=_optional(req, "compression_quality"),
        tolerance=_optional(req, "compression_tolerance"),
        lerc_version=_optional(req, "lerc_version"),
        band_ids=req.band_ids,
        adjust_aspect_ratio=_optional(req, "adjust_aspect_ratio"),
        validate_extent=_optional(req, "validate_extent"),
        kmz=req.output_form == pb.OUTPUT_FORM_KMZ,
        datum_transformation=_datum_steps(datum) if req.HasField("datum_transformation") else None,
        mosaic_rule=_mosaic_rule(req.mosaic_rule) if req.HasField("mosaic_rule") else None,
        rendering_rule=_json_object(req, "rendering_rule", "renderingRule"),
        slice_id=_optional(req, "slice_id"),
        time=_time(req.time) if req.HasField("time") else None,
    )


def _time(msg: pb.TimeValue) -> tuple[int | None, int | None]:
    """(start, end) in epoch milliseconds, None for an open end; an instant is a range of one moment."""
    if msg.WhichOneof("kind") == "instant":
        return msg.instant, msg.instant
    return _optional(msg.range, "start"), _optional(msg.range, "end")


def identify_params(req: pb.IdentifyRequest) -> identify.IdentifyParams:
    geometry = req.geometry
    return identify.identify_params(
        req.service,
        (geometry.x, geometry.y) if req.HasField("geometry") else None,
        _crs_or_none(geometry.spatial_reference),
        geometry_type=enums.GEOMETRY_TYPE_NAMES.get(req.geometry_type),
        mosaic_rule=_mosaic_rule(req.mosaic_rule) if req.HasField("mosaic_rule") else None,
        rendering_rule=_json_object(req, "rendering_rule", "renderingRule"),
        pixel_size=(req.pixel_size.x, req.pixel_size.y) if req.HasField("pixel_size") else None,
        time=_time(req.time) if req.HasField("time") else None,
        return_catalog_items=_optional(req, "return_catalog_items"),
    )


def _query_geometry(req: pb.QueryRequest) -> catalog_query.QueryGeometry | None:
    kind = req.WhichOneof("shape")
    if kind is None:
        return None
    msg = getattr(req, kind)
    crs = _crs_or_none(msg.spatial_reference) or _crs_or_none(req.in_sr)
    if kind == "point":
        return catalog_query.query_geometry("point", (msg.x, msg.y), crs)
    if kind == "polygon":
        rings = [tuple(zip(ring.coordinates[0::2], ring.coordinates[1::2])) for ring in msg.rings]
        return catalog_query.query_geometry("polygon", rings, crs)
    return catalog_query.query_geometry("envelope", (msg.xmin, msg.ymin, msg.xmax, msg.ymax), crs)


def query_params(req: pb.QueryRequest) -> catalog_query.QueryParams:
    size = req.pixel_size
    return catalog_query.query_params(
        req.service, where=_optional(req, "where"), object_ids=req.object_ids, geometry=_query_geometry(req),
        spatial_rel=req.spatial_rel or None,
        time=_time(req.time) if req.HasField("time") else None, out_fields=req.out_fields,
        return_geometry=_optional(req, "return_geometry"), ids_only=req.return_ids_only,
        count_only=req.return_count_only, order_by=req.order_by_fields or None,
        offset=_optional(req, "result_offset"), record_count=_optional(req, "result_record_count"),
        out_crs=_crs_or_none(req.out_sr),
        pixel_size=(size.x, size.y, _crs_or_none(size.spatial_reference)) if req.HasField("pixel_size") else None,
        multidimensional_definition=dimension_filters(req.multidimensional_definition))


def dimension_filters(entries) -> tuple[multidimensional.DimensionFilter, ...]:
    """A multidimensionalDefinition's entries; values stay as sent (numbers, [low, high] pairs, ISO dates)."""
    return tuple(multidimensional.DimensionFilter(
        variable=entry.variable_name, dimension=entry.dimension_name,
        values=tuple(tuple(v) if isinstance(v, list) else v
                     for v in _document(entry.values, "multidimensionalDefinition")),
        is_slice=entry.is_slice if entry.HasField("is_slice") else True) for entry in entries)


def rendering_rule(req) -> dict | None:
    """A resource request's renderingRule as the JSON object it was, or None (the core resolves it)."""
    return _json_object(req, "rendering_rule", "renderingRule")
