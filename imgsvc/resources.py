"""The resources around exportImage (docs/protocol.md §4): keyProperties, rasterFunctionInfos, statistics, histograms,
legend and item info, as plain values computed from the catalog record.  No raster is read here: statistics and
histograms were computed at registration and are kept in the catalog.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from imgsvc import functions, mosaic, sr
from imgsvc.block import BandStats
from imgsvc.catalog import BandDistribution, ServiceRecord
from imgsvc.encode import png
from imgsvc.encode.stretch import stretch_range
from imgsvc.errors import invalid, not_found, unsupported
from imgsvc.functions.colormap import Colormap

DATA_TYPE_PREFIX = "esriImageServiceDataType"


@dataclass(frozen=True)
class FunctionTemplate:
    name: str
    description: str
    help: str = ""
    function_type: int = 0  # 0 = mosaic level


# "None" first: ArcGIS JS applies entry 0 to every request unless it is "None" (docs/protocol.md §3.2).
RASTER_FUNCTION_TEMPLATES = (
    FunctionTemplate("None", "Make a Raster or Raster Dataset into a Function Raster Dataset."),
)


def raster_function_templates(service: ServiceRecord) -> tuple[FunctionTemplate, ...]:
    """rasterFunctionInfos: "None" and the service's templates, the default one first (ArcGIS JS applies entry 0
    to every request unless it is "None", docs/protocol.md §3.2, which is what a default template is for)."""
    templates = tuple(FunctionTemplate(t.name, t.description) for t in service.templates)
    default = service.default_template
    if default is None:
        return RASTER_FUNCTION_TEMPLATES + templates
    first = tuple(t for t in templates if t.name == default.name)
    return first + RASTER_FUNCTION_TEMPLATES + tuple(t for t in templates if t.name != default.name)


# ---- root resource facts ------------------------------------------------------------------------------------------

CAPABILITIES = "Image,Metadata"  # QGIS needs "Image" (docs/protocol.md §3.2)
MOSAIC_CAPABILITIES = "Image,Metadata,Catalog"  # a mosaic dataset also answers for its items
MAX_RECORD_COUNT = 1000
CURRENT_VERSION = 11.3  # advertised so clients send lercVersion=2 and adjustAspectRatio (docs/protocol.md §3.2)
FULL_VERSION = "11.3.0"
# The mosaic methods the mosaic stage builds (docs/protocol.md §5.1), in the root's short names.
ALLOWED_MOSAIC_METHODS = ",".join(m.value for m in mosaic.MosaicMethod)


@dataclass(frozen=True)
class MosaicDefaults:
    """What the root says about mosaicking: empty for a one-raster service, the defaults of a mosaic dataset."""

    default_method: str
    allowed_methods: str
    operator: str
    sort_field: str = ""
    sort_ascending: bool = True


def capabilities(service: ServiceRecord) -> str:
    return CAPABILITIES if service.description.item_count == 1 else MOSAIC_CAPABILITIES


def root_fields(service: ServiceRecord):
    """The item fields the root lists: a mosaic dataset's (OBJECTID first); none for one raster."""
    return () if service.description.item_count == 1 else service.fields


def mosaic_defaults(service: ServiceRecord) -> MosaicDefaults:
    if service.description.item_count == 1:
        return MosaicDefaults("", "", mosaic.DEFAULT_RULE.operation.value)
    return MosaicDefaults(mosaic.DEFAULT_RULE.method.value, ALLOWED_MOSAIC_METHODS,
                          mosaic.DEFAULT_RULE.operation.value)


def described(service: ServiceRecord, rule: dict | None) -> ServiceRecord:
    """The service as the rule outputs it: what the root answers with a ``renderingRule`` (its bands, pixel type
    and statistics; a source nodata value no longer marks the chain's values)."""
    chain = functions.chain_for(rule, service.templates)
    if chain.is_identity:
        return service
    d = service.description
    info = chain.describe(functions.BandsInfo(d.band_names, d.dtype, d.stats))
    return dataclasses.replace(service, description=dataclasses.replace(
        d, band_names=info.names, dtype=info.dtype, stats=info.stats or (), nodata=None))


@dataclass(frozen=True)
class KeyPropertiesResult:
    data_type: str
    band_names: tuple[str, ...]
    low_cell_size: float
    high_cell_size: float


def key_properties(service: ServiceRecord) -> KeyPropertiesResult:
    description = service.description
    data_type = service.settings.service_data_type.removeprefix(DATA_TYPE_PREFIX) or "Generic"
    return KeyPropertiesResult(data_type=data_type, band_names=description.band_names,
                               low_cell_size=description.pixel_size[0],
                               high_cell_size=description.coarsest_pixel_size)


def distributions(service: ServiceRecord, stored: tuple[BandDistribution, ...] | None) -> tuple[BandDistribution, ...]:
    """The service's per-band distributions (over all its items, as the root's min/max/mean/stdv are)."""
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


def _ramp_swatch(top: float, bottom: float, colours: np.ndarray | None = None) -> bytes:
    """A 20 x 20 swatch running from ``top`` (0..1 of the ramp) on its first row to ``bottom`` on its last: gray, or
    the rows of ``colours`` ((n, 3) uint8, the ramp from its low end to its high end)."""
    positions = np.linspace(top, bottom, SWATCH)
    if colours is None:
        return png.write(np.repeat(np.rint(positions * 255).astype(np.uint8)[:, None], SWATCH, axis=1), level=6)
    rows = colours[np.rint(positions * (len(colours) - 1)).astype(np.intp)]
    return png.write(np.ascontiguousarray(np.broadcast_to(rows[:, None, :], (SWATCH, SWATCH, 3))), level=6)


def _solid_swatch(rgb) -> bytes:
    return png.write(np.broadcast_to(np.asarray(rgb, np.uint8), (SWATCH, SWATCH, 3)), level=6)


def _number(value: float) -> str:
    return f"{value:.6g}"


# A colour map legend lists at most this many classes (a 16-bit colour map would make an unreadable legend).
MAX_LEGEND_CLASSES = 256


def legend(service: ServiceRecord, band_ids: tuple[int, ...], rule: dict | None = None) -> LegendResult:
    """What the rendering of ``band_ids`` shows: the service's pixels, or the rendering rule's output.

    One or two bands render as gray through the default stretch: a "Stretched" legend with three swatches, High at
    the top, that stack into the gray ramp, labelled with the data values the ramp's ends stand for.  Three or more
    bands render the first three as RGB: an "RGB Composite" legend naming the band on each channel.  A rule ending
    in a Colormap gives its classes (a "Unique Values" legend of the colour map's entries) or its colour ramp (a
    "Stretched" legend in the ramp's colours).
    """
    description = service.description
    chain = functions.chain_for(rule, service.templates)
    info = chain.describe(functions.BandsInfo(description.band_names, description.dtype, description.stats))
    if chain.root is not None and isinstance(chain.root.function, Colormap):
        source = chain.root.inputs[0].describe(functions.BandsInfo(description.band_names, description.dtype,
                                                                   description.stats))
        return _colormap_legend(service.name, chain.root.function, source)
    bands = band_ids or tuple(range(info.count))
    bad = [b for b in bands if not 0 <= b < info.count]
    if bad:
        raise invalid(f"bandIds {bad} out of range: the service has {info.count} band(s) (0-based ids).",
                      parameter="bandIds")
    if len(bands) >= 3:
        swatches = tuple(LegendSwatch(f"{channel}: {info.names[b]}", _solid_swatch(rgb), ())
                         for (channel, rgb), b in zip(RGB_CHANNELS, bands))
        return LegendResult(service.name, "RGB Composite", swatches)
    band = bands[0]
    if info.dtype == "uint8":
        lo, hi = 0.0, 255.0  # 8-bit data is shown as is
    elif info.stats is not None:
        stats: BandStats = info.stats[band]
        lo, hi = stretch_range(stats)
    else:
        raise unsupported("legend: the renderingRule's output range is not known before it is rendered; ask "
                          "for the statistics of the rule instead.", parameter="renderingRule")
    return LegendResult(f"{service.name}: {info.names[band]}", "Stretched", _stretched(lo, hi))


def _stretched(lo: float, hi: float, colours: np.ndarray | None = None) -> tuple[LegendSwatch, ...]:
    steps = np.linspace(1.0, 0.0, STRETCH_ENTRIES + 1)
    values = np.linspace(hi, lo, STRETCH_ENTRIES)
    labels = [f"High : {_number(hi)}"] + [""] * (STRETCH_ENTRIES - 2) + [f"Low : {_number(lo)}"]
    return tuple(LegendSwatch(labels[i], _ramp_swatch(steps[i], steps[i + 1], colours), (float(values[i]),))
                 for i in range(STRETCH_ENTRIES))


def _colormap_legend(name: str, colormap: Colormap, source: functions.BandsInfo) -> LegendResult:
    if colormap.entries is not None:
        values, rgb, opaque = colormap.entries
        classes = [(value, colour) for value, colour, shown in zip(values, rgb, opaque) if shown]
        if len(classes) > MAX_LEGEND_CLASSES:
            raise unsupported(f"legend: the colour map has {len(classes)} classes; a legend lists at most "
                              f"{MAX_LEGEND_CLASSES}.", parameter="renderingRule")
        return LegendResult(name, "Unique Values", tuple(
            LegendSwatch(_number(value), _solid_swatch(colour), (float(value),)) for value, colour in classes))
    if colormap.random:
        raise unsupported("legend: a Random colour map has no classes to list.", parameter="renderingRule")
    if source.stats is None and not (np.dtype(source.dtype).itemsize == 1 or colormap.ramp_is_ndvi):
        raise unsupported("legend: the colour map's input range is not known before it is rendered.",
                          parameter="renderingRule")
    lo, hi = colormap.ramp_range(source.dtype, source.stats[0] if source.stats else None)
    return LegendResult(name, "Stretched", _stretched(lo, hi, colormap.ramp_table.T))


# ---- item info ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ItemInfoResult:
    name: str
    description: str
    copyright_text: str
    service_data_type: str
    geographic_extent: tuple[float, float, float, float]  # lon/lat


def item_info(service: ServiceRecord) -> ItemInfoResult:
    wgs84 = sr.crs_from_wkid(4326)
    extent = sr.transform_bounds(sr.crs_from_wkt(service.description.crs_wkt), wgs84, service.description.extent)
    return ItemInfoResult(name=service.name, description=service.settings.description,
                          copyright_text=service.settings.copyright_text,
                          service_data_type=service.settings.service_data_type, geographic_extent=extent)
