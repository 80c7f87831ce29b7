"""ExportImageRequest (protobuf) -> frozen, validated ExportParams.

ArcGIS spellings and defaults stay at this edge; everything after it works with plain values.  Parameters a later
stage does not implement yet are refused here with an error that names them, never silently dropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict
from pyproj import CRS

from imgsvc import functions, mosaic, sr
from imgsvc.errors import invalid, unsupported
from imgsvc.v1 import image_service_pb2 as pb

FORMATS = {
    pb.FORMAT_UNSPECIFIED: "jpgpng", pb.FORMAT_JPGPNG: "jpgpng", pb.FORMAT_PNG: "png", pb.FORMAT_PNG8: "png8",
    pb.FORMAT_PNG24: "png24", pb.FORMAT_PNG32: "png32", pb.FORMAT_JPG: "jpg", pb.FORMAT_BMP: "bmp",
    pb.FORMAT_GIF: "gif", pb.FORMAT_TIFF: "tiff", pb.FORMAT_BIP: "bip", pb.FORMAT_BSQ: "bsq", pb.FORMAT_LERC: "lerc",
}
PIXEL_TYPES = {v: pb.PixelType.Name(v).removeprefix("PIXEL_TYPE_") for v in pb.PixelType.values()}
PIXEL_TYPES[pb.PIXEL_TYPE_UNSPECIFIED] = "UNKNOWN"
RESAMPLINGS = {
    pb.RSP_NEAREST_NEIGHBOR: "nearest", pb.RSP_BILINEAR_INTERPOLATION: "bilinear",
    pb.RSP_CUBIC_CONVOLUTION: "cubic", pb.RSP_MAJORITY: "mode",
}
# The root's defaultResamplingMethod names.
DEFAULT_RESAMPLING_NAMES = {"nearest": "nearest", "bilinear": "bilinear", "cubic": "cubic", "majority": "mode"}
COMPRESSIONS = {pb.COMPRESSION_UNSPECIFIED: None, pb.COMPRESSION_NONE: "None", pb.COMPRESSION_JPEG: "JPEG",
                pb.COMPRESSION_LZ77: "LZ77"}
DEFAULT_SIZE = (400, 400)


@dataclass(frozen=True)
class ExportParams:
    service: str
    bbox: tuple[float, float, float, float] | None  # normalised min/max; None = the service extent
    bbox_crs: CRS | None  # None = the service SR
    size: tuple[int, int]  # (width, height)
    image_crs: CRS | None  # None = the service SR
    format: str
    pixel_type: str
    no_data: tuple[float, ...]
    no_data_match_all: bool
    resampling: str | None  # None = the service default
    compression: str | None
    quality: int | None
    tolerance: float | None
    lerc_version: int | None
    band_ids: tuple[int, ...]
    adjust_aspect_ratio: bool
    validate_extent: bool
    kmz: bool
    datum_transformation: sr.DatumTransformation | None = None
    mosaic_rule: mosaic.MosaicRule = mosaic.DEFAULT_RULE
    rendering_rule: functions.Chain = functions.IDENTITY


def _crs(msg: pb.SpatialReference, name: str) -> CRS:
    return sr.crs_from_parts(
        msg.wkid if msg.HasField("wkid") else None,
        msg.latest_wkid if msg.HasField("latest_wkid") else None,
        msg.wkt if msg.HasField("wkt") else None,
    ) if (msg.HasField("wkid") or msg.HasField("latest_wkid") or msg.HasField("wkt")) else _missing(name)


def _missing(name: str):
    raise invalid(f"{name} is empty: give a wkid, latestWkid or wkt.")


def _bbox(env: pb.Envelope) -> tuple[float, float, float, float]:
    values = (env.xmin, env.ymin, env.xmax, env.ymax)
    if not all(math.isfinite(v) for v in values):
        raise invalid("bbox values must be finite numbers.", parameter="bbox")
    xmin, xmax = sorted((env.xmin, env.xmax))
    ymin, ymax = sorted((env.ymin, env.ymax))  # esri-leaflet sends ymax before ymin (REFERENCE §12.3)
    if xmin == xmax or ymin == ymax:
        raise invalid("bbox must have a non-zero width and height.", parameter="bbox")
    return xmin, ymin, xmax, ymax


def _datum_transformation(msg: pb.DatumTransformation) -> sr.DatumTransformation:
    kind = msg.WhichOneof("kind")
    if kind == "wkid":
        return sr.datum_transformation([(msg.wkid, None)])
    if kind == "wkt":
        return sr.datum_transformation([(None, msg.wkt)])
    if kind == "composite" and msg.composite.geo_transforms:
        # transformForward is implied by the pair of SRs: PROJ runs each step in the direction the pair needs.
        return sr.datum_transformation([
            (gt.wkid if gt.HasField("wkid") else None, gt.wkt if gt.HasField("wkt") else None)
            for gt in msg.composite.geo_transforms])
    raise invalid("datumTransformation is empty: give a wkid, wkt or geoTransforms.")


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
        where=msg.where if msg.HasField("where") else None, fids=tuple(msg.fids) if msg.fids else None,
        lock_raster_ids=tuple(msg.lock_raster_ids), sort_field=msg.sort_field if msg.HasField("sort_field") else None,
        has_sort_value=msg.HasField("sort_value"), has_viewpoint=msg.HasField("viewpoint"),
        has_multidimensional_definition=bool(msg.multidimensional_definition),
        item_rendering_rule=MessageToDict(msg.item_rendering_rule) if msg.HasField("item_rendering_rule") else None)


def parse(req: pb.ExportImageRequest) -> ExportParams:
    if not req.service:
        raise invalid("service is required.")
    if req.HasField("slice_id"):
        raise unsupported("sliceId is not supported: the service is not multidimensional.", parameter="sliceId")

    bbox = bbox_crs = None
    if req.HasField("bbox"):
        bbox = _bbox(req.bbox)
        if req.bbox.HasField("spatial_reference"):
            bbox_crs = _crs(req.bbox.spatial_reference, "bbox spatialReference")
    if req.HasField("bbox_sr"):
        bbox_crs = _crs(req.bbox_sr, "bboxSR")
    image_crs = _crs(req.image_sr, "imageSR") if req.HasField("image_sr") else None

    if req.HasField("size"):
        size = (req.size.width, req.size.height)
        if size[0] <= 0 or size[1] <= 0:
            raise invalid(f"size must be two positive integers, got {size[0]},{size[1]}.", parameter="size")
    else:
        size = DEFAULT_SIZE

    pixel_type = PIXEL_TYPES[req.pixel_type]
    if pixel_type in ("C64", "C128"):
        raise unsupported(f"pixelType {pixel_type} (complex) is not supported.")

    no_data = tuple(req.no_data)
    if not all(math.isfinite(v) for v in no_data):
        raise invalid("noData values must be finite numbers.")
    if req.no_data_interpretation == pb.NO_DATA_INTERPRETATION_UNSPECIFIED:
        match_all = len(no_data) > 1  # ArcGIS default: MatchAny for one value, MatchAll for a per-band list
    else:
        match_all = req.no_data_interpretation == pb.NO_DATA_MATCH_ALL

    if any(b < 0 for b in req.band_ids):
        raise invalid("bandIds must be non-negative band indexes.")

    if req.HasField("compression_quality") and not 0 <= req.compression_quality <= 100:
        raise invalid(f"compressionQuality must be between 0 and 100, got {req.compression_quality}.")
    if req.HasField("compression_tolerance") and not (
            math.isfinite(req.compression_tolerance) and req.compression_tolerance >= 0):
        raise invalid("compressionTolerance must be a non-negative number.")
    if req.HasField("lerc_version") and req.lerc_version not in (1, 2):
        raise invalid(f"lercVersion must be 1 or 2, got {req.lerc_version}.")

    return ExportParams(
        service=req.service,
        bbox=bbox,
        bbox_crs=bbox_crs,
        size=size,
        image_crs=image_crs,
        format=FORMATS[req.format],
        pixel_type=pixel_type,
        no_data=no_data,
        no_data_match_all=match_all,
        resampling=RESAMPLINGS.get(req.interpolation),
        compression=COMPRESSIONS[req.compression],
        quality=req.compression_quality if req.HasField("compression_quality") else None,
        tolerance=req.compression_tolerance if req.HasField("compression_tolerance") else None,
        lerc_version=req.lerc_version if req.HasField("lerc_version") else None,
        band_ids=tuple(req.band_ids),
        adjust_aspect_ratio=req.adjust_aspect_ratio if req.HasField("adjust_aspect_ratio") else True,
        validate_extent=req.validate_extent if req.HasField("validate_extent") else False,
        kmz=req.output_form == pb.OUTPUT_FORM_KMZ,
        datum_transformation=(_datum_transformation(req.datum_transformation)
                              if req.HasField("datum_transformation") else None),
        mosaic_rule=_mosaic_rule(req.mosaic_rule) if req.HasField("mosaic_rule") else mosaic.DEFAULT_RULE,
        rendering_rule=(functions.parse_rule(MessageToDict(req.rendering_rule))
                        if req.HasField("rendering_rule") else functions.IDENTITY),
    )
