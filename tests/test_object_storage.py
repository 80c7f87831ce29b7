"""Rasters in S3-compatible object storage (docs/decisions.md "Object storage"), against a real local S3 (moto's
server on a loopback port) holding COGs written by rasterio: registered by key and by prefix, the exports byte for
byte those of the same files on local disk, through the core and a real `imgsvc serve`."""
from __future__ import annotations

import boto3
import httpx
import numpy as np
import pytest

from imgsvc.catalog import Catalog
from imgsvc.cli import main
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters

BUCKET = "rasters"


@pytest.fixture(scope="module")
def s3(tmp_path_factory, s3_server):
    """The local S3 (conftest.s3_server) with a DEM and two overlapping scenes uploaded, and the same files on
    disk."""
    folder = tmp_path_factory.mktemp("s3")
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket=BUCKET)
    files = {"dem.tif": rasters.dem(folder / "dem.tif", rows=300, cols=320)}
    for index in range(2):
        data = (rasters.smooth_field(200, 200, seed=index) + 500 * index).astype(np.float32)[None]
        files[f"scenes/scene{index}.tif"] = rasters.write_raster(
            folder / f"scene{index}.tif", data, origin=(rasters.ORIGIN[0] + 3000 * index, rasters.ORIGIN[1]))
    client.put_object(Bucket=BUCKET, Key="scenes/readme.txt", Body=b"not a raster")
    for key, path in files.items():
        client.upload_file(str(path), BUCKET, key)
    return folder, files, s3_server


@pytest.fixture(scope="module")
def catalogs(s3):
    folder, files, _ = s3
    remote, local = str(folder / "remote.sqlite"), str(folder / "local.sqlite")
    assert main(["add", "dem", f"s3://{BUCKET}/dem.tif", "--catalog", remote]) == 0
    assert main(["add", "scenes", f"s3://{BUCKET}/scenes/", "--catalog", remote]) == 0
    assert main(["add", "dem", str(files["dem.tif"]), "--catalog", local]) == 0
    assert main(["add", "scenes", str(files["scenes/scene0.tif"]), str(files["scenes/scene1.tif"]),
                 "--catalog", local]) == 0
    return remote, local


def test_objects_are_registered_by_key_and_by_prefix(catalogs):
    remote = Catalog(catalogs[0], readonly=True)
    assert [i.path for i in remote.items("dem")] == [f"s3://{BUCKET}/dem.tif"]
    assert [i.path for i in remote.items("scenes")] == [f"s3://{BUCKET}/scenes/scene0.tif",
                                                        f"s3://{BUCKET}/scenes/scene1.tif"]
    local = Catalog(catalogs[1], readonly=True)
    assert remote.service("dem").description == local.service("dem").description
    assert remote.distributions("scenes") == local.distributions("scenes")


@pytest.mark.parametrize("service, query", [
    ("dem", {"format": "tiff", "size": "300,280"}),
    ("dem", {"format": "png", "bboxSR": "3857", "imageSR": "3857", "size": "256,256",
             "bbox": "-13177000,4377000,-13160000,4393000", "renderingRule": '{"rasterFunction":"Hillshade"}'}),
    ("scenes", {"format": "lerc", "size": "400,200", "mosaicRule": '{"mosaicOperation":"MT_MEAN"}'}),
])
def test_exports_from_the_bucket_equal_those_from_disk_byte_for_byte(catalogs, service, query):
    remote, local = (ImageService(Catalog(path, readonly=True)) for path in catalogs)
    params = export_params(export_request(service, Params(query.items())))
    assert remote.export_image(params).encoded.data == local.export_image(params).encoded.data


def test_a_prefix_without_rasters_and_a_missing_key_are_refused(s3, tmp_path, capsys):
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "none", f"s3://{BUCKET}/nothing/", "--catalog", db]) == 2
    assert "No raster object" in capsys.readouterr().err
    assert main(["add", "none", f"s3://{BUCKET}/missing.tif", "--catalog", db]) == 2


def test_the_server_serves_the_bucket(catalogs, s3, tmp_path):
    from tests.conftest import _Serve

    remote, local = catalogs
    query = {"bbox": "-13177000,4377000,-13160000,4393000", "bboxSR": "3857", "size": "200,200",
             "format": "tiff", "f": "image"}
    with _Serve(remote, tmp_path) as url:  # the server inherits the AWS variables
        reply = httpx.get(f"{url}/arcgis/rest/services/dem/ImageServer/exportImage", params=query)
    expected = ImageService(Catalog(local, readonly=True)).export_image(
        export_params(export_request("dem", Params({k: v for k, v in query.items() if k != "f"}.items()))))
    assert reply.status_code == 200 and reply.content == expected.encoded.data
