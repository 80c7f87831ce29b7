"""The exportImage parameters as the core takes them: a frozen, validated ExportParams.

The doors convert their requests into plain Python values (ArcGIS names for the enumerations: ``format``,
``pixelType``, ``interpolation``, ...) and call ``export_params``; the checks and the ArcGIS defaults live here, once
for every door, and everything after works with plain values.  Parameters a later stage does not implement yet are
refused here with an error that names them, never silently dropped.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyproj import CRS

from imgsvc import mosaic, pixel_types, sr
from imgsvc.encode import DEFAULT_FORMAT, LERC_VERSIONS
from imgsvc.errors import invalid
from imgsvc.kernels import RESAMPLING_OF_INTERPOLATION

DEFAULT_SIZE = (400, 400)
# noDataInterpretation -> whether a pixel is masked only when every band matches (else when any does).
NO_DATA_INTERPRETATIONS = {"esriNoDataMatchAny": False, "esriNoDataMatchAll": True}

# A request may name a band more than once (bandIds=0,0,0 is a gray RGB), but not without end (each is an output
# plane): more than this is refused before anything is read (docs/decisions.md "Bounded work").
MAX_BAND_IDS = 64


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
    # The renderingRule's JSON object, None when absent: resolved against the service's templates by the plan.
    rendering_rule: dict | None = None
    # (start, end) epoch milliseconds, either end None when open; None = no time given.
    time: tuple[int | None, int | None] | None = None
    slice_id: int | None = None  # a multidimensional service's slice (docs/protocol.md sliceId)


# No coordinate system on Earth (or any planet) reaches 1e12 of its units; past that a bbox is a probe, and its
# arithmetic (width, pixel size) overflows to infinity.
MAX_COORDINATE = 1e12
# The smallest pixel a bbox may ask for, relative to the size of its coordinates: past about 1e-12 of them, float64
# cannot tell one pixel's edge from the next (and 1e-300 wide boxes underflow the grid arithmetic).
MIN_RELATIVE_PIXEL = 1e-12


def _bbox(values: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    if not all(math.isfinite(v) for v in values):
        raise invalid("bbox values must be finite numbers.", parameter="bbox")
    if any(abs(v) > MAX_COORDINATE for v in values):
        raise invalid(f"bbox coordinates must lie within +-{MAX_COORDINATE:g}.", parameter="bbox")
    xmin, ymin, xmax, ymax = values
    xmin, xmax = sorted((xmin, xmax))
    ymin, ymax = sorted((ymin, ymax))  # esri-leaflet sends ymax before ymin (docs/protocol.md §12.3)
    if xmin == xmax or ymin == ymax:
        raise invalid("bbox must have a non-zero width and height.", parameter="bbox")
    scale = max(1.0, *(abs(v) for v in values))
    if (xmax - xmin) / size[0] < MIN_RELATIVE_PIXEL * scale or (ymax - ymin) / size[1] < MIN_RELATIVE_PIXEL * scale:
        raise invalid("bbox is too small for its size: its pixels would be narrower than coordinates can tell "
                      "apart.", parameter="bbox")
    return xmin, ymin, xmax, ymax


def _choice(table, value: str, name: str):
    if value not in table:
        raise invalid(f"{name} {value!r} is not supported; expected one of: {', '.join(table)}.")
    return table[value]


def export_params(
        service: str, *, bbox: tuple[float, float, float, float] | None = None, bbox_crs: CRS | None = None,
        size: tuple[int, int] | None = None, image_crs: CRS | None = None, format: str | None = None,  # noqa: A002
        pixel_type: str | None = None, no_data: Sequence[float] = (), no_data_interpretation: str | None = None,
        interpolation: str | None = None, compression: str | None = None, quality: int | None = None,
        tolerance: float | None = None, lerc_version: int | None = None, band_ids: Sequence[int] = (),
        adjust_aspect_ratio: bool | None = None, validate_extent: bool | None = None, kmz: bool = False,
        datum_transformation: Sequence[tuple[int | None, str | None]] | None = None,
        mosaic_rule: mosaic.MosaicRule | None = None, rendering_rule: dict | None = None,
        slice_id: int | None = None, time: tuple[int | None, int | None] | None = None) -> ExportParams:
    """Validate the request's values and apply the ArcGIS defaults to those not given (None).

    ``bbox`` is (xmin, ymin, xmax, ymax) in either order; ``datum_transformation`` the (wkid, wkt) steps of the
    chain; ``rendering_rule`` the rule's JSON object.
    """
    if not service:
        raise invalid("service is required.")
    if slice_id is not None and slice_id < 0:
        raise invalid(f"sliceId must be a slice's id from /slices (0 or more), got {slice_id}.", parameter="sliceId")
    if size is None:
        size = DEFAULT_SIZE
    elif size[0] <= 0 or size[1] <= 0:
        raise invalid(f"size must be two positive integers, got {size[0]},{size[1]}.", parameter="size")
    if bbox is not None:
        bbox = _bbox(bbox, size)

    pixel_type = pixel_types.pixel_type(pixel_type or pixel_types.UNKNOWN).name

    no_data = tuple(no_data)
    if not all(math.isfinite(v) for v in no_data):
        raise invalid("noData values must be finite numbers.")
    if no_data_interpretation is None:
        match_all = len(no_data) > 1  # ArcGIS default: MatchAny for one value, MatchAll for a per-band list
    else:
        match_all = _choice(NO_DATA_INTERPRETATIONS, no_data_interpretation, "noDataInterpretation")

    if any(b < 0 for b in band_ids):
        raise invalid("bandIds must be non-negative band indexes.")
    if len(band_ids) > MAX_BAND_IDS:
        raise invalid(f"bandIds names {len(band_ids)} bands; at most {MAX_BAND_IDS} may be asked for.",
                      parameter="bandIds")

    if quality is not None and not 0 <= quality <= 100:
        raise invalid(f"compressionQuality must be between 0 and 100, got {quality}.")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise invalid("compressionTolerance must be a non-negative number.")
    if lerc_version is not None and lerc_version not in LERC_VERSIONS:
        raise invalid(f"lercVersion must be {' or '.join(map(str, LERC_VERSIONS))}, got {lerc_version}.")

    if datum_transformation is not None and not datum_transformation:
        raise invalid("datumTransformation is empty: give a wkid, wkt or geoTransforms.")

    return ExportParams(
        service=service,
        bbox=bbox,
        bbox_crs=bbox_crs,
        size=size,
        image_crs=image_crs,
        format=format or DEFAULT_FORMAT,
        pixel_type=pixel_type,
        no_data=no_data,
        no_data_match_all=match_all,
        resampling=_choice(RESAMPLING_OF_INTERPOLATION, interpolation, "interpolation") if interpolation else None,
        compression=compression,
        quality=quality,
        tolerance=tolerance,
        lerc_version=lerc_version,
        band_ids=tuple(band_ids),
        adjust_aspect_ratio=True if adjust_aspect_ratio is None else adjust_aspect_ratio,
        validate_extent=bool(validate_extent),
        kmz=kmz,
        datum_transformation=(sr.datum_transformation(list(datum_transformation))
                              if datum_transformation is not None else None),
        mosaic_rule=mosaic_rule or mosaic.DEFAULT_RULE,
        rendering_rule=rendering_rule or None,
        time=time,
        slice_id=slice_id,
    )
