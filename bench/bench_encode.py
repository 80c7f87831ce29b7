"""Encode time and bytes per output format, and our PNG against Pillow's default PNG measured in the same run.
Not a test.  Run: `.venv/bin/python -m bench.bench_encode [--size 1024] [--repeats 7] [--png-repeats 15] [--no-demo]`.

Images (synthetic, seeded, so every run encodes the same pixels):
  rgb-u8       3-band U8 "imagery": 1/f fractal luminance and chroma, fine texture, sensor noise, sharp-edged
               fields and roads.  Every pixel valid, so jpgpng gives JPEG.
  rgb-u8-edge  the same with a masked wedge (outside-the-data corner), so jpgpng gives PNG with alpha.
  dem-f32      1-band F32 elevation (fractal terrain), stretched to 8 bits for the picture formats.
  dem-f32-edge the same with the masked wedge: png and jpgpng give gray + alpha, png32 RGBA with alpha 0.
  terrain-f32  1-band F32 broad waves plus noise (the test suite's ``smooth_field``), smoother than dem-f32.
               The F32 images carry statistics, as a service's rasters do.
  demo-dem     a size x size window of the demo DEM (``imgsvc.demo.generate``, written to a temporary directory;
               ~20 s, skipped with --no-demo), with its SRTM-like voids masked, stretched with the whole DEM's
               statistics as a service would.

Each measurement: one warm-up, then `--repeats` runs; the median is reported.  The PNG rows compare our writer
(the formats png / png32 / jpgpng-as-PNG) with Pillow's default PNG (`Image.save(..., "PNG")`, zlib level 6,
adaptive filters) of the very same 8-bit pixels, timed alternately `--png-repeats` times so that both see the same
load: speed-up = median of the per-pair ratios Pillow time / our time, size = our bytes / Pillow's.
Our time is the whole ``encode`` (stretch to 8 bits included), Pillow's only its save of the ready pixels.  png24
is compared only without masked pixels (with them it holds a transparent colour Pillow's baseline does not).
The goal (the PNG issue): every PNG row >= 5x faster than Pillow, at most 1.25x its size.
"""
from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from affine import Affine
from PIL import Image
from pyproj import CRS

from imgsvc.block import BandStats, ImageBlock
from imgsvc.encode import EncodeOptions, encode
from imgsvc.encode.picture import picture_pixels
from imgsvc.encode.stretch import block_band_stats

FORMATS = ["jpgpng", "png", "png8", "png24", "png32", "jpg", "bmp", "gif", "tiff", "tiff+LZ77", "bip", "bsq",
           "lerc", "lerc1"]
PNG_FLAVOURS = ["png", "png32", "jpgpng", "png24"]


def fractal(rows: int, cols: int, rng: np.random.Generator, beta: float) -> np.ndarray:
    """Zero-mean, unit-variance noise with amplitude falling as 1/f**(1+beta), like natural scenes."""
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    frequency = np.hypot(fx, fy)
    frequency[0, 0] = 1.0
    spectrum = frequency ** -(1 + beta) * np.exp(1j * rng.uniform(0, 2 * np.pi, frequency.shape))
    field = np.fft.irfft2(spectrum, s=(rows, cols))
    return (field - field.mean()) / field.std()


def imagery(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    luminance = 110 + 35 * fractal(size, size, rng, 1.0) + 12 * fractal(size, size, rng, 0.2)
    chroma_a, chroma_b = fractal(size, size, rng, 1.3), fractal(size, size, rng, 1.3)
    rgb = np.stack([luminance + 18 * chroma_a, luminance + 8 * chroma_b - 5 * chroma_a, luminance - 20 * chroma_b])
    rgb += rng.normal(0, 2.0, rgb.shape)
    for _ in range(size // 8):  # fields and roofs
        r0, c0 = rng.integers(0, size, 2)
        height, width = rng.integers(8, size // 8, 2)
        rgb[:, r0:r0 + height, c0:c0 + width] += rng.integers(-40, 40, (3, 1, 1))
    for _ in range(size // 100):  # roads
        r0, c0 = rng.integers(0, size, 2)
        rgb[:, r0:r0 + 3, :] = rng.integers(150, 220)
        rgb[:, :, c0:c0 + 3] = rng.integers(150, 220)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def elevation(size: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (800 + 300 * fractal(size, size, rng, 1.2) + rng.normal(0, 0.5, (size, size))).astype(np.float32)[None]


def terrain(size: int, seed: int = 2) -> np.ndarray:
    """Broad waves plus a little noise: ``tests/rasters.py`` ``smooth_field``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    field = 1500 + 600 * np.sin(x / 37.0) * np.cos(y / 53.0) + 300 * np.sin((x + 2 * y) / 91.0)
    return (field + rng.normal(0, 15, size=field.shape)).astype(np.float32)[None]


def demo_dem(size: int, transform: Affine, crs: CRS) -> ImageBlock:
    """A size x size window from the middle of the demo DEM, voids masked, with the whole DEM's statistics."""
    import rasterio
    from rasterio.windows import Window

    from imgsvc.demo import generate

    with tempfile.TemporaryDirectory() as directory, rasterio.open(generate(directory)["elevation"]) as source:
        whole = source.read(1)
        nodata = source.nodata
        offset = max(0, (min(whole.shape) - size) // 2)
        window = source.read(1, window=Window(offset, offset, size, size))
    stats = block_band_stats(whole, whole != nodata)
    return ImageBlock(window[None], window != nodata, transform, crs, (nodata,), (stats,))


def statistics_of(data: np.ndarray) -> tuple[BandStats]:
    """The service's statistics of a 1-band raster, which the stretch uses (without them it computes the block's
    own, ~4 ms more at 1024 x 1024)."""
    return (BandStats(float(data.min()), float(data.max()), float(data.mean()), float(data.std())),)


def blocks(size: int, demo: bool = True) -> dict[str, ImageBlock]:
    transform = Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0)
    crs = CRS.from_epsg(32633)
    rgb = imagery(size)
    all_valid = np.ones((size, size), bool)
    rows, cols = np.mgrid[0:size, 0:size]
    wedge = rows + cols > size * 1.6  # a corner outside the data
    dem = elevation(size)
    stats = statistics_of(dem)
    smooth = terrain(size)
    images = {
        "rgb-u8": ImageBlock(rgb, all_valid, transform, crs),
        "rgb-u8-edge": ImageBlock(rgb, ~wedge, transform, crs, (0, 0, 0)),
        "dem-f32": ImageBlock(dem, all_valid, transform, crs, None, stats),
        "dem-f32-edge": ImageBlock(dem, ~wedge, transform, crs, (-9999.0,), stats),
        "terrain-f32": ImageBlock(smooth, all_valid, transform, crs, None, statistics_of(smooth)),
    }
    if demo:
        images["demo-dem"] = demo_dem(size, transform, crs)
    return images


def options_for(name: str) -> EncodeOptions:
    if name == "tiff+LZ77":
        return EncodeOptions("tiff", compression="LZ77")
    if name == "lerc1":
        return EncodeOptions("lerc", lerc_version=1)
    return EncodeOptions(name)


def median_time(function, repeats: int):
    result = function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def paired_times(ours, theirs, repeats: int):
    """Time two functions alternately, so that both see the same load on a shared machine: (median of ours,
    median of theirs, median of the per-pair ratios theirs / ours, our result, their result)."""
    ours_result, their_result = ours(), theirs()  # warm-up
    our_times, their_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ours_result = ours()
        middle = time.perf_counter()
        their_result = theirs()
        our_times.append(middle - start)
        their_times.append(time.perf_counter() - middle)
    ratio = statistics.median(their / our for our, their in zip(our_times, their_times))
    return statistics.median(our_times), statistics.median(their_times), ratio, ours_result, their_result


def pillow_default_png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def pillow_baseline_pixels(block: ImageBlock, flavour: str) -> np.ndarray:
    """The 8-bit pixels our PNG holds for this flavour, for Pillow to encode the same image."""
    if flavour == "png32":
        return picture_pixels(block, rgb=True, alpha=True)
    if flavour == "png24":
        return picture_pixels(block, rgb=True)
    return picture_pixels(block, alpha=not block.valid.all())


def goal_met(speed_up: float, ours, pillow: bytes) -> bool:
    return speed_up >= 5 and len(ours.data) <= 1.25 * len(pillow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--png-repeats", type=int, default=15, help="runs of each side of the PNG comparison")
    parser.add_argument("--threads", type=int, default=2, help="threads for the PNG throughput line")
    parser.add_argument("--no-demo", action="store_true", help="leave out demo-dem (generating it takes ~20 s)")
    args = parser.parse_args()
    images = blocks(args.size, demo=not args.no_demo)

    print(f"{args.size}x{args.size}, median of {args.repeats} after a warm-up\n")
    print(f"{'image':12s} {'format':10s} {'ms':>8s} {'bytes':>10s}  kind")
    for image_name, block in images.items():
        for name in FORMATS:
            elapsed, encoded = median_time(lambda: encode(block, options_for(name)), args.repeats)
            print(f"{image_name:12s} {name:10s} {elapsed * 1000:8.1f} {len(encoded.data):10d}  "
                  f"{encoded.content_type} .{encoded.extension}")
        print()

    print("PNG against Pillow's default PNG of the same pixels (speed-up = Pillow ms / ours; size = ours / Pillow)")
    print(f"{'image':12s} {'format':8s} {'ours ms':>8s} {'Pillow ms':>9s} {'speed-up':>8s} {'ours B':>9s} "
          f"{'Pillow B':>9s} {'size':>6s}")
    for image_name, block in images.items():
        for flavour in PNG_FLAVOURS:
            if flavour == "png24" and not block.valid.all():
                continue  # a transparent colour in the masked pixels: not the baseline's pixels
            if encode(block, EncodeOptions(flavour)).extension != "png":
                continue  # jpgpng of a fully valid image is a JPEG: nothing to compare
            pixels = pillow_baseline_pixels(block, flavour)
            ours_time, pillow_time, speed_up, ours, pillow = paired_times(
                lambda: encode(block, EncodeOptions(flavour)), lambda: pillow_default_png(pixels), args.png_repeats)
            goal = flavour == "png24" or goal_met(speed_up, ours, pillow)  # png24 is not in the goal
            print(f"{image_name:12s} {flavour:8s} {ours_time * 1000:8.1f} {pillow_time * 1000:9.1f} "
                  f"{speed_up:7.1f}x {len(ours.data):9d} {len(pillow):9d} "
                  f"{len(ours.data) / len(pillow):6.3f}{'' if goal else '  misses the goal'}")

    block = images["rgb-u8-edge"]
    jobs = 4 * args.threads
    one_time, _ = median_time(lambda: [encode(block, EncodeOptions("png")) for _ in range(jobs)], 3)
    with ThreadPoolExecutor(args.threads) as pool:
        many_time, _ = median_time(lambda: list(pool.map(lambda _: encode(block, EncodeOptions("png")),
                                                         range(jobs))), 3)
    print(f"\nPNG throughput, rgb-u8-edge: {jobs} encodes in 1 thread {one_time * 1000:.0f} ms, "
          f"in {args.threads} threads {many_time * 1000:.0f} ms ({one_time / many_time:.2f}x)")


if __name__ == "__main__":
    main()
