"""The resources around exportImage (REFERENCE §4): keyProperties, rasterFunctionInfos, statistics, histograms,
legend and item info, as plain values computed from the catalog record.  No raster is read here: statistics and
histograms were computed at registration and are kept in the catalog.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgsvc import sr
from imgsvc.block import BandStats
from imgsvc.catalog import BandDistribution, ServiceRecord
from imgsvc.encode import png
from imgsvc.encode.stretch import stretch_range
from imgsvc.errors import invalid, not_found, unsupported

DATA_TYPE_PREFIX = "esriImageServiceDataType"


@dataclass(frozen=True)
class FunctionTemplate:
    name: str
    description: str
    help: str = ""
    function_type: int = 0  # 0 = mosaic level


# "None" first: ArcGIS JS applies entry 0 to every request unless it is "None" (REFERENCE §3.2).
RASTER_FUNCTION_TEMPLATES = (
    FunctionTemplate("None", "Make a Raster or Raster Dataset into a Function Raster Dataset."),
)


def raster_function_templates(service: ServiceRecord) -> tuple[FunctionTemplate, ...]:
    return RASTER_FUNCTION_TEMPLATES


def require_identity_rule(rule: dict | None, resource: str) -> None:
    """Resources describe the service as it is; a rendering rule other than the "None" template is refused."""
    if not rule:
        return
    name = str(rule.get("rasterFunction", "None"))
    if name.lower() != "none" or rule.get("rasterFunctionArguments"):
        raise unsupported(f"renderingRule {name!r} is not supported on {resource} yet.")


@dataclass(frozen=True)
class KeyPropertiesResult:
    data_type: str
    band_names: tuple[str, ...]
    low_cell_size: float
    high_cell_size: float


def key_properties(service: ServiceRecord) -> KeyPropertiesResult:
    item = service.primary
    data_type = service.settings.service_data_type.removeprefix(DATA_TYPE_PREFIX) or "Generic"
    low = abs(item.transform.a)
    coarsest = item.overview_shapes[-1][0] if item.overview_shapes else item.width
    return KeyPropertiesResult(data_type=data_type, band_names=item.band_names, low_cell_size=low,
                               high_cell_size=low * item.width / coarsest)


def distributions(service: ServiceRecord, stored: tuple[BandDistribution, ...] | None) -> tuple[BandDistribution, ...]:
    """The service's per-band distributions (its primary raster's, as the root's min/max/mean/stdv are)."""
    if stored is None:
        raise not_found(f"Statistics and histograms of service {service.name!r} have not been computed; "
                        "run `imgsvc migrate` on its catalog.")
    return stored


# ---- legend -------------------------------------------------------------------------------------------------------

SWATCH = 20  # pixels: ArcGIS legend images are 20 x 20
STRETCH_ENTRIES = 3  # High, (middle), Low: three swatches that stack into one continuous ramp
RGB_CHANNELS = (("Red", (255, 0, 0)), ("Green", (0, 255, 0)), ("Blue", (0, 0, 255)))


@dataclass(frozen=True)
class LegendSwatch:
    label: str
    png: bytes
    values: tuple[float, ...]


@dataclass(frozen=True)
class LegendResult:
    layer_name: str
    legend_type: str  # "Stretched" or "RGB Composite"
    swatches: tuple[LegendSwatch, ...]


def _ramp_swatch(top: float, bottom: float) -> bytes:
    """A 20 x 20 gray swatch running from ``top`` (0..1 of the ramp) on its first row to ``bottom`` on its last."""
    shades = np.linspace(top, bottom, SWATCH) * 255
    return png.write(np.repeat(np.rint(shades).astype(np.uint8)[:, None], SWATCH, axis=1), level=6)


def _solid_swatch(rgb: tuple[int, int, int]) -> bytes:
    return png.write(np.broadcast_to(np.array(rgb, np.uint8), (SWATCH, SWATCH, 3)), level=6)


def _number(value: float) -> str:
    return f"{value:.6g}"


def legend(service: ServiceRecord, band_ids: tuple[int, ...]) -> LegendResult:
    """What the default rendering of ``band_ids`` shows (the rule in ``encode.picture``/``encode.stretch``).

    One or two bands render as gray through the default stretch: a "Stretched" legend with three swatches, High at
    the top, that stack into the gray ramp, labelled with the data values the ramp's ends stand for.  Three or more
    bands render the first three as RGB: an "RGB Composite" legend naming the band on each channel.
    """
    item = service.primary
    bands = band_ids or tuple(range(item.band_count))
    bad = [b for b in bands if not 0 <= b < item.band_count]
    if bad:
        raise invalid(f"bandIds {bad} out of range: the service has {item.band_count} band(s) (0-based ids).")
    if len(bands) >= 3:
        swatches = tuple(LegendSwatch(f"{channel}: {item.band_names[b]}", _solid_swatch(rgb), ())
                         for (channel, rgb), b in zip(RGB_CHANNELS, bands))
        return LegendResult(service.name, "RGB Composite", swatches)
    band = bands[0]
    if item.dtype == "uint8":
        lo, hi = 0.0, 255.0  # 8-bit data is shown as is
    else:
        stats: BandStats = item.stats[band]
        lo, hi = stretch_range(stats)
    steps = np.linspace(1.0, 0.0, STRETCH_ENTRIES + 1)
    values = np.linspace(hi, lo, STRETCH_ENTRIES)
    labels = [f"High : {_number(hi)}"] + [""] * (STRETCH_ENTRIES - 2) + [f"Low : {_number(lo)}"]
    swatches = tuple(LegendSwatch(labels[i], _ramp_swatch(steps[i], steps[i + 1]), (float(values[i]),))
                     for i in range(STRETCH_ENTRIES))
    return LegendResult(f"{service.name}: {item.band_names[band]}", "Stretched", swatches)


# ---- item info ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ItemInfoResult:
    name: str
    description: str
    copyright_text: str
    service_data_type: str
    geographic_extent: tuple[float, float, float, float]  # lon/lat


def item_info(service: ServiceRecord) -> ItemInfoResult:
    item = service.primary
    wgs84 = sr.crs_from_wkid(4326)
    extent = sr.transform_bounds(sr.crs_from_wkt(item.crs_wkt), wgs84, item.bounds)
    return ItemInfoResult(name=service.name, description=service.settings.description,
                          copyright_text=service.settings.copyright_text,
                          service_data_type=service.settings.service_data_type, geographic_extent=extent)
