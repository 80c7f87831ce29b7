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

    .venv/bin/python -m bench.bench_kernels --lattice [--bounds 0.002 0.0005]

The approximate transformer alone on 1024 x 1024 grids in four output systems (Web Mercator, WGS 84, the next UTM
zone, polar stereographic) over a UTM 33N source whose pixels are the output's size, for extents of 10 km, 200 km
and a continent (4000 km): per error bound, the time to build the lattice (median of 3), the exact transforms it
made, the largest distance of its coordinates from the exact map (source pixels, either axis) and the share of
output pixels whose containing source pixel (the nearest pick) is the exact map's.
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


LATTICE_TARGETS = {"3857": 3857, "4326": 4326, "UTM 32N": 32632, "3413": 3413}
LATTICE_EXTENTS = {"10 km": 10e3, "200 km": 200e3, "4000 km": 4000e3}
LATTICE_CENTRE = (500000.0, 5500000.0)  # UTM 33N, 49.6 N 15 E


def lattice_case(target: int, extent: float) -> kernels._ExactMap:
    half = extent / 2
    area = (LATTICE_CENTRE[0] - half, LATTICE_CENTRE[1] - half, LATTICE_CENTRE[0] + half, LATTICE_CENTRE[1] + half)
    src_res = extent / DST_SIZE
    src_transform = Affine(src_res, 0.0, area[0], 0.0, -src_res, area[3])
    crs = CRS.from_epsg(target)
    x0, y0, x1, y1 = sr.transform_bounds(SRC_CRS, crs, area)
    res = max((x1 - x0) / DST_SIZE, (y1 - y0) / DST_SIZE)
    return kernels._ExactMap(src_transform, SRC_CRS, Affine(res, 0.0, x0, 0.0, -res, y1), crs)


def lattice_table(bounds: list[float]) -> None:
    projected = 0
    transform_points = sr.transform_points

    def counting(src, dst, xs, ys):
        nonlocal projected
        projected += np.size(xs)
        return transform_points(src, dst, xs, ys)

    print(f"approximate transformer, {DST_SIZE}x{DST_SIZE} output over a UTM 33N source of the same pixel size: "
          "ms (median of 3), exact transforms, max error (source px), nearest picks equal to the exact map's")
    print(f"{'output':8s} {'extent':8s} " + " ".join(f"{'@' + format(b, 'g'):>8s} {'points':>8s} {'error':>8s} "
                                                     f"{'picks':>8s}" for b in bounds))
    centres = np.arange(DST_SIZE) + 0.5
    sr.transform_points = counting
    try:
        for name, target in LATTICE_TARGETS.items():
            for extent_name, extent in LATTICE_EXTENTS.items():
                exact = lattice_case(target, extent)
                ex, ey = exact(centres[None, :], centres[:, None])
                line = f"{name:8s} {extent_name:8s} "
                for bound in bounds:
                    times = []
                    for _ in range(3):
                        projected = 0
                        start = time.perf_counter()
                        lattice = kernels._coordinate_lattice(exact, DST_SIZE, DST_SIZE, 0.5, bound)
                        times.append(time.perf_counter() - start)
                    x, y = kernels._lattice_coordinates(lattice, DST_SIZE, DST_SIZE)
                    error = float(np.nanmax(np.maximum(np.abs(x - ex), np.abs(y - ey))))
                    picks = float(((np.floor(x) == np.floor(ex)) & (np.floor(y) == np.floor(ey))).mean())
                    line += f"{statistics.median(times) * 1e3:8.1f} {projected:8d} {error:8.5f} {picks:8.4%} "
                print(line, flush=True)
    finally:
        sr.transform_points = transform_points


def main() -> None:
    # rasterio warns about in-memory datasets it builds itself when called from worker threads.
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--lattice", action="store_true", help="only the approximate transformer's table")
    parser.add_argument("--bounds", type=float, nargs="+", default=[0.002, kernels.DEFAULT_MAX_ERROR])
    args = parser.parse_args()
    if args.lattice:
        lattice_table(args.bounds)
        return
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
    for bound in sorted({0.125, 0.01, 0.002, kernels.DEFAULT_MAX_ERROR, 0.0005, 0.0}, reverse=True):
        t = median_time(lambda: kernels._coordinate_lattice(exact, DST_SIZE, DST_SIZE, 0.5, bound), 3, 1)
        print(f"  max_error={bound:<8g} {t * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
