"""The id of the request being answered, for the log lines and the error answers that name it.

Every request gets one at the door it enters by: the caller's own ``X-Request-Id`` (HTTP header, gRPC metadata
``x-request-id``) when it is a sane token, else a new one.  The gateway passes it on to the gRPC service in the call's
metadata, so that one id ties together the lines both processes log, and both answer it back.
"""
from __future__ import annotations

import contextlib
import contextvars
import re
import uuid

HEADER = "x-request-id"
# What a caller's id may be: short, and nothing a log line or a header could be broken with.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("imgsvc_request_id", default=None)


def accept(given: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    return given if given is not None and _SANE.fullmatch(given) else uuid.uuid4().hex


def current() -> str | None:
    return _CURRENT.get()


@contextlib.contextmanager
def scope(request_id: str):
    token = _CURRENT.set(request_id)
    try:
        yield request_id
    finally:
        _CURRENT.reset(token)
