"""gRPC server factory.  ``create_server`` binds (port 0 in tests) and returns the port; ``serve`` blocks."""
from __future__ import annotations

import os
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from imgsvc.grpc.interceptors import ImageServiceInterceptor
from imgsvc.grpc.servicer import ImageServiceServicer
from imgsvc.service import ImageService
from imgsvc.tokens import Tokens
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ImageService"].full_name
METADATA_THREADS = 8
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # a 4100x4100 F64 multi-band TIFF is well over gRPC's 4 MiB default


def thread_pool(service: ImageService) -> futures.ThreadPoolExecutor:
    """The threads ImageService calls run on (the gRPC server's, and the in-process gateway's beside it)."""
    workers = max(4, 2 * (os.cpu_count() or 1))
    if service.slots is not None:
        # Every export that may run or wait holds a thread; these are left over for metadata, identify and health.
        workers = service.slots.running + service.slots.waiting + METADATA_THREADS
    return futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgsvc-grpc")


def create_server(service: ImageService, address: str = "127.0.0.1:0", *, tokens: Tokens | None = None,
                  credentials: grpc.ServerCredentials | None = None,
                  health_servicer: health.HealthServicer | None = None,
                  executor: futures.ThreadPoolExecutor | None = None) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) server bound to ``address``; returns it with the bound port.  ``tokens``
    turns access control on, ``credentials`` TLS; the caller that drains the server passes its ``health_servicer``
    (its every service SERVING here) to turn it NOT_SERVING; ``executor``: the server's threads when the caller
    shares them (``thread_pool``)."""
    server = grpc.server(
        executor or thread_pool(service),
        options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
        interceptors=[ImageServiceInterceptor(tokens)],
    )
    pb_grpc.add_ImageServiceServicer_to_server(ImageServiceServicer(service), server)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # Each image service's own health, "imgsvc.v1.ImageService/NAME": NOT_SERVING while its rasters fail to read.
    for name in service.service_names():
        health_servicer.set(f"{SERVICE_NAME}/{name}", health_pb2.HealthCheckResponse.SERVING)
    service.health_listener = lambda name, healthy: health_servicer.set(
        f"{SERVICE_NAME}/{name}",
        health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    return server, port


def serve(service: ImageService, address: str) -> None:
    server, _ = create_server(service, address)
    server.start()
    server.wait_for_termination()
