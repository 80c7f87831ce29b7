"""imgsvc side by side with the tools people would otherwise use (issue 12), on the same data, the same worker count
and the same requests, in one run, every system driven by imgsvc's own load-test harness:

- ``imgsvc-rest`` / ``imgsvc-grpc``: `imgsvc serve --workers N` (response cache off) through each door;
- ``gdal``: GDAL by hand, in this process: `rasterio.warp.reproject` from the overview gdalwarp would pick (datasets
  kept open, one per thread) + a numpy stretch + Pillow's encoder at its defaults (PNG level 6, JPEG quality 75);
- ``rio-tiler``: `Reader.part()` + `ImageData.rescale()` + `ImageData.render()`, in this process (a Reader opened per
  request, as TiTiler does);
- ``titiler``: TiTiler's `/cog/bbox` endpoint under `uvicorn --workers N`, from its own venv.

The in-process baselines run each request on a thread of a pool as large as the concurrency (rasterio, Pillow and
GDAL release the GIL), so one process with N clients' threads stands against N server workers; their CPU is that
of this process, harness included.  Formats: PNG, JPEG and raw pixels in the source's pixel type (imgsvc
``format=bsq``, TiTiler and rio-tiler ``.npy`` (the mask appended as a band), GDAL the array's bytes).  Pictures of
non-8-bit data are stretched alike everywhere: imgsvc's default (its service statistics, mean ± 2.5 σ), given to the
others as ``rescale`` ranges; a 4-band image shows bands 1-3.  Requests: seeded random boxes inside each raster's
EPSG:3857 extent at 1, 2, 4 and 8 times its pixel size, out in EPSG:3857 at bilinear; one seed per round, the same
for every system.  The mosaic is imgsvc's 50-item mosaic dataset against a GDAL VRT of the same files elsewhere.

Run: `make bench-side` (creates bench/.venv-titiler and the data, then the whole suite) or
`.venv/bin/python -m bench.bench_side_by_side [--quick] [--datasets dem --formats png ...]`.  The data (about 1 GB
at the default 8192²) is written once under data/bench-side/.  Prints throughput ratios (imgsvc / each baseline),
p50/p99, where imgsvc's time goes (its stages in process, against the gRPC door's p50 at one client) and the
protobuf and HTTP overhead of a 1×1 export; `--json` keeps every run.  Not a test (tests/test_bench_side_by_side.py
runs its code path at a tiny size).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import grpc
import httpx
import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject, transform_bounds

from bench import side_data
from bench.bench_export import timed
from bench.bench_stages import StageTimes, stage_times
from bench.bench_workers import served
from imgsvc.catalog import Catalog
from imgsvc.encode.stretch import stretch_range
from imgsvc.grpc.requests import export_params
from imgsvc.loadtest.doors import Outcome, RestDoor, open_door
from imgsvc.loadtest.mix import Mix, ServiceExtent, random_requests
from imgsvc.loadtest.runner import Options, run
from imgsvc.loadtest.target import REST, Target, parse_target
from imgsvc.plan import OutputGrid, overview_for
from imgsvc.read import GDAL_OPTIONS, describe_raster
from imgsvc.sr import crs_from_wkid
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

TITILER_VENV = Path(__file__).parent / ".venv-titiler"
IMGSVC_SYSTEMS = ("imgsvc-rest", "imgsvc-grpc")
BASELINES = ("gdal", "rio-tiler", "titiler")
SYSTEMS = IMGSVC_SYSTEMS + BASELINES
NEEDS_TITILER_VENV = ("rio-tiler", "titiler")
WEB_MERCATOR = rasterio.crs.CRS.from_epsg(3857)
OUTPUT_CRS = crs_from_wkid(3857)
SCALES = (1.0, 2.0, 4.0, 8.0)
MIN_REQUESTS = 5  # in one run's measured window
MAX_DURATION_S = 40.0  # the longest window a slow system is given to answer them
JPEG_QUALITY = 75  # imgsvc's default compressionQuality, Pillow's and GDAL's default


@dataclass(frozen=True)
class Format:
    name: str
    imgsvc: str  # exportImage format
    extension: str  # TiTiler's
    rio_tiler: str  # ImageData.render's img_format
    picture: bool


FORMATS = {f.name: f for f in (Format("png", "png", "png", "PNG", True), Format("jpeg", "jpg", "jpg", "JPEG", True),
                               Format("raw", "bsq", "npy", "NPY", False))}


@dataclass(frozen=True)
class Rendering:
    """What a baseline needs to draw what imgsvc draws for one dataset: its raster, the bands of a picture and each
    band's stretch range (None for 8-bit data, shown as it is)."""
    raster: Path
    band_count: int
    picture_bands: tuple[int, ...]
    ranges: tuple[tuple[float, float], ...] | None

    def bands(self, fmt: Format) -> tuple[int, ...]:
        return self.picture_bands if fmt.picture else tuple(range(1, self.band_count + 1))


@dataclass(frozen=True)
class Case:
    dataset: str
    format: str
    size: int


@dataclass
class Settings:
    raster_size: int = 8192
    data: Path = side_data.DEFAULT_FOLDER
    workers: int = os.cpu_count() or 1
    rounds: int = 3
    duration_s: float = 5.0
    warmup_s: float = 1.0
    concurrency: tuple[int, ...] = (1, 4, 16)
    sizes: tuple[int, ...] = (512, 1024)
    formats: tuple[str, ...] = tuple(FORMATS)
    datasets: tuple[str, ...] = ("dem", "multispectral", "rgb", "mosaic")
    systems: tuple[str, ...] = SYSTEMS
    stage_requests: int = 5  # requests of each case timed stage by stage
    stage_runs: int = 5
    overhead_runs: int = 300


@dataclass
class Results:
    settings: Settings
    runs: dict[tuple[Case, int, str], list[dict]] = field(default_factory=dict)  # (case, concurrency, system)
    stages: dict[Case, StageTimes] = field(default_factory=dict)
    overhead_ms: dict[str, float] = field(default_factory=dict)  # in-process, gRPC, REST 1x1 export medians


# --- the baselines ---------------------------------------------------------------------------------------------


def request_grid(params: dict) -> tuple[tuple[float, float, float, float], int, int]:
    """The box (EPSG:3857) and size of a mix request."""
    x0, y0, x1, y1 = (float(v) for v in params["bbox"].split(","))
    width, height = (int(v) for v in params["size"].split(","))
    return (x0, y0, x1, y1), width, height


class GdalByHand:
    """A good hand-written GDAL script: warp straight from the dataset's bands at the overview gdalwarp would pick
    (`gdalwarp -ovr AUTO`: the ratio of the whole raster's diagonal to its size in the output, imgsvc.plan's port of
    it, so that both draw the same pixels from the same level; GDAL reads only the blocks it needs), stretch to 8
    bits, Pillow.  Its datasets stay open between requests, one per thread and overview, so GDAL's block cache is
    warm as a server's."""

    def __init__(self, rendering: Rendering, fmt: Format) -> None:
        self.rendering = rendering
        self.format = fmt
        self.bands = rendering.bands(fmt)
        self.local = threading.local()
        self.item = describe_raster(rendering.raster)
        self.nodata, self.dtype = self.item.nodata, np.dtype(self.item.dtype)

    def dataset(self, overview: int | None):
        datasets = self.local.__dict__.setdefault("datasets", {})
        if overview not in datasets:
            datasets[overview] = rasterio.open(self.rendering.raster, overview_level=overview)
        return datasets[overview]

    def overview(self, bbox, width: int, height: int) -> int | None:
        return overview_for(self.item, OutputGrid(OUTPUT_CRS, from_bounds(*bbox, width, height), width, height))

    def __call__(self, params: dict) -> bytes:
        bbox, width, height = request_grid(params)
        with rasterio.Env(**GDAL_OPTIONS):
            src = self.dataset(self.overview(bbox, width, height))
            nodata = self.nodata if self.nodata is not None else 0
            out = np.full((len(self.bands), height, width), nodata, self.dtype)
            reproject(rasterio.band(src, list(self.bands)), out, src_nodata=self.nodata, dst_nodata=nodata,
                      dst_transform=from_bounds(*bbox, width, height), dst_crs=WEB_MERCATOR,
                      resampling=Resampling.bilinear)
        if not self.format.picture:
            return out.tobytes()
        pixels = out if self.rendering.ranges is None else stretched(out, self.rendering.ranges)
        channels = [*pixels] if len(pixels) >= 3 else [pixels[0]]
        if self.nodata is not None and self.format.name == "png":
            channels.append(np.where(out[0] != nodata, np.uint8(255), np.uint8(0)))
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[len(channels)]
        image = Image.fromarray(np.dstack(channels) if len(channels) > 1 else channels[0], mode)
        buffer = io.BytesIO()
        image.save(buffer, "PNG") if self.format.name == "png" else image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()


def stretched(bands: np.ndarray, ranges: tuple[tuple[float, float], ...]) -> np.ndarray:
    """(bands, rows, cols) uint8: each band's range onto 0..255, as a script would write it in numpy."""
    out = np.empty(bands.shape, np.uint8)
    for index, (lo, hi) in enumerate(ranges):
        scale = np.float32(255 / (hi - lo) if hi > lo else 0)
        scaled = (bands[index].astype(np.float32) - np.float32(lo)) * scale
        out[index] = np.rint(np.clip(scaled, 0, 255))
    return out


def titiler_python() -> Path:
    return TITILER_VENV / "bin" / "python"


def import_rio_tiler():
    """rio-tiler, from the TiTiler venv's packages, added after ours so that the libraries both share (numpy,
    rasterio) stay the ones imgsvc is measured with, and rio-tiler never becomes a dependency of imgsvc."""
    packages = next((TITILER_VENV / "lib").glob("python*/site-packages"))
    if str(packages) not in sys.path:
        sys.path.append(str(packages))
    from rio_tiler.io import Reader

    return Reader


class RioTiler:
    """rio-tiler as its users call it: a Reader per request, ``part()`` in EPSG:3857 at bilinear (read and warp),
    the stretch as ``rescale`` ranges, ``render()`` (GDAL's PNG and JPEG drivers, numpy's .npy)."""

    def __init__(self, rendering: Rendering, fmt: Format) -> None:
        self.reader = import_rio_tiler()
        self.rendering = rendering
        self.format = fmt
        self.bands = rendering.bands(fmt)

    def __call__(self, params: dict) -> bytes:
        bbox, width, height = request_grid(params)
        with rasterio.Env(**GDAL_OPTIONS), self.reader(str(self.rendering.raster)) as src:
            image = src.part(bbox, dst_crs=WEB_MERCATOR, bounds_crs=WEB_MERCATOR, width=width, height=height,
                             indexes=self.bands, resampling_method="bilinear", reproject_method="bilinear")
        if self.format.picture and self.rendering.ranges is not None:
            image.rescale(in_range=self.rendering.ranges)
        return image.render(img_format=self.format.rio_tiler)


# --- doors: how the harness reaches each system ------------------------------------------------------------------


class InProcessDoor:
    """A baseline called in this process, each request on a thread of a pool as large as the concurrency."""

    def __init__(self, export: Callable[[dict], bytes], extent: ServiceExtent, threads: int) -> None:
        self.export = export
        self.extent = extent
        self.pool = ThreadPoolExecutor(threads)

    async def describe(self) -> ServiceExtent:
        return self.extent

    def prepare(self, request) -> dict:
        return dict(request)

    async def send(self, params: dict, lane: int) -> Outcome:
        try:
            data = await asyncio.get_running_loop().run_in_executor(self.pool, self.export, params)
        except Exception as exc:  # a baseline's failure is counted as an error of its kind, as a server's is
            return Outcome(error=type(exc).__name__)
        return Outcome(nbytes=len(data))

    async def close(self) -> None:
        self.pool.shutdown()


class SameExtentDoor:
    """imgsvc's own door, describing the suite's EPSG:3857 extent rather than the service's, so that imgsvc gets
    the very requests the baselines get."""

    def __init__(self, door, extent: ServiceExtent) -> None:
        self.door = door
        self.extent = extent

    async def describe(self) -> ServiceExtent:
        return self.extent

    def prepare(self, request):
        return self.door.prepare(request)

    async def send(self, prepared, lane: int) -> Outcome:
        return await self.door.send(prepared, lane)

    async def close(self) -> None:
        await self.door.close()


class TiTilerDoor(RestDoor):
    """The harness's REST door pointed at TiTiler's ``/cog/bbox``: each ArcGIS request becomes its TiTiler URL."""

    def __init__(self, target: Target, connections: int, timeout: float, rendering: Rendering, fmt: Format,
                 extent: ServiceExtent) -> None:
        super().__init__(target, connections, timeout)
        self.extent = extent
        self.query = [("url", str(rendering.raster.resolve())), ("coord_crs", "epsg:3857"),
                      ("dst_crs", "epsg:3857"), ("resampling", "bilinear"), ("reproject", "bilinear"),
                      *(("bidx", str(b)) for b in rendering.bands(fmt))]
        if fmt.picture and rendering.ranges is not None:
            self.query += [("rescale", f"{lo!r},{hi!r}") for lo, hi in rendering.ranges]
        self.extension = fmt.extension

    async def describe(self) -> ServiceExtent:
        return self.extent

    def prepare(self, request) -> str:
        bbox, width, height = request_grid(dict(request))
        return (f"{self.target.address}/cog/bbox/{','.join(map(repr, bbox))}/{width}x{height}.{self.extension}?"
                f"{urlencode(self.query)}")


# --- servers ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def titiler_served(workers: int) -> Iterator[str]:
    """TiTiler under ``uvicorn --workers N`` on a free port, with imgsvc's GDAL settings; yields its URL once it
    answers."""
    port = free_port()
    env = {**os.environ, **GDAL_OPTIONS}
    process = subprocess.Popen([str(titiler_python()), "-m", "uvicorn", "titiler.application.main:app", "--host",
                                "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level",
                                "warning", "--no-access-log"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("TiTiler did not start (is bench/.venv-titiler made? `make bench-side`)")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


# --- the suite --------------------------------------------------------------------------------------------------


def extent_3857(raster: Path) -> ServiceExtent:
    """The raster's extent in EPSG:3857 and its pixel size there (the mix's scale 1)."""
    with rasterio.open(raster) as src:
        x0, y0, x1, y1 = transform_bounds(src.crs, WEB_MERCATOR, *src.bounds)
        return ServiceExtent(x0, y0, x1, y1, {"wkid": 3857}, (x1 - x0) / src.width)


def rendering_of(dataset: side_data.Dataset, catalog: Catalog) -> Rendering:
    description = catalog.service(dataset.name).description
    ranges = None if description.dtype == "uint8" else tuple(
        stretch_range(description.stats[b - 1]) for b in dataset.picture_bands)
    return Rendering(dataset.raster, description.band_count, dataset.picture_bands, ranges)


def mix_for(case: Case) -> Mix:
    return Mix(sizes=((case.size, case.size),), formats=(FORMATS[case.format].imgsvc,), scales=SCALES,
               interpolations=("RSP_BilinearInterpolation",))


def door_factory(system: str, case: Case, rendering: Rendering, extent: ServiceExtent, concurrency: int):
    """What the harness opens for ``system`` (called inside each run's event loop)."""
    fmt = FORMATS[case.format]

    def door(target: Target, connections: int, timeout: float, retries: int):
        if system == "gdal":
            return InProcessDoor(GdalByHand(rendering, fmt), extent, concurrency)
        if system == "rio-tiler":
            return InProcessDoor(RioTiler(rendering, fmt), extent, concurrency)
        if system == "titiler":
            return TiTilerDoor(target, connections, timeout, rendering, fmt, extent)
        return SameExtentDoor(open_door(target, connections, timeout, retries), extent)

    return door


def target_of(system: str, case: Case, grpc_target: str, imgsvc_url: str, titiler_url: str | None) -> Target:
    """Where the harness sends a system's requests (for the in-process baselines, nowhere: their door calls them)."""
    if system == "imgsvc-rest":
        return parse_target(f"{imgsvc_url}/{case.dataset}/ImageServer", None)
    if system == "imgsvc-grpc":
        return parse_target(f"grpc://{grpc_target}", case.dataset)
    if system == "titiler":
        return Target(REST, "127.0.0.1", int(titiler_url.rsplit(":", 1)[1]), titiler_url, case.dataset)
    return Target(REST, "127.0.0.1", 0, f"in-process {system}", case.dataset)


def measure(settings: Settings, datasets: list[side_data.Dataset], catalog_path: Path, grpc_target: str,
            imgsvc_url: str, titiler_url: str | None, results: Results, progress: Callable[[str], None]) -> None:
    catalog = Catalog(catalog_path, readonly=True)
    by_name = {d.name: d for d in datasets}
    cases = [Case(d, f, s) for d in settings.datasets for f in settings.formats for s in settings.sizes]
    renderings = {name: rendering_of(by_name[name], catalog) for name in settings.datasets}
    extents = {name: extent_3857(by_name[name].raster) for name in settings.datasets}
    for round_number in range(1, settings.rounds + 1):
        for case in cases:
            for concurrency in settings.concurrency:
                for system in settings.systems:
                    target = target_of(system, case, grpc_target, imgsvc_url, titiler_url)
                    options = Options(target=target, mix=mix_for(case), seed=round_number, concurrency=concurrency,
                                      connections=concurrency, duration_s=settings.duration_s,
                                      warmup_s=settings.warmup_s, progress=False,
                                      server_pids=(os.getpid(),) if system in ("gdal", "rio-tiler") else ())
                    factory = door_factory(system, case, renderings[case.dataset], extents[case.dataset],
                                           concurrency)
                    summary = run(options, factory)
                    # A system slower than the window is measured again over longer ones, so no row is empty.
                    while summary["requests"] < MIN_REQUESTS and options.duration_s < MAX_DURATION_S:
                        options = replace(options, duration_s=4 * options.duration_s)
                        summary = run(options, factory)
                    results.runs.setdefault((case, concurrency, system), []).append(summary)
                    progress(f"round {round_number} {case.dataset:13} {case.format:4} {case.size:4} "
                             f"c={concurrency:<2} {system:11} {summary['throughput_rps']:7.1f} req/s  "
                             f"p50 {summary['latency_ms']['p50']:7.1f}  p99 {summary['latency_ms']['p99']:7.1f} ms  "
                             f"errors {summary['errors']}")
    core = ImageService(catalog)
    for case in cases:
        requests = random_requests(extents[case.dataset], mix_for(case), 1)
        times = [stage_times(core, export_params(export_request(case.dataset, Params(next(requests)))),
                             settings.stage_runs) for _ in range(settings.stage_requests)]
        results.stages[case] = StageTimes(*(statistics.fmean(getattr(t, name) for t in times)
                                            for name in ("plan", "read", "block", "encode")),
                                          round(statistics.fmean(t.nbytes for t in times)))


def measure_overhead(settings: Settings, catalog_path: Path, grpc_target: str, imgsvc_url: str,
                     results: Results) -> None:
    """A 1x1 PNG of the DEM: in process, through gRPC and through REST; the differences are what protobuf + gRPC
    and HTTP + the gateway add to a request."""
    dataset = settings.datasets[0]
    extent = extent_3857(side_data.prepare(settings.raster_size, settings.data)[0].raster)
    cx, cy, step = (extent.xmin + extent.xmax) / 2, (extent.ymin + extent.ymax) / 2, extent.pixel_size
    query = {"bbox": f"{cx},{cy},{cx + step},{cy + step}", "bboxSR": "3857", "imageSR": "3857", "size": "1,1",
             "format": "png", "f": "image"}
    request = export_request(dataset, Params(query.items()))
    core = ImageService(Catalog(catalog_path, readonly=True))
    params = export_params(request)
    url = urlsplit(f"{imgsvc_url}/{dataset}/ImageServer/exportImage")
    path = f"{url.path}?{urlencode(query)}"
    # The standard library's client on one kept-alive connection: httpx costs ~0.25 ms a call of its own, which is
    # the client's time, not the server's.
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)

    def rest_export() -> None:
        connection.request("GET", path)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200 or answer.getheader("Content-Type") != "image/png":
            raise RuntimeError(f"1x1 export answered {answer.status} {answer.getheader('Content-Type')}")

    with grpc.insecure_channel(grpc_target) as channel, contextlib.closing(connection):
        stub = pb_grpc.ImageServiceStub(channel)
        results.overhead_ms = {
            "in-process": timed(lambda: core.export_image(params), settings.overhead_runs, warmup=20),
            "gRPC": timed(lambda: stub.ExportImage(request), settings.overhead_runs, warmup=20),
            "REST": timed(rest_export, settings.overhead_runs, warmup=20)}


def run_suite(settings: Settings, progress: Callable[[str], None] = print) -> Results:
    """Data (written once), servers up, every measurement, servers down."""
    datasets = side_data.prepare(settings.raster_size, settings.data)
    catalog_path = settings.data / str(settings.raster_size) / "catalog.sqlite"
    if not catalog_path.exists():
        side_data.register(datasets, catalog_path)
    results = Results(settings)
    titiler = titiler_served(settings.workers) if "titiler" in settings.systems else contextlib.nullcontext()
    with served(settings.workers, str(catalog_path)) as (grpc_target, imgsvc_url), titiler as titiler_url:
        measure(settings, datasets, catalog_path, grpc_target, imgsvc_url, titiler_url, results, progress)
        measure_overhead(settings, catalog_path, grpc_target, imgsvc_url, results)
    return results


# --- the report -------------------------------------------------------------------------------------------------


def median_of(runs: list[dict], *keys: str) -> float:
    values = []
    for summary in runs:
        value = summary
        for key in keys:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def report(results: Results) -> str:
    s = results.settings
    lines = [f"imgsvc side by side: {s.workers} worker(s) each, closed loop, {s.duration_s:g} s after "
             f"{s.warmup_s:g} s of warm-up, median of {s.rounds} round(s); rasters {s.raster_size}² "
             f"(RGB and mosaic {s.raster_size // 2}²); EPSG:3857 out, bilinear.  A shared machine: compare the "
             f"ratios of one run, not absolute times.", ""]
    systems = [x for x in s.systems]
    baselines = [b for b in BASELINES if b in systems]
    doors = [d for d in IMGSVC_SYSTEMS if d in systems]
    header = f"{'dataset':13} {'format':6} {'size':>4} {'c':>2} " + " ".join(f"{x:>11}" for x in systems)
    ratios = " ".join(f"{d.split('-')[1] + '/' + b:>14}" for d in doors for b in baselines)
    lines += ["Throughput (req/s) and ratios imgsvc / baseline", f"{header}  {ratios}"]
    cases = sorted({case for case, _, _ in results.runs}, key=lambda c: (s.datasets.index(c.dataset),
                                                                         s.formats.index(c.format), c.size))
    errors = 0
    for case in cases:
        for concurrency in s.concurrency:
            runs = {x: results.runs.get((case, concurrency, x)) for x in systems}
            rps = {x: median_of(r, "throughput_rps") for x, r in runs.items() if r}
            errors += sum(summary["errors"] for r in runs.values() if r for summary in r)
            row = (f"{case.dataset:13} {case.format:6} {case.size:4} {concurrency:2} "
                   + " ".join(f"{rps.get(x, float('nan')):11.1f}" for x in systems))
            cells = " ".join(f"{rps[d] / rps[b] if rps.get(b) else float('nan'):14.2f}"
                             for d in doors for b in baselines)
            lines.append(f"{row}  {cells}")
    lines += ["", "Latency p50 / p99 (ms)", f"{'dataset':13} {'format':6} {'size':>4} {'c':>2} "
              + " ".join(f"{x:>15}" for x in systems)]
    for case in cases:
        for concurrency in s.concurrency:
            cells = []
            for x in systems:
                r = results.runs.get((case, concurrency, x))
                cells.append(f"{median_of(r, 'latency_ms', 'p50'):7.1f}/{median_of(r, 'latency_ms', 'p99'):<7.1f}"
                             if r else f"{'-':>15}")
            lines.append(f"{case.dataset:13} {case.format:6} {case.size:4} {concurrency:2} " + " ".join(cells))
    if results.stages:
        lines += ["", "Where imgsvc's time goes: stages in process (ms, mean over the first "
                  f"{s.stage_requests} requests of each case), against the gRPC door's p50 at one client",
                  f"{'dataset':13} {'format':6} {'size':>4} {'plan':>6} {'read':>6} {'resample':>9} {'encode':>7} "
                  f"{'sum':>7} {'gRPC p50':>9} {'p50/sum':>8} {'bytes':>9}"]
        for case in cases:
            t = results.stages.get(case)
            grpc_runs = results.runs.get((case, 1, "imgsvc-grpc"))
            p50 = median_of(grpc_runs, "latency_ms", "p50") if grpc_runs else float("nan")
            if t is not None:
                lines.append(f"{case.dataset:13} {case.format:6} {case.size:4} {t.plan:6.1f} {t.read:6.1f} "
                             f"{t.resample:9.1f} {t.encode:7.1f} {t.total:7.1f} {p50:9.1f} {p50 / t.total:8.2f} "
                             f"{t.nbytes:9d}")
    if results.overhead_ms:
        o = results.overhead_ms
        lines += ["", f"1x1 PNG export, median of {s.overhead_runs}: in process {o['in-process']:.2f} ms, gRPC "
                  f"{o['gRPC']:.2f} ms, REST {o['REST']:.2f} ms -> protobuf + gRPC add "
                  f"{o['gRPC'] - o['in-process']:.2f} ms, HTTP + gateway add {o['REST'] - o['gRPC']:.2f} ms "
                  f"(goal < 1 ms each)"]
    lines.append(f"errors: {errors}")
    return "\n".join(lines)


def to_json(results: Results) -> dict:
    return {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(results.settings).items()},
            "runs": [{"dataset": c.dataset, "format": c.format, "size": c.size, "concurrency": n, "system": x,
                      "summaries": r} for (c, n, x), r in results.runs.items()],
            "stages": [{"dataset": c.dataset, "format": c.format, "size": c.size, **vars(t)}
                       for c, t in results.stages.items()],
            "overhead_ms": results.overhead_ms}


def csv_of(text: str, kind=str) -> tuple:
    return tuple(kind(v) for v in text.split(",") if v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Settings()
    parser.add_argument("--quick", action="store_true",
                        help="one round of 2 s after 0.5 s of warm-up, 3 requests x 3 runs per stage timing")
    parser.add_argument("--raster-size", type=int, default=defaults.raster_size)
    parser.add_argument("--data", type=Path, default=defaults.data)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--duration", type=float, default=defaults.duration_s)
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s)
    parser.add_argument("--concurrency", type=lambda t: csv_of(t, int), default=defaults.concurrency)
    parser.add_argument("--sizes", type=lambda t: csv_of(t, int), default=defaults.sizes)
    parser.add_argument("--formats", type=csv_of, default=defaults.formats)
    parser.add_argument("--datasets", type=csv_of, default=defaults.datasets)
    parser.add_argument("--systems", type=csv_of, default=defaults.systems)
    parser.add_argument("--json", type=Path, help="write every run's summary here")
    args = parser.parse_args()
    settings = Settings(raster_size=args.raster_size, data=args.data, workers=args.workers, rounds=args.rounds,
                        duration_s=args.duration, warmup_s=args.warmup, concurrency=args.concurrency,
                        sizes=args.sizes, formats=args.formats, datasets=args.datasets, systems=args.systems)
    if args.quick:
        settings = replace(settings, rounds=1, duration_s=2.0, warmup_s=0.5, stage_requests=3, stage_runs=3)
    if not titiler_python().exists() and any(x in settings.systems for x in NEEDS_TITILER_VENV):
        print(f"{TITILER_VENV} is missing (`make bench-side` makes it): rio-tiler and TiTiler are left out.",
              flush=True)
        settings = replace(settings, systems=tuple(x for x in settings.systems if x not in NEEDS_TITILER_VENV))
    results = run_suite(settings, lambda line: print(line, flush=True))
    print()
    print(report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(results), indent=1))


if __name__ == "__main__":
    main()
