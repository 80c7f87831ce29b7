"""One load test from its options: open the door, build the request stream, drive it (closed loop, open loop or
steps of rising rates), sample the server's CPU and memory over the measured window, and return the summary that
the reports write."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgsvc.loadtest import processes
from imgsvc.loadtest.doors import open_door
from imgsvc.loadtest.drivers import Window, clock, closed_loop, find_peak, open_loop
from imgsvc.loadtest.mix import Mix, random_requests, recorded_requests
from imgsvc.loadtest.recording import Recorder
from imgsvc.loadtest.target import Target

DEFAULT_DURATION_S = 10.0
# (target, connections, timeout, retries) -> a door: ``describe``, ``prepare``, ``send`` and ``close`` as in
# ``doors``.
DoorFactory = Callable[[Target, int, float, int], object]
# The timeline has about this many points whatever the run's length (between 0.1 s and 10 s apart).
TIMELINE_POINTS = 50


@dataclass(frozen=True)
class Options:
    target: Target
    mix: Mix
    seed: int = 1
    requests_file: Path | None = None
    concurrency: int = 1  # closed loop
    rate: float | None = None  # open loop when given
    steps: tuple[float, ...] = ()  # step mode: the open-loop rates tried in turn
    p99_target_ms: float | None = None
    max_requests: int | None = None
    duration_s: float | None = None
    warmup_s: float = 1.0
    ramp_s: float = 0.0
    connections: int | None = None  # default: the concurrency (closed loop), 8 (open loop)
    max_in_flight: int = 1024
    timeout_s: float = 60.0
    retries: int = 0  # gRPC: an UNAVAILABLE answer sent again this many times at most
    server_pids: tuple[int, ...] = ()
    progress: bool = True


def run(options: Options, door_factory: DoorFactory = open_door) -> dict:
    """``door_factory`` opens the door (inside the run's event loop, where gRPC's channels must be made): the
    target's own by default; bench/ passes its own to drive baselines that are no ArcGIS server (TiTiler, a GDAL
    script) with the same clock, mix and histograms."""
    return asyncio.run(_run(options, door_factory))


async def _run(options: Options, door_factory: DoorFactory) -> dict:
    connections = options.connections or (options.concurrency if options.rate is None and not options.steps else 8)
    door = door_factory(options.target, connections, options.timeout_s, options.retries)
    try:
        if options.requests_file is not None:
            requests = recorded_requests(options.requests_file)
        else:
            requests = random_requests(await door.describe(), options.mix, options.seed)
        pids = list(options.server_pids) or [pid for host, port in options.target.endpoints if _is_loopback(host)
                                             for pid in processes.listening_pids(port)]
        common = {"target": options.target.address, "door": options.target.door, "service": options.target.service,
                  "seed": options.seed, "connections": connections,
                  "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if options.steps:
            async def measure_at(rate: float) -> dict:
                return await _measure(door, requests, options, rate, pids)

            steps, best = await find_peak(measure_at, list(options.steps), options.p99_target_ms)
            return {**common, **(best or steps[0]), "mode": "step", "p99_target_ms": options.p99_target_ms,
                    "max_rate_rps": best["rate_rps"] if best else None, "steps": steps}
        return {**common, **await _measure(door, requests, options, options.rate, pids)}
    finally:
        await door.close()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _measure(door, requests, options: Options, rate: float | None, pids: list[int]) -> dict:
    duration = options.duration_s if options.duration_s is not None or options.max_requests else DEFAULT_DURATION_S
    start = clock()
    window = Window(start + options.ramp_s + options.warmup_s, duration, options.max_requests)
    interval = min(10.0, max(0.1, (duration or DEFAULT_DURATION_S) / TIMELINE_POINTS))
    recorder = Recorder(window.origin, interval)
    usage = _Usage(pids)
    watcher = asyncio.create_task(_watch(window, recorder, usage, options.progress, rate))
    try:
        if rate is None:
            await closed_loop(door, requests, recorder, window, options.concurrency, start, options.ramp_s)
        else:
            await open_loop(door, requests, recorder, window, rate, start, options.ramp_s, options.max_in_flight)
    finally:
        watcher.cancel()
    usage.stop()
    if options.progress and sys.stderr.isatty():
        print(file=sys.stderr)
    summary = recorder.summary()
    load = {"mode": "closed", "concurrency": options.concurrency} if rate is None else {"mode": "open",
                                                                                        "rate_rps": rate}
    return {**load, "warmup_s": options.warmup_s, "ramp_s": options.ramp_s, **summary, **usage.report(summary)}


class _Usage:
    """CPU seconds of the server and of this client over the measured window, and the server's memory at its end."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.first = self.last = None
        self.client = [time.process_time()] * 2

    def start(self) -> None:
        self.first = processes.sample(self.pids) if self.pids else None
        self.client[0] = time.process_time()

    def stop(self) -> None:
        if self.first is not None:
            self.last = processes.sample(self.pids)
        self.client[1] = time.process_time()

    def report(self, summary: dict) -> dict:
        elapsed = summary["elapsed_s"]
        doc = {"client_cpu_seconds": self.client[1] - self.client[0]}
        if self.first is not None and self.last is not None:
            cpu = self.last.cpu_seconds - self.first.cpu_seconds
            doc["server"] = {"pids": self.pids, "cpu_seconds": cpu,
                             "cpu_percent": 100 * cpu / elapsed if elapsed > 0 else 0.0,
                             "cpu_ms_per_request": 1000 * cpu / summary["requests"] if summary["requests"] else 0.0,
                             "rss_bytes": self.last.rss_bytes, "rss_peak_bytes": self.last.rss_peak_bytes}
        return doc


async def _watch(window: Window, recorder: Recorder, usage: _Usage, progress: bool, rate: float | None) -> None:
    """Starts the usage sampling when the measured window opens, and prints a progress line every second."""
    started = False
    counted, last = 0, clock()
    while True:
        await asyncio.sleep(max(0.0, min(1.0, window.origin - clock())) if not started else 1.0)
        now = clock()
        if not started and now >= window.origin:
            usage.start()
            started, counted, last = True, 0, now
            continue
        if progress:
            phase = "measure" if started else "warm-up"
            recent = (recorder.requests - counted) / (now - last) if started and now > last else 0.0
            counted, last = recorder.requests, now
            load = f"{rate:g} req/s offered" if rate is not None else ""
            line = (f"{phase} {now - window.origin:+6.1f}s  {recorder.requests} done  {recent:7.1f} req/s  "
                    f"p50 {recorder.percentile_ms(50):.1f} p99 {recorder.percentile_ms(99):.1f} ms  "
                    f"errors {sum(recorder.errors.values())}  in flight {window.in_flight}  {load}")
            end = "\r" if sys.stderr.isatty() else "\n"
            print(f"{line}\x1b[K" if sys.stderr.isatty() else line, end=end, file=sys.stderr, flush=True)

