"""Where an exportImage request spends its time: plan, read, resample (+ noData/pixelType), encode, per format, for a
1-band F32 and a 3-band U8 result at 1024x1024, so the share spent encoding is known.  Not a test.

Run: `.venv/bin/python -m bench.bench_stages` (uses the demo catalog, `imgsvc demo`).  Medians of reruns after a
warm-up, in-process (no transport); reads are warm in GDAL's block cache as in a serving process.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench.bench_export import timed
from imgsvc.catalog import Catalog, default_catalog_path
from imgsvc.encode import encode
from imgsvc.grpc.requests import export_params
from imgsvc.params import ExportParams
from imgsvc.read import read_window
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService, _window

# (label, service, extra parameters): the demo DEM as it is (F32), and the scene's natural colour as U8.
CASES = [
    ("1-band F32", "elevation", {}),
    ("3-band U8", "multispectral", {"bandIds": "2,1,0", "pixelType": "U8"}),
]
FORMATS = ("png", "jpgpng", "jpg", "lerc", "tiff", "bsq")


@dataclass(frozen=True)
class StageTimes:
    """Median ms of each stage of one export, in process; ``block`` is read + resample (+ functions, noData and
    pixelType), ``read`` every planned window read alone (for a mosaic, more than a composite that stops once every
    pixel is filled)."""
    plan: float
    read: float
    block: float
    encode: float
    nbytes: int

    @property
    def resample(self) -> float:
        return self.block - self.read

    @property
    def total(self) -> float:
        return self.plan + self.block + self.encode


def stage_times(core: ImageService, params: ExportParams, runs: int) -> StageTimes:
    export = core.plan_export(params)
    block = core.render_block(export)
    plan_ms = timed(lambda: core.plan_export(params), runs)
    read_ms = timed(lambda: [read_window(read.item, read.overview, _window(read.window), export.plan.bands)
                             for read in export.plan.reads], runs)
    block_ms = timed(lambda: core.render_block(export), runs)
    encode_ms = timed(lambda: encode(block, export.options), runs)
    return StageTimes(plan_ms, read_ms, block_ms, encode_ms, len(encode(block, export.options).data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", default=str(default_catalog_path()))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    core = ImageService(Catalog(args.catalog, readonly=True))

    print(f"{args.size}x{args.size} exports, bilinear, native EPSG:32611 grid at the source resolution; "
          f"median ms of {args.runs}")
    print(f"{'result':<11} {'format':<7} {'plan':>6} {'read':>6} {'resample':>9} {'encode':>7} {'total':>7} "
          f"{'encode %':>8} {'bytes':>9}")
    for label, service, extra in CASES:
        (item,) = core.catalog.items(service)
        x0, y0 = item.transform.c + 200 * item.transform.a, item.transform.f + 200 * item.transform.e
        x1, y1 = x0 + args.size * item.transform.a, y0 + args.size * item.transform.e
        for fmt in FORMATS:
            query = {"bbox": f"{x0},{y1},{x1},{y0}", "size": f"{args.size},{args.size}", "format": fmt,
                     "interpolation": "RSP_BilinearInterpolation", **extra}
            t = stage_times(core, export_params(export_request(service, Params(query.items()))), args.runs)
            print(f"{label:<11} {fmt:<7} {t.plan:6.1f} {t.read:6.1f} {t.resample:9.1f} {t.encode:7.1f} "
                  f"{t.total:7.1f} {100 * t.encode / t.total:7.0f}% {t.nbytes:9d}")


if __name__ == "__main__":
    main()
