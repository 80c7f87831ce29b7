"""The side-by-side suite's code path (bench/bench_side_by_side.py) at a tiny size, against imgsvc's two doors and
the in-process GDAL baseline only (TiTiler and rio-tiler live in a venv of their own that `make test` does not
make).  Never asserts on time: that every system answered every request, that the report has its tables, and that
the GDAL baseline draws the picture imgsvc draws, so that the ratios compare the same work."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench import side_data
from bench.bench_side_by_side import (FORMATS, GdalByHand, Settings, extent_3857, mix_for, Case, rendering_of,
                                      report, request_grid, run_suite)
from imgsvc.catalog import Catalog
from imgsvc.grpc.requests import export_params
from imgsvc.loadtest.mix import random_requests
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService

RASTER_SIZE = 256


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(raster_size=RASTER_SIZE, data=tmp_path_factory.mktemp("side"), workers=1, rounds=1,
                    duration_s=0.4, warmup_s=0.1, concurrency=(2,), sizes=(64,), datasets=("dem", "mosaic"),
                    systems=("imgsvc-rest", "imgsvc-grpc", "gdal"), stage_requests=1, stage_runs=1, overhead_runs=5)


def test_every_system_answers_every_case(settings):
    results = run_suite(settings, progress=lambda line: None)
    assert len(results.runs) == len(settings.datasets) * len(settings.formats) * len(settings.systems)
    for (case, _, system), (summary,) in results.runs.items():
        assert summary["requests"] > 0 and summary["errors"] == 0, (case, system, summary["errors_by_kind"])
        assert summary["bytes"] > 0
    assert set(results.stages) == {case for case, _, _ in results.runs}
    assert set(results.overhead_ms) == {"in-process", "gRPC", "REST"}
    text = report(results)
    for heading in ("rest/gdal", "grpc/gdal", "Latency p50 / p99", "Where imgsvc's time goes", "1x1 PNG export"):
        assert heading in text
    assert text.endswith("errors: 0")


@pytest.mark.parametrize("dataset", ["dem", "mosaic"])
def test_gdal_baseline_draws_what_imgsvc_draws(settings, dataset):
    """The same request through imgsvc and the script: the same mask, pixels within a few levels (both warp
    bilinear from the same overview, with the same stretch; they differ by GDAL's and imgsvc's kernels)."""
    datasets = {d.name: d for d in side_data.prepare(settings.raster_size, settings.data)}
    catalog = Catalog(settings.data / str(settings.raster_size) / "catalog.sqlite", readonly=True)
    case = Case(dataset, "png", 64)
    request = next(random_requests(extent_3857(datasets[dataset].raster), mix_for(case), 1))
    ours = ImageService(catalog).export_image(export_params(export_request(dataset, Params(request))))
    script = GdalByHand(rendering_of(datasets[dataset], catalog), FORMATS["png"])(dict(request))
    ours_image, script_image = (np.asarray(Image.open(io.BytesIO(data))) for data in (ours.encoded.data, script))
    assert ours_image.shape == script_image.shape
    if ours_image.ndim == 3 and ours_image.shape[2] == 2:  # gray + alpha: compare the mask, then valid pixels
        assert np.mean(ours_image[..., 1] != script_image[..., 1]) < 0.01
        valid = (ours_image[..., 1] == 255) & (script_image[..., 1] == 255)
        ours_image, script_image = ours_image[valid, 0], script_image[valid, 0]
    difference = np.abs(ours_image.astype(int) - script_image.astype(int))
    assert np.median(difference) <= 1 and np.mean(difference) < 3


def test_gdal_baseline_warps_from_the_level_imgsvc_reads(tmp_path):
    """Raw DEM pixels of requests at every scale of the mix, on a raster with overviews: the script reads the level
    imgsvc reads (gdalwarp's), so both resample the same pixels the same way and the ratios compare the same work.
    A script choosing by the box's width alone read another level for half of these requests, off by 2e-4 of the
    value on average where the same level is within 1e-5 (full resolution) to 1e-4 (overviews: the two approximate
    transformers' lattices differ)."""
    size = 1024
    datasets = {d.name: d for d in side_data.prepare(size, tmp_path)}
    catalog_path = tmp_path / str(size) / "catalog.sqlite"
    side_data.register(list(datasets.values()), catalog_path)
    catalog = Catalog(catalog_path, readonly=True)
    core = ImageService(catalog)
    script = GdalByHand(rendering_of(datasets["dem"], catalog), FORMATS["raw"])
    requests = random_requests(extent_3857(datasets["dem"].raster), mix_for(Case("dem", "raw", 64)), 3)
    levels = set()
    for request in (next(requests) for _ in range(12)):
        bbox, width, height = request_grid(dict(request))
        params = export_params(export_request("dem", Params(request)))
        (read,) = core.plan_export(params).plan.reads
        assert script.overview(bbox, width, height) == read.overview
        levels.add(read.overview)
        ours = np.frombuffer(core.export_image(params).encoded.data, np.float32, count=width * height)  # then bits
        theirs = np.frombuffer(script(dict(request)), np.float32)
        ours_void, theirs_void = ours == side_data.DEM_NODATA, theirs == side_data.DEM_NODATA
        assert np.mean(ours_void != theirs_void) < 0.01
        both = ~ours_void & ~theirs_void
        assert np.mean(np.abs(ours[both] - theirs[both]) / np.abs(theirs[both])) < 1.5e-4, request
    assert len(levels) >= 2  # full resolution and overviews
