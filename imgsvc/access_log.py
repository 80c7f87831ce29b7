"""The access log: one JSON object per answered request on standard error, from either door.

Kept apart from the application log (whose lines are for people) so that a log shipper can parse every line of it.
"""
from __future__ import annotations

import json
import logging
import sys

_log = logging.getLogger("imgsvc.access")
_log.propagate = False
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(message)s"))
_log.addHandler(_handler)
_log.setLevel(logging.INFO)


def write(door: str, method: str, path: str, status: int | str, seconds: float, size: int,
          request_id: str) -> None:
    """``door`` is rest or grpc; ``status`` the HTTP status or the gRPC status code's name; ``size`` the bytes of
    the answer's body."""
    _log.info(json.dumps({"door": door, "method": method, "path": path, "status": status,
                          "ms": round(seconds * 1000, 1), "bytes": size, "request_id": request_id}))
