"""The gateway app (Starlette).  It parses the ArcGIS dialect into protobuf, calls the gRPC service over a
``grpc.aio`` channel, and turns replies into ArcGIS JSON, image bytes or HTML.  It holds no raster logic.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import grpc
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from imgsvc.errors import ARCGIS_MESSAGES, ErrorKind, ImgsvcError
from imgsvc.rest import arcgis_json, pages
from imgsvc.rest.outputs import OutputStore
from imgsvc.rest.query import RESPONSE_FORMS, Params, export_request
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

ERROR_METADATA_KEY = "imgsvc-error"
KIND_OF_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorKind.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: ErrorKind.NOT_FOUND,
    grpc.StatusCode.UNIMPLEMENTED: ErrorKind.UNIMPLEMENTED,
}
# A JSONP callback is echoed into a script: only plain JavaScript identifiers and member paths get through.
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*|\[\d+\])*$")
MAX_FORM_BYTES = 1024 * 1024
SERVICES_PREFIX = "/arcgis/rest/services"


@dataclass(frozen=True)
class GatewaySettings:
    grpc_target: str
    output_dir: Path
    output_ttl_seconds: float = 600.0
    # ArcGIS answers errors with HTTP 200 and the envelope; clients rely on it.  Off switches to 4xx/5xx statuses.
    errors_with_http_200: bool = True


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.outputs = OutputStore(settings.output_dir, settings.output_ttl_seconds)
        self.channel: grpc.aio.Channel | None = None
        self.stub: pb_grpc.ImageServiceStub | None = None

    # ---- plumbing -------------------------------------------------------------------------------------------

    async def params(self, request: Request) -> Params:
        items = list(request.query_params.multi_items())
        if request.method == "POST":
            length = int(request.headers.get("content-length") or 0)
            if length > MAX_FORM_BYTES:
                raise ImgsvcError(ErrorKind.INVALID_ARGUMENT, "The request body is too large.")
            form = await request.form(max_part_size=MAX_FORM_BYTES)
            items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        return Params(items)

    def json(self, doc: dict, params: Params, status: int = 200) -> Response:
        pretty = (params.get("f") or "").lower() == "pjson"
        body = json.dumps(doc, indent=2 if pretty else None, allow_nan=False)
        callback = params.get("callback")
        if callback and _CALLBACK.match(callback):
            return Response(f"{callback}({body});", status_code=status, media_type="application/javascript")
        return Response(body, status_code=status, media_type="application/json")

    def error(self, error: ImgsvcError | dict, params: Params) -> Response:
        envelope = error if isinstance(error, dict) else {
            "code": error.kind.value, "message": error.message, "details": list(error.details)}
        status = 200 if self.settings.errors_with_http_200 else int(envelope["code"])
        return self.json({"error": envelope}, params, status)

    def rpc_error(self, exc: grpc.aio.AioRpcError) -> dict:
        for key, value in exc.trailing_metadata() or ():
            if key == ERROR_METADATA_KEY:
                return json.loads(value)
        kind = KIND_OF_STATUS.get(exc.code(), ErrorKind.INTERNAL)
        return {"code": kind.value, "message": ARCGIS_MESSAGES[kind], "details": [exc.details() or exc.code().name]}

    async def call(self, method: str, message, params: Params):
        """Call the gRPC service; returns the reply, or a Response carrying the error envelope."""
        try:
            return await getattr(self.stub, method)(message)
        except grpc.aio.AioRpcError as exc:
            return self.error(self.rpc_error(exc), params)

    def base_url(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # ---- routes ---------------------------------------------------------------------------------------------

    async def services(self, request: Request) -> Response:
        params = Params(request.query_params.multi_items())
        reply = await self.call("ListServices", pb.ListServicesRequest(), params)
        if isinstance(reply, Response):
            return reply
        doc = {"currentVersion": 11.3, "folders": [],
               "services": [{"name": s.name, "type": s.type} for s in reply.services]}
        if (params.get("f") or "html").lower() == "html":
            return HTMLResponse(pages.services_page(doc, self.base_url(request)))
        return self.json(doc, params)

    async def root(self, request: Request) -> Response:
        name = request.path_params["service"]
        try:
            params = await self.params(request)
            info_request = pb.GetServiceInfoRequest(service=name)
            if (rule := params.get("renderingRule")) is not None:
                from imgsvc.rest.query import struct

                info_request.rendering_rule.CopyFrom(struct(rule, "renderingRule"))
        except ImgsvcError as error:
            return self.error(error, Params(request.query_params.multi_items()))
        reply = await self.call("GetServiceInfo", info_request, params)
        if isinstance(reply, Response):
            return reply
        doc = arcgis_json.root_doc(reply)
        if (params.get("f") or "html").lower() == "html":
            return HTMLResponse(pages.root_page(doc, f"{self.base_url(request)}{SERVICES_PREFIX}/{name}/ImageServer"))
        return self.json(doc, params)

    async def export_image(self, request: Request) -> Response:
        name = request.path_params["service"]
        params = Params(request.query_params.multi_items())
        try:
            params = await self.params(request)
            form = (params.get("f") or "html").lower()
            if form not in RESPONSE_FORMS:
                raise ImgsvcError(ErrorKind.INVALID_ARGUMENT, f"f {form!r} is not supported for exportImage; "
                                  f"expected one of: {', '.join(RESPONSE_FORMS)}.")
            if form == "html" and "bbox" not in params:
                return HTMLResponse(pages.export_form(name, params, None))
            message = export_request(name, params)
        except ImgsvcError as error:
            return self.error(error, params)
        reply = await self.call("ExportImage", message, params)
        if isinstance(reply, Response):
            return reply
        if form in ("image", "kmz"):
            headers = {"Content-Disposition": f'inline; filename="{name}.{reply.extension}"'}
            return Response(reply.image, media_type=reply.content_type, headers=headers)
        stored = self.outputs.save(name, reply.image, reply.extension)
        href = f"{self.base_url(request)}/arcgis/rest/directories/arcgisoutput/{stored}"
        doc = arcgis_json.image_resource_doc(reply, href)
        if form == "html":
            return HTMLResponse(pages.export_form(name, params, doc))
        return self.json(doc, params)

    async def output_file(self, request: Request) -> Response:
        path = self.outputs.path(request.path_params["folder"], request.path_params["name"])
        if path is None:
            params = Params(request.query_params.multi_items())
            return self.error(ImgsvcError(ErrorKind.NOT_FOUND, "The output file does not exist or has expired.",
                                          message="Not found."), params)
        media = {"png": "image/png", "jpg": "image/jpeg", "tif": "image/tiff", "gif": "image/gif",
                 "bmp": "image/bmp", "kmz": "application/vnd.google-earth.kmz"}.get(path.suffix[1:],
                                                                                    "application/octet-stream")
        return FileResponse(path, media_type=media)

    async def not_found(self, request: Request) -> Response:
        params = Params(request.query_params.multi_items())
        return self.error(ImgsvcError(ErrorKind.NOT_FOUND, f"No resource at {request.url.path}.",
                                      message="Not found."), params)

    # ---- lifecycle ------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.channel = grpc.aio.insecure_channel(
            self.settings.grpc_target, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
        self.stub = pb_grpc.ImageServiceStub(self.channel)
        expiry = asyncio.create_task(self._expire_outputs())
        try:
            yield
        finally:
            expiry.cancel()
            await self.channel.close()

    async def _expire_outputs(self) -> None:
        while True:
            await asyncio.to_thread(self.outputs.expire)
            await asyncio.sleep(max(1.0, self.settings.output_ttl_seconds / 4))


def create_app(settings: GatewaySettings) -> Starlette:
    gateway = Gateway(settings)
    service = SERVICES_PREFIX + "/{service}/ImageServer"
    both = ["GET", "POST"]
    routes = [
        Route(SERVICES_PREFIX, gateway.services, methods=both),
        Route(SERVICES_PREFIX + "/", gateway.services, methods=both),
        Route(service, gateway.root, methods=both),
        Route(service + "/", gateway.root, methods=both),
        Route(service + "/exportImage", gateway.export_image, methods=both),
        Route(service + "/exportImage/", gateway.export_image, methods=both),
        Route("/arcgis/rest/directories/arcgisoutput/{folder}/{name}", gateway.output_file, methods=["GET"]),
        Route("/{path:path}", gateway.not_found, methods=both),
    ]
    middleware = [Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"],
                             allow_headers=["*"])]
    app = Starlette(routes=routes, middleware=middleware, lifespan=gateway.lifespan)
    app.state.gateway = gateway
    return app
