"""What the catalog knows about a service: frozen values, built once at registration."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from imgsvc.block import BandStats, grid_bounds


@dataclass(frozen=True)
class RasterItem:
    """One raster file: its grid, bands, nodata, overviews and statistics, as recorded at registration.

    ``object_id`` is the item's OBJECTID within its service (1, 2, ... in registration order): what mosaic rules
    name in ``fids`` and ``lockRasterIds``.  ``item_id`` is the catalog's own key, unique across services.
    """

    item_id: int
    path: str
    crs_wkt: str
    transform: Affine
    width: int
    height: int
    dtype: str  # numpy dtype name of the bands
    nodata: float | None
    band_names: tuple[str, ...]
    stats: tuple[BandStats, ...]
    overview_shapes: tuple[tuple[int, int], ...]  # (width, height) of each internal overview, finest first
    block_shape: tuple[int, int]  # (width, height)
    compression: str
    mask_kind: str  # "nodata", "mask", "alpha" or "none": how the file says which pixels hold data
    # One slice of a multidimensional file (docs/decisions.md "Multidimensional services"): the GDAL name of the
    # variable's subdataset (``path`` stays the file, whose changes reopen it) and the subdataset's 1-based bands
    # that are this item's bands.  Empty for a plain raster: ``path`` itself, all of its bands.
    dataset: str = ""
    source_bands: tuple[int, ...] = ()
    object_id: int = 0  # set by the catalog
    # The item's fields (docs/decisions.md "Mosaic datasets"): the built-in ones (Name, LowPS, ...) and the
    # operator's; dates as epoch milliseconds UTC.  Set by the catalog.
    attributes: dict[str, Any] = field(default_factory=dict, compare=False)
    # Where the item holds data, in the service SR (``imgsvc.footprints``; () = its bounds).  Set by the catalog.
    footprint: tuple = field(default=(), compare=False)

    @property
    def band_count(self) -> int:
        return len(self.band_names)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return grid_bounds(self.transform, self.width, self.height)

    def source_indexes(self, bands: tuple[int, ...]) -> list[int]:
        """The 1-based band indexes GDAL reads for the item's 0-based ``bands``."""
        return [self.source_bands[b] if self.source_bands else b + 1 for b in bands]


class FieldType(enum.Enum):
    """The type of an item field, as the catalog stores it (DATE values are epoch milliseconds UTC)."""

    OID = "esriFieldTypeOID"
    INTEGER = "esriFieldTypeInteger"
    DOUBLE = "esriFieldTypeDouble"
    DATE = "esriFieldTypeDate"
    TEXT = "esriFieldTypeString"


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType


@dataclass(frozen=True)
class BandDistribution:
    """One band's statistics and histogram over every valid pixel, computed once at registration.

    The histogram has ``len(counts)`` equal bins over [``hist_min``, ``hist_max``]; the last bin includes its upper
    edge.  ``median`` and ``mode`` come from the histogram (exact for 8-bit data, whose bins are single values).
    """

    min: float
    max: float
    mean: float
    stdv: float
    median: float
    mode: float
    count: int
    hist_min: float
    hist_max: float
    counts: tuple[int, ...]


@dataclass(frozen=True)
class ServiceSettings:
    """Per-service settings that the root resource advertises and exportImage uses as defaults."""

    description: str = ""
    copyright_text: str = ""
    service_data_type: str = "esriImageServiceDataTypeGeneric"
    max_image_width: int = 4100
    max_image_height: int = 4100
    default_compression_quality: int = 75
    default_resampling_method: str = "Bilinear"  # Nearest | Bilinear | Cubic | Majority
    # The most items one request composites (ArcGIS's default; docs/protocol.md §3.2 maxMosaicImageCount).
    max_mosaic_image_count: int = 20
    # The DATE fields holding each item's time (and its end, for items spanning a period): the service is
    # time-aware when start_time_field is set.
    start_time_field: str | None = None
    end_time_field: str | None = None
    # A multidimensional service's variables, the first the default (imgsvc.catalog.dimensions.Slices.variables):
    # each {"name", "description", "unit", "dimensions": [{"name", "description", "unit"}]}.  Empty otherwise.
    variables: tuple[dict, ...] = ()

    @property
    def has_multidimensions(self) -> bool:
        return bool(self.variables)


# What the root calls serviceSourceType: one raster dataset, or a mosaic dataset of many items.
SOURCE_DATASET = "esriImageServiceSourceTypeDataset"
SOURCE_MOSAIC = "esriImageServiceSourceTypeMosaicDataset"


@dataclass(frozen=True)
class ServiceDescription:
    """The service as the root resource reports it: its grid, bands, pixel type and statistics.

    Built once at registration from all of the service's items (see ``describe_service``) and kept in the catalog,
    so that no stage needs to look at an item to know what the service is.
    """

    crs_wkt: str
    extent: tuple[float, float, float, float]  # (xmin, ymin, xmax, ymax) in the service SR
    pixel_size: tuple[float, float]  # the finest item's (x, y) cell size, in service SR units
    dtype: str  # numpy dtype name of the bands
    band_names: tuple[str, ...]
    nodata: float | None
    stats: tuple[BandStats, ...]
    block_shape: tuple[int, int]  # (width, height) of the items' internal tiles
    compression: str
    item_count: int
    # (width, height) of the full-resolution grid over the extent, and the cell size of the coarsest overview.
    columns: int
    rows: int
    coarsest_pixel_size: float

    @property
    def band_count(self) -> int:
        return len(self.band_names)

    @property
    def source_type(self) -> str:
        return SOURCE_DATASET if self.item_count == 1 else SOURCE_MOSAIC

    @property
    def uncompressed_size(self) -> int:
        """Bytes of the full-resolution grid over the extent, as the root's ``uncompressedSize`` reports it."""
        return self.columns * self.rows * self.band_count * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class FunctionTemplate:
    """A named rendering rule a service offers (listed in rasterFunctionInfos, callable by name).

    ``rule`` is the rule's JSON object (``rasterFunction``, ``rasterFunctionArguments``, ...); the service applies
    its ``default`` template to requests that send no renderingRule.
    """

    name: str
    description: str
    rule: dict
    default: bool = False


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    description: ServiceDescription
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    templates: tuple[FunctionTemplate, ...] = ()
    fields: tuple[Field, ...] = ()  # the items' fields, OBJECTID first

    @property
    def default_template(self) -> FunctionTemplate | None:
        return next((t for t in self.templates if t.default), None)
