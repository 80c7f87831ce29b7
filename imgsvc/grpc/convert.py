"""Protobuf requests -> core arguments, core values -> protobuf messages (the servicer's only job besides calling
the service)."""
from __future__ import annotations

from pyproj import CRS

from imgsvc import catalog_query, resources, sr
from imgsvc.catalog import BandDistribution, ServiceRecord
from imgsvc.grpc import enums
from imgsvc.identify import IdentifyResult
from imgsvc.pixel_types import NAME_OF_DTYPE
from imgsvc.service import ExportResult
from imgsvc.v1 import image_service_pb2 as pb

PIXEL_TYPE_OF_DTYPE = {dtype: enums.PIXEL_TYPE[name] for dtype, name in NAME_OF_DTYPE.items()}


def spatial_reference(crs: CRS) -> pb.SpatialReference:
    doc = sr.sr_json(crs)
    return pb.SpatialReference(wkid=doc.get("wkid"), latest_wkid=doc.get("latestWkid"), wkt=doc.get("wkt"))


def envelope(bounds, crs: CRS) -> pb.Envelope:
    xmin, ymin, xmax, ymax = bounds
    return pb.Envelope(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, spatial_reference=spatial_reference(crs))


def export_response(result: ExportResult, with_image: bool = True) -> pb.ExportImageResponse:
    """The answer to ExportImage (``with_image=False``: without the image's bytes, ExportImageStream's header)."""
    grid = result.grid
    return pb.ExportImageResponse(
        image=result.encoded.data if with_image else b"",
        content_type=result.encoded.content_type,
        extension=result.encoded.extension,
        width=grid.width,
        height=grid.height,
        extent=envelope(grid.extent, grid.crs),
        scale=0.0,
    )


def function_infos(templates) -> list[pb.RasterFunctionInfo]:
    return [pb.RasterFunctionInfo(name=t.name, description=t.description, help=t.help,
                                  function_type=t.function_type) for t in templates]


def service_info(record: ServiceRecord, has_histograms: bool = False,
                 time_extent: tuple[int, int] | None = None) -> pb.ServiceInfo:
    description = record.description
    settings = record.settings
    crs = sr.crs_from_wkt(description.crs_wkt)
    extent = envelope(description.extent, crs)
    mosaic_defaults = resources.mosaic_defaults(record)
    return pb.ServiceInfo(
        name=record.name,
        description=settings.description,
        copyright_text=settings.copyright_text,
        extent=extent,
        initial_extent=extent,
        full_extent=extent,
        spatial_reference=spatial_reference(crs),
        pixel_size_x=description.pixel_size[0],
        pixel_size_y=description.pixel_size[1],
        band_count=description.band_count,
        band_names=description.band_names,
        pixel_type=PIXEL_TYPE_OF_DTYPE[description.dtype],
        min_values=[s.min for s in description.stats],
        max_values=[s.max for s in description.stats],
        mean_values=[s.mean for s in description.stats],
        stdv_values=[s.stdv for s in description.stats],
        no_data_values=[] if description.nodata is None else [description.nodata] * description.band_count,
        service_data_type=settings.service_data_type,
        service_source_type=description.source_type,
        capabilities=resources.capabilities(record),
        default_mosaic_method=mosaic_defaults.default_method,
        allowed_mosaic_methods=mosaic_defaults.allowed_methods,
        mosaic_operator=mosaic_defaults.operator,
        sort_field=mosaic_defaults.sort_field,
        sort_ascending=mosaic_defaults.sort_ascending,
        max_image_width=settings.max_image_width,
        max_image_height=settings.max_image_height,
        max_record_count=resources.MAX_RECORD_COUNT,
        max_mosaic_image_count=settings.max_mosaic_image_count,
        default_compression_quality=settings.default_compression_quality,
        default_resampling_method=settings.default_resampling_method,
        raster_function_infos=function_infos(resources.raster_function_templates(record)),
        block_width=description.block_shape[0],
        block_height=description.block_shape[1],
        compression_type=description.compression,
        uncompressed_size=description.uncompressed_size,
        current_version=resources.CURRENT_VERSION,
        columns=description.columns,
        rows=description.rows,
        has_histograms=has_histograms,
        fields=[pb.FieldInfo(name=f.name, type=f.type.value) for f in resources.root_fields(record)],
        time_info=(pb.TimeInfo(start_time_field=settings.start_time_field or "",
                               end_time_field=settings.end_time_field or "", extent_start=time_extent[0],
                               extent_end=time_extent[1]) if time_extent else None),
        has_multidimensions=settings.has_multidimensions,
        default_variable=settings.variables[0]["name"] if settings.variables else "",
    )


def identify_response(result: IdentifyResult) -> pb.IdentifyResponse:
    reply = pb.IdentifyResponse(
        object_id=result.object_id, name="Pixel", no_data=result.values is None, values=result.values or (),
        value=result.text, location=pb.Point(x=result.x, y=result.y, spatial_reference=spatial_reference(result.crs)),
        pixel_type=PIXEL_TYPE_OF_DTYPE[result.dtype], catalog_item_visibilities=result.visibilities)
    if result.catalog_items is not None:
        reply.catalog_items.CopyFrom(query_response(result.catalog_items))
    return reply


def key_properties(result: resources.KeyPropertiesResult) -> pb.KeyProperties:
    return pb.KeyProperties(data_type=result.data_type,
                            band_properties=[pb.BandProperty(band_name=n) for n in result.band_names],
                            low_cell_size=result.low_cell_size, high_cell_size=result.high_cell_size)


def statistics(bands: tuple[BandDistribution, ...]) -> pb.StatisticsResponse:
    # Every pixel was visited at registration: no skipping.
    return pb.StatisticsResponse(statistics=[
        pb.BandStatistics(min=d.min, max=d.max, mean=d.mean, standard_deviation=d.stdv, median=d.median,
                          mode=d.mode, skip_x=1, skip_y=1, count=d.count) for d in bands])


def histograms(bands: tuple[BandDistribution, ...]) -> pb.HistogramsResponse:
    return pb.HistogramsResponse(histograms=[
        pb.Histogram(size=len(d.counts), min=d.hist_min, max=d.hist_max, counts=d.counts) for d in bands])


def legend(result: resources.LegendResult) -> pb.LegendResponse:
    entries = [pb.LegendEntry(label=s.label, image=s.png, content_type="image/png", width=resources.SWATCH,
                              height=resources.SWATCH, values=s.values) for s in result.swatches]
    return pb.LegendResponse(layers=[pb.LegendLayer(layer_id=0, layer_name=result.layer_name,
                                                    layer_type="Raster Layer", legend_type=result.legend_type,
                                                    legend=entries)])


def item_info(result: resources.ItemInfoResult) -> pb.ItemInfo:
    wgs84 = sr.crs_from_wkid(4326)
    return pb.ItemInfo(
        name=result.name, title=result.name, snippet=result.description.split(". ")[0],
        description=result.description, access_information=result.copyright_text,
        tags=["imgsvc", "Image Service", result.service_data_type.removeprefix(resources.DATA_TYPE_PREFIX)],
        type="Image Service", type_keywords=["Data", "Service", "Image Service", "ArcGIS Server"],
        geographic_extent=envelope(result.geographic_extent, wgs84), spatial_reference=spatial_reference(wgs84),
        service_data_type=result.service_data_type)


def query_response(result: catalog_query.QueryResult) -> pb.QueryResponse:
    reply = pb.QueryResponse(
        fields=[pb.FieldInfo(name=f.name, type=f.type.value) for f in result.fields],
        object_ids=result.object_ids, count=result.count, exceeded_transfer_limit=result.exceeded_transfer_limit)
    if result.crs is not None:
        reply.spatial_reference.CopyFrom(spatial_reference(result.crs))
    for feature in result.features:
        message = reply.features.add()
        message.attributes.update(feature.attributes)
        for ring in feature.rings:
            message.rings.add(coordinates=[c for point in ring for c in point])
    return reply


def multidimensional_info(variables: list[dict]) -> pb.MultidimensionalInfo:
    """``imgsvc.multidimensional.info``'s documents as the message (the same names, snake-cased)."""
    reply = pb.MultidimensionalInfo()
    for variable in variables:
        message = reply.variables.add(name=variable["name"], description=variable["description"],
                                      unit=variable["unit"])
        for d in variable["dimensions"]:
            dimension = message.dimensions.add(
                name=d["name"], description=d["description"], unit=d["unit"], field=d["field"], extent=d["extent"],
                has_ranges=d["hasRanges"], has_regular_intervals=d["hasRegularIntervals"],
                interval_unit=d.get("intervalUnit", ""), values=d.get("values", ()),
                values_returned="values" in d)
            if "interval" in d:
                dimension.interval = d["interval"]
        for s in variable.get("statistics", ()):
            message.statistics.add(min=s["min"], max=s["max"], mean=s["mean"],
                                   standard_deviation=s["standardDeviation"])
    return reply


def slices_response(slices) -> pb.SlicesResponse:
    reply = pb.SlicesResponse()
    for chosen in slices:
        message = reply.slices.add(slice_id=chosen.slice_id)
        for dimension, value in chosen.values:
            entry = message.multidimensional_definition.add(variable_name=chosen.variable, dimension_name=dimension,
                                                            is_slice=True)
            entry.values.append(value)
        if not chosen.values:  # a variable without dimensions: its one slice is the variable
            message.multidimensional_definition.add(variable_name=chosen.variable, is_slice=True)
    return reply
