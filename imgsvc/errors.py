"""One root error for the whole service, with a transport-neutral kind.

Each front door maps kinds to its own statuses: the gRPC servicer to status codes, the REST gateway to the ArcGIS
error envelope ``{"error": {"code", "message", "details"}}``.
"""
from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, as a front door needs to know it.  The value is the ArcGIS envelope code."""

    INVALID_ARGUMENT = 400
    NOT_FOUND = 404
    UNIMPLEMENTED = 501
    INTERNAL = 500


# The envelope messages ArcGIS Server itself uses (REFERENCE §8); details carry the specific reason.
ARCGIS_MESSAGES = {
    ErrorKind.INVALID_ARGUMENT: "Invalid or missing input parameters.",
    ErrorKind.NOT_FOUND: "Service not found.",
    ErrorKind.UNIMPLEMENTED: "Unsupported parameter value.",
    ErrorKind.INTERNAL: "Unable to complete operation.",
}


class ImgsvcError(Exception):
    """The root error.  ``details`` are short human sentences naming the parameter at fault; ``parameter`` is that
    parameter's ArcGIS name (``bbox``, ``renderingRule``, ...) where the raiser knows it for certain, so that a
    program can tell which input to fix without reading the sentences."""

    def __init__(self, kind: ErrorKind, *details: str, message: str | None = None,
                 parameter: str | None = None) -> None:
        self.kind = kind
        self.parameter = parameter
        self.message = message or ARCGIS_MESSAGES[kind]
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
