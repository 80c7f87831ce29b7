"""The gateway's parsing of the ArcGIS dialect into the protobuf request, and the core's validation of it."""
import math

import pytest

from imgsvc import sr
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.v1 import image_service_pb2 as pb


def request(**query) -> pb.ExportImageRequest:
    return export_request("svc", Params(query.items()))


def test_names_are_case_insensitive_and_blank_or_unknown_values_are_ignored():
    req = request(BBOX="1,2,3,4", bboxsr="3857", ImageSR="", transparent="true", dpi="90", layers="show:", time="")
    assert (req.bbox.xmin, req.bbox.ymin, req.bbox.xmax, req.bbox.ymax) == (1, 2, 3, 4)
    assert req.bbox_sr.wkid == 3857
    assert not req.HasField("image_sr") and not req.HasField("time")


def test_bbox_min_max_in_either_order_is_normalised():
    params = export_params(request(bbox="-8899868.95,5464941.77,-8777569.71,5373217.34"))
    assert params.bbox == (-8899868.95, 5373217.34, -8777569.71, 5464941.77)


def test_bbox_as_envelope_json_carries_its_spatial_reference():
    req = request(bbox='{"xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4, "spatialReference": {"wkid": 102100}}')
    params = export_params(req)
    assert params.bbox == (1, 2, 3, 4)
    assert params.bbox_crs == sr.crs_from_wkid(3857)


@pytest.mark.parametrize("text, code", [("3857", 3857), ("102100", 3857), ('{"wkid": 3857}', 3857),
                                        ('{"wkid": 102100, "latestWkid": 3857}', 3857), ("4326", 4326),
                                        ('{"wkid": 32611}', 32611)])
def test_spatial_reference_forms(text, code):
    assert export_params(request(bbox="1,2,3,4", bboxSR=text)).bbox_crs == sr.crs_from_wkid(code)


def test_wkt_spatial_reference():
    wkt = sr.crs_from_wkid(32611).to_wkt()
    import json

    assert export_params(request(imageSR=json.dumps({"wkt": wkt}))).image_crs == sr.crs_from_wkid(32611)


@pytest.mark.parametrize("query, fragment", [
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "1,2,1,4"}, "non-zero"),
    ({"bbox": "nan,2,3,4"}, "finite"),
    ({"bbox": "1,2,inf,4"}, "finite"),
    ({"bbox": '{"xmin": 1,'}, "bbox is not valid JSON"),
    ({"bboxSR": "999999"}, "999999"),
    ({"bboxSR": '{"wkid": 3857'}, "bboxSR is not valid JSON"),
    ({"size": "0,400"}, "size"),
    ({"size": "-5,400"}, "size"),
    ({"size": "400"}, "size"),
    ({"size": "400.5,300"}, "size"),
    ({"format": "webp"}, "format 'webp'"),
    ({"pixelType": "F16"}, "pixelType"),
    ({"interpolation": "RSP_Lanczos"}, "interpolation"),
    ({"compression": "ZSTD"}, "compression"),
    ({"compressionQuality": "101"}, "compressionQuality"),
    ({"compressionTolerance": "-1"}, "compressionTolerance"),
    ({"lercVersion": "3"}, "lercVersion"),
    ({"renderingRule": '{"rasterFunction": '}, "renderingRule is not valid JSON"),
    ({"mosaicRule": "[1,2"}, "mosaicRule is not valid JSON"),
    ({"noData": "0,x"}, "noData"),
    ({"bandIds": "0,-1"}, "bandIds"),
    ({"adjustAspectRatio": "maybe"}, "adjustAspectRatio"),
    ({"time": "1,2,3"}, "time"),
])
def test_malformed_input_is_an_invalid_argument_naming_the_parameter(query, fragment):
    with pytest.raises(ImgsvcError) as info:
        export_params(request(**query))
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT
    assert fragment in info.value.text


@pytest.mark.parametrize("query, name", [
    ({"pixelType": "C64"}, "C64"),
])
def test_parameters_not_built_yet_are_refused_by_name(query, name):
    with pytest.raises(ImgsvcError) as info:
        export_params(request(**query))
    assert info.value.kind is ErrorKind.UNIMPLEMENTED
    assert name in info.value.text


@pytest.mark.parametrize("query, parameter", [
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": '{"xmin": "a", "ymin": 1, "xmax": 2, "ymax": 3}'}, "bbox"),
    ({"bbox": "1,2,1,4"}, "bbox"),
    ({"bboxSR": '{"wkid": "x"}'}, "bboxSR"),
    ({"size": "400"}, "size"),
    ({"format": "webp"}, "format"),
    ({"renderingRule": "[1]"}, "renderingRule"),
    ({"mosaicRule": '{"viewpoint": {"x": 1, "y": 2, "spatialReference": {}}}'}, "mosaicRule"),
    ({"mosaicRule": '{"mosaicMethod": "esriMosaicRandom"}'}, "mosaicRule"),
    ({"mosaicRule": '{"mosaicMethod": "esriMosaicSeamline", "blendWidth": -3}'}, "mosaicRule"),
    ({"mosaicRule": '{"mosaicMethod": "esriMosaicSeamline", "blendWidth": "wide"}'}, "mosaicRule"),
    ({"mosaicRule": '{"mosaicMethod": "esriMosaicCenter", "blendWidth": 30}'}, "mosaicRule"),
    ({"sliceId": "-1"}, "sliceId"),
])
def test_refusals_name_the_top_level_parameter(query, parameter):
    with pytest.raises(ImgsvcError) as info:
        export_params(request(**query))
    assert info.value.parameter == parameter


def test_a_size_the_core_refuses_names_size():
    with pytest.raises(ImgsvcError) as info:
        export_params(pb.ExportImageRequest(service="svc", size=pb.Size(width=0, height=400)))
    assert info.value.parameter == "size"


@pytest.mark.parametrize("text, names", [
    ("1173", ("NAD27 to WGS 84 (4)",)),
    ('{"wkid": 1173}', ("NAD27 to WGS 84 (4)",)),
    ('{"geoTransforms": [{"wkid": 1173, "transformForward": true}, {"wkid": 108190, "transformForward": false}]}',
     ("NAD27 to WGS 84 (4)", "WGS_1984_(ITRF00)_To_NAD_1983")),
])
def test_datum_transformation_forms(text, names):
    assert export_params(request(datumTransformation=text)).datum_transformation.names == names


@pytest.mark.parametrize("text", ["99999999", '{"geoTransforms": []}', '{"wkid": "x"}', '{"wkt": "GEOGTRAN[oops"}'])
def test_bad_datum_transformation_is_invalid(text):
    with pytest.raises(ImgsvcError) as info:
        export_params(request(datumTransformation=text))
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT and "datumTransformation" in info.value.text


def test_identity_rendering_rule_is_accepted():
    export_params(request(renderingRule='{"rasterFunction": "None"}'))


def test_defaults():
    params = export_params(request())
    assert params.size == (400, 400) and params.format == "jpgpng" and params.adjust_aspect_ratio
    assert params.bbox is None and params.bbox_crs is None and params.image_crs is None
    assert params.resampling is None and params.pixel_type == "UNKNOWN"


def test_no_data_interpretation_defaults_per_reference():
    assert export_params(request(noData="0")).no_data_match_all is False
    assert export_params(request(noData="58,128,187")).no_data_match_all is True
    assert export_params(request(noData="0", noDataInterpretation="esriNoDataMatchAll")).no_data_match_all is True


def test_qgis_compression_lerc_with_format_lerc_is_not_an_error():
    req = request(format="lerc", compression="LERC", interpretation="RSP_BilinearInterpolation")
    assert req.compression == pb.COMPRESSION_UNSPECIFIED


def test_time_forms():
    assert request(time="1199145600000").time.instant == 1199145600000
    rng = request(time="null, 1230768000000").time.range
    assert not rng.HasField("start") and rng.end == 1230768000000


def test_everything_a_client_sends_parses():
    export_params(request(bbox="-8830574.81,5377068.89,-8769425.18,5422931.10", size="800,600", format="png32",
                  transparent="true", bboxSR="3857", imageSR="3857", dpi="90", f="image",
                  interpolation="RSP_NearestNeighbor", compressionTolerance="0.01", lercVersion="2",
                  adjustAspectRatio="true", pixelType="U8", noData="0", bandIds="2,1,0", compressionQuality="80",
                  _ts="1700000000000"))
    assert math.isclose(export_params(request(compressionTolerance="0.5")).tolerance, 0.5)
