"""Resampling and pixel-type kernels: the documented, validating facade over the compiled ``imgsvc._kernels``.

Everything that can fail happens here (argument checks, dtype dispatch, contiguity, the coordinate transforms through
``imgsvc.sr``); the compiled loops then run without the GIL and cannot fail, so calls from several threads overlap.
The arguments come from the service's own stages, which validate the request first, so a bad one is a bug and raises
ValueError or TypeError (answered as an internal error); only a ``pixelType`` that the client asked for and that
cannot be served is refused as the client's error.

Semantics follow GDAL's warper (``rasterio.warp.reproject``) with an exact transformer:

* Output pixel centres are mapped to source pixel coordinates; an output pixel is valid when the source pixel
  holding that point exists and is valid (for every resampling but mode).
* ``nearest`` copies that pixel.  ``bilinear`` / ``cubic`` use GDAL's 2x2 / 4x4 formulas, renormalising the weights
  over valid neighbours (cubic falls back to bilinear when a tap is invalid or off the array).  When the output is
  coarser than the source by more than 5 % on an axis, both use GDAL's general resampler, the kernel widened by the
  scale ratio so that downsampling does not alias; the ratio is measured GDAL's way (output size over the source
  footprint of the whole output grid).
* ``mode`` takes the most frequent valid value among the source pixels under the output pixel's footprint, pixels
  cut by the footprint's edge weighted by the fraction covered; ties go to the value that reached the maximum first
  in row-major scan order, as in GDAL.

The coordinate map is an approximate transformer (see :func:`_coordinate_lattice`): exact transforms on a lattice,
interpolated in the kernel (bilinearly, or by cubics where the map bends), refined cell by cell until the
interpolation is within ``max_error`` source pixels of the exact transform (measured at the midpoints of the level
before the last, predicted for the last).

Deliberate differences from GDAL: NaN source values are always treated as invalid (GDAL only does so with a NaN
nodata value) so that NaN never leaks into a valid output pixel; the validity mask is one for all bands.
"""
from __future__ import annotations

import concurrent.futures
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS

from imgsvc import pixel_types, sr
from imgsvc.block import holds
from imgsvc._kernels import mosaic as _mosaic
from imgsvc._kernels import pixeltype as _pixeltype
from imgsvc._kernels import stretch as _stretch
from imgsvc._kernels import validity as _validity
from imgsvc._kernels import warp as _warp


@dataclass(frozen=True)
class ResamplingMethod:
    """One resampling under the names each side knows it by."""

    name: str  # what ``reproject`` takes
    interpolation: str  # exportImage's ``interpolation``
    default_name: str  # the root resource's ``defaultResamplingMethod`` (a service setting)


RESAMPLING_METHODS = (
    ResamplingMethod("nearest", "RSP_NearestNeighbor", "Nearest"),
    ResamplingMethod("bilinear", "RSP_BilinearInterpolation", "Bilinear"),
    ResamplingMethod("cubic", "RSP_CubicConvolution", "Cubic"),
    ResamplingMethod("mode", "RSP_Majority", "Majority"),
)
RESAMPLINGS = tuple(m.name for m in RESAMPLING_METHODS)
RESAMPLING_OF_INTERPOLATION = {m.interpolation: m.name for m in RESAMPLING_METHODS}
# Keyed in lower case: the setting is matched case-insensitively.
DEFAULT_RESAMPLING_NAMES = {m.default_name.lower(): m.name for m in RESAMPLING_METHODS}

# Default interpolation error bound of the approximate transformer, in source pixels.  A nearest-neighbour pick moves
# when the error carries a point across a source pixel edge, so about 2 x (mean error) of the picks differ from the
# exact transform's: GDAL's 0.125 px moves 2-8 % of them, 0.01 px up to 0.5 % (measured), 0.002 px under 0.1 %.
# Interpolated values move by the error times the local gradient: on steep float data, agreeing with GDAL's exact
# transformer to a relative 1e-4 takes about 0.0005 px (0.002 px leaves ~1 % of such pixels off).  What tightening
# costs is the exact transforms of the refinement, four times the nodes per quartering of the bound on smooth maps,
# which the lattice's reuse of nodes and predicted last level pay for (bench/bench_kernels.py --lattice reports it).
DEFAULT_MAX_ERROR = 0.0005

# Output samples resampled between two calls of ``reproject``'s ``between_rows`` (fewer where a filtered sample reads
# more source pixels): 7 ms (nearest) to 70 ms (cubic) of work for 4 bands on one core of the development machine,
# so a deadline stops a large export within a fraction of a second while the call overhead (microseconds a band)
# stays invisible.
ROW_BAND_SAMPLES = 1 << 20

# Threads that resample bands of rows beside an export's own (the kernels release the GIL): an export alone on the
# machine uses every core, and a loaded one (the helpers busy with other exports' bands) runs as before
# (docs/decisions.md "Resampling on every core").  _HELPER_COUNT of them are used: none on one core.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_HELPER_COUNT = _CORES - 1
# A pool starts its threads as work is submitted: on one core nothing is, and it starts none.
_HELPERS = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, _HELPER_COUNT),
                                                 thread_name_prefix="imgsvc-resample")
# Work (output samples x taps x bands) below which one thread resamples it all: splitting costs tens of microseconds.
PARALLEL_MIN_SAMPLES = 1 << 18

# Samples per lattice cell side before refinement (a power of two).
LATTICE_CELL = 32
assert LATTICE_CELL <= _warp.MAX_CELL, "the kernels' cubic cells hold at most MAX_CELL + 1 nodes a side"

# How much one more level of subdivision is trusted to shrink a cell's interpolation error: bilinear interpolation
# misses a smooth map by (step^2 / 8) x its second derivative, a quarter at half the step (a little less before the
# asymptote: 4 overshot the bound by 0.2 % on a 4000 km polar grid).  The lattice keeps a cell at the level after
# the one whose measured error is within this many times the bound (see _coordinate_lattice).
_PREDICTED_GAIN = 3.5
# The same for the cubics (cells of 4 nodes a side or more): 16 times per halving in theory; the midpoints measure
# up to 6 % under the largest error in the edge intervals (one-sided stencils), whence a little less.
_PREDICTED_CUBIC_GAIN = 12.0

_SUPPORTED_DTYPES = {np.dtype(dtype) for dtype in pixel_types.NAME_OF_DTYPE}

# GDAL's general resampler is used when either axis is downsampled beyond this (GDALWarpKernel::PerformWarp).
_FOUR_SAMPLE_MIN_SCALE = 0.95
_FILTER_RADIUS = {"bilinear": 1, "cubic": 2}


def reproject(source: np.ndarray, source_valid: np.ndarray | None,
              src_transform: Affine, src_crs: CRS,
              dst_transform: Affine, dst_crs: CRS, dst_shape: tuple[int, int],
              resampling: str, *, max_error: float = DEFAULT_MAX_ERROR,
              between_rows: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resample a source window onto an output grid.

    ``source`` is (bands, rows, cols) of u1 i1 u2 i2 u4 i4 f4 f8; ``source_valid`` is (rows, cols) bool with True for
    pixels holding data, or None when all do.  Returns ``(data, valid)``: data (bands, H, W) in the source dtype, 0
    where invalid, and valid (H, W) bool.  Output pixels whose source point falls outside the source array, onto an
    invalid pixel, or cannot be projected at all are invalid.  ``max_error`` bounds the approximate transformer's
    error in source pixels (0 = exact transform at every pixel).  ``between_rows`` is called between bands of about
    ROW_BAND_SAMPLES output samples (every method but mode): what it raises stops the work there (a deadline).
    """
    if resampling not in RESAMPLINGS:
        raise ValueError(f"Unsupported resampling {resampling!r}; expected one of {', '.join(RESAMPLINGS)}.")
    source = _check_source(source)
    bands, src_rows, src_cols = source.shape
    rows, cols = _check_shape(dst_shape)
    if not (isinstance(max_error, (int, float)) and math.isfinite(max_error) and max_error >= 0):
        raise ValueError(f"max_error must be a finite number >= 0 source pixels, not {max_error!r}.")
    valid = _check_valid(source, source_valid)
    if abs(src_transform.determinant) == 0 or abs(dst_transform.determinant) == 0:
        raise ValueError("The source and output transforms must be invertible.")

    out = np.zeros((bands, rows, cols), dtype=source.dtype)
    out_valid = np.zeros((rows, cols), dtype=np.uint8)
    if src_rows == 0 or src_cols == 0 or bands == 0:
        return out, out_valid.view(bool)

    exact = _ExactMap(src_transform, src_crs, dst_transform, dst_crs)
    if resampling == "mode":
        lattice = _coordinate_lattice(exact, rows + 1, cols + 1, 0.0, max_error)
        _warp.warp_mode(source, valid if valid is not None else _NO_MASK, valid is not None, *lattice,
                        out, out_valid)
        return out, out_valid.view(bool)

    lattice = _coordinate_lattice(exact, rows, cols, 0.5, max_error)
    method, xscale, yscale, xradius, yradius = _method(resampling, exact, rows, cols, src_rows, src_cols)
    finite = method in (_warp.FILTERED_BILINEAR, _warp.FILTERED_CUBIC) and _valid_pixels_finite(source, valid)
    # A filtered sample reads (2 xradius) x (2 yradius) source pixels, so its bands of rows are narrower.
    taps = max(1, xradius) * max(1, yradius)
    step = max(1, ROW_BAND_SAMPLES // (cols * taps))
    if _HELPER_COUNT and rows * cols * taps * bands >= PARALLEL_MIN_SAMPLES:
        step = min(step, -(-rows // (2 * (_HELPER_COUNT + 1))))  # two bands a thread: they finish together
    _run_bands(lambda start, stop: _warp.warp_centres(
        source, valid if valid is not None else _NO_MASK, valid is not None, *lattice, method, xscale, yscale,
        xradius, yradius, finite, out, out_valid, start, stop), [(start, min(rows, start + step))
                                                                 for start in range(0, rows, step)], between_rows)
    return out, out_valid.view(bool)


def _run_bands(work: Callable[[int, int], None], bands: list[tuple[int, int]],
               between_rows: Callable[[], None] | None) -> None:
    """Run ``work`` on each band of rows, calling ``between_rows`` before every band but the first: in the caller's
    thread, with the helper threads taking bands beside it.  What raises stops every thread before its next band;
    a helper still queued when the bands run out is cancelled, so on a busy machine the caller does them all itself,
    never waiting for a thread."""
    lock = threading.Lock()
    remaining = enumerate(bands)
    stopped = False

    def run() -> None:
        nonlocal stopped
        while True:
            with lock:  # between_rows under the lock: no band starts once one call has raised
                if stopped:
                    return
                index, band = next(remaining, (None, None))
                if band is None:
                    return
                try:
                    if between_rows is not None and index:
                        between_rows()
                except BaseException:
                    stopped = True
                    raise
            try:
                work(*band)
            except BaseException:
                stopped = True
                raise

    helpers = [_HELPERS.submit(run) for _ in range(min(_HELPER_COUNT, len(bands) - 1))]
    try:
        run()
    finally:
        running = [future for future in helpers if not future.cancel()]
        concurrent.futures.wait(running)
    for future in running:
        future.result()  # a helper's failure is the call's


def _valid_pixels_finite(source: np.ndarray, valid: np.ndarray | None) -> bool:
    """Whether every valid pixel of every band is finite (``valid``: ``_check_valid``'s mask, NaN already out): the
    downsampling kernels then skip the taps of zero weight, whose 0 x value adds nothing (0 x Inf would add NaN).
    min() and max() are finite unless a pixel is not: two cheap passes, the per-pixel mask only then."""
    if source.dtype.kind != "f" or not source.size:
        return True
    if np.isfinite(source.min()) and np.isfinite(source.max()):
        return True
    finite = np.isfinite(source).all(axis=0)
    return valid is not None and not (valid.view(bool) & ~finite).any()


def pixel_centres(transform: Affine, crs: CRS, shape: tuple[int, int], target_crs: CRS,
                  max_error: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, cols) x and y in ``target_crs`` of the pixel centres of a grid (``transform`` in ``crs``), from
    the same approximate transformer as :func:`reproject`: within ``max_error`` of the exact transform, measured in
    the grid's pixels as they measure in ``target_crs`` (its extent there over its size); NaN where a centre cannot
    be projected."""
    rows, cols = _check_shape(shape)
    if crs != target_crs:
        corners = np.array([0.0, cols, 0.0, cols]), np.array([0.0, 0.0, rows, rows])
        xs, ys = sr.transform_points(crs, target_crs, *(transform * corners))
        finite = np.isfinite(xs) & np.isfinite(ys)
        span = max(np.ptp(xs[finite]) / cols, np.ptp(ys[finite]) / rows) if finite.sum() > 1 else 0.0
        unit = span if math.isfinite(span) and span > 0 else 1.0
    else:
        unit = 1.0
    exact = _ExactMap(Affine.scale(unit), target_crs, transform, crs)
    x, y = _lattice_coordinates(_coordinate_lattice(exact, rows, cols, 0.5, max_error), rows, cols)
    return x * unit, y * unit


def pixels_valid(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """(rows, cols) bool: where some band of ``data`` (bands, rows, cols) differs from ``nodata`` and no band is NaN.

    A nodata value the band type cannot hold marks nothing, as in GDAL (a uint8 band declaring -9999); None: no
    value, so only NaN is invalid."""
    data = _check_source(data, name="data")
    has_nodata = nodata is not None and holds(data.dtype, nodata)
    valid = np.empty(data.shape[1:], dtype=np.uint8)
    if valid.size:
        _validity.pixels_valid(data, nodata if has_nodata else 0.0, has_nodata, valid)
    return valid.view(bool)


def convert_pixel_type(data: np.ndarray, valid: np.ndarray, pixel_type: str) -> np.ndarray:
    """Convert processed pixels to an ArcGIS ``pixelType`` (docs/protocol.md §1.1).

    Values outside the target range are truncated, i.e. clipped to it; floats become integers by rounding half away
    from zero (GDAL's own float-to-integer rule in GDALCopyWords); NaN becomes 0 (a NaN pixel is invalid: the kernels
    never mark one valid).  U1/U2/U4 clip to 0..1 / 0..3 / 0..15 and are stored as uint8.  Invalid pixels come out
    as 0.  ``UNKNOWN`` returns ``data`` unchanged.
    """
    if pixel_type not in pixel_types.BY_NAME:  # the doors only pass names from the table
        raise ValueError(f"Unknown pixelType {pixel_type!r}.")
    if pixel_types.pixel_type(pixel_type).name == pixel_types.UNKNOWN:
        return data
    data = _check_source(data, name="data")
    valid = np.asarray(valid)
    if valid.shape != data.shape[1:] or valid.dtype != np.bool_:
        raise ValueError("valid must be a bool (rows, cols) array matching data.")
    target, low, high = _PIXEL_TYPE_TARGETS[pixel_type]
    out = np.empty(data.shape, dtype=target)
    if out.size:
        _pixeltype.convert(data, np.ascontiguousarray(valid).view(np.uint8), out, low, high)
    return out


def stretch_levels(values: np.ndarray, lo: float, hi: float, low: float, span: float,
                   gamma: float = 1.0) -> np.ndarray:
    """The linear (``gamma`` 1) or gamma stretch of ``values`` onto levels, float64 of the same shape
    (docs/protocol.md §6.2): ``low + floor(t^(1/gamma) * span)``, t = (v - lo) / (hi - lo) clipped to [0, 1]
    (when hi <= lo: 0 up to lo, 1 above); NaN gives 0.  float32 and float64 are read as they are, other types as
    float64."""
    if not all(math.isfinite(x) for x in (lo, hi, low, span)) or not (math.isfinite(gamma) and gamma > 0):
        raise ValueError("stretch_levels needs finite lo, hi, low, span and a positive gamma.")
    values = np.asarray(values)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    flat = np.ascontiguousarray(values).reshape(-1)
    out = np.empty(flat.shape, np.float64)
    if gamma == 1.0:
        _stretch.levels(flat, float(lo), float(hi), float(low), float(span), True, out)
        return out.reshape(values.shape)
    _stretch.levels(flat, float(lo), float(hi), 0.0, 1.0, False, out)  # t, raised in place below
    with np.errstate(invalid="ignore"):
        np.power(out, 1.0 / gamma, out=out)
        np.multiply(out, span, out=out)
        np.floor(out, out=out)
        out += low
    out[np.isnan(out)] = 0
    return out.reshape(values.shape)


# ---- mosaic operators -----------------------------------------------------------------------------------------------
# Each joins one item's resampled pixels to the result so far, in place.  ``data`` (bands, rows, cols) and ``valid``
# (rows, cols, bool) are the result: C-contiguous and writable (the caller owns them); the item is converted to the
# result's type when it differs, as numpy's assignment would.


def mosaic_first(data: np.ndarray, valid: np.ndarray, item: np.ndarray, item_valid: np.ndarray) -> int:
    """MT_FIRST: fill the pixels without data from the item; returns how many still have none."""
    return _mosaic.fill_first(*_operands(data, valid, item, item_valid))


def mosaic_last(data: np.ndarray, valid: np.ndarray, item: np.ndarray, item_valid: np.ndarray) -> None:
    """MT_LAST: the item's pixels replace the result's wherever it has data."""
    _mosaic.fill_last(*_operands(data, valid, item, item_valid))


def mosaic_extreme(data: np.ndarray, valid: np.ndarray, item: np.ndarray, item_valid: np.ndarray,
                   largest: bool) -> None:
    """MT_MIN / MT_MAX, band by band."""
    _mosaic.keep_extreme(*_operands(data, valid, item, item_valid), bool(largest))


def mosaic_accumulate(total: np.ndarray, weight_sum: np.ndarray, item: np.ndarray, item_valid: np.ndarray,
                      weights: np.ndarray | None = None) -> None:
    """MT_MEAN / MT_SUM / MT_BLEND: ``total`` (float64, bands × rows × cols) += item × weight and ``weight_sum``
    (float64, rows × cols) += weight over the item's valid pixels; the weight is 1, or ``weights`` (rows × cols)."""
    if total.dtype != np.float64 or weight_sum.dtype != np.float64:
        raise TypeError("total and weight_sum must be float64.")
    _check_result(total, weight_sum)
    item = _check_source(item, name="item")  # any pixel type: the kernel reads it as float64
    item_valid = _check_item_valid(item, item_valid, total.shape)
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if weights.shape != weight_sum.shape:
            raise ValueError("weights must be a (rows, cols) array matching the result.")
    _mosaic.accumulate(total, weight_sum, item, item_valid, weights, 1.0)


def mosaic_deepest(best: np.ndarray, best_depth: np.ndarray, runner: np.ndarray, runner_depth: np.ndarray,
                   item: np.ndarray, item_valid: np.ndarray, item_depth: np.ndarray) -> None:
    """Seamline: keep, per pixel, the two items with data the pixel lies deepest inside (``best``/``runner`` in the
    result's type, their depths float64 with -inf for none); ``item_depth`` (rows × cols) is the item's."""
    _check_result(best, best_depth, runner_depth)
    _check_result(runner)
    if runner.shape != best.shape or runner.dtype != best.dtype:
        raise ValueError("runner must be an array like best.")
    if best_depth.dtype != np.float64 or runner_depth.dtype != np.float64:
        raise TypeError("the depths must be float64.")
    best, item, item_valid = _result_and_item(best, item, item_valid)
    item_depth = np.ascontiguousarray(item_depth, dtype=np.float64)
    if item_depth.shape != best_depth.shape:
        raise ValueError("item_depth must be a (rows, cols) array matching the result.")
    _mosaic.keep_deepest(best, best_depth, runner, runner_depth, item, item_valid, item_depth)


def blend_weights(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float], least: float) -> np.ndarray:
    """MT_BLEND's weights: each pixel centre's (``x``, ``y``, rows × cols) distance to the nearest edge of ``bounds``
    (xmin, ymin, xmax, ymax), at least ``least``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError("x and y must be (rows, cols) arrays of one shape.")
    out = np.empty(x.shape, np.float64)
    _mosaic.blend_weights(x, y, *(float(v) for v in bounds), float(least), out)
    return out


def _check_result(data: np.ndarray, *per_pixel: np.ndarray) -> None:
    """The result (bands, rows, cols) and its per-pixel arrays (rows, cols) are writable and C-contiguous."""
    if data.ndim != 3 or not data.flags.c_contiguous or not data.flags.writeable:
        raise ValueError("the result must be a writable C-contiguous (bands, rows, cols) array.")
    for array in per_pixel:
        if array.shape != data.shape[1:] or not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError("the result's per-pixel arrays must be writable C-contiguous (rows, cols) arrays.")


def _check_item_valid(item: np.ndarray, item_valid: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if item.shape != shape:
        raise ValueError(f"the item's shape {item.shape} is not the result's {shape}.")
    item_valid = np.asarray(item_valid)
    if item_valid.shape != shape[1:] or item_valid.dtype != np.bool_:
        raise ValueError("item_valid must be a bool (rows, cols) array matching the item.")
    return np.ascontiguousarray(item_valid).view(np.uint8)


def _result_and_item(data: np.ndarray, item: np.ndarray, item_valid: np.ndarray):
    """The result, the item in the result's type and the item's mask as bytes, checked."""
    data = _check_source(data, name="data")
    item = _check_source(item, name="item")
    if item.dtype != data.dtype:
        item = item.astype(data.dtype)
    return data, item, _check_item_valid(item, item_valid, data.shape)


def _operands(data, valid, item, item_valid):
    """The arguments of the fill/extreme kernels: the result, its mask as bytes, the item and its mask."""
    _check_result(data, valid)
    if valid.dtype != np.bool_:
        raise ValueError("valid must be a bool array.")
    data, item, item_valid = _result_and_item(data, item, item_valid)
    return data, valid.view(np.uint8), item, item_valid


def _target(pixel: pixel_types.PixelType) -> tuple[np.dtype, float, float]:
    """(dtype, low, high): what a pixel type is stored in and the range its values are clipped to."""
    dtype = np.dtype(pixel.dtype)
    if pixel.bits is not None:
        return dtype, 0.0, float(2 ** pixel.bits - 1)
    if dtype.kind in "iu":
        return dtype, float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
    if dtype == np.float64:
        return dtype, -math.inf, math.inf  # holds every value computed here, infinities too: nothing to clip
    return dtype, -float(np.finfo(dtype).max), float(np.finfo(dtype).max)


_PIXEL_TYPE_TARGETS = {p.name: _target(p) for p in pixel_types.PIXEL_TYPES if p.dtype and not p.complex}

# A 1x1 stand-in handed to the kernels when the source has no mask (they take a typed buffer either way).
_NO_MASK = np.ones((1, 1), dtype=np.uint8)


def _check_source(source: np.ndarray, name: str = "source") -> np.ndarray:
    source = np.asarray(source)
    if source.ndim != 3:
        raise ValueError(f"{name} must be a (bands, rows, cols) array, not {source.ndim}-dimensional.")
    if source.dtype.kind == "c":
        raise TypeError(f"Complex pixel types (C64, C128) are not supported; {name} is {source.dtype}.")
    if source.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"Pixel type {source.dtype} is not supported; expected one of "
                        f"{' '.join(pixel_types.NAME_OF_DTYPE.values())}.")
    return np.ascontiguousarray(source.astype(source.dtype.newbyteorder("="), copy=False))


def _check_shape(dst_shape) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in dst_shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dst_shape must be (rows, cols), not {dst_shape!r}.") from exc
    if rows <= 0 or cols <= 0:
        raise ValueError(f"dst_shape must be positive, not {dst_shape!r}.")
    return rows, cols


def _check_valid(source: np.ndarray, source_valid: np.ndarray | None) -> np.ndarray | None:
    """The source mask as contiguous uint8, with NaN pixels (in any band) marked invalid; None if all valid."""
    if source_valid is not None:
        source_valid = np.asarray(source_valid)
        if source_valid.shape != source.shape[1:] or source_valid.dtype != np.bool_:
            raise ValueError("source_valid must be a bool (rows, cols) array matching the source.")
    # min() propagates NaN and is the cheapest full pass that does; the per-pixel mask only when there is one.
    if source.dtype.kind == "f" and source.size and np.isnan(source.min()):
        nan = np.isnan(source).any(axis=0)
        if nan.any():
            source_valid = ~nan if source_valid is None else source_valid & ~nan
    # A mask with every pixel valid (a window inside a masked raster's data) is no mask: the kernels then skip the
    # per-tap test, which is a third of a downsampled export's resampling time.
    if source_valid is None or source_valid.all():
        return None
    return np.ascontiguousarray(source_valid).view(np.uint8)


class _ExactMap:
    """Output pixel coordinates -> source pixel coordinates, exactly (NaN where a point cannot be projected)."""

    def __init__(self, src_transform: Affine, src_crs: CRS, dst_transform: Affine, dst_crs: CRS) -> None:
        self.to_src_pixel = ~src_transform
        self.dst_transform = dst_transform
        self.src_crs = src_crs
        self.dst_crs = dst_crs
        self.same_crs = src_crs == dst_crs

    def __call__(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self.dst_transform
        x = t.a * cols + t.b * rows + t.c
        y = t.d * cols + t.e * rows + t.f
        if not self.same_crs:
            x, y = sr.transform_points(self.dst_crs, self.src_crs, x, y)
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
        i = self.to_src_pixel
        # An unprojectable point comes back infinite, and inf x 0 is NaN: such points are marked below, as intended.
        with np.errstate(invalid="ignore"):
            sx = i.a * x + i.b * y + i.c
            sy = i.d * x + i.e * y + i.f
        bad = ~(np.isfinite(sx) & np.isfinite(sy))
        if bad.any():
            sx = np.where(bad, np.nan, sx)
            sy = np.where(bad, np.nan, sy)
        return sx, sy


def _coordinate_lattice(exact: _ExactMap, rows: int, cols: int, offset: float, max_error: float):
    """The approximate transformer for a rows x cols lattice of samples at output pixel coordinates (c + offset,
    r + offset): (level, offset, pool, cell) as the kernels take them.

    Cells of LATTICE_CELL samples start with exact transforms at their corners and are refined one by one (a
    quadtree of uniform subdivisions per cell): at level k a cell's nodes sit every LATTICE_CELL >> k samples and the
    kernel interpolates them bilinearly, or by cubics through 4 nodes a side (from level 2 on; see ext/warp.pyx).
    A cell's error at level k is measured where it is largest, at the next level's nodes (the midpoints), and
    halving the step shrinks it about 4 times for bilinear interpolation of a smooth map and 16 times for the
    cubics, so a cell whose level-k error is within ``_PREDICTED_GAIN * max_error`` (bilinear) or
    ``_PREDICTED_CUBIC_GAIN * max_error`` (cubic) keeps the level-(k + 1) nodes that the measurement has already
    computed, bilinear where that suffices; the others go on to level k + 1, down to exact transforms at every
    sample.  Cubics are what make continental grids cheap: bilinear would need a node every 2-4 samples there.  Each exact
    transform is computed once: the nodes live in one table over the whole grid, so a level reuses the previous
    level's nodes and neighbouring cells share their edges, and each level's new nodes are projected in one call.
    A cell touching an unprojectable point never passes (its error is infinite), so such points come out NaN, one
    by one, and so does a cell across a discontinuity of the map (the antimeridian, where longitudes wrap to
    +-180): its midpoints miss the interpolation by the jump, down to one sample.
    Same CRS on both sides: the map is affine, which bilinear interpolation reproduces exactly, so one cell with four
    corners covers the whole grid and nothing is projected.
    """
    if exact.same_crs:
        cell = 1 << max(1, int(max(rows, cols)).bit_length())
        ys = np.array([0.0, cell]) + offset
        xs = np.array([0.0, cell]) + offset
        sx, sy = exact(xs[None, :], ys[:, None])
        pool = np.ascontiguousarray(np.stack([sx, sy], axis=-1).ravel())
        return np.zeros((1, 1), np.int8), np.zeros((1, 1), np.intp), pool, cell

    cell = LATTICE_CELL
    finest = cell.bit_length() - 1  # the level whose nodes are every sample
    # Cell R holds sample rows [R * cell, (R + 1) * cell); its last node row is the next cell's first.
    cell_rows = -(-rows // cell)
    cell_cols = -(-cols // cell)
    cell_r, cell_c = np.divmod(np.arange(cell_rows * cell_cols), cell_cols)
    level = np.zeros(cell_rows * cell_cols, np.int8)
    starts = np.zeros(cell_rows * cell_cols, np.intp)
    blocks: list[np.ndarray] = []
    used = 0

    # The table of exact transforms, one entry per sample position (untouched pages of np.empty cost nothing).
    width = cell_cols * cell + 1
    size = (cell_rows * cell + 1) * width
    table_x = np.empty(size)
    table_y = np.empty(size)
    known = np.zeros(size, bool)
    slot = np.empty(size, np.intp)

    def nodes(cells: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The (cells, n, n) source x and y of the cells' level-k nodes, projecting those not known yet."""
        steps = np.arange((1 << k) + 1) * (cell >> k)
        index = ((cell_r[cells, None] * cell + steps)[:, :, None] * width
                 + (cell_c[cells, None] * cell + steps)[:, None, :])
        flat = index.ravel()
        new = flat[~known[flat]]
        if new.size:
            # Distinct entries without sorting: each keeps the last of its repeats.
            order = np.arange(new.size)
            slot[new] = order
            new = new[slot[new] == order]
            node_rows, node_cols = np.divmod(new, width)
            table_x[new], table_y[new] = exact(node_cols + offset, node_rows + offset)
            known[new] = True
        return table_x[index], table_y[index]

    def keep(cells: np.ndarray, k: int, x: np.ndarray, y: np.ndarray, cubic: bool = False) -> None:
        nonlocal used
        if not cells.size:
            return
        n = (1 << k) + 1
        level[cells] = k | _warp.CUBIC_NODES if cubic else k
        starts[cells] = used + np.arange(cells.size) * n * n * 2
        blocks.append(np.stack([x, y], axis=-1).ravel())
        used += cells.size * n * n * 2

    active = np.arange(cell_rows * cell_cols)
    if max_error == 0:
        keep(active, finest, *nodes(active, finest))
    else:
        k = 0
        x, y = nodes(active, 0)
        while active.size:
            if k == finest:
                keep(active, k, x, y)
                break
            fine_x, fine_y = nodes(active, k + 1)
            error = np.maximum(_midpoint_error(x, fine_x), _midpoint_error(y, fine_y))
            ok = error <= _PREDICTED_GAIN * max_error
            keep(active[ok], k + 1, fine_x[ok], fine_y[ok])
            if k >= 2 and not ok.all():
                # Where bilinear falls short, cubics through the same nodes may not.
                rest = ~ok
                error = np.maximum(_midpoint_error(x[rest], fine_x[rest], cubic=True),
                                   _midpoint_error(y[rest], fine_y[rest], cubic=True))
                cubic = np.zeros_like(ok)
                cubic[rest] = error <= _PREDICTED_CUBIC_GAIN * max_error
                keep(active[cubic], k + 1, fine_x[cubic], fine_y[cubic], cubic=True)
                ok |= cubic
            active, x, y = active[~ok], fine_x[~ok], fine_y[~ok]
            k += 1
    pool = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return (level.reshape(cell_rows, cell_cols), starts.reshape(cell_rows, cell_cols),
            np.ascontiguousarray(pool, dtype=np.float64), cell)


def _lattice_coordinates(lattice, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, cols) source x and y that the kernels interpolate from a lattice (for tests and benchmarks)."""
    level, starts, pool, cell = lattice
    if level.shape[0] * cell < rows or level.shape[1] * cell < cols:
        raise ValueError("the lattice does not cover the grid")
    xs = np.empty((rows, cols))
    ys = np.empty((rows, cols))
    _warp.coordinates(level, starts, pool, cell, xs, ys)
    return xs, ys


def _midpoint_error(coarse: np.ndarray, fine: np.ndarray, cubic: bool = False) -> np.ndarray:
    """Per cell, the largest gap between the exact values at the next level's nodes and the interpolation of the
    current nodes there (bilinear, or the kernels' cubics, which need 4 nodes a side); inf when anything is NaN."""
    if cubic:
        m = _cubic_midpoints(coarse.shape[1])
        interp = np.einsum("ij,cjk,lk->cil", m, coarse, m)
    else:
        interp = np.empty_like(fine)
        interp[:, ::2, ::2] = coarse
        interp[:, ::2, 1::2] = 0.5 * (coarse[:, :, :-1] + coarse[:, :, 1:])
        interp[:, 1::2, :] = 0.5 * (interp[:, :-2:2, :] + interp[:, 2::2, :])
    gap = np.abs(fine - interp)
    gap[np.isnan(gap)] = np.inf
    return gap.reshape(gap.shape[0], -1).max(axis=1)


def _cubic_midpoints(n: int) -> np.ndarray:
    """The (2n - 1, n) operator taking n nodes to themselves and their midpoints through the kernels' cubics: the
    midpoint of nodes i, i + 1 from nodes j0..j0 + 3, j0 = i - 1 clamped into the cell (warp.cubic_cell_row)."""
    m = np.zeros((2 * n - 1, n))
    m[::2] = np.eye(n)
    for i in range(n - 1):
        j0 = min(max(i - 1, 0), n - 4)
        u = i + 0.5 - j0
        a, b, c = u - 1.0, u - 2.0, u - 3.0
        m[2 * i + 1, j0:j0 + 4] = (-(a * b * c) / 6.0, u * b * c / 2.0, -(u * a * c) / 2.0, u * a * b / 6.0)
    return m


def _method(resampling: str, exact: _ExactMap, rows: int, cols: int, src_rows: int, src_cols: int):
    """(method code, xscale, yscale, xradius, yradius) for the centre-sampling kernels."""
    if resampling == "nearest":
        return _warp.NEAREST, 1.0, 1.0, 0, 0
    xscale, yscale = _footprint_scale(exact, rows, cols, src_rows, src_cols)
    if xscale >= _FOUR_SAMPLE_MIN_SCALE and yscale >= _FOUR_SAMPLE_MIN_SCALE:
        return (_warp.BILINEAR if resampling == "bilinear" else _warp.CUBIC), 1.0, 1.0, 0, 0
    radius = _FILTER_RADIUS[resampling]
    xradius = math.ceil(radius / xscale) if xscale < 1 else radius
    yradius = math.ceil(radius / yscale) if yscale < 1 else radius
    method = _warp.FILTERED_BILINEAR if resampling == "bilinear" else _warp.FILTERED_CUBIC
    return method, xscale, yscale, xradius, yradius


def _footprint_scale(exact: _ExactMap, rows: int, cols: int, src_rows: int, src_cols: int) -> tuple[float, float]:
    """Output size over the source footprint size on each axis, as GDAL's warper measures it for a chunk.

    GDALWarpOperation::ComputeSourceWindow projects 21 points along each edge of the output grid (a 21 x 21 grid when
    some fail) and takes their bounding box, its bounds rounded to an integer when within 1e-6 of one, clamped to the
    source; it returns the padded integer window and, as dfSrcXExtraSize, how much of it is padding.
    GDALWarpKernel::PerformWarp divides the output size by the window less that padding (the footprint) and snaps a
    ratio within 0.05 of an integer reciprocal onto it.  That is what gdalwarp and rasterio.warp.reproject compute
    (ChunkAndWarpImage hands each chunk's extra size to WarpRegion).  A whole-image read of a GDAL 3.10 WarpedVRT does
    not: VRTWarpedDataset::IRasterIO's 12-argument WarpRegionToBuffer call lands on the overload whose last two
    parameters are the progress base and scale, the extra size is lost, and the kernel divides by the padded window.
    The clamp uses the array we are given, which matches GDAL's clamp to the whole raster as long as the array covers
    the footprint where it overlaps the raster (the plan's windows do, with a margin).
    """
    t = np.linspace(0.0, 1.0, 21)
    px = np.concatenate([t * cols, t * cols, np.zeros(21), np.full(21, float(cols))])
    py = np.concatenate([np.zeros(21), np.full(21, float(rows)), t * rows, t * rows])
    sx, sy = exact(px, py)
    ok = np.isfinite(sx)
    if not ok.all():
        gx, gy = np.meshgrid(t * cols, t * rows)
        sx, sy = exact(gx.ravel(), gy.ravel())
        ok = np.isfinite(sx)
        if not ok.any():
            return 1.0, 1.0
    return (_axis_scale(cols, sx[ok].min(), sx[ok].max(), src_cols),
            _axis_scale(rows, sy[ok].min(), sy[ok].max(), src_rows))


def _round_if_close(value: float) -> float:
    """GDAL's ComputeSourceWindow snaps footprint bounds within 1e-6 of an integer onto it."""
    rounded = float(round(value))
    return rounded if abs(rounded - value) < 1e-6 else value


def _axis_scale(dst_size: int, low: float, high: float, src_size: int) -> float:
    low, high = _round_if_close(low), _round_if_close(high)
    raw = max(0.0, min(src_size - int(max(0.0, low)), high - low))
    if raw <= 0:
        return 1.0
    scale = dst_size / raw
    if scale < 1.0:
        reciprocal = 1.0 / scale
        nearest = int(reciprocal + 0.5)
        if abs(reciprocal - nearest) < 0.05:
            scale = 1.0 / nearest
    return scale
