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
from imgsvc.catalog.records import RasterItem, ServiceRecord, ServiceSettings
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
                conn.executescript(SCHEMA)
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

    def add_service(self, name: str, items: list[RasterItem], settings: ServiceSettings, replace: bool = False) -> None:
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
            for item in items:
                xmin, ymin, xmax, ymax = item.bounds
                conn.execute(
                    "INSERT INTO items(service, path, xmin, ymin, xmax, ymax, raster) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, item.path, xmin, ymin, xmax, ymax, _item_to_json(item)),
                )

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
