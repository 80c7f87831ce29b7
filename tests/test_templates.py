"""Raster function templates (registered from files, listed in rasterFunctionInfos, callable by name with argument
overrides, a default applied when a request has none) and the resources that honour a rendering rule."""
from __future__ import annotations

import json

import numpy as np
import pytest
from rasterio.io import MemoryFile

from imgsvc.catalog import Catalog
from imgsvc.cli import main
from imgsvc.grpc import convert
from imgsvc.grpc.requests import export_params
from imgsvc.identify import identify_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters

MEAN_3X3 = {"rasterFunction": "Statistics", "rasterFunctionArguments": {"Type": 3, "KernelColumns": 3,
                                                                        "KernelRows": 3}}
BYTES = {"rasterFunction": "None", "outputPixelType": "U8"}


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory, dem_path):
    folder = tmp_path_factory.mktemp("templates")
    (folder / "rules").mkdir()
    (folder / "rules" / "a_smooth.json").write_text(json.dumps({"name": "Smooth", "description": "3x3 mean",
                                                                **MEAN_3X3}))
    (folder / "rules" / "b_bytes.json").write_text(json.dumps({"name": "Bytes", "description": "as U8", **BYTES}))
    db = str(folder / "catalog.sqlite")
    assert main(["add", "t", str(dem_path), "--template", str(folder / "rules"), "--default-template", "Smooth",
                 "--catalog", db]) == 0
    assert main(["add", "plain", str(dem_path), "--catalog", db]) == 0
    return db


@pytest.fixture(scope="module")
def core(catalog_file):
    return ImageService(Catalog(catalog_file, readonly=True))


def export(core, service, **query):
    query = {"format": "tiff", "bbox": bbox(), "size": "200,150", **query}
    result = core.export_image(export_params(export_request(service, Params(query.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        return tif.read(), tif.read_masks(1) > 0


def bbox(col0=150, row0=100, cols=200, rows=150) -> str:
    x0, y0 = rasters.ORIGIN
    return f"{x0 + 30 * col0},{y0 - 30 * (row0 + rows)},{x0 + 30 * (col0 + cols)},{y0 - 30 * row0}"


def test_templates_are_listed_the_default_first(core):
    names = [t.name for t in core.raster_function_templates("t")]
    assert names == ["Smooth", "None", "Bytes"]
    assert [t.name for t in core.raster_function_templates("plain")] == ["None"]
    descriptions = {t.name: t.description for t in core.raster_function_templates("t")}
    assert descriptions["Smooth"] == "3x3 mean"


def test_the_default_template_applies_when_a_request_has_no_rule(core):
    default, _ = export(core, "t")
    explicit, _ = export(core, "plain", renderingRule=json.dumps(MEAN_3X3))
    np.testing.assert_array_equal(default, explicit)
    raw, _ = export(core, "t", renderingRule='{"rasterFunction":"None"}')
    np.testing.assert_array_equal(raw, export(core, "plain")[0])
    assert default.dtype == np.float32 and raw.dtype == np.float32 and not np.array_equal(default, raw)


def test_a_template_is_called_by_name_with_argument_overrides(core):
    by_name, _ = export(core, "t", renderingRule='{"rasterFunction":"smooth","rasterFunctionArguments":'
                                                 '{"kernelcolumns":5,"KernelRows":5}}')
    rule = {**MEAN_3X3, "rasterFunctionArguments": {"Type": 3, "KernelColumns": 5, "KernelRows": 5}}
    explicit, _ = export(core, "plain", renderingRule=json.dumps(rule))
    np.testing.assert_array_equal(by_name, explicit)
    as_bytes, _ = export(core, "t", renderingRule='{"rasterFunction":"Bytes"}')
    assert as_bytes.dtype == np.uint8
    # A template is the service's own: another service does not know it.
    with pytest.raises(Exception, match="Bytes"):
        export(core, "plain", renderingRule='{"rasterFunction":"Bytes"}')


def test_the_root_describes_what_the_rule_outputs(core):
    info = convert.service_info(core.service("plain", BYTES))
    assert convert.pb.PixelType.Name(info.pixel_type) == "PIXEL_TYPE_U8" and list(info.no_data_values) == []
    plain = convert.service_info(core.service("plain"))
    assert convert.pb.PixelType.Name(plain.pixel_type) == "PIXEL_TYPE_F32" and list(plain.no_data_values) == [-9999]
    smooth = convert.service_info(core.service("t", {"rasterFunction": "Smooth"}))
    assert convert.pb.PixelType.Name(smooth.pixel_type) == "PIXEL_TYPE_F32"


def test_identify_answers_with_the_rules_output_at_the_point(core):
    x0, y0 = rasters.ORIGIN
    col, row = 230, 170
    x, y = x0 + 30 * col + 12, y0 - 30 * row - 7
    plain = core.identify(identify_params("plain", (x, y)))
    mean = core.identify(identify_params("plain", (x, y), rendering_rule=MEAN_3X3))
    window, valid = export(core, "plain", bbox=bbox(col - 1, row - 1, 3, 3), size="3,3",
                           interpolation="RSP_NearestNeighbor")
    assert plain.values == (float(window[0, 1, 1]),)
    assert mean.values[0] == pytest.approx(window[0][valid].mean(), rel=1e-6) and mean.dtype == "float32"
    # The service's default template is what identify answers with, too.
    default = core.identify(identify_params("t", (x, y)))
    assert default.values == mean.values


def test_statistics_of_a_rule_are_those_of_its_rendered_output(core):
    stats = core.distributions("plain", BYTES)
    whole, valid = export(core, "plain", bbox=None, size="720,640", renderingRule=json.dumps(BYTES))
    values = whole[0][valid]
    assert stats[0].count == values.size and (stats[0].min, stats[0].max) == (values.min(), values.max())
    assert stats[0].mean == pytest.approx(values.mean()) and stats[0].hist_min == -0.5
    assert sum(stats[0].counts) == values.size


def test_template_files_are_validated_naming_the_file(tmp_path, catalog_file):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "Bad", "rasterFunction": "Statistics",
                               "rasterFunctionArguments": {"Type": 42}}))
    assert main(["template", "plain", str(bad), "--catalog", catalog_file]) == 2
    nameless = tmp_path / "nameless.json"
    nameless.write_text(json.dumps(BYTES))
    assert main(["template", "plain", str(nameless), "--catalog", catalog_file]) == 2
    assert [t.name for t in Catalog(catalog_file).service("plain").templates] == []


def test_templates_are_added_made_default_and_removed(tmp_path, dem_path):
    db = str(tmp_path / "c.sqlite")
    rule = tmp_path / "bytes.json"
    rule.write_text(json.dumps({"name": "Bytes", "description": "as U8", **BYTES}))
    assert main(["add", "s", str(dem_path), "--catalog", db]) == 0
    assert main(["template", "s", str(rule), "--catalog", db]) == 0
    assert Catalog(db).service("s").default_template is None
    assert main(["template", "s", "--default-template", "Bytes", "--catalog", db]) == 0
    assert Catalog(db).service("s").default_template.name == "Bytes"
    assert main(["template", "s", "--remove", "Bytes", "--catalog", db]) == 0
    assert Catalog(db).service("s").templates == ()
    assert main(["template", "s", "--remove", "Bytes", "--catalog", db]) == 2
