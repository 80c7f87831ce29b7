"""The demo rasters are reproducible, well-formed COGs whose pixels look like terrain and imagery."""

import hashlib

import numpy as np
import pytest
import rasterio

from imgsvc import demo


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    first = demo.generate(tmp_path_factory.mktemp("first") / "nested")
    second = demo.generate(tmp_path_factory.mktemp("second"))
    return first, second


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_runs_write_identical_files(generated):
    first, second = generated
    assert set(first) == {"elevation", "multispectral"}
    for name in first:
        assert first[name].name == second[name].name
        assert _digest(first[name]) == _digest(second[name])


def test_elevation_is_a_tiled_float32_dem_in_utm_with_overviews(generated):
    with rasterio.open(generated[0]["elevation"]) as src:
        assert src.crs.to_epsg() == 32611
        assert (src.width, src.height, src.count) == (2048, 2048, 1)
        assert src.dtypes == ("float32",)
        assert src.nodata == -9999
        assert src.res == (30.0, 30.0)
        assert src.block_shapes == [(512, 512)]
        assert src.compression.name.lower() == "deflate"
        assert src.overviews(1) == [2, 4, 8, 16]
        # Centred on 36.6°N 118.3°W (383725 E, 4051287 N in zone 11).
        centre_x, centre_y = src.xy(1024, 1024, offset="ul")
        assert abs(centre_x - 383725) < 60 and abs(centre_y - 4051287) < 60


def test_elevation_values_are_plausible_terrain_with_voids(generated):
    with rasterio.open(generated[0]["elevation"]) as src:
        dem = src.read(1, masked=True)
        overview = src.read(1, out_shape=(128, 128), masked=True)
    void_fraction = dem.mask.mean()
    assert 0.01 < void_fraction < 0.1
    # The voids are more than the corner strip: some lie well inside the frame.
    assert dem.mask[200:1800, 200:1800].any()
    values = dem.compressed()
    assert 1000 < values.min() and values.max() < 4500
    assert np.percentile(values, 99) - np.percentile(values, 1) > 2000
    assert overview.count() > 0 and abs(overview.mean() - dem.mean()) < 50


def test_elevation_is_spatially_smooth_not_noise(generated):
    with rasterio.open(generated[0]["elevation"]) as src:
        dem = src.read(1).astype(np.float64)
    valid = dem != -9999
    pairs = valid[:, :-1] & valid[:, 1:]
    left, right = dem[:, :-1][pairs], dem[:, 1:][pairs]
    assert np.corrcoef(left, right)[0, 1] > 0.99
    # Real terrain has relief at every scale: neighbouring pixels still differ somewhere.
    steps = np.abs(left - right)
    assert np.percentile(steps, 90) > 5.0
    assert np.percentile(steps, 50) < 100.0


def test_multispectral_is_a_four_band_uint16_cog_over_the_dem(generated):
    with rasterio.open(generated[0]["multispectral"]) as src, rasterio.open(generated[0]["elevation"]) as dem:
        assert src.crs.to_epsg() == 32611
        assert (src.width, src.height, src.count) == (2048, 2048, 4)
        assert src.dtypes == ("uint16",) * 4
        assert src.nodata == 0
        assert src.res == (10.0, 10.0)
        assert src.descriptions == ("Blue", "Green", "Red", "NearInfrared")
        assert src.block_shapes == [(512, 512)] * 4
        assert src.overviews(1) == [2, 4, 8]
        inner, outer = src.bounds, dem.bounds
        assert outer.left < inner.left and inner.right < outer.right
        assert outer.bottom < inner.bottom and inner.top < outer.top


def test_multispectral_reflectance_looks_like_a_landscape(generated):
    with rasterio.open(generated[0]["multispectral"]) as src:
        blue, green, red, nir = src.read().astype(np.float64)
    collar = blue == 0
    assert collar[:, 0].all() and not collar[:, -1].any()
    assert 0.02 < collar.mean() < 0.15
    # All bands share the footprint: no zero inside the scene.
    assert ((blue == 0) == (nir == 0)).all() and ((green == 0) == (red == 0)).all()
    valid = ~collar
    assert blue[valid].max() <= 10000 and nir[valid].max() <= 10000
    ndvi = (nir - red)[valid] / (nir + red)[valid]
    # Vegetation (NDVI well above zero), water (negative NDVI) and snow (bright visible) all occur.
    assert (ndvi > 0.6).mean() > 0.1
    assert (ndvi < 0.0).mean() > 0.0005
    assert ((green[valid] > 6000) & (ndvi < 0.2)).mean() > 0.01
    # Terrain illumination: reflectance varies smoothly, neighbours correlate strongly.
    pairs = valid[:, :-1] & valid[:, 1:]
    assert np.corrcoef(nir[:, :-1][pairs], nir[:, 1:][pairs])[0, 1] > 0.8


def test_the_scenes_mosaic_is_overlapping_tiles_on_two_dates_with_clouds(generated):
    from imgsvc.catalog.attributes import read_attribute_table

    paths, table = demo.generate_scenes(generated[0]["multispectral"].parent, generated[0]["multispectral"])
    fields, values = read_attribute_table(table)
    assert len(paths) == 32 and {f.name: f.type.name for f in fields} == {
        "AcquisitionDate": "DATE", "CloudCover": "DOUBLE", "Season": "TEXT"}
    assert {v["Season"] for v in values.values()} == {"spring", "autumn"}
    assert all(0 < v["CloudCover"] < 0.5 for v in values.values())
    with rasterio.open(paths[0]) as first, rasterio.open(paths[2]) as autumn_neighbour:
        assert first.count == 4 and first.nodata == 0 and first.overviews(1) == [2, 4]
        overlap = first.bounds.right - autumn_neighbour.bounds.left
        assert overlap == (demo.SCENE_TILE - demo.SCENE_STRIDE) * demo.MS_PIXEL


def test_the_climate_cube_follows_the_terrain_and_the_seasons(generated):
    import netCDF4

    path = demo.generate_climate(generated[0]["elevation"].parent, generated[0]["elevation"])
    with rasterio.open(generated[0]["elevation"]) as dem, \
            rasterio.open(f'NETCDF:"{path}":soil_temperature') as soil:
        assert soil.crs == dem.crs and soil.bounds == dem.bounds
        assert soil.count == 12 * len(demo.CLIMATE_DEPTHS_M) and soil.res == (240.0, 240.0)
        elevation = dem.read(1, out_shape=soil.shape, resampling=rasterio.enums.Resampling.average, masked=True)
    with netCDF4.Dataset(path) as cube:
        assert netCDF4.num2date(cube["time"][6], cube["time"].units).month == 7
        air, ground = cube["air_temperature"][:], cube["soil_temperature"][:]
    # Colder up high (the lapse rate), warmer in July than in January, the soil's swing damped with depth.
    heights = elevation.compressed()
    high, low = elevation > np.percentile(heights, 90), elevation < np.percentile(heights, 10)
    assert air[6][high].mean() + 10 < air[6][low].mean()
    assert (air[6] > air[0]).all()
    swings = [float((ground[:, level].max(axis=0) - ground[:, level].min(axis=0)).mean()) for level in range(4)]
    assert swings == sorted(swings, reverse=True) and swings[-1] < swings[0] / 2
