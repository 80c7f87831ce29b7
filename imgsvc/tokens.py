"""Access control by token (``imgsvc serve --tokens FILE``), checked the same way at both doors.

The file holds one token per line; blank lines and ``#`` comments are skipped.  A request without a token is refused
with ArcGIS's 499 "Token Required", one with a token not in the file with 498 "Invalid Token".
"""
from __future__ import annotations

import hmac
from pathlib import Path

from imgsvc.errors import ErrorKind, ImgsvcError, invalid, invalid_token


class Tokens:
    def __init__(self, tokens: frozenset[str]) -> None:
        if not tokens:
            raise invalid("The token file holds no token: every request would be refused.")
        self._tokens = tuple(token.encode() for token in tokens)

    @classmethod
    def read(cls, path: str | Path) -> Tokens:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise invalid(f"Cannot read the token file {path}: {exc.strerror}.") from None
        return cls(frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")))

    def check(self, token: str | None) -> None:
        """Nothing when ``token`` is one of the file's; else the ArcGIS refusal."""
        if not token:
            raise ImgsvcError(ErrorKind.UNAUTHENTICATED, "This resource needs a token.")
        given = token.encode()
        # Compared in constant time, each against all: how long a refusal takes tells nothing of the tokens.
        if not sum(hmac.compare_digest(given, known) for known in self._tokens):
            raise invalid_token()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (or ArcGIS's ``X-Esri-Authorization``)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
