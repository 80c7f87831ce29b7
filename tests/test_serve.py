"""`imgsvc serve` split in two, as a deployment may run it: a gRPC-only process and a gateway pointed at it."""
import re
import subprocess
import sys
import time

import httpx

from imgsvc.rest.query import Params, export_request


def start(args: list[str], pattern: str):
    process = subprocess.Popen([sys.executable, "-m", "imgsvc", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if match := re.search(pattern, line):
            return process, match.group(1)
    raise RuntimeError(f"{args} did not start")


def test_grpc_only_and_gateway_only_processes_work_together(catalog_path, tmp_path, stub):
    grpc_process, grpc_target = start(["--catalog", str(catalog_path), "serve", "--grpc-only",
                                       "--grpc", "127.0.0.1:0"], r"gRPC\s+listening on (\S+)")
    try:
        gateway, url = start(["serve", "--gateway-only", "--grpc-target", grpc_target, "--http", "127.0.0.1:0",
                              "--output-dir", str(tmp_path)], r"REST\s+listening on (http://\S+)/arcgis")
        try:
            query = {"bbox": "384000,4055000,396000,4064000", "size": "64,48", "format": "png", "f": "image"}
            for _ in range(50):  # the gateway answers once uvicorn has started
                try:
                    reply = httpx.get(f"{url}/arcgis/rest/services/dem/ImageServer/exportImage", params=query)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
            assert reply.content == stub.ExportImage(export_request("dem", Params(query.items()))).image
        finally:
            gateway.terminate()
            gateway.wait(15)
    finally:
        grpc_process.terminate()
        grpc_process.wait(15)


def test_serve_refuses_a_missing_catalog_in_one_line(tmp_path):
    for workers in ("1", "2"):
        done = subprocess.run([sys.executable, "-m", "imgsvc", "--catalog", str(tmp_path / "none.sqlite"), "serve",
                               "--workers", workers, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip() == (f"imgsvc: There is no catalog at {tmp_path / 'none.sqlite'}: run `imgsvc demo` "
                                       "or `imgsvc add` first.")
