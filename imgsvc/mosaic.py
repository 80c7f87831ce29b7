"""Mosaicking: which of a service's items a request uses, in which order, and how overlapping pixels combine.

The mosaic rule (docs/protocol.md §5) picks and orders the candidate items the catalog found under the output grid;
the render stage then feeds each item's resampled pixels, in that order, to a pixel-selection strategy (the shape
of rio-tiler's ``mosaic/methods``: ``feed()``, ``is_done``, ``result()``), which stops the reads as soon as no
later item can change the result.
"""
from __future__ import annotations

import abc
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyproj import CRS

from imgsvc import kernels
from imgsvc.catalog import RasterItem
from imgsvc.catalog.attributes import parse_date
from imgsvc.catalog.describe import item_bounds_in
from imgsvc.catalog.records import Field, FieldType
from imgsvc.errors import invalid
from imgsvc.multidimensional import DimensionFilter
from imgsvc.pixel_types import NAME_OF_DTYPE


class MosaicMethod(enum.Enum):
    """``mosaicMethod``; the value is the root's short name (docs/protocol.md §5.1)."""

    NONE = "None"
    CENTER = "Center"
    NADIR = "Nadir"
    VIEWPOINT = "Viewpoint"
    ATTRIBUTE = "ByAttribute"
    LOCK_RASTER = "LockRaster"
    NORTHWEST = "NorthWest"
    SEAMLINE = "Seamline"


class MosaicOperation(enum.Enum):
    """``mosaicOperation``; the value is the root's short name (docs/protocol.md §5.2)."""

    FIRST = "First"
    LAST = "Last"
    MIN = "Min"
    MAX = "Max"
    MEAN = "Mean"
    BLEND = "Blend"
    SUM = "Sum"


@dataclass(frozen=True)
class MosaicRule:
    """A validated ``mosaicRule``.  ``None`` fields were absent from the request."""

    method: MosaicMethod = MosaicMethod.NONE
    operation: MosaicOperation = MosaicOperation.FIRST
    ascending: bool = True
    where: str | None = None
    fids: tuple[int, ...] | None = None
    lock_raster_ids: tuple[int, ...] | None = None
    sort_field: str | None = None
    sort_value: float | str | None = None  # a number, or text (an ISO date for a date field); None = absent/null
    viewpoint: tuple[float, float, CRS | None] | None = None  # (x, y, its SR or None for the service SR)
    # Which slices of a multidimensional service (imgsvc.multidimensional); () = none named.
    multidimensional_definition: tuple[DimensionFilter, ...] = ()
    item_rendering_rule: dict | None = None  # applied to each item before the operation (a renderingRule's JSON)
    blend_width: float = 0.0  # Seamline: the feathering's width across each seamline, service SR units

    def __post_init__(self) -> None:
        if not (math.isfinite(self.blend_width) and self.blend_width >= 0):
            raise invalid(f"mosaicRule blendWidth must be a distance of 0 or more, got {self.blend_width}.",
                          parameter="mosaicRule")
        if self.blend_width and self.method is not MosaicMethod.SEAMLINE:  # a feathering nothing would use
            raise invalid("mosaicRule blendWidth feathers seamlines: it takes mosaicMethod esriMosaicSeamline.",
                          parameter="mosaicRule")


DEFAULT_RULE = MosaicRule()


def order_items(rule: MosaicRule, candidates: Sequence[RasterItem], view_centre: tuple[float, float],
                service_extent: tuple[float, float, float, float], limit: int, fields: Sequence[Field] = (),
                viewpoint: tuple[float, float] | None = None) -> tuple[RasterItem, ...]:
    """The candidates the rule selects, first on top, at most ``limit`` of them (docs/protocol.md §5.1).

    ``candidates`` come from the catalog (under the output grid, filtered by where and time, by object id);
    ``view_centre`` is the output grid's centre, ``service_extent`` the service's and ``viewpoint`` the rule's
    viewpoint, all in the service SR; ``fields`` are the service's item fields.  Ties keep object id order.
    """
    items = list(candidates)
    if rule.fids is not None:
        wanted = set(rule.fids)
        items = [item for item in items if item.object_id in wanted]
    method = rule.method
    if method is MosaicMethod.LOCK_RASTER:
        # Only the locked items, in the order given.
        by_id = {item.object_id: item for item in items}
        items = [by_id[i] for i in dict.fromkeys(rule.lock_raster_ids or ()) if i in by_id]
    elif method in (MosaicMethod.CENTER, MosaicMethod.NADIR, MosaicMethod.SEAMLINE):
        # Nadir: the items carry no nadir point (no sensor model), so their centre stands for it.
        items.sort(key=lambda item: _distance(item, view_centre))
    elif method is MosaicMethod.NORTHWEST:
        items.sort(key=lambda item: _distance(item, (service_extent[0], service_extent[3])))
    elif method is MosaicMethod.VIEWPOINT:
        if viewpoint is None:
            raise invalid("mosaicRule viewpoint is required with esriMosaicViewpoint.", parameter="mosaicRule")
        items.sort(key=lambda item: _distance(item, viewpoint))
    elif method is MosaicMethod.ATTRIBUTE:
        items.sort(key=_attribute_order(rule, fields))
    if method is MosaicMethod.SEAMLINE:
        # The seamlines decide where each item shows: the cap keeps the items nearest the view, fed in OBJECTID
        # order so that a tie in depth goes the same way in every tile (docs/decisions.md Q11).
        return tuple(sorted(items[:limit], key=lambda item: item.object_id))
    if not rule.ascending and method is not MosaicMethod.LOCK_RASTER:
        items.reverse()
    return tuple(items[:limit])


def _attribute_order(rule: MosaicRule, fields: Sequence[Field]):
    """ByAttribute's sort key: |value - sortValue| for numbers and dates (docs/protocol.md §5.1), the value itself
    when sortValue is null or the field is text; items without a value last."""
    if not rule.sort_field:
        raise invalid("mosaicRule sortField is required with esriMosaicAttribute.", parameter="mosaicRule")
    field = next((f for f in fields if f.name.lower() == rule.sort_field.lower()), None)
    if field is None:
        raise invalid(f"mosaicRule sortField {rule.sort_field!r} is not a field of the service.",
                      parameter="mosaicRule")
    target = rule.sort_value
    if field.type is FieldType.DATE and isinstance(target, str):
        target = parse_date(target)
        if target is None:
            raise invalid(f"mosaicRule sortValue {rule.sort_value!r} is not a date for the date field "
                          f"{field.name}.", parameter="mosaicRule")
    elif field.type is not FieldType.TEXT and target is not None and not isinstance(target, (int, float)):
        try:
            target = float(target)
        except (TypeError, ValueError):
            raise invalid(f"mosaicRule sortValue {rule.sort_value!r} is not a number for the numeric field "
                          f"{field.name}.", parameter="mosaicRule") from None

    def key(item: RasterItem):
        value = item.attributes.get(field.name)
        if value is None:
            return (1, 0)
        if field.type is FieldType.TEXT or target is None:
            return (0, value)
        return (0, abs(value - target))

    return key


def _distance(item: RasterItem, point: tuple[float, float]) -> float:
    xmin, ymin, xmax, ymax = item.bounds
    return math.hypot((xmin + xmax) / 2 - point[0], (ymin + ymax) / 2 - point[1])


# ---- pixel selection ----------------------------------------------------------------------------------------------

class PixelSelection(abc.ABC):
    """Combines the items' pixels, fed top item first.  ``data`` is (bands, rows, cols), ``valid`` (rows, cols)."""

    def __init__(self) -> None:
        self.data: np.ndarray | None = None
        self.valid: np.ndarray | None = None

    @property
    def is_done(self) -> bool:
        """True when no further item can change the result (the render stage stops reading)."""
        return False

    def feed(self, data: np.ndarray, valid: np.ndarray, item: RasterItem | None = None) -> None:
        """Take the next item's pixels (``item`` is the raster they come from, for strategies that weigh it)."""
        if self.data is None:
            # The first item is taken as it is: no copy for the common one-item request.
            self.data, self.valid = data, valid
            return
        self.combine(data, valid, item)

    @abc.abstractmethod
    def combine(self, data: np.ndarray, valid: np.ndarray, item: RasterItem | None) -> None:
        """Join a later item's pixels to the result so far (each strategy's own rule)."""

    def result(self, bands: int, shape: tuple[int, int], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        if self.data is None:
            return np.zeros((bands, *shape), dtype), np.zeros(shape, bool)
        return self.data, self.valid

    def _writable(self) -> None:
        """Own the result before changing it in place: the first item is kept as it came (the kernels need it
        writable and C-contiguous, which a reader's array need not be)."""
        if not (self.data.flags.writeable and self.data.flags.c_contiguous):
            self.data = np.array(self.data, order="C")
        if not (self.valid.flags.writeable and self.valid.flags.c_contiguous):
            self.valid = np.array(self.valid, order="C")


class FirstSelection(PixelSelection):
    """MT_FIRST: the top item with data wins; done once every pixel is filled."""

    def __init__(self) -> None:
        super().__init__()
        self.empty: int | None = None  # pixels still without data

    @property
    def is_done(self) -> bool:
        if self.empty is None and self.valid is not None:
            self.empty = int(self.valid.size - np.count_nonzero(self.valid))
        return self.empty == 0

    def combine(self, data, valid, item) -> None:
        self._writable()
        self.empty = kernels.mosaic_first(self.data, self.valid, data, valid)


class LastSelection(PixelSelection):
    """MT_LAST: the bottom item with data wins."""

    def combine(self, data, valid, item) -> None:
        self._writable()
        kernels.mosaic_last(self.data, self.valid, data, valid)


class ExtremeSelection(PixelSelection):
    """MT_MIN / MT_MAX: the smallest / largest value among the items with data, band by band."""

    def __init__(self, largest: bool) -> None:
        super().__init__()
        self.largest = largest

    def combine(self, data, valid, item) -> None:
        self._writable()
        kernels.mosaic_extreme(self.data, self.valid, data, valid, self.largest)


class AccumulatingSelection(PixelSelection):
    """MT_MEAN / MT_SUM: accumulated in float64, returned in the items' pixel type (rounded half away from zero
    and clipped to it, as every conversion to an integer type is, docs/decisions.md)."""

    def __init__(self, mean: bool) -> None:
        super().__init__()
        self.mean = mean
        self.total: np.ndarray | None = None
        self.count: np.ndarray | None = None

    def feed(self, data, valid, item=None) -> None:
        if self.total is None:  # every item is accumulated, the first one too
            self.total = np.zeros(data.shape, np.float64)
            self.count = np.zeros(valid.shape, np.float64)
            self.dtype = data.dtype
        self.combine(data, valid, item)

    def combine(self, data, valid, item) -> None:
        kernels.mosaic_accumulate(self.total, self.count, data, valid, self.weights(item, valid.shape))

    def weights(self, item: RasterItem | None, shape: tuple[int, int]) -> np.ndarray | None:
        """Each pixel's weight in the accumulation (None: 1 everywhere, for Mean and Sum)."""
        return None

    def result(self, bands, shape, dtype):
        if self.total is None:
            return super().result(bands, shape, dtype)
        valid = self.count > 0
        values = self.total / np.where(valid, self.count, 1.0) if self.mean else self.total
        return kernels.convert_pixel_type(values, valid, NAME_OF_DTYPE[self.dtype.name]), valid


class BlendSelection(AccumulatingSelection):
    """MT_BLEND: where items overlap, the mean of their values weighted by how far the pixel lies inside each item:
    its distance, in the service SR, to the nearest edge of the item's bounds (docs/decisions.md Q11).  The weights
    come from geometry, not from the pixels of the request, so adjacent tiles blend alike."""

    def __init__(self, centres: tuple[np.ndarray, np.ndarray], crs_wkt: str) -> None:
        super().__init__(mean=True)
        self.x, self.y = centres  # the read grid's pixel centres in the service SR, (rows, cols)
        self.crs_wkt = crs_wkt

    def weights(self, item, shape):
        # A pixel on an item's very edge still counts a little when no other item covers it.
        return kernels.blend_weights(self.x, self.y, item_bounds_in(item, self.crs_wkt), BLEND_MIN_WEIGHT)


class SeamlineSelection(PixelSelection):
    """esriMosaicSeamline: seamlines computed from the items' bounds, down the middle of each overlap: a pixel shows
    the item with data there that it lies deepest inside (its distance, in the service SR, to the nearest edge of
    the item's bounds; ties to the item fed first), feathered across the seamline over ``blend_width``: the
    runner-up, w = 1 - (depth of the deepest - its depth) / blend_width, is blended in as (v1 + w v2) / (1 + w),
    half and half on the seamline itself (docs/decisions.md Q11)."""

    def __init__(self, centres: tuple[np.ndarray, np.ndarray], crs_wkt: str, blend_width: float) -> None:
        super().__init__()
        self.x, self.y = centres
        self.crs_wkt = crs_wkt
        self.blend_width = blend_width

    def feed(self, data, valid, item=None) -> None:
        if self.data is None:
            self.data, self.runner = np.zeros_like(data, order="C"), np.zeros_like(data, order="C")
            self.depth = np.full(valid.shape, -np.inf)
            self.runner_depth = np.full(valid.shape, -np.inf)
        self.combine(data, valid, item)

    def combine(self, data, valid, item) -> None:
        depth = kernels.blend_weights(self.x, self.y, item_bounds_in(item, self.crs_wkt), -math.inf)
        kernels.mosaic_deepest(self.data, self.depth, self.runner, self.runner_depth, data, valid, depth)

    def result(self, bands, shape, dtype):
        if self.data is None:
            return super().result(bands, shape, dtype)
        valid = self.depth > -np.inf
        if self.blend_width <= 0:
            return self.data, valid
        with np.errstate(invalid="ignore"):  # -inf - -inf where no item or one item has data
            weight = np.clip(1.0 - (self.depth - self.runner_depth) / self.blend_width, 0.0, 1.0)
        weight[~(self.runner_depth > -np.inf)] = 0.0
        values = (self.data + weight * self.runner) / (1.0 + weight)
        return kernels.convert_pixel_type(values, valid, NAME_OF_DTYPE[self.data.dtype.name]), valid


# The weight of a pixel on (or, by rounding, just outside) an item's edge: tiny, but not nothing.
BLEND_MIN_WEIGHT = 1e-9


def pixel_selection(operation: MosaicOperation, centres: tuple[np.ndarray, np.ndarray] | None = None,
                    crs_wkt: str | None = None, seamline_blend_width: float | None = None) -> PixelSelection:
    """A fresh strategy for one request: Seamline's when ``seamline_blend_width`` is given, else the operation's
    (Blend and Seamline need the read grid's pixel centres in the service SR)."""
    if seamline_blend_width is not None:
        return SeamlineSelection(centres, crs_wkt, seamline_blend_width)
    if operation is MosaicOperation.FIRST:
        return FirstSelection()
    if operation is MosaicOperation.LAST:
        return LastSelection()
    if operation in (MosaicOperation.MIN, MosaicOperation.MAX):
        return ExtremeSelection(largest=operation is MosaicOperation.MAX)
    if operation in (MosaicOperation.MEAN, MosaicOperation.SUM):
        return AccumulatingSelection(mean=operation is MosaicOperation.MEAN)
    if operation is MosaicOperation.BLEND:
        return BlendSelection(centres, crs_wkt)
    raise ValueError(f"no pixel selection for {operation}")
