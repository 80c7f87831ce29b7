"""What a raster function is: a validated argument model, the margin it reads, what it outputs, and its pixels.

The shape follows titiler's ``algorithm/base.py``: each function declares its ``buffer`` (the pixels of margin it
needs around the output, so that tiles computed apart meet without seams) and its output (band count, pixel type,
statistics); the plan widens the read grid by the whole chain's buffer and the finish step crops it off.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from imgsvc.block import BandStats
from imgsvc.errors import invalid


@dataclass(frozen=True)
class BandsInfo:
    """What a stage outputs: band names, pixel type (numpy dtype name) and per-band statistics (None = unknown,
    then the default stretch measures the block itself)."""

    names: tuple[str, ...]
    dtype: str
    stats: tuple[BandStats, ...] | None

    @property
    def count(self) -> int:
        return len(self.names)


Pixels = tuple[np.ndarray, np.ndarray]  # (data (bands, rows, cols), valid (rows, cols) bool)


class RasterFunction(abc.ABC):
    """One function of a rendering rule, its arguments validated when it is built (from the rule's JSON).

    ``ARGUMENTS`` maps each argument's canonical name to its accepted spellings and ``RASTER_INPUTS`` does the same
    for the arguments that take rasters, in the order ``describe`` and ``apply`` receive them (names matched
    case-insensitively, docs/protocol.md §6.1).  ``bandwise`` functions treat each band alone, so a band selection
    may be made before them (reading fewer bands) without changing the result.
    """

    NAME: ClassVar[str]
    ARGUMENTS: ClassVar[dict[str, tuple[str, ...]]] = {}
    RASTER_INPUTS: ClassVar[dict[str, tuple[str, ...]]] = {"Raster": ("Raster", "DEM")}
    bandwise: ClassVar[bool] = True

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments

    @property
    def buffer(self) -> int:
        """Pixels of margin the function reads around each output pixel."""
        return 0

    @abc.abstractmethod
    def describe(self, inputs: Sequence[BandsInfo]) -> BandsInfo:
        """The function's output for raster inputs described by ``inputs`` (one per RASTER_INPUTS entry)."""

    @abc.abstractmethod
    def apply(self, inputs: Sequence[Pixels]) -> Pixels:
        """The function's pixels from its raster inputs' (one per RASTER_INPUTS entry, on one grid)."""

    # ---- argument helpers for the subclasses ----

    def number(self, name: str, default: float, low: float | None = None, high: float | None = None) -> float:
        value = self.arguments.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise _bad(self.NAME, name, f"must be a number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _bad(self.NAME, name, f"must be between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.number(name, default, low, high)
        if value != int(value):
            raise _bad(self.NAME, name, f"must be an integer, got {value!r}")
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.arguments.get(name, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise _bad(self.NAME, name, f"must be true or false, got {value!r}")
        return value


def _bad(function: str, argument: str, reason: str):
    return invalid(f"renderingRule {function} argument {argument} {reason}.", parameter="renderingRule")


def with_dtype(info: BandsInfo, dtype: str) -> BandsInfo:
    return replace(info, dtype=dtype)
