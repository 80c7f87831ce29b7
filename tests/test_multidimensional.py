"""Multidimensional services: netCDF and Zarr variables × dimension values as items, chosen by
multidimensionalDefinition, sliceId and time, described by /multidimensionalInfo and /slices; every exported value
checked against the file as netCDF4 and zarr (not GDAL) read it."""
from __future__ import annotations

import datetime as dt
import json

import httpx
import netCDF4
import numpy as np
import pytest
import zarr
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from imgsvc import demo
from imgsvc.catalog import Catalog
from imgsvc.catalog.dimensions import dimension_field, dimension_value, time_value
from imgsvc.cli import main
from imgsvc.client import ImageClient
from imgsvc.errors import ImgsvcError
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters

# A 40x30 grid of 240 m cells in UTM 11N over a west-east ramp of elevation, one cell without data.
WIDTH, HEIGHT, CELL = 40, 30, 240.0
TRANSFORM = Affine(CELL, 0.0, 383000.0, 0.0, -CELL, 4050000.0)
BBOX = f"{TRANSFORM.c},{TRANSFORM.f - CELL * HEIGHT},{TRANSFORM.c + CELL * WIDTH},{TRANSFORM.f}"
DAYS = demo.climate_month_days(2024)


def month_ms(month: int, year: int = 2024) -> int:
    """Epoch ms of the cube's time value in ``month`` (1-12): the 15th, 00:00 UTC."""
    return int(dt.datetime(year, month, 15, tzinfo=dt.timezone.utc).timestamp() * 1000)


def elevation_ramp() -> np.ndarray:
    elevation = np.linspace(1000.0, 4000.0, WIDTH)[np.newaxis].repeat(HEIGHT, 0) + np.arange(HEIGHT)[:, None] * 3
    elevation[3, 4] = np.nan
    return elevation


def write_zarr_cube(path) -> np.ndarray:
    """A Zarr (v2, xarray's dimension names, GDAL's _CRS) store with ``salinity`` along ``time`` and ``wavelength``;
    returns its values (time, wavelength, y, x)."""
    values = (np.arange(3 * 2 * HEIGHT * WIDTH, dtype=np.float32).reshape(3, 2, HEIGHT, WIDTH) / 7).round(3)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    axes = {"time": (np.array([0.0, 31.0, 60.0]), {"units": "days since 2020-01-01", "calendar": "standard"}),
            "wavelength": (np.array([450.0, 650.0]), {"units": "nm"}),
            "y": (TRANSFORM.f + TRANSFORM.e * (np.arange(HEIGHT) + 0.5), {"units": "m"}),
            "x": (TRANSFORM.c + TRANSFORM.a * (np.arange(WIDTH) + 0.5), {"units": "m"})}
    for name, (coords, attrs) in axes.items():
        array = root.create_array(name, shape=coords.shape, dtype="f8")
        array[:] = coords
        array.attrs.update({"_ARRAY_DIMENSIONS": [name], **attrs})
    cube = root.create_array("salinity", shape=values.shape, dtype="f4", chunks=(1, 1, HEIGHT, WIDTH))
    cube[:] = values
    cube.attrs.update({"_ARRAY_DIMENSIONS": ["time", "wavelength", "y", "x"], "units": "psu",
                       "_CRS": {"wkt": CRS.from_epsg(32611).to_wkt()}})
    return values


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cubes")
    demo.write_climate_cube(folder / "climate_2024.nc", elevation_ramp(), TRANSFORM, year=2024)
    demo.write_climate_cube(folder / "climate_2025.nc", elevation_ramp(), TRANSFORM, year=2025)
    return folder


@pytest.fixture(scope="module")
def catalog_file(folder):
    db = str(folder / "catalog.sqlite")
    assert main(["add", "climate", str(folder / "climate_2024.nc"), "--catalog", db]) == 0
    return db


@pytest.fixture(scope="module")
def core(catalog_file):
    return ImageService(Catalog(catalog_file, readonly=True))


def netcdf_values(path, variable: str, *index) -> np.ma.MaskedArray:
    with netCDF4.Dataset(path) as cube:
        return cube[variable][index]


def export(core, service="climate", **query):
    query = {"format": "tiff", "bbox": BBOX, "size": f"{WIDTH},{HEIGHT}", "interpolation": "RSP_NearestNeighbor",
             **query}
    result = core.export_image(export_params(export_request(service, Params(query.items()))))
    return tiff_values(result.encoded.data)


def assert_same(image: np.ma.MaskedArray, expected: np.ma.MaskedArray) -> None:
    assert (image.mask == np.ma.getmaskarray(expected)).all()
    np.testing.assert_array_equal(image.compressed(), expected.compressed())


def definition(*entries) -> str:
    return json.dumps({"multidimensionalDefinition": [
        {"variableName": v, "dimensionName": d, "values": values} for v, d, values in entries]})


# --- the files' dimensions as item fields ---


@pytest.mark.parametrize("name, attributes, field", [
    ("time", {}, "StdTime"), ("t", {"axis": "T"}, "StdTime"), ("valid", {"units": "hours since 2000-01-01"}, "StdTime"),
    ("depth", {"positive": "down"}, "StdZ"), ("lev", {}, "StdZ"), ("height", {"axis": "Z"}, "StdZ"),
    ("wavelength", {"units": "nm"}, "wavelength"), ("band-x", {}, "band_x"), ("2m", {}, "D_2m"),
])
def test_dimensions_are_named_as_arcgis_names_them(name, attributes, field):
    assert dimension_field(name, attributes) == field


@pytest.mark.parametrize("text, units, calendar, expected", [
    ("45", "days since 2024-01-01", "standard", month_ms(2)),
    ("1.5", "hours since 1970-01-01 00:00:00", "", 5_400_000),
    ("60", "minutes since 2020-06-01T12:00:00Z", "proleptic_gregorian", 1591016400000),
    ("0", "seconds since 2020-01-01 00:00:00 +2", "gregorian", 1577829600000),
    ("2", "weeks since 1970-1-1", "", 1_209_600_000),
    ("2021-03-04T05:06:07Z", "", "", 1614834367000),
])
def test_cf_time_values_become_epoch_milliseconds(text, units, calendar, expected):
    assert time_value(text, {"units": units, "calendar": calendar}, "f.nc variable v") == expected


@pytest.mark.parametrize("units, calendar, fragment", [
    ("months since 2000-01-01", "", "not CF time units"), ("days since 2000-01-01", "noleap", "calendar 'noleap'"),
    ("days since yesterday", "", "time reference 'yesterday'"), ("days", "", "not CF time units"),
])
def test_time_units_imgsvc_cannot_place_are_refused_naming_the_file(units, calendar, fragment):
    with pytest.raises(ImgsvcError, match=fragment) as caught:
        time_value("3", {"units": units, "calendar": calendar}, "f.nc variable v")
    assert "f.nc variable v" in caught.value.text


def test_a_depth_counting_down_is_a_negative_stdz():
    assert dimension_value("5", "StdZ", {"positive": "down"}, "") == -5.0
    assert dimension_value("0", "StdZ", {"standard_name": "depth"}, "") == 0.0
    assert dimension_value("5", "StdZ", {"positive": "up"}, "") == 5.0


# --- registration ---


def test_each_slice_of_each_variable_is_an_item(catalog_file):
    service = Catalog(catalog_file, readonly=True).service("climate")
    assert service.settings.has_multidimensions
    assert [v["name"] for v in service.settings.variables] == ["air_temperature", "soil_temperature"]
    assert [d["name"] for d in service.settings.variables[1]["dimensions"]] == ["StdTime", "StdZ"]
    assert service.settings.start_time_field == "StdTime"
    assert {f.name for f in service.fields} >= {"Variable", "Dimensions", "StdTime", "StdZ"}
    assert len(Catalog(catalog_file, readonly=True).items("climate")) == 12 + 12 * len(demo.CLIMATE_DEPTHS_M)


def test_variable_chooses_what_to_serve_and_bad_choices_are_refused(folder, tmp_path, capsys):
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "soil", str(folder / "climate_2024.nc"), "--variable", "soil_temperature",
                 "--catalog", db]) == 0
    service = Catalog(db, readonly=True).service("soil")
    assert [v["name"] for v in service.settings.variables] == ["soil_temperature"]
    assert len(Catalog(db, readonly=True).items("soil")) == 48
    tif = rasters.write_raster(tmp_path / "plain.tif", np.ones((1, 10, 10), np.float32))
    for args, fragment in (
            ([str(folder / "climate_2024.nc"), "--variable", "rain"], "--variable 'rain' is not a variable"),
            ([str(folder / "climate_2024.nc"), str(tif)], "plain.tif is not a netCDF or Zarr file"),
            ([str(tif), "--variable", "x"], "--variable applies to netCDF and Zarr files only"),
            ([str(tif), "--append"], "--append: the service is multidimensional")):
        name = "soil" if "--append" in args else "bad"
        assert main(["add", name, *args, "--catalog", db]) == 2
        assert fragment in capsys.readouterr().err
    assert Catalog(db).service_names() == ["soil"] and len(Catalog(db).items("soil")) == 48


def test_append_adds_another_years_slices(folder, tmp_path):
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "climate", str(folder / "climate_2024.nc"), "--catalog", db]) == 0
    assert main(["add", "climate", str(folder / "climate_2025.nc"), "--append", "--catalog", db]) == 0
    core = ImageService(Catalog(db, readonly=True))
    time = next(d for v in core.multidimensional_info("climate") for d in v["dimensions"] if d["name"] == "StdTime")
    assert time["values"] == [month_ms(m, y) for y in (2024, 2025) for m in range(1, 13)]
    assert time["hasRegularIntervals"] and (time["interval"], time["intervalUnit"]) == (1, "Months")
    july_2025 = export(core, time=str(month_ms(7, 2025)))
    assert_same(july_2025, netcdf_values(folder / "climate_2025.nc", "air_temperature", 6))


# --- exports ---


def test_without_a_rule_the_default_variables_first_slice_is_served(core, folder):
    assert_same(export(core), netcdf_values(folder / "climate_2024.nc", "air_temperature", 0))


def test_a_definition_picks_a_variable_at_its_dimension_values(core, folder):
    rule = definition(("soil_temperature", "StdTime", [month_ms(7)]), ("soil_temperature", "StdZ", [-1.0]))
    assert_same(export(core, mosaicRule=rule), netcdf_values(folder / "climate_2024.nc", "soil_temperature", 6, 2))


def test_a_range_with_the_mean_operator_averages_its_slices(core, folder):
    rule = json.loads(definition(("air_temperature", "StdTime", [[month_ms(1), month_ms(3)]])))
    rule["mosaicOperation"] = "MT_MEAN"
    image = export(core, mosaicRule=json.dumps(rule))
    expected = netcdf_values(folder / "climate_2024.nc", "air_temperature", slice(0, 3)).mean(axis=0)
    assert (image.mask == expected.mask).all()
    np.testing.assert_allclose(image.compressed(), expected.compressed(), atol=1e-6)


def test_time_on_the_time_aware_service_selects_the_slice(core, folder):
    assert_same(export(core, time=str(month_ms(4))), netcdf_values(folder / "climate_2024.nc", "air_temperature", 3))
    # An extent holding May and June: First by object id serves May.
    assert_same(export(core, time=f"{month_ms(5) - 1},{month_ms(6) + 1}"),
                netcdf_values(folder / "climate_2024.nc", "air_temperature", 4))


def test_slice_ids_index_the_slices_and_export_them(core, folder):
    slices = core.slices("climate")
    assert [s.slice_id for s in slices] == list(range(12 + 48))
    assert slices[0].variable == "air_temperature" and slices[0].values == (("StdTime", month_ms(1)),)
    # Soil slices by time, then by depth ascending (StdZ -2 first).
    soil = [s for s in slices if s.variable == "soil_temperature"]
    assert soil[0].values == (("StdTime", month_ms(1)), ("StdZ", -2.0))
    chosen = core.slices("climate", export_params(export_request("climate", Params({"mosaicRule": definition(
        ("soil_temperature", "StdTime", [month_ms(9)]), ("soil_temperature", "StdZ", [-0.1]))}.items())))
        .mosaic_rule.multidimensional_definition)
    assert len(chosen) == 1 and chosen[0].values == (("StdTime", month_ms(9)), ("StdZ", -0.1))
    assert_same(export(core, sliceId=str(chosen[0].slice_id)),
                netcdf_values(folder / "climate_2024.nc", "soil_temperature", 8, 0))
    # The slice a sliceId names wins over a definition of other slices.
    other = definition(("air_temperature", "StdTime", [month_ms(1)]))
    assert_same(export(core, sliceId=str(chosen[0].slice_id), mosaicRule=other),
                netcdf_values(folder / "climate_2024.nc", "soil_temperature", 8, 0))


@pytest.mark.parametrize("query, parameter, fragment", [
    ({"sliceId": "60"}, "sliceId", "60"),
    ({"sliceId": "-1"}, "sliceId", "-1"),
    ({"mosaicRule": definition(("rain", "StdTime", [0]))}, "mosaicRule", "'rain'"),
    ({"mosaicRule": definition(("soil_temperature", "Wavelength", [1]))}, "mosaicRule", "Wavelength"),
    ({"mosaicRule": definition(("soil_temperature", "StdTime", ["not a date"]))}, "mosaicRule", "not a date"),
])
def test_bad_slices_are_refused_naming_the_parameter(core, query, parameter, fragment):
    with pytest.raises(ImgsvcError) as caught:
        export(core, **query)
    assert caught.value.kind.name == "INVALID_ARGUMENT" and fragment in caught.value.text
    assert parameter in caught.value.text or caught.value.parameter == parameter


def test_a_definition_selecting_nothing_answers_an_empty_image(core):
    image = export(core, mosaicRule=definition(("air_temperature", "StdTime", [month_ms(1) + 1])))
    assert image.mask.all()


# --- Zarr ---


def test_a_zarr_store_is_served_slice_by_slice(tmp_path):
    values = write_zarr_cube(tmp_path / "ocean.zarr")
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "ocean", str(tmp_path / "ocean.zarr"), "--catalog", db]) == 0
    core = ImageService(Catalog(db, readonly=True))
    [variable] = core.multidimensional_info("ocean")
    assert (variable["name"], variable["unit"]) == ("salinity", "psu")
    dims = {d["name"]: d for d in variable["dimensions"]}
    assert dims["StdTime"]["values"] == [1577836800000, 1580515200000, 1583020800000]
    assert dims["wavelength"]["values"] == [450.0, 650.0] and dims["wavelength"]["unit"] == "nm"
    rule = definition(("salinity", "StdTime", [1580515200000]), ("salinity", "wavelength", [650]))
    image = export(core, "ocean", mosaicRule=rule)
    np.testing.assert_array_equal(image.filled(np.nan), values[1, 1])


# --- through the doors ---


def month_of(chosen) -> int:
    """The 0-based month index of a 2024 slice."""
    return next(m for m in range(12) if dict(chosen.values)["StdTime"] == month_ms(m + 1))


def depth_of(chosen) -> int:
    return list(demo.CLIMATE_DEPTHS_M).index(-dict(chosen.values)["StdZ"])


def tiff_values(data: bytes) -> np.ma.MaskedArray:
    with MemoryFile(data) as mem, mem.open() as tif:
        return np.ma.masked_array(tif.read(1), tif.read_masks(1) == 0)


def test_the_gateway_and_grpc_describe_and_serve_the_cube(core, catalog_file, folder, tmp_path):
    from imgsvc.v1 import image_service_pb2 as pb
    from imgsvc.v1 import image_service_pb2_grpc as pb_grpc
    import grpc

    from tests.conftest import _Serve

    core_slices = core.slices("climate")
    serve = _Serve(catalog_file, tmp_path)
    with serve as url:
        base = f"{url}/arcgis/rest/services/climate/ImageServer"
        root = httpx.get(base, params={"f": "json"}).json()
        assert root["hasMultidimensions"] is True and root["defaultVariable"] == "air_temperature"
        assert root["timeInfo"]["startTimeField"] == "StdTime"
        assert root["timeInfo"]["timeExtent"] == [month_ms(1), month_ms(12)]
        info = httpx.get(f"{base}/multidimensionalInfo", params={"f": "json"}).json()["multidimensionalInfo"]
        soil = info["variables"][1]
        assert (soil["name"], soil["unit"], soil["description"]) == (
            "soil_temperature", "degC", "Monthly mean soil temperature")
        depth = soil["dimensions"][1]
        assert (depth["name"], depth["unit"], depth["values"]) == ("StdZ", "m", [-2.0, -1.0, -0.5, -0.1])
        assert depth["extent"] == [-2.0, -0.1] and depth["hasRegularIntervals"] is False
        every_soil = netcdf_values(folder / "climate_2024.nc", "soil_temperature", slice(None))
        assert soil["statistics"][0]["min"] == pytest.approx(float(every_soil.min()))
        assert soil["statistics"][0]["max"] == pytest.approx(float(every_soil.max()))
        never = httpx.get(f"{base}/multidimensionalInfo",
                          params={"returnDimensionValues": "never", "f": "json"}).json()
        assert "values" not in never["multidimensionalInfo"]["variables"][0]["dimensions"][0]
        slices = httpx.get(f"{base}/slices", params={"f": "json", "multidimensionalDefinition": json.dumps(
            [{"variableName": "soil_temperature", "dimensionName": "StdZ", "values": [-0.5]}])}).json()["slices"]
        assert len(slices) == 12 and slices[6]["multidimensionalDefinition"] == [
            {"variableName": "soil_temperature", "dimensionName": "StdTime", "values": [month_ms(7)], "isSlice": True},
            {"variableName": "soil_temperature", "dimensionName": "StdZ", "values": [-0.5], "isSlice": True}]
        stats = httpx.get(f"{base}/statistics", params={"variable": "soil_temperature", "f": "json"}).json()
        assert stats["statistics"][0]["count"] == every_soil.count()
        assert stats["statistics"][0]["mean"] == pytest.approx(float(every_soil.mean(dtype=np.float64)), rel=1e-6)
        legend = httpx.get(f"{base}/legend", params={"variable": "soil_temperature", "f": "json"}).json()
        assert legend["layers"][0]["layerName"] == "climate: soil_temperature"
        count = httpx.get(f"{base}/query", params={
            "multidimensionalDefinition": definition(("air_temperature", "StdTime", [[month_ms(1), month_ms(3)]]))[
                len('{"multidimensionalDefinition": '):-1],
            "returnCountOnly": "true", "f": "json"}).json()
        assert count == {"count": 3}
        png = httpx.get(f"{base}/exportImage", params={"bbox": BBOX, "size": "40,30", "sliceId": str(slices[6][
            "sliceId"]), "format": "png", "f": "image"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        error = httpx.get(f"{base}/exportImage", params={"bbox": BBOX, "sliceId": "999", "f": "json"}).json()
        assert error["error"]["code"] == 400 and "sliceId" in error["error"]["details"][0]

        # Every slice, through both doors, equals the array written to the file.
        with ImageClient(serve.grpc_target) as client:
            for chosen in core_slices:
                index = (month_of(chosen), *([] if chosen.variable == "air_temperature" else [depth_of(chosen)]))
                expected = netcdf_values(folder / "climate_2024.nc", chosen.variable, *index)
                query = {"bbox": BBOX, "size": f"{WIDTH},{HEIGHT}", "format": "tiff", "sliceId": chosen.slice_id,
                         "interpolation": "RSP_NearestNeighbor"}
                rest = httpx.get(f"{base}/exportImage", params={**query, "f": "image"})
                assert_same(tiff_values(rest.content), expected)
                assert_same(tiff_values(client.export_image("climate", **query).data), expected)

        channel = grpc.insecure_channel(serve.grpc_target)
        stub = pb_grpc.ImageServiceStub(channel)
        info = stub.GetMultidimensionalInfo(pb.MultidimensionalInfoRequest(service="climate"))
        assert [v.name for v in info.variables] == ["air_temperature", "soil_temperature"]
        assert list(info.variables[1].dimensions[1].values) == [-2.0, -1.0, -0.5, -0.1]
        grpc_slices = stub.GetSlices(pb.SlicesRequest(service="climate"))
        assert len(grpc_slices.slices) == 60 and grpc_slices.slices[12].slice_id == 12
        first_soil = grpc_slices.slices[12].multidimensional_definition
        assert [(f.variable_name, f.dimension_name, list(f.values)) for f in first_soil] == [
            ("soil_temperature", "StdTime", [month_ms(1)]), ("soil_temperature", "StdZ", [-2.0])]
        channel.close()


def test_a_plain_service_refuses_the_multidimensional_requests(http, stub):
    from imgsvc.v1 import image_service_pb2 as pb
    import grpc

    base = "/arcgis/rest/services/dem/ImageServer"
    assert http.get(base, params={"f": "json"}).json()["hasMultidimensions"] is False
    for resource, params in (("multidimensionalInfo", {}), ("slices", {}), ("exportImage", {"sliceId": "0"}),
                             ("statistics", {"variable": "x"})):
        error = http.get(f"{base}/{resource}", params={**params, "f": "json"}).json()["error"]
        assert error["code"] == 400 and "not multidimensional" in error["details"][0], (resource, error)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetSlices(pb.SlicesRequest(service="dem"))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED and "not multidimensional" in caught.value.details()
