"""The server's CPU time and memory, read from /proc: of the processes named with --server-pid, or else of those
on this machine listening on the target's port (every worker of `imgsvc serve --workers N` listens on it)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Sample:
    cpu_seconds: float
    rss_bytes: int
    rss_peak_bytes: int


def listening_pids(port: int) -> list[int]:
    """The processes holding a listening TCP socket on ``port`` (IPv4 or IPv6); empty where /proc cannot say."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = []
    for entry in PROC.iterdir() if inodes else ():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return sorted(pids)


def sample(pids: list[int]) -> Sample | None:
    """The processes' CPU seconds (user + system) and resident memory, summed; None when one cannot be read."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, rss, peak = 0.0, 0, 0
    try:
        for pid in pids:
            # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
            fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            status = dict(line.split(":", 1) for line in (PROC / str(pid) / "status").read_text().splitlines()
                          if ":" in line)
            rss += _kib(status.get("VmRSS"))
            peak += _kib(status.get("VmHWM"))
    except (OSError, IndexError, ValueError):
        return None
    return Sample(cpu, rss, peak)


def _kib(text: str | None) -> int:
    return int(text.split()[0]) * 1024 if text else 0
