"""Output grid (docs/protocol.md §1.3/§1.4) and the overview choice, against live ArcGIS numbers and GDAL's rule."""
import pytest
from affine import Affine

from imgsvc import sr
from imgsvc.catalog import ServiceSettings
from imgsvc.errors import ImgsvcError
from imgsvc.grpc.requests import export_params
from imgsvc.plan import SIZE_LIMIT_DETAIL, OutputGrid, output_grid, overview_for
from imgsvc.read import describe_raster
from imgsvc.rest.query import Params, export_request
from imgsvc.catalog import ServiceRecord
from imgsvc.catalog.describe import describe_service


def params(**query):
    return export_params(export_request("svc", Params(query.items())))


@pytest.fixture(scope="module")
def item(dem_path):
    return describe_raster(dem_path)


@pytest.fixture(scope="module")
def service(item):
    return ServiceRecord("svc", describe_service([item]), ServiceSettings(max_image_width=1100,
                                                                          max_image_height=1100))


def test_adjust_aspect_ratio_grows_the_short_side_about_the_centre(service):
    # ags.cuzk.gov.cz dmp1g: bbox 14.415,50.085,14.425,50.091 size 700,670 -> y grows to 0.009571 deg.
    grid = output_grid(params(bbox="14.415,50.085,14.425,50.091", bboxSR="4326", imageSR="4326", size="700,670"),
                       service)
    xmin, ymin, xmax, ymax = grid.extent
    assert (xmin, xmax) == pytest.approx((14.415, 14.425))
    assert (ymin, ymax) == pytest.approx((50.08321, 50.09279), abs=1e-5)


def test_adjust_aspect_ratio_with_projection_matches_a_live_server(service):
    # dmr5g, 4326 -> 5514, size 800,600: the returned extent was 1880.117 x 1410.088 m.
    grid = output_grid(params(bbox="14.30410,48.80550,14.32590,48.81630", bboxSR="4326", imageSR="5514",
                              size="800,600"), service)
    xmin, ymin, xmax, ymax = grid.extent
    assert xmax - xmin == pytest.approx(1880.117, abs=0.01)
    assert ymax - ymin == pytest.approx(1410.088, abs=0.01)
    assert (xmin + xmax) / 2 == pytest.approx((-770832.353 - 768952.236) / 2, abs=1.0)


def test_adjust_aspect_ratio_false_keeps_the_envelope(service):
    grid = output_grid(params(bbox="0,0,100,50", bboxSR="3857", imageSR="3857", size="100,100",
                              adjustAspectRatio="false"), service)
    assert grid.extent == pytest.approx((0, 0, 100, 50))
    assert grid.transform.a == pytest.approx(1.0) and grid.transform.e == pytest.approx(-0.5)


def test_size_over_the_limit_is_an_error_not_a_clamp(service):
    with pytest.raises(ImgsvcError) as info:
        output_grid(params(bbox="0,0,1,1", size="1101,10"), service)
    assert info.value.details == (SIZE_LIMIT_DETAIL,)


def test_defaults_are_the_service_extent_and_sr(service):
    grid = output_grid(params(), service)
    assert grid.crs == sr.crs_from_wkid(32611)
    assert (grid.width, grid.height) == (400, 400)
    xmin, ymin, xmax, ymax = service.description.extent
    gx0, gy0, gx1, gy1 = grid.extent
    assert gx0 == pytest.approx(xmin) and gx1 == pytest.approx(xmax)  # the long side is kept


def test_validate_extent(service):
    with pytest.raises(ImgsvcError, match="validateExtent"):
        output_grid(params(bbox="0,0,10,10", bboxSR="4326", validateExtent="true"), service)


def test_overview_choice_follows_gdalwarp_auto(item):
    # item: 720x640 at 30 m with overviews 2, 4, 8
    crs = sr.crs_from_wkid(32611)
    x0, y1 = item.transform.c, item.transform.f

    def grid(res):
        return OutputGrid(crs, Affine(res, 0, x0, 0, -res, y1), 256, 256)

    assert overview_for(item, grid(30.0)) is None      # native resolution
    assert overview_for(item, grid(50.0)) is None      # 1.67: full resolution is the finest not coarser
    assert overview_for(item, grid(60.0)) == 0         # exactly 2 -> the 2x overview
    assert overview_for(item, grid(100.0)) == 0        # 3.33 -> 2x
    assert overview_for(item, grid(130.0)) == 1        # 4.33 -> 4x
    assert overview_for(item, grid(1000.0)) == 2       # coarser than all -> the coarsest
