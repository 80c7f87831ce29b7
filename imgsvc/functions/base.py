"""What a raster function is: a validated argument model, the margin it reads, what it outputs, and its pixels.

The shape follows titiler's ``algorithm/base.py``: each function declares its ``buffer`` (the pixels of margin it
needs around the output, so that tiles computed apart meet without seams) and its output (band count, pixel type,
statistics); the plan widens the read grid by the whole chain's buffer and the finish step crops it off.
"""
from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from imgsvc.block import BandStats
from imgsvc.errors import invalid

if TYPE_CHECKING:
    from imgsvc.plan import OutputGrid


@dataclass(frozen=True)
class Histogram:
    """One band's histogram: ``len(counts)`` equal bins over [``min``, ``max``] (the service's, as /histograms
    reports it; 8-bit data has single-value bins centred on each value)."""

    min: float
    max: float
    counts: tuple[int, ...]


@dataclass(frozen=True)
class BandsInfo:
    """What a stage outputs: band names, pixel type (numpy dtype name), per-band statistics (None = unknown,
    then the default stretch measures the block itself) and per-band histograms (None = unknown; the service fills
    them only for a chain that ``needs_histograms``)."""

    names: tuple[str, ...]
    dtype: str
    stats: tuple[BandStats, ...] | None
    histograms: tuple[Histogram, ...] | None = None

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Raster:
    """A function's raster input: pixels on the read grid and what they are.

    ``data`` is (bands, rows, cols), ``valid`` (rows, cols) bool.  A constant input (a number where a raster may
    stand) is one band broadcast over the grid, read-only.
    """

    data: np.ndarray
    valid: np.ndarray
    info: BandsInfo


Pixels = tuple[np.ndarray, np.ndarray]  # what a function returns: (data, valid) as in Raster


class RasterFunction(abc.ABC):
    """One function of a rendering rule, its arguments validated when it is built (from the rule's JSON).

    ``ARGUMENTS`` maps each argument's canonical name to its accepted spellings and ``RASTER_INPUTS`` does the same
    for the arguments that take rasters, in the order ``describe`` and ``apply`` receive them (names matched
    case-insensitively, docs/protocol.md §6.1); an argument in ``RASTER_LISTS`` takes a list of rasters (and
    numbers), which stand in that order.  ``bandwise`` functions treat each band alone, so a band selection may be
    made before them (reading fewer bands) without changing the result.
    """

    NAME: ClassVar[str]
    ARGUMENTS: ClassVar[dict[str, tuple[str, ...]]] = {}
    RASTER_INPUTS: ClassVar[dict[str, tuple[str, ...]]] = {"Raster": ("Raster", "DEM")}
    RASTER_LISTS: ClassVar[frozenset[str]] = frozenset()
    bandwise: ClassVar[bool] = True
    # True when ``apply`` may read its input's ``info.histograms`` (a class attribute, or a property when it
    # depends on the arguments): only then does the service fetch them.
    needs_histograms: bool = False

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments

    @property
    def buffer(self) -> int:
        """Pixels of margin the function reads around each output pixel."""
        return 0

    @abc.abstractmethod
    def describe(self, inputs: Sequence[BandsInfo]) -> BandsInfo:
        """The function's output for raster inputs described by ``inputs`` (in RASTER_INPUTS order)."""

    @abc.abstractmethod
    def apply(self, inputs: Sequence[Raster], grid: OutputGrid) -> Pixels:
        """The function's pixels from its raster inputs (in RASTER_INPUTS order), all on ``grid`` (whose transform
        and CRS give cell sizes); the output is described by ``describe`` of the inputs' ``info``."""

    # ---- argument helpers for the subclasses: each refuses a bad value naming the function and argument ----

    def has(self, name: str) -> bool:
        return name in self.arguments

    def number(self, name: str, default: float | None = None, low: float | None = None,
               high: float | None = None) -> float:
        return self._number(self.arguments.get(name, default), name, low, high)

    def _number(self, value: Any, name: str, low: float | None, high: float | None) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.bad(name, f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.bad(name, f"must be a number, got {value!r}")
        if low is not None and value < low:
            raise self.bad(name, f"must be at least {low:g}, got {value!r}")
        if high is not None and value > high:
            raise self.bad(name, f"must be at most {high:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int | None = None, low: int | None = None, high: int | None = None) -> int:
        value = self.number(name, default, low, high)
        if value != int(value):
            raise self.bad(name, f"must be an integer, got {value!r}")
        return int(value)

    def numbers(self, name: str, default: Sequence[float] | None = None, low: float | None = None,
                high: float | None = None) -> tuple[float, ...]:
        """A list of numbers (a single number counts as a list of one)."""
        value = self.arguments.get(name, default)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise self.bad(name, f"must be a list of numbers, got {value!r}")
        return tuple(self._number(v, name, low, high) for v in value)

    def text(self, name: str, default: str | None = None) -> str:
        value = self.arguments.get(name, default)
        if not isinstance(value, str):
            raise self.bad(name, f"must be a string, got {value!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.arguments.get(name, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise self.bad(name, f"must be true or false, got {value!r}")
        return value

    def bad(self, argument: str, reason: str):
        """The error for a bad argument value (code 400 naming the function and the argument)."""
        return invalid(f"renderingRule {self.NAME} argument {argument} {reason}.", parameter="renderingRule")


def with_dtype(info: BandsInfo, dtype: str) -> BandsInfo:
    return replace(info, dtype=dtype)
