"""What the catalog knows about a service: frozen values, built once at registration."""
from __future__ import annotations

from dataclasses import dataclass, field

from affine import Affine

from imgsvc.block import BandStats, grid_bounds


@dataclass(frozen=True)
class RasterItem:
    """One raster file: its grid, bands, nodata, overviews and statistics, as recorded at registration."""

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

    @property
    def band_count(self) -> int:
        return len(self.band_names)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return grid_bounds(self.transform, self.width, self.height)


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


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    items: tuple[RasterItem, ...]
    settings: ServiceSettings = field(default_factory=ServiceSettings)

    @property
    def primary(self) -> RasterItem:
        """The raster that defines the service's grid, bands and pixel type (its only one, for a dataset service)."""
        return self.items[0]
