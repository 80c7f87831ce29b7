"""The soak: `imgsvc serve` as `make serve` runs it (its default settings, response cache on) under load for minutes,
its resident memory sampled all along, to show that latency and memory stay level and that nothing fails.  Not a
test (tests/test_soak.py runs a few seconds of it).

Run: `.venv/bin/python -m bench.soak [--minutes 10] [--mode open|varied]` (or `make soak`); uses the demo catalog
(`imgsvc demo`).

- `open` (the default): the peak throughput of `--service` (512² PNG by default) is measured in closed loop with
  `--concurrency` clients, then the soak runs in open loop at `--load` (80%) of it, latency measured from each
  request's scheduled time: p99 and resident memory each minute, memory growth after the warm-up (the first fifth
  of the run, when the caches fill).
- `varied`: closed loop with `--concurrency` clients, segments of `--segment` seconds going round the demo services
  and both doors, each with a mix of sizes, scales, formats, interpolations and the services' templates, a new seed
  every segment (the response cache sees few repeats).

`--json FILE` writes everything.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from pathlib import Path

from bench.bench_workers import served
from imgsvc.catalog import default_catalog_path
from imgsvc.loadtest import processes
from imgsvc.loadtest.mix import Mix
from imgsvc.loadtest.runner import Options, run
from imgsvc.loadtest.target import parse_target

SIZES = ((256, 256), (512, 512), (1024, 768), (300, 900))
# Each demo service with what it is asked for in the varied mode: formats its bands allow, and its templates by name.
SERVICES = {
    "elevation": (("png", "lerc", "tiff", "jpgpng"), ("Hillshade", "Slope", "Shaded Relief", "Aspect Colors")),
    "multispectral": (("png", "jpg", "tiff", "lerc"), ("Natural Color", "NDVI Colorized", "NDVI Raw")),
    "scenes": (("png", "jpgpng", "tiff"), ("Natural Color", "Color Infrared")),
    "climate": (("png", "lerc", "tiff"), ()),
}
INTERPOLATIONS = ("RSP_NearestNeighbor", "RSP_BilinearInterpolation", "RSP_CubicConvolution")
WARMUP_SHARE = 0.2


class MemoryTrace(threading.Thread):
    """The processes' summed resident memory every ``interval`` seconds: [(seconds since start, bytes)]."""

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

    def __enter__(self) -> MemoryTrace:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.join()


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` on ``cpus``, and this process on the others, so that the harness's own work
    does not stall the server (threads the server starts later inherit its mask)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)
    others = os.sched_getaffinity(0) - cpus
    if others:
        os.sched_setaffinity(0, others)


def growth_after(points: list[tuple[float, int]], share: float) -> float:
    """Resident memory at the end over memory once ``share`` of the run has passed (1.0: level since then)."""
    end = points[-1][0]
    settled = min(points, key=lambda point: abs(point[0] - share * end))
    return points[-1][1] / settled[1]


def per_minute(points: list[tuple[float, int]]) -> list[float]:
    """The largest resident memory (MiB) of each minute."""
    minutes: dict[int, int] = {}
    for t, rss in points:
        minutes[int(t // 60)] = max(minutes.get(int(t // 60), 0), rss)
    return [minutes[m] / 2**20 for m in sorted(minutes)]


def open_loop_soak(target: str, service: str, mix: Mix, pids: list[int], seconds: float, concurrency: int,
                   load: float, peak_seconds: float = 20.0, progress: bool = True) -> dict:
    """Measure the peak (closed loop), then run open loop at ``load`` times it for ``seconds``."""
    parsed = parse_target(target, service)
    peak = run(Options(target=parsed, mix=mix, concurrency=concurrency, duration_s=peak_seconds, warmup_s=2.0,
                       seed=1, progress=False))
    rate = load * peak["throughput_rps"]
    with MemoryTrace(pids, interval=min(5.0, max(0.5, seconds / 100))) as trace:
        soak = run(Options(target=parsed, mix=mix, rate=rate, duration_s=seconds, warmup_s=0.0, seed=2,
                           progress=progress))
    minutes = {}
    for row in soak["timeline"]:
        minutes.setdefault(int((row["t_s"] - 1e-9) // 60), []).append(row["p99"])
    return {"peak_rps": peak["throughput_rps"], "rate_rps": rate, "requests": soak["requests"],
            "errors": soak["errors"], "errors_by_kind": soak["errors_by_kind"], "latency_ms": soak["latency_ms"],
            "p99_ms_per_minute": [max(p99s) for _, p99s in sorted(minutes.items())],
            "rss_mib_per_minute": per_minute(trace.points), "rss": trace.points,
            "rss_growth_after_warmup": growth_after(trace.points, WARMUP_SHARE)}


def varied_soak(url: str, grpc_target: str, pids: list[int], seconds: float, segment: float,
                concurrency: int) -> dict:
    """Closed-loop segments going round the demo services and both doors."""
    segments = []
    with MemoryTrace(pids, interval=5.0) as trace:
        deadline = time.monotonic() + seconds
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
            summary = run(Options(target=parse_target(target, service), mix=mix, seed=seed, concurrency=concurrency,
                                  duration_s=min(segment, left), warmup_s=0.0, progress=False))
            segments.append({"service": service, "door": door, "requests": summary["requests"],
                             "errors": summary["errors"], "errors_by_kind": summary["errors_by_kind"],
                             "p99_ms": summary["latency_ms"]["p99"]})
            print(f"{time.strftime('%H:%M:%S')} {service:13} {door:4} {summary['requests']:6} requests  errors "
                  f"{summary['errors']:3}  p99 {summary['latency_ms']['p99']:8.1f} ms", flush=True)
    return {"segments": segments, "requests": sum(s["requests"] for s in segments),
            "errors": sum(s["errors"] for s in segments), "rss_mib_per_minute": per_minute(trace.points),
            "rss": trace.points, "rss_growth_after_warmup": growth_after(trace.points, WARMUP_SHARE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("open", "varied"), default="open")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--service", default="elevation", help="open mode: the service")
    parser.add_argument("--door", choices=("rest", "grpc"), default="rest", help="open mode: the door")
    parser.add_argument("--size", default="512,512", help="open mode: the output size")
    parser.add_argument("--format", default="png", help="open mode: the format")
    parser.add_argument("--load", type=float, default=0.8, help="open mode: the rate as a share of the peak")
    parser.add_argument("--segment", type=float, default=20.0, help="varied mode: seconds per service and door")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--catalog", default=str(default_catalog_path()))
    parser.add_argument("--server-cpus", metavar="N[,N...]",
                        help="run the server on these CPUs and the harness on the others (its load then stalls "
                             "nothing the server does)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    with served(args.workers, args.catalog, cache_mb=None) as (grpc_target, url):
        pids = processes.listening_pids(int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
        for pid in pids if args.server_cpus else ():
            pin(pid, {int(cpu) for cpu in args.server_cpus.split(",")})
        seconds = 60 * args.minutes
        if args.mode == "open":
            width, height = (int(v) for v in args.size.split(","))
            target = f"{url}/{args.service}/ImageServer" if args.door == "rest" else f"grpc://{grpc_target}"
            result = open_loop_soak(target, args.service, Mix(sizes=((width, height),), formats=(args.format,)),
                                    pids, seconds, args.concurrency, args.load)
            print(f"\npeak {result['peak_rps']:.1f} req/s; open loop at {result['rate_rps']:.1f} req/s for "
                  f"{args.minutes:g} min: {result['requests']} requests, {result['errors']} errors, p99 "
                  f"{result['latency_ms']['p99']:.1f} ms")
            print("minute  p99 ms  RSS MiB")
            for minute, (p99, rss) in enumerate(zip(result["p99_ms_per_minute"], result["rss_mib_per_minute"])):
                print(f"{minute:6}  {p99:6.1f}  {rss:7.0f}")
        else:
            result = varied_soak(url, grpc_target, pids, seconds, args.segment, args.concurrency)
            print(f"\n{result['requests']} requests, {result['errors']} errors")
            print("minute  RSS MiB")
            for minute, rss in enumerate(result["rss_mib_per_minute"]):
                print(f"{minute:6}  {rss:7.0f}")
    print(f"RSS growth after the warm-up (end / at {WARMUP_SHARE:.0%} of the run): "
          f"{result['rss_growth_after_warmup']:.3f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
