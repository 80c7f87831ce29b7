"""What happens around every ImageService call, whatever the method: the request id, the access log line and the
metrics, the token check when access control is on, and a request the decoder cannot read answered as bad input.

Health checking and reflection pass untouched: a load balancer or a person probing the server needs no token.
"""
from __future__ import annotations

import contextlib
import time

import grpc

from imgsvc import access_log, documents, metrics, request_id
from imgsvc.errors import ImgsvcError, invalid
from imgsvc.grpc.servicer import abort
from imgsvc.tokens import Tokens, bearer
from imgsvc.v1 import image_service_pb2 as pb

_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['ImageService'].full_name}/"
# Methods about the server rather than one service: open to callers without a token when some service is public.
SERVER_LEVEL = frozenset({"ListServices"})


class _Undecodable:
    """What the tolerant decoder hands on instead of raising: gRPC would answer INTERNAL "Exception deserializing
    request!" for what is the caller's mistake (above all a JSON document nested past the decoder's depth)."""


def _tolerant(deserialize):
    def decode(data: bytes):
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError and the C decoder's own errors alike
            return _Undecodable()
    return decode


class _Sent:
    """What a call answered: its size in bytes (the messages' sum for a stream)."""
    bytes = 0


class ImageServiceInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: Tokens | None = None) -> None:
        self.tokens = tokens

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        path = handler_call_details.method
        if handler is None or not path.startswith(_PREFIX):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        decoder = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            return handler._replace(request_deserializer=decoder,
                                    unary_unary=self._around(path, metadata, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(request_deserializer=decoder,
                                    unary_stream=self._around_stream(path, metadata, handler.unary_stream))
        return handler

    def _around(self, path: str, metadata: dict, behaviour):
        def call(request, context: grpc.ServicerContext):
            with self._observed(path, metadata, request, context, streamed=False) as sent:
                reply = behaviour(request, context)
                if path == _PREFIX + "ListServices" and self.tokens is not None and \
                        not bearer(metadata.get("authorization")):
                    public = [summary for summary in reply.services if summary.name in self.tokens.public]
                    del reply.services[:]
                    reply.services.extend(public)  # an anonymous caller sees the public services only
                sent.bytes = reply.ByteSize()
                return reply
        return call

    def _around_stream(self, path: str, metadata: dict, behaviour):
        def call(request, context: grpc.ServicerContext):
            with self._observed(path, metadata, request, context, streamed=True) as sent:
                for message in behaviour(request, context):
                    sent.bytes += message.ByteSize()
                    yield message
        return call

    @contextlib.contextmanager
    def _observed(self, path: str, metadata: dict, request, context: grpc.ServicerContext, streamed: bool):
        """Around one call: its request id (answered in the initial metadata), the token check, a request the
        decoder could not read refused, then its metrics and access log line whatever happened.

        A unary call's id goes out last, with its answer or error: a client never retries a call whose response
        headers it has received, and a call cut by a replica's death must be retried (docs/decisions.md
        "Replicas, proven here").  A stream's goes out first: its first message commits the call anyway."""
        method = path.removeprefix(_PREFIX)
        started = time.perf_counter()
        sent = _Sent()
        with request_id.scope(request_id.accept(metadata.get(request_id.HEADER))) as rid:
            if streamed:
                context.send_initial_metadata(((request_id.HEADER, rid),))
            in_flight = metrics.GRPC_IN_FLIGHT.labels(method)
            in_flight.inc()
            try:
                if self.tokens is not None:
                    try:
                        self.tokens.check(bearer(metadata.get("authorization")), getattr(request, "service", None),
                                          server_level=method in SERVER_LEVEL)
                    except ImgsvcError as error:
                        abort(context, error)
                if isinstance(request, _Undecodable):
                    abort(context, invalid(
                        f"The request cannot be decoded as a {method} request: it is malformed or nests "
                        f"deeper than the service reads (JSON documents at most {documents.MAX_DEPTH} levels)."))
                yield sent
            finally:
                in_flight.dec()
                code = (context.code() or grpc.StatusCode.OK).name
                seconds = time.perf_counter() - started
                metrics.GRPC_REQUESTS.labels(method, code).inc()
                metrics.GRPC_SECONDS.labels(method).observe(seconds)
                metrics.GRPC_BYTES.labels(method).inc(sent.bytes)
                if code != "OK":
                    metrics.ERRORS.labels("grpc", code).inc()
                access_log.write("grpc", "POST", path, code, seconds, sent.bytes, rid)
                if not streamed:
                    with contextlib.suppress(grpc.RpcError):  # the caller is gone: nothing goes out
                        context.send_initial_metadata(((request_id.HEADER, rid),))
