"""The response cache (docs/decisions.md "Response cache"): identical requests, however spelled, are answered from
it with the same bytes; any change to the catalog starts afresh; it holds at most its bytes."""
from __future__ import annotations

import pytest

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from imgsvc.grpc.requests import export_params
from imgsvc.response_cache import ResponseCache
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters


@pytest.fixture()
def catalog_file(tmp_path):
    path = tmp_path / "catalog.sqlite"
    register(Catalog(path), "dem", rasters.dem(tmp_path / "dem.tif", rows=200, cols=200), ServiceSettings())
    return path


def request(**query):
    query = {"size": "100,80", "format": "png", **query}
    return export_params(export_request("dem", Params(query.items())))


def test_identical_requests_are_answered_from_the_cache(catalog_file):
    core = ImageService(Catalog(catalog_file, readonly=True), cache=ResponseCache(2**20))
    first = core.export_image(request(renderingRule='{"rasterFunction":"Hillshade","rasterFunctionArguments":'
                                                    '{"ZFactor":2,"Azimuth":300}}'))
    # The same request spelled otherwise: its rule's keys in another order.
    again = core.export_image(request(renderingRule='{"rasterFunctionArguments":{"Azimuth":300,"ZFactor":2},'
                                                    '"rasterFunction":"Hillshade"}'))
    assert again is first and (core.cache.hits, core.cache.misses) == (1, 1)
    other = core.export_image(request(renderingRule='{"rasterFunction":"Hillshade"}'))
    assert other.encoded.data != first.encoded.data and core.cache.misses == 2
    assert core.cache.bytes == len(first.encoded.data) + len(other.encoded.data)


def test_a_change_to_the_catalog_starts_afresh(catalog_file, tmp_path):
    core = ImageService(Catalog(catalog_file, readonly=True), cache=ResponseCache(2**20))
    core.export_image(request())
    register(Catalog(catalog_file), "other", rasters.dem(tmp_path / "other.tif", rows=50, cols=50), ServiceSettings())
    core.export_image(request())
    assert (core.cache.hits, core.cache.misses) == (0, 2)
    core.export_image(request())
    assert core.cache.hits == 1


def test_the_cache_holds_at_most_its_bytes_least_recently_used_out_first():
    cache = ResponseCache(1000)
    for key in "abcd":
        cache.put((key,), key, 240)
    assert cache.get(("a",)) == "a"  # a is now the most recent
    cache.put(("e",), "e", 240)
    assert cache.bytes <= 1000 and cache.get(("b",)) is None and cache.get(("a",)) == "a"
    cache.put(("huge",), "huge", 251)  # over a quarter of the cache: not kept
    assert cache.get(("huge",)) is None


def test_without_a_cache_every_request_is_computed(catalog_file):
    core = ImageService(Catalog(catalog_file, readonly=True))
    assert core.export_image(request()) is not core.export_image(request())
