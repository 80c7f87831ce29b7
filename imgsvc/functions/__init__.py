"""Raster functions: the ``renderingRule`` stage between render and finish (docs/protocol.md §6).

A rule's JSON becomes a ``Chain``: a tree of function calls, each built from a registry of validated argument
models, whose leaves are the rendered service image (``"$$"``, or a raster argument left out).  The chain declares
its buffer (a call's own plus the largest of its inputs') and its output (band names, pixel type, statistics),
applies to a block, and casts a call's output to its ``outputPixelType`` where the rule asks for one.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from imgsvc import kernels
from imgsvc.errors import invalid, unsupported
from imgsvc.block import BandStats
from imgsvc.catalog.records import FunctionTemplate
from imgsvc.functions.base import BandsInfo, Histogram, Raster, RasterFunction, with_dtype
from imgsvc.functions.arithmetic import Arithmetic, Local
from imgsvc.functions.bands import NDVI, BandArithmetic, CompositeBand, ExtractBand
from imgsvc.functions.clip import Clip
from imgsvc.functions.colormap import Colormap
from imgsvc.functions.convolution import Convolution
from imgsvc.functions.focal import FocalStatistics
from imgsvc.functions.remap import ContrastBrightness, Grayscale, Mask, Remap, Threshold, UnitConversion
from imgsvc.functions.resample import Resample
from imgsvc.functions.stretch import Stretch
from imgsvc.functions.surface import Aspect, Curvature, Hillshade, ShadedRelief, Slope
from imgsvc.pixel_types import PIXEL_TYPES

if TYPE_CHECKING:
    from imgsvc.plan import OutputGrid

__all__ = ["BandsInfo", "Chain", "Histogram", "IDENTITY", "REGISTRY", "Raster", "RasterFunction", "chain_for",
           "parse_rule"]

# Nested calls a rule may hold: deep enough for any real chain, bounded so a request cannot recurse for ever.
MAX_CHAIN_DEPTH = 16
# The service image as a function's raster input, and one catalog item by its OBJECTID (docs/protocol.md §6.1,
# docs/decisions.md Q16).
SERVICE_IMAGE_REFERENCE = "$$"
ITEM_REFERENCE = re.compile(r"\$([1-9][0-9]{0,9})")
# numpy dtype of each outputPixelType (U1/U2/U4 are carried as U8, as everywhere).
DTYPE_OF_PIXEL_TYPE = {t.name: t.dtype for t in PIXEL_TYPES if t.dtype and not t.complex}


class Identity(RasterFunction):
    """``None``: the service image as it is (the identity template, docs/protocol.md §6.2)."""

    NAME = "None"

    def describe(self, inputs):
        return inputs[0]

    def apply(self, inputs, grid):
        return inputs[0].data, inputs[0].valid


# Every function a rendering rule can name, by its ArcGIS name.
REGISTRY: dict[str, type[RasterFunction]] = {cls.NAME.lower(): cls for cls in (
    Identity, FocalStatistics, Convolution, Resample, ExtractBand, CompositeBand, NDVI, BandArithmetic, Arithmetic,
    Local, Clip, Hillshade, Slope, Aspect, Curvature, ShadedRelief, Stretch, Colormap, Remap, Mask, Threshold,
    Grayscale, ContrastBrightness, UnitConversion)}
# Functions whose output is their input's pixels.
PIXELS_UNCHANGED = (Identity, Resample)


class ServiceImage:
    """A leaf of the chain: the service image rendered on the read grid."""

    buffer = 0
    bandwise = True
    is_identity = True
    needs_histograms = False

    @staticmethod
    def describe(source: BandsInfo) -> BandsInfo:
        return source

    @staticmethod
    def apply(source: Raster, grid, items) -> Raster:
        return source

    item_ids = frozenset()


SERVICE_IMAGE = ServiceImage()


@dataclass(frozen=True)
class ItemImage:
    """A leaf of the chain: one catalog item (``"$<n>"``, n its OBJECTID) rendered alone on the read grid."""

    object_id: int
    buffer = 0
    bandwise = True
    is_identity = False
    needs_histograms = False

    @property
    def item_ids(self) -> frozenset[int]:
        return frozenset((self.object_id,))

    def describe(self, source: BandsInfo) -> BandsInfo:
        return source  # an item has the service's bands

    def apply(self, source: Raster, grid, items) -> Raster:
        return items[self.object_id]


@dataclass(frozen=True)
class Constant:
    """A leaf of the chain: a number standing where a raster may (``"Rasters": ["$$", 0.3048]``)."""

    value: float
    buffer = 0
    bandwise = True
    is_identity = False
    needs_histograms = False

    def describe(self, source: BandsInfo) -> BandsInfo:
        return BandsInfo(("Constant",), "float64", (BandStats(self.value, self.value, self.value, 0.0),))

    item_ids = frozenset()

    def apply(self, source: Raster, grid, items) -> Raster:
        shape = source.valid.shape
        return Raster(np.broadcast_to(np.float64(self.value), (1, *shape)), np.broadcast_to(True, shape),
                      self.describe(source.info))


@dataclass(frozen=True)
class Call:
    """One function applied to its raster inputs (nested calls or the service image)."""

    function: RasterFunction
    inputs: tuple[Union[Call, ServiceImage, ItemImage, Constant], ...]
    output_pixel_type: str | None  # None = the function's natural type

    @property
    def buffer(self) -> int:
        return self.function.buffer + max((node.buffer for node in self.inputs), default=0)

    @property
    def bandwise(self) -> bool:
        return self.function.bandwise and all(node.bandwise for node in self.inputs)

    @property
    def needs_histograms(self) -> bool:
        return self.function.needs_histograms or any(node.needs_histograms for node in self.inputs)

    def describe(self, source: BandsInfo) -> BandsInfo:
        info = self.function.describe([node.describe(source) for node in self.inputs])
        if self.output_pixel_type is not None:
            info = with_dtype(info, DTYPE_OF_PIXEL_TYPE[self.output_pixel_type])
        return info

    @property
    def item_ids(self) -> frozenset[int]:
        return frozenset().union(*(node.item_ids for node in self.inputs))

    def apply(self, source: Raster, grid: OutputGrid, items: Mapping[int, Raster]) -> Raster:
        inputs = [node.apply(source, grid, items) for node in self.inputs]
        info = self.describe(source.info)
        data, valid = self.function.apply(inputs, grid)
        if self.output_pixel_type is not None:
            data = kernels.convert_pixel_type(data, valid, self.output_pixel_type)
        return Raster(data, valid, info)

    @property
    def is_identity(self) -> bool:
        return (isinstance(self.function, PIXELS_UNCHANGED) and self.output_pixel_type is None
                and all(node.is_identity for node in self.inputs))


@dataclass(frozen=True)
class Chain:
    """A parsed rendering rule: its outermost call, or None for no processing; ``resampling`` is the one a Resample
    over the service image asks the render stage for (None: the request's or the service's)."""

    root: Call | None
    resampling: str | None = None

    @property
    def buffer(self) -> int:
        """Pixels of margin the whole chain reads around each output pixel."""
        return self.root.buffer if self.root else 0

    @property
    def bandwise(self) -> bool:
        return self.root.bandwise if self.root else True

    @property
    def needs_histograms(self) -> bool:
        """Whether some function reads the service's histograms (fetched from the catalog only then)."""
        return self.root.needs_histograms if self.root else False

    @property
    def is_identity(self) -> bool:
        """True when the rule changes no pixel (no rule, or the None template without outputPixelType)."""
        return self.root is None or self.root.is_identity

    def describe(self, source: BandsInfo) -> BandsInfo:
        return self.root.describe(source) if self.root else source

    @property
    def item_ids(self) -> frozenset[int]:
        """The OBJECTIDs of the catalog items the chain reads alone (``"$<n>"``)."""
        return self.root.item_ids if self.root else frozenset()

    def apply(self, source: Raster, grid: OutputGrid, items: Mapping[int, Raster] | None = None) -> Raster:
        """The chain's output from the rendered service image ``source`` (and the rendered ``items`` it names) on
        ``grid`` (the read grid)."""
        return self.root.apply(source, grid, items or {}) if self.root else source


IDENTITY = Chain(root=None)


def parse_rule(rule: Mapping[str, Any] | None, templates: Sequence[FunctionTemplate] = ()) -> Chain:
    """The chain of a ``renderingRule`` object (None or ``{}`` = no processing).

    ``rasterFunction`` may name one of ``templates`` (case-insensitively; a template wins over a well-known function
    of the same name): the template's rule, its outermost arguments overridden by the ones the request gives
    (docs/protocol.md §6.1).  A template's own rule names well-known functions only.
    """
    if not rule:
        return IDENTITY
    root = _call(_expand(rule, templates), depth=1)
    return Chain(root=root, resampling=_service_resampling(root))


def chain_for(rule: Mapping[str, Any] | None, templates: Sequence[FunctionTemplate]) -> Chain:
    """The chain a request gets: its rule, or the service's default template when it sends none."""
    if not rule:
        default = next((t for t in templates if t.default), None)
        return parse_rule(default.rule) if default else IDENTITY
    return parse_rule(rule, templates)


def _expand(rule: Any, templates: Sequence[FunctionTemplate]) -> Any:
    if not templates or not isinstance(rule, Mapping):
        return rule
    fields = {key.lower(): value for key, value in rule.items()}
    name = fields.get("rasterfunction")
    template = next((t for t in templates if isinstance(name, str) and t.name.lower() == name.lower()), None)
    if template is None:
        return rule
    overrides = fields.get("rasterfunctionarguments") or {}
    if not isinstance(overrides, Mapping):
        raise invalid(f"renderingRule {template.name} rasterFunctionArguments must be an object.",
                      parameter="renderingRule")
    expanded = {key.lower(): value for key, value in template.rule.items()}
    arguments = dict(expanded.get("rasterfunctionarguments") or {})
    spelled = {key.lower(): key for key in arguments}
    for key, value in overrides.items():  # an override replaces the template's argument of that name, any case
        arguments[spelled.get(key.lower(), key)] = value
    expanded["rasterfunctionarguments"] = arguments
    if "outputpixeltype" in fields:
        expanded["outputpixeltype"] = fields["outputpixeltype"]
    return expanded


def _service_resampling(root: Call) -> str | None:
    """The resampling chosen by the chain's Resample calls, each of which must stand over the service image (the
    render stage resamples it; resampling another function's output is not built)."""
    chosen = set()
    calls = [root]
    while calls:
        call = calls.pop()
        nodes = [node for node in call.inputs if isinstance(node, Call)]
        if isinstance(call.function, Resample):
            if nodes:
                raise unsupported(f"renderingRule Resample over {nodes[0].function.NAME} is not supported yet: "
                                  "Resample applies to the service image only.", parameter="renderingRule")
            if call.function.resampling is not None:
                chosen.add(call.function.resampling)
        calls.extend(nodes)
    if len(chosen) > 1:
        raise invalid(f"renderingRule Resample functions ask for different resamplings ({', '.join(sorted(chosen))})"
                      " of the one service image.", parameter="renderingRule")
    return chosen.pop() if chosen else None


def _call(rule: Any, depth: int) -> Call:
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
    if not isinstance(fields.get("variablename", ""), str):
        raise invalid("renderingRule variableName must be an argument name.", parameter="renderingRule")
    named, rasters = _arguments(cls, arguments)
    inputs: list[Call | ServiceImage | ItemImage | Constant] = []
    for canonical in cls.RASTER_INPUTS:
        value = rasters.get(canonical)
        if canonical in cls.RASTER_LISTS:
            if not isinstance(value, list) or not value:
                raise invalid(f"renderingRule {cls.NAME} argument {canonical} must be a list of rasters.",
                              parameter="renderingRule")
            inputs.extend(_raster_input(cls, item, depth) for item in value)
        else:
            inputs.append(_raster_input(cls, value, depth))
    return Call(function=cls(named), inputs=tuple(inputs),
                output_pixel_type=_pixel_type(fields.get("outputpixeltype")))


def _arguments(cls: type[RasterFunction], arguments: Mapping[str, Any]):
    """(the function's arguments, its raster inputs), each by canonical name; names matched case-insensitively.

    A raster input left out is the service image, whatever ``variableName`` calls it (clients send Hillshade with
    ``variableName`` "DEM" or "Raster" alike, docs/protocol.md §6.1)."""
    spellings = {alias.lower(): name for name, aliases in cls.ARGUMENTS.items() for alias in aliases}
    raster_spellings = {alias.lower(): name for name, aliases in cls.RASTER_INPUTS.items() for alias in aliases}
    named: dict[str, Any] = {}
    rasters: dict[str, Any] = {}
    for key, value in arguments.items():
        lowered = key.lower()
        if lowered in raster_spellings:
            rasters[raster_spellings[lowered]] = value
        elif lowered in spellings:
            named[spellings[lowered]] = value
        else:
            raise invalid(f"renderingRule {cls.NAME} has no argument {key!r}.", parameter="renderingRule")
    return named, rasters


def _raster_input(cls: type[RasterFunction], value: Any, depth: int) -> Call | ServiceImage | ItemImage | Constant:
    """A raster argument's value: left out or "$$" (the service image), "$<n>" (catalog item n alone), a nested
    function, or a number."""
    if value is None or value == SERVICE_IMAGE_REFERENCE:
        return SERVICE_IMAGE
    if isinstance(value, str) and (match := ITEM_REFERENCE.fullmatch(value)):
        return ItemImage(int(match.group(1)))
    if isinstance(value, Mapping):
        return _call(value, depth + 1)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return Constant(float(value))
    raise invalid(f"renderingRule {cls.NAME}: raster input {value!r} is not a raster: give the service image "
                  "(\"$$\"), a catalog item (\"$<OBJECTID>\"), a nested function or a number.",
                  parameter="renderingRule")


def _pixel_type(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).upper()
    if text == "UNKNOWN":
        return None
    if text not in DTYPE_OF_PIXEL_TYPE:
        raise invalid(f"renderingRule outputPixelType {value!r} is not a pixel type.", parameter="renderingRule")
    return text
