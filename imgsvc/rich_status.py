"""How an ImgsvcError crosses gRPC: as the standard rich status, ``google.rpc.Status``.

Any gRPC client, in any language, reads it with its gRPC library's status helpers (``grpcio-status`` in Python):

* ``code``: the gRPC status of the error's kind (the servicer's table);
* ``message``: ``ImgsvcError.text``, the ArcGIS message followed by the details;
* ``details``: a ``google.rpc.ErrorInfo`` whose ``reason`` is the kind's name (``INVALID_ARGUMENT``, ...), ``domain``
  is ``imgsvc`` and ``metadata`` is the ArcGIS error envelope: ``code`` (the ArcGIS code, as a string), ``message``
  and ``details`` (a JSON list of strings); then, when the error names its parameter, a ``google.rpc.BadRequest``
  with one field violation, ``field`` the ArcGIS parameter name and ``description`` the details.

The servicer encodes; the REST gateway and ``imgsvc.client`` decode.  The module stands apart from ``imgsvc.grpc``,
whose package brings the server and the whole core with it, so that those two clients stay light.
"""
from __future__ import annotations

import json

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from imgsvc.errors import ErrorKind, ImgsvcError

DOMAIN = "imgsvc"
# gRPC clients refuse trailers over 8 KiB (grpc-core's soft limit; 16 KiB hard), and the status carries each detail
# four times (the grpc-message trailer, then in base64 the status message, ErrorInfo and BadRequest), so a detail
# echoing a long input is cut to this many bytes of UTF-8: at most ~7.4 KiB of trailers, measured with ASCII, quotes
# and 2- to 4-byte characters.
MAX_DETAIL_BYTES = 1000


def to_status(error: ImgsvcError, code: grpc.StatusCode) -> grpc.Status:
    """What a servicer aborts with (``context.abort_with_status``) to send ``error`` under the status ``code``."""
    error = ImgsvcError(error.kind, *map(_cut, error.details), message=error.message, code=error.code,
                        parameter=error.parameter)
    status = status_pb2.Status(code=code.value[0], message=error.text)
    details = json.dumps(list(error.details), ensure_ascii=False)  # \u escapes would make non-ASCII text 2-3x longer
    status.details.add().Pack(error_details_pb2.ErrorInfo(
        reason=error.kind.name, domain=DOMAIN,
        metadata={"code": str(error.code), "message": error.message, "details": details}))
    if error.parameter:
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=error.parameter, description=" ".join(error.details))]))
    return rpc_status.to_status(status)


def from_status(status: status_pb2.Status | None, code: grpc.StatusCode, text: str | None) -> ImgsvcError:
    """The error a failed call carries, given its rich status (``rpc_status.from_call``: None when it has none), its
    status code and its message.  A failure that is not imgsvc's own (the channel, a deadline, a proxy or another
    server) has no imgsvc ErrorInfo: its kind is the one named like its status code (else INTERNAL) and its message
    is the detail."""
    info = next((i for i in _details(status, error_details_pb2.ErrorInfo) if i.domain == DOMAIN), None)
    if info is None:
        return ImgsvcError(_kind(code.name), text or code.name)
    violations = [v for bad in _details(status, error_details_pb2.BadRequest) for v in bad.field_violations]
    return ImgsvcError(_kind(info.reason), *json.loads(info.metadata["details"]), message=info.metadata["message"],
                       code=int(info.metadata["code"]), parameter=violations[0].field if violations else None)


def _cut(detail: str) -> str:
    encoded = detail.encode()
    if len(encoded) <= MAX_DETAIL_BYTES:
        return detail
    return encoded[:MAX_DETAIL_BYTES - 3].decode(errors="ignore") + "\u2026"  # an ellipsis, 3 bytes


def _kind(name: str) -> ErrorKind:
    return ErrorKind.__members__.get(name, ErrorKind.INTERNAL)


def _details(status: status_pb2.Status | None, message_type: type[Message]) -> list[Message]:
    """The status's details of one message type, unpacked."""
    found = []
    for packed in status.details if status is not None else ():
        if packed.Is(message_type.DESCRIPTOR):
            found.append(message_type())
            packed.Unpack(found[-1])
    return found
