"""The gateway app (Starlette).  It parses the ArcGIS dialect into protobuf, calls the ImageService (over gRPC, or
in its own process: ``imgsvc.rest.calls``), and turns replies into ArcGIS JSON, image bytes or HTML.  It holds no
raster logic.

Transport rules shared by every endpoint (docs/protocol.md §0, §8): GET and POST with the same parameters, names
case-insensitive (parameters and resource names), `f=json|pjson|html`, JSONP through `callback`, and every error as
the ArcGIS envelope with `Content-Type: application/json` (HTTP 200 unless the setting says otherwise), never an
image content type.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import FormParserError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from imgsvc import metrics, request_id
from imgsvc.encode import MEDIA_TYPES
from imgsvc.encode.types import OCTET_STREAM
from imgsvc.errors import ErrorKind, ImgsvcError, internal, invalid
from imgsvc.rest import arcgis_json, middleware, pages
from imgsvc.rest.calls import RemoteCalls
from imgsvc.rest.outputs import OutputStore
from imgsvc.rest.query import (RESPONSE_FORMS, Params, band_ids, dimension_filters, export_request,
                               identify_request, query_request, struct)
from imgsvc.tokens import Tokens, bearer
from imgsvc.v1 import image_service_pb2 as pb

log = logging.getLogger(__name__)

# A JSONP callback is echoed into a script: only plain JavaScript identifiers and member paths get through.
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*|\[\d+\])*$")
# A form body larger than this is refused (the longest real request, a POSTed rendering rule, is a few KiB).
MAX_FORM_BYTES = 1024 * 1024
SERVICES_PREFIX = "/arcgis/rest/services"
STATIC_PREFIX = "/arcgis/rest/static"
STATIC_DIR = Path(__file__).parent / "static"
RESOURCE_FORMS = ("html", "json", "pjson")
# The Host names a request may build its links (href, pages) from, besides the listen address's: a Host header
# outside the list (a proxy's, an attacker's) is never echoed into an answer.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class GatewaySettings:
    grpc_target: str
    output_dir: Path
    output_ttl_seconds: float = 600.0
    output_quota_mb: int = 1024  # the f=json output files kept together, oldest deleted first
    # ArcGIS answers errors with HTTP 200 and the envelope; clients rely on it.  Off switches to 4xx/5xx statuses.
    errors_with_http_200: bool = True
    # No request waits longer than this on the gRPC service.
    rpc_timeout_seconds: float = 120.0
    # The scheme://host[:port][/prefix] clients reach the gateway by: links are built from it when given...
    public_url: str | None = None
    # ...else from the request's Host when it names one of these (compared without the port).
    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS
    tokens: Tokens | None = None  # access control: off when None
    cors_origins: tuple[str, ...] = ("*",)


def _finite(doc):
    """JSON has no NaN/Infinity: non-finite numbers (a NaN nodata value, say) are written as null."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_finite(v) for v in doc]
    return doc


def guarded(handler):
    """Every route answers: ArcGIS errors as the envelope, and a bug as a 500 envelope (logged), never a traceback."""
    @functools.wraps(handler)
    async def wrapper(self: Gateway, request: Request) -> Response:
        try:
            return await handler(self, request)
        except ImgsvcError as error:
            return self.error(error, self.query_params(request))
        except Exception:
            log.exception("unexpected failure answering %s, request id %s", request.url.path, request_id.current())
            return self.error(internal(), self.query_params(request))
    return wrapper


class Gateway:
    def __init__(self, settings: GatewaySettings, calls) -> None:
        self.settings = settings
        self.calls = calls  # imgsvc.rest.calls: RemoteCalls, or imgsvc.grpc.local.LocalCalls
        self.outputs = OutputStore(settings.output_dir, settings.output_ttl_seconds,
                                   settings.output_quota_mb * 2**20)
        # lower-cased resource path below .../ImageServer -> handler(request, service name, params)
        self.resources = {
            "": self.root,
            "exportimage": self.export_image,
            "identify": self.identify,
            "query": self.query,
            "keyproperties": self.key_properties,
            "rasterfunctioninfos": self.raster_function_infos,
            "statistics": self.statistics,
            "histograms": self.histograms,
            "legend": self.legend,
            "multidimensionalinfo": self.multidimensional_info,
            "slices": self.slices,
            "info": self.item_info,
            "info/iteminfo": self.item_info,
            "info/metadata": self.metadata,
            "map": self.map_page,
        }

    # ---- plumbing -------------------------------------------------------------------------------------------

    @staticmethod
    def query_params(request: Request) -> Params:
        return Params(request.query_params.multi_items())

    async def _capped_body(self, request: Request):
        """The request body as a stream that refuses to go past MAX_FORM_BYTES, whatever Content-Length says."""
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_FORM_BYTES:
                raise invalid(f"The request body is too large (limit {MAX_FORM_BYTES} bytes).")
            yield chunk

    async def params(self, request: Request, server_level: bool = False) -> Params:
        items = list(request.query_params.multi_items())
        if request.method == "POST":
            length = request.headers.get("content-length") or "0"
            if not length.isdigit() or int(length) > MAX_FORM_BYTES:
                raise invalid(f"The request body is too large (limit {MAX_FORM_BYTES} bytes).")
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            try:
                if kind == "multipart/form-data":
                    form = await MultiPartParser(request.headers, self._capped_body(request),
                                                 max_part_size=MAX_FORM_BYTES).parse()
                else:  # urlencoded, or no/unknown content type: read as a form, as ArcGIS does
                    form = await FormParser(request.headers, self._capped_body(request)).parse()
            except (MultiPartException, FormParserError, ValueError) as exc:
                raise invalid(f"The request body is not a valid form: {exc}") from None
            items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        params = Params(items)
        self.authorize(request, params, request.path_params.get("service"), server_level=server_level)
        return params

    def authorize(self, request: Request, params: Params, service: str | None = None,
                  server_level: bool = False) -> None:
        """With access control on, the request's token (``token`` parameter, or an ``X-Esri-Authorization`` or
        ``Authorization`` bearer header) must be one of the server's, unless the resource (``service``'s, or a
        ``server_level`` one) is open to callers without one; it is passed on to the gRPC service."""
        token = (params.get("token") or bearer(request.headers.get("x-esri-authorization"))
                 or bearer(request.headers.get("authorization")))
        if (record := middleware.current()) is not None:
            record.token = token
        if self.settings.tokens is not None:
            self.settings.tokens.check(token, service, server_level=server_level)

    def json(self, doc: dict, params: Params, status: int = 200) -> Response:
        pretty = (params.get("f") or "").lower() == "pjson"
        try:
            body = json.dumps(doc, indent=2 if pretty else None, allow_nan=False)
        except ValueError:
            body = json.dumps(_finite(doc), indent=2 if pretty else None, allow_nan=False)
        callback = params.get("callback")
        if callback and _CALLBACK.match(callback):
            return Response(f"{callback}({body});", status_code=status, media_type="application/javascript")
        return Response(body, status_code=status, media_type="application/json")

    def error(self, error: ImgsvcError, params: Params) -> Response:
        if error.kind is ErrorKind.INTERNAL:  # a failure of the server's own: its text (paths...) stays in the log
            generic = internal()
            if error.details != generic.details:
                log.error("failure answered as 500, request id %s: %s", request_id.current(), error.text)
            error = generic
        if (record := middleware.current()) is not None:
            record.error = error
        status = 200 if self.settings.errors_with_http_200 else http_status(error.code)
        return self.json({"error": error_doc(error)}, params, status)

    async def rpc(self, method: str, message):
        """Call the ImageService; a failure raises the ImgsvcError the service raised (ArcGIS code, message and
        details as its rich status carries them)."""
        record = middleware.current()
        metadata = [(request_id.HEADER, record.request_id)] if record is not None else []
        if record is not None and record.token:
            metadata.append(("authorization", f"Bearer {record.token}"))
        call = asyncio.ensure_future(self.calls(method, message, metadata, self.settings.rpc_timeout_seconds))
        # A client that hangs up cancels the call, so the service stops working for nobody (docs/decisions.md
        # "Bounded work").
        hang_up = asyncio.ensure_future(record.client_gone()) if record is not None else None
        if hang_up is not None:
            hang_up.add_done_callback(lambda watch: watch.cancelled() or call.cancel())
        try:
            return await call
        except asyncio.CancelledError:
            if hang_up is None or not hang_up.done() or hang_up.cancelled():
                raise  # the gateway itself is being stopped
            raise ImgsvcError(ErrorKind.CANCELLED, "The client closed the connection.") from None
        finally:
            if hang_up is not None:
                hang_up.cancel()

    async def call(self, method: str, message, params: Params):
        """Call the gRPC service; returns the reply, or a Response carrying the error envelope."""
        try:
            return await self.rpc(method, message)
        except ImgsvcError as error:
            return self.error(error, params)

    def base_url(self, request: Request) -> str:
        """Where links in answers point: the configured public URL, else the request's own base when its Host is
        an allowed one, else the address the gateway listens on."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        if request.url.hostname in self.settings.allowed_hosts:
            return str(request.base_url).rstrip("/")
        host, port = request.scope["server"]
        host = f"[{host}]" if ":" in host else host
        return f"{request.url.scheme}://{host}:{port}{request.scope.get('root_path', '')}"

    def service_url(self, request: Request, name: str) -> str:
        return f"{self.base_url(request)}{SERVICES_PREFIX}/{name}/ImageServer"

    @staticmethod
    def form(params: Params, allowed: tuple[str, ...] = RESOURCE_FORMS) -> str:
        form = (params.get("f") or "html").lower()
        if form not in allowed:
            raise invalid(f"f {form!r} is not supported here; expected one of: {', '.join(allowed)}.")
        return form

    async def answer(self, params: Params, form: str, method: str, message, to_doc, page) -> Response:
        """The common shape of a JSON resource: call, convert the reply to its document, answer it as JSON or as
        the HTML ``page(doc)`` (an RPC error comes back as the envelope)."""
        reply = await self.call(method, message, params)
        if isinstance(reply, Response):
            return reply
        doc = to_doc(reply)
        if form == "html":
            return HTMLResponse(page(doc))
        return self.json(doc, params)

    async def document(self, request: Request, name: str, params: Params, method: str, message, to_doc,
                       title: str) -> Response:
        """A resource whose HTML form is the generic resource page."""
        url = self.service_url(request, name)
        return await self.answer(params, self.form(params), method, message, to_doc,
                                 lambda doc: pages.resource_page(name, title, doc, url))

    # ---- routes outside a service ---------------------------------------------------------------------------

    @guarded
    async def info(self, request: Request) -> Response:
        params = await self.params(request, server_level=True)
        return await self.answer(
            params, self.form(params, ("json", "pjson", "html")), "ListServices", pb.ListServicesRequest(),
            lambda reply: {"currentVersion": reply.current_version, "fullVersion": reply.full_version,
                           "authInfo": {"isTokenBasedSecurity": self.settings.tokens is not None}},
            pages.info_page)

    @guarded
    async def services(self, request: Request) -> Response:
        params = await self.params(request, server_level=True)
        base = self.base_url(request)
        return await self.answer(
            params, self.form(params), "ListServices", pb.ListServicesRequest(),
            lambda reply: {"currentVersion": reply.current_version, "folders": [],
                           "services": [{"name": s.name, "type": s.type} for s in reply.services]},
            lambda doc: pages.services_page(doc, base))

    @guarded
    async def service_resource(self, request: Request) -> Response:
        """Everything below `/arcgis/rest/services/{name}/ImageServer`, resource names matched case-insensitively."""
        name = request.path_params["service"]
        kind = request.path_params["kind"]
        resource = request.path_params.get("resource", "").strip("/").lower()
        params = await self.params(request)
        handler = self.resources.get(resource) if kind.lower() == "imageserver" else None
        if handler is None:
            raise ImgsvcError(ErrorKind.NOT_FOUND, f"No resource at {request.url.path}.", message="Not found.")
        return await handler(request, name, params)

    @guarded
    async def prometheus_metrics(self, request: Request) -> Response:
        """Prometheus's text format; behind a token like every resource when access control is on (Prometheus
        sends one as ``Authorization: Bearer``)."""
        self.authorize(request, self.query_params(request))
        body, media_type = metrics.exposition()
        return Response(body, media_type=media_type)

    @guarded
    async def output_file(self, request: Request) -> Response:
        folder = request.path_params["folder"]
        self.authorize(request, self.query_params(request), self.outputs.service_of(folder))
        path = self.outputs.path(folder, request.path_params["name"])
        if path is None:
            raise ImgsvcError(ErrorKind.NOT_FOUND, "The output file does not exist or has expired.",
                              message="Not found.")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix[1:], OCTET_STREAM))

    @guarded
    async def not_found(self, request: Request) -> Response:
        raise ImgsvcError(ErrorKind.NOT_FOUND, f"No resource at {request.url.path}.", message="Not found.")

    async def http_exception(self, request: Request, exc: HTTPException) -> Response:
        """Starlette's own refusals (a method a route does not take, ...) in the ArcGIS envelope, with their code."""
        error = ImgsvcError(ErrorKind.INVALID_ARGUMENT, str(exc.detail), message="Invalid request.",
                            code=exc.status_code)
        return self.error(error, self.query_params(request))

    # ---- the service's resources ----------------------------------------------------------------------------

    async def root(self, request: Request, name: str, params: Params) -> Response:
        info_request = pb.GetServiceInfoRequest(service=name)
        if (rule := params.get("renderingRule")) is not None:
            info_request.rendering_rule.CopyFrom(struct(rule, "renderingRule"))
        url = self.service_url(request, name)
        return await self.answer(params, self.form(params), "GetServiceInfo", info_request, arcgis_json.root_doc,
                                 lambda doc: pages.root_page(doc, url))

    async def export_image(self, request: Request, name: str, params: Params) -> Response:
        form = self.form(params, RESPONSE_FORMS)
        if form == "html":
            return await self.export_page(request, name, params)
        reply = await self.call("ExportImage", export_request(name, params), params)
        if isinstance(reply, Response):
            return reply
        if form in ("image", "kmz"):
            headers = {"Content-Disposition": f'inline; filename="{name}.{reply.extension}"'}
            return Response(reply.image, media_type=reply.content_type, headers=headers)
        return self.json(await self.stored_image_doc(request, name, reply), params)

    async def stored_image_doc(self, request: Request, name: str, reply: pb.ExportImageResponse) -> dict:
        # Off the event loop: the file may be hundreds of megabytes, and other requests are being answered.
        stored = await asyncio.to_thread(self.outputs.save, name, reply.image, reply.extension)
        href = f"{self.base_url(request)}/arcgis/rest/directories/arcgisoutput/{stored}"
        return arcgis_json.image_resource_doc(reply, href)

    async def export_page(self, request: Request, name: str, params: Params) -> Response:
        """The Services Directory form; after a submission (a bbox given) the image with its size and extent.
        A person is reading this page, so a bad parameter is shown on the form rather than as JSON."""
        info = await self.call("GetServiceInfo", pb.GetServiceInfoRequest(service=name), params)
        if isinstance(info, Response):
            return info
        root = arcgis_json.root_doc(info)
        url = self.service_url(request, name)
        if "bbox" not in params:
            return HTMLResponse(pages.export_form(root, url, params, None, None))
        try:
            reply = await self.rpc("ExportImage", export_request(name, params))
        except ImgsvcError as error:
            return HTMLResponse(pages.export_form(root, url, params, None, error_doc(error)))
        return HTMLResponse(pages.export_form(root, url, params, await self.stored_image_doc(request, name, reply), None))

    async def identify(self, request: Request, name: str, params: Params) -> Response:
        form = self.form(params)
        if form == "html" and "geometry" not in params:
            return HTMLResponse(pages.identify_form(name, self.service_url(request, name), params, None))
        url = self.service_url(request, name)
        return await self.answer(params, form, "Identify", identify_request(name, params), arcgis_json.identify_doc,
                                 lambda doc: pages.identify_form(name, url, params, doc))

    async def query(self, request: Request, name: str, params: Params) -> Response:
        """The catalog of a mosaic dataset: a FeatureSet as JSON (or GeoJSON), or a page showing it."""
        form = self.form(params, ("html", "json", "pjson", "geojson"))
        message = query_request(name, params)
        reply = await self.call("Query", message, params)
        if isinstance(reply, Response):
            return reply
        if form == "geojson":
            return self.json(arcgis_json.query_geojson(reply), params)
        doc = arcgis_json.query_doc(reply, message.return_ids_only, message.return_count_only,
                                    not message.HasField("return_geometry") or message.return_geometry)
        if form == "html":
            return HTMLResponse(pages.resource_page(name, "Query", doc, self.service_url(request, name)))
        return self.json(doc, params)

    async def key_properties(self, request: Request, name: str, params: Params) -> Response:
        return await self.document(request, name, params, "GetKeyProperties", pb.KeyPropertiesRequest(service=name),
                                   arcgis_json.key_properties_doc, "Key Properties")

    async def raster_function_infos(self, request: Request, name: str, params: Params) -> Response:
        return await self.document(request, name, params, "GetRasterFunctionInfos",
                                   pb.RasterFunctionInfosRequest(service=name), arcgis_json.raster_function_infos_doc,
                                   "Raster Function Infos")

    async def _distribution(self, request: Request, name: str, params: Params, method: str, message, to_doc,
                            title: str) -> Response:
        """statistics and histograms: the same parameters (renderingRule, variable), different documents."""
        if (rule := params.get("renderingRule")) is not None:
            message.rendering_rule.CopyFrom(struct(rule, "renderingRule"))
        if (variable := params.get("variable")) is not None:
            message.variable = variable
        return await self.document(request, name, params, method, message, to_doc, title)

    async def multidimensional_info(self, request: Request, name: str, params: Params) -> Response:
        message = pb.MultidimensionalInfoRequest(service=name,
                                                 return_dimension_values=params.get("returnDimensionValues") or "")
        return await self.document(request, name, params, "GetMultidimensionalInfo", message,
                                   arcgis_json.multidimensional_info_doc, "Multidimensional Info")

    async def slices(self, request: Request, name: str, params: Params) -> Response:
        message = pb.SlicesRequest(service=name)
        if (v := params.get("multidimensionalDefinition")) is not None:
            dimension_filters(v, message.multidimensional_definition)
        return await self.document(request, name, params, "GetSlices", message, arcgis_json.slices_doc, "Slices")

    async def statistics(self, request: Request, name: str, params: Params) -> Response:
        return await self._distribution(request, name, params, "GetStatistics", pb.StatisticsRequest(service=name),
                                        arcgis_json.statistics_doc, "Statistics")

    async def histograms(self, request: Request, name: str, params: Params) -> Response:
        return await self._distribution(request, name, params, "GetHistograms", pb.HistogramsRequest(service=name),
                                        arcgis_json.histograms_doc, "Histograms")

    async def legend(self, request: Request, name: str, params: Params) -> Response:
        message = pb.LegendRequest(service=name, variable=params.get("variable") or "")
        if (v := params.get("bandIds")) is not None:
            message.band_ids.extend(band_ids(v))
        if (rule := params.get("renderingRule")) is not None:
            message.rendering_rule.CopyFrom(struct(rule, "renderingRule"))
        url = self.service_url(request, name)
        return await self.answer(params, self.form(params), "GetLegend", message, arcgis_json.legend_doc,
                                 lambda doc: pages.legend_page(name, doc, url))

    async def item_info(self, request: Request, name: str, params: Params) -> Response:
        return await self.document(request, name, params, "GetItemInfo", pb.ItemInfoRequest(service=name),
                                   arcgis_json.item_info_doc, "Item Info")

    async def metadata(self, request: Request, name: str, params: Params) -> Response:
        self.form(params, ("xml", "html", "json", "pjson"))  # ArcGIS serves metadata as XML whatever f says
        reply = await self.call("GetItemInfo", pb.ItemInfoRequest(service=name), params)
        if isinstance(reply, Response):
            return reply
        return Response(arcgis_json.metadata_xml(reply), media_type="application/xml")

    async def map_page(self, request: Request, name: str, params: Params) -> Response:
        """Leaflet + esri-leaflet over the service, with the service's templates and bands as controls."""
        self.form(params, ("html",))
        info = await self.call("GetServiceInfo", pb.GetServiceInfoRequest(service=name), params)
        if isinstance(info, Response):
            return info
        item = await self.call("GetItemInfo", pb.ItemInfoRequest(service=name), params)
        if isinstance(item, Response):
            return item
        record = middleware.current()
        token = record.token if record is not None and self.settings.tokens is not None else None
        return HTMLResponse(pages.map_page(arcgis_json.root_doc(info), arcgis_json.item_info_doc(item),
                                           self.service_url(request, name), f"{self.base_url(request)}{STATIC_PREFIX}",
                                           token))

    # ---- lifecycle ------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        await self.calls.open()
        expiry = asyncio.create_task(self._expire_outputs())
        try:
            yield
        finally:
            expiry.cancel()
            await self.calls.close()

    async def _expire_outputs(self) -> None:
        while True:
            await asyncio.to_thread(self.outputs.expire)
            await asyncio.sleep(max(1.0, self.settings.output_ttl_seconds / 4))


def error_doc(error: ImgsvcError) -> dict:
    """The ArcGIS error envelope's body (docs/protocol.md §8), for every error the gateway answers."""
    return {"code": error.code, "message": error.message, "details": list(error.details)}


def http_status(code: int) -> int:
    """The HTTP status of an error envelope when errors are not all HTTP 200 (``--http-error-status``): its ArcGIS
    code, which ArcGIS takes from HTTP's (400, 404, 405, 500, ...), or 500 for a code outside HTTP's error range."""
    return code if 400 <= code < 600 else 500


def create_app(settings: GatewaySettings, calls=None) -> Starlette:
    """The gateway, calling the ImageService through ``calls`` (default: over gRPC to ``settings.grpc_target``)."""
    gateway = Gateway(settings, calls or RemoteCalls(settings.grpc_target))
    service = SERVICES_PREFIX + "/{service}/{kind}"
    both = ["GET", "POST"]
    routes = [
        Route("/arcgis/rest/info", gateway.info, methods=both),
        Route("/arcgis/rest/info/", gateway.info, methods=both),
        Route(SERVICES_PREFIX, gateway.services, methods=both),
        Route(SERVICES_PREFIX + "/", gateway.services, methods=both),
        Route(service, gateway.service_resource, methods=both),
        Route(service + "/{resource:path}", gateway.service_resource, methods=both),
        Route("/arcgis/rest/directories/arcgisoutput/{folder}/{name}", gateway.output_file, methods=["GET"]),
        Route("/metrics", gateway.prometheus_metrics, methods=["GET"]),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/{path:path}", gateway.not_found, methods=both),
    ]
    stack = [Middleware(middleware.RequestContext),
             Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                        allow_headers=["*"], expose_headers=[request_id.HEADER])]
    app = Starlette(routes=routes, middleware=stack, lifespan=gateway.lifespan,
                    exception_handlers={HTTPException: gateway.http_exception})
    app.state.gateway = gateway
    return app
