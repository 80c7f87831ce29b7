"""The side-by-side suite's data (bench/bench_side_by_side.py), written once and kept under a git-ignored folder:
data the project's tests and demo have not seen, shaped as issue 12's measurements were.

- ``dem``: a size² Float32 DEM in UTM 11N, 10 m, with voids (nodata -9999), so a picture of it is masked;
- ``multispectral``: a size² 4-band UInt16 image in UTM 11N, 10 m, with a nodata (0) collar;
- ``rgb``: a (size/2)² 8-bit RGB image in EPSG:3857, every pixel valid;
- ``mosaic``: 50 overlapping 8-bit RGB tiles cut from ``rgb`` (10 x 5), each its own COG, plus a GDAL VRT of them
  for the servers that take one raster.

All are COGs (512² blocks, deflate with a predictor, overviews down to about 256 pixels), written from fixed seeds
by rasterio.  Each size gets its own folder; a folder whose ``.complete`` marker exists is reused as it is.
"""
from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from xml.sax.saxutils import escape

DEFAULT_FOLDER = Path("data/bench-side")
UTM = "EPSG:32611"
WEB_MERCATOR = "EPSG:3857"
DEM_NODATA = -9999.0
MULTISPECTRAL_NODATA = 0
# Sierra Nevada, as the demo; the RGB image sits over the same area in web mercator.
UTM_ORIGIN = (340000.0, 4100000.0)
MERCATOR_ORIGIN = (-13170000.0, 4400000.0)
PIXEL = 10.0
MOSAIC_COLUMNS, MOSAIC_ROWS = 10, 5  # 50 items
MOSAIC_OVERLAP = 0.15  # of a tile's side
SEED = 20261204


@dataclass(frozen=True)
class Dataset:
    """One row group of the suite: the service name imgsvc registers it under, the files it is made of, the one
    raster (a VRT for the mosaic) the single-raster baselines read, and the bands a picture shows (1-based)."""
    name: str
    items: tuple[Path, ...]
    raster: Path
    picture_bands: tuple[int, ...]


def prepare(size: int, folder: Path = DEFAULT_FOLDER) -> list[Dataset]:
    """The four datasets at ``size`` (the DEM's side), written unless they already are."""
    where = folder / str(size)
    marker = where / ".complete"
    tiles = where / "mosaic"
    if not marker.exists():
        tiles.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(SEED)
        write_cog(where / "dem.tif", dem(size, rng)[None], UTM, UTM_ORIGIN, DEM_NODATA)
        write_cog(where / "multispectral.tif", multispectral(size, rng), UTM, UTM_ORIGIN, MULTISPECTRAL_NODATA)
        rgb = colour(size // 2, rng)
        write_cog(where / "rgb.tif", rgb, WEB_MERCATOR, MERCATOR_ORIGIN, None)
        write_vrt(tiles / "mosaic.vrt", cut_tiles(rgb, tiles), rgb.shape)
        marker.touch()
    items = tuple(sorted(tiles.glob("tile_*.tif")))
    return [Dataset("dem", (where / "dem.tif",), where / "dem.tif", (1,)),
            Dataset("multispectral", (where / "multispectral.tif",), where / "multispectral.tif", (1, 2, 3)),
            Dataset("rgb", (where / "rgb.tif",), where / "rgb.tif", (1, 2, 3)),
            Dataset("mosaic", items, tiles / "mosaic.vrt", (1, 2, 3))]


def register(datasets: list[Dataset], catalog: Path) -> None:
    """Each dataset as an imgsvc service of the same name (a mosaic dataset for the tiles), by `imgsvc add`."""
    for dataset in datasets:
        subprocess.run([sys.executable, "-m", "imgsvc", "--catalog", str(catalog), "add", dataset.name,
                        *map(str, dataset.items), "--resampling", "Bilinear", "--replace"],
                       check=True, stdout=subprocess.DEVNULL)


def field(rows: int, cols: int, rng: np.random.Generator, waves: int = 24) -> np.ndarray:
    """A smooth random surface in 0..1: a sum of plane waves of falling amplitude, made row by row in float32
    (a size² float64 grid would be gigabytes at 8192²)."""
    y = np.arange(rows, dtype=np.float32)[:, None]
    x = np.arange(cols, dtype=np.float32)[None, :]
    out = np.zeros((rows, cols), np.float32)
    for k in range(waves):
        wavelength = max(rows, cols) / (1.5 + 1.7 * k)
        angle, phase = rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
        fx, fy = math.cos(angle) * 2 * math.pi / wavelength, math.sin(angle) * 2 * math.pi / wavelength
        out += np.float32(1 / (1 + k)) * np.sin(np.float32(fx) * x + np.float32(fy) * y + np.float32(phase))
    out -= out.min()
    out /= out.max()
    return out


def dem(size: int, rng: np.random.Generator) -> np.ndarray:
    """Elevations of 1200..4200 m with a metre of noise, and voids (about 3 % of the pixels) as nodata."""
    height = 1200 + 3000 * field(size, size, rng)
    height += rng.normal(0, 1.0, height.shape).astype(np.float32)
    voids = field(size, size, rng, waves=40) > 0.93
    height[voids] = DEM_NODATA
    return height


def multispectral(size: int, rng: np.random.Generator) -> np.ndarray:
    """Four correlated UInt16 reflectance bands with sensor noise, a nodata collar over the western 5 %."""
    base = field(size, size, rng)
    bands = np.empty((4, size, size), np.uint16)
    for band, (gain, offset) in enumerate(((2400, 300), (2800, 400), (3200, 350), (5200, 900))):
        bands[band] = np.clip(offset + gain * base + rng.normal(0, 40, base.shape), 1, 65535)
    bands[:, :, :max(1, size // 20)] = MULTISPECTRAL_NODATA
    return bands


def colour(size: int, rng: np.random.Generator) -> np.ndarray:
    """An 8-bit RGB scene: three smooth fields with texture."""
    return np.stack([np.clip(30 + 200 * field(size, size, rng) + rng.normal(0, 6, (size, size)), 0, 255)
                     .astype(np.uint8) for _ in range(3)])


def write_cog(path: Path, bands: np.ndarray, crs: str, origin: tuple[float, float], nodata: float | None) -> None:
    count, rows, cols = bands.shape
    overviews = max(1, int(math.log2(max(rows, cols) / 256)))
    with rasterio.open(path, "w", driver="COG", width=cols, height=rows, count=count, dtype=bands.dtype, crs=crs,
                       transform=Affine(PIXEL, 0, origin[0], 0, -PIXEL, origin[1]), nodata=nodata, BLOCKSIZE=512,
                       COMPRESS="DEFLATE", PREDICTOR="YES", OVERVIEWS="AUTO", OVERVIEW_COUNT=overviews,
                       OVERVIEW_RESAMPLING="AVERAGE", NUM_THREADS=2) as dst:
        dst.write(bands)


def tile_windows(rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """(row, col, height, width) of the mosaic's tiles: a 10 x 5 grid whose neighbours overlap."""
    height = int(rows / (MOSAIC_ROWS - (MOSAIC_ROWS - 1) * MOSAIC_OVERLAP))
    width = int(cols / (MOSAIC_COLUMNS - (MOSAIC_COLUMNS - 1) * MOSAIC_OVERLAP))
    row_step, col_step = (rows - height) // (MOSAIC_ROWS - 1), (cols - width) // (MOSAIC_COLUMNS - 1)
    return [(r * row_step, c * col_step, height, width) for r in range(MOSAIC_ROWS) for c in range(MOSAIC_COLUMNS)]


def cut_tiles(rgb: np.ndarray, folder: Path) -> list[tuple[Path, tuple[int, int, int, int]]]:
    tiles = []
    for index, (row, col, height, width) in enumerate(tile_windows(*rgb.shape[1:])):
        path = folder / f"tile_{index:02d}.tif"
        origin = (MERCATOR_ORIGIN[0] + col * PIXEL, MERCATOR_ORIGIN[1] - row * PIXEL)
        write_cog(path, np.ascontiguousarray(rgb[:, row:row + height, col:col + width]), WEB_MERCATOR, origin, None)
        tiles.append((path, (row, col, height, width)))
    return tiles


def write_vrt(path: Path, tiles: list[tuple[Path, tuple[int, int, int, int]]], shape: tuple[int, int, int]) -> None:
    """A VRT of the tiles on the whole image's grid, later tiles over earlier ones (the order imgsvc's default
    mosaic rule is compared under; the overlaps hold the same pixels, so the order does not change the image)."""
    count, rows, cols = shape
    bands = []
    for band in range(1, count + 1):
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">{escape(tile.name)}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/><DstRect xOff="{c}" yOff="{r}" xSize="{w}" '
            f'ySize="{h}"/></SimpleSource>' for tile, (r, c, h, w) in tiles)
        bands.append(f'<VRTRasterBand dataType="Byte" band="{band}">{sources}</VRTRasterBand>')
    wkt = rasterio.crs.CRS.from_string(WEB_MERCATOR).to_wkt()
    transform = f"{MERCATOR_ORIGIN[0]}, {PIXEL}, 0, {MERCATOR_ORIGIN[1]}, 0, {-PIXEL}"
    path.write_text(f'<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}"><SRS>{escape(wkt)}</SRS>'
                    f"<GeoTransform>{transform}</GeoTransform>{''.join(bands)}</VRTDataset>\n")
