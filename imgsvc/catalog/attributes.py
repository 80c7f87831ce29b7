"""Item fields of a mosaic dataset: the built-in ones ArcGIS names (OBJECTID, Name, MinPS, MaxPS, LowPS, HighPS,
Category, CenterX, CenterY, ZOrder) and the operator's, read from a CSV table whose `Name` column holds each raster's
file name without its extension, each column typed by its values (integer, double, ISO 8601 date or date-time, text;
an empty cell is NULL).  Dates are kept as epoch milliseconds UTC, as they travel on the wire.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from imgsvc.catalog.records import Field, FieldType, RasterItem
from imgsvc.errors import invalid

BUILTIN_FIELDS = (
    Field("OBJECTID", FieldType.OID), Field("Name", FieldType.TEXT), Field("MinPS", FieldType.DOUBLE),
    Field("MaxPS", FieldType.DOUBLE), Field("LowPS", FieldType.DOUBLE), Field("HighPS", FieldType.DOUBLE),
    Field("Category", FieldType.INTEGER), Field("CenterX", FieldType.DOUBLE), Field("CenterY", FieldType.DOUBLE),
    Field("ZOrder", FieldType.INTEGER),
)
# Category 1: a primary raster (ArcGIS's value for the items that are mosaicked; overviews would be 2).
PRIMARY = 1
# The built-in fields an attribute table may set (the others are measured from the raster itself).
SETTABLE_FIELDS = {f.name.lower(): f for f in BUILTIN_FIELDS if f.name in ("MinPS", "MaxPS", "Category", "ZOrder")}
# Field names become JSON paths in SQL built by the catalog (never from request text): keep them plain.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_INTEGER = re.compile(r"^[+-]?\d+$")


# ArcGIS's cell size ranges (Calculate Cell Size Ranges' defaults): an item shows up to 10 times its coarsest
# overview's cell size, and items whose cell sizes are within 10 % of each other count as the same resolution.
MAX_RANGE_FACTOR = 10.0
SAME_CELL_SIZE = 0.9


def builtin_attributes(item: RasterItem, centre: tuple[float, float], cell_size: float) -> dict[str, Any]:
    """The built-in fields of ``item`` whose footprint ``centre`` and full-resolution ``cell_size`` are in the
    service SR.

    LowPS is the item's own cell size and HighPS its coarsest overview's; MinPS 0 and MaxPS unbounded (None), so a
    one-raster service shows at every scale; a mosaic dataset's catalog then computes its items' ranges."""
    coarsest_width = item.overview_shapes[-1][0] if item.overview_shapes else item.width
    return {"Name": Path(item.path).stem, "MinPS": 0.0, "MaxPS": None, "LowPS": cell_size,
            "HighPS": cell_size * item.width / coarsest_width, "Category": PRIMARY,
            "CenterX": centre[0], "CenterY": centre[1], "ZOrder": None}


def read_attribute_table(path: str | Path) -> tuple[tuple[Field, ...], dict[str, dict[str, Any]]]:
    """(the table's fields, each raster name's values) from a CSV with a `Name` column.  Columns named like the
    settable built-in fields (MinPS, MaxPS, Category, ZOrder) set those instead of adding fields."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise invalid(f"--attrs {path}: not a readable CSV table: {exc}") from None
    if not rows:
        raise invalid(f"--attrs {path}: the table has no rows.")
    names = [n for n in rows[0] if n is not None]
    if "Name" not in names:
        raise invalid(f"--attrs {path}: the table needs a Name column (each raster's file name without extension).")
    measured = {f.name.lower() for f in BUILTIN_FIELDS} - {"name"} - set(SETTABLE_FIELDS)
    columns = [n for n in names if n != "Name"]
    for column in columns:
        if not _FIELD_NAME.match(column) or column.lower() in measured:
            raise invalid(f"--attrs {path}: column {column!r} cannot be a field name (letters, digits and _, "
                          "not one of the built-in fields measured from the rasters).")
    settable = {c: SETTABLE_FIELDS[c.lower()] for c in columns if c.lower() in SETTABLE_FIELDS}
    for column, field in settable.items():
        allowed = (FieldType.INTEGER, None) if field.type is FieldType.INTEGER else \
            (FieldType.INTEGER, FieldType.DOUBLE, None)
        if _column_type([row.get(column) or "" for row in rows]) not in allowed:
            raise invalid(f"--attrs {path}: column {column!r} sets the built-in {field.name}: it must hold "
                          f"{'integers' if field.type is FieldType.INTEGER else 'numbers'}.")
    fields = tuple(Field(column, _column_type([row.get(column) or "" for row in rows]) or FieldType.TEXT)
                   for column in columns if column not in settable)
    values: dict[str, dict[str, Any]] = {}
    for row in rows:
        values[row["Name"]] = {**{field.name: _value(row.get(field.name) or "", field.type) for field in fields},
                               **{field.name: _value(row.get(column) or "", field.type)
                                  for column, field in settable.items() if (row.get(column) or "").strip()}}
    return fields, values


def service_fields(extra: Iterable[Field]) -> tuple[Field, ...]:
    return BUILTIN_FIELDS + tuple(extra)


def check_time_fields(fields: Sequence[Field], start: str | None, end: str | None) -> None:
    """The time fields must be DATE fields of the table (the refusal names the option)."""
    types = {f.name: f.type for f in fields}
    for option, name in (("--time-field", start), ("--end-time-field", end)):
        if name is not None and types.get(name) is not FieldType.DATE:
            raise invalid(f"{option} {name!r} is not a date field of the attribute table.")
    if end is not None and start is None:
        raise invalid("--end-time-field needs --time-field.")


def _column_type(cells: list[str]) -> FieldType | None:
    """The type of a column's values; None when every cell is empty."""
    present = [c.strip() for c in cells if c.strip()]
    if not present:
        return None
    if all(_INTEGER.match(c) for c in present):
        return FieldType.INTEGER
    if all(_is_number(c) for c in present):
        return FieldType.DOUBLE
    if all(parse_date(c) is not None for c in present):
        return FieldType.DATE
    return FieldType.TEXT


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def _value(cell: str, kind: FieldType) -> Any:
    cell = cell.strip()
    if not cell:
        return None
    if kind is FieldType.INTEGER:
        return int(cell)
    if kind is FieldType.DOUBLE:
        return float(cell)
    if kind is FieldType.DATE:
        return parse_date(cell)
    return cell


def parse_date(text: str) -> int | None:
    """Epoch milliseconds UTC of an ISO 8601 date or date-time (naive means UTC), or None."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return round(moment.timestamp() * 1000)


def attributes_for(items: Sequence[RasterItem], table: Mapping[str, Mapping[str, Any]] | None,
                   fields: Sequence[Field]) -> list[dict[str, Any]]:
    """Each item's values of the table's ``fields`` (NULL where the table has no row for it) and of the built-in
    fields the table sets for it."""
    rows = []
    for item in items:
        row = (table or {}).get(Path(item.path).stem, {})
        rows.append({**{field.name: row.get(field.name) for field in fields},
                     **{name: row[name] for name in (f.name for f in SETTABLE_FIELDS.values()) if name in row}})
    return rows
