"""`imgsvc serve --workers N`: N whole servers (imgsvc.cli.serve_one) sharing the gRPC and HTTP ports.

Each worker has its own ImageService (so its own open datasets and caches), gRPC thread pool and gateway event
loop, and listens on the two ports with SO_REUSEPORT, so the kernel spreads incoming connections over the
workers.  A worker's gateway calls its own ImageService in process, so a REST request is served start to end by the
worker whose socket accepted it.  The parent only holds the ports (a bound, never listening socket each,
which also turns port 0 into one port every worker shares), starts the workers, prints where they listen once all
do, passes SIGTERM/SIGINT on (each worker drains as one server does) and waits; it exits 0 when they all stopped
cleanly, and stops the others (exit 1) if one dies on its own.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import queue
import signal
import socket
from dataclasses import dataclass
from multiprocessing.connection import wait

log = logging.getLogger(__name__)
# How long past --drain-seconds a worker may take to stop before it is killed.
STOP_MARGIN_S = 10.0


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def listening_socket(address: str, shared: bool) -> socket.socket:
    """A TCP socket bound to ``address`` (port 0: a free one) and listening; ``shared``: with SO_REUSEPORT, for
    several workers to listen on the same port."""
    host, port = _host_port(address)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY.  asyncio sets it only on sockets it made itself, and without it the
    # response body, written after the headers, waits for the client's delayed ACK of them: 40 ms per answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections wait in the backlog until the gateway's loop accepts them
    return sock


def _reserve(address: str) -> socket.socket:
    """A bound socket that never listens: it holds the port (the one the OS picked for port 0) for the workers,
    which bind it with SO_REUSEPORT, and receives no connection itself."""
    host, port = _host_port(address)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


@dataclass(frozen=True)
class WorkerPorts:
    """What a worker is handed: the shared addresses (None for a door it does not serve) and where to say it
    listens."""
    grpc: str | None
    http: str | None
    ready: object  # a multiprocessing queue


def supervise(args: argparse.Namespace) -> int:
    from imgsvc.cli import _read_tls, announce

    count = args.workers
    _read_tls(args)  # a bad certificate is refused here, once, not by every worker
    # The memory budget and the caches are the server's, so each worker holds its share; but a budget of at least
    # one largest request's worth, or a request the server allows could never run.
    args = argparse.Namespace(**{**vars(args), "cache_mb": args.cache_mb // count,
                                 "block_cache_mb": max(1, args.block_cache_mb // count),
                                 "memory_budget_mb": max(args.memory_budget_mb // count, args.max_request_mb)})
    reserved, addresses = [], {}
    for door, address, served in (("grpc", args.grpc, not args.gateway_only), ("http", args.http, not args.grpc_only)):
        if served:
            reserved.append(_reserve(address))
            addresses[door] = f"{_host_port(address)[0]}:{reserved[-1].getsockname()[1]}"
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no gRPC or GDAL state forked
    ports = WorkerPorts(addresses.get("grpc"), addresses.get("http"), context.Queue())
    workers = [context.Process(target=_worker, args=(args, ports), name=f"imgsvc-worker-{i}") for i in range(count)]
    stopping = False

    def stop(*_) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    for worker in workers:
        worker.start()
    started = 0
    while started < count and not stopping and all(w.exitcode is None for w in workers):
        try:
            ports.ready.get(timeout=0.5)
            started += 1
        except queue.Empty:
            continue
    if started == count:
        scheme = "https" if args.tls_cert else "http"
        announce(args, ports.grpc, f"{scheme}://{ports.http}" if ports.http else None)
        print(f"imgsvc        {count} workers: pids {' '.join(str(w.pid) for w in workers)}", flush=True)
    failed = False
    pending = list(workers)
    while pending:
        if not wait([w.sentinel for w in pending], timeout=args.drain_seconds + STOP_MARGIN_S if stopping else None):
            for worker in pending:  # a worker that missed the signal (still starting) or hangs in its drain
                log.error("worker %s (pid %s) did not stop; killing it", worker.name, worker.pid)
                worker.kill()
            failed = True
            continue
        for worker in [w for w in pending if w.exitcode is not None]:
            pending.remove(worker)
            if not stopping:
                log.error("worker %s (pid %s) exited with %s; stopping the others", worker.name, worker.pid,
                          worker.exitcode)
                failed = True
                stop()
            elif worker.exitcode != 0:
                failed = True
    for sock in reserved:
        sock.close()
    return 1 if failed else 0


def _worker(args: argparse.Namespace, ports: WorkerPorts) -> None:
    from imgsvc.cli import serve_one

    raise SystemExit(serve_one(args, ports))
