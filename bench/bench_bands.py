"""Band functions against the plain numpy (or GDAL) way of computing the same pixels, in the same run.

    .venv/bin/python -m bench.bench_bands [--repeat N] [--size N]

On a 4-band uint16 block (N x N, default 2048): NDVI through the compiled normalized-difference kernel against
numpy's float64 ``(nir - red)/(nir + red)`` with the NoData mask and the float32 cast (what the function would
otherwise do); the same formula as a BandArithmetic expression (the tree evaluated with numpy); Local Times by a
number; and Clip's even-odd rasterisation of a 400-vertex polygon against GDAL's (``rasterio.features.
geometry_mask``).  Times are medians of ``--repeat`` runs after two warm-ups; the ratio is the baseline's time
over ours (> 1: we are faster).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.features import geometry_mask

from bench.bench_export import timed
from imgsvc.functions import BandsInfo, Raster, parse_rule
from imgsvc.functions.arithmetic import float32_pixels
from imgsvc.plan import OutputGrid


def numpy_ndvi(data: np.ndarray, valid: np.ndarray):
    nir, red = data[3].astype(np.float64), data[2].astype(np.float64)
    with np.errstate(all="ignore"):
        return float32_pixels(((nir - red) / (nir + red))[None], valid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    size = args.size
    rng = np.random.default_rng(0)
    data = rng.integers(0, 10000, size=(4, size, size), dtype=np.uint16)
    valid = rng.random((size, size)) > 0.01
    transform = Affine(10, 0, 380000, 0, -10, 4070000)
    grid = OutputGrid(CRS.from_epsg(32611), transform, size, size)
    source = Raster(data, valid, BandsInfo(("Blue", "Green", "Red", "NearInfrared"), "uint16", None))

    def chain(rule):
        parsed = parse_rule(rule)
        return lambda: parsed.apply(source, grid)

    angles = np.linspace(0, 2 * math.pi, 401)
    radius = size * 10 * (0.35 + 0.1 * np.sin(7 * angles))
    ring = np.column_stack([380000 + size * 5 + radius * np.cos(angles), 4070000 - size * 5 + radius * np.sin(angles)])
    ring[-1] = ring[0]
    polygon = {"rings": [ring.tolist()], "spatialReference": {"wkid": 32611}}
    shape = {"type": "Polygon", "coordinates": [ring.tolist()]}
    cases = [
        ("NDVI (kernel) vs numpy float64",
         chain({"rasterFunction": "NDVI", "rasterFunctionArguments": {"ScientificOutput": True}}),
         lambda: numpy_ndvi(data, valid)),
        ("BandArithmetic (B4-B3)/(B4+B3) vs numpy float64",
         chain({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"BandIndexes": "(B4-B3)/(B4+B3)"}}),
         lambda: numpy_ndvi(data, valid)),
        ("Local Times 0.3048 (4 bands) vs numpy float64",
         chain({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 3, "Rasters": ["$$", 0.3048]}}),
         lambda: float32_pixels(data.astype(np.float64) * 0.3048, valid)),
        ("Clip 400-vertex polygon vs GDAL rasterize",
         chain({"rasterFunction": "Clip", "rasterFunctionArguments": {"ClippingGeometry": polygon}}),
         lambda: geometry_mask([shape], out_shape=(size, size), transform=transform, invert=True)),
    ]
    print(f"{size} x {size}, median of {args.repeat}")
    print(f"{'case':<52} {'ours ms':>9} {'baseline ms':>12} {'ratio':>7}")
    for name, ours, baseline in cases:
        mine, theirs = timed(ours, args.repeat), timed(baseline, args.repeat)
        print(f"{name:<52} {mine:>9.1f} {theirs:>12.1f} {theirs / mine:>7.2f}")


if __name__ == "__main__":
    main()
