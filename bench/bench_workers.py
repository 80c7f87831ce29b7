"""`imgsvc serve --workers 1` against `--workers N` (default: the machine's cores) under the same closed-loop load,
through both doors, measured by the load-test harness in one run.  Rounds alternate 1 and N workers, so other work
on the machine weighs on both sides alike.  Not a test.  Run: `.venv/bin/python -m bench.bench_workers
[--workers N] [--rounds 3] [--duration 10] [--concurrency 8]`.

Uses the demo catalog (`imgsvc demo`).  Prints each run, then per service and door the median throughput of each
side, the ratio N/1, the server's CPU per request and p99: when the CPU per request stays put and the ratio does
not rise, the server got no more CPU (the machine is busy, or one worker already used every core)."""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading

from imgsvc.catalog import default_catalog_path
from imgsvc.loadtest.mix import Mix
from imgsvc.loadtest.runner import Options, run
from imgsvc.loadtest.target import parse_target


@contextlib.contextmanager
def served(workers: int, catalog: str, cache_mb: int | None = 0):
    """`imgsvc serve --workers N` on free ports (with ``--cache-mb``, no response cache by default; None: serve's
    own default); yields (gRPC target, REST services URL) once it listens."""
    cache = [] if cache_mb is None else ["--cache-mb", str(cache_mb)]
    with tempfile.TemporaryDirectory() as output:
        process = subprocess.Popen([sys.executable, "-m", "imgsvc", "--catalog", catalog, "serve", "--workers",
                                    str(workers), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--output-dir",
                                    output, *cache], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        grpc_target = url = None
        for line in process.stdout:
            if match := re.search(r"gRPC\s+listening on (\S+)", line):
                grpc_target = match.group(1)
            if match := re.search(r"REST\s+listening on (http://\S+)", line):
                url = match.group(1)
            if grpc_target and url:
                break
        if not (grpc_target and url):
            raise RuntimeError(f"imgsvc serve --workers {workers} did not start")
        threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
        try:
            yield grpc_target, url
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--services", default="elevation,multispectral")
    parser.add_argument("--size", default="512,512")
    parser.add_argument("--format", default="png")
    args = parser.parse_args()
    catalog = str(default_catalog_path())
    width, height = (int(v) for v in args.size.split(","))
    mix = Mix(sizes=((width, height),), formats=(args.format,))
    results: dict[tuple[str, str, int], list[dict]] = {}
    for round_number in range(1, args.rounds + 1):
        for workers in (1, args.workers):
            with served(workers, catalog) as (grpc_target, url):
                for service in args.services.split(","):
                    for door, target in (("rest", f"{url}/{service}/ImageServer"),
                                         ("grpc", f"grpc://{grpc_target}")):
                        summary = run(Options(target=parse_target(target, service), mix=mix,
                                              concurrency=args.concurrency, connections=2 * args.concurrency,
                                              duration_s=args.duration, warmup_s=args.warmup, progress=False))
                        results.setdefault((service, door, workers), []).append(summary)
                        print(f"round {round_number} {workers} worker(s) {service:14} {door:4} "
                              f"{summary['throughput_rps']:7.1f} req/s  p99 {summary['latency_ms']['p99']:7.1f} ms  "
                              f"server CPU {summary['server']['cpu_percent']:4.0f}%  errors {summary['errors']}",
                              flush=True)
    n = args.workers
    print(f"\n{args.size} {args.format}, closed loop, {args.concurrency} clients, {2 * args.concurrency} connections, "
          f"median of {args.rounds} rounds")
    print(f"{'service':14} {'door':4} {'req/s 1':>8} {f'req/s {n}':>8} {'ratio':>6} {'CPU ms/req 1':>13} "
          f"{f'CPU ms/req {n}':>13} {'p99 ms 1':>9} {f'p99 ms {n}':>9}")
    for (service, door, workers), runs in results.items():
        if workers != 1:
            continue
        one, many = runs, results[(service, door, n)]
        rps = [statistics.median(r["throughput_rps"] for r in side) for side in (one, many)]
        cpu = [statistics.median(r["server"]["cpu_ms_per_request"] for r in side) for side in (one, many)]
        p99 = [statistics.median(r["latency_ms"]["p99"] for r in side) for side in (one, many)]
        print(f"{service:14} {door:4} {rps[0]:8.1f} {rps[1]:8.1f} {rps[1] / rps[0]:6.2f} {cpu[0]:13.1f} "
              f"{cpu[1]:13.1f} {p99[0]:9.1f} {p99[1]:9.1f}")


if __name__ == "__main__":
    main()
