"""The catalog in a SQLite file: the embedded default, for one machine."""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from imgsvc.catalog.backend import Backend, sql_string
from imgsvc.catalog.records import FieldType


class SQLiteBackend(Backend):
    key_type = "INTEGER PRIMARY KEY AUTOINCREMENT"
    real_type = "REAL"
    integer_type = "INTEGER"
    json_type = "TEXT"
    like = "LIKE"  # case-insensitive for ASCII letters
    like_without_escape = ""
    missing_table = sqlite3.OperationalError

    def __init__(self, path: Path, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._local = threading.local()
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return str(self.path)

    def version(self) -> tuple[int, int, int] | None:
        """The file's inode, size and modification time (None when the file is gone)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def connection(self) -> sqlite3.Connection:
        """This thread's connection.  A server's (read-only) one follows the file: replaced or rewritten on disk (a
        new inode, size or mtime), it is reopened; gone, the last one goes on serving what it read
        (docs/decisions.md "Faults")."""
        conn = getattr(self._local, "conn", None)
        if self.readonly:
            signature = self.version() or getattr(self._local, "signature", None)
            if conn is not None and signature != self._local.signature:
                conn.close()
                conn = None
            if conn is None:
                conn = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, check_same_thread=False)
                self._local.signature = signature
        elif conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.connection().executemany(sql, rows)

    def transaction(self) -> AbstractContextManager:
        return self.connection()  # commits at the end of the block, rolls back when it raises

    def exists(self) -> bool:
        return self.path.exists()

    def schema_version(self) -> int:
        return self.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, version: int) -> None:
        self.execute(f"PRAGMA user_version = {int(version)}")

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.execute("SELECT * FROM pragma_table_info(?)", (table,))}

    # Schema version 3: the items' bounds (in the service SR; the `items` columns hold the same) go into an R*Tree,
    # kept beside the table, so choosing the items under a bbox reads only those, however many the service has.
    def create_item_index(self) -> None:
        self.execute("CREATE VIRTUAL TABLE IF NOT EXISTS items_index USING rtree(item_id, xmin, xmax, ymin, ymax)")
        self.execute("INSERT INTO items_index(item_id, xmin, xmax, ymin, ymax) SELECT item_id, min_x, max_x, min_y, "
                     "max_y FROM items WHERE item_id NOT IN (SELECT item_id FROM items_index)")

    def index_item(self, item_id: int, bounds: Sequence[float]) -> None:
        xmin, ymin, xmax, ymax = bounds
        self.execute("INSERT INTO items_index(item_id, xmin, xmax, ymin, ymax) VALUES (?, ?, ?, ?, ?)",
                     (item_id, xmin, xmax, ymin, ymax))

    def unindex_service(self, name: str) -> None:
        self.execute("DELETE FROM items_index WHERE item_id IN (SELECT item_id FROM items WHERE service = ?)",
                     (name,))

    def bounds_condition(self, bounds: Sequence[float]) -> tuple[str, list[Any]]:
        xmin, ymin, xmax, ymax = bounds
        return ("item_id IN (SELECT item_id FROM items_index WHERE xmax >= ? AND xmin <= ? AND ymax >= ? AND "
                "ymin <= ?)", [xmin, xmax, ymin, ymax])

    def json_value(self, name: str, kind: FieldType) -> str:
        # json_extract gives each JSON value its SQL type (INTEGER, REAL, TEXT), which SQLite compares as such.
        path = '$."' + name + '"'
        return f"json_extract(attributes, {sql_string(path)})"
