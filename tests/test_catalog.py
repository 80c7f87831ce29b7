"""The SQLite catalog and the CLI that writes it."""
import sqlite3

import pytest

from imgsvc.catalog import Catalog
from imgsvc.cli import main
from imgsvc.errors import ErrorKind, ImgsvcError


def test_add_list_remove_through_the_cli(tmp_path, dem_path, capsys):
    db = str(tmp_path / "c.sqlite")
    assert main(["--catalog", db, "add", "dem1", str(dem_path), "--data-type", "Elevation"]) == 0
    assert main(["--catalog", db, "list"]) == 0
    assert "dem1\t720x640x1 float32" in capsys.readouterr().out
    record = Catalog(db).service("dem1")
    item = record.primary
    assert item.nodata == -9999.0 and item.mask_kind == "nodata"
    assert item.overview_shapes == ((360, 320), (180, 160), (90, 80))
    assert 500 < item.stats[0].min < item.stats[0].mean < item.stats[0].max < 2600  # nodata excluded
    assert record.settings.service_data_type == "esriImageServiceDataTypeElevation"
    assert main(["--catalog", db, "add", "dem1", str(dem_path)]) == 2  # exists already
    assert main(["--catalog", db, "remove", "dem1"]) == 0
    assert Catalog(db).service_names() == []
    assert main(["--catalog", db, "remove", "dem1"]) == 2


def test_band_names_and_stats_per_band(catalog_path):
    item = Catalog(catalog_path).service("ms").primary
    assert item.band_names == ("Blue", "Green", "Red", "NearInfrared")
    assert len(item.stats) == 4 and all(s.min > 0 for s in item.stats)


def test_unknown_service_is_not_found(catalog_path):
    with pytest.raises(ImgsvcError) as info:
        Catalog(catalog_path, readonly=True).service("nope")
    assert info.value.kind is ErrorKind.NOT_FOUND


def test_the_service_side_cannot_write(catalog_path):
    ro = Catalog(catalog_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        ro._connect().execute("DELETE FROM services")
    assert "dem" in ro.service_names()


def test_service_names_are_restricted(tmp_path, dem_path):
    with pytest.raises(ImgsvcError):
        main_catalog = Catalog(tmp_path / "x.sqlite")
        from imgsvc.read import describe_raster

        main_catalog.add_service("../etc", [describe_raster(dem_path)], None)


def test_non_raster_is_refused(tmp_path):
    bogus = tmp_path / "bogus.tif"
    bogus.write_text("not a tiff")
    assert main(["--catalog", str(tmp_path / "c.sqlite"), "add", "bad", str(bogus)]) == 2
