"""The soak: `imgsvc serve` as `make serve` runs it (its default settings, response cache on) under a varied closed-loop
load for minutes, its memory sampled all along, to show that it levels off and that nothing fails.  Not a test.

Run: `.venv/bin/python -m bench.soak [--minutes 10] [--concurrency 8] [--workers 1]` (or `make soak`); uses the demo
catalog (`imgsvc demo`).  Segments of `--segment` seconds go round the demo services and both doors, each with a mix
of sizes, scales, formats, interpolations and the services' templates, a new seed every segment (so the response
cache sees few repeats).  Prints the server's resident memory each minute, the growth over the second half of the
run, and requests, errors and p99 per segment; `--json FILE` writes it all.
"""
from __future__ import annotations

import argparse
import itertools
import json
import threading
import time

from bench.bench_workers import served
from imgsvc.catalog import default_catalog_path
from imgsvc.loadtest import processes
from imgsvc.loadtest.mix import Mix
from imgsvc.loadtest.runner import Options, run
from imgsvc.loadtest.target import parse_target

SIZES = ((256, 256), (512, 512), (1024, 768), (300, 900))
# Each demo service with what it is asked for: formats its bands allow, and its templates by name.
SERVICES = {
    "elevation": (("png", "lerc", "tiff", "jpgpng"), ("Hillshade", "Slope", "Shaded Relief", "Aspect Colors")),
    "multispectral": (("png", "jpg", "tiff", "lerc"), ("Natural Color", "NDVI Colorized", "NDVI Raw")),
    "scenes": (("png", "jpgpng", "tiff"), ("Natural Color", "Color Infrared")),
    "climate": (("png", "lerc", "tiff"), ()),
}
INTERPOLATIONS = ("RSP_NearestNeighbor", "RSP_BilinearInterpolation", "RSP_CubicConvolution")


class MemoryTrace(threading.Thread):
    """The server processes' summed resident memory every ``interval`` seconds: [(seconds since start, bytes)]."""

    def __init__(self, pids: list[int], interval: float) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.points: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopping.is_set():
            sample = processes.sample(self.pids)
            if sample is not None:
                self.points.append((time.monotonic() - start, sample.rss_bytes))
            self.stopping.wait(self.interval)


def growth(points: list[tuple[float, int]]) -> float:
    """Resident memory at the end over memory halfway (1.0: flat over the second half)."""
    end = points[-1][0]
    middle = min(points, key=lambda point: abs(point[0] - end / 2))
    return points[-1][1] / middle[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--segment", type=float, default=20.0, help="seconds per service and door")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--catalog", default=str(default_catalog_path()))
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    segments = []
    with served(args.workers, args.catalog, cache_mb=None) as (grpc_target, url):
        port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        trace = MemoryTrace(processes.listening_pids(port), interval=5.0)
        trace.start()
        deadline = time.monotonic() + 60 * args.minutes
        rounds = itertools.cycle([(service, door) for service in SERVICES for door in ("rest", "grpc")])
        for seed in itertools.count(1):
            left = deadline - time.monotonic()
            if left < 1:
                break
            service, door = next(rounds)
            formats, templates = SERVICES[service]
            mix = Mix(sizes=SIZES, formats=formats, interpolations=INTERPOLATIONS,
                      rendering_rules=("",) + tuple(json.dumps({"rasterFunction": t}) for t in templates))
            target = f"{url}/{service}/ImageServer" if door == "rest" else f"grpc://{grpc_target}"
            summary = run(Options(target=parse_target(target, service), mix=mix, seed=seed,
                                  concurrency=args.concurrency, duration_s=min(args.segment, left), warmup_s=0.0,
                                  progress=False))
            segments.append({"service": service, "door": door, "requests": summary["requests"],
                             "errors": summary["errors"], "errors_by_kind": summary.get("errors_by_kind", {}),
                             "p99_ms": summary["latency_ms"]["p99"]})
            print(f"{time.strftime('%H:%M:%S')} {service:13} {door:4} {summary['requests']:6} requests  errors "
                  f"{summary['errors']:3}  p99 {summary['latency_ms']['p99']:8.1f} ms  RSS "
                  f"{trace.points[-1][1] / 2**20 if trace.points else 0:7.0f} MiB", flush=True)
        trace.stopping.set()
        trace.join()
    points = trace.points
    print("\nminute  RSS MiB")
    for minute in range(int(points[-1][0] // 60) + 1):
        at = [rss for t, rss in points if minute * 60 <= t < (minute + 1) * 60]
        if at:
            print(f"{minute:6}  {max(at) / 2**20:7.0f}")
    total = sum(s["requests"] for s in segments)
    failed = sum(s["errors"] for s in segments)
    print(f"\n{total} requests, {failed} errors; RSS {points[0][1] / 2**20:.0f} MiB at start, "
          f"{max(rss for _, rss in points) / 2**20:.0f} peak, {points[-1][1] / 2**20:.0f} at the end; "
          f"end / halfway {growth(points):.3f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"segments": segments, "rss": points, "growth_second_half": growth(points)}, out, indent=1)


if __name__ == "__main__":
    main()
