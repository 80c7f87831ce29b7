"""Raster functions against GDAL's gdaldem: Hillshade, Slope and a Stretch→Colormap chain (against
`gdaldem color-relief` with the same two-colour ramp) on a 1024x1024 export of the demo DEM.  Not a test.

Run: `.venv/bin/python -m bench.bench_functions` (uses the demo catalog, `make demo`; gdaldem from Debian's
gdal-bin, which tests/clients/setup.sh installs).  Medians of reruns after a warm-up, in-process for imgsvc:

* ``render``: the export rendered without a rule (plan, read, resample: the baseline the rule adds to),
* ``render+fn``: the same export with the rule (``render_block``: the read grid widened by 1, the function,
  the crop),
* ``fn``: the function alone on the rendered DEM (``Chain.apply``),
* ``padding``: what the seam buffer costs: rendering the grid widened by the chain's buffer instead of the grid
  itself, as a share of ``render+fn``,
* ``gdaldem``: ``gdaldem <mode>`` as a subprocess on the same rendered DEM written to a GeoTIFF beforehand (its
  time includes starting the process, reading the file and writing its output).

GDAL's in-process ``GDALDEMProcessing`` is not exposed by rasterio (its only binding is osgeo.gdal, which the
project does not depend on), so the process start-up stays in gdaldem's time; the ``gdaldem --version`` line
measures that start-up alone so it can be subtracted by eye.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from bench.bench_export import timed
from imgsvc.catalog import Catalog, default_catalog_path
from imgsvc.functions import BandsInfo, Raster, parse_rule
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService

# (label, rendering rule, gdaldem arguments): the same computation on both sides (gdaldem's hillshade scale is
# 1 + 254·cos i, ours 255·cos i: the same work).
CASES = [
    ("hillshade", {"rasterFunction": "Hillshade", "rasterFunctionArguments": {"Azimuth": 315, "Altitude": 45}},
     ["hillshade", "-az", "315", "-alt", "45"]),
    ("slope", {"rasterFunction": "Slope", "rasterFunctionArguments": {"SlopeType": 1}}, ["slope"]),
    # A min-max stretch to U8 then a black→white-free two-colour ramp: gdaldem color-relief interpolates the same
    # two colours between the DEM's min and max (the colour file is written from the service statistics).
    ("stretch→colormap", {"rasterFunction": "Colormap", "rasterFunctionArguments": {
        "ColorRamp": {"type": "algorithmic", "fromColor": [40, 90, 40, 255], "toColor": [250, 240, 220, 255],
                      "algorithm": "esriCIELabAlgorithm"},
        "Raster": {"rasterFunction": "Stretch", "outputPixelType": "U8",
                   "rasterFunctionArguments": {"StretchType": 5}}}},
     ["color-relief"]),
]
SERVICE = "elevation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", default=str(default_catalog_path()))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gdaldem = shutil.which("gdaldem")
    if gdaldem is None:
        raise SystemExit("gdaldem is missing: run tests/clients/setup.sh (Debian's gdal-bin)")
    core = ImageService(Catalog(args.catalog, readonly=True))
    (item,) = core.catalog.items(SERVICE)
    x0, y0 = item.transform.c + 200 * item.transform.a, item.transform.f + 200 * item.transform.e
    x1, y1 = x0 + args.size * item.transform.a, y0 + args.size * item.transform.e
    query = {"bbox": f"{x0},{y1},{x1},{y0}", "size": f"{args.size},{args.size}", "format": "tiff",
             "interpolation": "RSP_BilinearInterpolation"}

    def planned(**extra):
        return core.plan_export(export_params(export_request(SERVICE, Params({**query, **extra}.items()))))

    plain = planned()
    dem = core.render_block(plain)
    source = Raster(dem.data, dem.valid, BandsInfo(("Elevation",), dem.data.dtype.name, dem.stats))
    render_ms = timed(lambda: core.render_block(plain), args.runs)
    with tempfile.TemporaryDirectory() as folder:
        dem_path, out_path = Path(folder) / "dem.tif", Path(folder) / "out.tif"
        nodata = -9999.0
        with rasterio.open(dem_path, "w", driver="GTiff", width=args.size, height=args.size, count=1,
                           dtype=dem.data.dtype, crs=dem.crs.to_wkt(), transform=dem.transform, nodata=nodata) as dst:
            dst.write(np.where(dem.valid, dem.data[0], nodata), 1)
        # `gdaldem --version` starts, prints and exits non-zero (no operation given): only the start-up is wanted.
        startup_ms = timed(lambda: subprocess.run([gdaldem, "--version"], capture_output=True), args.runs)
        print(f"{args.size}x{args.size} export of the demo DEM ({dem.data.dtype}), bilinear; median ms of "
              f"{args.runs}; gdaldem process start-up alone: {startup_ms:.1f} ms")
        stats = dem.stats[0]
        colours = Path(folder) / "colours.txt"
        colours.write_text(f"{stats.min} 40 90 40\n{stats.max} 250 240 220\nnv 0 0 0\n")
        print(f"{'function':<17} {'render':>7} {'render+fn':>10} {'fn':>7} {'padding':>8} {'gdaldem':>8} "
              f"{'gdaldem/fn':>11} {'gdaldem/(render+fn-render)':>27}")
        for label, rule, gdal_args in CASES:
            export = planned(renderingRule=json.dumps(rule))
            chain = parse_rule(rule)
            total_ms = timed(lambda: core.render_block(export), args.runs)
            function_ms = timed(lambda: chain.apply(source, plain.plan.read_grid), args.runs)
            wide = core.plan_export(plain.params)
            wide = type(wide)(params=wide.params, options=wide.options, plan=dataclasses.replace(
                wide.plan, read_grid=wide.plan.grid.widened(chain.buffer)))
            # Signed: a widening of a pixel or two is within the noise of the reruns.
            padding_ms = timed(lambda: core.render_block(wide), args.runs) - render_ms if chain.buffer else 0.0
            extra = [str(colours)] if gdal_args == ["color-relief"] else []
            gdal_ms = timed(lambda: subprocess.run([gdaldem, *gdal_args, str(dem_path), *extra, str(out_path), "-q"],
                                                   check=True), args.runs)
            print(f"{label:<17} {render_ms:7.1f} {total_ms:10.1f} {function_ms:7.1f} "
                  f"{100 * padding_ms / total_ms:7.1f}% {gdal_ms:8.1f} {gdal_ms / function_ms:11.2f} "
                  f"{gdal_ms / max(total_ms - render_ms, 1e-9):27.2f}")


if __name__ == "__main__":
    main()
