"""The catalog (in a SQLite file and in PostgreSQL) and the CLI that writes it."""
import sqlite3

import pytest

from imgsvc.catalog import Catalog
from imgsvc.cli import main
from imgsvc.errors import ErrorKind, ImgsvcError
from tests.conftest import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_list_remove_through_the_cli(new_catalog, backend, dem_path, capsys):
    db = new_catalog(backend)
    assert main(["--catalog", db, "add", "dem1", str(dem_path), "--data-type", "Elevation"]) == 0
    assert main(["--catalog", db, "list"]) == 0
    assert "dem1\t720x640x1 float32" in capsys.readouterr().out
    record = Catalog(db).service("dem1")
    (item,) = Catalog(db).items("dem1")
    assert item.nodata == -9999.0 and item.mask_kind == "nodata"
    assert item.overview_shapes == ((360, 320), (180, 160), (90, 80))
    assert 500 < item.stats[0].min < item.stats[0].mean < item.stats[0].max < 2600  # nodata excluded
    assert record.settings.service_data_type == "esriImageServiceDataTypeElevation"
    assert main(["--catalog", db, "add", "dem1", str(dem_path)]) == 2  # exists already
    assert main(["--catalog", db, "remove", "dem1"]) == 0
    assert Catalog(db).service_names() == []
    assert main(["--catalog", db, "remove", "dem1"]) == 2


def test_band_names_and_stats_per_band(catalog_path):
    (item,) = Catalog(catalog_path).items("ms")
    assert item.band_names == ("Blue", "Green", "Red", "NearInfrared")
    assert len(item.stats) == 4 and all(s.min > 0 for s in item.stats)


def test_unknown_service_is_not_found(catalog_path):
    with pytest.raises(ImgsvcError) as info:
        Catalog(catalog_path, readonly=True).service("nope")
    assert info.value.kind is ErrorKind.NOT_FOUND


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_service_side_cannot_write(new_catalog, backend, dem_path):
    db = new_catalog(backend)
    assert main(["--catalog", db, "add", "dem", str(dem_path)]) == 0
    ro = Catalog(db, readonly=True)
    with pytest.raises(Exception, match="read-?only"):  # the database refuses: the file's mode, the session's
        ro.backend.execute("DELETE FROM services")
    assert "dem" in ro.service_names()


@pytest.mark.parametrize("backend", BACKENDS)
def test_service_names_are_restricted(new_catalog, backend, dem_path):
    with pytest.raises(ImgsvcError):
        main_catalog = Catalog(new_catalog(backend))
        from imgsvc.read import describe_raster

        main_catalog.add_service("../etc", [describe_raster(dem_path)], None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_raster_is_refused(tmp_path, new_catalog, backend):
    bogus = tmp_path / "bogus.tif"
    bogus.write_text("not a tiff")
    assert main(["--catalog", new_catalog(backend), "add", "bad", str(bogus)]) == 2


def test_catalog_option_is_taken_before_or_after_the_command(tmp_path, dem_path, capsys):
    before, after = str(tmp_path / "before.sqlite"), str(tmp_path / "after.sqlite")
    assert main(["--catalog", before, "add", "dem1", str(dem_path)]) == 0
    assert main(["add", "dem2", str(dem_path), "--catalog", after]) == 0
    assert Catalog(before).service_names() == ["dem1"] and Catalog(after).service_names() == ["dem2"]
    capsys.readouterr()
    assert main(["list", "--catalog", after]) == 0
    assert capsys.readouterr().out.startswith("dem2\t")
    # After the command it wins over the one before it (the one closest to the command, as a user reads it).
    assert main(["--catalog", before, "list", "--catalog", after]) == 0
    assert capsys.readouterr().out.startswith("dem2\t")


def test_a_catalog_of_an_older_schema_is_migrated_before_it_is_served(tmp_path, dem_path):
    db = tmp_path / "old.sqlite"
    assert main(["--catalog", str(db), "add", "dem1", str(dem_path)]) == 0
    with sqlite3.connect(db) as conn:  # back to schema 2: no description, no OBJECTIDs, no item index
        conn.execute("DROP TABLE items_index")
        conn.execute("ALTER TABLE services DROP COLUMN description")
        conn.execute("ALTER TABLE items DROP COLUMN object_id")
        conn.execute("PRAGMA user_version = 2")
    with pytest.raises(ImgsvcError, match="migrate"):
        Catalog(db, readonly=True)
    assert main(["--catalog", str(db), "migrate"]) == 0
    catalog = Catalog(db, readonly=True)
    (item,) = catalog.items_in("dem1", catalog.service("dem1").description.extent)
    assert item.object_id == 1 and catalog.service("dem1").description.item_count == 1
