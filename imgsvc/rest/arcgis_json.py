"""Protobuf replies -> ArcGIS JSON documents (root resource, extents, the exportImage image resource)."""
from __future__ import annotations

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
    return pb.PixelType.Name(value).removeprefix("PIXEL_TYPE_")


def root_doc(info: pb.ServiceInfo) -> dict:
    """The image service root (REFERENCE §3.3 minimum and the fields §3.2 says clients read)."""
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
        "hasMultidimensions": False,
        "serviceDataType": info.service_data_type,
        "serviceSourceType": info.service_source_type,
        "datasetFormat": "TIFF",
        "uncompressedSize": info.uncompressed_size,
        "blockWidth": info.block_width,
        "blockHeight": info.block_height,
        "compressionType": info.compression_type,
        "objectIdField": "",
        "fields": [],
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
        "rasterFunctionInfos": [{"name": f.name, "description": f.description, "help": f.help}
                                for f in info.raster_function_infos],
        "rasterTypeInfos": [{"name": "Raster Dataset", "description": "Supports all ArcGIS Raster Datasets",
                             "help": ""}],
        "mensurationCapabilities": "",
        "hasHistograms": False,
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
        "supportsStatistics": False,
        "supportsAdvancedQueries": False,
        "editFieldsInfo": None,
        "ownershipBasedAccessControlForRasters": None,
        "allowComputeTiePoints": False,
        "useStandardizedQueries": True,
    }


def image_resource_doc(reply: pb.ExportImageResponse, href: str) -> dict:
    """`f=json` for exportImage: href, the requested size, the adjusted extent, scale 0 (REFERENCE §1.5)."""
    return {"href": href, "width": reply.width, "height": reply.height, "extent": extent_doc(reply.extent),
            "scale": reply.scale}
