"""Synthetic but realistic-looking demo rasters for trying the service without real data.

`generate(dest)` writes two Cloud-Optimized GeoTIFFs over the eastern Sierra Nevada around Mount
Whitney (36.6°N, 118.3°W), both in UTM zone 11N (EPSG:32611):

- ``elevation.tif``: a 2048×2048 Float32 DEM at 30 m with SRTM-like voids (nodata -9999);
- ``multispectral.tif``: a 2048×2048 4-band UInt16 surface-reflectance scene at 10 m over the
  centre of the DEM, derived from that DEM, with a nodata (0) collar along its western edge.

Everything is computed with numpy from fixed seeds, so each run writes the same bytes with the same
numpy/GDAL build. The terrain is built the way a hillshade expects real terrain to look: a regional
range profile (a west slope, a crest, an escarpment into a valley floor, the foot of the next range),
spectral (1/f^β) noise plus ridged multifractal noise for relief, domain warping so ridges meander,
and valleys carved along a drainage network computed from the surface itself.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import pathlib

import netCDF4
import numpy as np
import rasterio
from rasterio.crs import CRS as RasterioCRS
from rasterio.enums import Resampling
from rasterio.transform import Affine

CRS = "EPSG:32611"
ELEVATION_NODATA = -9999.0
MULTISPECTRAL_NODATA = 0
BAND_NAMES = ("Blue", "Green", "Red", "NearInfrared")

DEM_SIZE = 2048
DEM_PIXEL = 30.0
# Upper-left corner chosen so the DEM centre (383730, 4051290) is 36.6°N 118.3°W, on the 30 m grid.
DEM_LEFT, DEM_TOP = 353010.0, 4082010.0

MS_SIZE = 2048
MS_PIXEL = 10.0
# The multispectral grid starts exactly 683 DEM pixels in, so every 30 m cell holds 3×3 10 m cells.
MS_OFFSET_DEM_PIXELS = 683
MS_LEFT = DEM_LEFT + MS_OFFSET_DEM_PIXELS * DEM_PIXEL
MS_TOP = DEM_TOP - MS_OFFSET_DEM_PIXELS * DEM_PIXEL

TERRAIN_SEED = 20240611
LANDSCAPE_SEED = 20240612

# Sun of a mid-morning summer Landsat overpass at this latitude, used to light the scene.
SUN_AZIMUTH_DEG = 135.0
SUN_ELEVATION_DEG = 58.0


def generate(dest: pathlib.Path) -> dict[str, pathlib.Path]:
    """Write the demo rasters into `dest` (created if missing); return their paths by name."""
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    terrain = _build_terrain(np.random.default_rng(TERRAIN_SEED))
    elevation_path = dest / "elevation.tif"
    multispectral_path = dest / "multispectral.tif"
    _write_cog(
        elevation_path,
        _punch_voids(terrain, np.random.default_rng(TERRAIN_SEED + 1))[np.newaxis],
        transform=Affine(DEM_PIXEL, 0.0, DEM_LEFT, 0.0, -DEM_PIXEL, DEM_TOP),
        nodata=ELEVATION_NODATA,
        overview_count=4,
        descriptions=("Elevation",),
        units="metre",
    )
    _write_cog(
        multispectral_path,
        _build_multispectral(terrain, np.random.default_rng(LANDSCAPE_SEED)),
        transform=Affine(MS_PIXEL, 0.0, MS_LEFT, 0.0, -MS_PIXEL, MS_TOP),
        nodata=MULTISPECTRAL_NODATA,
        overview_count=3,
        descriptions=BAND_NAMES,
        units=None,
    )
    return {"elevation": elevation_path, "multispectral": multispectral_path}


# The scenes mosaic: the multispectral landscape cut into overlapping tiles seen on two dates, spring (greener:
# more NIR, less red) and autumn (browner), each with its own clouds (NoData), so the mosaic methods, time and
# attribute ordering show on a map.
SCENE_TILE = 640  # pixels a side
SCENE_STRIDE = 464  # tiles overlap by 176 pixels
SCENE_SEED = 20240613
SCENE_DATES = {"spring": ("2024-04-{day:02d}", (0.95, 1.05, 0.85, 1.25)),
               "autumn": ("2024-10-{day:02d}", (1.05, 1.0, 1.2, 0.8))}


def generate_scenes(dest: pathlib.Path, multispectral_path: pathlib.Path) -> tuple[list[pathlib.Path], pathlib.Path]:
    """Write the scene tiles of the multispectral demo into `dest`/scenes and their attribute table (Name,
    AcquisitionDate, CloudCover, Season); return the tiles' paths and the table's."""
    folder = pathlib.Path(dest) / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SCENE_SEED)
    with rasterio.open(multispectral_path) as src:
        landscape = src.read()
    paths, rows = [], ["Name,AcquisitionDate,CloudCover,Season"]
    starts = range(0, MS_SIZE - SCENE_TILE + 1, SCENE_STRIDE)
    for tile, (row0, col0) in enumerate((r, c) for r in starts for c in starts):
        block = landscape[:, row0:row0 + SCENE_TILE, col0:col0 + SCENE_TILE].astype(np.float64)
        for season, (date, gains) in SCENE_DATES.items():
            scene = np.clip(np.rint(block * np.asarray(gains)[:, None, None]), 1, 10000).astype(np.uint16)
            scene[:, block[0] == MULTISPECTRAL_NODATA] = MULTISPECTRAL_NODATA
            clouds = _standardise(_gaussian_blur(rng.standard_normal((SCENE_TILE, SCENE_TILE)), 16.0)) > rng.uniform(1.0, 2.2)
            scene[:, clouds] = MULTISPECTRAL_NODATA
            name = f"scene_{tile:02d}_{season}"
            path = folder / f"{name}.tif"
            _write_cog(path, scene, transform=Affine(MS_PIXEL, 0.0, MS_LEFT + col0 * MS_PIXEL, 0.0, -MS_PIXEL,
                                                     MS_TOP - row0 * MS_PIXEL),
                       nodata=MULTISPECTRAL_NODATA, overview_count=2, descriptions=BAND_NAMES, units=None)
            paths.append(path)
            rows.append(f"{name},{date.format(day=1 + tile)},{clouds.mean():.3f},{season}")
    table = folder / "attributes.csv"
    table.write_text("\n".join(rows) + "\n")
    return paths, table


# The climate cube: a multidimensional (netCDF) service over the DEM, a year of monthly means of near-surface air
# temperature (time) and of soil temperature at four depths (time × depth), both following the terrain by a lapse
# rate, the soil's seasonal swing damped and delayed with depth as heat conduction does.
CLIMATE_FACTOR = 8  # DEM pixels per cube cell a side: 240 m cells
CLIMATE_YEAR = 2024
CLIMATE_DEPTHS_M = (0.1, 0.5, 1.0, 2.0)
CLIMATE_NODATA = -9999.0
LAPSE_RATE_C_PER_M = 0.0065
# Sea-level-equivalent monthly mean air temperature of Owens Valley: 22.5 °C, ±11.5 °C, warmest mid-July.
SEA_LEVEL_MEAN_C, SEASONAL_SWING_C = 22.5, 11.5
SOIL_DAMPING_DEPTH_M = 2.0  # where the annual swing falls to 1/e


def climate_month_days(year: int = CLIMATE_YEAR) -> list[int]:
    """Days from 1 January of ``year`` to the 15th of each month: the cube's time values."""
    return [(dt.date(year, month, 15) - dt.date(year, 1, 1)).days for month in range(1, 13)]


def climate_fields(elevation: np.ndarray, day: float, depth: float | None = None) -> np.ndarray:
    """The air temperature (``depth`` None) or the soil temperature at ``depth`` metres on ``day`` of the year over
    ``elevation`` (metres; NaN stays NaN), in °C."""
    phase = 2.0 * math.pi * (day - 105.0) / 365.0  # the swing crosses its mean in mid-April
    mean = SEA_LEVEL_MEAN_C - LAPSE_RATE_C_PER_M * elevation
    if depth is None:
        return mean + SEASONAL_SWING_C * math.sin(phase)
    damping = depth / SOIL_DAMPING_DEPTH_M
    return mean + SEASONAL_SWING_C * math.exp(-damping) * math.sin(phase - damping)


def write_climate_cube(path: pathlib.Path, elevation: np.ndarray, transform: Affine, crs: str = CRS,
                       year: int = CLIMATE_YEAR) -> pathlib.Path:
    """Write the climate cube over ``elevation`` (a 2-D grid, NaN where unknown, north up on ``transform``) as a
    CF-1.8 netCDF file that GDAL georeferences: x/y coordinates, a grid mapping with the CRS's WKT, time in
    "days since" units on the standard calendar, depth positive down."""
    height, width = elevation.shape
    days = climate_month_days(year)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as cube:
        cube.Conventions = "CF-1.8"
        cube.title = "imgsvc demo climate: monthly mean air and soil temperature"
        cube.createDimension("time", len(days))
        cube.createDimension("depth", len(CLIMATE_DEPTHS_M))
        cube.createDimension("y", height)
        cube.createDimension("x", width)
        time = cube.createVariable("time", "f8", ("time",))
        time.setncatts({"standard_name": "time", "units": f"days since {year}-01-01 00:00:00",
                        "calendar": "standard", "axis": "T"})
        time[:] = days
        depth = cube.createVariable("depth", "f8", ("depth",))
        depth.setncatts({"standard_name": "depth", "long_name": "depth below the surface", "units": "m",
                         "positive": "down", "axis": "Z"})
        depth[:] = CLIMATE_DEPTHS_M
        for name, axis, count, start, step in (("x", "X", width, transform.c, transform.a),
                                               ("y", "Y", height, transform.f, transform.e)):
            coordinate = cube.createVariable(name, "f8", (name,))
            coordinate.setncatts({"standard_name": f"projection_{name}_coordinate", "units": "m", "axis": axis})
            coordinate[:] = start + step * (np.arange(count) + 0.5)
        grid_mapping = cube.createVariable("crs", "i4")
        grid_mapping.setncatts({"grid_mapping_name": "transverse_mercator",
                                "spatial_ref": RasterioCRS.from_user_input(crs).to_wkt(),
                                "GeoTransform": " ".join(repr(v) for v in transform.to_gdal())})
        variables = {"air_temperature": (("time",), "Monthly mean near-surface air temperature"),
                     "soil_temperature": (("time", "depth"), "Monthly mean soil temperature")}
        for name, (dims, long_name) in variables.items():
            variable = cube.createVariable(name, "f4", (*dims, "y", "x"), zlib=True, complevel=4,
                                           chunksizes=(*(1 for _ in dims), height, width),
                                           fill_value=np.float32(CLIMATE_NODATA))
            variable.setncatts({"long_name": long_name, "units": "degC", "grid_mapping": "crs"})
            for month, day in enumerate(days):
                if dims == ("time",):
                    variable[month] = _filled(climate_fields(elevation, day))
                else:
                    for level, metres in enumerate(CLIMATE_DEPTHS_M):
                        variable[month, level] = _filled(climate_fields(elevation, day, metres))
    return path


def _filled(field: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(field), CLIMATE_NODATA, np.round(field, 2)).astype(np.float32)


def generate_climate(dest: pathlib.Path, elevation_path: pathlib.Path) -> pathlib.Path:
    """Write ``dest``/climate.nc over the demo DEM averaged to 240 m cells (the voids left out of each mean)."""
    with rasterio.open(elevation_path) as src:
        shape = (src.height // CLIMATE_FACTOR, src.width // CLIMATE_FACTOR)
        elevation = src.read(1, out_shape=shape, resampling=Resampling.average, masked=True)
        transform = src.transform * Affine.scale(CLIMATE_FACTOR)
    return write_climate_cube(pathlib.Path(dest) / "climate.nc", elevation.filled(np.nan).astype(np.float64),
                              transform)


class _Terrain:
    """The gap-free DEM plus the by-products the landscape is derived from."""

    def __init__(self, elevation: np.ndarray, lakes: np.ndarray, valley_floor: np.ndarray):
        self.elevation = elevation  # float64 metres, DEM_SIZE²
        self.lakes = lakes  # bool, flat water surfaces
        self.valley_floor = valley_floor  # 0..1, 1 on the alluvial floor east of the escarpment


# --- noise -------------------------------------------------------------------------------------


def _frequency_radius(shape: tuple[int, int]) -> np.ndarray:
    """|k| in cycles per pixel on the rfft2 layout of `shape`."""
    fy = np.fft.fftfreq(shape[0])[:, np.newaxis]
    fx = np.fft.rfftfreq(shape[1])[np.newaxis, :]
    return np.sqrt(fx * fx + fy * fy)


def _standardise(field: np.ndarray) -> np.ndarray:
    return (field - field.mean()) / field.std()


def _spectral_noise(spectrum: np.ndarray, radius: np.ndarray, beta: float, shape) -> np.ndarray:
    """1/f^β noise: power falling as |k|^-β, i.e. amplitude as |k|^(-β/2); unit variance."""
    amplitude = np.zeros_like(radius)
    nonzero = radius > 0
    amplitude[nonzero] = radius[nonzero] ** (-beta / 2.0)
    return _standardise(np.fft.irfft2(spectrum * amplitude, s=shape))


def _octave_noise(spectrum: np.ndarray, radius: np.ndarray, centre: float, shape) -> np.ndarray:
    """Band-limited noise one octave wide around `centre` cycles/pixel; unit variance."""
    with np.errstate(divide="ignore"):
        octaves_away = np.log2(np.where(radius > 0, radius, 1e-12) / centre)
    return _standardise(np.fft.irfft2(spectrum * np.exp(-0.5 * (octaves_away / 0.6) ** 2), s=shape))


def _ridged_multifractal(octaves: list[np.ndarray], roughness: float = 1.0) -> np.ndarray:
    """Musgrave's ridged multifractal over band-limited octaves (lowest first).

    Zero crossings of each octave become sharp crests (1 - |n|)²; each octave is weighted by the
    previous signal so fine detail gathers on the ridges and valleys stay smooth, as erosion leaves
    them.
    """
    total = np.zeros_like(octaves[0])
    weight = np.ones_like(octaves[0])
    for index, octave in enumerate(octaves):
        signal = np.clip(1.0 - 0.75 * np.abs(octave), 0.0, None) ** 2
        signal *= weight
        weight = np.clip(signal * 2.0, 0.0, 1.0)
        total += signal * 2.0 ** (-index * roughness)
    return _standardise(total)


def _smooth_profile(rng: np.random.Generator, length: int, wavelength: float) -> np.ndarray:
    """1-D noise without detail shorter than about `wavelength` samples; unit variance."""
    frequency = np.fft.rfftfreq(length)
    lowpass = np.exp(-0.5 * (frequency * wavelength) ** 2)
    return _standardise(np.fft.irfft(np.fft.rfft(rng.standard_normal(length)) * lowpass, n=length))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _gaussian_blur(field: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur by FFT, reflect-padded so opposite edges do not bleed into each other."""
    pad = int(math.ceil(3 * sigma))
    padded = np.pad(field, pad, mode="reflect")
    radius = _frequency_radius(padded.shape)
    kernel = np.exp(-2.0 * (math.pi * sigma * radius) ** 2)
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * kernel, s=padded.shape)
    return blurred[pad:-pad, pad:-pad]


# --- resampling ---------------------------------------------------------------------------------


def _linear_axis(coords: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and weight for linear interpolation at `coords`, clamped at the edges."""
    coords = np.clip(coords, 0.0, length - 1.0)
    lower = np.minimum(np.floor(coords).astype(np.intp), length - 2)
    return lower, lower + 1, coords - lower


def _resample_grid(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear values of `field` on the grid `rows` × `cols` (fractional pixel-centre indices)."""
    r0, r1, wr = _linear_axis(rows, field.shape[0])
    c0, c1, wc = _linear_axis(cols, field.shape[1])
    by_row = field[r0] * (1.0 - wr)[:, np.newaxis] + field[r1] * wr[:, np.newaxis]
    return by_row[:, c0] * (1.0 - wc) + by_row[:, c1] * wc


def _upsample(field: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor with pixel centres aligned."""
    rows = (np.arange(field.shape[0] * factor) + 0.5) / factor - 0.5
    cols = (np.arange(field.shape[1] * factor) + 0.5) / factor - 0.5
    return _resample_grid(field, rows, cols)


def _block_mean(field: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = field.shape[0] // factor, field.shape[1] // factor
    return field.reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def _warp(field: np.ndarray, row_shift: np.ndarray, col_shift: np.ndarray) -> np.ndarray:
    """Sample a periodic `field` at each pixel displaced by the shifts (bilinear, wrapping)."""
    rows_n, cols_n = field.shape
    rows = np.arange(rows_n)[:, np.newaxis] + row_shift
    cols = np.arange(cols_n)[np.newaxis, :] + col_shift
    r0 = np.floor(rows).astype(np.intp)
    c0 = np.floor(cols).astype(np.intp)
    wr, wc = rows - r0, cols - c0
    r0 %= rows_n
    c0 %= cols_n
    r1, c1 = (r0 + 1) % rows_n, (c0 + 1) % cols_n
    top = field[r0, c0] * (1.0 - wc) + field[r0, c1] * wc
    bottom = field[r1, c0] * (1.0 - wc) + field[r1, c1] * wc
    return top * (1.0 - wr) + bottom * wr


# --- terrain -------------------------------------------------------------------------------------

# The drainage network is grown on a 240 m grid: fine enough for valleys a few hundred metres wide,
# coarse enough for the pure-Python parts of the erosion loop to stay well under a second each.
EROSION_FACTOR = 8
EROSION_STEPS = 40
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _build_terrain(rng: np.random.Generator) -> _Terrain:
    coarse_n = DEM_SIZE // EROSION_FACTOR
    coarse_pixel = DEM_PIXEL * EROSION_FACTOR
    crest_wander = _smooth_profile(rng, coarse_n, wavelength=coarse_n / 3.0)

    coarse_layout = _RangeLayout(coarse_n, coarse_pixel, crest_wander)
    base = coarse_layout.base
    relief = _initial_relief(rng, coarse_n) * (1.0 - coarse_layout.valley_floor)
    elevation = _breach_depressions(base + relief, rng)
    # Rock uplift in proportion to the range's height keeps the range standing while rivers cut
    # into it, as the Sierra's tilted block does; over the run it adds 30% of the regional relief.
    uplift = 0.3 * (base - base.min()) / EROSION_STEPS
    elevation = _erode(elevation, uplift, coarse_pixel, EROSION_STEPS)

    elevation = _gaussian_blur(_upsample(elevation, EROSION_FACTOR), EROSION_FACTOR / 2.0)
    layout = _RangeLayout(DEM_SIZE, DEM_PIXEL, crest_wander)
    elevation += _hillslope_detail(rng, elevation) * (1.0 - 0.8 * layout.valley_floor)
    # Erosion and uplift leave the summit height to chance; scale the relief above the valley
    # floor so the highest summit is Mount Whitney's.
    elevation = VALLEY_FLOOR_M + (elevation - VALLEY_FLOOR_M) * (
        (HIGHEST_SUMMIT_M - VALLEY_FLOOR_M) / (elevation.max() - VALLEY_FLOOR_M)
    )
    elevation = np.maximum(elevation, _alluvial_fans(rng, layout.from_crest, layout.east))
    elevation, lakes = _add_lakes(elevation, rng)
    return _Terrain(elevation, lakes, layout.valley_floor)


VALLEY_FLOOR_M = 1160.0  # Owens Valley at Lone Pine
CREST_M = 3900.0  # the regional crest before relief; peaks rise above it
HIGHEST_SUMMIT_M = 4421.0


class _RangeLayout:
    """The range's shape before erosion on a grid of `n`² cells of `pixel` metres.

    Across the range, in km east of the DEM centre: a long western slope, the crest near 2 km west
    of centre, the escarpment dropping ~2.7 km into Owens Valley, and the foot of the Inyo
    Mountains at the east edge. The crest wanders north-south with `crest_wander` (a profile of
    any length, stretched over the rows).
    """

    def __init__(self, n: int, pixel: float, crest_wander: np.ndarray):
        km = (np.arange(n) + 0.5 - n / 2) * pixel / 1000.0
        self.east = np.broadcast_to(km[np.newaxis, :], (n, n))
        wander_at = np.linspace(0.0, 1.0, crest_wander.size)
        crest = -2.0 + 2.5 * np.interp(np.linspace(0.0, 1.0, n), wander_at, crest_wander)[:, np.newaxis]
        self.from_crest = self.east - crest
        west_slope = CREST_M - 1300.0 * (np.clip(-self.from_crest, 0.0, None) / 32.0) ** 1.3
        escarpment = 1 - _smoothstep((self.from_crest - 1.0) / 12.0)
        base = np.where(self.from_crest < 0, west_slope, VALLEY_FLOOR_M + (CREST_M - VALLEY_FLOOR_M) * escarpment)
        self.base = base + 1100.0 * _smoothstep((self.east - 24.0) / 8.0)
        # 0..1, 1 on the alluvial valley floor between the two ranges.
        self.valley_floor = _smoothstep((self.from_crest - 9.0) / 5.0) * (1 - _smoothstep((self.east - 23.0) / 5.0))


def _initial_relief(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uneroded relief on the erosion grid, metres: fractal hills plus sharp ridged crests.

    The fractal part is 1/f^β noise with β = 2.3 for profiles, i.e. a 2-D power spectrum falling
    as |k|^-3.3, the slope measured on real mountain DEMs. The ridged multifractal adds knife-edge
    crests and domain warping makes them meander instead of running straight.
    """
    shape = (n, n)
    radius = _frequency_radius(shape)
    spectrum = np.fft.rfft2(rng.standard_normal(shape))
    fractal = _spectral_noise(spectrum, radius, beta=3.3, shape=shape)
    octaves = [_octave_noise(spectrum, radius, 12.0 * 2**i / n, shape) for i in range(3)]
    relief = 0.7 * fractal + 0.3 * _ridged_multifractal(octaves)
    row_shift, col_shift = (
        n / 60.0 * _octave_noise(np.fft.rfft2(rng.standard_normal(shape)), radius, 3.0 / n, shape)
        for _ in range(2)
    )
    return 420.0 * _warp(relief, row_shift, col_shift)


def _hillslope_detail(rng: np.random.Generator, elevation: np.ndarray) -> np.ndarray:
    """Fine 1/f relief the 240 m erosion grid cannot hold: gullies, spurs, outcrops.

    Only wavelengths under ~2 km are kept (the erosion grid already carries the longer ones), and
    the amplitude follows steepness, as bare steep slopes are rougher than valley bottoms.
    """
    shape = elevation.shape
    radius = _frequency_radius(shape)
    highpass = 1.0 - np.exp(-((radius * 2000.0 / DEM_PIXEL) ** 2))
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * highpass
    detail = _spectral_noise(spectrum, radius, beta=3.3, shape=shape)
    slope = np.hypot(*np.gradient(elevation, DEM_PIXEL))
    return 12.0 * detail * (0.3 + np.clip(slope / 0.5, 0.0, 1.2))


def _alluvial_fans(rng: np.random.Generator, from_crest: np.ndarray, east: np.ndarray) -> np.ndarray:
    """The depositional surface of Owens Valley: a near-flat floor rising into fans at both range
    fronts. Taking the maximum with the eroded range buries canyon mouths under fans, as there."""
    n = from_crest.shape[0]
    shape = (n, n)
    undulation = _spectral_noise(np.fft.rfft2(rng.standard_normal(shape)), _frequency_radius(shape), 3.6, shape)
    # Fans are built by single canyons, so their size swells and shrinks along the range front.
    fan_size = 1.0 + 0.25 * _smooth_profile(rng, n, wavelength=n / 6.0)[:, np.newaxis]
    sierra_fans = 600.0 * fan_size * _smoothstep((15.0 - from_crest) / 13.0) ** 1.6
    inyo_fans = 320.0 * np.clip((east - 22.0) / 9.0, 0.0, 1.0) ** 1.6
    return VALLEY_FLOOR_M + 10.0 * undulation + sierra_fans + inyo_fans


def _breach_depressions(elevation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut an outlet from every pit down to the grid edge, so every cell drains and erosion starts
    from a connected network.

    A priority flood (Barnes et al. 2014) finds for each cell the lowest route to the edge; then
    every cell is lowered below the cell it drains from. Breaching rather than filling keeps
    closed noise basins from turning into perfectly flat floors that no river can incise. Each
    cut drops by a random few centimetres per cell rather than a constant epsilon, which would
    route the flow along the grid's eight directions and erosion would then carve those dead
    straight lines into the terrain.
    """
    rows, cols = elevation.shape
    height = elevation.ravel().tolist()
    drop = rng.uniform(0.01, 0.1, size=rows * cols).tolist()
    receivers = [-1] * (rows * cols)
    reached = [False] * (rows * cols)
    heap: list[tuple[float, int]] = []
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        if r in (0, rows - 1) or c in (0, cols - 1):
            reached[index] = True
            heap.append((height[index], index))
    heapq.heapify(heap)
    visit_order = []
    while heap:
        _, index = heapq.heappop(heap)
        visit_order.append(index)
        r, c = divmod(index, cols)
        for dr, dc in _OFFSETS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols:
                neighbour = nr * cols + nc
                if not reached[neighbour]:
                    reached[neighbour] = True
                    receivers[neighbour] = index
                    heapq.heappush(heap, (height[neighbour], neighbour))
    # A cell is visited after its receiver, so walking the visits backwards settles all of a
    # cell's donors before the cell itself is lowered below them.
    for index in reversed(visit_order):
        target = receivers[index]
        if target >= 0 and height[target] >= height[index]:
            height[target] = height[index] - drop[target]
    return np.array(height).reshape(rows, cols)



def _erode(elevation: np.ndarray, uplift: np.ndarray, pixel: float, steps: int) -> np.ndarray:
    """Stream-power incision, dh/dt = -K·A^0.5·S, solved implicitly (Braun & Willett 2013), with
    slopes held at a critical angle as threshold hillslopes do by landsliding.

    Rivers cut in proportion to the square root of upstream area times slope, so big rivers carve
    deep trunk valleys and tributaries branch off them: the dendritic network of real ranges.
    Only cells draining more than a few cells are channels; the rest are hillslopes that keep their
    height unless the cut below them makes them steeper than the critical angle. Grid edges are
    base level; `uplift` (metres per step) raises the whole block, edges included. The implicit update keeps every cell above its receiver, so no new pits
    appear and no re-filling is needed between steps.
    """
    rows, cols = elevation.shape
    height = elevation.ravel().copy()
    index = np.arange(height.size)
    edge = np.zeros(elevation.shape, dtype=bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    edge = edge.ravel()
    uplift = uplift.ravel()
    erodibility_dt = 0.08  # K·Δt: F ≈ 1 for a channel draining ~25 km² on the 240 m grid
    channel_cells = 4.0
    for _ in range(steps):
        height = height + uplift
        receivers, distance = _steepest_receivers(height.reshape(rows, cols), pixel)
        receivers[edge] = index[edge]
        order = _upstream_order(receivers)
        channel_area = np.clip(_upstream_cells(receivers, order) - channel_cells, 0.0, None) * pixel * pixel
        factor = (erodibility_dt * np.sqrt(channel_area) / distance).tolist()
        receiver_list = receivers.tolist()
        h = height.tolist()
        for node in order.tolist():
            target = receiver_list[node]
            if target != node:
                f = factor[node]
                h[node] = (h[node] + f * h[target]) / (1.0 + f)
        height = _limit_slope(np.array(h).reshape(rows, cols), pixel, critical=0.9).ravel()
    return height.reshape(rows, cols)


def _limit_slope(height: np.ndarray, pixel: float, critical: float) -> np.ndarray:
    """Lower every cell that stands more than `critical` (rise/run) above a neighbour."""
    rows, cols = height.shape
    for _ in range(2):
        padded = np.pad(height, 1, mode="edge")
        for dr, dc in _OFFSETS:
            neighbour = padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
            height = np.minimum(height, neighbour + critical * pixel * math.hypot(dr, dc))
    return height


def _steepest_receivers(height: np.ndarray, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """For each cell, the flat index of its steepest-descent neighbour (itself if none is lower)
    and the distance to it."""
    rows, cols = height.shape
    padded = np.pad(height, 1, mode="constant", constant_values=np.inf)
    index = np.arange(rows * cols).reshape(rows, cols)
    best_slope = np.zeros(height.shape)
    receivers = index.copy()
    distance = np.full(height.shape, pixel)
    for dr, dc in _OFFSETS:
        step = pixel * math.hypot(dr, dc)
        slope = (height - padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]) / step
        steeper = slope > best_slope
        best_slope = np.where(steeper, slope, best_slope)
        receivers = np.where(steeper, index + dr * cols + dc, receivers)
        distance = np.where(steeper, step, distance)
    return receivers.ravel(), distance.ravel()


def _upstream_order(receivers: np.ndarray) -> np.ndarray:
    """Cells sorted by their number of hops to the outlet, so each comes after its receiver.

    Hop counts come from pointer jumping (log₂ of the longest path in vectorised rounds).
    """
    pointer = receivers.copy()
    hops = (pointer != np.arange(pointer.size)).astype(np.int64)
    while True:
        jumped = pointer[pointer]
        if np.array_equal(jumped, pointer):
            break
        hops = hops + hops[pointer]
        pointer = jumped
    return np.argsort(hops, kind="stable")


def _upstream_cells(receivers: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Number of cells draining through each cell, itself included."""
    cells = [1.0] * receivers.size
    receiver_list = receivers.tolist()
    for node in reversed(order.tolist()):
        target = receiver_list[node]
        if target != node:
            cells[target] += cells[node]
    return np.array(cells)


def _add_lakes(elevation: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scoop glacial tarns into high benches and flood each; return the DEM and the water mask.

    Sites are picked on a 480 m grid where it is high and not steep, half of them inside the
    multispectral scene so that it shows lakes too.
    """
    lakes = np.zeros(elevation.shape, dtype=bool)
    elevation = elevation.copy()
    block = 16
    coarse = _block_mean(elevation, block)
    slope = np.hypot(*np.gradient(coarse, block * DEM_PIXEL))
    rows, cols = np.mgrid[0 : coarse.shape[0], 0 : coarse.shape[1]]
    scene_low = MS_OFFSET_DEM_PIXELS // block + 2
    scene_high = (MS_OFFSET_DEM_PIXELS + MS_SIZE // 3) // block - 2
    in_scene = (rows >= scene_low) & (rows < scene_high) & (cols >= scene_low) & (cols < scene_high)
    benches = (coarse > 3000) & (coarse < 3900) & (slope < 0.3)
    sites = []
    for where in (benches & in_scene, benches & ~in_scene):
        candidates = np.flatnonzero(where.ravel())
        sites.extend(rng.choice(candidates, size=min(7, candidates.size), replace=False).tolist())
    for site in sites:
        row, col = divmod(site, coarse.shape[1])
        _flood_bowl(elevation, lakes, row * block + block // 2, col * block + block // 2, rng)
    return elevation, lakes


def _flood_bowl(
    elevation: np.ndarray, lakes: np.ndarray, centre_r: int, centre_c: int, rng: np.random.Generator
) -> None:
    """Deepen an irregular bowl around the centre and fill it with flat water up to a low point
    of its rim, so the shoreline follows the terrain as a real lake's does. Updates in place."""
    n = elevation.shape[0]
    size = rng.uniform(7.0, 16.0)  # radius in pixels, i.e. 210-480 m
    half = int(size * 2.5) + 2
    r0, r1 = max(centre_r - half, 0), min(centre_r + half, n)
    c0, c1 = max(centre_c - half, 0), min(centre_c + half, n)
    rr, cc = np.mgrid[r0:r1, c0:c1]
    angle = np.arctan2(rr - centre_r, cc - centre_c)
    lobes = 1.0 + sum(rng.uniform(0.05, 0.2) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    distance = np.hypot(rr - centre_r, (cc - centre_c) / rng.uniform(1.0, 1.7)) / (size * lobes)
    window = elevation[r0:r1, c0:c1]
    rim = window[(distance > 0.9) & (distance < 1.1)]
    # Deep enough that the floor sits below even a sloping rim's low side.
    depth = rng.uniform(15.0, 35.0) + (np.percentile(rim, 85) - np.percentile(rim, 15))
    window -= depth * np.clip(1.0 - distance**2, 0.0, None)
    level = np.percentile(window[(distance > 0.9) & (distance < 1.1)], 15)
    water = (distance < 1.0) & (window < level)
    window[water] = level
    lakes[r0:r1, c0:c1] |= water


def _slope_aspect(elevation: np.ndarray, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (radians) and aspect (radians clockwise from north, the downslope direction)."""
    d_south, d_east = np.gradient(elevation, pixel)  # row index grows southwards
    slope = np.arctan(np.hypot(d_east, d_south))
    aspect = np.arctan2(-d_east, d_south)  # downslope points against the gradient
    return slope, np.mod(aspect, 2 * np.pi)


def hillshade(elevation: np.ndarray, pixel: float, azimuth_deg: float, altitude_deg: float) -> np.ndarray:
    """Lambertian illumination 0..1 of `elevation` by a sun at the given azimuth and altitude."""
    slope, aspect = _slope_aspect(elevation, pixel)
    zenith = math.radians(90.0 - altitude_deg)
    azimuth = math.radians(azimuth_deg)
    shade = math.cos(zenith) * np.cos(slope) + math.sin(zenith) * np.sin(slope) * np.cos(azimuth - aspect)
    return np.clip(shade, 0.0, 1.0)


def _punch_voids(terrain: _Terrain, rng: np.random.Generator) -> np.ndarray:
    """The DEM as SRTM delivers it: voids in radar shadow on steep slopes, over some lakes, and a
    strip past the swath edge in the north-east corner."""
    elevation = terrain.elevation
    n = elevation.shape[0]
    slope, _ = _slope_aspect(elevation, DEM_PIXEL)
    shape = (n, n)
    blobs = _spectral_noise(np.fft.rfft2(rng.standard_normal(shape)), _frequency_radius(shape), 3.2, shape)
    shadow = (blobs > 2.1) & (slope > math.radians(28.0))
    # Grow the shadow specks into the ragged patches radar layover leaves.
    shadow = _gaussian_blur(shadow.astype(float), 3.0) > 0.2
    water_voids = terrain.lakes & (blobs < 0.0)
    rows, cols = np.mgrid[0:n, 0:n]
    swath_edge = (cols - rows) > 0.72 * n - 40.0 * np.sin(rows / 97.0)
    voids = shadow | water_voids | swath_edge
    return np.where(voids, ELEVATION_NODATA, elevation).astype(np.float32)


# --- multispectral --------------------------------------------------------------------------------

# Land covers and their surface reflectance ×10000 (blue, green, red, NIR) under full sun.
_COVERS = ("scrub", "woodland", "forest", "alpine_meadow", "talus", "rock", "snow", "water")
_REFLECTANCE = np.array(
    [
        (1250, 1650, 2100, 2750),  # sagebrush scrub on alluvium: bright soil, sparse green
        (520, 800, 900, 2300),  # pinyon-juniper woodland
        (230, 420, 280, 2350),  # conifer forest: dark visible, strong NIR
        (420, 780, 620, 3300),  # alpine meadow: green peak, red edge
        (1150, 1350, 1550, 2050),  # talus and moraine
        (1450, 1700, 1950, 2450),  # granite
        (9200, 9000, 8700, 7200),  # snow: bright in the visible, lower in the NIR
        (520, 560, 330, 140),  # clear water: dark, NIR absorbed
    ],
    dtype=np.float64,
)


def _cover_code(name: str) -> int:
    return _COVERS.index(name)


def _build_multispectral(terrain: _Terrain, rng: np.random.Generator) -> np.ndarray:
    n = MS_SIZE
    # Fractional DEM pixel (centre) indices of every 10 m pixel centre.
    dem_index = MS_OFFSET_DEM_PIXELS + (np.arange(n) + 0.5) / 3.0 - 0.5

    def from_dem(field: np.ndarray) -> np.ndarray:
        return _resample_grid(field, dem_index, dem_index)

    dem = terrain.elevation
    dem_slope, dem_aspect = _slope_aspect(dem, DEM_PIXEL)
    slope = from_dem(dem_slope)
    # cos(aspect) rather than aspect: aspect wraps at north and would interpolate through south.
    northness = from_dem(np.cos(dem_aspect))
    shade = from_dem(hillshade(dem, DEM_PIXEL, SUN_AZIMUTH_DEG, SUN_ELEVATION_DEG))
    elevation = from_dem(dem)
    lake = from_dem(terrain.lakes.astype(float)) > 0.5
    valley_floor = from_dem(terrain.valley_floor)

    shape = (n, n)
    radius = _frequency_radius(shape)
    patchy = _spectral_noise(np.fft.rfft2(rng.standard_normal(shape)), radius, 2.6, shape)
    grain = _spectral_noise(np.fft.rfft2(rng.standard_normal(shape)), radius, 1.0, shape)

    slope_deg = np.degrees(slope)
    # Treeline and snowline sit lower on shaded north faces; the patchy noise breaks them up.
    treeline = 3350.0 + 120.0 * patchy - 150.0 * northness
    snowline = 3850.0 + 150.0 * patchy - 350.0 * northness
    gentle = slope_deg < 14 + 4 * patchy
    cover = np.full(shape, _cover_code("scrub"), dtype=np.uint8)
    cover[(elevation > 2300 + 150 * patchy) & (valley_floor < 0.5)] = _cover_code("woodland")
    cover[(elevation > 2600 + 100 * patchy) & (valley_floor < 0.5)] = _cover_code("forest")
    cover[(elevation > treeline - 250) & gentle] = _cover_code("alpine_meadow")
    cover[(elevation > treeline) & ~gentle] = _cover_code("talus")
    cover[(elevation > treeline + 150) | (slope_deg > 38 + 4 * patchy)] = _cover_code("rock")
    cover[(elevation > snowline) & (slope_deg < 40)] = _cover_code("snow")
    # Playas and ponds where the valley floor is lowest and flattest.
    cover[(valley_floor > 0.9) & (slope_deg < 1.0) & (patchy < -1.6)] = _cover_code("water")
    cover[lake] = _cover_code("water")

    reflectance = np.moveaxis(_REFLECTANCE[cover], -1, 0)

    # Direct sun scaled by incidence plus sky light, so shaded slopes stay readable.
    illumination = 0.25 + 0.75 * shade / math.sin(math.radians(SUN_ELEVATION_DEG))
    texture = 1.0 + 0.06 * grain + 0.08 * patchy
    scene = reflectance * (illumination * texture)[np.newaxis]
    scene += rng.normal(0.0, 25.0, size=scene.shape)
    scene = np.clip(np.rint(scene), 1, 10000).astype(np.uint16)

    # The scene footprint's western edge cuts the frame at a slant, as a real path/row does.
    rows, cols = np.mgrid[0:n, 0:n]
    scene[:, cols < 90 + rows * 0.12] = MULTISPECTRAL_NODATA
    return scene


# --- writing ------------------------------------------------------------------------------------


def _write_cog(
    path: pathlib.Path,
    bands: np.ndarray,
    *,
    transform,
    nodata: float,
    overview_count: int,
    descriptions: tuple[str, ...],
    units: str | None,
) -> None:
    """Write `bands` as a Cloud-Optimized GeoTIFF with `overview_count` internal overviews
    (factors 2, 4, 8, …) averaged with nodata excluded."""
    count, height, width = bands.shape
    profile = dict(
        driver="COG",
        width=width,
        height=height,
        count=count,
        dtype=bands.dtype,
        crs=CRS,
        transform=transform,
        nodata=nodata,
        BLOCKSIZE=512,
        COMPRESS="DEFLATE",
        PREDICTOR="YES",
        LEVEL=6,
        OVERVIEWS="AUTO",
        OVERVIEW_COUNT=overview_count,
        RESAMPLING="AVERAGE",
        OVERVIEW_RESAMPLING="AVERAGE",
        NUM_THREADS=1,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
        for band, description in enumerate(descriptions, start=1):
            dst.set_band_description(band, description)
            if units:
                dst.set_band_unit(band, units)
