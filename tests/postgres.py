"""Debian's PostgreSQL, started for the tests in a temporary directory on a free loopback port.

initdb and postgres refuse to run as root, and the tests run as root in CI: as root the server runs as the
`postgres` user the Debian package creates, its data and socket directories that user's; as anyone else it runs as
that user."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "imgsvc"  # the server's superuser, trusted on the loopback (a test server holds nothing secret)


class PostgresServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="imgsvc-pg-"))
        self.run_as: dict = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        subprocess.run([str(BIN / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", USER,
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True, capture_output=True, **self.run_as)
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.databases = 0

    def start(self) -> None:
        """Start the server (again, on the same port after ``stop``), and wait until it takes connections."""
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        # Durability off: a test server's data dies with the test run.
        self.process = subprocess.Popen(
            [str(BIN / "postgres"), "-D", str(self.folder / "data"), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.folder), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self.run_as)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the test PostgreSQL server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown: the server ends every session and exits."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database: a catalog of its own."""
        self.databases += 1
        name = f"catalog{self.databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
