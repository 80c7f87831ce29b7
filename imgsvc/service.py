"""The orchestrator: plan -> render (read, kernels, mosaic) -> functions -> finish -> encode, each stage a function
of the last.

Front doors (gRPC servicer, and through it the REST gateway) call this and only convert.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import numpy as np
from affine import Affine
from pyproj import CRS

from imgsvc import catalog_query
from imgsvc import identify as identify_stage
from imgsvc import budget, footprints, kernels, metrics, mosaic, multidimensional, resources, sr
from imgsvc.block import BandStats, ImageBlock, holds
from imgsvc.catalog import BandDistribution, Catalog, ServiceRecord
from imgsvc.catalog.describe import item_bounds_in
from imgsvc.encode import Encoded, EncodeOptions, encode, encode_kmz, validate_options
from imgsvc.errors import ImgsvcError, invalid
from imgsvc import functions
from imgsvc.functions import BandsInfo, Histogram, Raster
from imgsvc.distributions import distributions_of
from imgsvc.params import ExportParams, export_params
from imgsvc.plan import (ExportPlan, OutputGrid, PixelWindow, band_selection, grid_centres, make_plan, output_grid,
                         output_pixel_size, search_bounds, viewpoint_in)
from imgsvc.read import SourceUnreadable, read_window
from imgsvc.response_cache import ResponseCache, request_key

# docs/decisions.md Q2: with no lercVersion, answer with the highest version (2), as current servers do.
DEFAULT_LERC_VERSION = 2
# ArcGIS JS's default; the server-side default is an admin property not shown in the root.
DEFAULT_COMPRESSION_TOLERANCE = 0.01
WGS84 = CRS.from_epsg(4326)
# identify reads the service's own pixel under the point, as it is (no interpolation between pixels).
IDENTIFY_INTERPOLATION = "RSP_NearestNeighbor"
# The longest side of the rendering whose pixels give a rendering rule's statistics and histograms.
RULE_STATISTICS_SIZE = 1024


@dataclass(frozen=True)
class ExportResult:
    encoded: Encoded
    grid: OutputGrid


@dataclass(frozen=True)
class PlannedExport:
    params: ExportParams  # as planned (f=kmz swaps in WGS84)
    plan: ExportPlan
    options: EncodeOptions


def _window(w: PixelWindow):
    from rasterio.windows import Window  # the read stage's own type; imported lazily to keep plan pure

    return Window(w.col_off, w.row_off, w.width, w.height)


def render(plan: ExportPlan, transform_error: float = kernels.DEFAULT_MAX_ERROR,
           distributions: tuple[BandDistribution, ...] | None = None,
           deadline: budget.Deadline = budget.NO_DEADLINE) -> tuple[np.ndarray, np.ndarray]:
    """Read each planned window and resample it onto the read grid (then the itemRenderingRule), feeding the
    mosaic's pixel selection in compositing order; reading stops as soon as no later item can change the result.
    ``distributions``: the service's, when the item chain reads histograms."""
    return _composite(plan, plan.reads, plan.operation, transform_error, distributions, deadline,
                      plan.seamline_blend_width)


def render_items(plan: ExportPlan, transform_error: float,
                 distributions: tuple[BandDistribution, ...] | None = None,
                 deadline: budget.Deadline = budget.NO_DEADLINE) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each catalog item the chain reads alone, rendered on the read grid by itself: OBJECTID -> (data, valid)."""
    return {object_id: _composite(plan, reads, mosaic.MosaicOperation.FIRST, transform_error, distributions, deadline)
            for object_id, reads in plan.item_reads}


def _composite(plan: ExportPlan, reads, operation: mosaic.MosaicOperation, transform_error: float,
               distributions: tuple[BandDistribution, ...] | None, deadline: budget.Deadline,
               seamline_blend_width: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    grid = plan.read_grid
    centres = None
    if operation is mosaic.MosaicOperation.BLEND or seamline_blend_width is not None:
        # Blend and Seamline weigh items by where each pixel lies in them
        centres = grid_centres(grid, sr.crs_from_wkt(plan.service.description.crs_wkt))
    selection = mosaic.pixel_selection(operation, centres, plan.service.description.crs_wkt, seamline_blend_width)
    source = _bands_info(plan.service, plan.bands, distributions)
    for read in reads:
        if selection.is_done:
            break
        deadline.check()
        src = read_window(read.item, read.overview, _window(read.window), plan.bands)
        src_transform = Affine.translation(read.x_shift, 0.0) @ src.transform
        out, out_valid = kernels.reproject(
            src.data, src.valid, src_transform, sr.crs_from_wkt(read.item.crs_wkt),
            grid.transform, grid.crs, (grid.height, grid.width), plan.resampling, max_error=transform_error,
            between_rows=deadline.check)
        if not plan.item_chain.is_identity:
            item = plan.item_chain.apply(Raster(out, out_valid, source), grid)
            out, out_valid = item.data, item.valid
        selection.feed(out, out_valid, read.item)
    composite = plan.item_chain.describe(source)
    return selection.result(composite.count, (grid.height, grid.width), np.dtype(composite.dtype))


def _bands_info(service: ServiceRecord, bands: tuple[int, ...] | None = None,
                distributions: tuple[BandDistribution, ...] | None = None) -> BandsInfo:
    """What the service's bands (all, or ``bands``) are, as the function chain's input; with the service's
    ``distributions``, their histograms too."""
    d = service.description
    bands = tuple(range(d.band_count)) if bands is None else bands
    histograms = None if distributions is None else tuple(
        Histogram(distributions[b].hist_min, distributions[b].hist_max, distributions[b].counts) for b in bands)
    return BandsInfo(tuple(d.band_names[b] for b in bands), d.dtype, tuple(d.stats[b] for b in bands), histograms)


def apply_functions(plan: ExportPlan, data: np.ndarray, valid: np.ndarray,
                    distributions: tuple[BandDistribution, ...] | None = None,
                    items: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> Raster:
    """The rendering rule's chain on the rendered read grid, then the buffer cropped off and bandIds taken from
    the chain's output when they could not be read directly; ``distributions`` (the service's, when the chain
    needs histograms) give the source's histograms, ``items`` the rendered catalog items the chain names."""
    info = plan.item_chain.describe(_bands_info(plan.service, plan.bands, distributions))
    rasters = {object_id: Raster(item_data, item_valid, info) for object_id, (item_data, item_valid)
               in (items or {}).items()}
    out = plan.chain.apply(Raster(data, valid, info), plan.read_grid, rasters)
    data, valid, info = out.data, out.valid, out.info
    if plan.buffer:
        b = plan.buffer
        data, valid = data[:, b:-b, b:-b], valid[b:-b, b:-b]
    if plan.output_bands is not None:
        bands = band_selection(plan.output_bands, data.shape[0])
        data = data[list(bands)]
        info = BandsInfo(tuple(info.names[b] for b in bands), info.dtype,
                         None if info.stats is None else tuple(info.stats[b] for b in bands))
    return Raster(data, valid, info)


def apply_no_data(data: np.ndarray, valid: np.ndarray, values: tuple[float, ...], match_all: bool) -> np.ndarray:
    """The request's noData: MatchAny masks a pixel when any band equals its value, MatchAll when all do."""
    if not values:
        return valid
    bands = data.shape[0]
    if len(values) == 1:
        values = values * bands
    elif len(values) != bands:
        raise invalid(f"noData has {len(values)} values but the result has {bands} band(s): give one value or one "
                      "per band.")
    # Compared as float64: a value outside the data type's range matches nothing (no wrap-around in a cast).
    hits = np.stack([data[b] == np.float64(values[b]) for b in range(bands)])
    matched = hits.all(axis=0) if match_all else hits.any(axis=0)
    return valid & ~matched


def _output_nodata(params: ExportParams, source_nodata: float | None, dtype: np.dtype, bands: int):
    """The value TIFF output writes into masked pixels: the request's noData, else the source's if it fits.

    A requested noData the output pixel type cannot hold is never wrapped or clipped (the written value would
    then mark the wrong pixels): a TIFF, which declares it as GDAL_NODATA, is refused; other formats carry the mask
    themselves and write nothing.
    """
    if params.no_data:
        values = params.no_data * bands if len(params.no_data) == 1 else params.no_data
        bad = [v for v in values if not holds(dtype, v)]
        if bad and params.format != "tiff":
            return None
        if bad:
            raise invalid(f"noData {bad[0]:g} cannot be represented in the output pixel type "
                          f"({np.dtype(dtype).name}); choose a value inside its range or another pixelType.")
        return tuple(float(v) for v in values)
    if source_nodata is None or not holds(dtype, source_nodata):
        return None
    return (float(source_nodata),) * bands


def finish(params: ExportParams, plan: ExportPlan, result: Raster) -> ImageBlock:
    """The request's noData, pixelType and fill value for masked pixels (docs/protocol.md §1.2 steps 6-7); the
    statistics the default stretch uses are those of what the chain outputs."""
    data, info = result.data, result.info
    valid = apply_no_data(data, result.valid, params.no_data, params.no_data_match_all)
    data = kernels.convert_pixel_type(data, valid, params.pixel_type)
    # The source's nodata value marks the output only when the bands are still the source's values.
    source_nodata = plan.service.description.nodata if plan.chain.is_identity else None
    nodata = _output_nodata(params, source_nodata, data.dtype, data.shape[0])
    if nodata is not None:
        for b in range(data.shape[0]):
            data[b][~valid] = nodata[b]
    return ImageBlock(data=data, valid=valid, transform=plan.grid.transform, crs=plan.grid.crs, nodata=nodata,
                      stats=info.stats)


def item_conditions(catalog: Catalog, service: ServiceRecord, rule: mosaic.MosaicRule,
                    time: tuple[int | None, int | None] | None,
                    slice_conditions: list[tuple[str, list]] | None = None) -> list[tuple[str, list]]:
    """The SQL conditions a request puts on the service's items: the mosaic rule's where clause, compiled over the
    item fields with its values bound; the time on a time-aware service (elsewhere time selects nothing out,
    docs/decisions.md); on a multidimensional service the slices: those of the ``slice_conditions`` (a sliceId's),
    of the rule's multidimensionalDefinition, or, when neither is given and the rule names no items, the default
    variable's (docs/decisions.md "Multidimensional services")."""
    conditions = []
    if rule.where is not None:
        conditions.append(catalog.where_condition(rule.where, service.fields, parameter="mosaicRule"))
    if time is not None and service.settings.start_time_field:
        conditions.append(catalog.time_condition(service.settings, service.fields, *time))
    if slice_conditions:  # the slice a sliceId names wins over a definition
        conditions += slice_conditions
    elif rule.multidimensional_definition:
        conditions += multidimensional.definition_conditions(catalog, service, rule.multidimensional_definition)
    elif (service.settings.has_multidimensions and rule.fids is None
          and rule.method is not mosaic.MosaicMethod.LOCK_RASTER):
        conditions.append(multidimensional.variable_condition(catalog, service, None, "mosaicRule"))
    return conditions


def pixel_size_in(pixel_size: tuple[float, float, CRS | None], service: ServiceRecord) -> float:
    """A query's pixelSize (x, y in its SR, None = the service SR) as the service SR's units: its x measured at the
    service extent's centre."""
    x, _, crs = pixel_size
    service_crs = sr.crs_from_wkt(service.description.crs_wkt)
    if crs is None or crs == service_crs:
        return x
    xmin, ymin, xmax, ymax = service.description.extent
    cx, cy = sr.transform_points(service_crs, crs, np.array([(xmin + xmax) / 2]), np.array([(ymin + ymax) / 2]))
    xs, ys = sr.transform_points(crs, service_crs, np.array([cx[0], cx[0] + x]), np.array([cy[0], cy[0]]))
    size = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    if not math.isfinite(size) or size <= 0:
        raise invalid("pixelSize cannot be measured in the service's spatial reference.", parameter="pixelSize")
    return size


def item_chain(rule: mosaic.MosaicRule, service: ServiceRecord) -> functions.Chain:
    """The chain of the rule's itemRenderingRule (a renderingRule applied to each item alone, so it cannot name
    other items)."""
    if not rule.item_rendering_rule:
        return functions.IDENTITY
    try:
        chain = functions.parse_rule(rule.item_rendering_rule, service.templates)
    except ImgsvcError as exc:
        raise ImgsvcError(exc.kind, *(f"mosaicRule itemRenderingRule: {d}" for d in exc.details),
                          parameter="mosaicRule") from None
    if chain.item_ids:
        raise invalid("mosaicRule itemRenderingRule applies to each item alone: it cannot name catalog items "
                      f"(${min(chain.item_ids)}).", parameter="mosaicRule")
    return chain


def encode_options(params: ExportParams, service: ServiceRecord) -> EncodeOptions:
    options = EncodeOptions(
        format=params.format,
        quality=params.quality if params.quality is not None else service.settings.default_compression_quality,
        compression=params.compression,
        tolerance=params.tolerance if params.tolerance is not None else DEFAULT_COMPRESSION_TOLERANCE,
        lerc_version=params.lerc_version or DEFAULT_LERC_VERSION,
    )
    validate_options(options)
    return options


class ImageService:
    """exportImage, identify and the resources around them, over one catalog."""

    def __init__(self, catalog: Catalog, transform_error: float = kernels.DEFAULT_MAX_ERROR,
                 max_request_bytes: int = budget.DEFAULT_REQUEST_BYTES, memory: budget.MemoryBudget | None = None,
                 request_timeout: float | None = None, cache: ResponseCache | None = None,
                 slots: budget.ExportSlots | None = None) -> None:
        """Server settings: ``transform_error``, the approximate transformer's bound in source pixels;
        ``max_request_bytes``, the memory one export may need; ``memory``, the budget the exports in flight share;
        ``request_timeout``, the seconds one export may take whatever its caller's deadline; ``cache``, where the
        answers to identical requests are kept (None: none are); ``slots``, how many exports run and wait at once
        (None: no limit)."""
        if not transform_error > 0:
            raise ValueError("transform_error must be a positive number of source pixels")
        if max_request_bytes <= 0 or (request_timeout is not None and not request_timeout > 0):
            raise ValueError("max_request_bytes and request_timeout must be positive")
        self.catalog = catalog
        self.transform_error = transform_error
        self.max_request_bytes = max_request_bytes
        self.memory = memory
        self.request_timeout = request_timeout
        self.cache = cache
        self.slots = slots
        # Services whose rasters failed to read (docs/decisions.md "Faults"), and who hears of a change: the gRPC
        # server's health (service name, serving?).
        self.unhealthy: set[str] = set()
        self.health_listener: Callable[[str, bool], None] | None = None

    def service(self, name: str, rendering_rule: dict | None = None) -> ServiceRecord:
        """The service's record; with a rendering rule, described as the rule outputs it (the root resource)."""
        return resources.described(self.catalog.service(name), rendering_rule)

    def service_names(self) -> list[str]:
        return self.catalog.service_names()

    def export_image(self, params: ExportParams, deadline: budget.Deadline = budget.NO_DEADLINE) -> ExportResult:
        """Plan, then (once the plan's memory fits this request's and the server's budgets) render and encode,
        stopping at ``deadline`` or the server's ceiling (docs/decisions.md "Bounded work")."""
        key = None
        if self.cache is not None:
            version = self.catalog.version()
            key = None if version is None else (request_key(params), version)
            cached = None if key is None else self.cache.get(key)
            if cached is not None:
                return cached
        deadline = deadline.capped(self.request_timeout)
        with metrics.EXPORT_STAGE_SECONDS.labels("plan").time():
            export = self.plan_export(params)
        needed = budget.check_request_bytes(export.plan, self.max_request_bytes)
        with self.slots.take(deadline) if self.slots else nullcontext(), \
                self.memory.reserve(needed, deadline) if self.memory else nullcontext():
            block = self.render_block(export, deadline)
            deadline.check()
            with metrics.EXPORT_STAGE_SECONDS.labels("encode").time():
                encoded = encode_kmz(block, export.options) if export.params.kmz else encode(block, export.options)
        result = ExportResult(encoded=encoded, grid=export.plan.grid)
        if key is not None:
            self.cache.put(key, result, len(encoded.data))
        return result

    # The stages of export_image, public so that bench/ can time each on its own.

    def plan_export(self, params: ExportParams) -> PlannedExport:
        """Validate the encoding options and plan the output grid and the reads."""
        service = self.catalog.service(params.service)
        options = encode_options(params, service)
        service_crs = sr.crs_from_wkt(service.description.crs_wkt)
        if params.kmz and not (params.image_crs or service_crs).is_geographic:
            params = replace(params, image_crs=WGS84)  # KML ground overlays are placed in WGS84
        with sr.datum_transformation_scope(params.datum_transformation):
            grid = output_grid(params, service)
            bounds = search_bounds(grid, service_crs)
            slice_conditions = (None if params.slice_id is None
                                else multidimensional.slice_conditions(self.catalog, service, params.slice_id))
            candidates = () if bounds is None else self.items_under(
                service, bounds, params.mosaic_rule, params.time, output_pixel_size(grid, service_crs),
                slice_conditions)
            chain = functions.chain_for(params.rendering_rule, service.templates)
            plan = make_plan(params, service, grid, candidates, chain, self.referenced_items(service, chain),
                             item_chain(params.mosaic_rule, service))
        return PlannedExport(params=params, plan=plan, options=options)

    def items_under(self, service: ServiceRecord, bounds: tuple[float, float, float, float],
                    rule: mosaic.MosaicRule, time: tuple[int | None, int | None] | None,
                    pixel_size: float | None, slice_conditions: list[tuple[str, list]] | None = None) -> tuple:
        """The items whose footprints meet ``bounds`` (service SR) that the request selects, visible at the output's
        ``pixel_size`` (each item's MinPS..MaxPS, NULL = unbounded) except for locked rasters, which show at every
        pixel size (docs/protocol.md §5.1).  Where no item there is visible at that pixel size, the items there are
        used whatever their range, ordered and capped as any (docs/decisions.md "Pixel size ranges")."""
        conditions = item_conditions(self.catalog, service, rule, time, slice_conditions)

        def meeting(extra: list) -> tuple:
            return tuple(item for item in self.catalog.items_in(service.name, bounds, [*conditions, *extra])
                         if footprints.meets_box(item.footprint, bounds))

        found = ()
        if pixel_size is not None and rule.method is not mosaic.MosaicMethod.LOCK_RASTER:
            found = meeting([self.catalog.pixel_size_condition(service.fields, pixel_size)])
        return found or meeting([])

    def referenced_items(self, service: ServiceRecord, chain: functions.Chain) -> tuple:
        """The catalog items a chain reads alone ("$<n>"); an OBJECTID the service does not have is refused."""
        if not chain.item_ids:
            return ()
        ids = sorted(chain.item_ids)
        found = self.catalog.select_items(service.name, [(f"object_id IN ({', '.join('?' * len(ids))})", ids)])
        missing = sorted(set(ids) - {item.object_id for item in found})
        if missing:
            raise invalid(f"renderingRule names catalog item ${missing[0]}, which service {service.name!r} does not "
                          "have.", parameter="renderingRule")
        return found

    def render_block(self, export: PlannedExport, deadline: budget.Deadline = budget.NO_DEADLINE) -> ImageBlock:
        """Render, apply the functions, then finish: the block the encoder gets (checking ``deadline`` before each
        item is read and each stage)."""
        # Read once per request, and only for a chain that reads them (a stretch by histogram).
        distributions = None
        if export.plan.chain.needs_histograms or export.plan.item_chain.needs_histograms:
            distributions = self.catalog.distributions(export.plan.service.name)
        with self.source_health(export.plan.service.name), \
                sr.datum_transformation_scope(export.params.datum_transformation):
            with metrics.EXPORT_STAGE_SECONDS.labels("render").time():
                data, valid = render(export.plan, self.transform_error, distributions, deadline)
                items = render_items(export.plan, self.transform_error, distributions, deadline)
        deadline.check()
        with metrics.EXPORT_STAGE_SECONDS.labels("functions").time():
            return finish(export.params, export.plan, apply_functions(export.plan, data, valid, distributions, items))

    @contextmanager
    def source_health(self, name: str):
        """Reading service ``name``'s rasters: a raster that cannot be read marks the service unhealthy, the next
        read that works marks it healthy again."""
        try:
            yield
        except SourceUnreadable:
            self._set_health(name, False)
            raise
        if name in self.unhealthy:
            self._set_health(name, True)

    def _set_health(self, name: str, healthy: bool) -> None:
        if healthy == (name not in self.unhealthy):
            return
        (self.unhealthy.discard if healthy else self.unhealthy.add)(name)
        if self.health_listener is not None:
            self.health_listener(name, healthy)

    def identify(self, params: identify_stage.IdentifyParams) -> identify_stage.IdentifyResult:
        """The values under a point: the service's pixels, or the rule's output there (a one-pixel export on the
        service's own grid, so a function reads the neighbours it needs); on a mosaic dataset, from the item the
        mosaic rule puts on top there, with the items under the point as catalog items."""
        service = self.catalog.service(params.service)
        service_crs = sr.crs_from_wkt(service.description.crs_wkt)
        point_crs = params.crs or service_crs
        xs, ys = sr.transform_points(point_crs, service_crs, np.array([params.x]), np.array([params.y]))
        x, y = float(xs[0]), float(ys[0])
        chain = functions.chain_for(params.rendering_rule, service.templates)
        if not (math.isfinite(x) and math.isfinite(y)):
            return identify_stage.IdentifyResult(None, chain.describe(_bands_info(service)).dtype, params.x,
                                                 params.y, point_crs)
        rule = params.mosaic_rule
        conditions = item_conditions(self.catalog, service, rule, params.time)
        candidates = tuple(item for item in self.catalog.items_in(service.name, (x, y, x, y), conditions)
                           if footprints.covers_point(item.footprint, x, y))
        ordered = mosaic.order_items(rule, candidates, (x, y), service.description.extent,
                                     service.settings.max_mosaic_image_count, service.fields,
                                     viewpoint_in(rule.viewpoint, service_crs))
        with self.source_health(service.name):
            answer = identify_stage.identify(service, ordered, params.x, params.y, point_crs)
        if not (chain.is_identity and item_chain(rule, service).is_identity):
            extent, (width, height) = service.description.extent, service.description.pixel_size
            x0 = extent[0] + math.floor((x - extent[0]) / width) * width
            y1 = extent[3] - math.floor((extent[3] - y) / height) * height
            pixel = export_params(service.name, bbox=(x0, y1 - height, x0 + width, y1), size=(1, 1),
                                  format="tiff", interpolation=IDENTIFY_INTERPOLATION, adjust_aspect_ratio=False,
                                  rendering_rule=params.rendering_rule, mosaic_rule=rule, time=params.time)
            block = self.render_block(self.plan_export(pixel))
            values = tuple(float(v) for v in block.data[:, 0, 0]) if block.valid[0, 0] else None
            answer = replace(answer, values=values, dtype=block.data.dtype.name)
        if service.description.item_count == 1 or not params.return_catalog_items:
            return replace(answer, object_id=0) if service.description.item_count == 1 else answer
        features = tuple(catalog_query.QueryFeature(
            attributes={f.name: item.object_id if f is service.fields[0] else item.attributes.get(f.name)
                        for f in service.fields},
            rings=self.footprint(item, service, point_crs))
            for item in candidates)
        return replace(answer, catalog_items=catalog_query.QueryResult(fields=service.fields, features=features,
                                                                       crs=point_crs),
                       visibilities=tuple(1.0 if item.object_id == answer.object_id else 0.0 for item in candidates))

    def distributions(self, name: str, rendering_rule: dict | None = None,
                      variable: str | None = None) -> tuple[BandDistribution, ...]:
        """The service's statistics and histograms (computed at registration), or those of a rule's output over
        the service's extent, rendered at most RULE_STATISTICS_SIZE pixels a side (docs/decisions.md); of one
        ``variable``'s slices on a multidimensional service."""
        service = self.catalog.service(name)
        rule = mosaic.DEFAULT_RULE
        conditions = []
        if variable:
            multidimensional.refuse_unless_multidimensional(service, "variable", "variable")
            conditions.append(multidimensional.variable_condition(self.catalog, service, variable, "variable"))
            rule = mosaic.MosaicRule(multidimensional_definition=(multidimensional.DimensionFilter(variable),))
        if functions.chain_for(rendering_rule, service.templates).is_identity:
            return resources.distributions(service, self.catalog.distributions(name, conditions))
        d = service.description
        scale = min(1.0, RULE_STATISTICS_SIZE / max(d.columns, d.rows))
        whole = export_params(name, size=(max(1, round(d.columns * scale)), max(1, round(d.rows * scale))),
                              format="tiff", rendering_rule=rendering_rule, mosaic_rule=rule)
        block = self.render_block(self.plan_export(whole))
        return distributions_of(lambda: [(block.data, block.valid)], block.band_count, block.data.dtype.name)

    def multidimensional_info(self, name: str, return_values: str = "always") -> list[dict]:
        """``/multidimensionalInfo``'s variables (see ``imgsvc.multidimensional.info``)."""
        return multidimensional.info(self.catalog, self.catalog.service(name), return_values)

    def slices(self, name: str, definition: tuple = ()) -> tuple[multidimensional.Slice, ...]:
        """``/slices``: every slice, or those a multidimensionalDefinition selects."""
        return multidimensional.slices(self.catalog, self.catalog.service(name), definition)

    def query(self, params: catalog_query.QueryParams) -> catalog_query.QueryResult:
        """A mosaic dataset's catalog items as features: selected, ordered and paged (docs/protocol.md §4)."""
        service = self.catalog.service(params.service)
        service_crs = sr.crs_from_wkt(service.description.crs_wkt)
        conditions = []
        if params.where:
            conditions.append(self.catalog.where_condition(params.where, service.fields))
        if params.object_ids:
            if len(params.object_ids) > resources.MAX_RECORD_COUNT:
                raise invalid(f"objectIds lists more than {resources.MAX_RECORD_COUNT} ids.", parameter="objectIds")
            conditions.append((f"object_id IN ({', '.join('?' * len(params.object_ids))})", list(params.object_ids)))
        area = None
        if params.geometry is not None:
            geometry = params.geometry
            area = footprints.area(geometry.kind, geometry.coordinates, geometry.crs or service_crs, service_crs)
            if area.is_empty:  # nothing of it can be placed in the service SR
                conditions.append(("1 = 0", []))
            else:
                conditions.append(self.catalog.bounds_condition(area.bounds))
        if params.time is not None and service.settings.start_time_field:
            conditions.append(self.catalog.time_condition(service.settings, service.fields, *params.time))
        if params.pixel_size is not None:
            pixel_size = pixel_size_in(params.pixel_size, service)
            conditions.append(self.catalog.pixel_size_condition(service.fields, pixel_size))
        if params.multidimensional_definition:
            conditions += multidimensional.definition_conditions(
                self.catalog, service, params.multidimensional_definition, "multidimensionalDefinition")
        order = catalog_query.order_terms(service.fields, params.order_by)
        limit = min(params.record_count or resources.MAX_RECORD_COUNT, resources.MAX_RECORD_COUNT)
        if area is not None and not area.is_empty and params.spatial_rel == catalog_query.FOOTPRINT_INTERSECTS:
            # The R*Tree matched the bounds; the footprints themselves decide, so count and page here.
            items = tuple(item for item in self.catalog.select_items(service.name, conditions, order)
                          if footprints.meets(item.footprint, area))
            page = items[params.offset:params.offset + limit + 1]
        elif params.count_only:
            return catalog_query.QueryResult(fields=(), count=self.catalog.count_items(service.name, conditions))
        elif params.ids_only:
            items = page = self.catalog.select_items(service.name, conditions, order)
        else:
            items = page = self.catalog.select_items(service.name, conditions, order, params.offset, limit + 1)
        if params.count_only:
            return catalog_query.QueryResult(fields=(), count=len(items))
        if params.ids_only:
            return catalog_query.QueryResult(fields=(), object_ids=tuple(item.object_id for item in items))
        fields = catalog_query.out_fields(service.fields, params.out_fields)
        out_crs = params.out_crs or service_crs
        features = tuple(catalog_query.QueryFeature(
            attributes={f.name: item.object_id if f is service.fields[0] else item.attributes.get(f.name)
                        for f in fields},
            rings=self.footprint(item, service, out_crs) if params.return_geometry else ())
            for item in page[:limit])
        return catalog_query.QueryResult(fields=fields, features=features, exceeded_transfer_limit=len(page) > limit,
                                         crs=out_crs)

    @staticmethod
    def footprint(item, service: ServiceRecord, crs: CRS) -> footprints.Footprint:
        """The item's footprint (its bounds when the catalog has no outline) in ``crs``."""
        outline = item.footprint or footprints.rectangle(item_bounds_in(item, service.description.crs_wkt))
        return footprints.to_crs(outline, sr.crs_from_wkt(service.description.crs_wkt), crs)

    def time_extent(self, name: str) -> tuple[int, int] | None:
        """The time span of a time-aware service's items (the root's timeInfo), None otherwise."""
        return self.catalog.time_extent(self.catalog.service(name))

    def has_distributions(self, name: str) -> bool:
        self.catalog.service(name)  # an unknown service is not found, not "without statistics"
        return self.catalog.distributions(name) is not None

    def key_properties(self, name: str) -> resources.KeyPropertiesResult:
        return resources.key_properties(self.catalog.service(name))

    def raster_function_templates(self, name: str) -> tuple[resources.FunctionTemplate, ...]:
        return resources.raster_function_templates(self.catalog.service(name))

    def legend(self, name: str, band_ids: tuple[int, ...], rendering_rule: dict | None = None,
               variable: str | None = None) -> resources.LegendResult:
        """The legend of the service's rendering; of one ``variable``'s values on a multidimensional service."""
        service = self.catalog.service(name)
        if variable:
            stats = tuple(BandStats(min=d.min, max=d.max, mean=d.mean, stdv=d.stdv)
                          for d in self.distributions(name, variable=variable))
            service = replace(service, description=replace(service.description, stats=stats,
                                                           band_names=(variable,) * len(stats)))
        return resources.legend(service, band_ids, rendering_rule)

    def item_info(self, name: str) -> resources.ItemInfoResult:
        return resources.item_info(self.catalog.service(name))
