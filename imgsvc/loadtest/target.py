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
    address: str  # host:port for gRPC; the ImageServer URL (service included) for REST
    service: str


def parse_target(text: str, service: str | None) -> Target:
    """``grpc://host:port`` (with ``--service``) or ``http://host:port/.../services/NAME/ImageServer`` (the
    service is read from the URL unless ``--service`` names it; ``--service`` alone completes a root URL)."""
    parts = urlsplit(text)
    if parts.scheme not in ("grpc", "http", "https") or not parts.hostname:
        raise invalid(f"Target {text!r}: expected grpc://HOST:PORT or http://HOST:PORT/arcgis/rest/services/NAME/"
                      f"ImageServer.")
    if parts.scheme == "grpc":
        if not service:
            raise invalid("A gRPC target needs --service NAME.")
        port = parts.port or 50051
        return Target(GRPC, parts.hostname, port, f"{_bracketed(parts.hostname)}:{port}", service)
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


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_allowed(target: Target, allowed_hosts: list[str]) -> None:
    """Refuse to load a host that is not this machine's loopback unless the operator named it with --allow-host: a
    load test is an attack on whoever did not ask for it."""
    if target.host in allowed_hosts:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)}
    except socket.gaierror as exc:
        raise invalid(f"Cannot resolve target host {target.host!r}: {exc}.") from None
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise invalid(f"Target host {target.host!r} is not loopback; name it with --allow-host {target.host} to "
                      f"load it.")
