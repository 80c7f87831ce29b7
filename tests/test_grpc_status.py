"""Errors as any gRPC client reads them: the standard rich status (google.rpc.Status) read with grpcio-status and
the standard protos only, no imgsvc code but the generated stubs; and the same ArcGIS envelope over REST."""
from __future__ import annotations

import json
import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from imgsvc.v1 import image_service_pb2 as pb

DEM_3857 = (-13167000, 4388000, -13151000, 4400000)
EXPORT = "/arcgis/rest/services/{}/ImageServer/exportImage"
INVALID = "Invalid or missing input parameters."


def export(service: str = "dem", bbox=DEM_3857, **fields) -> pb.ExportImageRequest:
    xmin, ymin, xmax, ymax = bbox
    return pb.ExportImageRequest(service=service, bbox=pb.Envelope(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax),
                                 bbox_sr=pb.SpatialReference(wkid=3857), **fields)


def failure(call, request):
    """Make a call that fails; its status code and message, its ErrorInfo and its BadRequest field violations."""
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    status = rpc_status.from_call(info.value)
    assert status is not None, "no google.rpc.Status in the trailers"
    infos, violations = [], []
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            infos.append(error_details_pb2.ErrorInfo())
            packed.Unpack(infos[-1])
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            packed.Unpack(bad_request)
            violations.extend(bad_request.field_violations)
    assert len(infos) == 1 and infos[0].domain == "imgsvc"
    return info.value.code(), status.message, infos[0], violations


# (gRPC request, the same request over REST as (service, query), gRPC status, ArcGIS code, message and details,
# the parameter a BadRequest field violation names or None)
CASES = [
    pytest.param(export(size=pb.Size(width=100, height=5000)), ("dem", {"size": "100,5000"}),
                 grpc.StatusCode.INVALID_ARGUMENT, 400, INVALID, ["The requested image exceeds the size limit."], None,
                 id="size-limit"),
    pytest.param(export(bbox=(1, 2, 1, 4)), ("dem", {"bbox": "1,2,1,4"}), grpc.StatusCode.INVALID_ARGUMENT, 400,
                 INVALID, ["bbox must have a non-zero width and height."], "bbox", id="empty-bbox"),
    pytest.param(export("nope"), ("nope", {}), grpc.StatusCode.NOT_FOUND, 404, "Service not found.",
                 ["Service 'nope' does not exist."], None, id="unknown-service"),
    pytest.param(export(slice_id=2), ("dem", {"sliceId": "2"}), grpc.StatusCode.UNIMPLEMENTED, 400, INVALID,
                 ["sliceId is not supported: the service is not multidimensional."], "sliceId", id="sliceId"),
]


@pytest.mark.parametrize("request_, rest, status, code, message, details, parameter", CASES)
def test_a_grpc_client_reads_the_arcgis_error_from_the_standard_status(stub, http, request_, rest, status, code,
                                                                       message, details, parameter):
    got_status, text, info, violations = failure(stub.ExportImage, request_)
    assert got_status == status and info.reason == status.name
    assert dict(info.metadata) == {"code": str(code), "message": message, "details": json.dumps(details)}
    assert text == " ".join([message, *details])
    if parameter is None:
        assert not violations
    else:
        assert [(v.field, v.description) for v in violations] == [(parameter, " ".join(details))]

    service, query = rest
    reply = http.get(EXPORT.format(service), params={"bbox": ",".join(map(str, DEM_3857)), "bboxSR": "3857",
                                                     "f": "json", **query})
    assert reply.json() == {"error": {"code": code, "message": message, "details": details}}


def test_a_detail_echoing_a_long_input_is_cut_so_the_status_fits_the_trailers(stub, http):
    rule = {"rasterFunction": "x" * 20000}
    request = export()
    request.rendering_rule.update(rule)
    got_status, text, info, _ = failure(stub.ExportImage, request)
    assert got_status == grpc.StatusCode.UNIMPLEMENTED  # a function that is not built; ArcGIS's code 400
    details = json.loads(info.metadata["details"])
    assert len(details) == 1 and details[0].endswith("\u2026") and len(details[0].encode()) <= 1000
    assert text == " ".join([INVALID, *details])
    reply = http.post(EXPORT.format("dem"), data={"bbox": ",".join(map(str, DEM_3857)), "bboxSR": "3857",
                                                   "renderingRule": json.dumps(rule), "f": "json"})
    assert reply.json() == {"error": {"code": 400, "message": INVALID, "details": details}}


def test_a_bug_is_internal_and_tells_nothing_of_the_exception_but_logs_it(stub, http_4xx, image_service,
                                                                         monkeypatch, caplog):
    def broken():
        raise RuntimeError("/srv/secret/catalog.sqlite is locked")

    monkeypatch.setattr(image_service, "service_names", broken)
    with caplog.at_level(logging.ERROR):
        got_status, text, info, violations = failure(stub.ListServices, pb.ListServicesRequest())
    assert got_status == grpc.StatusCode.INTERNAL and info.reason == "INTERNAL" and not violations
    detail = "An internal error occurred; see the server log, request id {}."
    rid = json.loads(info.metadata["details"])[0].rsplit(" ", 1)[1].rstrip(".")
    assert dict(info.metadata) == {"code": "500", "message": "Unable to complete operation.",
                                   "details": json.dumps([detail.format(rid)])}
    assert "secret" not in text and "RuntimeError" not in text
    assert "/srv/secret/catalog.sqlite is locked" in caplog.text

    reply = http_4xx.get("/arcgis/rest/services", params={"f": "json"})
    assert reply.status_code == 500
    rid = reply.headers["x-request-id"]
    assert reply.json() == {"error": {"code": 500, "message": "Unable to complete operation.",
                                      "details": [detail.format(rid)]}}
    assert f"request id {rid}" in caplog.text  # the gRPC service logged the failure under the gateway's id
