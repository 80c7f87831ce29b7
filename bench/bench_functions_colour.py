"""The colour functions' cost on a 1024 x 1024 block, against the default stretch to 8 bits (``encode.stretch``) on
the same block, measured in the same run: the baseline every picture export without a rule already pays.

Run: `.venv/bin/python -m bench.bench_functions_colour [--runs N]`.  Medians of N runs after a warm-up, one
thread; the ratio is the function's time over the baseline's (< 1: cheaper than the default stretch).  Not a test.

Stretch computes every value a <= 16-bit integer type holds once and looks the pixels up, and stretches floats
linearly or by gamma in the Cython kernel (imgsvc.kernels.stretch_levels), Sigmoid and HistogramEqualization in numpy;
Colormap looks values up with a binary search, or indexes a 256-entry ramp.
"""
from __future__ import annotations

import argparse

import numpy as np

from bench.bench_export import timed
from imgsvc import kernels
from imgsvc.block import BandStats, ImageBlock
from imgsvc.encode.stretch import to_8bit
from imgsvc.functions import BandsInfo, Raster, parse_rule

SIZE = 1024
# (label, dtype, bands, scale): a 4-band U16 scene, a 1-band F32 DEM, a 1-band U8 class raster.
BLOCKS = (("U16 x4", "uint16", 4, 4000.0), ("F32 x1", "float32", 1, 3000.0), ("U8 x1", "uint8", 1, 250.0))
RULES = (
    ("Stretch StdDev", {"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 3}}),
    ("Stretch PercentClip DRA", {"rasterFunction": "Stretch",
                                 "rasterFunctionArguments": {"StretchType": 6, "DRA": True}}),
    ("Stretch MinMax gamma", {"rasterFunction": "Stretch", "rasterFunctionArguments": {
        "StretchType": 5, "UseGamma": True, "Gamma": [1.8]}}),
    ("Stretch Sigmoid", {"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 9}}),
    ("Colormap ramp", {"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColormapName": "Elevation"}}),
    ("Colormap table", {"rasterFunction": "Colormap", "rasterFunctionArguments": {
        "Colormap": [[v, v, 255 - v, v // 2] for v in range(0, 256, 3)]}}),
)


def block(dtype: str, bands: int, scale: float) -> Raster:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    field = (np.sin(x / 37.0) + np.cos(y / 53.0) + 2) / 4
    data = np.stack([np.clip(field * scale + rng.normal(0, scale / 100, field.shape), 0, scale)
                     for _ in range(bands)]).astype(dtype)
    valid = np.ones((SIZE, SIZE), bool)
    valid[:, :20] = False
    stats = tuple(BandStats(float(b.min()), float(b.max()), float(b.mean()), float(b.std())) for b in data)
    return Raster(data, valid, BandsInfo(tuple(f"b{i}" for i in range(bands)), dtype, stats))


def numpy_levels(values: np.ndarray, lo: float, hi: float, gamma: float) -> np.ndarray:
    """The stretch kernel's levels as a numpy chain: the baseline that says whether the kernel earns its place."""
    with np.errstate(invalid="ignore"):
        t = np.clip((values.astype(np.float64) - lo) / (hi - lo), 0, 1) ** (1 / gamma)
        levels = np.floor(t * 255)
    levels[~np.isfinite(levels)] = 0
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    print(f"{SIZE}x{SIZE} blocks, median ms of {args.runs}; ratio = function / default stretch")
    print(f"{'block':<8} {'function':<24} {'ms':>7} {'baseline':>9} {'ratio':>6}")
    for label, dtype, bands, scale in BLOCKS:
        source = block(dtype, bands, scale)
        image = ImageBlock(source.data, source.valid, transform=None, crs=None, stats=source.info.stats)
        baseline = timed(lambda: to_8bit(image), args.runs)
        for name, rule in RULES:
            chain = parse_rule(rule)
            ms = timed(lambda: chain.apply(source, None), args.runs)
            print(f"{label:<8} {name:<24} {ms:7.1f} {baseline:9.1f} {ms / baseline:6.2f}")
    print("\nthe F32 stretch kernel against the same levels computed by a numpy chain (ratio < 1: the kernel is faster)")
    values = block("float32", 1, 3000.0).data[0]
    for gamma in (1.0, 1.8):
        ms = timed(lambda: kernels.stretch_levels(values, 100, 2900, 0, 255, gamma), args.runs)
        baseline = timed(lambda: numpy_levels(values, 100, 2900, gamma), args.runs)
        print(f"gamma {gamma:<4} kernel {ms:6.1f} ms  numpy {baseline:6.1f} ms  ratio {ms / baseline:5.2f}")


if __name__ == "__main__":
    main()
