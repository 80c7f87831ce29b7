"""Faults (docs/decisions.md "Faults"): a registered raster that goes missing, is truncated or corrupted answers a
clean 500 for its own service only, names no path, marks that service NOT_SERVING in gRPC health, and recovers
when the file is back; the other services answer all along."""
from __future__ import annotations

import shutil

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from imgsvc.grpc import create_server
from imgsvc.grpc.server import SERVICE_NAME
from imgsvc.rest.app import GatewaySettings, create_app
from imgsvc.service import ImageService
from tests import rasters
from tests.conftest import _Gateway


@pytest.fixture()
def doors(tmp_path):
    """Two services, "fragile" on its own copy of a raster and "steady", behind a gRPC server and a gateway."""
    fragile = rasters.dem(tmp_path / "fragile.tif", rows=300, cols=300)
    steady = rasters.dem(tmp_path / "steady.tif", rows=300, cols=300)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    register(catalog, "fragile", fragile, ServiceSettings())
    register(catalog, "steady", steady, ServiceSettings())
    server, port = create_server(ImageService(Catalog(tmp_path / "catalog.sqlite", readonly=True)), "127.0.0.1:0")
    server.start()
    with _Gateway(create_app(GatewaySettings(grpc_target=f"127.0.0.1:{port}", output_dir=tmp_path / "out"))) as url:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield fragile, url, health_pb2_grpc.HealthStub(channel)
        channel.close()
    server.stop(grace=None)


def export(url: str, service: str) -> httpx.Response:
    return httpx.get(f"{url}/arcgis/rest/services/{service}/ImageServer/exportImage",
                     params={"size": "64,64", "format": "tiff", "f": "image"}, timeout=30)


def health(stub, service: str = "") -> int:
    name = f"{SERVICE_NAME}/{service}" if service else ""
    return stub.Check(health_pb2.HealthCheckRequest(service=name)).status


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # the tiles zeroed: deflate cannot decode them
    path.write_bytes(bytes(data))


def remove(path):
    path.unlink()


@pytest.mark.parametrize("damage", [truncate, corrupt, remove], ids=lambda f: f.__name__)
def test_a_broken_raster_fails_its_service_only_and_recovers(doors, tmp_path, damage):
    fragile, url, stub = doors
    assert export(url, "fragile").status_code == 200
    assert health(stub, "fragile") == health_pb2.HealthCheckResponse.SERVING
    good = tmp_path / "good.tif"
    shutil.copy(fragile, good)
    damage(fragile)
    broken = export(url, "fragile")
    error = broken.json()["error"]
    assert error["code"] == 500 and str(tmp_path) not in broken.text and "fragile.tif" not in broken.text
    assert health(stub, "fragile") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health(stub) == health_pb2.HealthCheckResponse.SERVING  # the server as a whole still serves
    assert export(url, "steady").status_code == 200 and health(stub, "steady") == health_pb2.HealthCheckResponse.SERVING
    shutil.copy(good, fragile)
    assert export(url, "fragile").status_code == 200
    assert health(stub, "fragile") == health_pb2.HealthCheckResponse.SERVING


def test_a_serving_catalog_follows_its_file_replaced_rewritten_or_removed(tmp_path):
    import os

    dem = rasters.dem(tmp_path / "dem.tif", rows=100, cols=100)
    path = tmp_path / "catalog.sqlite"
    register(Catalog(path), "first", dem, ServiceSettings())
    serving = Catalog(path, readonly=True)
    assert serving.service_names() == ["first"]
    register(Catalog(path), "second", dem, ServiceSettings())  # rewritten in place by `imgsvc add`
    assert serving.service_names() == ["first", "second"]
    other = tmp_path / "other.sqlite"
    register(Catalog(other), "third", dem, ServiceSettings())
    os.replace(other, path)  # replaced by another file
    assert serving.service_names() == ["third"]
    path.unlink()  # gone: what was read goes on serving
    assert serving.service_names() == ["third"] and serving.service("third").name == "third"
