"""Surface functions (docs/protocol.md §6.2): Hillshade, Slope, Aspect, Curvature, ShadedRelief, against windows
worked by hand, an independent numpy reference, GDAL's gdaldem on the same DEM, and end to end through the core."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Transformer

from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.functions import BandsInfo, Raster, parse_rule
from imgsvc.functions.surface import cell_sizes
from imgsvc.plan import OutputGrid
from tests import rasters
from tests.test_pipeline import core, export, halves_catalog, native_bbox  # noqa: F401 (fixtures)

UTM = CRS.from_epsg(32611)
NAN = float("nan")


def grid_of(shape, cell=10.0, crs=UTM, origin=(0.0, 0.0)) -> OutputGrid:
    return OutputGrid(crs=crs, transform=Affine(cell, 0, origin[0], 0, -cell, origin[1]), width=shape[1],
                      height=shape[0])


def run(rule: dict, z, valid=None, grid=None, stats=None) -> Raster:
    """The rule's output for DEM ``z`` (rows, cols) or (bands, rows, cols)."""
    z = np.asarray(z, np.float64)
    z = z if z.ndim == 3 else z[None]
    valid = np.ones(z.shape[1:], bool) if valid is None else np.asarray(valid, bool)
    info = BandsInfo(tuple(f"b{i}" for i in range(z.shape[0])), z.dtype.name, stats)
    return parse_rule(rule).apply(Raster(z, valid, info), grid or grid_of(z.shape[1:]))


def rule(name: str, **arguments) -> dict:
    return {"rasterFunction": name, "rasterFunctionArguments": arguments}


def horn(window: np.ndarray, cx: float, cy: float) -> tuple[float, float]:
    """dz/dx, dz/dy of one 3x3 window (row 0 = north), Horn's weights written out."""
    (a, b, c), (d, _, f), (g, h, i) = window
    return ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * cx), ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * cy)


def reference_windows(z: np.ndarray, valid: np.ndarray):
    """Each pixel's window after the NoData rule, or None: an independent loop over the rule as stated."""
    rows, cols = z.shape
    out = {}
    for r in range(rows):
        for c in range(cols):
            if not valid[r, c]:
                continue
            window, missing = np.empty((3, 3)), []
            for dr in range(3):
                for dc in range(3):
                    rr, cc = r + dr - 1, c + dc - 1
                    if 0 <= rr < rows and 0 <= cc < cols and valid[rr, cc]:
                        window[dr, dc] = z[rr, cc]
                    else:
                        missing.append((dr, dc))
                        window[dr, dc] = z[r, c]
            if len(missing) <= 1:
                out[r, c] = window
    return out


def reference_slope(z, valid, cell):
    expected = np.full(z.shape, NAN)
    for (r, c), window in reference_windows(z, valid).items():
        dx, dy = horn(window, cell, cell)
        expected[r, c] = math.degrees(math.atan(math.hypot(dx, dy)))
    return expected


# ---- the window and its NoData rule, worked by hand ------------------------------------------------------------

def test_a_plane_rising_east_has_slope_45_aspect_270_and_its_hillshade():
    z = np.tile(np.arange(5) * 10.0, (4, 1))  # +10 per 10 m column: dz/dx = 1
    slope, aspect = run(rule("Slope"), z), run(rule("Aspect"), z)
    hillshade = run(rule("Hillshade", Azimuth=315, Altitude=45), z)
    inner = (slice(1, -1), slice(1, -1))
    assert slope.valid[inner].all() and not slope.valid[0].any() and not slope.valid[:, -1].any()  # the ring
    np.testing.assert_allclose(slope.data[0][inner], 45.0, atol=1e-5)
    np.testing.assert_allclose(aspect.data[0][inner], 270.0, atol=1e-5)  # it faces west
    # lit from the north-west: cos i = (cos 45° − sin 45° · cos 135° · dx) / sqrt(2) = (0.7071 + 0.5) / 1.4142
    expected = round(255 * (math.cos(math.radians(45)) + 0.5) / math.sqrt(2))
    assert set(hillshade.data[0][inner].ravel()) == {expected} and hillshade.data.dtype == np.uint8
    percent = run(rule("Slope", SlopeType=2, ZFactor=0.5), z)
    np.testing.assert_allclose(percent.data[0][inner], 50.0, atol=1e-4)


def test_one_invalid_neighbour_takes_the_centre_two_make_nodata():
    z = np.array([[1.0, 2, 4, 7], [3, 5, 8, 9], [6, 9, 11, 15], [10, 12, 16, 20]])
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False  # neighbour a of (1, 1): replaced by the centre, 5
    slope = run(rule("Slope"), z, valid)
    # (1, 1): window [[5, 2, 4], [3, 5, 8], [6, 9, 11]] → Σx = (4 + 16 + 11) − (5 + 6 + 6) = 14,
    # Σy = (6 + 18 + 11) − (5 + 4 + 4) = 22; cell 10: dx = 14/80, dy = 22/80
    assert slope.valid[1, 1]
    assert slope.data[0, 1, 1] == pytest.approx(math.degrees(math.atan(math.hypot(14 / 80, 22 / 80))), abs=1e-5)
    valid[2, 2] = False  # a second invalid neighbour of (1, 1); it is the centre of (2, 2)
    slope = run(rule("Slope"), z, valid)
    assert not slope.valid[1, 1] and not slope.valid[2, 2]
    assert slope.data[0, 1, 1] == 0
    np.testing.assert_array_equal(slope.valid, ~np.isnan(reference_slope(z, valid, 10.0)))


@pytest.mark.parametrize("bad", [NAN, float("inf")])
def test_a_non_finite_value_counts_as_nodata(bad):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(6, 6)) * 10
    holed = z.copy()
    holed[2, 3] = bad
    valid = np.ones(z.shape, bool)
    valid[2, 3] = False
    expected = run(rule("Slope"), z, valid)
    got = run(rule("Slope"), holed)
    np.testing.assert_array_equal(got.valid, expected.valid)
    np.testing.assert_array_equal(got.data, expected.data)


def test_slope_matches_the_independent_reference_with_nodata_holes():
    rng = np.random.default_rng(7)
    z = np.cumsum(rng.normal(size=(24, 30)), axis=1) * 5 + np.arange(24)[:, None]
    valid = rng.random(z.shape) > 0.15
    expected = reference_slope(z, valid, 10.0)
    slope = run(rule("Slope"), z, valid)
    np.testing.assert_array_equal(slope.valid, ~np.isnan(expected))
    np.testing.assert_allclose(slope.data[0][slope.valid], expected[slope.valid], rtol=1e-6)
    assert (slope.data[0][~slope.valid] == 0).all()


def test_aspect_is_minus_one_where_flat_and_faces_downhill():
    flat = run(rule("Aspect"), np.full((3, 3), 7.0))
    assert flat.valid[1, 1] and flat.data[0, 1, 1] == -1
    north_low = np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])  # falls toward the north
    assert run(rule("Aspect"), north_low).data[0, 1, 1] == pytest.approx(0.0, abs=1e-6)
    assert run(rule("Aspect"), north_low[::-1]).data[0, 1, 1] == pytest.approx(180.0)
    assert run(rule("Aspect"), north_low.T).data[0, 1, 1] == pytest.approx(270.0)  # falls toward the west
    assert run(rule("Aspect"), north_low.T[:, ::-1]).data[0, 1, 1] == pytest.approx(90.0)


def test_scaled_slope_type_adds_a_power_of_the_cell_size_to_z():
    z = np.tile(np.arange(3) * 10.0, (3, 1))
    scaled = run(rule("Slope", SlopeType=3, ZFactor=1, PSPower=0.5, PSZFactor=0.1), z)
    rise = (1 + 10 ** 0.5 * 0.1) * 1.0  # (Z + cx^PSPower·PSZFactor) · Σx/(8 cx), Σx/(8 cx) = 1
    assert scaled.data[0, 1, 1] == pytest.approx(math.degrees(math.atan(rise)), abs=1e-5)


def test_multidirectional_hillshade_sums_six_weighted_lights_with_z_doubled():
    z = np.array([[0.0, 3, 9], [2, 4, 11], [5, 8, 14]])
    dx, dy = horn(z, 10, 10)
    dx, dy = 2 * dx, 2 * dy
    total = 0.0
    for azimuth, altitude, weight in ((315, 60, 3), (270, 60, 5), (225, 60, 3), (360, 60, 2), (180, 60, 1),
                                      (0, 90, 4)):
        zen, az = math.radians(90 - altitude), math.radians(450 - azimuth)
        shade = (math.cos(zen) + math.sin(zen) * math.sin(az) * dy - math.sin(zen) * math.cos(az) * dx)
        total += weight / 18 * max(0.0, 255 * shade / math.sqrt(1 + dx * dx + dy * dy))
    out = run(rule("Hillshade", HillshadeType=1), z)
    assert out.data[0, 1, 1] == round(total)


def test_hillshade_in_shadow_is_zero_not_negative():
    steep_away = np.array([[300.0, 300, 300], [150, 150, 150], [0, 0, 0]])  # faces south, light from the north
    out = run(rule("Hillshade", Azimuth=0, Altitude=10), steep_away)
    assert out.valid[1, 1] and out.data[0, 1, 1] == 0


@pytest.mark.parametrize("kind, expected", [(0, -200.0), (1, 200.0), (2, 0.0)])
def test_curvature_of_a_parabolic_trough(kind, expected):
    """z = x² across the columns (cell 1): D = ((d + f)/2 − e) = 1, E = F = 0, G = 2x, H = 0.  Standard −2·1·100
    (upwardly concave: negative); profile 2·D·G²/G²·100 (concave along the slope: positive); planform 0 (straight
    contours)."""
    x = np.arange(5.0) + 1
    z = np.tile(x * x, (3, 1))
    out = run(rule("Curvature", CurvatureType=kind), z, grid=grid_of(z.shape, cell=1.0))
    assert out.data[0, 1, 2] == pytest.approx(expected, abs=1e-4)


def test_curvature_of_a_spur_is_laterally_convex():
    """z = x − y² (a ridge running east, y counted north): contours bulge downhill, planform positive."""
    rows = np.arange(3.0)[:, None] - 1  # row 0 is north: y = -row
    z = np.arange(3.0)[None, :] - rows * rows
    out = run(rule("Curvature", CurvatureType=2), z, grid=grid_of(z.shape, cell=1.0))
    assert out.data[0, 1, 1] == pytest.approx(200.0, abs=1e-4)


def test_standard_curvature_is_planform_minus_profile():
    z = np.cumsum(np.random.default_rng(11).normal(size=(12, 12)), axis=1) * 3
    standard, profile, planform = (run(rule("Curvature", CurvatureType=k), z).data[0] for k in range(3))
    np.testing.assert_allclose(standard, planform - profile, atol=1e-3)


def test_curvature_profile_and_planform_are_zero_on_a_flat_window():
    out = run(rule("Curvature", CurvatureType=1), np.full((3, 3), 5.0))
    assert out.valid[1, 1] and out.data[0, 1, 1] == 0


def test_a_multiband_input_uses_band_zero():
    z = np.stack([np.tile(np.arange(3) * 10.0, (3, 1)), np.zeros((3, 3))])
    assert run(rule("Slope"), z).data.shape == (1, 3, 3)
    assert run(rule("Slope"), z).data[0, 1, 1] == pytest.approx(45.0)


def test_outputs_are_described():
    source = BandsInfo(("Elevation",), "float32", None)
    assert parse_rule(rule("Hillshade")).describe(source).dtype == "uint8"
    assert parse_rule(rule("ShadedRelief")).describe(source).names == ("Red", "Green", "Blue")
    slope = parse_rule(rule("Slope")).describe(source)
    assert slope.dtype == "float32" and (slope.stats[0].min, slope.stats[0].max) == (0, 90)
    assert parse_rule(rule("Slope", SlopeType=2)).describe(source).stats is None
    assert parse_rule(rule("Aspect")).buffer == 1 and not parse_rule(rule("Aspect")).bandwise


# ---- cell sizes --------------------------------------------------------------------------------------------------

def test_geographic_cells_are_metres_at_the_row_latitude():
    grid = OutputGrid(crs=CRS.from_epsg(4326), transform=Affine(0.001, 0, 10, 0, -0.001, 60.0015), width=4,
                      height=3)
    cx, cy = cell_sizes(grid, 3)
    assert cx[1] == pytest.approx(0.001 * 111320 * math.cos(math.radians(60.0)))
    assert cx[0] < cx[1] < cx[2] and cy.tolist() == [pytest.approx(110.574)] * 3
    z = np.tile(np.arange(3) * cx[1], (3, 1))  # 1 m per metre of easting at the middle row
    assert run(rule("Slope"), z, grid=grid).data[0, 1, 1] == pytest.approx(45.0, abs=1e-4)


def test_projected_cells_are_the_pixel_vector_lengths():
    grid = OutputGrid(crs=UTM, transform=Affine(3.0, 4.0, 0, 4.0, -3.0, 0), width=2, height=2)  # rotated, 5 m
    cx, cy = cell_sizes(grid, 2)
    assert cx.tolist() == [5.0, 5.0] and cy.tolist() == [5.0, 5.0]


# ---- ShadedRelief ----------------------------------------------------------------------------------------------

def test_shaded_relief_is_the_interpolated_colour_times_the_hillshade():
    z = np.array([[1.0, 1.5, 2.0], [1.5, 2.0, 2.5], [2.0, 2.5, 3.0]])
    colormap = [[1, 255, 0, 0], [2, 0, 255, 0], [3, 125, 25, 255]]
    shade = int(run(rule("Hillshade", Azimuth=215, Altitude=75, ZFactor=0.3), z).data[0, 1, 1])
    out = run(rule("ShadedRelief", Azimuth=215, Altitude=75, ZFactor=0.3, Colormap=colormap), z)
    assert out.data.shape == (3, 3, 3) and out.data.dtype == np.uint8
    assert out.data[:, 1, 1].tolist() == [0, shade, 0]  # z = 2: pure green, times shade/255
    low = run(rule("ShadedRelief", Colormap=[[5, 100, 200, 50], [6, 0, 0, 0]]), z)  # below the map: its first colour
    shade = int(run(rule("Hillshade"), z).data[0, 1, 1])
    assert low.data[:, 1, 1].tolist() == [math.floor(c * shade / 255 + 0.5) for c in (100, 200, 50)]
    between = run(rule("ShadedRelief", Colormap=[[1, 0, 0, 0], [3, 200, 100, 50]]), z)  # z = 2: half way
    assert between.data[:, 1, 1].tolist() == [math.floor(c * shade / 255 + 0.5) for c in (100, 50, 25)]


def test_shaded_relief_with_a_colour_ramp_spreads_it_over_the_input_statistics():
    from imgsvc.block import BandStats

    ramp = {"type": "algorithmic", "fromColor": [0, 0, 0, 255], "toColor": [200, 100, 50, 255],
            "algorithm": "esriCIELabAlgorithm"}
    z = np.full((3, 3), 300.0)  # half way through the statistics' range, flat: the shade is cos(45 degrees)
    stats = (BandStats(100.0, 500.0, 300.0, 50.0),)
    out = run(rule("ShadedRelief", ColorRamp=ramp), z, stats=stats)
    colour = run(rule("Colormap", ColorRamp=ramp), z, stats=stats).data[:, 1, 1]
    flat_shade = round(255 * math.cos(math.radians(45)))
    assert out.data[:, 1, 1].tolist() == [math.floor(int(c) * flat_shade / 255 + 0.5) for c in colour]
    assert 0 < colour[0] < 200  # a colour from the middle of the ramp, not an end
    with_both = run(rule("ShadedRelief", ColorRamp=ramp, Colormap=[[0, 255, 0, 0]], ColorSchemeType=0), z,
                    stats=stats)
    assert with_both.data[:, 1, 1].tolist() == [flat_shade, 0, 0]  # ColorSchemeType 0 picks the Colormap


def test_shaded_relief_without_a_colormap_ramps_over_the_input_statistics():
    from imgsvc.block import BandStats
    from imgsvc.functions.surface import ELEVATION_RAMP

    z = np.full((3, 3), 100.0)
    out = run(rule("ShadedRelief"), z, stats=(BandStats(100.0, 500.0, 300.0, 50.0),))
    flat_shade = round(255 * math.cos(math.radians(45)))
    assert out.data[:, 1, 1].tolist() == [math.floor(c * flat_shade / 255 + 0.5) for c in ELEVATION_RAMP[0][1:]]


# ---- gdaldem on the same DEM -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gdaldem(dem_path, tmp_path_factory):
    """gdaldem's output for the test DEM: (data, valid) of `gdaldem <mode> <args>`."""
    if shutil.which("gdaldem") is None:
        pytest.fail("gdaldem is missing: tests/clients/setup.sh (run by `make test`) installs Debian's gdal-bin")
    folder = tmp_path_factory.mktemp("gdaldem")

    def run_gdaldem(mode, *args):
        out = folder / f"{mode}{'_'.join(args)}.tif"
        subprocess.run(["gdaldem", mode, str(dem_path), str(out), "-q", *args], check=True)
        with rasterio.open(out) as tif:
            return tif.read(1), tif.read_masks(1) > 0
    return run_gdaldem


@pytest.fixture(scope="module")
def dem_array(dem_path):
    with rasterio.open(dem_path) as src:
        z = src.read(1)
        grid = OutputGrid(crs=CRS.from_wkt(src.crs.to_wkt()), transform=src.transform, width=src.width,
                          height=src.height)
    return z, z != -9999, grid


def compared(ours: Raster, theirs_valid):
    """Where both are valid: gdaldem leaves NoData where any window pixel is invalid (and on the array's edge)."""
    both = ours.valid & theirs_valid
    assert both.sum() > 0.9 * theirs_valid.sum()
    return both


@pytest.mark.parametrize("z_factor", [1, 2.5])
def test_hillshade_matches_gdaldem_within_one_level(gdaldem, dem_array, z_factor):
    z, valid, grid = dem_array
    ours = run(rule("Hillshade", ZFactor=z_factor), z, valid, grid)
    theirs, theirs_valid = gdaldem("hillshade", "-z", str(z_factor))
    both = compared(ours, theirs_valid)
    rescaled = 255 * (theirs.astype(np.float64) - 1) / 254  # gdaldem's scale is 1 + 254·cos i
    assert np.abs(ours.data[0][both] - rescaled[both]).max() <= 1.0


@pytest.mark.parametrize("z_factor", [1, 2.5])
def test_slope_matches_gdaldem_within_a_hundredth_of_a_degree(gdaldem, dem_array, z_factor):
    z, valid, grid = dem_array
    ours = run(rule("Slope", ZFactor=z_factor), z, valid, grid)
    theirs, theirs_valid = gdaldem("slope", "-s", str(1 / z_factor))  # gdaldem divides by its scale
    both = compared(ours, theirs_valid)
    assert np.abs(ours.data[0][both] - theirs[both]).max() <= 0.01


def test_aspect_matches_gdaldem_within_a_tenth_of_a_degree_away_from_flats(gdaldem, dem_array):
    """gdaldem works in float32, which turns the aspect of almost flat windows by more: compared where the slope
    is at least 0.5°."""
    z, valid, grid = dem_array
    ours = run(rule("Aspect"), z, valid, grid)
    slope = run(rule("Slope"), z, valid, grid).data[0]
    theirs, theirs_valid = gdaldem("aspect")
    both = compared(ours, theirs_valid) & (slope >= 0.5)
    turn = np.abs(ours.data[0][both] - theirs[both])
    assert np.minimum(turn, 360 - turn).max() <= 0.1


# ---- threads -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Hillshade", "Slope", "Aspect", "Curvature", "ShadedRelief"])
def test_kernels_give_the_same_bytes_from_four_threads_at_once(name):
    rng = np.random.default_rng(3)
    z = np.cumsum(rng.normal(size=(384, 384)), axis=0).astype(np.float32)
    valid = rng.random(z.shape) > 0.05
    expected = run(rule(name), z, valid)
    results = [None] * 4

    def work(index):
        results[index] = run(rule(name), z, valid)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert result.data.tobytes() == expected.data.tobytes()
        assert result.valid.tobytes() == expected.valid.tobytes()


# ---- end to end: the §6.3b rules, seams, bad arguments ----------------------------------------------------------

EXAMPLE_RULES = [
    '{"rasterFunction":"Hillshade","rasterFunctionArguments":{"Azimuth":315,"Altitude":45,"ZFactor":1},'
    '"variableName":"DEM"}',
    '{"rasterFunction":"Hillshade","rasterFunctionArguments":{"HillshadeType":1,"SlopeType":3,"ZFactor":1,'
    '"PSPower":0.664,"PSZFactor":0.024},"variableName":"Raster"}',
    '{"rasterFunction":"Slope","rasterFunctionArguments":{"ZFactor":0.3,"SlopeType":1}}',
    '{"rasterFunction":"Aspect"}',
    '{"rasterFunction":"ShadedRelief","rasterFunctionArguments":{"Azimuth":215,"Altitude":75,"ZFactor":0.3,'
    '"Colormap":[[1,255,0,0],[2,0,255,0],[3,125,25,255]]},"variableName":"Raster"}',
]


@pytest.mark.parametrize("example", EXAMPLE_RULES, ids=["hillshade", "multidirectional", "slope", "aspect",
                                                         "shaded-relief"])
def test_the_example_rules_export(core, example):
    data, valid = export(core, "whole", bbox=native_bbox(300, 620, 200, 500), size="320,300", renderingRule=example)
    name = json.loads(example)["rasterFunction"]
    assert valid.all()  # clear of the DEM's holes, the buffer gives even the output's edge pixels their neighbours
    assert data.dtype == (np.float32 if name in ("Slope", "Aspect") else np.uint8)
    assert data.shape[0] == (3 if name == "ShadedRelief" else 1)
    assert data.max() > data.min()


def test_the_export_is_the_function_of_the_exported_dem(core):
    source, valid = export(core, "whole", bbox=native_bbox(199, 521, 99, 401), size="322,302",
                           interpolation="RSP_NearestNeighbor")
    slope, slope_valid = export(core, "whole", bbox=native_bbox(200, 520), size="320,300",
                                renderingRule=EXAMPLE_RULES[2])
    grid = grid_of(source.shape[1:], cell=30.0)
    expected = run(rule("Slope", ZFactor=0.3), source[0], valid, grid)
    np.testing.assert_array_equal(slope_valid, expected.valid[1:-1, 1:-1])
    np.testing.assert_array_equal(slope[0], expected.data[0, 1:-1, 1:-1])


@pytest.mark.parametrize("service", ["whole", "halves"])
@pytest.mark.parametrize("interpolation", ["RSP_NearestNeighbor", "RSP_BilinearInterpolation"])
@pytest.mark.parametrize("example", [EXAMPLE_RULES[0], EXAMPLE_RULES[2]], ids=["hillshade", "slope"])
def test_two_halves_meet_without_a_seam(core, service, interpolation, example):
    query = {"renderingRule": example, "interpolation": interpolation}
    whole, whole_valid = export(core, service, bbox=native_bbox(200, 520), size="320,300", **query)
    left, left_valid = export(core, service, bbox=native_bbox(200, 360), size="160,300", **query)
    right, right_valid = export(core, service, bbox=native_bbox(360, 520), size="160,300", **query)
    np.testing.assert_array_equal(np.concatenate([left_valid, right_valid], axis=1), whole_valid)
    np.testing.assert_array_equal(np.concatenate([left, right], axis=2), whole)


@pytest.mark.parametrize("function, arguments, fragment, kind", [
    ("Hillshade", {"Azimuth": "west"}, "Azimuth", ErrorKind.INVALID_ARGUMENT),
    ("Hillshade", {"Altitude": 95}, "Altitude", ErrorKind.INVALID_ARGUMENT),
    ("Hillshade", {"HillshadeType": 2}, "HillshadeType", ErrorKind.INVALID_ARGUMENT),
    ("Hillshade", {"SlopeType": 4}, "SlopeType", ErrorKind.INVALID_ARGUMENT),
    ("Hillshade", {"RemoveEdgeEffect": "maybe"}, "RemoveEdgeEffect", ErrorKind.INVALID_ARGUMENT),
    ("Hillshade", {"Colormap": [[1, 2, 3, 4]]}, "Colormap", ErrorKind.UNIMPLEMENTED),
    ("Slope", {"ZFactor": [1]}, "ZFactor", ErrorKind.INVALID_ARGUMENT),
    ("Slope", {"Azimuth": 3}, "Azimuth", ErrorKind.INVALID_ARGUMENT),
    ("Aspect", {"ZFactor": 2}, "ZFactor", ErrorKind.INVALID_ARGUMENT),
    ("Curvature", {"CurvatureType": 3}, "CurvatureType", ErrorKind.INVALID_ARGUMENT),
    ("ShadedRelief", {"Colormap": [[1, 2, 3]]}, "Colormap", ErrorKind.INVALID_ARGUMENT),
    ("ShadedRelief", {"Colormap": [[1, 2, 3, 300]]}, "Colormap", ErrorKind.INVALID_ARGUMENT),
    ("ShadedRelief", {"Colormap": "red"}, "Colormap", ErrorKind.INVALID_ARGUMENT),
    ("ShadedRelief", {"ColorRamp": {"type": "algorithmic"}}, "ColorRamp", ErrorKind.INVALID_ARGUMENT),
    ("ShadedRelief", {"ColorSchemeType": 1}, "ColorSchemeType", ErrorKind.INVALID_ARGUMENT),
])
def test_bad_arguments_are_refused_by_name(core, function, arguments, fragment, kind):
    with pytest.raises(ImgsvcError) as info:
        export(core, "whole", renderingRule=json.dumps(rule(function, **arguments)))
    assert info.value.kind is kind and fragment in info.value.text and function in info.value.text
    assert info.value.parameter == "renderingRule"


def test_a_geographic_export_has_the_slopes_of_the_projected_one(core):
    """The DEM exported in EPSG:4326 at about its own 30 m (cells in degrees, converted to metres by latitude)
    slopes as in its own UTM grid: the medians agree within 1 %."""
    x0, y0 = rasters.ORIGIN
    to_geographic = Transformer.from_crs(32611, 4326, always_xy=True)
    (lon0, lon1), (lat0, lat1) = to_geographic.transform([x0 + 30 * 300, x0 + 30 * 600], [y0 - 30 * 500, y0 - 30 * 200])
    latitude = math.radians((lat0 + lat1) / 2)
    width = round((lon1 - lon0) * 111320 * math.cos(latitude) / 30)
    height = round((lat1 - lat0) * 110574 / 30)
    query = {"renderingRule": EXAMPLE_RULES[2], "interpolation": "RSP_NearestNeighbor"}
    projected, projected_valid = export(core, "whole", bbox=native_bbox(300, 600, 200, 500), size="300,300", **query)
    geographic, geographic_valid = export(core, "whole", bbox=f"{lon0},{lat0},{lon1},{lat1}", bboxSR="4326",
                                          imageSR="4326", size=f"{width},{height}", **query)
    assert geographic_valid.mean() > 0.9
    assert np.median(geographic[0][geographic_valid]) == pytest.approx(np.median(projected[0][projected_valid]),
                                                                       rel=0.01)
