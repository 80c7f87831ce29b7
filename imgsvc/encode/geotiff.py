"""``tiff``: a GeoTIFF of the block in its own pixel type, never stretched (docs/protocol.md §1.1, §1.5, §2.1).

* Georeferencing: the block's transform and CRS.  Bands in block order (which is the ``bandIds`` order).
* Masked pixels: when ``block.nodata`` gives one value for every band and that value fits the pixel type, masked
  pixels hold it and the file carries ``GDAL_NODATA``.  Otherwise (no nodata, per-band values that differ - a TIFF
  has one GDAL_NODATA tag for all bands - or a value the type cannot hold) masked pixels hold the band's nodata
  value or 0 and an internal 1-bit mask (GDAL_TIFF_INTERNAL_MASK) says which pixels are valid.
* ``compression``: None/"None" -> uncompressed, "LZ77" -> Deflate, "JPEG" -> JPEG at ``quality``; JPEG holds only
  8-bit data of 1 to 4 bands, so JPEG for any other pixel type or more bands is refused.
* Bands are data: photometric RGB for 3 bands (YCbCr with JPEG), MINISBLACK otherwise, so no band is ever read
  as alpha (GDAL's default would make a 4th band alpha).
"""
from __future__ import annotations

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile

from imgsvc.block import ImageBlock, holds
from imgsvc.encode.nodata import filled
from imgsvc.encode.types import Encoded, EncodeOptions, FileType
from imgsvc.errors import ErrorKind, ImgsvcError, invalid

TIFF = FileType("image/tiff", "tif")
# compression (ArcGIS) -> GDAL's COMPRESS; not asked (None) is uncompressed too.
GDAL_COMPRESSION = {None: None, "None": None, "JPEG": "JPEG", "LZ77": "DEFLATE"}
COMPRESSIONS = tuple(name for name in GDAL_COMPRESSION if name is not None)
COMPRESSION_ALIASES = {"Deflate": "LZ77"}  # other spellings clients send (LZ77 is Deflate)


def shared_nodata(block: ImageBlock) -> float | None:
    """The one nodata value the GDAL_NODATA tag can carry for this block, or None."""
    if not block.nodata or (len(set(block.nodata)) != 1 and not all(np.isnan(block.nodata))):
        return None
    value = block.nodata[0]
    return value if holds(block.data.dtype, value) else None


def encode_tiff(block: ImageBlock, options: EncodeOptions) -> Encoded:
    compression = GDAL_COMPRESSION[options.compression]
    dtype = block.data.dtype
    if compression == "JPEG" and dtype != np.uint8:
        raise invalid(f"compression=JPEG with format=tiff needs 8-bit pixels (pixelType U8), not {dtype.name}; "
                      "use compression=LZ77 or None.")
    if compression == "JPEG" and block.band_count > 4:
        raise invalid(f"compression=JPEG with format=tiff takes 1 to 4 bands, not {block.band_count}; "
                      "use compression=LZ77 or None.")
    rows, cols = block.shape
    masked = not block.valid.all()
    nodata = shared_nodata(block)
    data = filled(block)
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": block.band_count, "dtype": dtype.name,
        "transform": block.transform, "crs": block.crs.to_wkt() if block.crs is not None else None,
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if compression:
        profile["compress"] = compression
    if block.band_count == 3:
        # RGB for 3 bands (as GDAL would); YCbCr makes JPEG-in-TIFF several times smaller
        profile["photometric"] = "YCBCR" if compression == "JPEG" else "RGB"
    else:
        # GDAL would call a 4th band alpha; exported bands are data (bandIds may pick NIR), never transparency
        profile["photometric"] = "MINISBLACK"
    if compression == "JPEG":
        profile["jpeg_quality"] = max(1, options.quality)  # GDAL takes 1..100
    try:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), MemoryFile() as memfile:
            with memfile.open(**profile) as dataset:
                dataset.write(data)
                if masked and nodata is None:
                    dataset.write_mask(block.valid.view(np.uint8) * np.uint8(255))
            return TIFF.encoded(bytes(memfile.getbuffer()))
    except RasterioError as exc:
        # The block was valid and the options were checked, so this is ours, not the caller's.
        raise ImgsvcError(ErrorKind.INTERNAL, f"Writing format=tiff for pixel type {dtype.name} with "
                          f"compression={options.compression} failed: {exc}") from exc
