"""Parity of imgsvc.kernels.reproject with GDAL's warper on the same in-memory rasters and output grids.

GDAL is driven through a WarpedVRT over an in-memory GeoTIFF because that is where rasterio lets the transformer's
error threshold be set: ``rasterio.warp.reproject`` always wraps its transformer in GDAL's approximate transformer at
0.125 px (rasterio 1.4, ``_reproject``), which itself moves 2-8 % of nearest-neighbour picks.  A tolerance of 1e-9
source pixels makes GDAL's approximate transformer subdivide down to exact transforms (0 is refused by the VRT).
The source mask reaches GDAL as the GeoTIFF's mask band, nodata values as its nodata, and the output mask comes back
as an alpha band.  The VRT warps in blocks of 128 rows, each a warp chunk with its own source window, which changes
results along block seams (taps beyond a chunk's window drop out); the output grids here stay within one block.

The VRT is read block by block (GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO), which warps each block the way gdalwarp warps a
chunk (GDALWarpOperation::WarpRegionToBuffer computing the source window and its extra size itself).  A whole-image
read takes VRTWarpedDataset::IRasterIO instead, which in GDAL 3.10 loses the window's extra size on the way to the
kernel (its 12-argument WarpRegionToBuffer call binds dfSrcXExtraSize / dfSrcYExtraSize to the overload's
dfProgressBase / dfProgressScale), so the kernel divides by the padded window instead of the footprint: a different
scale on every fractional downsampling, and not what gdalwarp or rasterio.warp.reproject compute.

Every case prints one line (run ``pytest -s tests/test_kernels.py`` to see them): the share of pixels valid in both
whose values agree, and the number of output pixels whose validity differs.
"""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT

from imgsvc import kernels, sr

SRC_CRS = CRS.from_epsg(32633)  # UTM 33N, central Europe
SRC_TRANSFORM = Affine(100.0, 0.0, 480000.0, 0.0, -100.0, 5550000.0)
SRC_SHAPE = (150, 150)
# The output grids cover the middle of the source, so every output pixel has source neighbours except where nodata
# or the output corners (rotated grids) say otherwise.
DOWN_AREA = (481500.0, 5536500.0, 493500.0, 5548500.0)
AREAS = {"up": (483000.0, 5538000.0, 492000.0, 5547000.0), "down": DOWN_AREA,
         "1.33": DOWN_AREA, "1.7": DOWN_AREA, "2.6": DOWN_AREA}

# EPSG code of the output grid, or (EPSG, degrees) for a grid rotated by its geotransform.  The UTM 32N and polar
# stereographic grids are turned against the source by the projection; "rot" is the source's own CRS turned 20
# degrees, so the map is affine (no lattice refinement) and the footprint's bounding box, from which GDAL measures the
# scale, is wider than the grid, and clipped by the source on two sides.
TARGETS = {"3857": 3857, "4326": 4326, "utm32": 32632, "3413": 3413, "rot": (32633, 20.0)}
# Output width in pixels over the area: 120 px (75 m) upsamples the 100 m source, 40 px (300 m) downsamples it 3x; the
# others downsample it by fractional ratios (120 source pixels wide over 90, 71, 46 output pixels), where GDAL's scale
# comes from the footprint rather than snapping to an integer ratio and its widened kernels are least forgiving.
SCALES = {"up": 120, "down": 40, "1.33": 90, "1.7": 71, "2.6": 46}
DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8")
# Value ranges of real imagery (8-bit bands, 12-bit sensors, elevations, counts), above the nodata value for ints and
# away from 0 for floats so that a relative tolerance means something.  The +-1 tolerance for integers is a bound on
# coordinate error times the local gradient: a field spanning 60000 over a few pixels needs coordinates good to
# 1e-4 px, tighter than the default approximate transformer (pass a smaller max_error for such data).
RANGES = {"u1": (20, 230), "i1": (-100, 100), "u2": (200, 4000), "i2": (-400, 3000),
          "u4": (1000, 5000), "i4": (-2000, 2000), "f4": (100, 1100), "f8": (100, 1100)}
MIN_AGREEMENT = 0.995


def output_grid(target, scale: str) -> tuple[Affine, CRS, tuple[int, int]]:
    width = SCALES[scale]
    if isinstance(target, tuple):
        # A square grid as wide as the area, turned about the area's centre.
        epsg, angle = target
        x0, y0, x1, y1 = AREAS[scale]
        res = (x1 - x0) / width
        centre = Affine.translation((x0 + x1) / 2, (y0 + y1) / 2) @ Affine.rotation(angle)
        return centre @ Affine.translation(-res * width / 2, res * width / 2) @ Affine.scale(res, -res), \
            CRS.from_epsg(epsg), (width, width)
    crs = CRS.from_epsg(target)
    x0, y0, x1, y1 = sr.transform_bounds(SRC_CRS, crs, AREAS[scale])
    res = max((x1 - x0) / width, (y1 - y0) / width)
    rows = int(round((y1 - y0) / res))
    return Affine(res, 0.0, x0, 0.0, -res, y1), crs, (rows, width)


def smooth_field(dtype: str, bands: int, seed: int) -> np.ndarray:
    """Smooth waves plus 1 % noise, scaled into the dtype's test range."""
    rng = np.random.default_rng(seed)
    rows, cols = SRC_SHAPE
    y, x = np.mgrid[0:rows, 0:cols]
    out = []
    for b in range(bands):
        f = np.sin(x / (9.0 + b)) + np.cos(y / (13.0 + 2 * b)) + 0.5 * np.sin((x + y) / 23.0)
        f = (f - f.min()) / (f.max() - f.min())
        f = np.clip(f + rng.normal(0.0, 0.01, f.shape), 0.0, 1.0)
        lo, hi = RANGES[dtype]
        out.append(lo + f * (hi - lo))
    return np.stack(out).astype(dtype)


def class_map(dtype: str, seed: int) -> np.ndarray:
    """Categorical data (classes 1-10 in patches) for mode; 0 and below stay free for nodata."""
    rng = np.random.default_rng(seed)
    rows, cols = SRC_SHAPE
    y, x = np.mgrid[0:rows, 0:cols]
    f = (np.sin(x / 7.0) + np.cos(y / 5.0) + rng.normal(0.0, 0.3, (rows, cols))) * 2 + 5
    return np.clip(f.astype(int), 1, 10).astype(dtype)[None]


def holes(seed: int) -> np.ndarray:
    """True where the source is missing: a few discs and a stripe."""
    rng = np.random.default_rng(seed)
    rows, cols = SRC_SHAPE
    y, x = np.mgrid[0:rows, 0:cols]
    out = np.zeros(SRC_SHAPE, bool)
    for _ in range(5):
        cy, cx, r = rng.integers(20, 130), rng.integers(20, 130), rng.integers(4, 10)
        out |= (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    out[70:73, 30:120] = True
    return out


def with_nodata(source: np.ndarray, kind: str, seed: int):
    """(source, source_valid for imgsvc, GDAL nodata value, GDAL mask band) for a nodata kind."""
    if kind == "none":
        return source, None, None, None
    missing = holes(seed)
    source = source.copy()
    if kind == "value":
        nodata = -9999.0 if source.dtype.kind == "f" else np.iinfo(source.dtype).min
        source[:, missing] = nodata
        return source, ~missing, nodata, None
    if kind == "nan":
        source[:, missing] = np.nan
        return source, None, float("nan"), None
    # A mask over data that must never leak out: the type's largest value.
    source[:, missing] = np.finfo(source.dtype).max if source.dtype.kind == "f" else np.iinfo(source.dtype).max
    return source, ~missing, None, ~missing


def gdal_reproject(source, nodata, mask, dst_transform, dst_crs, shape, resampling):
    bands, rows, cols = source.shape
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=cols, height=rows, count=bands, dtype=source.dtype,
                      crs=SRC_CRS.to_wkt(), transform=SRC_TRANSFORM, nodata=nodata) as ds:
            ds.write(source)
            if mask is not None:
                ds.write_mask(mask.astype(np.uint8) * 255)
        # Block reads: gdalwarp's chunk warp (see the module docstring for what a whole-image read does instead).
        with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"), mem.open() as ds, WarpedVRT(
                ds, crs=dst_crs.to_wkt(), transform=dst_transform, width=shape[1], height=shape[0],
                resampling=getattr(Resampling, resampling), tolerance=1e-9, add_alpha=True) as vrt:
            assert vrt.block_shapes[0][0] >= shape[0] and vrt.block_shapes[0][1] >= shape[1]
            data = vrt.read(list(range(1, bands + 1)))
            valid = vrt.read(bands + 1) > 0
    return data, valid


def near_edge(valid: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of a change in validity (where a sub-pixel coordinate difference may flip it)."""
    edge = np.zeros_like(valid)
    for axis in (0, 1):
        diff = np.diff(valid, axis=axis)
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        edge[tuple(lo)] |= diff
        edge[tuple(hi)] |= diff
    return edge


def tolerance(resampling: str, reference: np.ndarray) -> float:
    if resampling in ("nearest", "mode"):
        return 0.0
    if reference.dtype.kind == "f":
        return 1e-4 * float(np.abs(reference).max())
    return 1.0


def nodata_kinds(dtype: str) -> tuple[str, ...]:
    return ("none", "value", "nan", "mask") if np.dtype(dtype).kind == "f" else ("none", "value", "mask")


CASES = [
    pytest.param(resampling, dtype, kind, target, scale, id=f"{resampling}-{dtype}-{kind}-{target}-{scale}")
    for resampling in kernels.RESAMPLINGS
    for dtype in DTYPES
    for kind in nodata_kinds(dtype)
    for target in TARGETS
    for scale in SCALES
]


@pytest.mark.parametrize(("resampling", "dtype", "kind", "target", "scale"), CASES)
def test_parity_with_gdal(resampling, dtype, kind, target, scale):
    seed = DTYPES.index(dtype)
    source = class_map(dtype, seed) if resampling == "mode" else smooth_field(dtype, 3 if dtype == "u1" else 1, seed)
    source, source_valid, nodata, mask = with_nodata(source, kind, seed + 100)
    dst_transform, dst_crs, shape = output_grid(TARGETS[target], scale)

    expected, expected_valid = gdal_reproject(source, nodata, mask, dst_transform, dst_crs, shape, resampling)
    data, valid = kernels.reproject(source, source_valid, SRC_TRANSFORM, SRC_CRS, dst_transform, dst_crs, shape,
                                    resampling)

    assert data.dtype == source.dtype and data.shape == expected.shape and valid.shape == shape
    assert not data[:, ~valid].any(), "invalid output pixels must hold 0"
    both = valid & expected_valid
    assert both.sum() > 0.3 * valid.size
    gap = np.abs(data.astype(np.float64) - expected.astype(np.float64))[:, both]
    agreement = float((gap <= tolerance(resampling, expected[:, both])).all(axis=0).mean())
    mask_mismatch = valid != expected_valid
    print(f"\nPARITY {resampling:8s} {dtype} {kind:5s} {target:5s} {scale:4s} agree={agreement:.4%} "
          f"mask_diff={int(mask_mismatch.sum())}/{valid.size} max_gap={gap.max():.4g}")
    assert agreement >= MIN_AGREEMENT
    # Validity may only differ where a sub-pixel coordinate difference can flip it.
    assert not (mask_mismatch & ~near_edge(expected_valid)).any()
    assert mask_mismatch.mean() <= 1 - MIN_AGREEMENT
