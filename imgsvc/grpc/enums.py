"""The contract's enums paired with the core's vocabularies, for both doors: the gateway writes requests with these
values, the servicer reads them back into the core's names.

Each value is named after the ArcGIS spelling, camelCase as UPPER_SNAKE behind the enum's prefix: png8 ->
FORMAT_PNG8, U16 -> PIXEL_TYPE_U16, RSP_NearestNeighbor -> RSP_NEAREST_NEIGHBOR, LZ77 -> COMPRESSION_LZ77,
esriGeometryPoint -> ESRI_GEOMETRY_POINT; noDataInterpretation's values leave out the "esri" (NO_DATA_MATCH_ANY).
A name without its value fails here, at import; tests/test_vocabulary.py checks that no value is left without a name.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from imgsvc import identify, kernels, params, pixel_types
from imgsvc.encode import FORMATS, geotiff
from imgsvc.v1 import image_service_pb2 as pb

_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def paired(enum, arcgis_names: Iterable[str], prefix: str = "", unprefixed: str = "") -> dict[str, int]:
    """ArcGIS name -> the value of ``enum`` named after it (``unprefixed``: a prefix of the names the enum drops)."""
    return {name: enum.Value(prefix + _WORD_START.sub("_", name.removeprefix(unprefixed)).upper())
            for name in arcgis_names}


def names(pairing: dict[str, int]) -> dict[int, str]:
    """The other way: proto value -> ArcGIS name.  UNSPECIFIED (0) has none: readers take it as not given."""
    return {value: name for name, value in pairing.items()}


FORMAT = paired(pb.Format, FORMATS, "FORMAT_")
PIXEL_TYPE = paired(pb.PixelType, (t.name for t in pixel_types.PIXEL_TYPES), "PIXEL_TYPE_")
INTERPOLATION = paired(pb.Interpolation, (m.interpolation for m in kernels.RESAMPLING_METHODS))
COMPRESSION = paired(pb.Compression, geotiff.COMPRESSIONS, "COMPRESSION_")
NO_DATA_INTERPRETATION = paired(pb.NoDataInterpretation, params.NO_DATA_INTERPRETATIONS, unprefixed="esri")
GEOMETRY_TYPE = paired(pb.GeometryType, identify.GEOMETRY_TYPES)

FORMAT_NAMES = names(FORMAT)
PIXEL_TYPE_NAMES = names(PIXEL_TYPE)
INTERPOLATION_NAMES = names(INTERPOLATION)
COMPRESSION_NAMES = names(COMPRESSION)
NO_DATA_INTERPRETATION_NAMES = names(NO_DATA_INTERPRETATION)
GEOMETRY_TYPE_NAMES = names(GEOMETRY_TYPE)
