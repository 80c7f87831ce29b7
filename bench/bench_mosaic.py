"""Mosaic datasets: choosing the items under a bbox in 1 000- and 100 000-item catalogs, and a 1024×1024 export over
50 overlapping COG items (First, Mean, Blend) against GDAL, a VRT of the same items warped by
rasterio.warp.reproject, measured in the same run.  Not a test.  Run: `.venv/bin/python -m bench.bench_mosaic`
(or `make bench`).  Reports medians over reruns after a warm-up, ratios to the baseline, and the peak memory numpy
allocates per export for 10 and 50 items (it must follow the output, not the item count).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

from bench.bench_export import timed
from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from imgsvc import mosaic
from imgsvc.grpc.requests import export_params
from imgsvc.plan import output_grid, output_pixel_size, search_bounds, view_centre
from imgsvc.read import describe_raster
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from imgsvc.sr import crs_from_wkid, crs_from_wkt, transform_bounds

CRS = "EPSG:32611"
X0, Y0 = 400000.0, 4100000.0
ITEM_SIZE, ITEM_PIXEL = 512, 10.0
ITEM_STRIDE = 300  # pixels between neighbouring items: each overlaps its neighbours by 212 pixels
ITEM_GRID = (10, 5)  # columns, rows: 50 items
OUTPUT = 1024


def write_items(folder: Path) -> list[Path]:
    """50 three-band UInt16 COGs of smooth random fields with a nodata collar, on a 10 × 5 grid of overlapping
    tiles."""
    rng = np.random.default_rng(7)
    paths = []
    for row in range(ITEM_GRID[1]):
        for col in range(ITEM_GRID[0]):
            coarse = rng.integers(500, 9000, (3, 9, 9)).astype(np.float64)
            fine = np.kron(coarse, np.ones((64, 64)))[:, :ITEM_SIZE, :ITEM_SIZE]
            data = np.clip(fine + rng.normal(0, 80, fine.shape), 1, 10000).astype(np.uint16)
            data[:, :, :rng.integers(0, 40)] = 0
            path = folder / f"item_{row}_{col}.tif"
            transform = Affine(ITEM_PIXEL, 0, X0 + col * ITEM_STRIDE * ITEM_PIXEL, 0, -ITEM_PIXEL,
                               Y0 - row * ITEM_STRIDE * ITEM_PIXEL)
            with rasterio.open(path, "w", driver="COG", width=ITEM_SIZE, height=ITEM_SIZE, count=3, dtype="uint16",
                               crs=CRS, transform=transform, nodata=0, BLOCKSIZE=256, COMPRESS="DEFLATE",
                               OVERVIEW_RESAMPLING="AVERAGE") as dst:
                dst.write(data)
            paths.append(path)
    return paths


class GdalVrtBaseline:
    """A VRT of the items (GDAL draws its sources in order, the last on top: the items reversed give First),
    warped onto the output grid in one `reproject` call, kept open between requests."""

    def __init__(self, folder: Path, paths: list[Path]) -> None:
        vrt = folder / "items.vrt"
        sources = "".join(
            f'<ComplexSource><SourceFilename relativeToVRT="0">{p}</SourceFilename><SourceBand>{{band}}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{ITEM_SIZE}" ySize="{ITEM_SIZE}"/>'
            f'<DstRect xOff="{int((src.bounds.left - X0) / ITEM_PIXEL)}" '
            f'yOff="{int((Y0 - src.bounds.top) / ITEM_PIXEL)}" xSize="{ITEM_SIZE}" ySize="{ITEM_SIZE}"/>'
            f'<NODATA>0</NODATA></ComplexSource>'
            for p, src in ((p, rasterio.open(p)) for p in reversed(paths)))
        width = ITEM_STRIDE * (ITEM_GRID[0] - 1) + ITEM_SIZE
        height = ITEM_STRIDE * (ITEM_GRID[1] - 1) + ITEM_SIZE
        bands = "".join(f'<VRTRasterBand dataType="UInt16" band="{b}"><NoDataValue>0</NoDataValue>'
                        f'{sources.format(band=b)}</VRTRasterBand>' for b in (1, 2, 3))
        vrt.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{CRS}</SRS>'
                       f'<GeoTransform>{X0}, {ITEM_PIXEL}, 0, {Y0}, 0, {-ITEM_PIXEL}</GeoTransform>{bands}</VRTDataset>')
        self.dataset = rasterio.open(vrt)

    def __call__(self, bbox: tuple[float, float, float, float], crs: str) -> np.ndarray:
        out = np.zeros((3, OUTPUT, OUTPUT), np.uint16)
        xmin, ymin, xmax, ymax = bbox
        reproject(rasterio.band(self.dataset, (1, 2, 3)), out, src_nodata=0, dst_nodata=0, dst_crs=crs,
                  dst_transform=Affine((xmax - xmin) / OUTPUT, 0, xmin, 0, -(ymax - ymin) / OUTPUT, ymax),
                  resampling=Resampling.bilinear, num_threads=1)
        return out


def export_bbox() -> tuple[tuple[float, float, float, float], str]:
    """The items' whole extent in Web Mercator (so every item is warped), as a client's map would ask."""
    xmax = X0 + ITEM_PIXEL * (ITEM_STRIDE * (ITEM_GRID[0] - 1) + ITEM_SIZE)
    ymin = Y0 - ITEM_PIXEL * (ITEM_STRIDE * (ITEM_GRID[1] - 1) + ITEM_SIZE)
    return transform_bounds(crs_from_wkid(32611), crs_from_wkid(3857), (X0, ymin, xmax, Y0)), "EPSG:3857"


def export_mosaic(core: ImageService, operation: str, bbox, items: int | None = None):
    rule = {"mosaicMethod": "esriMosaicNone", "mosaicOperation": operation}
    if items is not None:
        rule["where"] = f"OBJECTID <= {items}"
    query = {"bbox": ",".join(map(str, bbox)), "bboxSR": "3857", "imageSR": "3857", "size": f"{OUTPUT},{OUTPUT}",
             "format": "tiff", "compression": "None", "interpolation": "RSP_BilinearInterpolation",
             "mosaicRule": json.dumps(rule)}
    return core.export_image(export_params(export_request("mos", Params(query.items()))))


def peak_megabytes(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def virtual_catalog(path: Path, template, count: int) -> Catalog:
    """``count`` items on a square grid of the template's size (all pointing at the template's file: choosing items
    never opens them)."""
    catalog = Catalog(path)
    side = int(np.ceil(np.sqrt(count)))
    width = template.width * template.transform.a
    items = [replace(template, transform=Affine(template.transform.a, 0, X0 + (i % side) * width, 0,
                                                template.transform.e, Y0 - (i // side) * width))
             for i in range(count)]
    catalog.add_service("virtual", items, ServiceSettings(max_mosaic_image_count=20))
    return catalog


def choose_items_ms(catalog: Catalog, runs: int) -> tuple[float, float]:
    """Median times to choose the items of a 1024×1024 export of a bbox of about 4 × 4 items somewhere in the
    catalog (the catalog query, footprints, pixel-size range, order, cap: what the plan is given), and to plan the
    whole export (plus each chosen item's window and overview)."""
    core = ImageService(Catalog(catalog.path, readonly=True))
    service = core.catalog.service("virtual")
    service_crs = crs_from_wkt(service.description.crs_wkt)
    template = catalog.items("virtual")[0]
    width = template.width * template.transform.a
    rng = np.random.default_rng(1)
    extent = service.description.extent
    requests = []
    for _ in range(64):
        x = rng.uniform(extent[0], extent[2] - 4 * width)
        y = rng.uniform(extent[1], extent[3] - 4 * width)
        requests.append(export_params(export_request("virtual", Params({
            "bbox": f"{x},{y},{x + 4 * width},{y + 4 * width}", "size": f"{OUTPUT},{OUTPUT}"}.items()))))
    state = {"i": 0}

    def next_request():
        state["i"] += 1
        return requests[state["i"] % len(requests)]

    def choose():
        params = next_request()
        grid = output_grid(params, service)
        candidates = core.items_under(core.catalog.service("virtual"), search_bounds(grid, service_crs),
                                      params.mosaic_rule, None, output_pixel_size(grid, service_crs))
        mosaic.order_items(params.mosaic_rule, candidates, view_centre(grid, service_crs), extent,
                           service.settings.max_mosaic_image_count, service.fields)

    return timed(choose, runs, warmup=8), timed(lambda: core.plan_export(next_request()), runs, warmup=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--large", type=int, default=100_000, help="items in the large catalog")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_items(folder)
        db = folder / "catalog.sqlite"
        register(Catalog(db), "mos", paths, ServiceSettings(max_mosaic_image_count=len(paths)))
        core = ImageService(Catalog(db, readonly=True))
        gdal = GdalVrtBaseline(folder, paths)
        bbox, crs = export_bbox()
        gdal_ms = timed(lambda: gdal(bbox, crs), args.runs)
        print(f"{len(paths)} items of {ITEM_SIZE}² UInt16×3, {OUTPUT}² bilinear export to EPSG:3857, tiff")
        print(f"  GDAL VRT + reproject        {gdal_ms:8.1f} ms")
        for operation in ("MT_FIRST", "MT_MEAN", "MT_BLEND"):
            ms = timed(lambda: export_mosaic(core, operation, bbox), args.runs)
            print(f"  imgsvc {operation:<20} {ms:8.1f} ms   x{gdal_ms / ms:5.2f} GDAL's speed")
        for operation in ("MT_FIRST", "MT_MEAN"):
            few, many = (peak_megabytes(lambda n=n: export_mosaic(core, operation, bbox, n)) for n in (10, 50))
            print(f"  peak numpy memory {operation:<9} 10 items {few:6.1f} MiB, 50 items {many:6.1f} MiB "
                  f"(output {3 * 2 * OUTPUT * OUTPUT / 2**20:.0f} MiB)")

        template = describe_raster(paths[0])
        for count in dict.fromkeys((1000, args.large)):
            catalog = virtual_catalog(folder / f"virtual{count}.sqlite", template, count)
            choose_ms, plan_ms = choose_items_ms(catalog, args.runs * 20)
            print(f"  {count:>7} items: choose the items of a bbox {choose_ms:6.2f} ms, plan the export "
                  f"{plan_ms:6.2f} ms")


if __name__ == "__main__":
    main()
