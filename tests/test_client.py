"""imgsvc.client against the real gRPC server: the same bytes as the REST door, typed results, errors as the
ImgsvcError hierarchy."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile

from imgsvc.client import (CLASS_OF_KIND, ExportedImage, ImageClient, InvalidArgument, NotFound, ServiceError,
                           Unavailable, Unsupported)
from imgsvc.errors import ErrorKind, ImgsvcError

DEM_3857 = (-13167000, 4388000, -13151000, 4400000)


@pytest.fixture(scope="module")
def client(grpc_server_on):
    """A client of the test server, and of one with the rasters in S3 and the catalog on PostgreSQL: the same
    answers (conftest.STORAGES)."""
    with ImageClient(grpc_server_on) as c:
        yield c


def test_export_image_equals_the_rest_door_and_carries_the_extent(client, http):
    image = client.export_image("dem", bbox=list(DEM_3857), bboxSR=3857, imageSR={"wkid": 3857}, size=(512, 512),
                                format="png", adjustAspectRatio=True)
    assert isinstance(image, ExportedImage) and (image.width, image.height) == (512, 512)
    rest = http.get("/arcgis/rest/services/dem/ImageServer/exportImage",
                    params={"bbox": ",".join(map(str, DEM_3857)), "bboxSR": "3857", "imageSR": '{"wkid": 3857}',
                            "size": "512,512", "format": "png", "adjustAspectRatio": "true", "f": "image"})
    assert image.data == rest.content and image.content_type == "image/png" and image.extension == "png"
    doc = http.get("/arcgis/rest/services/dem/ImageServer/exportImage",
                   params={"bbox": ",".join(map(str, DEM_3857)), "bboxSR": "3857", "imageSR": "3857",
                           "size": "512,512", "format": "png", "f": "json"}).json()["extent"]
    assert (image.extent.xmin, image.extent.ymin, image.extent.xmax, image.extent.ymax) == (
        doc["xmin"], doc["ymin"], doc["xmax"], doc["ymax"])
    assert image.extent.spatial_reference == {"wkid": 102100, "latestWkid": 3857}


def test_tiff_pixels_round_trip_with_band_ids_and_pixel_type(client, u16_path):
    with rasterio.open(u16_path) as src:
        left, bottom, right, top = src.bounds
        expected = src.read([3, 1])
    image = client.export_image("ms", bbox=(left, bottom, right, top), size=(500, 500), format="tiff",
                                bandIds=[2, 0], pixelType="U16", interpolation="RSP_NearestNeighbor")
    with MemoryFile(image.data) as memory, memory.open() as tiff:
        assert tiff.count == 2 and tiff.dtypes[0] == "uint16"
        assert np.array_equal(tiff.read(), expected)


def test_service_info_list_and_identify(client, dem_path):
    assert {"dem", "ms"} <= set(client.list_services())
    info = client.service_info("dem")
    assert info.name == "dem" and info.band_count == 1 and info.has_histograms
    with rasterio.open(dem_path) as src:
        x, y = src.xy(10, 100)
        value = src.read(1, window=((10, 11), (100, 101)))[0, 0]
    reply = client.identify("dem", {"x": x, "y": y, "spatialReference": {"wkid": 32611}})
    assert reply.values[0] == value and reply.value == reply.value.strip()


@pytest.mark.parametrize("call, cls, kind", [
    (lambda c: c.export_image("dem", bbox="1,2,3"), InvalidArgument, ErrorKind.INVALID_ARGUMENT),   # local parse
    (lambda c: c.export_image("dem", bbox=DEM_3857, size=(5000, 10)), InvalidArgument,
     ErrorKind.INVALID_ARGUMENT),                                                                    # the service
    (lambda c: c.export_image("nope", bbox=DEM_3857), NotFound, ErrorKind.NOT_FOUND),
    (lambda c: c.service_info("nope"), NotFound, ErrorKind.NOT_FOUND),
    (lambda c: c.export_image("dem", renderingRule={"rasterFunction": "Pansharpening"}), Unsupported,
     ErrorKind.UNIMPLEMENTED),
    (lambda c: c.identify("dem", (1, 2), geometryType="esriGeometryPolygon"), Unsupported, ErrorKind.UNIMPLEMENTED),
])
def test_errors_map_to_the_hierarchy_with_the_arcgis_message(client, call, cls, kind):
    with pytest.raises(cls) as info:
        call(client)
    assert isinstance(info.value, ImgsvcError) and info.value.kind == kind and info.value.details


def test_every_error_kind_has_its_class():
    assert set(CLASS_OF_KIND) == set(ErrorKind)


def test_size_limit_detail_comes_through_verbatim(client):
    with pytest.raises(InvalidArgument) as info:
        client.export_image("dem", bbox=DEM_3857, size=(100, 5000))
    assert info.value.details == ("The requested image exceeds the size limit.",)
    assert info.value.message == "Invalid or missing input parameters."


def test_the_rich_status_gives_the_arcgis_code_and_the_parameter(client):
    with pytest.raises(Unsupported) as info:
        client.export_image("dem", bbox=DEM_3857, sliceId=2)
    assert (info.value.code, info.value.message, info.value.parameter) == (
        400, "Invalid or missing input parameters.", "sliceId")
    assert info.value.details == ("sliceId is not supported: the service is not multidimensional.",)


def test_an_unreachable_server_is_unavailable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ImageClient(f"127.0.0.1:{port}", timeout=2) as c, pytest.raises(Unavailable) as info:
        c.list_services()
    assert isinstance(info.value, ServiceError)


def test_a_misspelt_parameter_is_a_type_error(client):
    with pytest.raises(TypeError, match="bbx"):
        client.export_image("dem", bbx=DEM_3857)


def test_the_asyncio_client_gives_the_same_answers_and_errors(grpc_server, client):
    import asyncio

    from imgsvc.client import AsyncImageClient

    query = dict(bbox=DEM_3857, bboxSR=3857, size=(200, 150), format="png")

    async def main():
        async with AsyncImageClient(grpc_server) as aclient:
            images = await asyncio.gather(*(aclient.export_image("dem", **query) for _ in range(12)))
            with pytest.raises(NotFound):
                await aclient.service_info("nope")
            return images, await aclient.list_services()

    images, names = asyncio.run(main())
    expected = client.export_image("dem", **query)
    assert all(image == expected for image in images) and names == client.list_services()


def test_a_call_that_found_the_service_unavailable_is_retried():
    """The channel's service config retries UNAVAILABLE: a server refusing twice, then answering."""
    from concurrent import futures

    import grpc

    from imgsvc.v1 import image_service_pb2 as pb
    from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

    calls = []

    class Flaky(pb_grpc.ImageServiceServicer):
        def ListServices(self, request, context):
            calls.append(1)
            if len(calls) <= 2:
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return pb.ListServicesResponse(services=[pb.ServiceSummary(name="up", type="ImageServer")])

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_ImageServiceServicer_to_server(Flaky(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with ImageClient(f"127.0.0.1:{port}", timeout=10) as flaky:
            assert flaky.list_services() == ["up"] and len(calls) == 3
    finally:
        server.stop(grace=None)


def test_the_streamed_export_writes_the_same_bytes_in_chunks(client, grpc_server, grpc_server_on, u16_path):
    import io

    from imgsvc import metrics
    from imgsvc.grpc.servicer import STREAM_CHUNK_BYTES

    with rasterio.open(u16_path) as src:
        query = dict(bbox=tuple(src.bounds), size=(1100, 1000), format="tiff", interpolation="RSP_NearestNeighbor")
    whole = client.export_image("ms", **query)
    assert len(whole.data) > 3 * STREAM_CHUNK_BYTES  # several data messages
    before = metrics.GRPC_REQUESTS.labels("ExportImageStream", "OK")._value.get()
    out = io.BytesIO()
    streamed = client.export_image_to(out, "ms", **query)
    assert out.getvalue() == whole.data and streamed.data == b""
    assert (streamed.width, streamed.height, streamed.content_type, streamed.extent) == (
        whole.width, whole.height, whole.content_type, whole.extent)
    in_process = grpc_server_on == grpc_server  # this process's metrics count the in-process server's calls only
    assert metrics.GRPC_REQUESTS.labels("ExportImageStream", "OK")._value.get() == before + in_process
    with pytest.raises(NotFound):
        client.export_image_to(io.BytesIO(), "nope", **query)

    import asyncio

    from imgsvc.client import AsyncImageClient

    async def main():
        async with AsyncImageClient(grpc_server) as aclient:
            out = io.BytesIO()
            header = await aclient.export_image_to(out, "ms", **query)
            with pytest.raises(InvalidArgument):
                await aclient.export_image_to(io.BytesIO(), "ms", **{**query, "size": (0, 0)})
            return header, out.getvalue()

    assert asyncio.run(main()) == (streamed, whole.data)


def test_the_stream_carries_images_past_the_servers_message_limit(image_service, monkeypatch, u16_path):
    import io

    from imgsvc.grpc import create_server, server

    monkeypatch.setattr(server, "MAX_MESSAGE_BYTES", 2 * 2**20)  # as a 300 MB image meets the real 256 MiB
    small, port = create_server(image_service, "127.0.0.1:0")
    small.start()
    try:
        with rasterio.open(u16_path) as src, ImageClient(f"127.0.0.1:{port}") as limited:
            query = dict(bbox=tuple(src.bounds), size=(1000, 1000), format="tiff")
            with pytest.raises(ImgsvcError) as refused:
                limited.export_image("ms", **query)
            assert refused.value.kind is ErrorKind.RESOURCE_EXHAUSTED
            out = io.BytesIO()
            limited.export_image_to(out, "ms", **query)
            assert len(out.getvalue()) > 4 * 2**20
    finally:
        small.stop(grace=None)
