"""The server's metrics, in Prometheus's text format (``GET /metrics`` on the gateway port).

prometheus-client lives behind this module.  Labels take values from closed sets only (operations, formats, status
codes, error kinds), so that no request can grow the number of series.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Latency buckets spanning a metadata answer (a millisecond) to a large export (a minute).
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter("imgsvc_http_requests", "REST requests answered, by operation, f and HTTP status.",
                        ("operation", "format", "status"))
HTTP_SECONDS = Histogram("imgsvc_http_request_seconds", "REST request latency, by operation, f and HTTP status.",
                         ("operation", "format", "status"), buckets=_SECONDS)
HTTP_BYTES = Counter("imgsvc_http_response_bytes", "Bytes of REST response bodies, by operation and f.",
                     ("operation", "format"))
HTTP_IN_FLIGHT = Gauge("imgsvc_http_requests_in_flight", "REST requests being answered.")
ERRORS = Counter("imgsvc_errors", "Errors answered, by door and kind (the ArcGIS code's kind).", ("door", "kind"))
GRPC_REQUESTS = Counter("imgsvc_grpc_requests", "gRPC ImageService calls answered, by method and status code.",
                        ("method", "code"))
GRPC_SECONDS = Histogram("imgsvc_grpc_request_seconds", "gRPC ImageService call latency, by method.",
                         ("method",), buckets=_SECONDS)
GRPC_BYTES = Counter("imgsvc_grpc_response_bytes", "Bytes of gRPC ImageService replies, by method.", ("method",))
GRPC_IN_FLIGHT = Gauge("imgsvc_grpc_requests_in_flight", "gRPC ImageService calls being answered.", ("method",))
# The export pipeline's stages (docs/decisions.md "Hardening"): plan, render (read, resample, mosaic), functions
# (raster functions and the pixel type), encode.
STAGES = ("plan", "render", "functions", "encode")
EXPORT_STAGE_SECONDS = Histogram("imgsvc_export_stage_seconds", "Time exports spend in each stage of the pipeline.",
                                 ("stage",), buckets=_SECONDS)
EXPORTS_RUNNING = Gauge("imgsvc_exports_running", "Exports holding a slot (--max-exports).")
EXPORTS_QUEUED = Gauge("imgsvc_exports_queued", "Exports waiting for a slot (--export-queue).")
MEMORY_RESERVED = Gauge("imgsvc_memory_reserved_bytes", "Bytes the exports in flight hold of --memory-budget-mb.")
CACHE_LOOKUPS = Counter("imgsvc_response_cache_lookups", "Response cache lookups, by result (hit, miss).",
                        ("result",))
CACHE_BYTES = Gauge("imgsvc_response_cache_bytes", "Bytes of answers the response cache holds.")


def exposition() -> tuple[bytes, str]:
    """The metrics of this process and their media type."""
    return generate_latest(), CONTENT_TYPE_LATEST
