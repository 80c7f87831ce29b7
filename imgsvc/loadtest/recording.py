"""Latencies recorded in HDR histograms (microseconds, three significant digits, one microsecond to an hour): one
for the whole measured window and a coarser one per interval for latency over time; with them the counts of
requests, errors by kind, bytes and the answering worker."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from imgsvc.loadtest.doors import Outcome

HIGHEST_MICROSECONDS = 3_600_000_000
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
HISTOGRAM_BINS_PER_DECADE = 20


@dataclass
class Interval:
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIGHEST_MICROSECONDS, 2))
    errors: int = 0


class Recorder:
    """What the measured window saw.  Times are the driver's clock (seconds); ``origin`` is the window's start.
    A request counts in the interval in which its answer arrived."""

    def __init__(self, origin: float, interval_s: float) -> None:
        self.origin = origin
        self.interval_s = interval_s
        self.latency = HdrHistogram(1, HIGHEST_MICROSECONDS, 3)
        self.intervals: dict[int, Interval] = {}
        self.errors: Counter[str] = Counter()
        self.workers: Counter[str] = Counter()
        self.nbytes = 0
        self.retries = 0
        self.max_microseconds = 0
        self.last_end = origin

    def record(self, start: float, end: float, outcome: Outcome) -> None:
        """A request sent (or, in open loop, due) at ``start`` and answered at ``end``; failures count too: a
        failure is an answer the client waited for."""
        microseconds = max(1, round((end - start) * 1e6))
        self.latency.record_value(microseconds)
        self.max_microseconds = max(self.max_microseconds, microseconds)
        interval = self.intervals.setdefault(int((end - self.origin) / self.interval_s), Interval())
        interval.latency.record_value(microseconds)
        self.nbytes += outcome.nbytes
        self.retries += outcome.retries
        if outcome.error:
            self.errors[outcome.error] += 1
            interval.errors += 1
        if outcome.worker:
            self.workers[outcome.worker] += 1
        self.last_end = max(self.last_end, end)

    @property
    def requests(self) -> int:
        return self.latency.get_total_count()

    def percentile_ms(self, percentile: float) -> float:
        return self.latency.get_value_at_percentile(percentile) / 1000 if self.requests else 0.0

    def summary(self) -> dict:
        """The window as JSON-ready numbers: counts, throughput, latency percentiles (ms), the timeline and the
        latency histogram (log bins)."""
        elapsed = self.last_end - self.origin
        latency = {name: self.percentile_ms(p) for name, p in PERCENTILES.items()}
        latency["max"] = self.max_microseconds / 1000
        latency["mean"] = self.latency.get_mean_value() / 1000 if self.requests else 0.0
        latency["min"] = self.latency.get_min_value() / 1000 if self.requests else 0.0
        return {
            "requests": self.requests,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors.most_common()),
            "retries": self.retries,
            "elapsed_s": elapsed,
            "throughput_rps": self.requests / elapsed if elapsed > 0 else 0.0,
            "bytes": self.nbytes,
            "bytes_per_s": self.nbytes / elapsed if elapsed > 0 else 0.0,
            "latency_ms": latency,
            "answered_by": dict(sorted(self.workers.items())),
            "timeline": self.timeline(),
            "histogram": self.histogram_bins(),
        }

    def timeline(self) -> list[dict]:
        rows = []
        for index in sorted(self.intervals):
            interval = self.intervals[index]
            count = interval.latency.get_total_count()
            rows.append({"t_s": (index + 1) * self.interval_s, "requests": count, "errors": interval.errors,
                         "rps": count / self.interval_s,
                         **{name: interval.latency.get_value_at_percentile(PERCENTILES[name]) / 1000
                            for name in ("p50", "p99")},
                         "max": interval.latency.get_max_value() / 1000})
        return rows

    def histogram_bins(self) -> list[dict]:
        """Counts in logarithmic bins (``HISTOGRAM_BINS_PER_DECADE`` a decade), each labelled by its upper edge."""
        bins: Counter[int] = Counter()
        for step in self.latency.get_recorded_iterator():
            value = max(step.value_iterated_to, 1)
            bins[math.ceil(math.log10(value) * HISTOGRAM_BINS_PER_DECADE)] += step.count_added_in_this_iter_step
        return [{"le_ms": 10 ** (b / HISTOGRAM_BINS_PER_DECADE) / 1000, "count": bins[b]} for b in sorted(bins)]
