"""Which slices of a multidimensional service a request means, and what the service's dimensions hold.

A multidimensional service's items are slices (``imgsvc.catalog.dimensions``): one variable at one value of each of
its dimensions.  A request picks them with the mosaic rule's ``multidimensionalDefinition`` or with ``sliceId``
(an index into ``/slices``); without either it sees its default variable (docs/decisions.md "Multidimensional
services").  ``/multidimensionalInfo`` and ``/slices`` describe what is there.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imgsvc.catalog.attributes import parse_date
from imgsvc.catalog.dimensions import STD_TIME, VARIABLE_FIELD
from imgsvc.catalog.records import Field, FieldType, ServiceRecord
from imgsvc.errors import invalid, unsupported


@dataclass(frozen=True)
class DimensionFilter:
    """One ``multidimensionalDefinition`` entry: a variable ("" = every variable the definition names, or the
    default one) and, when ``dimension`` is given, the values of it that are wanted: single values, or (lo, hi)
    ranges with both ends included."""

    variable: str = ""
    dimension: str = ""
    values: tuple[Any, ...] = ()
    is_slice: bool = True


@dataclass(frozen=True)
class Slice:
    """One slice as ``/slices`` lists it: its id, its variable and its value of each of the variable's dimensions."""

    slice_id: int
    variable: str
    values: tuple[tuple[str, float | int], ...]  # (dimension field, value), in the variable's dimension order


def refuse_unless_multidimensional(service: ServiceRecord, what: str, parameter: str) -> None:
    if not service.settings.has_multidimensions:
        raise unsupported(f"{what} is not supported: the service is not multidimensional.",
                          parameter=parameter)


def _variable(service: ServiceRecord, name: str, parameter: str) -> dict:
    for variable in service.settings.variables:
        if variable["name"].lower() == name.lower():
            return variable
    names = ", ".join(v["name"] for v in service.settings.variables)
    raise invalid(f"{parameter}: variable {name!r} is not a variable of the service ({names}).", parameter=parameter)


def variable_condition(catalog, service: ServiceRecord, name: str | None, parameter: str) -> tuple[str, list]:
    """The items of variable ``name`` (None = the service's default, its first variable)."""
    variable = _variable(service, name, parameter) if name else service.settings.variables[0]
    return f"{catalog.field_column(VARIABLE_FIELD)} = ?", [variable["name"]]


def definition_conditions(catalog, service: ServiceRecord, definition: Sequence[DimensionFilter],
                          parameter: str = "mosaicRule") -> list[tuple[str, list]]:
    """The SQL condition (one, in a list) selecting the slices a ``multidimensionalDefinition`` means.

    Entries naming the same variable are all met; entries naming different variables select each one's slices
    (so two variables can be asked for at once); an entry with no variable applies to every variable named, or,
    when none is, to the default variable."""
    refuse_unless_multidimensional(service, "mosaicRule multidimensionalDefinition", parameter)
    by_variable: dict[str, list[DimensionFilter]] = {}
    shared = []
    for entry in definition:
        if entry.variable:
            by_variable.setdefault(_variable(service, entry.variable, parameter)["name"], []).append(entry)
        else:
            shared.append(entry)
    if not by_variable:
        by_variable[service.settings.variables[0]["name"]] = []
    groups, params = [], []
    for name, entries in by_variable.items():
        sql, args = variable_condition(catalog, service, name, parameter)
        variable = _variable(service, name, parameter)
        for entry in [*entries, *shared]:
            if not entry.dimension:
                continue
            dimension_sql, dimension_args = _dimension_condition(catalog, variable, entry, parameter)
            sql += f" AND ({dimension_sql})"
            args += dimension_args
        groups.append(f"({sql})")
        params += args
    return [(" OR ".join(groups), params)]


def _dimension_condition(catalog, variable: dict, entry: DimensionFilter, parameter: str) -> tuple[str, list]:
    names = [d["name"] for d in variable["dimensions"]]
    dimension = next((n for n in names if n.lower() == entry.dimension.lower()), None)
    if dimension is None:
        raise invalid(f"{parameter}: variable {variable['name']!r} has no dimension {entry.dimension!r} "
                      f"(it has {', '.join(names) or 'none'}).", parameter=parameter)
    if not entry.values:
        return "1 = 1", []  # every value of the dimension
    column = field_column_of(catalog, dimension)
    terms, args = [], []
    for value in entry.values:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise invalid(f"{parameter}: a range of {dimension} values is [low, high], got {list(value)}.",
                              parameter=parameter)
            low, high = sorted(_number(v, dimension, parameter) for v in value)
            terms.append(f"{column} BETWEEN ? AND ?")
            args += [low, high]
        else:
            terms.append(f"{column} = ?")
            args.append(_number(value, dimension, parameter))
    return " OR ".join(terms), args


def field_column_of(catalog, dimension: str) -> str:
    """The SQL expression of a dimension's item field."""
    return catalog.field_column(Field(dimension, FieldType.DATE if dimension == STD_TIME else FieldType.DOUBLE))


def _number(value: Any, dimension: str, parameter: str) -> float | int:
    """A dimension value as the items hold it: a number; for StdTime also an ISO 8601 date (as epoch ms)."""
    if isinstance(value, bool):
        raise invalid(f"{parameter}: {value!r} is not a value of {dimension}.", parameter=parameter)
    if isinstance(value, (int, float)):
        return int(value) if dimension == STD_TIME else float(value)
    if dimension == STD_TIME and isinstance(value, str) and (moment := parse_date(value)) is not None:
        return moment
    raise invalid(f"{parameter}: {value!r} is not a value of {dimension}.", parameter=parameter)


def slices(catalog, service: ServiceRecord, definition: Sequence[DimensionFilter] = ()) -> tuple[Slice, ...]:
    """The service's slices, ids from 0 over all of them: variable by variable (in the service's order), then by
    the values of its dimensions, ascending (docs/decisions.md "Multidimensional services"); with a
    ``definition``, only the slices it selects (keeping their ids)."""
    refuse_unless_multidimensional(service, "slices", "multidimensionalDefinition")
    wanted = None
    if definition:
        conditions = definition_conditions(catalog, service, definition, "multidimensionalDefinition")
        wanted = set()
    found = []
    for variable in service.settings.variables:
        dims = [d["name"] for d in variable["dimensions"]]
        columns = [field_column_of(catalog, d) for d in dims]
        condition = variable_condition(catalog, service, variable["name"], "sliceId")
        rows = catalog.distinct_values(service.name, columns, [condition])
        found += [(variable["name"], tuple(zip(dims, row))) for row in rows]
        if wanted is not None:
            wanted |= {(variable["name"], tuple(zip(dims, row)))
                       for row in catalog.distinct_values(service.name, columns, [condition, *conditions])}
    return tuple(Slice(slice_id=i, variable=name, values=values) for i, (name, values) in enumerate(found)
                 if wanted is None or (name, values) in wanted)


def slice_conditions(catalog, service: ServiceRecord, slice_id: int) -> list[tuple[str, list]]:
    """The items of slice ``slice_id``."""
    refuse_unless_multidimensional(service, "sliceId", "sliceId")
    every = slices(catalog, service)
    if not 0 <= slice_id < len(every):
        raise invalid(f"sliceId {slice_id} does not exist: the service has slices 0 to {len(every) - 1}.",
                      parameter="sliceId")
    chosen = every[slice_id]
    sql, args = variable_condition(catalog, service, chosen.variable, "sliceId")
    for dimension, value in chosen.values:
        sql += f" AND {field_column_of(catalog, dimension)} = ?"
        args.append(value)
    return [(sql, args)]


def slice_definition(chosen: Slice) -> list[dict]:
    """A slice as the multidimensionalDefinition that selects it (the form /slices answers with)."""
    return [{"variableName": chosen.variable, "dimensionName": dimension, "values": [value], "isSlice": True}
            for dimension, value in chosen.values]


# multidimensionalInfo's returnDimensionValues: whether each dimension lists its values (docs/decisions.md).
RETURN_DIMENSION_VALUES = ("always", "never", "ifIrregular")
# Regular time steps are named in the largest unit that divides them (ArcGIS's intervalUnit names).
_TIME_STEPS = (("Weeks", 604_800_000), ("Days", 86_400_000), ("Hours", 3_600_000), ("Minutes", 60_000),
               ("Seconds", 1000), ("Milliseconds", 1))


def info(catalog, service: ServiceRecord, return_values: str = "always") -> list[dict]:
    """The variables of ``/multidimensionalInfo``: each with its dimensions (field, extent, the values, whether they
    are evenly spaced and by how much) and its statistics over all of its slices."""
    refuse_unless_multidimensional(service, "multidimensionalInfo", "multidimensionalInfo")
    if return_values.lower() not in (v.lower() for v in RETURN_DIMENSION_VALUES):
        raise invalid(f"returnDimensionValues must be one of {', '.join(RETURN_DIMENSION_VALUES)}, got "
                      f"{return_values!r}.", parameter="returnDimensionValues")
    variables = []
    for variable in service.settings.variables:
        condition = variable_condition(catalog, service, variable["name"], "multidimensionalInfo")
        dimensions = []
        for dimension in variable["dimensions"]:
            name = dimension["name"]
            rows = catalog.distinct_values(service.name, [field_column_of(catalog, name)], [condition])
            values = [row[0] for row in rows if row[0] is not None]
            interval, unit = _interval(values, name)
            doc = {"name": name, "description": dimension["description"], "unit": dimension["unit"],
                   "field": name, "extent": [values[0], values[-1]] if values else [],
                   "hasRanges": False, "hasRegularIntervals": interval is not None}
            if interval is not None:
                doc.update(interval=interval, intervalUnit=unit)
            if return_values.lower() == "always" or (return_values.lower() == "ifirregular" and interval is None):
                doc["values"] = values
            dimensions.append(doc)
        doc = {"name": variable["name"], "description": variable["description"], "unit": variable["unit"],
               "dimensions": dimensions}
        distributions = catalog.distributions(service.name, [condition])
        if distributions:
            doc["statistics"] = [{"min": d.min, "max": d.max, "mean": d.mean, "standardDeviation": d.stdv}
                                 for d in distributions]
        variables.append(doc)
    return variables


def _interval(values: list, dimension: str) -> tuple[float | int | None, str]:
    """The step between evenly spaced values and its unit (None when they are not, or fewer than two)."""
    if len(values) < 2:
        return None, ""
    steps = {b - a for a, b in zip(values, values[1:])}
    if dimension == STD_TIME and len(steps) > 1:
        return _calendar_interval(values)
    if len(steps) != 1:
        return None, ""
    step = steps.pop()
    if dimension != STD_TIME:
        return step, ""
    for unit, ms in _TIME_STEPS:
        if step % ms == 0:
            return step // ms, unit
    return step, "Milliseconds"


def _calendar_interval(values: list[int]) -> tuple[int | None, str]:
    """Monthly or yearly times (same day and time of month, a constant number of months apart), whose steps in
    milliseconds differ with the months' lengths."""
    moments = [dt.datetime.fromtimestamp(v / 1000, dt.timezone.utc) for v in values]
    if len({(m.day, m.time()) for m in moments}) != 1:
        return None, ""
    months = {(b.year - a.year) * 12 + b.month - a.month for a, b in zip(moments, moments[1:])}
    if len(months) != 1:
        return None, ""
    step = months.pop()
    return (step // 12, "Years") if step % 12 == 0 else (step, "Months")
