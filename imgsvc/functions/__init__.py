"""Raster functions: the ``renderingRule`` stage between render and finish (docs/protocol.md §6).

A rule's JSON becomes a ``Chain``: its functions innermost first, each built from a registry of validated argument
models.  The chain declares its buffer (the sum of its functions') and its output (band names, pixel type,
statistics), applies to a block, and casts to a function's ``outputPixelType`` where the rule asks for one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsvc import kernels
from imgsvc.errors import invalid, unsupported
from imgsvc.functions.base import BandsInfo, RasterFunction, with_dtype
from imgsvc.functions.focal import FocalStatistics

__all__ = ["BandsInfo", "Chain", "IDENTITY", "REGISTRY", "RasterFunction", "parse_rule"]

# Nested functions a rule may hold: deep enough for any real chain, bounded so a request cannot recurse for ever.
MAX_CHAIN_DEPTH = 16
# The service image as a function's raster input (docs/protocol.md §6.1).
SERVICE_IMAGE = "$$"
# numpy dtype of each outputPixelType (U1/U2/U4 are carried as U8, as everywhere).
DTYPE_OF_PIXEL_TYPE = {"U1": "uint8", "U2": "uint8", "U4": "uint8", "U8": "uint8", "S8": "int8", "U16": "uint16",
                       "S16": "int16", "U32": "uint32", "S32": "int32", "F32": "float32", "F64": "float64"}


class Identity(RasterFunction):
    """``None``: the service image as it is (the identity template, docs/protocol.md §6.2)."""

    NAME = "None"

    def describe(self, source: BandsInfo) -> BandsInfo:
        return source

    def apply(self, data, valid):
        return data, valid


REGISTRY: dict[str, type[RasterFunction]] = {cls.NAME.lower(): cls for cls in (Identity, FocalStatistics)}


@dataclass(frozen=True)
class Step:
    function: RasterFunction
    output_pixel_type: str | None  # None = the function's natural type


@dataclass(frozen=True)
class Chain:
    """The functions of a rule, innermost (applied first) first."""

    steps: tuple[Step, ...]

    @property
    def buffer(self) -> int:
        return sum(step.function.buffer for step in self.steps)

    @property
    def bandwise(self) -> bool:
        return all(step.function.bandwise for step in self.steps)

    @property
    def is_identity(self) -> bool:
        return all(isinstance(step.function, Identity) and step.output_pixel_type is None for step in self.steps)

    def describe(self, source: BandsInfo) -> BandsInfo:
        info = source
        for step in self.steps:
            info = step.function.describe(info)
            if step.output_pixel_type is not None:
                info = with_dtype(info, DTYPE_OF_PIXEL_TYPE[step.output_pixel_type])
        return info

    def apply(self, data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for step in self.steps:
            data, valid = step.function.apply(data, valid)
            if step.output_pixel_type is not None:
                data = kernels.convert_pixel_type(data, valid, step.output_pixel_type)
        return data, valid


IDENTITY = Chain(steps=())


def parse_rule(rule: Mapping[str, Any] | None) -> Chain:
    """The chain of a ``renderingRule`` object (None or ``{}`` = no processing)."""
    if not rule:
        return IDENTITY
    steps: list[Step] = []
    _parse(rule, steps, depth=1)
    return Chain(steps=tuple(reversed(steps)))


def _parse(rule: Any, steps: list[Step], depth: int) -> None:
    """Append ``rule``'s function, then its raster input's (outermost first)."""
    if depth > MAX_CHAIN_DEPTH:
        raise invalid(f"renderingRule nests more than {MAX_CHAIN_DEPTH} functions.", parameter="renderingRule")
    if not isinstance(rule, Mapping):
        raise invalid("renderingRule must be a JSON object with a rasterFunction.", parameter="renderingRule")
    fields = {key.lower(): value for key, value in rule.items()}
    name = fields.get("rasterfunction", "None")
    if not isinstance(name, str):
        raise invalid("renderingRule rasterFunction must be a function name.", parameter="renderingRule")
    cls = REGISTRY.get(name.lower())
    if cls is None:
        raise unsupported(f"renderingRule rasterFunction {name!r} is not supported yet.", parameter="renderingRule")
    if "rasterfunctiondefinition" in fields:
        raise unsupported("renderingRule rasterFunctionDefinition is not supported; send rasterFunction with "
                          "rasterFunctionArguments.", parameter="renderingRule")
    arguments = fields.get("rasterfunctionarguments") or {}
    if not isinstance(arguments, Mapping):
        raise invalid(f"renderingRule {cls.NAME} rasterFunctionArguments must be an object.",
                      parameter="renderingRule")
    variable = fields.get("variablename") or "Raster"
    if not isinstance(variable, str):
        raise invalid("renderingRule variableName must be a string.", parameter="renderingRule")
    named, raster = _arguments(cls, arguments, variable)
    steps.append(Step(function=cls(named), output_pixel_type=_pixel_type(fields.get("outputpixeltype"))))
    if isinstance(raster, Mapping):
        _parse(raster, steps, depth + 1)
    elif raster not in (None, SERVICE_IMAGE):
        raise unsupported(f"renderingRule {cls.NAME}: raster input {raster!r} is not supported yet (only the "
                          "service image, \"$$\", or a nested function).", parameter="renderingRule")


def _arguments(cls: type[RasterFunction], arguments: Mapping[str, Any], variable: str):
    """(the function's arguments by canonical name, its raster input); names matched case-insensitively."""
    spellings = {alias.lower(): canonical for canonical, aliases in cls.ARGUMENTS.items() for alias in aliases}
    raster_names = {variable.lower(), "raster", "dem"}
    named: dict[str, Any] = {}
    raster = None
    for key, value in arguments.items():
        lowered = key.lower()
        if lowered in raster_names:
            raster = value
        elif lowered in spellings:
            named[spellings[lowered]] = value
        else:
            raise invalid(f"renderingRule {cls.NAME} has no argument {key!r}.", parameter="renderingRule")
    return named, raster


def _pixel_type(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).upper()
    if text == "UNKNOWN":
        return None
    if text not in DTYPE_OF_PIXEL_TYPE:
        raise invalid(f"renderingRule outputPixelType {value!r} is not a pixel type.", parameter="renderingRule")
    return text
