"""Replicas, proven here (docs/deploy.md "Several machines"): three `imgsvc serve` processes on one PostgreSQL
catalog and one S3 bucket, the load-test harness calling them through gRPC's client-side round-robin with the
client's retry policy; one replica is killed mid-run and started again, and no request is lost."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent import futures

import httpx

from imgsvc.cli import main
from tests.conftest import start_serve

EXPORT_OK = re.compile(r'^imgsvc_grpc_requests_total\{code="OK",method="ExportImage"\} (\S+)$', re.MULTILINE)


class Replica:
    """One `imgsvc serve` on a gRPC port of its own, kept across restarts (the address clients were given)."""

    def __init__(self, catalog: str, output) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.args = ["--catalog", catalog, "serve", "--grpc", f"127.0.0.1:{self.port}", "--http", "127.0.0.1:0",
                     "--output-dir", str(output), "--workers", "1"]
        self.lines: list[str] = []
        self.served: list[tuple[float, float]] = []  # (seconds it served, exports it answered), one per life

    def start(self) -> Replica:
        self.process, _, self.url = start_serve(self.args, self.lines)
        self.started = time.monotonic()
        return self

    def exports(self) -> float:
        """The exports this life of the replica answered, from its own /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(count) for count in EXPORT_OK.findall(text))

    def end(self, kill: bool) -> None:
        """Count this life's exports, then kill it (SIGKILL: no drain, its calls in flight cut) or stop it."""
        self.served.append((time.monotonic() - self.started, self.exports()))
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=15)


def test_three_replicas_lose_no_request_when_one_is_killed_and_restarted(remote_catalog, tmp_path):
    replicas = [Replica(remote_catalog, tmp_path / f"out{index}") for index in range(3)]
    with futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(Replica.start, replicas))
    target = "grpc://" + ",".join(f"127.0.0.1:{replica.port}" for replica in replicas)
    report = tmp_path / "run.json"
    run: list[int] = []
    harness = threading.Thread(target=lambda: run.append(main(
        ["loadtest", target, "--service", "dem", "--concurrency", "6", "--duration", "8", "--warmup", "1",
         "--size", "128,128", "--format", "png,tiff", "--scale", "1,2,4", "--retries", "2", "--json", str(report),
         "--quiet"])))
    try:
        harness.start()
        time.sleep(3)
        victim = replicas[0]
        victim.end(kill=True)
        victim.start()
        harness.join(timeout=60)
    finally:
        for replica in replicas:
            replica.end(kill=False)
    summary = json.loads(report.read_text())
    per_replica = {f"{index}.{life}": {"seconds": round(seconds, 1), "exports": int(count),
                                       "exports_per_s": round(count / seconds, 1)}
                   for index, replica in enumerate(replicas) for life, (seconds, count) in enumerate(replica.served)}
    print(f"\n{summary['requests']} requests at {summary['throughput_rps']:.1f}/s, {summary['errors']} errors, "
          f"{summary['retries']} sent again; "
          f"per replica (index.life): {json.dumps(per_replica)}")
    assert run == [0] and summary["errors"] == 0 and summary["requests"] > 20, summary["errors_by_kind"]
    # Every replica answered its share, the restarted one too once the clients reconnected to it.
    assert all(doc["exports"] > 0 for doc in per_replica.values()), per_replica
