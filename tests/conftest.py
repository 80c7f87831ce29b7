"""Real components for the tests: rasters written by rasterio, the SQLite catalog (and Debian's PostgreSQL for the
catalog there), a gRPC server on port 0 and the REST gateway served by uvicorn over HTTP."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
import uvicorn

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from tests import rasters
from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (tests/postgres.py); ``postgres.new_database()`` is a catalog's URL."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


# The databases a catalog lives in; a test parametrised with them runs on each.
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def new_catalog(request, tmp_path_factory):
    """``new_catalog(backend)``: the location of a new, empty catalog in ``backend`` (one of BACKENDS): a SQLite
    file's path, or the URL of a new database on the session's PostgreSQL server (started when first needed)."""
    def location(backend: str) -> str:
        if backend == "postgresql":
            return request.getfixturevalue("postgres").new_database()
        return str(tmp_path_factory.mktemp("catalog") / "catalog.sqlite")
    return location


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rasters")


@pytest.fixture(scope="session")
def dem_path(data_dir) -> Path:
    return rasters.dem(data_dir / "dem.tif")


@pytest.fixture(scope="session")
def u16_path(data_dir) -> Path:
    return rasters.multiband_u16(data_dir / "ms.tif")


@pytest.fixture(scope="session")
def catalog_path(tmp_path_factory, dem_path, u16_path) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "catalog.sqlite"
    catalog = Catalog(path)
    register(catalog, "dem", dem_path, ServiceSettings(service_data_type="esriImageServiceDataTypeElevation",
                                                       description="test DEM"))
    register(catalog, "ms", u16_path, ServiceSettings(max_image_width=2000, max_image_height=1500))
    return path


@pytest.fixture(scope="session")
def image_service(catalog_path):
    from imgsvc.service import ImageService

    return ImageService(Catalog(catalog_path, readonly=True))


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 (moto's server on a loopback port), the standard AWS variables pointing at it for the rest of the
    session (servers started by the tests inherit them)."""
    # Its own process: GDAL holds the GIL through some reads, so an S3 server on a thread of this process would wait
    # for the very read waiting for it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the local S3 server did not start") from None
            time.sleep(0.1)
    environment = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                   "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        yield environment
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def remote_catalog(s3_server, postgres, dem_path, u16_path) -> str:
    """catalog_path's services with the catalog on PostgreSQL and the rasters (the same files) in the local S3."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="session")
    for path in (dem_path, u16_path):
        client.upload_file(str(path), "session", path.name)
    url = postgres.new_database()
    catalog = Catalog(url)
    register(catalog, "dem", f"s3://session/{dem_path.name}",
             ServiceSettings(service_data_type="esriImageServiceDataTypeElevation", description="test DEM"))
    register(catalog, "ms", f"s3://session/{u16_path.name}",
             ServiceSettings(max_image_width=2000, max_image_height=1500))
    return url


# Where the rasters and the catalog live, for the tests that run on each: local files and a SQLite catalog, or
# objects in S3 and a catalog on PostgreSQL (the same rasters, so the same answers).
STORAGES = ["disk+sqlite", "s3+postgresql"]


@pytest.fixture(scope="session", params=STORAGES)
def image_service_on(request):
    """``image_service``, and the same services with the rasters in S3 and the catalog on PostgreSQL."""
    if request.param == "disk+sqlite":
        return request.getfixturevalue("image_service")
    from imgsvc.service import ImageService

    return ImageService(Catalog(request.getfixturevalue("remote_catalog"), readonly=True))


@pytest.fixture(scope="session")
def remote_serve(remote_catalog, tmp_path_factory):
    """A real `imgsvc serve` over ``remote_catalog``: (the gateway's URL, the gRPC target)."""
    serve = _Serve(remote_catalog, tmp_path_factory.mktemp("output-remote"))
    with serve as url:
        yield url, serve.grpc_target


@pytest.fixture(scope="session", params=STORAGES)
def grpc_server_on(request) -> str:
    """``grpc_server``'s target, and that of a server with the rasters in S3 and the catalog on PostgreSQL."""
    if request.param == "disk+sqlite":
        return request.getfixturevalue("grpc_server")
    return request.getfixturevalue("remote_serve")[1]


@pytest.fixture(scope="session", params=STORAGES)
def http_on(request):
    """``http``, and a client of a gateway with the rasters in S3 and the catalog on PostgreSQL."""
    if request.param == "disk+sqlite":
        yield request.getfixturevalue("http")
        return
    with httpx.Client(base_url=request.getfixturevalue("remote_serve")[0], timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def grpc_server(image_service):
    from imgsvc.grpc import create_server

    server, port = create_server(image_service, "127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture(scope="session")
def stub(grpc_server):
    from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(grpc_server, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    yield pb_grpc.ImageServiceStub(channel)
    channel.close()


class _Gateway:
    def __init__(self, app) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_serve(args: list[str], lines: list[str] | None = None) -> tuple[subprocess.Popen, str | None, str]:
    """`imgsvc ARGS` (a serve command) in its own process: the process, its gRPC target (None when it serves no
    gRPC) and its gateway's URL, read from what it prints.  What it prints goes on into ``lines``, so that a full
    pipe never blocks the server."""
    lines = [] if lines is None else lines
    process = subprocess.Popen([sys.executable, "-m", "imgsvc", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    grpc_target = url = None
    for line in process.stdout:
        lines.append(line)
        if match := re.search(r"gRPC\s+listening on (\S+)", line):
            grpc_target = match.group(1)
        if match := re.search(r"REST\s+listening on (https?://\S+)/arcgis/rest/services", line):
            url = match.group(1)
            break
    if url is None:
        raise RuntimeError("imgsvc serve did not start:\n" + "".join(lines))
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, grpc_target, url


class _Serve:
    """`imgsvc serve` itself, in its own process, on ports the OS picks; the URL is read from what it prints."""

    def __init__(self, catalog: Path | str, output: Path) -> None:
        self.args = ["--catalog", str(catalog), "serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
                     "--output-dir", str(output)]
        self.lines: list[str] = []
        self.grpc_target: str | None = None

    def __enter__(self) -> str:
        self.process, self.grpc_target, url = start_serve(self.args, self.lines)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/arcgis/rest/info", params={"f": "json"}, timeout=5).raise_for_status()
                return url
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("imgsvc serve does not answer:\n" + "".join(self.lines)) from None
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def gateway_url(catalog_path, tmp_path_factory):
    """The REST gateway as users run it: a real `imgsvc serve` process (gRPC server + gateway) on port 0."""
    with _Serve(catalog_path, tmp_path_factory.mktemp("output")) as url:
        yield url


@pytest.fixture(scope="session")
def http(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def http_4xx(grpc_server, tmp_path_factory):
    """A second gateway on the same gRPC server with errors_with_http_200 off: errors carry 4xx/5xx statuses."""
    from imgsvc.rest.app import GatewaySettings, create_app

    app = create_app(GatewaySettings(grpc_target=grpc_server, output_dir=tmp_path_factory.mktemp("output4xx"),
                                     errors_with_http_200=False))
    with _Gateway(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client
