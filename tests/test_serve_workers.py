"""`imgsvc serve --workers 2`: two processes share the gRPC and HTTP ports, both answer, SIGTERM stops them all;
and the sockets they listen on."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import grpc
import httpx

from imgsvc.rest.query import Params, export_request
from imgsvc.rest.worker import WORKER_HEADER
from imgsvc.serving import listening_socket
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

QUERY = {"bbox": "384000,4055000,396000,4064000", "size": "64,48", "format": "png", "f": "image"}


def test_two_workers_share_the_ports_and_stop_on_sigterm(catalog_path, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "imgsvc", "--catalog", str(catalog_path), "serve",
                                "--workers", "2", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                "--output-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "workers: pids" in line:
                break
        text = "".join(lines)
        worker_pids = set(re.search(r"workers: pids ([\d ]+)", text).group(1).split())
        grpc_target = re.search(r"gRPC\s+listening on (\S+)", text).group(1)
        url = re.search(r"REST\s+listening on (http://\S+)/arcgis", text).group(1)
        assert len(worker_pids) == 2 and str(process.pid) not in worker_pids

        answered_by = set()
        images = set()
        for _ in range(40):  # a new connection each time: the kernel spreads them over the workers
            reply = httpx.get(f"{url}/arcgis/rest/services/dem/ImageServer/exportImage", params=QUERY, timeout=30)
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
            answered_by.add(reply.headers[WORKER_HEADER])
            images.add(reply.content)
            if answered_by == worker_pids:
                break
        assert answered_by == worker_pids and len(images) == 1
        with grpc.insecure_channel(grpc_target) as channel:
            reply = pb_grpc.ImageServiceStub(channel).ExportImage(export_request("dem", Params(QUERY.items())))
        assert reply.image in images

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        for pid in worker_pids:  # every worker is gone too, not orphaned
            deadline = time.monotonic() + 5
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not os.path.exists(f"/proc/{pid}")
    finally:
        if process.poll() is None:
            process.kill()


def test_the_gateway_socket_answers_without_waiting_for_delayed_acks():
    """asyncio turns Nagle off only on sockets it created; a gateway's accepted connections inherit it from ours.
    With Nagle on, the body written after the headers waited for the client's delayed ACK: 40 ms per answer."""
    with listening_socket("127.0.0.1:0", shared=True) as server, socket.create_connection(server.getsockname()):
        accepted, _ = server.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
