"""The gRPC front door: servicer (convert -> call -> convert), server factory, health and reflection."""
from imgsvc.grpc.server import create_server, serve

__all__ = ["create_server", "serve"]
