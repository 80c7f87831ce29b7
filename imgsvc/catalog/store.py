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
from imgsvc.catalog.records import BandDistribution, RasterItem, ServiceRecord, ServiceSettings
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
# read-only service can answer /statistics and /histograms without touching the rasters.  Catalogs written before
# it get the table the first time the CLI opens them for writing; `imgsvc migrate` then fills it.
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
SCHEMA_VERSION = 2

# Service names become URL path segments: keep them to what ArcGIS allows.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,119}$")


def default_catalog_path() -> Path:
    return Path(os.environ.get("IMGSVC_CATALOG", "data/catalog.sqlite"))


def _item_to_json(item: RasterItem) -> str:
    doc = asdict(item)
    doc["transform"] = list(item.transform)[:6]
    doc["stats"] = [asdict(s) for s in item.stats]
    doc.pop("item_id")
    return json.dumps(doc)


def _item_from_row(item_id: int, raster: str) -> RasterItem:
    doc = json.loads(raster)
    doc["transform"] = Affine(*doc["transform"])
    doc["stats"] = tuple(BandStats(**s) for s in doc["stats"])
    doc["band_names"] = tuple(doc["band_names"])
    doc["overview_shapes"] = tuple(tuple(s) for s in doc["overview_shapes"])
    doc["block_shape"] = tuple(doc["block_shape"])
    return RasterItem(item_id=item_id, **doc)


class Catalog:
    """The catalog at ``path``.  ``readonly`` connections are what the service uses."""

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.executescript(SCHEMA + BAND_STATISTICS)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif not self.path.exists():
            raise FileNotFoundError(f"no catalog at {self.path}; run `imgsvc demo` or `imgsvc add`")

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

    def add_service(self, name: str, items: list[RasterItem], settings: ServiceSettings, replace: bool = False,
                    distributions: list[tuple[BandDistribution, ...]] | None = None) -> None:
        """Register ``items`` as service ``name``; ``distributions`` (one tuple per item) are stored with them."""
        if not _NAME.match(name):
            raise invalid(f"Invalid service name {name!r}: use letters, digits, '_' and '-'.")
        if not items:
            raise invalid("A service needs at least one raster.")
        conn = self._connect()
        with conn:
            if replace:
                conn.execute("DELETE FROM services WHERE name = ?", (name,))
            elif conn.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone():
                raise invalid(f"Service {name!r} already exists.")
            conn.execute("INSERT INTO services(name, settings) VALUES (?, ?)", (name, json.dumps(asdict(settings))))
            for index, item in enumerate(items):
                xmin, ymin, xmax, ymax = item.bounds
                cursor = conn.execute(
                    "INSERT INTO items(service, path, xmin, ymin, xmax, ymax, raster) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, item.path, xmin, ymin, xmax, ymax, _item_to_json(item)),
                )
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

    def distributions(self, item_id: int) -> tuple[BandDistribution, ...] | None:
        """The item's per-band statistics and histograms, or None when they were never computed."""
        try:
            rows = self._connect().execute(
                "SELECT min, max, mean, stdv, median, mode, count, hist_min, hist_max, counts FROM band_statistics "
                "WHERE item_id = ? ORDER BY band", (item_id,)).fetchall()
        except sqlite3.OperationalError:
            return None  # a catalog from before schema version 2, opened read-only: not migrated yet
        if not rows:
            return None
        return tuple(BandDistribution(*row[:9], counts=tuple(json.loads(row[9]))) for row in rows)

    def remove_service(self, name: str) -> None:
        conn = self._connect()
        with conn:
            if conn.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount == 0:
                raise not_found(f"Service {name!r} does not exist.")

    def service_names(self) -> list[str]:
        return [row[0] for row in self._connect().execute("SELECT name FROM services ORDER BY name")]

    def service(self, name: str) -> ServiceRecord:
        conn = self._connect()
        row = conn.execute("SELECT settings FROM services WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise not_found(f"Service {name!r} does not exist.")
        items = tuple(
            _item_from_row(item_id, raster)
            for item_id, raster in conn.execute(
                "SELECT item_id, raster FROM items WHERE service = ? ORDER BY item_id", (name,))
        )
        return ServiceRecord(name=name, items=items, settings=ServiceSettings(**json.loads(row[0])))
