"""The catalog on PostgreSQL as several servers share it (docs/decisions.md "The catalog on PostgreSQL"): what one
`imgsvc add` writes is served by every running server without a restart, a server outlives a restart of
PostgreSQL, and every write moves the version number the servers' answer caches are keyed on."""
from __future__ import annotations

import httpx
import pytest

from imgsvc.catalog import Catalog, FunctionTemplate, ServiceSettings
from imgsvc.cli import main, register
from imgsvc.errors import ImgsvcError
from tests.conftest import _Serve

EXPORT = {"bbox": "-13177000,4377000,-13160000,4393000", "bboxSR": "3857", "size": "64,64", "format": "tiff",
          "f": "image"}


def band_count(base: str, service: str) -> int:
    reply = httpx.get(f"{base}/arcgis/rest/services/{service}/ImageServer", params={"f": "json"}, timeout=30)
    return reply.json()["bandCount"]


def test_a_service_added_or_replaced_while_two_servers_run_is_served_by_both(postgres, dem_path, u16_path,
                                                                             tmp_path):
    url = postgres.new_database()
    assert main(["add", "first", str(dem_path), "--catalog", url]) == 0
    with _Serve(url, tmp_path / "one") as one, _Serve(url, tmp_path / "two") as two:
        before = {base: httpx.get(f"{base}/arcgis/rest/services/first/ImageServer/exportImage", params=EXPORT,
                                  timeout=30).content for base in (one, two)}
        assert main(["add", "second", str(u16_path), "--catalog", url]) == 0
        assert main(["add", "first", str(u16_path), "--replace", "--catalog", url]) == 0
        for base in (one, two):
            services = httpx.get(f"{base}/arcgis/rest/services", params={"f": "json"}, timeout=30).json()["services"]
            assert [s["name"] for s in services] == ["first", "second"]
            assert band_count(base, "second") == 4 and band_count(base, "first") == 4
            after = httpx.get(f"{base}/arcgis/rest/services/first/ImageServer/exportImage", params=EXPORT,
                              timeout=30)
            assert after.status_code == 200 and after.content != before[base]  # not an answer cached before


def test_a_reader_goes_on_after_postgresql_restarts(postgres, dem_path):
    url = postgres.new_database()
    assert main(["add", "dem", str(dem_path), "--catalog", url]) == 0
    catalog = Catalog(url, readonly=True)
    version = catalog.version()
    assert catalog.service_names() == ["dem"]
    postgres.stop()
    try:
        assert catalog.version() is None  # not known while the server is down: no answer is cached meanwhile
    finally:
        postgres.start()
    assert catalog.service_names() == ["dem"] and catalog.version() == version


def test_every_write_and_only_a_write_moves_the_version(postgres, dem_path):
    url = postgres.new_database()
    writer, reader = Catalog(url), Catalog(url, readonly=True)
    versions = [reader.version()]
    register(writer, "dem", dem_path, ServiceSettings())
    versions.append(reader.version())
    writer.put_template("dem", FunctionTemplate(name="Slope", description="", rule={"rasterFunction": "Slope"}))
    versions.append(reader.version())
    with pytest.raises(ImgsvcError):
        register(writer, "dem", dem_path, ServiceSettings())  # exists: rolled back, the version stays
    reader.service("dem")
    versions.append(reader.version())
    writer.remove_service("dem")
    versions.append(reader.version())
    assert versions[0] < versions[1] < versions[2] == versions[3] < versions[4]


def test_a_server_refuses_a_database_without_a_catalog_and_never_shows_the_password(postgres):
    url = postgres.new_database().replace("imgsvc@", "imgsvc:s3cret@")  # trusted on the loopback: not checked
    with pytest.raises(ImgsvcError) as info:
        Catalog(url, readonly=True)
    assert "imgsvc:***@127.0.0.1" in str(info.value) and "s3cret" not in str(info.value)
