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

from imgsvc.client import CHANNEL_OPTIONS, error_from_rpc
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc


class RemoteCalls:
    """Calls over a gRPC channel to ``target`` (plain text: `--gateway-only` has no client certificate settings),
    with the Python client's channel options (keepalive, retry of a call that never reached a replica) and its
    reading of a failed call's rich status."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel: grpc.aio.Channel | None = None
        self.stub: pb_grpc.ImageServiceStub | None = None

    async def open(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.ImageServiceStub(self.channel)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def __call__(self, method: str, message, metadata: list[tuple[str, str]], timeout: float):
        # Cancelling the task awaiting the call cancels the call (grpc.aio does on CancelledError).
        try:
            return await getattr(self.stub, method)(message, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
