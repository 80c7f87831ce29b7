"""Files behind the `href` of `f=json` exports: written once, served from the output directory, expired by age."""
from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

# Only names this module wrote are ever served: `<service>_ImageServer/_ags_<uuid hex with underscores>.<ext>`.
_FOLDER = re.compile(r"^[A-Za-z0-9_\-]+_ImageServer$")
_FILE = re.compile(r"^_ags_[0-9a-f_]{36}\.[a-z]{2,5}$")
_SUFFIX = "_ImageServer"


class OutputStore:
    """``max_bytes`` bounds the files kept together: a new file makes room by deleting the oldest first (it may be
    the only one left, however large: the service's image size limit bounds one)."""

    def __init__(self, root: Path, ttl_seconds: float = 600.0, max_bytes: int = 1024 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError("the output directory needs a positive quota")
        self.root = Path(root)
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def save(self, service: str, data: bytes, extension: str) -> str:
        """Store ``data``; returns the path below the output directory (``<svc>_ImageServer/_ags_<uuid>.<ext>``)."""
        folder = self.root / f"{service}{_SUFFIX}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"_ags_{str(uuid.uuid4()).replace('-', '_')}.{extension}"
        with self._lock:  # one writer at a time makes room, so two cannot both count on the same free bytes
            self._make_room(len(data))
            tmp = folder / (name + ".part")
            tmp.write_bytes(data)
            tmp.rename(folder / name)  # atomic: a client never fetches half a file
        return f"{folder.name}/{name}"

    def _make_room(self, incoming: int) -> None:
        """Delete the oldest files until ``incoming`` more bytes fit under the quota.  The directory is listed each
        time (other worker processes write to it too); a few thousand files take a millisecond or two."""
        files = []
        for path in self.root.glob(f"*{_SUFFIX}/_ags_*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        held = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if held + incoming <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            held -= size

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
