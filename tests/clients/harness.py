"""Runs the real clients (a browser page, GDAL, the ArcGIS API for Python) against a gateway and returns exactly
what they sent and what they showed, so the tests can compare it with the service's own export."""
from __future__ import annotations

import functools
import http.server
import io
import json
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from PIL import Image

CLIENTS_DIR = Path(__file__).resolve().parent
BUILD_DIR = CLIENTS_DIR / "build"
ARCGIS_PYTHON = BUILD_DIR / "venv-arcgis" / "bin" / "python"
RECORDED_REQUESTS = CLIENTS_DIR / "recorded_requests.json"
BROWSER_TIMEOUT_MS = 60_000


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # the test output is for failures, not access logs
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # browsers drop connections they no longer need
        pass


class PageServer:
    """Serves tests/clients (pages, bundles, node_modules for CSS and SDK assets) on its own origin, so every
    gateway request the browser makes is cross-origin and needs the gateway's CORS headers, as in real use."""

    def __init__(self) -> None:
        handler = functools.partial(_QuietHandler, directory=str(CLIENTS_DIR))
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class BrowserRun:
    requests: list[dict]
    console: list[dict]
    page_errors: list[str]
    failed: list[dict]
    ready: dict | None
    screenshot: np.ndarray | None
    driver_error: str | None

    def to(self, origin: str) -> list[dict]:
        """Requests the client made to one origin (the gateway), in order."""
        return [r for r in self.requests if r["url"].startswith(origin + "/")]

    def console_errors(self) -> list[str]:
        return [f'{m["text"]} ({m["location"].get("url")})' for m in self.console if m["type"] == "error"]


def drive_page(page_url: str, viewport=(600, 400)) -> BrowserRun:
    """Open the page in a fresh headless Chromium profile and wait for the page's ready report."""
    with tempfile.TemporaryDirectory(prefix="imgsvc-chromium-") as tmp:
        shot = Path(tmp) / "map.png"
        config = {"pageUrl": page_url, "screenshot": str(shot), "userDataDir": str(Path(tmp) / "profile"),
                  "timeoutMs": BROWSER_TIMEOUT_MS, "viewport": {"width": viewport[0], "height": viewport[1]}}
        done = subprocess.run(["node", str(CLIENTS_DIR / "drive.mjs"), json.dumps(config)], cwd=CLIENTS_DIR,
                              capture_output=True, text=True, timeout=BROWSER_TIMEOUT_MS / 1000 + 60)
        if done.returncode != 0:
            raise RuntimeError(f"browser driver failed ({done.returncode}): {done.stderr[-4000:]}")
        report = json.loads(done.stdout)
        screenshot = np.asarray(Image.open(shot).convert("RGB")) if shot.exists() else None
    return BrowserRun(report["requests"], report["console"], report["pageErrors"], report["failed"],
                      report["ready"], screenshot, report.get("driverError"))


def query_of(request: dict) -> list[tuple[str, str]]:
    """The parameters of a recorded request, from its URL query or its form body, in the order sent."""
    pairs = parse_qsl(urlsplit(request["url"]).query, keep_blank_values=True)
    if request.get("postData"):
        pairs += parse_qsl(request["postData"], keep_blank_values=True)
    return pairs


def composite_over(png: bytes, background: tuple[int, int, int]) -> np.ndarray:
    """What a browser shows for an image drawn over a solid background."""
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGBA", image.size, background + (255,))
    return np.asarray(Image.alpha_composite(canvas, image).convert("RGB"))


def assert_shows_the_same_picture(shown: np.ndarray, expected: np.ndarray, max_mean_error: float,
                                  min_correlation: float) -> None:
    """The map area shows the service's export: same size, same tones, and the same structure pixel by pixel."""
    assert shown.shape == expected.shape, (shown.shape, expected.shape)
    a, b = shown.astype(np.float64), expected.astype(np.float64)
    mean_error = np.abs(a - b).mean()
    correlation = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    stats = (f"mean |shown - export| {mean_error:.2f}, correlation {correlation:.4f}, "
             f"shown mean/std {a.mean():.1f}/{a.std():.1f}, export mean/std {b.mean():.1f}/{b.std():.1f}")
    assert mean_error <= max_mean_error and correlation >= min_correlation, stats
    assert abs(a.mean() - b.mean()) < 3 and abs(a.std() - b.std()) < 3, stats



def check_recorded(client: str, requests: list[dict]) -> None:
    """What the client sent must be what recorded_requests.json holds for it: that file is replayed through both
    doors as golden requests, so it has to stay true to the pinned clients.  IMGSVC_RECORD_CLIENTS=1 rewrites it."""
    import os

    # A client's metadata and export requests race each other: keep them in a stable order.
    sent = sorted((_recorded_form(r) for r in requests), key=lambda r: (r["path"], r["query"], r["body"]))
    doc = json.loads(RECORDED_REQUESTS.read_text()) if RECORDED_REQUESTS.exists() else {}
    if os.environ.get("IMGSVC_RECORD_CLIENTS") == "1":
        doc[client] = sent
        RECORDED_REQUESTS.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    assert client in doc, f"no recorded requests for {client}; run with IMGSVC_RECORD_CLIENTS=1"
    assert sent == doc[client], f"{client} now sends other requests; review and re-record with IMGSVC_RECORD_CLIENTS=1"


def _recorded_form(request: dict) -> dict:
    """Hosts and ports change per run, and so do output-file names: keep method, path, query and form body."""
    parts = urlsplit(request["url"])
    path = parts.path
    if "/arcgis/rest/directories/arcgisoutput/" in path:
        path = path.rsplit("/", 2)[0] + "/<output>/<file>"
    return {"method": request["method"], "path": path, "query": parts.query, "body": request.get("postData") or ""}


class RecordingProxy:
    """A pass-through HTTP proxy in front of the gateway that keeps every request a non-browser client sends
    (GDAL, the ArcGIS API for Python) exactly as sent, with the gateway's status and content type."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[dict] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes) -> None:
                import httpx

                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                reply = httpx.request(self.command, proxy.upstream + self.path, content=body or None,
                                      headers=headers, timeout=60)
                proxy.requests.append({
                    "method": self.command, "url": proxy.upstream + self.path, "postData": body.decode() or None,
                    "status": reply.status_code, "responseContentType": reply.headers.get("content-type"),
                    "bodyLength": len(reply.content)})
                self.send_response(reply.status_code)
                self.send_header("Content-Type", reply.headers.get("content-type", "application/octet-stream"))
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingProxy":
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
