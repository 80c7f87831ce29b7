"""Where a load test sends its requests, and the rule that it only loads machines the operator named."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from imgsvc.errors import invalid

GRPC = "grpc"
REST = "rest"


@dataclass(frozen=True)
class Target:
    door: str  # GRPC or REST
    host: str
    port: int
    # host:port for gRPC (gRPC's "ipv4:IP:PORT,IP:PORT" for several replicas); the ImageServer URL (service
    # included) for REST
    address: str
    service: str
    replicas: tuple[tuple[str, int], ...] = ()  # each replica's (host, port) when a gRPC target names several

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        return self.replicas or ((self.host, self.port),)


def parse_target(text: str, service: str | None) -> Target:
    """``grpc://host:port`` (with ``--service``; ``grpc://IP:PORT,IP:PORT,...`` for replicas the calls are spread
    over, round-robin) or ``http://host:port/.../services/NAME/ImageServer`` (the service is read from the URL unless
    ``--service`` names it; ``--service`` alone completes a root URL)."""
    if text.lower().startswith("grpc://"):
        return _grpc_target(text, service)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"Target {text!r}: expected grpc://HOST:PORT or http://HOST:PORT/arcgis/rest/services/NAME/"
                      f"ImageServer.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/")
    segments = path.split("/")
    if len(segments) >= 2 and segments[-1].lower() == "imageserver":
        service = service or segments[-2]
    elif service:
        path = f"{path or '/arcgis/rest/services'}/{service}/ImageServer"
    else:
        raise invalid(f"Target {text!r} does not end in /<service>/ImageServer; give --service NAME.")
    return Target(REST, parts.hostname, port, f"{parts.scheme}://{parts.netloc}{path}", service)


def _grpc_target(text: str, service: str | None) -> Target:
    if not service:
        raise invalid("A gRPC target needs --service NAME.")
    endpoints = []
    for part in urlsplit(text).netloc.split(","):
        parts = urlsplit(f"grpc://{part}")
        if not parts.hostname:
            raise invalid(f"Target {text!r}: expected grpc://HOST:PORT or grpc://IP:PORT,IP:PORT,...")
        endpoints.append((parts.hostname, parts.port or 50051))
    (host, port), *others = endpoints
    if not others:
        return Target(GRPC, host, port, f"{_bracketed(host)}:{port}", service)
    # Several replicas: gRPC's own list of addresses, one family, which its round-robin policy spreads calls over.
    try:
        versions = {ipaddress.ip_address(h).version for h, _ in endpoints}
    except ValueError:
        versions = set()
    if len(versions) != 1:
        raise invalid(f"Target {text!r}: several replicas are named by IP addresses of one family.")
    listed = ",".join(f"{_bracketed(h)}:{p}" for h, p in endpoints)
    return Target(GRPC, host, port, f"ipv{versions.pop()}:{listed}", service, tuple(endpoints))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_allowed(target: Target, allowed_hosts: list[str]) -> None:
    """Refuse to load a host that is not this machine's loopback unless the operator named it with --allow-host: a
    load test is an attack on whoever did not ask for it."""
    for host, port in target.endpoints:
        if host in allowed_hosts:
            continue
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        except socket.gaierror as exc:
            raise invalid(f"Cannot resolve target host {host!r}: {exc}.") from None
        if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
            raise invalid(f"Target host {host!r} is not loopback; name it with --allow-host {host} to load it.")
