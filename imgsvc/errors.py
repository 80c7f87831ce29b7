"""One root error for the whole service, with a transport-neutral kind.

Each front door maps kinds to its own statuses: the gRPC servicer to status codes, the REST gateway to the ArcGIS
error envelope ``{"error": {"code", "message", "details"}}``.
"""
from __future__ import annotations

import enum

from imgsvc import request_id


class ErrorKind(enum.Enum):
    """What went wrong, as a front door needs to know it.  Each kind is named after the gRPC status it travels as."""

    INVALID_ARGUMENT = enum.auto()
    NOT_FOUND = enum.auto()
    UNIMPLEMENTED = enum.auto()
    INTERNAL = enum.auto()
    RESOURCE_EXHAUSTED = enum.auto()  # the server is busy: the requests in flight hold its memory budget
    DEADLINE_EXCEEDED = enum.auto()  # the request ran past its deadline (the caller's or the server's ceiling)
    CANCELLED = enum.auto()  # the caller went away
    UNAUTHENTICATED = enum.auto()  # access control: no token, or one the server does not know


# The envelope code and message ArcGIS Server itself answers with (docs/protocol.md §8); details carry the reason.
# ArcGIS has no answer for "not built here": it refuses a parameter value it does not take as invalid input, so a
# parameter not supported yet answers the same way, its detail saying so; gRPC callers still see UNIMPLEMENTED.
ARCGIS_ANSWERS = {
    ErrorKind.INVALID_ARGUMENT: (400, "Invalid or missing input parameters."),
    ErrorKind.NOT_FOUND: (404, "Service not found."),
    ErrorKind.UNIMPLEMENTED: (400, "Invalid or missing input parameters."),
    ErrorKind.INTERNAL: (500, "Unable to complete operation."),
    # ArcGIS documents no code for these; the HTTP statuses a proxy or a busy server gives (docs/decisions.md
    # "Bounded work").
    ErrorKind.RESOURCE_EXHAUSTED: (503, "Service is busy."),
    ErrorKind.DEADLINE_EXCEEDED: (504, "The request timed out."),
    ErrorKind.CANCELLED: (499, "The client closed the request."),
    # ArcGIS's token answers (docs/protocol.md §8): 499 when none is given, 498 (invalid_token) for one it refuses;
    # esri-leaflet and the ArcGIS JS identity manager key their sign-in on these two codes.
    ErrorKind.UNAUTHENTICATED: (499, "Token Required"),
}


class ImgsvcError(Exception):
    """The root error.  ``details`` are short human sentences naming the parameter at fault; ``parameter`` is that
    parameter's ArcGIS name (``bbox``, ``renderingRule``, ...) where the raiser knows it for certain, so that a
    program can tell which input to fix without reading the sentences.  ``code`` and ``message`` are the ArcGIS
    envelope's: those ArcGIS answers the kind with unless given (an error decoded from the wire keeps what the server
    said)."""

    def __init__(self, kind: ErrorKind, *details: str, message: str | None = None, code: int | None = None,
                 parameter: str | None = None) -> None:
        default_code, default_message = ARCGIS_ANSWERS[kind]
        self.kind = kind
        self.parameter = parameter
        self.code = code or default_code
        self.message = message or default_message
        self.details = tuple(details)
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """One line holding message and details: what gRPC callers see as the status message."""
        return " ".join((self.message, *self.details)).strip()


def invalid(*details: str, parameter: str | None = None) -> ImgsvcError:
    return ImgsvcError(ErrorKind.INVALID_ARGUMENT, *details, parameter=parameter)


def not_found(*details: str) -> ImgsvcError:
    return ImgsvcError(ErrorKind.NOT_FOUND, *details)


def unsupported(*details: str, parameter: str | None = None) -> ImgsvcError:
    return ImgsvcError(ErrorKind.UNIMPLEMENTED, *details, parameter=parameter)


def invalid_token() -> ImgsvcError:
    return ImgsvcError(ErrorKind.UNAUTHENTICATED, code=498, message="Invalid Token")


def internal(what: str = "An internal error occurred") -> ImgsvcError:
    """What a caller is told of a bug or a failure of the server's own: that it happened and under which request id
    the log tells the rest, not the exception, whose text can hold paths and internals (the door logs it whole)."""
    rid = request_id.current()
    where = f"the server log, request id {rid}" if rid else "the server log"
    return ImgsvcError(ErrorKind.INTERNAL, f"{what}; see {where}.")
