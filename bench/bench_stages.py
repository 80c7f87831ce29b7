"""Where an exportImage request spends its time: plan, read, resample (+ noData/pixelType), encode, per format, for a
1-band F32 and a 3-band U8 result at 1024x1024, so the share spent encoding is known.  Not a test.

Run: `.venv/bin/python -m bench.bench_stages` (uses the demo catalog, `imgsvc demo`).  Medians of reruns after a
warm-up, in-process (no transport); reads are warm in GDAL's block cache as in a serving process.
"""
from __future__ import annotations

import argparse

from bench.bench_export import timed
from imgsvc.catalog import Catalog, default_catalog_path
from imgsvc.encode import encode
from imgsvc.grpc.requests import export_params
from imgsvc.read import read_window
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService, _window

# (label, service, extra parameters): the demo DEM as it is (F32), and the scene's natural colour as U8.
CASES = [
    ("1-band F32", "elevation", {}),
    ("3-band U8", "multispectral", {"bandIds": "2,1,0", "pixelType": "U8"}),
]
FORMATS = ("png", "jpgpng", "jpg", "lerc", "tiff", "bsq")


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
            params = export_params(export_request(service, Params(query.items())))
            export = core.plan_export(params)
            first = export.plan.reads[0]
            block = core.render_block(export)
            plan_ms = timed(lambda: core.plan_export(params), args.runs)
            read_ms = timed(lambda: read_window(first.item, first.overview, _window(first.window),
                                                    export.plan.bands), args.runs)
            block_ms = timed(lambda: core.render_block(export), args.runs)
            encode_ms = timed(lambda: encode(block, export.options), args.runs)
            total = plan_ms + block_ms + encode_ms
            size = len(encode(block, export.options).data)
            print(f"{label:<11} {fmt:<7} {plan_ms:6.1f} {read_ms:6.1f} {block_ms - read_ms:9.1f} {encode_ms:7.1f} "
                  f"{total:7.1f} {100 * encode_ms / total:7.0f}% {size:9d}")


if __name__ == "__main__":
    main()
