"""Access control by token (``imgsvc serve --tokens FILE``), checked the same way at both doors.

The file holds one token per line; blank lines and ``#`` comments are skipped.  A request without a token is refused
with ArcGIS's 499 "Token Required", one with a token not in the file with 498 "Invalid Token".

Services named public (``serve --public NAME``) answer callers without a token, as a service shared with everyone
does in ArcGIS: the listing then shows such a caller those services only, and the server-level resources (the
listing, ``/rest/info``) open to them.  A token given is checked all the same (docs/decisions.md "Access control").
"""
from __future__ import annotations

import hmac
from pathlib import Path

from imgsvc.errors import ErrorKind, ImgsvcError, invalid, invalid_token


class Tokens:
    def __init__(self, tokens: frozenset[str], public: frozenset[str] = frozenset()) -> None:
        if not tokens:
            raise invalid("The token file holds no token: every request would be refused.")
        self._tokens = tuple(token.encode() for token in tokens)
        self.public = public

    @classmethod
    def read(cls, path: str | Path, public: frozenset[str] = frozenset()) -> Tokens:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise invalid(f"Cannot read the token file {path}: {exc.strerror}.") from None
        return cls(frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")),
                   public)

    def open_to_anonymous(self, service: str | None) -> bool:
        """Whether a caller without a token may reach ``service``'s resources (None: the server-level ones, open
        when some service is public, each then answering what such a caller may see)."""
        return service in self.public if service is not None else bool(self.public)

    def check(self, token: str | None, service: str | None = None, *, server_level: bool = False) -> None:
        """Nothing when ``token`` is one of the file's, or when there is none and the resource is open to anonymous
        callers (``service``'s, or a server-level one); else the ArcGIS refusal."""
        if not token:
            if (service is not None or server_level) and self.open_to_anonymous(service):
                return
            raise ImgsvcError(ErrorKind.UNAUTHENTICATED, "This resource needs a token.")
        given = token.encode()
        # Compared in constant time, each against all: how long a refusal takes tells nothing of the tokens.
        if not sum(hmac.compare_digest(given, known) for known in self._tokens):
            raise invalid_token()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (or ArcGIS's ``X-Esri-Authorization``)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
