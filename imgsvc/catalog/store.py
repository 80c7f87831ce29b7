"""The catalog's logic and queries, written once for SQLite and PostgreSQL (imgsvc/catalog/backend.py).  Parameters
are always bound, never formatted into SQL."""
from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from affine import Affine

from imgsvc.block import BandStats
from imgsvc.catalog.backend import POSTGRESQL_URL, Backend, open_backend, schema
from imgsvc.catalog.attributes import (BUILTIN_FIELDS, MAX_RANGE_FACTOR, SAME_CELL_SIZE, builtin_attributes,
                                       service_fields)
from imgsvc.catalog.describe import cell_size_in, describe_service, item_bounds_in, merge_distributions
from imgsvc.catalog.where import compile_where
from imgsvc.catalog.records import (BandDistribution, Field, FieldType, FunctionTemplate, RasterItem,
                                    ServiceDescription, ServiceRecord, ServiceSettings)
from imgsvc import sr
from imgsvc.errors import ErrorKind, ImgsvcError, invalid, not_found
from imgsvc.footprints import Footprint, centre, overlaps, rectangle, to_crs

# Schema version 5: mosaic datasets. Each item's fields (built-in and the operator's) as a JSON object, and the
# service's field list (name and type), so that where clauses, time and attribute ordering can be answered.
# Schema version 6: each item's footprint (the outline of its valid data, in the service SR; NULL = its bounds).
# Schema version 7: the items' bounds columns named min_x, min_y, max_x, max_y (xmin and xmax are PostgreSQL's
# system columns), so that both databases hold the same schema.
SCHEMA_VERSION = 7
_BOUNDS_COLUMNS = {"xmin": "min_x", "ymin": "min_y", "xmax": "max_x", "ymax": "max_y"}

# Service names become URL path segments: keep them to what ArcGIS allows.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,119}$")


def default_catalog_path() -> str | Path:
    """$IMGSVC_CATALOG or data/catalog.sqlite: a SQLite file's path, or a PostgreSQL server's postgresql:// URL (kept
    a string: a Path would fold its //)."""
    location = os.environ.get("IMGSVC_CATALOG", "data/catalog.sqlite")
    return location if POSTGRESQL_URL.match(location) else Path(location)


def _item_to_json(item: RasterItem) -> str:
    doc = asdict(item)
    doc["transform"] = list(item.transform)[:6]
    doc["stats"] = [asdict(s) for s in item.stats]
    doc.pop("item_id")
    doc.pop("object_id")
    doc.pop("attributes")
    doc.pop("footprint")
    return json.dumps(doc)


# Decoded rows by their text: a request reads the same rows again and again, and parsing their JSON was a third of
# a small export's planning.  Keyed by what was read, a cached value can never be stale; the values are frozen.
@functools.lru_cache(maxsize=4096)
def _item_from_row(item_id: int, raster: str, object_id: int = 0, attributes: str | None = None,
                   footprint: str | None = None) -> RasterItem:
    doc = json.loads(raster)
    doc["transform"] = Affine(*doc["transform"])
    doc["stats"] = tuple(BandStats(**s) for s in doc["stats"])
    doc["band_names"] = tuple(doc["band_names"])
    doc["overview_shapes"] = tuple(tuple(s) for s in doc["overview_shapes"])
    doc["block_shape"] = tuple(doc["block_shape"])
    doc["source_bands"] = tuple(doc.get("source_bands", ()))
    rings = tuple(tuple(tuple(point) for point in ring) for ring in json.loads(footprint or "[]"))
    return RasterItem(item_id=item_id, object_id=object_id, attributes=json.loads(attributes or "{}"),
                      footprint=rings, **doc)


@functools.lru_cache(maxsize=256)  # as _item_from_row
def _service_from_rows(name: str, settings: str, description: str, fields: str | None,
                       templates: tuple[tuple[str, str, str, int], ...]) -> ServiceRecord:
    return ServiceRecord(name=name, description=_description_from_json(description),
                         settings=ServiceSettings(**json.loads(settings)),
                         templates=tuple(FunctionTemplate(name=t_name, description=t_description, rule=json.loads(rule),
                                                          default=bool(default))
                                         for t_name, t_description, rule, default in templates),
                         fields=_fields_from_json(fields))


def _builtin(item: RasterItem, crs_wkt: str, footprint: Footprint = ()) -> dict[str, Any]:
    bounds = item_bounds_in(item, crs_wkt)
    return builtin_attributes(item, centre(footprint, bounds), cell_size_in(item, crs_wkt, bounds)[0])


def footprint_in(item: RasterItem, outline: Footprint, crs_wkt: str) -> Footprint:
    """The item's ``outline`` (in its own CRS; () = its bounds) in the service SR."""
    outline = outline or rectangle(item.bounds)
    if item.crs_wkt == crs_wkt:
        return outline
    return to_crs(outline, sr.crs_from_wkt(item.crs_wkt), sr.crs_from_wkt(crs_wkt))


def _meets(footprint: list, bounds: Sequence[float], other: Footprint, other_bounds: Sequence[float]) -> bool:
    """Whether two footprints (with their bounds) share some area."""
    rings = tuple(tuple(tuple(p) for p in ring) for ring in footprint)
    return overlaps(rings, bounds, other, other_bounds)


def _conditions(conditions: Sequence[tuple[str, Sequence[Any]]]) -> tuple[str, list[Any]]:
    where, args = "", []
    for sql, params in conditions:
        where += f" AND ({sql})"
        args += list(params)
    return where, args


def _ordered(term: str, descending: bool = False) -> str:
    """An ORDER BY term with SQLite's placement of NULLs (first ascending, last descending), said explicitly since
    PostgreSQL places them the other way."""
    return f"{term} DESC NULLS LAST" if descending else f"{term} ASC NULLS FIRST"


# LIMIT with no limit, in the SQL both databases take (SQLite's -1 means none; PostgreSQL refuses a negative one).
_NO_LIMIT = 2 ** 63 - 1


def _fields_to_json(fields: Sequence[Field]) -> str:
    return json.dumps([[f.name, f.type.name] for f in fields])


def _fields_from_json(text: str | None) -> tuple[Field, ...]:
    return tuple(Field(name, FieldType[kind]) for name, kind in json.loads(text or "[]"))


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
    """The catalog at ``location``: a SQLite file's path or a PostgreSQL server's ``postgresql://`` URL.
    ``readonly`` catalogs are what the service uses."""

    def __init__(self, location: str | os.PathLike, readonly: bool = False) -> None:
        self.backend: Backend = open_backend(location, readonly)
        self.path = location if POSTGRESQL_URL.match(str(location)) else Path(location)
        self.readonly = readonly
        if not readonly:
            with self.backend.transaction():
                for statement in schema(self.backend):
                    self.backend.execute(statement)
                self._upgrade()
                self.backend.set_schema_version(SCHEMA_VERSION)
        elif not self.backend.exists():
            raise ImgsvcError(ErrorKind.NOT_FOUND,
                              message=f"There is no catalog at {self.backend}: run `imgsvc demo` or `imgsvc add` first.")
        else:
            version = self.backend.schema_version()
            if version < SCHEMA_VERSION:
                raise ImgsvcError(ErrorKind.INVALID_ARGUMENT, message=(
                    f"The catalog at {self.backend} has schema version {version}, older than this imgsvc's "
                    f"{SCHEMA_VERSION}: run `imgsvc --catalog {self.backend} migrate` first."))

    def version(self):
        """What changes whenever the catalog does (None when that cannot be known now): a SQLite file's inode, size
        and modification time; PostgreSQL's version number, which every write bumps."""
        return self.backend.version()

    def field_column(self, field: Field) -> str:
        """The SQL expression of an item field (see ``Backend.field_column``)."""
        return self.backend.field_column(field)

    def bounds_condition(self, bounds: Sequence[float]) -> tuple[str, list[Any]]:
        """Items whose bounds meet ``bounds`` (xmin, ymin, xmax, ymax in the service SR), through the item index."""
        return self.backend.bounds_condition(bounds)

    def where_condition(self, text: str, fields: Sequence[Field], parameter: str = "where") -> tuple[str, list]:
        """A client's where clause over ``fields``, compiled for this catalog's database (imgsvc/catalog/where.py)."""
        return compile_where(text, fields, self.backend, parameter=parameter)

    def time_condition(self, settings: ServiceSettings, fields: Sequence[Field], start: int | None,
                       end: int | None) -> tuple[str, list[Any]]:
        """Items whose time (start field, to the end field when the item spans a period) meets [start, end], ends
        inclusive, either open (docs/decisions.md Q18); items without a time never match."""
        by_name = {f.name: f for f in fields}
        first = self.field_column(by_name[settings.start_time_field])
        last = self.field_column(by_name[settings.end_time_field]) if settings.end_time_field else first
        sql, params = f"{first} IS NOT NULL", []
        if end is not None:
            sql += f" AND {first} <= ?"
            params.append(end)
        if start is not None:
            sql += f" AND COALESCE({last}, {first}) >= ?"
            params.append(start)
        return sql, params

    def pixel_size_condition(self, fields: Sequence[Field], pixel_size: float) -> tuple[str, list[Any]]:
        """Items whose MinPS..MaxPS (ends inclusive, NULL = unbounded) holds ``pixel_size`` (service SR units)."""
        by_name = {f.name: f for f in fields}
        low, high = self.field_column(by_name["MinPS"]), self.field_column(by_name["MaxPS"])
        return f"({low} IS NULL OR {low} <= ?) AND ({high} IS NULL OR {high} >= ?)", [pixel_size, pixel_size]

    def _upgrade(self) -> None:
        """Bring a catalog of an earlier schema up to this one: service descriptions and the item index."""
        db = self.backend
        columns = db.columns("services")
        if "description" not in columns:
            db.execute("ALTER TABLE services ADD COLUMN description TEXT")
        if "fields" not in columns:
            db.execute("ALTER TABLE services ADD COLUMN fields TEXT")
        item_columns = db.columns("items")
        if "object_id" not in item_columns:
            db.execute(f"ALTER TABLE items ADD COLUMN object_id {db.integer_type}")
            db.execute("UPDATE items SET object_id = (SELECT COUNT(*) FROM items AS earlier WHERE earlier.service "
                       "= items.service AND earlier.item_id <= items.item_id)")
        if "attributes" not in item_columns:
            db.execute(f"ALTER TABLE items ADD COLUMN attributes {db.json_type}")
        if "footprint" not in item_columns:
            db.execute("ALTER TABLE items ADD COLUMN footprint TEXT")
        for old, new in _BOUNDS_COLUMNS.items():
            if old in item_columns:
                db.execute(f"ALTER TABLE items RENAME COLUMN {old} TO {new}")
        for item_id, service, raster in db.execute(
                "SELECT item_id, service, raster FROM items WHERE attributes IS NULL").fetchall():
            crs_wkt = json.loads(db.execute("SELECT description FROM services WHERE name = ?",
                                            (service,)).fetchone()[0] or "{}").get("crs_wkt")
            item = _item_from_row(item_id, raster)
            db.execute("UPDATE items SET attributes = ? WHERE item_id = ?",
                       (json.dumps(_builtin(item, crs_wkt or item.crs_wkt)), item_id))
        db.execute("UPDATE services SET fields = ? WHERE fields IS NULL", (_fields_to_json(BUILTIN_FIELDS),))
        db.create_item_index()
        for (name,) in db.execute("SELECT name FROM services WHERE description IS NULL").fetchall():
            items = self._items(name)
            distributions = [self._distributions(item.item_id) for item in items]
            description = describe_service(items, None if None in distributions else distributions)
            db.execute("UPDATE services SET description = ? WHERE name = ?", (_description_to_json(description), name))

    def add_service(self, name: str, items: list[RasterItem], settings: ServiceSettings, replace: bool = False,
                    distributions: list[tuple[BandDistribution, ...]] | None = None, fields: Sequence[Field] = (),
                    attributes: Sequence[dict[str, Any]] | None = None, append: bool = False,
                    outlines: Sequence[Footprint] | None = None) -> None:
        """Register ``items`` as service ``name`` (``append``: add them to the existing service, keeping its
        settings and items); ``distributions`` (one tuple per item) are stored with them and merged into the
        service's statistics; ``fields`` are the operator's item fields and ``attributes`` each item's values;
        ``outlines`` each item's valid-data outline in its own CRS (``read.valid_outline``; default its bounds)."""
        if not _NAME.match(name):
            raise invalid(f"Invalid service name {name!r}: use letters, digits, '_' and '-'.")
        if not items:
            raise invalid("A service needs at least one raster.")
        db = self.backend
        with db.transaction():
            first_object_id = 1
            if append:
                existing = self.service(name)
                if tuple(fields) != existing.fields[len(BUILTIN_FIELDS):]:
                    raise invalid(f"--append: the attribute table's fields {[f.name for f in fields]} differ from "
                                  f"the service's {[f.name for f in existing.fields[len(BUILTIN_FIELDS):]]}.")
                old = self._items(name)
                old_distributions = [self._distributions(item.item_id) for item in old]
                all_distributions = (None if distributions is None or None in old_distributions
                                     else old_distributions + list(distributions))
                description = describe_service(list(old) + list(items), all_distributions)
                first_object_id = max((item.object_id for item in old), default=0) + 1
                db.execute("UPDATE services SET description = ? WHERE name = ?",
                           (_description_to_json(description), name))
            else:
                description = describe_service(items, distributions)
                if replace:
                    self._delete(name)
                elif db.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone():
                    raise invalid(f"Service {name!r} already exists.")
                db.execute("INSERT INTO services(name, settings, description, fields) VALUES (?, ?, ?, ?)",
                           (name, json.dumps(asdict(settings)), _description_to_json(description),
                            _fields_to_json(service_fields(fields))))
            added = []
            for index, item in enumerate(items):
                bounds = item_bounds_in(item, description.crs_wkt)
                footprint = footprint_in(item, outlines[index] if outlines else (), description.crs_wkt)
                given = attributes[index] if attributes else {}
                values = {**_builtin(item, description.crs_wkt, footprint), **given}
                (item_id,) = db.execute(
                    "INSERT INTO items(service, object_id, path, min_x, min_y, max_x, max_y, raster, attributes, "
                    "footprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING item_id",
                    (name, first_object_id + index, item.path, *bounds, _item_to_json(item), json.dumps(values),
                     json.dumps(footprint)),
                ).fetchone()
                db.index_item(item_id, bounds)
                if distributions is not None:
                    self._put_distributions(item_id, distributions[index])
                if not {"MinPS", "MaxPS"} <= given.keys():
                    added.append((item_id, bounds, footprint, values, given))
            if description.item_count > 1:
                self._pixel_size_ranges(name, added)

    def _pixel_size_ranges(self, name: str, added: list) -> None:
        """The default MinPS/MaxPS of a mosaic dataset's new items, as ArcGIS computes cell size ranges
        (docs/decisions.md "Pixel size ranges"): MaxPS is MAX_RANGE_FACTOR times the item's HighPS; MinPS is its
        LowPS where a finer item (LowPS below SAME_CELL_SIZE of its own) covers part of it, so that zooming in
        shows the finer data there, else 0.  Values an attribute table gave are kept."""
        db = self.backend
        low_ps = self.field_column(Field("LowPS", FieldType.DOUBLE))
        finest = db.execute(f"SELECT MIN({low_ps}) FROM items WHERE service = ?", (name,)).fetchone()[0]
        for item_id, bounds, footprint, values, given in added:
            ranges = {"MaxPS": values["HighPS"] * MAX_RANGE_FACTOR, "MinPS": 0.0}
            if values["LowPS"] * SAME_CELL_SIZE > finest:
                overlapping, overlapping_args = self.bounds_condition(bounds)
                finer = db.execute(
                    f"SELECT footprint, min_x, min_y, max_x, max_y FROM items WHERE service = ? AND {low_ps} < ? "
                    f"AND {overlapping}", (name, values["LowPS"] * SAME_CELL_SIZE, *overlapping_args)).fetchall()
                if any(_meets(json.loads(other or "[]"), other_bounds, footprint, bounds)
                       for other, *other_bounds in finer):
                    ranges["MinPS"] = values["LowPS"]
            ranges = {key: value for key, value in ranges.items() if key not in given}
            db.execute("UPDATE items SET attributes = ? WHERE item_id = ?", (json.dumps({**values, **ranges}), item_id))

    def _put_distributions(self, item_id: int, bands: tuple[BandDistribution, ...]) -> None:
        self.backend.execute("DELETE FROM band_statistics WHERE item_id = ?", (item_id,))
        self.backend.executemany(
            "INSERT INTO band_statistics(item_id, band, min, max, mean, stdv, median, mode, count, hist_min, "
            "hist_max, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(item_id, band, d.min, d.max, d.mean, d.stdv, d.median, d.mode, d.count, d.hist_min, d.hist_max,
              json.dumps(list(d.counts))) for band, d in enumerate(bands)])

    def put_distributions(self, item_id: int, bands: tuple[BandDistribution, ...]) -> None:
        with self.backend.transaction():
            self._put_distributions(item_id, bands)

    def items_without_distributions(self) -> list[RasterItem]:
        """Items registered before statistics were kept (what `imgsvc migrate` fills in)."""
        rows = self.backend.execute(
            "SELECT item_id, raster FROM items WHERE item_id NOT IN (SELECT item_id FROM band_statistics) "
            "ORDER BY item_id")
        return [_item_from_row(item_id, raster) for item_id, raster in rows]

    def items_without_footprints(self) -> list[RasterItem]:
        """Items registered before footprints were kept (what `imgsvc migrate` fills in)."""
        rows = self.backend.execute("SELECT item_id, raster FROM items WHERE footprint IS NULL ORDER BY item_id")
        return [_item_from_row(item_id, raster) for item_id, raster in rows]

    def put_footprint(self, item: RasterItem, outline: Footprint) -> None:
        """Store the item's footprint from its ``outline`` (in its own CRS), in its service's SR."""
        db = self.backend
        with db.transaction():
            (description,) = db.execute("SELECT s.description FROM services AS s JOIN items AS i ON i.service = "
                                        "s.name WHERE i.item_id = ?", (item.item_id,)).fetchone()
            crs_wkt = _description_from_json(description).crs_wkt
            db.execute("UPDATE items SET footprint = ? WHERE item_id = ?",
                       (json.dumps(footprint_in(item, outline, crs_wkt)), item.item_id))

    def _distributions(self, item_id: int) -> tuple[BandDistribution, ...] | None:
        try:
            rows = self.backend.execute(
                "SELECT min, max, mean, stdv, median, mode, count, hist_min, hist_max, counts FROM band_statistics "
                "WHERE item_id = ? ORDER BY band", (item_id,)).fetchall()
        except self.backend.missing_table:
            return None  # a catalog from before statistics were kept, opened read-only: not migrated yet
        if not rows:
            return None
        return tuple(BandDistribution(*row[:9], counts=tuple(json.loads(row[9]))) for row in rows)

    def distributions(self, name: str, conditions: Sequence[tuple[str, Sequence[Any]]] = ()
                      ) -> tuple[BandDistribution, ...] | None:
        """The service's per-band statistics and histograms over all its items (those meeting ``conditions``), or
        None when some item's were never computed."""
        where, args = _conditions(conditions)
        ids = [row[0] for row in self.backend.execute(
            f"SELECT item_id FROM items WHERE service = ? {where} ORDER BY item_id", (name, *args))]
        per_item = [self._distributions(item_id) for item_id in ids]
        if not per_item or None in per_item:
            return None
        return merge_distributions(per_item)

    def _delete(self, name: str) -> int:
        self.backend.unindex_service(name)
        return self.backend.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount

    def remove_service(self, name: str) -> None:
        with self.backend.transaction():
            if self._delete(name) == 0:
                raise not_found(f"Service {name!r} does not exist.")

    def service_names(self) -> list[str]:
        return [row[0] for row in self.backend.execute("SELECT name FROM services ORDER BY name")]

    def service(self, name: str) -> ServiceRecord:
        db = self.backend
        row = db.execute("SELECT settings, description, fields FROM services WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise not_found(f"Service {name!r} does not exist.")
        templates = tuple(tuple(t) for t in db.execute(
            "SELECT name, description, rule, is_default FROM templates WHERE service = ? ORDER BY position",
            (name,)).fetchall())
        return _service_from_rows(name, *row, templates)

    def put_template(self, service: str, template: FunctionTemplate) -> None:
        """Add or replace ``service``'s template of that name; a default template replaces the previous default."""
        db = self.backend
        with db.transaction():
            if not db.execute("SELECT 1 FROM services WHERE name = ?", (service,)).fetchone():
                raise not_found(f"Service {service!r} does not exist.")
            if template.default:
                db.execute("UPDATE templates SET is_default = 0 WHERE service = ?", (service,))
            position = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM templates WHERE service = ?",
                                  (service,)).fetchone()[0]
            db.execute(
                "INSERT INTO templates(service, name, description, rule, is_default, position) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(service, name) DO UPDATE SET "
                "description = excluded.description, rule = excluded.rule, is_default = excluded.is_default",
                (service, template.name, template.description, json.dumps(template.rule), int(template.default),
                 position))

    def remove_template(self, service: str, name: str) -> None:
        with self.backend.transaction():
            if self.backend.execute("DELETE FROM templates WHERE service = ? AND name = ?",
                                    (service, name)).rowcount == 0:
                raise not_found(f"Service {service!r} has no template {name!r}.")

    def _items(self, name: str, where: str = "", args: Sequence[Any] = (), order: str = "object_id",
               page: str = "") -> tuple[RasterItem, ...]:
        return tuple(
            _item_from_row(item_id, raster, object_id, attributes, footprint)
            for item_id, raster, object_id, attributes, footprint in self.backend.execute(
                f"SELECT item_id, raster, object_id, attributes, footprint FROM items WHERE service = ? {where} "
                f"ORDER BY {order} {page}", (name, *args)).fetchall())

    def time_extent(self, service: ServiceRecord) -> tuple[int, int] | None:
        """(earliest start, latest end) of a time-aware service's items, epoch ms; None when it has no times."""
        settings = service.settings
        if not settings.start_time_field:
            return None
        by_name = {f.name: f for f in service.fields}
        first = self.field_column(by_name[settings.start_time_field])
        last = self.field_column(by_name[settings.end_time_field]) if settings.end_time_field else first
        row = self.backend.execute(f"SELECT MIN({first}), MAX(COALESCE({last}, {first})) FROM items "
                                   "WHERE service = ?", (service.name,)).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def items(self, name: str) -> tuple[RasterItem, ...]:
        """Every item of the service, by object id (for the CLI; requests use ``items_in``)."""
        return self._items(name)

    def items_in(self, name: str, bounds: tuple[float, float, float, float],
                 conditions: Sequence[tuple[str, Sequence[Any]]] = ()) -> tuple[RasterItem, ...]:
        """The service's items whose bounds meet ``bounds`` (xmin, ymin, xmax, ymax in the service SR), by object
        id, found through the item index; ``conditions`` are further SQL conditions with their bound parameters,
        built by the catalog's own methods (``time_condition``, ``where_condition``, over ``field_column``)."""
        return self.select_items(name, [self.bounds_condition(bounds), *conditions])

    def select_items(self, name: str, conditions: Sequence[tuple[str, Sequence[Any]]] = (),
                     order: Sequence[tuple[Field, bool]] = (), offset: int = 0,
                     limit: int | None = None) -> tuple[RasterItem, ...]:
        """The service's items meeting every condition, ordered by ``order`` ((field, descending) pairs; then by
        object id), ``limit`` of them from ``offset``."""
        where, args = _conditions(conditions)
        terms = [_ordered(self.field_column(field), descending) for field, descending in order]
        page = "LIMIT ? OFFSET ?" if limit is not None or offset else ""
        if page:
            args += [_NO_LIMIT if limit is None else limit, offset]
        return self._items(name, where, args, ", ".join([*terms, "object_id"]), page)

    def distinct_values(self, name: str, columns: Sequence[str],
                        conditions: Sequence[tuple[str, Sequence[Any]]] = ()) -> list[tuple]:
        """The distinct combinations of ``columns`` (SQL expressions from ``field_column``) among the items meeting
        ``conditions``, ascending; [()] for no columns when some item meets them."""
        where, args = _conditions(conditions)
        if not columns:
            return [()] if self.count_items(name, conditions) else []
        listed = ", ".join(columns)
        order = ", ".join(_ordered(column) for column in columns)
        return [tuple(row) for row in self.backend.execute(
            f"SELECT DISTINCT {listed} FROM items WHERE service = ? {where} ORDER BY {order}", (name, *args))]

    def count_items(self, name: str, conditions: Sequence[tuple[str, Sequence[Any]]] = ()) -> int:
        where, args = _conditions(conditions)
        return self.backend.execute(f"SELECT COUNT(*) FROM items WHERE service = ? {where}",
                                    (name, *args)).fetchone()[0]
