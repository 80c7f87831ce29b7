"""Files behind the `href` of `f=json` exports: written once, served from the output directory, expired by age."""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

# Only names this module wrote are ever served: `<service>_ImageServer/_ags_<uuid hex with underscores>.<ext>`.
_FOLDER = re.compile(r"^[A-Za-z0-9_\-]+_ImageServer$")
_FILE = re.compile(r"^_ags_[0-9a-f_]{36}\.[a-z]{2,5}$")
_SUFFIX = "_ImageServer"


class OutputStore:
    def __init__(self, root: Path, ttl_seconds: float = 600.0) -> None:
        self.root = Path(root)
        self.ttl = ttl_seconds
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, service: str, data: bytes, extension: str) -> str:
        """Store ``data``; returns the path below the output directory (``<svc>_ImageServer/_ags_<uuid>.<ext>``)."""
        folder = self.root / f"{service}{_SUFFIX}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"_ags_{str(uuid.uuid4()).replace('-', '_')}.{extension}"
        tmp = folder / (name + ".part")
        tmp.write_bytes(data)
        tmp.rename(folder / name)  # atomic: a client never fetches half a file
        return f"{folder.name}/{name}"

    @staticmethod
    def service_of(folder: str) -> str | None:
        """The service whose exports a folder holds (None for a name this module never wrote)."""
        return folder.removesuffix(_SUFFIX) if _FOLDER.match(folder) else None

    def path(self, folder: str, name: str) -> Path | None:
        if not (_FOLDER.match(folder) and _FILE.match(name)):
            return None
        path = self.root / folder / name
        return path if path.is_file() else None

    def expire(self, now: float | None = None) -> int:
        """Delete files older than the time to live; returns how many went."""
        cutoff = (now or time.time()) - self.ttl
        removed = 0
        for path in self.root.glob("*_ImageServer/_ags_*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
