"""The read stage's validity mask is GDAL's dataset mask, whichever way it is computed."""
import os

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from imgsvc import read
from imgsvc.read import describe_raster, read_window


@pytest.mark.parametrize("bands", [(0, 1, 2, 3), (3, 1, 0, 2), (2,), (1, 1)])
def test_valid_mask_equals_gdal_dataset_mask(u16_path, bands):
    item = describe_raster(u16_path)
    window = Window(300, 10, 200, 150)  # crosses the no-data collar on the east edge
    got = read_window(item, None, window, bands)
    with rasterio.open(u16_path) as src:
        expected = src.dataset_mask(window=window) > 0
        assert np.array_equal(got.data, src.read([b + 1 for b in bands], window=window))
    assert (~expected).any() and expected.any()
    assert np.array_equal(got.valid, expected)


def test_float_nodata_and_nan(dem_path):
    item = describe_raster(dem_path)
    got = read_window(item, 0, Window(0, 0, 200, 100), (0,))
    with rasterio.open(dem_path, overview_level=0) as src:
        assert np.array_equal(got.valid, src.dataset_mask(window=Window(0, 0, 200, 100)) > 0)


def test_kept_open_datasets_notice_a_replaced_file(tmp_path):
    from tests import rasters

    path = rasters.write_raster(tmp_path / "r.tif", np.full((1, 64, 64), 7, dtype=np.uint8), overviews=())
    item = describe_raster(path)
    assert (read_window(item, None, Window(0, 0, 64, 64), (0,)).data == 7).all()
    replacement = rasters.write_raster(tmp_path / "new.tif", np.full((1, 64, 64), 9, dtype=np.uint8), overviews=())
    replacement.replace(path)  # what an operator does when updating data in place
    assert (read_window(item, None, Window(0, 0, 64, 64), (0,)).data == 9).all()


def test_threads_share_the_open_datasets_one_read_at_a_time(u16_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(read, "_datasets", read.DatasetPool())
    item = describe_raster(u16_path)
    windows = [Window(c, r, 120, 90) for c in (0, 200, 380) for r in (0, 150, 400)]
    expected = [read_window(item, None, w, (3, 2, 1)).data.tobytes() for w in windows]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            got = list(pool.map(lambda w: read_window(item, None, w, (3, 2, 1)).data.tobytes(), windows * 2))
            assert got == expected * 2
    # Eight reads at once needed at most eight handles, all given back for the next requests.
    assert 1 <= read._datasets.idle <= 8


def test_the_open_datasets_are_bounded_in_all_whatever_the_threads(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from tests import rasters

    pool = read.DatasetPool(max_idle=10)
    monkeypatch.setattr(read, "_datasets", pool)
    items = [describe_raster(rasters.write_raster(tmp_path / f"r{i}.tif", np.full((1, 32, 32), i, dtype=np.uint8),
                                                  overviews=())) for i in range(30)]
    with ThreadPoolExecutor(6) as threads:
        for _ in range(3):
            values = list(threads.map(
                lambda item: int(read_window(item, None, Window(0, 0, 32, 32), (0,)).data[0, 0, 0]), items))
            assert values == list(range(30))
    assert pool.idle == 10 == sum(len(handles) for handles in pool._handles.values())
    for item in items[:3]:  # least recently used first out: these three are kept
        read_window(item, None, Window(0, 0, 32, 32), (0,))
    assert [key[0] for key in pool._handles][-3:] == [str(item.path) for item in items[:3]] and pool.idle == 10


def test_a_handle_a_read_failed_on_is_closed_not_kept(tmp_path, monkeypatch):
    from tests import rasters

    pool = read.DatasetPool()
    monkeypatch.setattr(read, "_datasets", pool)
    item = describe_raster(rasters.write_raster(tmp_path / "r.tif", np.ones((1, 32, 32), np.uint8), overviews=()))
    with pytest.raises(ZeroDivisionError), pool.lend(item, None) as dataset:
        1 / 0
    assert dataset.closed and pool.idle == 0


def test_rotated_grid_bounds_and_nodata_outside_the_band_type(tmp_path):
    from dataclasses import replace

    from affine import Affine

    from tests import rasters

    path = tmp_path / "rot.tif"
    data = np.full((1, 40, 60), 200, dtype=np.uint8)
    data[0, :10] = np.array(-9999).astype(np.uint8)  # 241: what the nodata value wraps to in a careless cast
    rotated = Affine.translation(380000, 4070000) @ Affine.rotation(30) @ Affine.scale(30, -30)
    with rasterio.open(path, "w", driver="GTiff", width=60, height=40, count=1, dtype="uint8", crs=rasters.UTM11,
                       transform=rotated, nodata=None) as dst:
        dst.write(data)
    item = describe_raster(path)
    corners = [rotated @ c for c in ((0, 0), (60, 0), (0, 40), (60, 40))]
    assert item.bounds == (min(x for x, _ in corners), min(y for _, y in corners),
                           max(x for x, _ in corners), max(y for _, y in corners))
    # A uint8 band whose declared nodata it cannot hold (as some writers leave it): nothing is masked, as in GDAL.
    item = replace(item, nodata=-9999.0, mask_kind="nodata")
    assert read_window(item, None, Window(0, 0, 60, 40), (0,)).valid.all()


def test_a_server_sizes_gdals_block_cache_unless_the_environment_does(monkeypatch):
    from rasterio.env import get_gdal_config, set_gdal_config

    from imgsvc.read import size_block_cache

    def block_cache_bytes() -> int:
        return int(get_gdal_config("GDAL_CACHEMAX"))

    before = block_cache_bytes()
    try:
        monkeypatch.setenv("GDAL_CACHEMAX", "64")
        size_block_cache(300)
        assert block_cache_bytes() == before  # the operator's setting, read by GDAL itself
        monkeypatch.delenv("GDAL_CACHEMAX")
        size_block_cache(300)
        assert block_cache_bytes() == 300 * 2**20
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


def test_the_default_block_cache_is_a_tenth_of_the_memory_a_container_allows(tmp_path, monkeypatch):
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    assert read.usable_memory((v2, v1)) == physical  # no cgroup files: the machine's memory
    v2.write_text("max\n")
    v1.write_text(f"{2**30}\n")
    assert read.usable_memory((v2, v1)) == 2**30  # v2 says no limit, v1 says 1 GiB
    v2.write_text(f"{512 * 2**20}\n")
    assert read.usable_memory((v2, v1)) == 512 * 2**20
    v2.write_text(f"{physical * 4}\n")
    assert read.usable_memory((v2, v1)) == physical  # a limit above the machine's memory limits nothing
    v2.write_text(f"{10 * 2**30}\n")
    monkeypatch.setattr(read, "CGROUP_MEMORY_LIMITS", (v2,))
    assert read.default_block_cache_mb() == min(10 * 2**30, physical) // 10 // 2**20
