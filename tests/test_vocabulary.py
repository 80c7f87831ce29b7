"""Each vocabulary is declared once, in the stage that owns it, and the rest derives from it: the contract's enums
pair with it one to one, both doors carry every name it declares to the core, each format writes what it declares
and each pixel type converts to its dtype."""
from __future__ import annotations

import numpy as np
import pytest

from imgsvc import kernels, pixel_types
from imgsvc.encode import FORMATS, MEDIA_TYPES, EncodeOptions, encode
from imgsvc.encode.geotiff import COMPRESSION_ALIASES, COMPRESSIONS
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.grpc import enums
from imgsvc.grpc.requests import export_params
from imgsvc.identify import GEOMETRY_TYPES
from imgsvc.params import NO_DATA_INTERPRETATIONS
from imgsvc.rest.query import Params, export_request
from imgsvc.v1 import image_service_pb2 as pb
from tests.test_encode import hole_mask, make_block

PAIRINGS = [
    (pb.Format, enums.FORMAT, list(FORMATS)),
    (pb.PixelType, enums.PIXEL_TYPE, [t.name for t in pixel_types.PIXEL_TYPES]),
    (pb.Interpolation, enums.INTERPOLATION, [m.interpolation for m in kernels.RESAMPLING_METHODS]),
    (pb.Compression, enums.COMPRESSION, list(COMPRESSIONS)),
    (pb.NoDataInterpretation, enums.NO_DATA_INTERPRETATION, list(NO_DATA_INTERPRETATIONS)),
    (pb.GeometryType, enums.GEOMETRY_TYPE, list(GEOMETRY_TYPES)),
]


def export(**query):
    """The query through both doors: the gateway's parsing, then the servicer's conversion into ExportParams."""
    return export_params(export_request("svc", Params(query.items())))


def test_every_registry_format_has_its_proto_value_and_every_proto_value_its_format():
    assert {f"FORMAT_{name.upper()}" for name in FORMATS} == set(pb.Format.keys()) - {"FORMAT_UNSPECIFIED"}


@pytest.mark.parametrize("enum, pairing, names", PAIRINGS, ids=[enum.DESCRIPTOR.name for enum, _, _ in PAIRINGS])
def test_each_vocabulary_pairs_with_its_enum_completely_and_one_to_one(enum, pairing, names):
    assert list(pairing) == names
    assert sorted(pairing.values()) == sorted(set(enum.values()) - {0})  # every value but UNSPECIFIED, once


@pytest.mark.parametrize("name", [alias for f in FORMATS.values() for alias in (f.name, *f.aliases)])
def test_every_format_name_and_alias_reaches_the_core_in_any_case(name):
    canonical = next(f.name for f in FORMATS.values() if name in (f.name, *f.aliases))
    assert export(format=name).format == export(format=name.upper()).format == canonical


@pytest.mark.parametrize("method", kernels.RESAMPLING_METHODS, ids=lambda m: m.name)
def test_every_interpolation_reaches_the_core_as_its_kernel(method):
    assert export(interpolation=method.interpolation).resampling == method.name
    assert export(interpolation=method.interpolation.lower()).resampling == method.name


@pytest.mark.parametrize("name", [*COMPRESSIONS, *COMPRESSION_ALIASES])
def test_every_compression_and_alias_reaches_the_core(name):
    assert export(compression=name.lower()).compression == COMPRESSION_ALIASES.get(name, name)


@pytest.mark.parametrize("name, match_all", NO_DATA_INTERPRETATIONS.items())
def test_every_no_data_interpretation_reaches_the_core(name, match_all):
    assert export(noData="0", noDataInterpretation=name.upper()).no_data_match_all is match_all


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=lambda f: f.name)
def test_each_format_writes_only_the_file_types_it_declares(fmt):
    written = {(out.content_type, out.extension) for out in (
        encode(make_block(3, valid=valid), EncodeOptions(fmt.name)) for valid in (None, hole_mask()))}
    assert written <= {(file.media_type, file.extension) for file in fmt.files}
    assert all(MEDIA_TYPES[extension] == media_type for media_type, extension in written)


@pytest.mark.parametrize("pixel", [t for t in pixel_types.PIXEL_TYPES if not t.complex], ids=lambda t: t.name)
def test_every_pixel_type_reaches_the_core_and_converts_to_its_dtype(pixel):
    assert export(pixelType=pixel.name.lower()).pixel_type == pixel.name
    data = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    out = kernels.convert_pixel_type(data, np.ones((3, 4), bool), pixel.name)
    assert out.dtype == (np.dtype(pixel.dtype) if pixel.dtype else data.dtype)


@pytest.mark.parametrize("name, kind", [("C64", ErrorKind.UNIMPLEMENTED), ("C128", ErrorKind.UNIMPLEMENTED),
                                        ("F16", ErrorKind.INVALID_ARGUMENT)])
def test_complex_and_unknown_pixel_types_are_refused_by_name(name, kind):
    with pytest.raises(ImgsvcError) as info:
        pixel_types.pixel_type(name)
    assert info.value.kind is kind and name in info.value.text
