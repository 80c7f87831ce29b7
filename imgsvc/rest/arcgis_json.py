"""Protobuf replies -> ArcGIS JSON documents (root resource, extents, the exportImage image resource, and the
resources around them: identify, keyProperties, rasterFunctionInfos, statistics, histograms, legend, item info)."""
from __future__ import annotations

import base64

from google.protobuf import json_format

from imgsvc.grpc import enums
from imgsvc.pixel_types import UNKNOWN
from imgsvc.v1 import image_service_pb2 as pb


def sr_doc(msg: pb.SpatialReference) -> dict:
    doc = {}
    if msg.HasField("wkid"):
        doc["wkid"] = msg.wkid
    if msg.HasField("latest_wkid"):
        doc["latestWkid"] = msg.latest_wkid
    if msg.HasField("wkt"):
        doc["wkt"] = msg.wkt
    return doc


def extent_doc(env: pb.Envelope) -> dict:
    return {"xmin": env.xmin, "ymin": env.ymin, "xmax": env.xmax, "ymax": env.ymax,
            "spatialReference": sr_doc(env.spatial_reference)}


def pixel_type_name(value: int) -> str:
    return enums.PIXEL_TYPE_NAMES.get(value, UNKNOWN)  # the contract: UNSPECIFIED is UNKNOWN


def root_doc(info: pb.ServiceInfo) -> dict:
    """The image service root (docs/protocol.md §3.3 minimum and the fields §3.2 says clients read)."""
    nodata = list(info.no_data_values)
    return {
        "currentVersion": info.current_version,
        "serviceDescription": info.description,
        "name": info.name,
        "description": info.description,
        "copyrightText": info.copyright_text,
        "type": "ImageServer",
        "extent": extent_doc(info.extent),
        "initialExtent": extent_doc(info.initial_extent),
        "fullExtent": extent_doc(info.full_extent),
        "spatialReference": sr_doc(info.spatial_reference),
        "pixelSizeX": info.pixel_size_x,
        "pixelSizeY": info.pixel_size_y,
        "bandCount": info.band_count,
        "bandNames": list(info.band_names),
        "pixelType": pixel_type_name(info.pixel_type),
        "minValues": list(info.min_values),
        "maxValues": list(info.max_values),
        "meanValues": list(info.mean_values),
        "stdvValues": list(info.stdv_values),
        "noDataValue": nodata[0] if nodata else None,
        "noDataValues": nodata,
        "hasMultidimensions": info.has_multidimensions,
        **({"defaultVariable": info.default_variable} if info.has_multidimensions else {}),
        **({"timeInfo": {"startTimeField": info.time_info.start_time_field,
                         "endTimeField": info.time_info.end_time_field or None,
                         "timeExtent": [info.time_info.extent_start, info.time_info.extent_end],
                         "timeReference": None}} if info.HasField("time_info") else {}),
        "serviceDataType": info.service_data_type,
        "serviceSourceType": info.service_source_type,
        "datasetFormat": "TIFF",
        "uncompressedSize": info.uncompressed_size,
        "blockWidth": info.block_width,
        "blockHeight": info.block_height,
        "compressionType": info.compression_type,
        "objectIdField": "OBJECTID" if info.fields else "",
        "fields": [{"name": f.name, "type": f.type, "alias": f.name} for f in info.fields],
        "capabilities": info.capabilities,
        "defaultMosaicMethod": info.default_mosaic_method,
        "allowedMosaicMethods": info.allowed_mosaic_methods,
        "sortField": info.sort_field,
        "sortValue": None,
        "sortAscending": info.sort_ascending,
        "mosaicOperator": info.mosaic_operator,
        "maxImageWidth": info.max_image_width,
        "maxImageHeight": info.max_image_height,
        "maxRecordCount": info.max_record_count,
        "maxMosaicImageCount": info.max_mosaic_image_count,
        "defaultCompressionQuality": info.default_compression_quality,
        "defaultResamplingMethod": info.default_resampling_method,
        "allowRasterFunction": True,
        "rasterFunctionInfos": [function_info_doc(f) for f in info.raster_function_infos],
        "rasterTypeInfos": [{"name": "Raster Dataset", "description": "Supports all ArcGIS Raster Datasets",
                             "help": ""}],
        "mensurationCapabilities": "",
        "hasHistograms": info.has_histograms,
        "hasColormap": False,
        "hasRasterAttributeTable": False,
        "minScale": 0,
        "maxScale": 0,
        "minPixelSize": 0,
        "maxPixelSize": 0,
        "singleFusedMapCache": False,
        "exportTilesAllowed": False,
        "allowCopy": True,
        "allowAnalysis": True,
        "supportsStatistics": info.has_histograms,  # the /statistics resource
        "supportsAdvancedQueries": False,
        "editFieldsInfo": None,
        "ownershipBasedAccessControlForRasters": None,
        "allowComputeTiePoints": False,
        "useStandardizedQueries": True,
    }


def image_resource_doc(reply: pb.ExportImageResponse, href: str) -> dict:
    """`f=json` for exportImage: href, the requested size, the adjusted extent, scale 0 (docs/protocol.md §1.5)."""
    return {"href": href, "width": reply.width, "height": reply.height, "extent": extent_doc(reply.extent),
            "scale": reply.scale}


def function_info_doc(f: pb.RasterFunctionInfo) -> dict:
    return {"name": f.name, "description": f.description, "help": f.help, "functionType": f.function_type}


def raster_function_infos_doc(reply: pb.RasterFunctionInfos) -> dict:
    return {"rasterFunctionInfos": [function_info_doc(f) for f in reply.raster_function_infos]}


def point_doc(p: pb.Point) -> dict:
    return {"x": p.x, "y": p.y, "spatialReference": sr_doc(p.spatial_reference)}


def identify_doc(reply: pb.IdentifyResponse) -> dict:
    """The identify answer: the pixel, and on a mosaic dataset its items under the point and which one answers."""
    items = reply.catalog_items if reply.HasField("catalog_items") else None
    return {"objectId": reply.object_id, "name": reply.name, "value": reply.value,
            "location": point_doc(reply.location), "properties": None,
            "catalogItems": query_doc(items, False, False, True) if items is not None else None,
            "catalogItemVisibilities": list(reply.catalog_item_visibilities)}


def key_properties_doc(reply: pb.KeyProperties) -> dict:
    return {"DataType": reply.data_type,
            "BandProperties": [{"BandName": b.band_name} for b in reply.band_properties],
            "LowCellSize": reply.low_cell_size, "HighCellSize": reply.high_cell_size}


def statistics_doc(reply: pb.StatisticsResponse) -> dict:
    return {"statistics": [
        {"min": s.min, "max": s.max, "mean": s.mean, "standardDeviation": s.standard_deviation, "median": s.median,
         "mode": s.mode, "skipX": s.skip_x, "skipY": s.skip_y, "count": s.count} for s in reply.statistics]}


def histograms_doc(reply: pb.HistogramsResponse) -> dict:
    return {"histograms": [{"size": h.size, "min": h.min, "max": h.max, "counts": list(h.counts)}
                           for h in reply.histograms]}


def legend_doc(reply: pb.LegendResponse) -> dict:
    return {"layers": [
        {"layerId": layer.layer_id, "layerName": layer.layer_name, "layerType": layer.layer_type,
         "minScale": 0, "maxScale": 0, "legendType": layer.legend_type,
         "legend": [{"label": e.label, "url": "", "imageData": base64.b64encode(e.image).decode("ascii"),
                     "contentType": e.content_type, "height": e.height, "width": e.width, "values": list(e.values)}
                    for e in layer.legend]}
        for layer in reply.layers]}


def item_info_doc(reply: pb.ItemInfo) -> dict:
    """The portal item description (`info/iteminfo`); `extent` is [[lon, lat], [lon, lat]] as portals write it."""
    g = reply.geographic_extent
    return {"name": reply.name, "title": reply.title, "snippet": reply.snippet, "description": reply.description,
            "summary": reply.snippet, "accessInformation": reply.access_information, "licenseInfo": "",
            "tags": list(reply.tags), "type": reply.type, "typeKeywords": list(reply.type_keywords),
            "culture": "en-us", "thumbnail": None, "url": None,
            "extent": [[g.xmin, g.ymin], [g.xmax, g.ymax]], "spatialReference": sr_doc(reply.spatial_reference)}


def metadata_xml(reply: pb.ItemInfo) -> str:
    """`info/metadata`: the item as ArcGIS metadata XML (title, abstract, credits, keywords, geographic extent)."""
    from xml.sax.saxutils import escape

    g = reply.geographic_extent
    keywords = "".join(f"<keyword>{escape(t)}</keyword>" for t in reply.tags)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<metadata xml:lang=\"en\"><Esri><ArcGISFormat>1.0</ArcGISFormat>"
            "</Esri><dataIdInfo><idCitation><resTitle>" + escape(reply.title) + "</resTitle></idCitation>"
            "<idAbs>" + escape(reply.description) + "</idAbs><idPurp>" + escape(reply.snippet) + "</idPurp>"
            "<idCredit>" + escape(reply.access_information) + "</idCredit><searchKeys>" + keywords + "</searchKeys>"
            f"<dataExt><geoEle><GeoBndBox esriExtentType=\"search\"><westBL>{g.xmin!r}</westBL><eastBL>{g.xmax!r}"
            f"</eastBL><southBL>{g.ymin!r}</southBL><northBL>{g.ymax!r}</northBL></GeoBndBox></geoEle></dataExt>"
            "</dataIdInfo></metadata>\n")


# Field types whose values are whole numbers (a Struct carries every number as a double).
_WHOLE_NUMBER_TYPES = {"esriFieldTypeOID", "esriFieldTypeInteger", "esriFieldTypeDate"}


def _attributes(feature: pb.QueryFeature, fields) -> dict:
    values = json_format.MessageToDict(feature.attributes)
    return {f.name: (int(values[f.name]) if f.type in _WHOLE_NUMBER_TYPES and values.get(f.name) is not None
                     else values.get(f.name)) for f in fields}


def _rings(feature: pb.QueryFeature) -> list:
    return [[[ring.coordinates[i], ring.coordinates[i + 1]] for i in range(0, len(ring.coordinates), 2)]
            for ring in feature.rings]


def query_doc(reply: pb.QueryResponse, ids_only: bool, count_only: bool, return_geometry: bool) -> dict:
    """query's FeatureSet (or its object ids, or its count), as ArcGIS writes it."""
    if count_only:
        return {"count": reply.count}
    if ids_only:
        return {"objectIdFieldName": "OBJECTID", "objectIds": list(reply.object_ids)}
    doc = {"objectIdFieldName": "OBJECTID", "geometryType": "esriGeometryPolygon",
           "spatialReference": sr_doc(reply.spatial_reference),
           "fields": [{"name": f.name, "type": f.type, "alias": f.name} for f in reply.fields],
           "features": [{"attributes": _attributes(f, reply.fields),
                         **({"geometry": {"rings": _rings(f)}} if return_geometry else {})} for f in reply.features]}
    if reply.exceeded_transfer_limit:
        doc["exceededTransferLimit"] = True
    return doc


def query_geojson(reply: pb.QueryResponse) -> dict:
    """query with f=geojson: a FeatureCollection (RFC 7946 rings are counter-clockwise, Esri's clockwise)."""
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": attributes.get("OBJECTID"), "properties": attributes,
                          "geometry": ({"type": "Polygon", "coordinates": [ring[::-1] for ring in _rings(f)]}
                                       if f.rings else None)}
                         for f in reply.features for attributes in [_attributes(f, reply.fields)]],
            **({"exceededTransferLimit": True} if reply.exceeded_transfer_limit else {})}


def _dimension_value(value: float, dimension: str):
    """A dimension value on the wire: StdTime as integer epoch milliseconds, others as the numbers they are."""
    return int(value) if dimension == "StdTime" else value


def multidimensional_info_doc(reply: pb.MultidimensionalInfo) -> dict:
    """``/multidimensionalInfo`` (docs/protocol.md §4): StdTime values and extents in epoch milliseconds."""
    variables = []
    for variable in reply.variables:
        dimensions = []
        for d in variable.dimensions:
            doc = {"name": d.name, "description": d.description, "unit": d.unit, "field": d.field,
                   "extent": [_dimension_value(v, d.name) for v in d.extent], "hasRanges": d.has_ranges,
                   "hasRegularIntervals": d.has_regular_intervals}
            if d.HasField("interval"):
                doc["interval"] = int(d.interval) if d.interval_unit else d.interval  # a count of time units
                doc["intervalUnit"] = d.interval_unit
            if d.values_returned:
                doc["values"] = [_dimension_value(v, d.name) for v in d.values]
            dimensions.append(doc)
        doc = {"name": variable.name, "description": variable.description, "unit": variable.unit,
               "dimensions": dimensions}
        if variable.statistics:
            doc["statistics"] = [{"min": s.min, "max": s.max, "mean": s.mean, "standardDeviation":
                                  s.standard_deviation} for s in variable.statistics]
        variables.append(doc)
    return {"multidimensionalInfo": {"variables": variables}}


def slices_doc(reply: pb.SlicesResponse) -> dict:
    """``/slices``: each slice's id and the multidimensionalDefinition that selects it."""
    return {"slices": [{"sliceId": s.slice_id, "multidimensionalDefinition": [
        {"variableName": d.variable_name, "dimensionName": d.dimension_name,
         "values": [_dimension_value(v, d.dimension_name) for v in json_format.MessageToDict(d.values)],
         "isSlice": d.is_slice} for d in s.multidimensional_definition]} for s in reply.slices]}
