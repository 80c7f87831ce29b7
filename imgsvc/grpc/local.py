"""The gateway's calls into the ImageService of its own process (see ``imgsvc.rest.calls``).

A call runs what the gRPC server would run for it: the interceptor (request id, token check, metrics, access log
line) around the servicer, on the server's thread pool, under a deadline and a cancellation the caller controls.
What it leaves out is only the transport: no socket, no HTTP/2 framing, no protobuf encoding and decoding of the
request and of the image bytes (docs/decisions.md "The gateway calls the core in process").  An error crosses as
the servicer aborts with it, the rich status, and is read back as a remote caller reads it, so both paths raise
the same ImgsvcError (``imgsvc.client.error_from_rpc``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor

import grpc

from imgsvc.client import error_from_rpc
from imgsvc.errors import internal
from imgsvc.grpc.interceptors import ImageServiceInterceptor
from imgsvc.grpc.servicer import ImageServiceServicer
from imgsvc.rich_status import from_status
from imgsvc.service import ImageService
from imgsvc.tokens import Tokens
from imgsvc.v1 import image_service_pb2 as pb

log = logging.getLogger(__name__)

_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['ImageService'].full_name}/"


class _Aborted(Exception):
    """What ``abort_with_status`` raises, as grpc's own context does, to leave the handler; it answers what a
    failed call answers (code, details, trailing metadata with the rich status), so it is read as one."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status.code

    def details(self) -> str:
        return self.status.details

    def trailing_metadata(self):
        return self.status.trailing_metadata


class _Details:
    """The handler call details the interceptor reads (grpc.HandlerCallDetails)."""

    def __init__(self, method: str, metadata: list[tuple[str, str]]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class LocalContext:
    """The part of ``grpc.ServicerContext`` the servicer and the interceptor use."""

    def __init__(self, timeout: float, cancelled: threading.Event) -> None:
        self._deadline = time.monotonic() + timeout
        self._cancelled = cancelled
        self._code: grpc.StatusCode | None = None

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def is_active(self) -> bool:
        return not self._cancelled.is_set() and time.monotonic() < self._deadline

    def abort_with_status(self, status: grpc.Status):
        self._code = status.code
        raise _Aborted(status)

    def send_initial_metadata(self, metadata) -> None:
        """Nothing to send: the request id travels with the HTTP answer, which the gateway writes."""

    def code(self) -> grpc.StatusCode | None:
        return self._code


class LocalCalls:
    """Calls to ``service`` on ``executor`` (the gRPC server's own thread pool, so both doors share its threads and
    the export slots), through an interceptor holding ``tokens``."""

    def __init__(self, service: ImageService, executor: Executor, tokens: Tokens | None = None) -> None:
        self.servicer = ImageServiceServicer(service)
        self.interceptor = ImageServiceInterceptor(tokens)
        self.executor = executor

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def __call__(self, method: str, message, metadata: list[tuple[str, str]], timeout: float):
        cancelled = threading.Event()
        context = LocalContext(timeout, cancelled)
        work = asyncio.get_running_loop().run_in_executor(self.executor, self._run, method, message, metadata,
                                                          context)
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            # What a gRPC client says when its deadline passes first.
            raise from_status(None, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            cancelled.set()  # a handler still running (the caller hung up, the time ran out) stops at its next check

    def _run(self, method: str, message, metadata: list[tuple[str, str]], context: LocalContext):
        handler = grpc.unary_unary_rpc_method_handler(getattr(self.servicer, method))
        handler = self.interceptor.intercept_service(lambda _: handler, _Details(_PREFIX + method, metadata))
        try:
            return handler.unary_unary(message, context)
        except _Aborted as aborted:
            raise error_from_rpc(aborted) from None
        except Exception:  # a bug around the servicer (which catches its own): a 500, as gRPC answers UNKNOWN
            log.exception("unexpected failure calling %s in process", method)
            raise internal() from None

