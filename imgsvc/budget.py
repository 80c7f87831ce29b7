"""Bounded work per request (docs/decisions.md "Bounded work"): what an export will hold in memory, worked out from
its plan before anything is read; the server-wide memory budget the requests in flight share; and the deadline a
request's work stops at (the caller's gRPC deadline, a REST client gone, the server's own ceiling).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from imgsvc import metrics
from imgsvc.errors import ErrorKind, ImgsvcError, invalid
from imgsvc.mosaic import MosaicOperation
from imgsvc.plan import SIZE_LIMIT_DETAIL, ExportPlan

# The operators that keep float64 sums and weights beside the composite.
ACCUMULATING_OPERATIONS = {MosaicOperation.MEAN, MosaicOperation.SUM, MosaicOperation.BLEND}
FLOAT_BYTES = 8  # the float64 planes functions and accumulating operators work in
# What one export may need unless the server says otherwise (`serve --max-request-mb`).
DEFAULT_REQUEST_BYTES = 1024 * 2**20


def export_bytes(plan: ExportPlan) -> int:
    """An upper bound of the bytes an export holds at once: the largest source window read with its mask, the item
    resampled onto the read grid and the composite (in the items' type, twice over for First's and Seamline's
    keep-two planes), float64 planes where an operator accumulates or functions compute, and four float64 planes
    per output band (the bands picked, converted to the pixel type, laid out for the format, encoded).  Measured
    against what numpy allocates in tests/test_bounded_work.py."""
    grid = plan.read_grid
    pixels = grid.width * grid.height
    item_bytes = np.dtype(plan.reads[0].item.dtype).itemsize if plan.reads else 1
    bands = len(plan.bands)
    window = max((r.window.width * r.window.height for r in plan.reads), default=0) * (bands * item_bytes + 1)
    composite = pixels * (bands * item_bytes + 1) * 3
    accumulating = plan.seamline_blend_width is not None or plan.operation in ACCUMULATING_OPERATIONS
    planes = pixels * bands * FLOAT_BYTES * ((2 if accumulating else 0) + (0 if plan.chain.is_identity else 2))
    output_bands = len(plan.output_bands or plan.bands)
    output = plan.grid.width * plan.grid.height * output_bands * FLOAT_BYTES * 4
    return int(window + composite + planes + output)


def check_request_bytes(plan: ExportPlan, max_bytes: int) -> int:
    """The export's bytes (``export_bytes``), refused as ArcGIS refuses an image over its size limit when they
    exceed ``max_bytes``."""
    needed = export_bytes(plan)
    if needed > max_bytes:
        raise invalid(SIZE_LIMIT_DETAIL, f"It would need about {needed // 2**20} MB of memory; the server allows "
                                         f"{max_bytes // 2**20} MB per request.", parameter="size")
    return needed


def busy(detail: str) -> ImgsvcError:
    return ImgsvcError(ErrorKind.RESOURCE_EXHAUSTED, detail)


class Deadline:
    """When a request's work must stop: at a monotonic time, or once ``gone()`` says nobody waits for the answer.
    ``check()`` is called between stages, items and blocks; it raises, so the work unwinds and frees what it held."""

    def __init__(self, seconds: float | None = None, gone: Callable[[], bool] | None = None) -> None:
        self.at = None if seconds is None else time.monotonic() + seconds
        self.gone = gone

    def capped(self, seconds: float | None) -> Deadline:
        """This deadline, or ``seconds`` from now if that comes first (the server's own ceiling)."""
        if seconds is None or (self.at is not None and self.at <= time.monotonic() + seconds):
            return self
        return Deadline(seconds, self.gone)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def check(self) -> None:
        if self.gone is not None and self.gone():
            raise ImgsvcError(ErrorKind.CANCELLED, "The client cancelled the request.")
        if self.at is not None and time.monotonic() >= self.at:
            raise ImgsvcError(ErrorKind.DEADLINE_EXCEEDED, "The request took longer than its deadline.")


NO_DEADLINE = Deadline()


class MemoryBudget:
    """The bytes all requests in flight may hold together.  A request reserves its estimate before reading; one that
    does not fit waits for others to finish, up to ``wait_seconds`` (and its deadline), then is refused as busy.  A
    request larger than the whole budget on its own runs alone rather than never."""

    def __init__(self, total_bytes: int, wait_seconds: float = 5.0) -> None:
        if total_bytes <= 0 or wait_seconds < 0:
            raise ValueError("the memory budget needs a positive size and a wait of 0 or more seconds")
        self.total = total_bytes
        self.wait_seconds = wait_seconds
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int, deadline: Deadline = NO_DEADLINE):
        nbytes = min(nbytes, self.total)
        wait = self.wait_seconds
        remaining = deadline.remaining()
        if remaining is not None:
            wait = max(0.0, min(wait, remaining))
        with self._changed:
            if not self._changed.wait_for(lambda: self.in_use + nbytes <= self.total, timeout=wait):
                raise busy(f"The server is busy: the requests in flight hold {self.in_use // 2**20} of its "
                           f"{self.total // 2**20} MB; try again shortly.")
            self.in_use += nbytes
            metrics.MEMORY_RESERVED.inc(nbytes)
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= nbytes
                metrics.MEMORY_RESERVED.dec(nbytes)
                self._changed.notify_all()


class ExportSlots:
    """At most ``running`` exports at once, and at most ``waiting`` more waiting for a turn (until their deadline);
    a request beyond both is refused as busy at once, so a burst cannot queue up unbounded work and the server's
    threads stay free for metadata and health (docs/decisions.md "Bounded work")."""

    def __init__(self, running: int, waiting: int) -> None:
        if running <= 0 or waiting < 0:
            raise ValueError("export slots need 1 or more running and 0 or more waiting")
        self.running = running
        self.waiting = waiting
        self.active = 0
        self.queued = 0
        self._changed = threading.Condition()

    @contextmanager
    def take(self, deadline: Deadline = NO_DEADLINE):
        with self._changed:
            if self.active >= self.running:
                if self.queued >= self.waiting:
                    raise busy(f"The server is busy: {self.active} exports are running and {self.queued} waiting; "
                               "try again shortly.")
                self.queued += 1
                metrics.EXPORTS_QUEUED.inc()
                try:
                    turn = self._changed.wait_for(lambda: self.active < self.running, timeout=deadline.remaining())
                finally:
                    self.queued -= 1
                    metrics.EXPORTS_QUEUED.dec()
                if not turn:
                    deadline.check()
                    raise busy("The server is busy: no export finished while this one waited.")
            self.active += 1
            metrics.EXPORTS_RUNNING.inc()
        try:
            yield
        finally:
            with self._changed:
                self.active -= 1
                metrics.EXPORTS_RUNNING.dec()
                self._changed.notify()
