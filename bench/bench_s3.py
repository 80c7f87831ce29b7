"""Exports from S3-compatible object storage against the same COG on local disk, cold and warm, with the number of
HTTP range requests per export counted in the S3 server's log.  The S3 server is moto's, on a loopback port (no
network latency: the ratio shows imgsvc's and GDAL's overhead per request, not a real bucket's round trips).
Not a test.  Run: `.venv/bin/python -m bench.bench_s3` (moto comes with the test extra).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import numpy as np

from imgsvc import read
from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from imgsvc.demo import _write_cog
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from rasterio.transform import Affine

SIZE = 4096


class LocalS3:
    """moto's server in its own process, its access log read line by line (each GET of the object is a request)."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.gets = 0
        threading.Thread(target=self._count, daemon=True).start()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)

    def _count(self) -> None:
        for line in self.process.stdout:
            if "GET /" in line:  # the log colours the request line
                self.gets += 1

    def stop(self) -> None:
        self.process.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    s3 = LocalS3()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3.port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rng = np.random.default_rng(5)
            data = np.cumsum(np.cumsum(rng.normal(0, 1, (SIZE, SIZE)), 0), 1).astype(np.float32)[None]
            path = folder / "dem.tif"
            _write_cog(path, data, transform=Affine(10, 0, 400000, 0, -10, 4100000), nodata=-9999.0,
                       overview_count=4, descriptions=("Elevation",), units="metre")
            client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
            client.create_bucket(Bucket="bench")
            client.upload_file(str(path), "bench", "dem.tif")
            for name, source in (("disk", path), ("s3", "s3://bench/dem.tif")):
                register(Catalog(folder / f"{name}.sqlite"), "dem", source, ServiceSettings())
            rng = np.random.default_rng(9)
            boxes = []
            for _ in range(args.runs):
                x, y = rng.uniform(400000, 400000 + 10 * SIZE - 5120), rng.uniform(4100000 - 10 * SIZE, 4100000 - 5120)
                boxes.append(export_params(export_request("dem", Params({
                    "bbox": f"{x},{y},{x + 5120},{y + 5120}", "size": "512,512", "format": "png",
                    "interpolation": "RSP_BilinearInterpolation"}.items()))))
            print(f"512² PNG exports of a {SIZE}² Float32 COG (4 overviews), {args.runs} random bboxes each")
            results = {}
            for name in ("disk", "s3"):
                core = ImageService(Catalog(folder / f"{name}.sqlite", readonly=True))
                cold, warm, cold_gets, warm_gets = [], [], [], []
                for params in boxes:
                    read._thread.datasets = None  # a cold open: no handle, no block cache
                    before = s3.gets
                    started = time.perf_counter()
                    core.export_image(params)
                    cold.append(time.perf_counter() - started)
                    time.sleep(0.05)  # the server's log line comes after its answer
                    cold_gets.append(s3.gets - before)
                    before = s3.gets
                    started = time.perf_counter()
                    core.export_image(params)  # warm: the same handle and blocks
                    warm.append(time.perf_counter() - started)
                    time.sleep(0.05)
                    warm_gets.append(s3.gets - before)
                results[name] = statistics.median(cold) * 1000, statistics.median(warm) * 1000
                print(f"  {name:<5} cold {results[name][0]:7.1f} ms   warm {results[name][1]:7.1f} ms"
                      + (f"   range requests per export: cold median {statistics.median(cold_gets):.0f} (max "
                         f"{max(cold_gets)}), warm median {statistics.median(warm_gets):.0f}" if name == "s3" else ""))
            print(f"  s3 / disk: cold x{results['s3'][0] / results['disk'][0]:.2f}, "
                  f"warm x{results['s3'][1] / results['disk'][1]:.2f} (goal: warm within x1.5)")
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
