"""A Python gRPC client for service-to-service users.

    with ImageClient("127.0.0.1:50051") as client:
        image = client.export_image("elevation", bbox=[-13167000, 4388000, -13151000, 4400000], bboxSR=3857,
                                    size=(512, 512), format="tiff", pixelType="F32")
        image.data, image.extent, image.width, image.height, image.content_type

Parameters keep their ArcGIS names and values (what the REST API takes) and go through the same parser as the REST
gateway (``imgsvc.rest.query``), so a request means the same thing through either door.  Python values are written
the way ArcGIS clients write them: lists/tuples comma-separated, dicts as JSON, booleans as true/false.

gRPC failures come back as exceptions rooted at ``imgsvc.errors.ImgsvcError``, one class per error kind, carrying
the service's ArcGIS code, message and details and the parameter at fault, read from the call's rich status
(``imgsvc.rich_status``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import BinaryIO

import grpc
from grpc_status import rpc_status

from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.rest.query import Params, export_request, identify_request
from imgsvc.rich_status import from_status
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class InvalidArgument(ImgsvcError):
    """The request is malformed or asks for something out of range (ArcGIS code 400)."""


class NotFound(ImgsvcError):
    """No such service (or resource) (ArcGIS code 404)."""


class Unsupported(ImgsvcError):
    """A parameter value the service does not implement (ArcGIS code 400, as ArcGIS answers a value it does not take;
    the detail names the parameter and says it is not supported)."""


class ServiceError(ImgsvcError):
    """The service failed to complete the operation (ArcGIS code 500)."""


class Unavailable(ServiceError):
    """The service could not be reached or did not answer in time."""


class Unauthenticated(ImgsvcError):
    """The server wants a token (ArcGIS code 499) or refused the one given (498)."""


# A busy server, a deadline passed and a cancelled call are the service not answering in time (Unavailable).
CLASS_OF_KIND = {ErrorKind.INVALID_ARGUMENT: InvalidArgument, ErrorKind.NOT_FOUND: NotFound,
                 ErrorKind.UNIMPLEMENTED: Unsupported, ErrorKind.INTERNAL: ServiceError,
                 ErrorKind.RESOURCE_EXHAUSTED: Unavailable, ErrorKind.DEADLINE_EXCEEDED: Unavailable,
                 ErrorKind.CANCELLED: Unavailable, ErrorKind.UNAUTHENTICATED: Unauthenticated}
# The statuses of a call that never reached the service, or was not answered in time.
UNAVAILABLE_STATUSES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _typed(error: ImgsvcError, cls: type[ImgsvcError] | None = None) -> ImgsvcError:
    """``error`` as an instance of ``cls``, by default the client's class for its kind."""
    return (cls or CLASS_OF_KIND[error.kind])(error.kind, *error.details, message=error.message, code=error.code,
                                              parameter=error.parameter)


def _parsed(build, *args):
    """Run a request parser; its errors (raised before any call) come out as the same classes as the service's."""
    try:
        return build(*args)
    except ImgsvcError as error:
        if type(error) is not ImgsvcError:
            raise
        raise _typed(error) from None


def error_from_rpc(exc: grpc.RpcError) -> ImgsvcError:
    """The exception for a failed call, read from its rich status: the class of its kind (Unavailable when the
    service was not reached or did not answer in time), the service's ArcGIS code, message, details and parameter."""
    error = from_status(rpc_status.from_call(exc), exc.code(), exc.details())
    return _typed(error, Unavailable if exc.code() in UNAVAILABLE_STATUSES else None)


def arcgis_text(value) -> str:
    """A Python value as ArcGIS clients write it in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return ",".join(arcgis_text(v) for v in value)
    return str(value)


def _params(**values) -> Params:
    return Params((name, arcgis_text(value)) for name, value in values.items() if value is not None)


@dataclass(frozen=True)
class Extent:
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    spatial_reference: dict  # ArcGIS SR JSON: {"wkid", "latestWkid"} or {"wkt"}


@dataclass(frozen=True)
class ExportedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    extent: Extent  # the adjusted extent, in imageSR


def _extent(env: pb.Envelope) -> Extent:
    srm = env.spatial_reference
    sr = {k: getattr(srm, f) for k, f in (("wkid", "wkid"), ("latestWkid", "latest_wkid"), ("wkt", "wkt"))
          if srm.HasField(f)}
    return Extent(env.xmin, env.ymin, env.xmax, env.ymax, sr)


# What a caller running thousands of requests a minute needs from its channel (docs/decisions.md "Client
# channels"): keepalive pings while a call is open, so a dead peer is noticed, and gRPC's own retry of a call that
# never reached the service (UNAVAILABLE: a replica restarting, a connection refused), with backoff.  A call the
# service answered, even with an error, is never retried.
RETRY_SERVICE_CONFIG = {"methodConfig": [{
    "name": [{"service": "imgsvc.v1.ImageService"}],
    "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "2s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]},
}]}
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000),
                   ("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(RETRY_SERVICE_CONFIG)))


EXPORT_PARAMETERS = ("bbox", "bboxSR", "size", "imageSR", "time", "format", "pixelType", "noData",
                     "noDataInterpretation", "interpolation", "compression", "compressionQuality",
                     "compressionTolerance", "lercVersion", "bandIds", "mosaicRule", "renderingRule", "sliceId",
                     "adjustAspectRatio", "validateExtent", "datumTransformation", "f")
IDENTIFY_PARAMETERS = ("geometryType", "mosaicRule", "renderingRule", "pixelSize", "time")


def _known(arguments: dict, names: tuple[str, ...], operation: str) -> None:
    """A misspelt keyword is the caller's bug, not a parameter for the service to ignore."""
    unknown = sorted(set(arguments) - set(names))
    if unknown:
        raise TypeError(f"{operation}() got unexpected keyword arguments {unknown}; it takes {', '.join(names)}")


def export_message(service: str, **arguments) -> pb.ExportImageRequest:
    """exportImage's request from the ArcGIS parameters (``f="kmz"`` asks for the KMZ overlay)."""
    _known(arguments, EXPORT_PARAMETERS, "export_image")
    arguments.setdefault("f", "image")
    return _parsed(export_request, service, _params(**arguments))


def exported(reply: pb.ExportImageResponse) -> ExportedImage:
    return ExportedImage(data=reply.image, content_type=reply.content_type, extension=reply.extension,
                         width=reply.width, height=reply.height, extent=_extent(reply.extent))


def _streamed_header(first: pb.ExportImageChunk) -> ExportedImage:
    """The answer an ExportImageStream opens with (its image follows in the data messages)."""
    if first.WhichOneof("part") != "header":
        raise ValueError("ExportImageStream did not open with its header")
    return exported(first.header)


def identify_message(service: str, geometry, **arguments) -> pb.IdentifyRequest:
    _known(arguments, IDENTIFY_PARAMETERS, "identify")
    return _parsed(identify_request, service, _params(geometry=geometry, **arguments))


class ImageClient:
    """A channel to an imgsvc gRPC server (``host:port``).  Use as a context manager, or call ``close()``.

    ``token`` is sent with every call when the server controls access (``serve --tokens``); ``root_certificates``
    (PEM) calls a server serving TLS, checking its certificate against them.  :class:`AsyncImageClient` is the
    same for asyncio."""

    grpc_module = grpc

    def __init__(self, target: str, timeout: float = 120.0, channel=None, token: str | None = None,
                 root_certificates: bytes | None = None) -> None:
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if channel is None and root_certificates is not None:
            channel = self.grpc_module.secure_channel(target, grpc.ssl_channel_credentials(root_certificates),
                                                      options=CHANNEL_OPTIONS)
        self.channel = channel or self.grpc_module.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.ImageServiceStub(self.channel)

    def __enter__(self) -> ImageClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: str, message):
        try:
            return getattr(self.stub, method)(message, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    def export_image(self, service: str, **arguments) -> ExportedImage:
        """exportImage with the ArcGIS parameters (``EXPORT_PARAMETERS``, docs/protocol.md §1.1) as keywords;
        ``f="kmz"`` asks for the KMZ overlay."""
        return exported(self._call("ExportImage", export_message(service, **arguments)))

    def export_image_to(self, out: BinaryIO, service: str, **arguments) -> ExportedImage:
        """exportImage through ExportImageStream, for images of any size: the bytes are written to ``out`` (a
        binary file) as they arrive; returns the answer with empty ``data``."""
        try:
            chunks = self.stub.ExportImageStream(export_message(service, **arguments), timeout=self.timeout,
                                                 metadata=self.metadata)
            header = _streamed_header(next(chunks))
            for chunk in chunks:
                out.write(chunk.data)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
        return header

    def identify(self, service: str, geometry, **arguments) -> pb.IdentifyResponse:
        """The pixel under ``geometry`` (a point dict, or an (x, y) pair in the service SR), with the
        ``IDENTIFY_PARAMETERS`` as keywords."""
        return self._call("Identify", identify_message(service, geometry, **arguments))

    def service_info(self, name: str) -> pb.ServiceInfo:
        """The service's root resource as a typed message."""
        return self._call("GetServiceInfo", pb.GetServiceInfoRequest(service=name))

    def list_services(self) -> list[str]:
        return [s.name for s in self._call("ListServices", pb.ListServicesRequest()).services]


class AsyncImageClient(ImageClient):
    """:class:`ImageClient` for asyncio: the same arguments, answers and errors, each method a coroutine.  Use as
    an async context manager, or await ``close()``."""

    grpc_module = grpc.aio

    async def __aenter__(self) -> AsyncImageClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, method: str, message):
        try:
            return await getattr(self.stub, method)(message, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    async def export_image(self, service: str, **arguments) -> ExportedImage:
        return exported(await self._call("ExportImage", export_message(service, **arguments)))

    async def export_image_to(self, out: BinaryIO, service: str, **arguments) -> ExportedImage:
        try:
            chunks = self.stub.ExportImageStream(export_message(service, **arguments), timeout=self.timeout,
                                                 metadata=self.metadata)
            header = None
            async for chunk in chunks:  # grpc.aio allows one way of reading a stream: iteration throughout
                if header is None:
                    header = _streamed_header(chunk)
                else:
                    out.write(chunk.data)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
        return header

    async def identify(self, service: str, geometry, **arguments) -> pb.IdentifyResponse:
        return await self._call("Identify", identify_message(service, geometry, **arguments))

    async def service_info(self, name: str) -> pb.ServiceInfo:
        return await self._call("GetServiceInfo", pb.GetServiceInfoRequest(service=name))

    async def list_services(self) -> list[str]:
        return [s.name for s in (await self._call("ListServices", pb.ListServicesRequest())).services]
