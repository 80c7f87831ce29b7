"""The read stage's validity mask is GDAL's dataset mask, whichever way it is computed."""
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

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
