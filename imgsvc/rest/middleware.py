"""Around every HTTP request: its id (the caller's sane ``X-Request-Id`` or a new one, answered back in the same
header and passed on to the gRPC service), its access log line and its metrics.  A pure ASGI middleware: it sees the
response's status and body size as they are sent, streaming or not."""
from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from imgsvc import access_log, metrics, request_id
from imgsvc.errors import ImgsvcError

# The values the gateway's routes know by; anything else is counted as "other" (labels must stay a closed set).
OPERATIONS = ("exportimage", "identify", "query", "keyproperties", "rasterfunctioninfos", "statistics", "histograms",
              "legend", "multidimensionalinfo", "slices", "info", "info/iteminfo", "info/metadata", "map")
FORMS = ("html", "json", "pjson", "geojson", "image", "kmz", "xml")


@dataclass
class RequestRecord:
    """What the gateway learns of a request while answering it: the id, the caller's token (passed on to the gRPC
    service) and the error it answered, if any; ``receive`` is the request's ASGI channel."""
    request_id: str
    receive: Callable[[], Awaitable[dict]] | None = None
    token: str | None = None
    error: ImgsvcError | None = None

    async def client_gone(self) -> None:
        """Returns when the client hangs up.  Called once the body has been read (what is left to receive then is
        only the disconnect), and cancelled before the answer is sent."""
        while self.receive is not None and (await self.receive())["type"] != "http.disconnect":
            pass


_CURRENT: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("imgsvc_request", default=None)


def current() -> RequestRecord | None:
    return _CURRENT.get()


def operation(path: str) -> str:
    """The metrics' name for what a path asks: a service resource, the services listing, an output file, ..."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["arcgis", "rest", "services"]:
        if len(parts) <= 4:
            return "services"
        resource = "/".join(parts[5:]).lower() or "root"
        return resource if resource in OPERATIONS or resource == "root" else "other"
    if parts[:3] == ["arcgis", "rest", "info"]:
        return "info"
    if parts[:3] == ["arcgis", "rest", "directories"]:
        return "output"
    if parts[:3] == ["arcgis", "rest", "static"]:
        return "static"
    return "metrics" if parts == ["metrics"] else "other"


class RequestContext:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = RequestRecord(request_id.accept(headers.get(request_id.HEADER)), receive)
        answer = {"status": 500, "bytes": 0}

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (request_id.HEADER.encode(), record.request_id.encode())]}
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        token = _CURRENT.set(record)
        metrics.HTTP_IN_FLIGHT.inc()
        try:
            with request_id.scope(record.request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            _CURRENT.reset(token)
            seconds = time.perf_counter() - started
            self._count(scope, record, answer, seconds)
            access_log.write("rest", scope["method"], scope["path"], answer["status"], seconds, answer["bytes"],
                             record.request_id)

    @staticmethod
    def _count(scope, record: RequestRecord, answer: dict, seconds: float) -> None:
        form = next((v.lower() for k, v in QueryParams(scope["query_string"]).multi_items() if k.lower() == "f"), "")
        form = form if form in FORMS else "other" if form else "default"
        op = operation(scope["path"])
        # The status of an error answered with HTTP 200 (ArcGIS's way) is its envelope code.
        status = str(record.error.code if record.error is not None else answer["status"])
        metrics.HTTP_REQUESTS.labels(op, form, status).inc()
        metrics.HTTP_SECONDS.labels(op, form, status).observe(seconds)
        metrics.HTTP_BYTES.labels(op, form).inc(answer["bytes"])
        if record.error is not None:
            metrics.ERRORS.labels("rest", record.error.kind.name).inc()
