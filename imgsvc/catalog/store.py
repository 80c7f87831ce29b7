"""SQLite storage of the catalog.  Parameters are always bound, never formatted into SQL."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from affine import Affine

from imgsvc.block import BandStats
from imgsvc.catalog.describe import describe_service, item_bounds_in, merge_distributions
from imgsvc.catalog.records import (BandDistribution, FunctionTemplate, RasterItem, ServiceDescription, ServiceRecord,
                                    ServiceSettings)
from imgsvc.errors import invalid, not_found

SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    name      TEXT PRIMARY KEY,
    settings  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    item_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    service   TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    xmin REAL NOT NULL, ymin REAL NOT NULL, xmax REAL NOT NULL, ymax REAL NOT NULL,
    raster    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_service ON items(service);
"""
# Schema version 2: per-band statistics and histograms, computed from every pixel at registration so that the
# read-only service can answer /statistics and /histograms without touching the rasters.
BAND_STATISTICS = """
CREATE TABLE IF NOT EXISTS band_statistics (
    item_id   INTEGER NOT NULL REFERENCES items(item_id) ON DELETE CASCADE,
    band      INTEGER NOT NULL,
    min REAL NOT NULL, max REAL NOT NULL, mean REAL NOT NULL, stdv REAL NOT NULL,
    median REAL NOT NULL, mode REAL NOT NULL, count INTEGER NOT NULL,
    hist_min REAL NOT NULL, hist_max REAL NOT NULL,
    counts    TEXT NOT NULL,
    PRIMARY KEY (item_id, band)
);
"""
# Schema version 3: a service is a description (what its root reports) plus items found by extent.  The items'
# bounds (in the service SR; the `items` columns hold the same) go into an R*Tree, so choosing the items under a
# bbox reads only those, however many the service has.  Catalogs written before it are brought up to it the first
# time the CLI opens them for writing (`imgsvc migrate`, which `make serve` runs).
ITEM_INDEX = """
CREATE VIRTUAL TABLE IF NOT EXISTS items_index USING rtree(item_id, xmin, xmax, ymin, ymax);
"""
# Schema version 4: a service's raster function templates (named rendering rules, one of them maybe the default).
TEMPLATES = """
CREATE TABLE IF NOT EXISTS templates (
    service     TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    rule        TEXT NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    position    INTEGER NOT NULL,
    PRIMARY KEY (service, name)
);
"""
SCHEMA_VERSION = 4

# Service names become URL path segments: keep them to what ArcGIS allows.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,119}$")


def default_catalog_path() -> Path:
    return Path(os.environ.get("IMGSVC_CATALOG", "data/catalog.sqlite"))


def _item_to_json(item: RasterItem) -> str:
    doc = asdict(item)
    doc["transform"] = list(item.transform)[:6]
    doc["stats"] = [asdict(s) for s in item.stats]
    doc.pop("item_id")
    doc.pop("object_id")
    return json.dumps(doc)


def _item_from_row(item_id: int, raster: str, object_id: int = 0) -> RasterItem:
    doc = json.loads(raster)
    doc["transform"] = Affine(*doc["transform"])
    doc["stats"] = tuple(BandStats(**s) for s in doc["stats"])
    doc["band_names"] = tuple(doc["band_names"])
    doc["overview_shapes"] = tuple(tuple(s) for s in doc["overview_shapes"])
    doc["block_shape"] = tuple(doc["block_shape"])
    return RasterItem(item_id=item_id, object_id=object_id, **doc)


def _description_to_json(description: ServiceDescription) -> str:
    doc = asdict(description)
    doc["stats"] = [asdict(s) for s in description.stats]
    return json.dumps(doc)


def _description_from_json(text: str) -> ServiceDescription:
    doc = json.loads(text)
    doc["stats"] = tuple(BandStats(**s) for s in doc["stats"])
    for key in ("extent", "pixel_size", "band_names", "block_shape"):
        doc[key] = tuple(doc[key])
    return ServiceDescription(**doc)


class Catalog:
    """The catalog at ``path``.  ``readonly`` connections are what the service uses."""

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.executescript(SCHEMA + BAND_STATISTICS + ITEM_INDEX + TEMPLATES)
                self._upgrade(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif not self.path.exists():
            raise FileNotFoundError(f"no catalog at {self.path}; run `imgsvc demo` or `imgsvc add`")
        else:
            version = self._connect().execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                raise RuntimeError(f"the catalog at {self.path} has schema version {version}, older than this "
                                   f"imgsvc's {SCHEMA_VERSION}; run `imgsvc --catalog {self.path} migrate` first")

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                conn = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, check_same_thread=False)
                conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        return conn

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Bring a catalog of an earlier schema up to this one: service descriptions and the item index."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(services)")}
        if "description" not in columns:
            conn.execute("ALTER TABLE services ADD COLUMN description TEXT")
        if "object_id" not in {row[1] for row in conn.execute("PRAGMA table_info(items)")}:
            conn.execute("ALTER TABLE items ADD COLUMN object_id INTEGER")
            conn.execute("UPDATE items SET object_id = (SELECT COUNT(*) FROM items AS earlier WHERE earlier.service "
                         "= items.service AND earlier.item_id <= items.item_id)")
        conn.execute("INSERT INTO items_index(item_id, xmin, xmax, ymin, ymax) SELECT item_id, xmin, xmax, ymin, "
                     "ymax FROM items WHERE item_id NOT IN (SELECT item_id FROM items_index)")
        for (name,) in conn.execute("SELECT name FROM services WHERE description IS NULL").fetchall():
            items = self._items(conn, name)
            distributions = [self._distributions(conn, item.item_id) for item in items]
            description = describe_service(items, None if None in distributions else distributions)
            conn.execute("UPDATE services SET description = ? WHERE name = ?",
                         (_description_to_json(description), name))

    def add_service(self, name: str, items: list[RasterItem], settings: ServiceSettings, replace: bool = False,
                    distributions: list[tuple[BandDistribution, ...]] | None = None) -> None:
        """Register ``items`` as service ``name``; ``distributions`` (one tuple per item) are stored with them and
        merged into the service's statistics."""
        if not _NAME.match(name):
            raise invalid(f"Invalid service name {name!r}: use letters, digits, '_' and '-'.")
        if not items:
            raise invalid("A service needs at least one raster.")
        description = describe_service(items, distributions)
        conn = self._connect()
        with conn:
            if replace:
                self._delete(conn, name)
            elif conn.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone():
                raise invalid(f"Service {name!r} already exists.")
            conn.execute("INSERT INTO services(name, settings, description) VALUES (?, ?, ?)",
                         (name, json.dumps(asdict(settings)), _description_to_json(description)))
            for index, item in enumerate(items):
                xmin, ymin, xmax, ymax = item_bounds_in(item, description.crs_wkt)
                cursor = conn.execute(
                    "INSERT INTO items(service, object_id, path, xmin, ymin, xmax, ymax, raster) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, index + 1, item.path, xmin, ymin, xmax, ymax, _item_to_json(item)),
                )
                conn.execute("INSERT INTO items_index(item_id, xmin, xmax, ymin, ymax) VALUES (?, ?, ?, ?, ?)",
                             (cursor.lastrowid, xmin, xmax, ymin, ymax))
                if distributions is not None:
                    self._put_distributions(conn, cursor.lastrowid, distributions[index])

    @staticmethod
    def _put_distributions(conn: sqlite3.Connection, item_id: int, bands: tuple[BandDistribution, ...]) -> None:
        conn.execute("DELETE FROM band_statistics WHERE item_id = ?", (item_id,))
        conn.executemany(
            "INSERT INTO band_statistics(item_id, band, min, max, mean, stdv, median, mode, count, hist_min, "
            "hist_max, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(item_id, band, d.min, d.max, d.mean, d.stdv, d.median, d.mode, d.count, d.hist_min, d.hist_max,
              json.dumps(list(d.counts))) for band, d in enumerate(bands)])

    def put_distributions(self, item_id: int, bands: tuple[BandDistribution, ...]) -> None:
        conn = self._connect()
        with conn:
            self._put_distributions(conn, item_id, bands)

    def items_without_distributions(self) -> list[RasterItem]:
        """Items registered before statistics were kept (what `imgsvc migrate` fills in)."""
        rows = self._connect().execute(
            "SELECT item_id, raster FROM items WHERE item_id NOT IN (SELECT item_id FROM band_statistics) "
            "ORDER BY item_id")
        return [_item_from_row(item_id, raster) for item_id, raster in rows]

    @staticmethod
    def _distributions(conn: sqlite3.Connection, item_id: int) -> tuple[BandDistribution, ...] | None:
        try:
            rows = conn.execute(
                "SELECT min, max, mean, stdv, median, mode, count, hist_min, hist_max, counts FROM band_statistics "
                "WHERE item_id = ? ORDER BY band", (item_id,)).fetchall()
        except sqlite3.OperationalError:
            return None  # a catalog from before statistics were kept, opened read-only: not migrated yet
        if not rows:
            return None
        return tuple(BandDistribution(*row[:9], counts=tuple(json.loads(row[9]))) for row in rows)

    def distributions(self, name: str) -> tuple[BandDistribution, ...] | None:
        """The service's per-band statistics and histograms over all its items, or None when some item's were
        never computed."""
        conn = self._connect()
        ids = [row[0] for row in conn.execute("SELECT item_id FROM items WHERE service = ? ORDER BY item_id",
                                              (name,))]
        per_item = [self._distributions(conn, item_id) for item_id in ids]
        if not per_item or None in per_item:
            return None
        return merge_distributions(per_item)

    @staticmethod
    def _delete(conn: sqlite3.Connection, name: str) -> int:
        conn.execute("DELETE FROM items_index WHERE item_id IN (SELECT item_id FROM items WHERE service = ?)",
                     (name,))
        return conn.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount

    def remove_service(self, name: str) -> None:
        conn = self._connect()
        with conn:
            if self._delete(conn, name) == 0:
                raise not_found(f"Service {name!r} does not exist.")

    def service_names(self) -> list[str]:
        return [row[0] for row in self._connect().execute("SELECT name FROM services ORDER BY name")]

    def service(self, name: str) -> ServiceRecord:
        conn = self._connect()
        row = conn.execute("SELECT settings, description FROM services WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise not_found(f"Service {name!r} does not exist.")
        settings, description = row
        templates = tuple(
            FunctionTemplate(name=t_name, description=t_description, rule=json.loads(rule), default=bool(default))
            for t_name, t_description, rule, default in conn.execute(
                "SELECT name, description, rule, is_default FROM templates WHERE service = ? ORDER BY position",
                (name,)))
        return ServiceRecord(name=name, description=_description_from_json(description),
                             settings=ServiceSettings(**json.loads(settings)), templates=templates)

    def put_template(self, service: str, template: FunctionTemplate) -> None:
        """Add or replace ``service``'s template of that name; a default template replaces the previous default."""
        conn = self._connect()
        with conn:
            if not conn.execute("SELECT 1 FROM services WHERE name = ?", (service,)).fetchone():
                raise not_found(f"Service {service!r} does not exist.")
            if template.default:
                conn.execute("UPDATE templates SET is_default = 0 WHERE service = ?", (service,))
            position = conn.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM templates WHERE service = ?",
                                    (service,)).fetchone()[0]
            conn.execute(
                "INSERT INTO templates(service, name, description, rule, is_default, position) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(service, name) DO UPDATE SET description = excluded.description, rule = excluded.rule, "
                "is_default = excluded.is_default",
                (service, template.name, template.description, json.dumps(template.rule), int(template.default),
                 position))

    def remove_template(self, service: str, name: str) -> None:
        conn = self._connect()
        with conn:
            if conn.execute("DELETE FROM templates WHERE service = ? AND name = ?", (service, name)).rowcount == 0:
                raise not_found(f"Service {service!r} has no template {name!r}.")

    @staticmethod
    def _items(conn: sqlite3.Connection, name: str, where: str = "", args: tuple = ()) -> tuple[RasterItem, ...]:
        return tuple(_item_from_row(item_id, raster, object_id) for item_id, raster, object_id in conn.execute(
            f"SELECT item_id, raster, object_id FROM items WHERE service = ? {where} ORDER BY object_id",
            (name, *args)))

    def items(self, name: str) -> tuple[RasterItem, ...]:
        """Every item of the service, by object id (for the CLI; requests use ``items_in``)."""
        return self._items(self._connect(), name)

    def items_in(self, name: str, bounds: tuple[float, float, float, float]) -> tuple[RasterItem, ...]:
        """The service's items whose bounds meet ``bounds`` (xmin, ymin, xmax, ymax in the service SR), by object
        id, found through the R*Tree."""
        xmin, ymin, xmax, ymax = bounds
        return self._items(self._connect(), name, "AND item_id IN (SELECT item_id FROM items_index WHERE xmax >= ? "
                                                  "AND xmin <= ? AND ymax >= ? AND ymin <= ?)",
                           (xmin, xmax, ymin, ymax))
