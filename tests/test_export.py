"""exportImage semantics end to end (through the core service): antimeridian and poles, outside the data,
datumTransformation, noData, pixelType, bandIds, the default resampling — checked against independent math."""
from __future__ import annotations

import io

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pyproj import Transformer
from pyproj.crs import CoordinateOperation
from rasterio.io import MemoryFile

from imgsvc import sr as srmod
from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.cli import register
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters


@pytest.fixture(scope="module")
def core(tmp_path_factory, dem_path, u16_path):
    folder = tmp_path_factory.mktemp("export")
    catalog = Catalog(folder / "catalog.sqlite")
    register(catalog, "globe", rasters.global_ids(folder / "globe.tif"), ServiceSettings())
    register(catalog, "nad27", rasters.nad27_ids(folder / "nad27.tif"), ServiceSettings())
    register(catalog, "dem", dem_path, ServiceSettings(default_resampling_method="Nearest"))
    register(catalog, "ms", u16_path, ServiceSettings())
    return ImageService(Catalog(folder / "catalog.sqlite", readonly=True))


def export(core, service, **query):
    result = core.export_image(export_params(export_request(service, Params(query.items()))))
    return result


def tiff(core, service, **query):
    result = export(core, service, format="tiff", **query)
    with MemoryFile(result.encoded.data) as mem, mem.open() as src:
        return src.read(), src.read_masks(1) > 0, src.transform, src.nodata


def centres(transform, width, height):
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return transform.c + cols * transform.a, transform.f + rows * transform.e


def global_id(lon, lat, res=0.5):
    """The index of the global raster's pixel under (lon, lat), wrapping longitude."""
    col = np.floor(((lon + 180.0) % 360.0) / res).astype(np.int64)
    row = np.floor((90.0 - lat) / res).astype(np.int64)
    return row * int(360 / res) + col


def test_geographic_bbox_across_the_antimeridian_wraps_the_globe(core):
    data, valid, transform, _ = tiff(core, "globe", bbox="170,-10,190,10", bboxSR="4326", imageSR="4326",
                                     size="200,100", interpolation="RSP_NearestNeighbor")
    assert valid.all()
    lon, lat = centres(transform, 200, 100)
    assert lon.max() > 185  # the grid really runs past 180
    assert (data[0] == global_id(lon, lat)).mean() > 0.995


def test_web_mercator_bbox_across_the_antimeridian(core):
    data, valid, transform, _ = tiff(core, "globe", bbox="170,-10,190,10", bboxSR="4326", imageSR="3857",
                                     size="200,200", interpolation="RSP_NearestNeighbor")
    assert valid.all()
    assert transform.a * 200 < 2.5e6  # a 20-degree wide grid, not the whole world
    x, y = centres(transform, 200, 200)
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(x, y)
    assert (data[0] == global_id(np.asarray(lon), np.asarray(lat))).mean() > 0.995


def test_polar_stereographic_over_the_pole(core):
    data, valid, transform, _ = tiff(core, "globe", bbox="-1500000,-1500000,1500000,1500000", bboxSR="3413",
                                     imageSR="3413", size="150,150", interpolation="RSP_NearestNeighbor")
    assert valid.all()
    x, y = centres(transform, 150, 150)
    lon, lat = Transformer.from_crs(3413, 4326, always_xy=True).transform(x, y)
    assert (data[0] == global_id(np.asarray(lon), np.asarray(lat))).mean() > 0.995


def test_bbox_wholly_outside_the_data_is_transparent_not_an_error(core):
    result = export(core, "dem", bbox="0,0,10000,10000", bboxSR="3857", size="64,64", f="image")
    image = Image.open(io.BytesIO(result.encoded.data))
    assert image.format == "PNG" and np.asarray(image.convert("LA"))[..., 1].max() == 0


def test_bbox_partly_outside_masks_the_outside(core):
    # The DEM spans x 380000..401600 (UTM 11N); this bbox covers 370000..390000.
    _, valid, transform, _ = tiff(core, "dem", bbox="370000,4055000,390000,4065000", size="200,100")
    x, _ = centres(transform, 200, 100)
    assert not valid[x < 380000].any()
    assert valid[(x > 381000) & (x < 389000)].mean() > 0.99


def test_datum_transformation_moves_pixels_as_the_named_operation_does(core):
    query = dict(bbox="-13173000,4393000,-13166000,4400000", bboxSR="3857", imageSR="3857", size="120,120",
                 interpolation="RSP_NearestNeighbor")
    picked = {}
    for wkid in (1172, 1173):  # NAD27 to WGS 84 (3) and (4): Helmert shifts some metres apart
        data, valid, transform, _ = tiff(core, "nad27", datumTransformation=str(wkid), **query)
        x, y = centres(transform, 120, 120)
        # Independently: 3857 -> WGS 84 -> (inverse of the named operation) -> NAD27 -> UTM 11N.
        lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(x, y)
        step = Transformer.from_pipeline(CoordinateOperation.from_epsg(wkid).to_proj4())
        lat27, lon27 = step.transform(np.asarray(lat), np.asarray(lon), direction="INVERSE")
        e, n = Transformer.from_crs(4267, 26711, always_xy=True).transform(lon27, lat27)
        col = np.floor((np.asarray(e) - rasters.ORIGIN[0]) / 30.0).astype(int)
        row = np.floor((rasters.ORIGIN[1] - np.asarray(n)) / 30.0).astype(int)
        assert valid.all()
        assert (data[0] == row * 400 + col).mean() > 0.995
        picked[wkid] = data[0]
    assert (picked[1172] != picked[1173]).mean() > 0.1  # the parameter is not ignored (shifts of some metres)


def test_datum_transformation_that_does_not_connect_the_datums_is_refused(core):
    with pytest.raises(ImgsvcError, match="datumTransformation"):
        export(core, "nad27", bbox="-13173000,4393000,-13166000,4400000", bboxSR="3857", imageSR="3857",
               size="10,10", datumTransformation="108190")


def test_no_data_match_any_and_match_all(core):
    base, valid, _, _ = tiff(core, "ms", bbox="380000,4065000,385000,4070000", size="100,100",
                             interpolation="RSP_NearestNeighbor")
    target = base[:, 50, 50]
    others = target + np.array([0, 1, 1, 1], dtype=target.dtype)  # only band 0 matches at (50, 50)
    per_band = others[:, None, None]
    for text, interpretation, expected in (
            (str(target[0]), "esriNoDataMatchAny", valid & ~(base == target[0]).any(axis=0)),
            (",".join(map(str, others)), "esriNoDataMatchAny", valid & ~(base == per_band).any(axis=0)),
            (",".join(map(str, others)), "esriNoDataMatchAll", valid & ~(base == per_band).all(axis=0)),
            (",".join(map(str, target)), "esriNoDataMatchAll", valid & ~(base == target[:, None, None]).all(axis=0))):
        _, got, _, _ = tiff(core, "ms", bbox="380000,4065000,385000,4070000", size="100,100",
                            interpolation="RSP_NearestNeighbor", noData=text, noDataInterpretation=interpretation)
        assert (got == expected).all(), (text, interpretation)
    # Defaults (docs/protocol.md §1.1): one value means MatchAny, a per-band list MatchAll.
    kwargs = dict(bbox="380000,4065000,385000,4070000", size="100,100", interpolation="RSP_NearestNeighbor")
    _, one_value, _, _ = tiff(core, "ms", noData=str(target[0]), **kwargs)
    _, per_band_list, _, _ = tiff(core, "ms", noData=",".join(map(str, others)), **kwargs)
    assert valid[50, 50] and not one_value[50, 50] and per_band_list[50, 50]



def test_pixel_type_truncates(core):
    data, _, _, _ = tiff(core, "dem", bbox="384000,4055000,396000,4064000", size="60,45", pixelType="U8")
    assert data.dtype == np.uint8 and data.max() == 255  # elevations above 255 clip, they do not wrap
    source, _, _, _ = tiff(core, "dem", bbox="384000,4055000,396000,4064000", size="60,45", pixelType="S16")
    assert source.dtype == np.int16 and 600 < source.max() < 2600


def test_band_ids_reorder_and_duplicate(core):
    query = dict(bbox="380000,4065000,385000,4070000", size="80,80", interpolation="RSP_NearestNeighbor")
    full, _, _, _ = tiff(core, "ms", **query)
    picked, _, _, _ = tiff(core, "ms", bandIds="3,0,0", **query)
    assert np.array_equal(picked, full[[3, 0, 0]])


def test_absent_interpolation_uses_the_service_default(core):
    query = dict(bbox="-13167000,4388000,-13151000,4400000", bboxSR="3857", imageSR="3857", size="90,70")
    default, _, _, _ = tiff(core, "dem", **query)  # this service's default is Nearest
    nearest, _, _, _ = tiff(core, "dem", interpolation="RSP_NearestNeighbor", **query)
    bilinear, _, _, _ = tiff(core, "dem", interpolation="RSP_BilinearInterpolation", **query)
    assert np.array_equal(default, nearest) and not np.array_equal(default, bilinear)


def test_tiff_masked_pixels_hold_nodata_with_gdal_nodata(core):
    data, valid, _, nodata = tiff(core, "dem", bbox="370000,4055000,390000,4065000", size="200,100")
    assert nodata == -9999 and (data[0][~valid] == -9999).all() and (~valid).any()
    data, valid, _, nodata = tiff(core, "dem", bbox="370000,4055000,390000,4065000", size="200,100", noData="-1")
    assert nodata == -1 and (data[0][~valid] == -1).all()


def test_tiff_without_a_nodata_value_carries_an_internal_mask(core):
    result = export(core, "globe", bbox="170,80,190,95", bboxSR="4326", imageSR="4326", size="40,30",
                    format="tiff")
    with MemoryFile(result.encoded.data) as mem, mem.open() as src:
        assert src.nodata is None
        assert rasterio.enums.MaskFlags.per_dataset in src.mask_flag_enums[0]
        assert (src.read_masks(1) == 0).any() and (src.read_masks(1) == 255).any()


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_sub_byte_rasters_are_read_as_u8(tmp_path, nbits):
    data = (np.arange(64 * 64).reshape(1, 64, 64) % (2 ** nbits)).astype(np.uint8)
    path = rasters.write_raster(tmp_path / "bits.tif", data, overviews=())
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", nbits=nbits,
                       crs=rasters.UTM11, transform=rasterio.transform.from_origin(*rasters.ORIGIN, 30, 30)) as dst:
        dst.write(data)
    catalog = Catalog(tmp_path / "c.sqlite")
    register(catalog, "bits", path, ServiceSettings())
    core = ImageService(Catalog(tmp_path / "c.sqlite", readonly=True))
    result = core.export_image(export_params(export_request("bits", Params({
        "bbox": "380000,4068080,381920,4070000", "size": "64,64", "format": "tiff",
        "interpolation": "RSP_NearestNeighbor"}.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as src:
        assert src.dtypes[0] == "uint8" and np.array_equal(src.read(), data)


@pytest.fixture(scope="module")
def dem_values(dem_path):
    with rasterio.open(dem_path) as src:
        values = [np.unique(src.read(1))]
        for level in range(len(src.overviews(1))):
            with rasterio.open(dem_path, overview_level=level) as ovr:
                values.append(np.unique(ovr.read(1)))
    return np.unique(np.concatenate(values))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sr=st.sampled_from(["3857", "4326", "32611", "3413", "32610"]),
       cx=st.floats(-0.3, 1.3), cy=st.floats(-0.3, 1.3), span=st.floats(0.01, 2.0),
       width=st.integers(1, 96), height=st.integers(1, 96), adjust=st.booleans())
def test_random_requests_never_crash_and_nearest_picks_source_values(core, dem_values, sr, cx, cy, span, width,
                                                                    height, adjust):
    # A bbox around the DEM (UTM 11N, 21.6 x 19.2 km), expressed in the request's SR.
    x = 380000 + cx * 21600
    y = 4050800 + cy * 19200
    half = span * 10000
    bounds = srmod.transform_bounds(srmod.crs_from_wkid(32611), srmod.crs_from_wkid(int(sr)),
                                    (x - half, y - half, x + half, y + half))
    try:
        data, valid, _, nodata = tiff(core, "dem", bbox=",".join(map(repr, bounds)), bboxSR=sr, imageSR=sr,
                                      size=f"{width},{height}", adjustAspectRatio=str(adjust).lower(),
                                      interpolation="RSP_NearestNeighbor")
    except ImgsvcError as error:
        assert error.kind is ErrorKind.INVALID_ARGUMENT
        return
    assert data.shape == (1, height, width)
    assert (data[0][~valid] == nodata).all()
    assert np.isin(data[0][valid], dem_values).all()


@pytest.mark.parametrize("src, dst, bounds", [
    (32610, 32611, (917844.0, 4073414.9, 923244.0, 4078814.9)),  # the next UTM zone over
    (32611, 3413, (380000.0, 4050800.0, 401600.0, 4070000.0)),
    (32611, 3857, (380000.0, 4050800.0, 401600.0, 4070000.0)),
])
def test_bounds_in_another_projection_are_the_densified_envelope(src, dst, bounds):
    expected = Transformer.from_crs(src, dst, always_xy=True).transform_bounds(*bounds, densify_pts=21)
    got = srmod.transform_bounds(srmod.crs_from_wkid(src), srmod.crs_from_wkid(dst), bounds)
    assert got == pytest.approx(expected, rel=1e-9)


def test_each_thread_keeps_a_bounded_number_of_transformers():
    wgs84 = srmod.crs_from_wkid(4326)
    zones = [srmod.crs_from_wkid(code) for code in (*range(32601, 32661), *range(32701, 32741))]
    for zone in zones:
        srmod.transformer(wgs84, zone)
    assert len(srmod._local.cache) == srmod.TRANSFORMERS_PER_THREAD
    assert srmod.transformer(wgs84, zones[-1]) is srmod.transformer(wgs84, zones[-1])  # the recent ones stay


def test_transform_error_is_a_server_setting(core):
    # Over the pole the mapping is far from affine, so the bound decides how many exact transforms are made.
    query = dict(bbox="-3000000,-3000000,3000000,3000000", bboxSR="3413", imageSR="3413", size="300,300",
                 interpolation="RSP_NearestNeighbor", format="tiff")
    loose = ImageService(core.catalog, transform_error=8.0)
    tight = export(core, "globe", **query).encoded.data
    assert export(loose, "globe", **query).encoded.data != tight  # an 8-pixel bound moves nearest picks
    with pytest.raises(ValueError):
        ImageService(core.catalog, transform_error=0.0)


def test_no_data_outside_the_output_type(core):
    query = dict(bbox="370000,4055000,390000,4065000", size="50,25", pixelType="U8", noData="-1")
    with pytest.raises(ImgsvcError) as info:
        tiff(core, "dem", **query)
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT and "noData" in info.value.text
    png = export(core, "dem", format="png", **query).encoded.data  # the PNG's alpha carries the mask
    alpha = np.asarray(Image.open(io.BytesIO(png)).convert("LA"))[..., 1]
    assert (alpha == 0).any() and (alpha == 255).any()
    with pytest.raises(ImgsvcError, match="noData"):
        tiff(core, "dem", bbox="370000,4055000,390000,4065000", size="50,25", noData="1e40")  # beyond float32


@pytest.mark.parametrize("image_sr, half_height", [("3857", 20048966.1), ("3413", 3282246.7)])
def test_whole_globe_into_a_projection_singular_at_the_poles(core, image_sr, half_height):
    # A Mercator pole or the far hemisphere of a polar stereographic projection is at infinity: the geographic
    # bbox is cut to the latitudes the SR covers (Web Mercator to 85.06 degrees), as ArcGIS shows it.
    result = export(core, "globe", bbox="-180,-90,180,90", bboxSR="4326", imageSR=image_sr, size="128,128",
                    format="png")
    xmin, ymin, xmax, ymax = result.grid.extent
    assert ymax == pytest.approx(half_height, rel=1e-6) and ymin == pytest.approx(-half_height, rel=1e-6)
    alpha = np.asarray(Image.open(io.BytesIO(result.encoded.data)).convert("LA"))[..., 1]
    assert (alpha == 255).all()


def test_transverse_mercator_keeps_the_bbox_as_asked(core):
    result = export(core, "globe", bbox="10,-5,20,5", bboxSR="4326", imageSR="32633", size="64,64", format="png")
    assert result.grid.extent[1] < 0  # UTM north is defined a little south of the equator too
