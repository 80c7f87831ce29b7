"""Kernel speed against GDAL's warper on the same in-memory arrays.

    .venv/bin/python -m bench.bench_kernels [--repeat N]

Each case warps a UTM 33N source (1100 x 1100, 10 m) onto a 1024 x 1024 Web Mercator grid over the same ground,
with ``imgsvc.kernels.reproject`` (default error bound) and with ``rasterio.warp.reproject`` (GDAL's warper with
its default 0.125 px approximate transformer, which rasterio does not let one change).  Times are medians of
``--repeat`` runs after one warm-up; the ratio is GDAL's time over ours (> 1: we are faster).

Two threads: both sides run two calls at once on a thread pool (two requests being served at the same time, the
way the service uses threads) and the time is the wall clock for the pair; GDAL's own ``num_threads`` splits one
warp instead, which is a different measure, so it is left out.  The cost of the approximate transformer (the exact
transforms and the lattice) is reported apart for a few error bounds.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import time
import warnings

import numpy as np
import rasterio.errors
import rasterio.warp
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling

from imgsvc import kernels, sr

SRC_CRS = CRS.from_epsg(32633)
DST_CRS = CRS.from_epsg(3857)
SRC_SHAPE = (1100, 1100)
SRC_TRANSFORM = Affine(10.0, 0.0, 480000.0, 0.0, -10.0, 5550000.0)
DST_SIZE = 1024
CASES = (("U8 x3", "u1", 3), ("U16 x4", "u2", 4), ("F32 x1", "f4", 1))
RESAMPLINGS = ("nearest", "bilinear", "cubic")


def source(dtype: str, bands: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SRC_SHAPE[0], 0:SRC_SHAPE[1]]
    f = (np.sin(x / 37.0) + np.cos(y / 53.0) + 2) * 50
    hi = 250 if dtype == "u1" else 4000
    return np.stack([np.clip(f * hi / 200 + rng.normal(0, hi / 100, f.shape), 0, hi)
                     for _ in range(bands)]).astype(dtype)


def output_grid() -> Affine:
    x0, y0, x1, y1 = sr.transform_bounds(SRC_CRS, DST_CRS, (480500.0, 5539500.0, 490500.0, 5549500.0))
    res = max((x1 - x0) / DST_SIZE, (y1 - y0) / DST_SIZE)
    return Affine(res, 0.0, x0, 0.0, -res, y1)


def ours(src: np.ndarray, dst_transform: Affine, resampling: str) -> None:
    kernels.reproject(src, None, SRC_TRANSFORM, SRC_CRS, dst_transform, DST_CRS, (DST_SIZE, DST_SIZE), resampling)


def gdal(src: np.ndarray, dst_transform: Affine, resampling: str) -> None:
    out = np.zeros((src.shape[0], DST_SIZE, DST_SIZE), src.dtype)
    rasterio.warp.reproject(src, out, src_transform=SRC_TRANSFORM, src_crs=SRC_CRS, dst_transform=dst_transform,
                            dst_crs=DST_CRS, resampling=getattr(Resampling, resampling), num_threads=1)


def median_time(fn, repeat: int, threads: int) -> float:
    def once() -> float:
        start = time.perf_counter()
        if threads == 1:
            fn()
        else:
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                for f in [pool.submit(fn) for _ in range(threads)]:
                    f.result()
        return time.perf_counter() - start

    once()  # warm-up: caches (PROJ transformers, GDAL drivers), page faults
    return statistics.median(once() for _ in range(repeat))


def main() -> None:
    # rasterio warns about in-memory datasets it builds itself when called from worker threads.
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    dst_transform = output_grid()
    print(f"{DST_SIZE}x{DST_SIZE} output, UTM 33N -> EPSG:3857, medians of {args.repeat} runs (ms); "
          f"ratio = GDAL / imgsvc")
    print(f"{'case':8s} {'resampling':10s} {'threads':>7s} {'imgsvc':>8s} {'GDAL':>8s} {'ratio':>6s}")
    for name, dtype, bands in CASES:
        src = source(dtype, bands)
        for resampling in RESAMPLINGS:
            for threads in (1, 2):
                t_ours = median_time(lambda: ours(src, dst_transform, resampling), args.repeat, threads)
                t_gdal = median_time(lambda: gdal(src, dst_transform, resampling), args.repeat, threads)
                print(f"{name:8s} {resampling:10s} {threads:7d} {t_ours * 1e3:8.1f} {t_gdal * 1e3:8.1f} "
                      f"{t_gdal / t_ours:6.2f}")
    print("\napproximate transformer alone (lattice of exact transforms), same grid:")
    exact = kernels._ExactMap(SRC_TRANSFORM, SRC_CRS, dst_transform, DST_CRS)
    for bound in (0.125, 0.01, kernels.DEFAULT_MAX_ERROR, 0.0005, 0.0):
        t = median_time(lambda: kernels._coordinate_lattice(exact, DST_SIZE, DST_SIZE, 0.5, bound), 3, 1)
        print(f"  max_error={bound:<8g} {t * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
