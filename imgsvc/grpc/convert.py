"""Core values -> protobuf messages (the servicer's only job besides calling the service)."""
from __future__ import annotations

from pyproj import CRS

from imgsvc import sr
from imgsvc.catalog import ServiceRecord
from imgsvc.service import ExportResult
from imgsvc.v1 import image_service_pb2 as pb

PIXEL_TYPE_OF_DTYPE = {
    "uint8": pb.PIXEL_TYPE_U8, "int8": pb.PIXEL_TYPE_S8, "uint16": pb.PIXEL_TYPE_U16, "int16": pb.PIXEL_TYPE_S16,
    "uint32": pb.PIXEL_TYPE_U32, "int32": pb.PIXEL_TYPE_S32, "float32": pb.PIXEL_TYPE_F32,
    "float64": pb.PIXEL_TYPE_F64,
}
CURRENT_VERSION = 11.3  # advertised so clients send lercVersion=2 and adjustAspectRatio (REFERENCE §3.2)


def spatial_reference(crs: CRS) -> pb.SpatialReference:
    doc = sr.sr_json(crs)
    return pb.SpatialReference(wkid=doc.get("wkid"), latest_wkid=doc.get("latestWkid"), wkt=doc.get("wkt"))


def envelope(bounds, crs: CRS) -> pb.Envelope:
    xmin, ymin, xmax, ymax = bounds
    return pb.Envelope(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, spatial_reference=spatial_reference(crs))


def export_response(result: ExportResult) -> pb.ExportImageResponse:
    grid = result.grid
    return pb.ExportImageResponse(
        image=result.encoded.data,
        content_type=result.encoded.content_type,
        extension=result.encoded.extension,
        width=grid.width,
        height=grid.height,
        extent=envelope(grid.extent, grid.crs),
        scale=0.0,
    )


def service_info(record: ServiceRecord) -> pb.ServiceInfo:
    item = record.primary
    settings = record.settings
    crs = sr.crs_from_wkt(item.crs_wkt)
    extent = envelope(item.bounds, crs)
    return pb.ServiceInfo(
        name=record.name,
        description=settings.description,
        copyright_text=settings.copyright_text,
        extent=extent,
        initial_extent=extent,
        full_extent=extent,
        spatial_reference=spatial_reference(crs),
        pixel_size_x=abs(item.transform.a),
        pixel_size_y=abs(item.transform.e),
        band_count=item.band_count,
        band_names=item.band_names,
        pixel_type=PIXEL_TYPE_OF_DTYPE[item.dtype],
        min_values=[s.min for s in item.stats],
        max_values=[s.max for s in item.stats],
        mean_values=[s.mean for s in item.stats],
        stdv_values=[s.stdv for s in item.stats],
        no_data_values=[] if item.nodata is None else [item.nodata] * item.band_count,
        service_data_type=settings.service_data_type,
        service_source_type="esriImageServiceSourceTypeDataset",
        capabilities="Image,Metadata",
        default_mosaic_method="",
        allowed_mosaic_methods="",
        mosaic_operator="First",
        sort_field="",
        sort_ascending=True,
        max_image_width=settings.max_image_width,
        max_image_height=settings.max_image_height,
        max_record_count=1000,
        max_mosaic_image_count=20,
        default_compression_quality=settings.default_compression_quality,
        default_resampling_method=settings.default_resampling_method,
        raster_function_infos=[pb.RasterFunctionInfo(
            name="None", description="Make a Raster or Raster Dataset into a Function Raster Dataset.", help="")],
        block_width=item.block_shape[0],
        block_height=item.block_shape[1],
        compression_type=item.compression,
        uncompressed_size=item.width * item.height * item.band_count * _itemsize(item.dtype),
        current_version=CURRENT_VERSION,
        columns=item.width,
        rows=item.height,
    )


def _itemsize(dtype: str) -> int:
    import numpy as np

    return np.dtype(dtype).itemsize
