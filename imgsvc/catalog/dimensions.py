"""Multidimensional files as mosaic datasets (docs/decisions.md "Multidimensional services").

A netCDF or Zarr file holds variables along dimensions (time, depth, ...).  GDAL shows each variable as a
subdataset whose bands are its 2-D slices, each band tagged with its value of every extra dimension.  The catalog
registers each slice as one item whose fields say which: ``Variable``, ``Dimensions`` (the dimension fields it has,
comma-separated) and one field per dimension, named as ArcGIS names them: ``StdTime`` for time (epoch ms UTC, a
DATE field, so that ``time`` and the root's ``timeInfo`` work on it), ``StdZ`` for the vertical (metres up: a depth
is negative), any other dimension under its own name (a DOUBLE field).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgsvc.catalog.attributes import parse_date
from imgsvc.catalog.records import Field, FieldType, RasterItem
from imgsvc.errors import invalid

STD_TIME = "StdTime"
STD_Z = "StdZ"
VARIABLE_FIELD = Field("Variable", FieldType.TEXT)
DIMENSIONS_FIELD = Field("Dimensions", FieldType.TEXT)
# The unit multidimensionalInfo gives StdTime (docs/protocol.md §4).
TIME_UNIT = "ISO8601"


@dataclass(frozen=True)
class CubeVariable:
    """One variable of a netCDF/Zarr file, as GDAL shows it: a subdataset whose bands are its 2-D slices.

    ``slices`` holds, per band, the raw value of each extra dimension (GDAL's text); ``dimensions`` each extra
    dimension's attributes (units, calendar, positive, axis, standard_name: whatever the file says)."""

    name: str
    description: str
    unit: str
    items: tuple[RasterItem, ...]  # one per band, in band order
    slices: tuple[dict[str, str], ...]
    dimensions: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Slices:
    """What registering multidimensional files gives the catalog: the items, their fields' values, the fields, and
    the variables as ServiceSettings.variables keeps them (each with its dimensions: name, unit, description)."""

    items: tuple[RasterItem, ...]
    attributes: tuple[dict[str, Any], ...]
    fields: tuple[Field, ...]
    variables: tuple[dict[str, Any], ...]


# Names and attributes that make a dimension the time or the vertical one (CF conventions' axis, standard_name,
# positive; common names where a file says nothing, as Zarr files read through GDAL do).
_TIME_NAMES = {"time", "t", "date"}
_VERTICAL_NAMES = {"depth", "z", "height", "altitude", "elevation", "lev", "level", "plev"}
_VERTICAL_STANDARD_NAMES = {"depth", "height", "altitude", "air_pressure", "model_level_number",
                            "height_above_mean_sea_level"}
_FIELD_NAME = re.compile(r"[^A-Za-z0-9_]")


def dimension_field(name: str, attributes: dict[str, str]) -> str:
    """The item field a file's dimension becomes: StdTime, StdZ, or the dimension's own name made a field name."""
    standard = attributes.get("standard_name", "").lower()
    axis = attributes.get("axis", "").upper()
    if axis == "T" or standard == "time" or name.lower() in _TIME_NAMES or " since " in attributes.get("units", ""):
        return STD_TIME
    if axis == "Z" or "positive" in attributes or standard in _VERTICAL_STANDARD_NAMES \
            or name.lower() in _VERTICAL_NAMES:
        return STD_Z
    field = _FIELD_NAME.sub("_", name)
    return field if field[:1].isalpha() else f"D_{field}"


def dimension_value(text: str, field: str, attributes: dict[str, str], where: str) -> float | int:
    """A slice's value of one dimension as its field holds it; ``where`` names the file and variable in errors."""
    if field == STD_TIME:
        return time_value(text, attributes, where)
    try:
        value = float(text)
    except ValueError:
        raise invalid(f"{where}: dimension value {text!r} is not a number.") from None
    if field == STD_Z and _points_down(attributes):
        return 0.0 - value  # not -value: a depth of 0 is 0, not -0
    return value


def _points_down(attributes: dict[str, str]) -> bool:
    """Whether a vertical dimension counts downwards: CF's positive="down", or a depth that does not say."""
    positive = attributes.get("positive", "").lower()
    if positive:
        return positive == "down"
    return attributes.get("standard_name", "").lower() == "depth"


# CF time units ("<unit> since <reference>"): milliseconds per unit.  Months and years are refused: CF defines them
# as fractions of a tropical year, which no one means.
_TIME_UNITS = {"millisecond": 1, "milliseconds": 1, "ms": 1, "msec": 1,
               "second": 1000, "seconds": 1000, "s": 1000, "sec": 1000, "secs": 1000,
               "minute": 60_000, "minutes": 60_000, "min": 60_000, "mins": 60_000,
               "hour": 3_600_000, "hours": 3_600_000, "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000,
               "day": 86_400_000, "days": 86_400_000, "d": 86_400_000,
               "week": 604_800_000, "weeks": 604_800_000}
# Calendars that count days as the proleptic Gregorian calendar does (for any date after 1582).
_GREGORIAN = {"", "standard", "gregorian", "proleptic_gregorian"}
_REFERENCE = re.compile(r"^(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?"
                        r"\s*(Z|UTC|[+-]\d{1,2}(?::?\d{2})?)?$", re.IGNORECASE)


def time_value(text: str, attributes: dict[str, str], where: str) -> int:
    """Epoch milliseconds UTC of a time dimension's value: a number in CF units ("days since 2020-01-01"), or an
    ISO 8601 date."""
    units = attributes.get("units", "")
    try:
        number = float(text)
    except ValueError:
        moment = parse_date(text)
        if moment is None:
            raise invalid(f"{where}: time value {text!r} is neither a number nor an ISO 8601 date.") from None
        return moment
    unit, since, reference = units.strip().partition(" since ")
    if not since or unit.lower() not in _TIME_UNITS:
        raise invalid(f"{where}: time units {units!r} are not CF time units ('<seconds|minutes|hours|days|weeks> "
                      "since <date>').")
    calendar = attributes.get("calendar", "").lower()
    if calendar not in _GREGORIAN:
        raise invalid(f"{where}: calendar {calendar!r} is not supported (only the standard Gregorian calendar).")
    return reference_time(reference, where) + round(number * _TIME_UNITS[unit.lower()])


def reference_time(text: str, where: str) -> int:
    """Epoch ms of a CF reference date ("2000-1-1", "1970-01-01 00:00:00", "2020-01-01T00:00:00Z", "... +2")."""
    match = _REFERENCE.match(text.strip())
    if match is None:
        raise invalid(f"{where}: time reference {text!r} is not a date.")
    year, month, day, hour, minute, second, zone = match.groups()
    seconds = float(second or 0)
    moment = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(seconds),
                         round((seconds % 1) * 1e6), tzinfo=dt.timezone.utc)
    if zone and zone.upper() not in ("Z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = (int(digits), 0) if len(digits) <= 2 else (int(digits[:-2]), int(digits[-2:]))
        moment -= sign * dt.timedelta(hours=hours, minutes=minutes)
    return round(moment.timestamp() * 1000)


def slices_of(files: Sequence[tuple[Path, Sequence[CubeVariable]]], chosen: Sequence[str] = ()) -> Slices:
    """The items of the variables of each file (only the ``chosen`` ones, when given): one per slice, in file,
    variable and band order.  The refusals name the file and variable."""
    items, attributes, variables, fields = [], [], {}, {}
    wanted = set(chosen)
    found = {variable.name for _, file_variables in files for variable in file_variables}
    if wanted - found:
        raise invalid(f"--variable {sorted(wanted - found)[0]!r} is not a variable of the files "
                      f"(they have {', '.join(sorted(found))}).")
    for path, file_variables in files:
        for variable in file_variables:
            if wanted and variable.name not in wanted:
                continue
            where = f"{path} variable {variable.name}"
            dims = {name: dimension_field(name, attrs) for name, attrs in variable.dimensions.items()}
            if len(set(dims.values())) < len(dims):
                raise invalid(f"{where}: two of its dimensions ({', '.join(dims)}) would both be "
                              f"{next(f for f in dims.values() if list(dims.values()).count(f) > 1)}.")
            known = variables.setdefault(variable.name, {
                "name": variable.name, "description": variable.description, "unit": variable.unit,
                "dimensions": [{"name": field, "description": name,
                                "unit": TIME_UNIT if field == STD_TIME else variable.dimensions[name].get("units", "")}
                               for name, field in dims.items()]})
            if [d["name"] for d in known["dimensions"]] != list(dims.values()):
                raise invalid(f"{where}: its dimensions ({', '.join(dims.values())}) differ from those the variable "
                              f"has in another file ({', '.join(d['name'] for d in known['dimensions'])}).")
            for field in dims.values():
                fields.setdefault(field, Field(field, FieldType.DATE if field == STD_TIME else FieldType.DOUBLE))
            for band, (item, values) in enumerate(zip(variable.items, variable.slices), start=1):
                attributes.append({
                    "Name": f"{path.stem}_{variable.name}_{band}", VARIABLE_FIELD.name: variable.name,
                    DIMENSIONS_FIELD.name: ",".join(dims.values()),
                    **{dims[name]: dimension_value(text, dims[name], variable.dimensions[name], where)
                       for name, text in values.items()}})
                items.append(item)
    if not items:
        raise invalid("The files have no variable to serve.")
    return Slices(items=tuple(items), attributes=tuple(attributes),
                  fields=(VARIABLE_FIELD, DIMENSIONS_FIELD, *fields.values()), variables=tuple(variables.values()))
