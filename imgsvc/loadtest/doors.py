"""How one request travels: the gRPC door (``ExportImage`` on ``grpc.aio`` channels, the message built by the
gateway's own parser) or the REST door (``exportImage`` over HTTP with httpx).  Each door describes the service
(its extent, for the mix), prepares a request before the clock starts and sends it, answering an ``Outcome``:
the bytes received, or the kind of error (``gRPC <CODE>``, ``HTTP <status>``, ``ArcGIS <code>`` for an error
envelope answered with HTTP 200, or the transport exception's name)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import grpc
import httpx

from imgsvc.client import RETRY_SERVICE_CONFIG
from imgsvc.errors import ImgsvcError, invalid
from imgsvc.loadtest.mix import Request, ServiceExtent
from imgsvc.loadtest.target import GRPC, Target
from imgsvc.rest.query import Params, export_request
from imgsvc.rest.worker import WORKER_HEADER
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    nbytes: int = 0
    error: str | None = None
    worker: str | None = None
    retries: int = 0  # times the request was sent again (--retries)


def open_door(target: Target, connections: int, timeout: float, retries: int = 0):
    if target.door == GRPC:
        return GrpcDoor(target, connections, timeout, retries)
    return RestDoor(target, connections, timeout)


# The client's retry policy (imgsvc.client: a call that never reached a server, UNAVAILABLE, is tried again), its
# calls spread round-robin over the target's addresses (several replicas), and a replica that went away tried again
# within a second of coming back (gRPC's default backoff grows to two minutes).
SERVICE_CONFIG = json.dumps({**RETRY_SERVICE_CONFIG, "loadBalancingConfig": [{"round_robin": {}}]})


class GrpcDoor:
    """``connections`` channels, each on its own TCP connections (a local subchannel pool), so that a server whose
    workers share the port with SO_REUSEPORT sees its load spread; requests take the channels in turn."""

    def __init__(self, target: Target, connections: int, timeout: float, retries: int = 0) -> None:
        self.target = target
        self.timeout = timeout
        self.retries = retries
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.use_local_subchannel_pool", 1),
                   ("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG),
                   ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
        self.channels = [grpc.aio.insecure_channel(target.address, options=options) for _ in range(connections)]
        self.stubs = [pb_grpc.ImageServiceStub(channel) for channel in self.channels]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def describe(self) -> ServiceExtent:
        try:
            info = await self.stubs[0].GetServiceInfo(pb.GetServiceInfoRequest(service=self.target.service),
                                                      timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise invalid(f"Cannot describe service {self.target.service!r} at {self.target.address}: "
                          f"{exc.code().name} {exc.details()}") from None
        env = info.full_extent
        sr = {key: getattr(env.spatial_reference, field) for key, field in
              (("wkid", "wkid"), ("latestWkid", "latest_wkid"), ("wkt", "wkt")) if env.spatial_reference.HasField(field)}
        return ServiceExtent(env.xmin, env.ymin, env.xmax, env.ymax, sr, info.pixel_size_x)

    def prepare(self, request: Request) -> pb.ExportImageRequest | Outcome:
        """The message, or the Outcome of a request the parser refuses (it never reaches the server)."""
        try:
            return export_request(self.target.service, Params(request))
        except ImgsvcError as error:
            return Outcome(error=f"refused {error.kind.name}")

    async def send(self, message: pb.ExportImageRequest, lane: int) -> Outcome:
        """One export; with ``retries``, an UNAVAILABLE answer is sent again (exports are idempotent) within the
        request's timeout: gRPC's own retry policy never retries a call whose answer had begun to arrive, which a
        replica dying mid-answer leaves behind (docs/loadtest.md)."""
        deadline = time.monotonic() + self.timeout
        for attempt in range(self.retries + 1):
            try:
                reply = await self.stubs[(lane + attempt) % len(self.stubs)].ExportImage(
                    message, timeout=max(0.001, deadline - time.monotonic()))
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    return Outcome(error=f"gRPC {exc.code().name}", retries=attempt)
                continue
            return Outcome(nbytes=len(reply.image), retries=attempt)


class RestDoor:
    """One httpx client whose pool keeps up to ``connections`` keep-alive connections."""

    def __init__(self, target: Target, connections: int, timeout: float) -> None:
        self.target = target
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.client = httpx.AsyncClient(limits=limits, timeout=timeout)

    async def close(self) -> None:
        await self.client.aclose()

    async def describe(self) -> ServiceExtent:
        try:
            reply = await self.client.get(self.target.address, params={"f": "json"})
            doc = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise invalid(f"Cannot describe service at {self.target.address}: {exc}") from None
        if "error" in doc or "fullExtent" not in doc:
            raise invalid(f"Cannot describe service at {self.target.address}: {json.dumps(doc)[:300]}")
        extent = doc["fullExtent"]
        return ServiceExtent(extent["xmin"], extent["ymin"], extent["xmax"], extent["ymax"],
                             extent.get("spatialReference") or {}, doc.get("pixelSizeX") or 1.0)

    def prepare(self, request: Request) -> str:
        return f"{self.target.address}/exportImage?{urlencode(request)}"

    async def send(self, url: str, lane: int) -> Outcome:
        try:
            reply = await self.client.get(url)
        except httpx.TimeoutException:
            return Outcome(error="timeout")
        except httpx.HTTPError as exc:
            return Outcome(error=type(exc).__name__)
        worker = reply.headers.get(WORKER_HEADER)
        if reply.status_code != 200:
            return Outcome(error=f"HTTP {reply.status_code}", worker=worker)
        error = _envelope_kind(reply) if reply.headers.get("content-type", "").startswith("application/json") else None
        return Outcome(nbytes=0 if error else len(reply.content), error=error, worker=worker)


def _envelope_kind(reply: httpx.Response) -> str | None:
    """An ArcGIS error answered with HTTP 200: its envelope's code (None for a JSON answer that is no error, such
    as a recorded request's f=json)."""
    try:
        doc = reply.json()
    except ValueError:
        return "not JSON"
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return f"ArcGIS {doc['error'].get('code')}"
    return None
