"""What differs between the databases a catalog can live in: SQLite (a file, the embedded default) and PostgreSQL (a
server several imgsvc processes share).  The catalog's logic and queries are written once (imgsvc/catalog/store.py),
in the SQL both databases accept, with ``?`` placeholders; a backend runs them on this thread's connection and
supplies the few fragments that differ: the schema's type names and spatial index, the typed value of an item
field, the bounds condition, LIKE, and how a change is noticed (docs/decisions.md "The catalog on PostgreSQL").
"""
from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Hashable

from imgsvc.catalog.records import Field, FieldType

# A catalog location naming a PostgreSQL server rather than a SQLite file (libpq's URL schemes).
POSTGRESQL_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


class Backend(ABC):
    """The database behind one Catalog: this thread's connection, the statements run on it, and the SQL fragments
    that differ between databases.  Each database implements every abstract method; one left out fails when the
    backend is made, not at the first request that needs it."""

    readonly: bool
    # The schema's column types: an auto-numbered primary key, a 64-bit float, a 64-bit integer, a JSON document.
    key_type: str
    real_type: str
    integer_type: str
    json_type: str
    # The case-insensitive (ASCII letters) LIKE operator, and what follows a pattern written without ESCAPE so that
    # no character escapes (SQLite has no default escape character; PostgreSQL's is the backslash).
    like: str
    like_without_escape: str
    # What a statement naming a table the catalog does not have raises (one of its migrations not run yet).
    missing_table: type[Exception]

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run ``sql`` (``?`` placeholders) on this thread's connection; the cursor, to fetch from or iterate."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run ``sql`` once per row of ``rows`` on this thread's connection."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager:
        """A write transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the catalog has been created (a read-only catalog refuses to open one that has not)."""

    @abstractmethod
    def schema_version(self) -> int:
        """The catalog's schema version: the migrations it has had."""

    @abstractmethod
    def set_schema_version(self, version: int) -> None:
        """Record ``version`` as the catalog's schema version."""

    @abstractmethod
    def columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns (what the migrations check before adding one)."""

    @abstractmethod
    def create_item_index(self) -> None:
        """The index on the items' bounds that ``bounds_condition`` goes through, filled for items lacking it."""

    def index_item(self, item_id: int, bounds: Sequence[float]) -> None:
        """Put a new item's bounds (xmin, ymin, xmax, ymax) into the index when the index is not kept by the
        database itself."""

    def unindex_service(self, name: str) -> None:
        """Take a service's items out of the index when the index is not kept by the database itself."""

    @abstractmethod
    def bounds_condition(self, bounds: Sequence[float]) -> tuple[str, list[Any]]:
        """Items whose bounds meet ``bounds`` (xmin, ymin, xmax, ymax in the service SR), through the index."""

    @abstractmethod
    def json_value(self, name: str, kind: FieldType) -> str:
        """The SQL expression of the ``name`` member of the items' ``attributes`` JSON, typed as ``kind`` (the
        catalog's names hold only letters, digits and '_': ``field_column`` checks them)."""

    @abstractmethod
    def version(self) -> Hashable | None:
        """What changes whenever the catalog does (None when it cannot be known now)."""

    def field_column(self, field: Field) -> str:
        """The SQL expression of an item field: OBJECTID's column, the others' value in the attributes JSON.  Field
        names are checked at registration (letters, digits, _), and checked again here, so no text reaches the
        SQL."""
        if field.type is FieldType.OID:
            return "object_id"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field.name):
            raise ValueError(f"field name {field.name!r} cannot be used in SQL")
        return self.json_value(field.name, field.type)


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def schema(backend: Backend) -> Iterator[str]:
    """The statements creating the catalog's first tables, in the backend's types; later columns and tables are
    added by the migrations (store.Catalog._upgrade), on both databases alike."""
    yield "CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, settings TEXT NOT NULL)"
    real = backend.real_type
    yield (f"CREATE TABLE IF NOT EXISTS items (item_id {backend.key_type}, "
           "service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE, path TEXT NOT NULL, "
           f"min_x {real} NOT NULL, min_y {real} NOT NULL, max_x {real} NOT NULL, max_y {real} NOT NULL, "
           "raster TEXT NOT NULL)")
    yield "CREATE INDEX IF NOT EXISTS items_service ON items(service)"
    # Schema version 2: per-band statistics and histograms, computed from every pixel at registration so that the
    # read-only service can answer /statistics and /histograms without touching the rasters.
    yield ("CREATE TABLE IF NOT EXISTS band_statistics ("
           f"item_id {backend.integer_type} NOT NULL REFERENCES items(item_id) ON DELETE CASCADE, "
           f"band INTEGER NOT NULL, min {real} NOT NULL, max {real} NOT NULL, mean {real} NOT NULL, "
           f"stdv {real} NOT NULL, median {real} NOT NULL, mode {real} NOT NULL, count {backend.integer_type} NOT NULL, "
           f"hist_min {real} NOT NULL, hist_max {real} NOT NULL, counts TEXT NOT NULL, PRIMARY KEY (item_id, band))")
    # Schema version 4: a service's raster function templates (named rendering rules, one of them maybe the
    # default).
    yield ("CREATE TABLE IF NOT EXISTS templates (service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE, "
           "name TEXT NOT NULL, description TEXT NOT NULL, rule TEXT NOT NULL, is_default INTEGER NOT NULL DEFAULT 0, "
           "position INTEGER NOT NULL, PRIMARY KEY (service, name))")


def open_backend(location: str | os.PathLike, readonly: bool) -> Backend:
    """The backend of a catalog ``location``: a ``postgresql://`` URL (libpq's form) or a SQLite file's path."""
    if POSTGRESQL_URL.match(str(location)):
        from imgsvc.catalog.postgres import PostgresBackend  # psycopg only where PostgreSQL is used

        return PostgresBackend(str(location), readonly)
    from imgsvc.catalog.sqlite import SQLiteBackend

    return SQLiteBackend(Path(location), readonly)
