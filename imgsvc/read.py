"""The read stage: rasterio behind one module.  Every GDAL call runs inside one ``rasterio.Env``.

Paths handed to GDAL here only ever come from the catalog (written by the CLI), never from a request.
"""
from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.env import set_gdal_config
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.features import shapes
from rasterio.windows import Window

from imgsvc.block import BandStats
from imgsvc.catalog import BandDistribution, RasterItem
from imgsvc.catalog.dimensions import CubeVariable
from imgsvc.distributions import distributions_of
from imgsvc.errors import ImgsvcError, internal, invalid
from imgsvc.footprints import Footprint, outline, rectangle
from imgsvc import kernels, storage
from imgsvc.pixel_types import NAME_OF_DTYPE

# No .aux.xml side files next to users' rasters, no directory listing on open (rasters live in big folders), tiles
# of one read decoded on every core.  GDAL_CACHEMAX is deliberately absent: an Env that sets it resizes, and so
# empties, GDAL's block cache on every entry and exit, and the cache is what makes repeated tiles cheap.
GDAL_OPTIONS = {
    "GDAL_PAM_ENABLED": "NO",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_NUM_THREADS": "ALL_CPUS",
}

# The share of the memory a server may use that GDAL's block cache gets when neither --block-cache-mb nor
# GDAL_CACHEMAX sizes it, for all of its workers together.  Decoded tiles are what every request of a map being
# panned, and every round of a load test, reads again: decoding a 512² deflate tile costs milliseconds, copying it
# from the cache microseconds.  GDAL's own default (5% of the machine's memory in each process) grows with the
# worker count and reads the node's memory, not the container's limit (docs/decisions.md "Serving").
BLOCK_CACHE_SHARE = 0.10
# Read when the cgroup (v2, then v1) limits the server's memory; "max" or a huge v1 value means no limit.
CGROUP_MEMORY_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))

log = logging.getLogger(__name__)


def usable_memory(limits: tuple[Path, ...] | None = None) -> int:
    """Bytes this process may use: the machine's memory, or its container's limit when that is lower."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit in CGROUP_MEMORY_LIMITS if limits is None else limits:
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return min(physical, int(text))
    return physical


def default_block_cache_mb() -> int:
    """A server's block cache, all workers together, in MiB: BLOCK_CACHE_SHARE of the usable memory."""
    return int(BLOCK_CACHE_SHARE * usable_memory()) // 2**20


def size_block_cache(megabytes: int) -> None:
    """Size GDAL's block cache for this process, once, before its first read (GDAL_CACHEMAX from the environment
    wins); it bounds what repeated reads keep, so a server's memory levels off."""
    if "GDAL_CACHEMAX" not in os.environ:
        set_gdal_config("GDAL_CACHEMAX", megabytes * 2**20)


def _env() -> rasterio.Env:
    """The GDAL settings every open runs under (those of object storage read from the environment each time)."""
    return rasterio.Env(**GDAL_OPTIONS, **storage.gdal_options())


def describe_raster(path: str | Path) -> RasterItem:
    """What the catalog records for a GeoTIFF/COG (a local file or an ``s3://`` object): grid, bands, nodata,
    overviews, per-band statistics."""
    path = storage.source_path(path)
    try:
        with _env(), rasterio.open(path) as src:
            return _describe(src, path)
    except RasterioError as exc:
        raise invalid(f"Cannot open {path} as a raster: {exc}") from exc


def _describe(src, path: Path, dataset: str = "", source_bands: tuple[int, ...] = ()) -> RasterItem:
    """The item of ``src`` (open on ``dataset``, a subdataset of the file ``path``, when given): all of its bands,
    or the 1-based ``source_bands`` of it."""
    if src.crs is None or src.transform == Affine.identity():
        raise invalid(f"{dataset or path} has no georeferencing (CRS and geotransform are required).")
    dtype = src.dtypes[0]
    if dtype not in NAME_OF_DTYPE:  # GDAL reads U1/U2/U4 bands as uint8; complex types are refused
        raise invalid(f"{dataset or path} has pixel type {dtype}, which imgsvc does not serve (complex types "
                      "C64/C128 are not supported).")
    flags = src.mask_flag_enums[0]
    if MaskFlags.alpha in flags:
        mask_kind = "alpha"
    elif MaskFlags.nodata in flags:
        mask_kind = "nodata"
    elif MaskFlags.per_dataset in flags:
        mask_kind = "mask"
    else:
        mask_kind = "none"
    indexes = list(source_bands) or list(range(1, src.count - (1 if mask_kind == "alpha" else 0) + 1))
    stats = tuple(BandStats(min=float(s.min), max=float(s.max), mean=float(s.mean), stdv=float(s.std))
                  for s in src.stats(indexes=indexes, approx=False))
    overview_shapes = tuple((-(-src.width // factor), -(-src.height // factor)) for factor in src.overviews(1))
    names = tuple(src.descriptions[b - 1] or f"Band_{b}" for b in indexes)
    return RasterItem(
        item_id=0,
        path=str(path),
        crs_wkt=src.crs.to_wkt(),
        transform=src.transform,
        width=src.width,
        height=src.height,
        dtype=dtype,
        nodata=None if src.nodata is None else float(src.nodata),
        band_names=names,
        stats=stats,
        overview_shapes=overview_shapes,
        block_shape=(src.block_shapes[0][1], src.block_shapes[0][0]),
        compression=(src.compression.name if src.compression else "None"),
        mask_kind=mask_kind,
        dataset=dataset,
        source_bands=tuple(source_bands),
    )


# The GDAL drivers whose files hold variables along dimensions (docs/decisions.md "Multidimensional services").
CUBE_DRIVERS = {"netCDF", "Zarr"}


def is_cube(path: str | Path) -> bool:
    """Whether GDAL reads ``path`` as a netCDF or Zarr file (registered slice by slice)."""
    try:
        with _env(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(storage.source_path(path)) as src:
                return src.driver in CUBE_DRIVERS
    except RasterioError as exc:
        raise invalid(f"Cannot open {path} as a raster: {exc}") from exc


def describe_cube(path: str | Path) -> list[CubeVariable]:
    """Every georeferenced 2-D-or-more variable of a netCDF or Zarr file (coordinate variables are skipped)."""
    path = Path(path).resolve()
    try:
        with _env(), warnings.catch_warnings():
            # A netCDF file's own dataset (not its variables) has no georeferencing: nothing to warn about.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                names = list(src.subdatasets) or [str(path)]
                driver = src.driver
            variables = []
            for name in names:
                try:
                    src = rasterio.open(name)
                except RasterioError:
                    continue  # a 1-D coordinate array, which GDAL lists but cannot open as a raster
                with src:
                    if src.crs is None or src.count == 0 or min(src.width, src.height) < 2:
                        continue
                    variables.append(_cube_variable(src, path, _subdataset_name(driver, path, name)))
    except RasterioError as exc:
        raise invalid(f"Cannot open {path} as a raster: {exc}") from exc
    if not variables:
        raise invalid(f"{path} has no georeferenced variable to serve.")
    return variables


def _subdataset_name(driver: str, path: Path, name: str) -> str:
    """GDAL's name of a subdataset, quoted so that any file path survives (GDAL lists some unquoted)."""
    prefix, _, rest = name.partition(":")
    variable = rest.rsplit(":", 1)[-1] if rest else ""
    if not variable or prefix.upper() not in ("NETCDF", "ZARR"):
        return name
    return f'{prefix.upper()}:"{path}":{variable}'


def _cube_variable(src, path: Path, dataset: str) -> CubeVariable:
    tags = src.tags()
    slices, units = [], {}
    for band in range(1, src.count + 1):
        band_tags = src.tags(band)
        values = {}
        for key, value in band_tags.items():
            if key.startswith("NETCDF_DIM_"):  # netCDF: NETCDF_DIM_<dim>=<value>
                values[key[len("NETCDF_DIM_"):]] = value
            elif key.startswith("DIM_") and key.endswith("_VALUE"):  # Zarr: DIM_<dim>_VALUE, DIM_<dim>_UNIT
                dim = key[len("DIM_"):-len("_VALUE")]
                values[dim] = value
                if f"DIM_{dim}_UNIT" in band_tags:
                    units[dim] = band_tags[f"DIM_{dim}_UNIT"]
        slices.append(values)
    dims = {}
    for dim in dict.fromkeys(d for values in slices for d in values):
        attributes = {key.split("#", 1)[1]: value for key, value in tags.items() if key.startswith(f"{dim}#")}
        if dim in units:
            attributes.setdefault("units", units[dim])
        dims[dim] = attributes
    first = src.tags(1)
    # netCDF names the variable in each band; a Zarr subdataset's name ends with the array's path.
    variable = first.get("NETCDF_VARNAME") or (dataset.rsplit(":", 1)[-1].lstrip("/") if dataset != str(path)
                                               else path.stem)
    items = tuple(replace(_describe(src, path, dataset, (band,)), band_names=(variable,))
                  for band in range(1, src.count + 1))
    return CubeVariable(name=variable, description=first.get("long_name", "") or tags.get(f"{variable}#long_name", ""),
                        unit=src.units[0] or first.get("units", ""), items=items, slices=tuple(slices),
                        dimensions=dims)


@dataclass(frozen=True)
class SourceWindow:
    """Pixels read from one raster (at one overview level): what the kernels resample from."""

    data: np.ndarray  # (bands, rows, cols)
    valid: np.ndarray  # (rows, cols) bool
    transform: Affine


# Open datasets kept between reads, in all: GDAL's block cache belongs to an open dataset, so keeping it open lets
# tiles shared by neighbouring, overlapping and repeated requests (a map being panned) be decoded once.  Enough for
# a mosaic request's items (maxMosaicImageCount is 20 by default, 50 is common) at one or two levels.  Each handle
# that has been read also holds its last decoded tile and compressed buffer (3-4 MB for a 512² 4-band UInt16 tile),
# which is why the bound is the process's and not each thread's (a thread pool of 40 would hold 40 times as many).
OPEN_DATASETS = 64


class DatasetPool:
    """Open datasets shared by the threads.  rasterio datasets are not safe to use from two threads at once, so a
    handle is lent to one read at a time and given back; a read that finds none idle opens another.  At most
    ``max_idle`` idle handles are kept, least recently used closed first; a handle whose file changed on disk (its
    signature) is closed instead of lent."""

    def __init__(self, max_idle: int = OPEN_DATASETS) -> None:
        self.max_idle = max_idle
        self.idle = 0
        self._handles: OrderedDict[tuple, list[tuple[object, tuple | None]]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def lend(self, item: RasterItem, overview: int | None):
        key = (item.dataset or item.path, overview)
        signature = storage.signature(item.path)
        found, stale = None, []
        with self._lock:
            handles = self._handles.get(key, [])
            while handles and found is None:
                dataset, seen = handles.pop()
                self.idle -= 1
                if seen == signature:
                    found = dataset
                else:
                    stale.append(dataset)
            if not handles:
                self._handles.pop(key, None)
        for dataset in stale:
            dataset.close()
        dataset = found or rasterio.open(item.dataset or item.path, overview_level=overview)
        try:
            yield dataset
        except BaseException:
            dataset.close()  # a handle a read failed on is not trusted again
            raise
        self._give_back(key, dataset, signature)

    def _give_back(self, key: tuple, dataset, signature: tuple | None) -> None:
        evicted = []
        with self._lock:
            self._handles.setdefault(key, []).append((dataset, signature))
            self._handles.move_to_end(key)
            self.idle += 1
            while self.idle > self.max_idle:
                oldest = next(iter(self._handles))
                handles = self._handles[oldest]
                evicted.append(handles.pop(0)[0])
                self.idle -= 1
                if not handles:
                    del self._handles[oldest]
        for old in evicted:
            old.close()


_datasets = DatasetPool()


def read_window(item: RasterItem, overview: int | None, window: Window, bands: tuple[int, ...]) -> SourceWindow:
    """Read ``bands`` (0-based) of ``window`` from ``item`` at ``overview`` (None = full resolution).

    The window is already clipped to the raster (by the plan).  Validity comes from the file itself (nodata value,
    internal mask or alpha band), and NaN is never valid.
    """
    indexes = item.source_indexes(bands)
    try:
        with _env(), _datasets.lend(item, overview) as src:
            data = src.read(indexes, window=window)
            if item.mask_kind == "none" or (item.mask_kind == "nodata"
                                            and sorted(bands) == list(range(item.band_count))):
                # GDAL's dataset mask for a nodata value is "any band differs from it": derived from the pixels in
                # hand instead of decoding every tile a second time (half the read cost of a request).
                valid = kernels.pixels_valid(data, item.nodata if item.mask_kind == "nodata" else None)
            else:
                valid = src.dataset_mask(window=window) > 0
                if data.dtype.kind == "f":
                    valid &= ~np.isnan(data).any(axis=0)
            transform = src.window_transform(window)
    except (RasterioError, OSError) as exc:
        log.error("reading %s failed: %s", item.dataset or item.path, exc)
        raise SourceUnreadable() from exc
    return SourceWindow(data=data, valid=valid, transform=transform)


class SourceUnreadable(ImgsvcError):
    """A registered raster is missing, truncated or corrupt: a fault of the service, not of the request.  Its text
    names no path (the log has it, docs/decisions.md "Faults")."""

    def __init__(self) -> None:
        told = internal("A source raster of the service could not be read")
        super().__init__(told.kind, *told.details)


# Pixels per chunk when scanning a whole raster for its distributions: bounded memory for any raster size.
SCAN_CHUNK_PIXELS = 4 * 1024 * 1024


def _scan(item: RasterItem):
    """Yield (band values, valid mask) chunks of rows over the whole raster at full resolution."""
    rows_per_chunk = max(1, SCAN_CHUNK_PIXELS // max(1, item.width))
    bands = tuple(range(item.band_count))
    for row in range(0, item.height, rows_per_chunk):
        window = Window(0, row, item.width, min(rows_per_chunk, item.height - row))
        chunk = read_window(item, None, window, bands)
        yield chunk.data, chunk.valid


def compute_distributions(item: RasterItem) -> tuple[BandDistribution, ...]:
    """Every band's statistics and histogram over every valid pixel of the raster (see ``distributions_of``)."""
    return distributions_of(lambda: _scan(item), item.band_count, item.dtype)


# The side, in cells, of the grid an item's valid-data mask is reduced to before it is outlined: fine enough for a
# footprint (a scene's slanted edge, a cloud-free corner), cheap to polygonise.
OUTLINE_CELLS = 256


def valid_outline(item: RasterItem) -> Footprint:
    """The outline of the item's valid pixels in its own CRS (its footprint; see ``imgsvc.footprints``).

    The mask is read at the finest level no wider than OUTLINE_CELLS·4 pixels (an overview when the file has one)
    and reduced to at most OUTLINE_CELLS cells a side, a cell valid when any pixel under it is; an item valid
    everywhere is its bounds."""
    if item.mask_kind == "none" and item.dtype[0] != "f":
        return rectangle(item.bounds)
    levels = [(None, item.width, item.height)] + [(i, w, h) for i, (w, h) in enumerate(item.overview_shapes)]
    fitting = [lv for lv in levels if max(lv[1], lv[2]) <= OUTLINE_CELLS * 4]
    overview, width, height = fitting[0] if fitting else levels[-1]
    factor = max(1, -(-max(width, height) // OUTLINE_CELLS))
    rows, cols = -(-height // factor), -(-width // factor)
    cells = np.zeros((rows, cols), dtype=bool)
    bands = tuple(range(item.band_count))
    step = max(factor, (SCAN_CHUNK_PIXELS // max(1, width)) // factor * factor)
    for row in range(0, height, step):
        valid = read_window(item, overview, Window(0, row, width, min(step, height - row)), bands).valid
        pad = (-valid.shape[0] % factor, -valid.shape[1] % factor)
        valid = np.pad(valid, ((0, pad[0]), (0, pad[1])))
        reduced = valid.reshape(valid.shape[0] // factor, factor, -1, factor).any(axis=(1, 3))
        cells[row // factor: row // factor + reduced.shape[0]] |= reduced
    if cells.all():
        return rectangle(item.bounds)
    # The cells' grid: the level's own transform scaled by the reduction.
    cell_transform = item.transform * Affine.scale(item.width / width * factor, item.height / height * factor)
    parts = (geometry for geometry, value in shapes(cells.astype(np.uint8), mask=cells, transform=cell_transform,
                                                    connectivity=8) if value)
    return outline(parts, tolerance=max(abs(cell_transform.a), abs(cell_transform.e)), bounds=item.bounds)


def read_pixel(item: RasterItem, col: int, row: int) -> tuple[np.ndarray, bool]:
    """All bands of one full-resolution pixel, and whether it holds data (nodata, mask, alpha and NaN honoured)."""
    src = read_window(item, None, Window(col, row, 1, 1), tuple(range(item.band_count)))
    return src.data[:, 0, 0], bool(src.valid[0, 0])
