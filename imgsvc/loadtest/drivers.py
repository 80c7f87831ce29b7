"""When requests are sent.  Closed loop: N clients, each sending its next request when the last one is answered,
so the server sets the pace (and a slow server is offered less work: latency stays near the service time however
long the queue would have been).  Open loop: requests fall due at a fixed rate whatever the server does, and each
latency is measured from the time it fell due, not from when it could be sent (as wrk2 does), so queueing in the
server, the network or this client shows in the percentiles instead of hiding (coordinated omission).

Every run has phases on one clock: a ramp (clients started one by one, or the rate rising linearly from zero),
a warm-up at full load, both unrecorded, then the measured window, closed by a request count and/or a duration;
requests already sent when it closes are awaited and recorded."""
from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from imgsvc.loadtest.doors import Outcome
from imgsvc.loadtest.mix import Request
from imgsvc.loadtest.recording import Recorder

clock = time.perf_counter


@dataclass
class Window:
    """The phases of a run: ``origin`` is where the measured window opens; it closes at ``origin + duration_s``
    or after ``max_requests`` measured requests, whichever comes first."""
    origin: float
    duration_s: float | None
    max_requests: int | None
    admitted: int = 0
    in_flight: int = 0

    def admit(self, t: float) -> bool | None:
        """For a request sent (or due) at ``t``: False in the ramp and warm-up (send, do not record), True in the
        measured window, None once the window has closed (send no more)."""
        if t < self.origin:
            return False
        if (self.duration_s is not None and t >= self.origin + self.duration_s) or \
                (self.max_requests is not None and self.admitted >= self.max_requests):
            return None
        self.admitted += 1
        return True


async def closed_loop(door, requests: Iterator[Request], recorder: Recorder, window: Window, clients: int,
                      start: float, ramp_s: float) -> None:
    async def client(lane: int) -> None:
        await asyncio.sleep(max(0.0, start + ramp_s * lane / clients - clock()))
        while True:
            prepared = door.prepare(next(requests))
            sent = clock()
            measured = window.admit(sent)
            if measured is None:
                return
            window.in_flight += 1
            if isinstance(prepared, Outcome):  # refused before sending: let the other clients run
                await asyncio.sleep(0)
                outcome = prepared
            else:
                outcome = await door.send(prepared, lane)
            window.in_flight -= 1
            if measured:
                recorder.record(sent, clock(), outcome)

    await asyncio.gather(*(client(lane) for lane in range(clients)))


def due_times(rate: float, ramp_s: float, start: float) -> Iterator[float]:
    """When each request of an open loop falls due: the rate rises linearly from 0 to ``rate`` over ``ramp_s``
    (the i-th of the ramp's rate·ramp/2 requests at sqrt(2·ramp·i/rate)), then stays at ``rate``."""
    in_ramp = rate * ramp_s / 2
    for i in itertools.count():
        yield start + (math.sqrt(2 * ramp_s * i / rate) if i < in_ramp else ramp_s + (i - in_ramp) / rate)


async def open_loop(door, requests: Iterator[Request], recorder: Recorder, window: Window, rate: float,
                    start: float, ramp_s: float, max_in_flight: int) -> None:
    """Past ``max_in_flight`` outstanding requests the next waits for one to finish; it is still timed from when
    it fell due, so a saturated client shows as latency, never as a lower offered rate gone unnoticed."""
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task] = set()

    async def one(prepared, due: float, measured: bool, lane: int) -> None:
        try:
            outcome = prepared if isinstance(prepared, Outcome) else await door.send(prepared, lane)
            if measured:
                recorder.record(due, clock(), outcome)
        finally:
            window.in_flight -= 1
            slots.release()

    for lane, due in enumerate(due_times(rate, ramp_s, start)):
        measured = window.admit(due)
        if measured is None:
            break
        prepared = door.prepare(next(requests))
        await asyncio.sleep(max(0.0, due - clock()))
        await slots.acquire()
        window.in_flight += 1
        task = asyncio.create_task(one(prepared, due, measured, lane))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def find_peak(measure_at: Callable[[float], Awaitable[dict]], rates: list[float],
                    p99_target_ms: float) -> tuple[list[dict], dict | None]:
    """Step mode: open-loop runs at rising rates until one misses the target (p99 above it, or any error); the
    steps run, and the last that met it (None if the first did not)."""
    steps, best = [], None
    for rate in rates:
        summary = await measure_at(rate)
        steps.append(summary)
        if summary["errors"] or summary["latency_ms"]["p99"] > p99_target_ms:
            break
        best = summary
    return steps, best
