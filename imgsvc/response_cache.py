"""A cache of export answers for identical requests (docs/decisions.md "Response cache"): keyed by the request as
parsed (so two spellings of one request share an entry) and the catalog's version (any change to the catalog, a
service added, replaced or given templates, starts afresh), bounded by the bytes of the answers it holds, least
recently used evicted first.  Off unless the server asks for it (`serve --cache-mb`); benchmarks run without it.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from typing import Any

from pyproj import CRS

from imgsvc import metrics


def request_key(params: Any) -> str:
    """The parsed request as canonical text: every field, rules with their keys sorted, spatial references as WKT."""
    return json.dumps(dataclasses.asdict(params), sort_keys=True, default=_plain, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, CRS):
        return value.to_wkt()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


class ResponseCache:
    """Answers by key, at most ``max_bytes`` of them (an answer larger than a quarter of that is not kept)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("a response cache needs a positive size")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                metrics.CACHE_LOOKUPS.labels("miss").inc()
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            metrics.CACHE_LOOKUPS.labels("hit").inc()
            return entry[0]

    def put(self, key: tuple, answer: Any, size: int) -> None:
        if size > self.max_bytes // 4:
            return
        with self._lock:
            before = self.bytes
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (answer, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.bytes -= evicted
            metrics.CACHE_BYTES.inc(self.bytes - before)

    def __len__(self) -> int:
        return len(self._entries)
