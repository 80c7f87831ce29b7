"""How the gateway reaches the ImageService: over a ``grpc.aio`` channel (``RemoteCalls``: `imgsvc serve
--gateway-only`, or a gateway in front of another process), or in its own process (``imgsvc.grpc.local.LocalCalls``:
`imgsvc serve` with both doors, where the second hop through gRPC would be pure overhead; docs/decisions.md "The
gateway calls the core in process").

Both are awaited alike: ``await calls(method, request message, metadata, timeout)`` returns the reply message or
raises the ImgsvcError the service raised (ArcGIS code, message and details as the rich status carries them);
cancelling the awaiting task stops the service's work at its next check.  ``open()`` and ``close()`` run in the
gateway's lifespan.
"""
from __future__ import annotations

import grpc
from grpc_status import rpc_status

from imgsvc.rich_status import from_status
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

MAX_RECEIVE_BYTES = 256 * 1024 * 1024  # the server's own send limit (imgsvc.grpc.server.MAX_MESSAGE_BYTES)


class RemoteCalls:
    """Calls over a gRPC channel to ``target`` (plain text: `--gateway-only` has no client certificate settings)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel: grpc.aio.Channel | None = None
        self.stub: pb_grpc.ImageServiceStub | None = None

    async def open(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.target,
                                                 options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)])
        self.stub = pb_grpc.ImageServiceStub(self.channel)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def __call__(self, method: str, message, metadata: list[tuple[str, str]], timeout: float):
        # Cancelling the task awaiting the call cancels the call (grpc.aio does on CancelledError).
        call = getattr(self.stub, method)(message, timeout=timeout, metadata=metadata)
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise from_status(await rpc_status.aio.from_call(call), exc.code(), exc.details()) from None
