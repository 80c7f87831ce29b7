"""End-to-end exportImage latency over REST and gRPC, against GDAL (rasterio.warp.reproject + Pillow PNG) on the
same request, measured in the same run.  Not a test.  Run: `make bench` or `.venv/bin/python -m bench.bench_export`.

Uses the demo catalog (`imgsvc demo`).  Reports medians over reruns after a warm-up, and ratios to the baseline.
"""
from __future__ import annotations

import argparse
import io
import statistics
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import rasterio
import uvicorn
from PIL import Image
from rasterio.warp import Resampling, reproject

from imgsvc.catalog import Catalog, default_catalog_path
from imgsvc.grpc import create_server
from imgsvc.grpc.requests import export_params
from imgsvc.plan import output_grid, overview_for
from imgsvc.rest.app import GatewaySettings, create_app
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from imgsvc.sr import crs_from_wkid, crs_from_wkt, transform_bounds
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc


def timed(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


class GdalBaseline:
    """What a good hand-written GDAL script does: warp straight from the dataset band at the overview gdalwarp would
    pick (GDAL reads only the blocks it needs), stretch to 8 bits, Pillow's PNG.  Its datasets stay open between
    requests, as ours do, so both sides have GDAL's block cache warm."""

    def __init__(self, service, item) -> None:
        self.service = service
        self.item = item
        self.datasets = {}

    def dataset(self, overview):
        if overview not in self.datasets:
            self.datasets[overview] = rasterio.open(self.item.path, overview_level=overview)
        return self.datasets[overview]

    def __call__(self, params, resampling) -> bytes:
        grid = output_grid(params, self.service)
        item = self.item
        src = self.dataset(overview_for(item, grid))
        dst = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
        reproject(rasterio.band(src, 1), dst, dst_transform=grid.transform, dst_crs=grid.crs.to_wkt(),
                  dst_nodata=np.nan, resampling=resampling)
        valid = np.isfinite(dst)
        s = item.stats[0]
        gray = np.clip((np.nan_to_num(dst) - s.min) / (s.max - s.min) * 255, 0, 255).astype(np.uint8)
        rgba = np.dstack([gray, gray, gray, np.where(valid, 255, 0).astype(np.uint8)])
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, "PNG")
        return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", default=str(default_catalog_path()))
    parser.add_argument("--service", default="elevation")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    catalog = Catalog(args.catalog, readonly=True)
    service_record = catalog.service(args.service)
    core = ImageService(catalog)
    server, port = create_server(core, "127.0.0.1:0")
    server.start()
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{port}", output_dir=Path("/tmp/imgsvc-bench-out")))
    http_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    http_thread = threading.Thread(target=http_server.run, daemon=True)
    http_thread.start()
    while not http_server.started:
        time.sleep(0.05)
    http_port = http_server.servers[0].sockets[0].getsockname()[1]

    (item,) = catalog.items(args.service)  # the baseline is a script over one raster
    x0, y0, x1, y1 = transform_bounds(crs_from_wkt(item.crs_wkt), crs_from_wkid(3857), item.bounds)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 4
    bbox = f"{cx - half},{cy - half},{cx + half},{cy + half}"
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 1 << 28)])
    stub = pb_grpc.ImageServiceStub(channel)
    client = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=60)
    url = f"/arcgis/rest/services/{args.service}/ImageServer/exportImage"

    gdal = GdalBaseline(service_record, item)
    print(f"service {args.service}, bbox {bbox} (EPSG:3857), bilinear PNG, {args.runs} runs, median ms")
    print(f"{'size':>10} {'REST':>8} {'gRPC':>8} {'GDAL+Pillow':>12} {'GDAL/REST':>10} {'GDAL/gRPC':>10}")
    for size in (512, 1024):
        query = {"bbox": bbox, "bboxSR": "3857", "imageSR": "3857", "size": f"{size},{size}", "format": "png",
                 "interpolation": "RSP_BilinearInterpolation", "f": "image"}
        request = export_request(args.service, Params(query.items()))
        rest_ms = timed(lambda: client.get(url, params=query).raise_for_status(), args.runs)
        grpc_ms = timed(lambda: stub.ExportImage(request), args.runs)
        params = export_params(request)
        gdal_ms = timed(lambda: gdal(params, Resampling.bilinear), args.runs)
        print(f"{size:>5}x{size:<4} {rest_ms:8.1f} {grpc_ms:8.1f} {gdal_ms:12.1f} {gdal_ms / rest_ms:10.2f} "
              f"{gdal_ms / grpc_ms:10.2f}")
    client.close()
    channel.close()
    http_server.should_exit = True
    http_thread.join(timeout=10)  # the gateway closes its channel before the gRPC server goes away
    server.stop(None)


if __name__ == "__main__":
    main()
